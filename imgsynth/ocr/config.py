"""Recipe options of the OCR sources: text lines (`ocr`, built as
imgsynth.ocr.lines.OcrLineSource) and scene text (`scene_text`, imgsynth.ocr.scene_text).

Only pydantic and the standard library are imported here, so that validating a
recipe stays fast; trdg, fontTools and OpenCV are imported when a source is built.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from imgsynth.core.errors import InputError
from imgsynth.core.ranges import Range, joined_range, renamed, symmetric_range
from imgsynth.core.stage import InputPath, StageConfig

# Placeholders a template may use; their generators live in imgsynth.ocr.texts.
TEMPLATE_PLACEHOLDERS = ("date", "time", "amount", "int", "digits", "id", "plate")

_COLOR = r"#[0-9a-fA-F]{6}"
_COLOR_RANGE = re.compile(rf"^{_COLOR}(,{_COLOR})?$")

DEFAULT_FONTS = ["sample_assets/fonts/latin"]


def read_lines(path: str, *, key: str) -> list[str]:
    """Non-empty lines of a UTF-8 file, stripped of surrounding whitespace (and "\r").
    Here, not in imgsynth.ocr.texts, because a run's count is planned from it."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError("text file not found", file=path, fix=f"correct '{key}'") from None
    except UnicodeDecodeError as exc:
        raise InputError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", file=path,
                         fix="convert the file to UTF-8, e.g. iconv -t UTF-8") from None
    except OSError as exc:
        raise InputError(f"cannot read: {exc}", file=path) from None
    # Split on "\n" only (as every line tool does), not str.splitlines(), which would also
    # split on U+2028, U+0085 and form feeds and so shift line numbers.
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        raise InputError("the file has no non-empty lines", file=path, fix=f"fill it or change '{key}'")
    return lines


class _TextsBase(StageConfig):
    weight: float = Field(1.0, gt=0, description="Relative weight when several text sources are mixed.")
    fonts: list[InputPath] | None = Field(
        None, description="Fonts for this text source (files or folders), e.g. Arabic fonts for "
        "Arabic lines. Default: the source's `fonts`.")
    case: Literal["as_is", "upper", "lower"] = Field(
        "as_is", description="Change the case before rendering; the label gets the same case.")


class LinesTexts(_TextsBase):
    """Lines of a UTF-8 text file, one sample per line."""

    kind: Literal["lines"] = Field(description="A file of lines.")
    path: InputPath = Field(description="UTF-8 text file; surrounding whitespace is stripped, empty lines skipped.")
    order: Literal["sequential", "random"] = Field(
        "sequential", description="sequential: sample i renders line i (wrapping around); "
        "random: lines are drawn at random.")


class WordsTexts(_TextsBase):
    """Random n-grams of words from a word list."""

    kind: Literal["words"] = Field(description="Words drawn from a list and joined.")
    path: InputPath | None = Field(None, description="UTF-8 file with one word per line.")
    dictionary: str | None = Field(
        None, description="Instead of `path`: one of trdg's bundled word lists by language code "
        "(en, fr, de, es, ...).")
    words: Range(int, ge=1, le=50) = Field(
        (1, 3), description="Range [lo, hi] of words in a text. Deprecated, still read: "
        "min_words / max_words.")
    separator: str = Field(" ", description="String put between words.")

    @model_validator(mode="before")
    @classmethod
    def _old_spellings(cls, data: Any) -> Any:
        return joined_range(data, "min_words", "max_words", "words", (1, 3))

    @model_validator(mode="after")
    def _one_list(self):
        if (self.path is None) == (self.dictionary is None):
            raise ValueError("give exactly one of 'path' (a word list file) or 'dictionary' (e.g. en)")
        return self


class CharsetTexts(_TextsBase):
    """Random strings of characters from a charset (codes, serial numbers)."""

    kind: Literal["charset"] = Field(description="Random characters from `charset`.")
    charset: str = Field(min_length=1, description="The characters to draw from, e.g. '0123456789ABCDEF'.")
    length: Range(int, ge=1, le=1000) = Field(
        (1, 10), description="Range [lo, hi] of the string's length. Deprecated, still read: "
        "min_length / max_length.")

    @model_validator(mode="before")
    @classmethod
    def _old_spellings(cls, data: Any) -> Any:
        return joined_range(data, "min_length", "max_length", "length", (1, 10))


class TemplateTexts(_TextsBase):
    """Templates with placeholders filled at random: invoices, forms, plates."""

    kind: Literal["template"] = Field(description="Templates with placeholders.")
    templates: list[str] = Field(
        min_length=1, description="Texts with placeholders: {date} {time} {amount} {int} {digits} "
        "{id} {plate}; write {{ and }} for literal braces. One template is drawn per sample.")

    @field_validator("templates")
    @classmethod
    def _known_placeholders(cls, templates: list[str]) -> list[str]:
        for template in templates:
            try:
                fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
            except ValueError as exc:
                raise ValueError(f"template {template!r}: {exc} (write {{{{ and }}}} for literal braces)") from None
            for name in fields:
                if name not in TEMPLATE_PLACEHOLDERS:
                    raise ValueError(f"template {template!r}: unknown placeholder {{{name}}}; "
                                     f"use one of {', '.join(TEMPLATE_PLACEHOLDERS)}")
        return templates


TextsConfig = Annotated[LinesTexts | WordsTexts | CharsetTexts | TemplateTexts, Field(discriminator="kind")]


class _RenderOptions(StageConfig):
    """What the text looks like: the options trdg offers."""

    texts: list[TextsConfig] = Field(
        min_length=1, description="Where texts come from: one or more of kind lines / words / "
        "charset / template, mixed by weight.")
    fonts: list[InputPath] = Field(
        default_factory=lambda: list(DEFAULT_FONTS),
        description="Font files (.ttf/.otf) or folders of them. A text is rendered only with a "
        "font that has a glyph for every character; otherwise another font is drawn, else the "
        "sample is skipped (reason no_font_covers_text).")
    text_color: str = Field(
        "#282828", description="Text colour '#rrggbb', or a range '#rrggbb,#rrggbb' drawn per sample.")
    stroke_width: int = Field(0, ge=0, le=20, description="Outline width of the glyphs in pixels (at font size).")
    stroke_fill: str = Field("#282828", description="Outline colour '#rrggbb' or a range '#rrggbb,#rrggbb'.")
    character_spacing: int = Field(0, ge=0, le=100, description="Extra pixels between characters (at font size).")
    space_width: float = Field(1.0, ge=0, le=10, description="Width of a space as a multiple of the font's space.")
    word_split: bool = Field(
        False, description="Draw whole words instead of single characters (keeps ligatures and "
        "kerning; no character_spacing, no character boxes).")
    max_chars: int = Field(1000, ge=1, le=20000, description="Longer texts are skipped (reason text_too_long).")

    @field_validator("text_color", "stroke_fill")
    @classmethod
    def _color(cls, value: str) -> str:
        if not _COLOR_RANGE.match(value):
            raise ValueError(f"expected '#rrggbb' or '#rrggbb,#rrggbb', got {value!r}")
        return value


class OcrConfig(_RenderOptions):
    """Text-line images for text recognition (CRNN, PARSeq, TrOCR...), rendered with trdg."""

    type: Literal["ocr"] = Field(description="Rendered text lines with exact labels.")
    implementation: ClassVar[str] = "imgsynth.ocr.lines:OcrLineSource"
    png_deflate: ClassVar[str] = "lz77"  # repeated glyphs: LZ77 files are 30-50% smaller than rle
    height: int = Field(32, ge=8, le=1024, description="Image height in pixels (width for vertical text).")
    font_size: int | None = Field(
        None, ge=8, le=1024, description="Size the text is drawn at before it is scaled to the "
        "image height. Default: the height (as trdg).")
    orientation: Literal["horizontal", "vertical"] = Field("horizontal", description="Text direction.")
    skew_angle: float = Field(0.0, ge=0, le=90, description="Rotation of the text in degrees.")
    random_skew: bool = Field(False, description="Draw the angle uniformly in [-skew_angle, skew_angle].")
    distortion: Literal["none", "sine", "cosine", "random"] = Field("none", description="Wave distortion of the text.")
    distortion_orientation: Literal["vertical", "horizontal", "both"] = Field(
        "vertical", description="Axis the distortion moves pixels along.")
    blur: float = Field(0.0, ge=0, le=20, description="Gaussian blur radius.")
    random_blur: bool = Field(False, description="Draw the blur radius uniformly in [0, blur].")
    background: Literal["gaussian_noise", "plain", "quasicrystal", "image"] = Field(
        "gaussian_noise", description="Background: paper-like noise, plain white, a quasicrystal "
        "pattern, or a random crop of an image from `background_images`.")
    background_images: list[InputPath] = Field(
        default_factory=list, description="Image files or folders for background: image.")
    margins: tuple[int, int, int, int] = Field(
        (5, 5, 5, 5), description="Margins around the text in pixels: top, left, bottom, right.")
    width: int | None = Field(
        None, ge=8, description="Minimum image width; the text is placed by `alignment`. Text "
        "wider than this widens the image (text is never cut off).")
    alignment: Literal["left", "center", "right"] = Field("center", description="Placement when `width` is set.")
    fit: bool = Field(False, description="Crop the rendered text tightly to its ink before scaling.")
    image_mode: Literal["RGB", "L"] = Field("RGB", description="RGB colour or L (8-bit gray, HxWx1).")
    boxes: Literal["none", "char", "word", "both"] = Field(
        "none", description="Instances to label: character boxes (class 'char'), word boxes "
        "(class 'word') or both, each with attributes.text. Character boxes need word_split: false "
        "and are not made for right-to-left text.")
    box_masks: bool = Field(False, description="Give each box instance its pixel mask (written to masks/).")
    min_contrast: float = Field(
        0.0, ge=0, le=255, description="Skip a sample (reason low_contrast) when the mean gray of "
        "the text differs from the background around it by less than this. 0: never.")

    @model_validator(mode="after")
    def _checks(self):
        if self.background == "image" and not self.background_images:
            raise ValueError("background: image needs 'background_images' (image files or folders)")
        top, left, bottom, right = self.margins
        if min(self.margins) < 0:
            raise ValueError("margins must not be negative")
        across = top + bottom if self.orientation == "horizontal" else left + right
        if across >= self.height - 4:
            raise ValueError(f"margins ({across} px across the line) leave no room in height {self.height}")
        if self.boxes in ("char", "both") and self.word_split:
            raise ValueError("character boxes need word_split: false (whole words are drawn at once)")
        return self

    def count(self) -> int | None:
        """Without a recipe `count`: every line once when the only text source is a file read
        in order, else 1000."""
        only = self.texts[0] if len(self.texts) == 1 else None
        if isinstance(only, LinesTexts) and only.order == "sequential":
            return len(read_lines(only.path, key="source.texts.0.path"))
        return 1000

    def provides(self) -> frozenset[str]:
        return frozenset({"text"})


class SceneTextConfig(_RenderOptions):
    """Words pasted onto background photos, labeled with word quads for text detection."""

    type: Literal["scene_text"] = Field(description="Words pasted onto background images.")
    implementation: ClassVar[str] = "imgsynth.ocr.scene_text:SceneTextSource"
    backgrounds: list[InputPath] = Field(
        min_length=1, description="Background image files or folders; one is drawn per sample.")
    max_side: int | None = Field(
        None, ge=32, description="Scale backgrounds down so their longer side is at most this.")
    words: Range(int, ge=0, le=100) = Field(
        (1, 5), description="Range [lo, hi] of words per image. Deprecated, still read: "
        "min_words / max_words.")
    text_height: Range(int, ge=6, le=1024) = Field(
        (16, 48), description="Range [lo, hi] of word heights in pixels. Deprecated, still read: "
        "min_text_height / max_text_height.")
    rotation: Range(float, ge=-90, le=90) = Field(
        (-15.0, 15.0), description="Range [lo, hi] of word rotation in degrees (uniform). "
        "Deprecated, still read: max_rotation: m, read as [-m, m].")
    opacity: float = Field(1.0, gt=0, le=1, description="Opacity of the pasted text.")
    placement_attempts: int = Field(
        30, ge=1, le=1000, description="Tries to place a word without overlapping earlier ones "
        "before it is left out. Deprecated, still read: placement_tries.")

    @model_validator(mode="before")
    @classmethod
    def _old_spellings(cls, data: Any) -> Any:
        data = joined_range(data, "min_words", "max_words", "words", (1, 5))
        data = joined_range(data, "min_text_height", "max_text_height", "text_height", (16, 48))
        data = symmetric_range(data, "max_rotation", "rotation")
        return renamed(data, "placement_tries", "placement_attempts")

    def classes(self) -> list[str] | None:
        return ["text"]

    def count(self) -> int | None:
        """Without a recipe `count`: 100 images."""
        return 100

    def provides(self) -> frozenset[str]:
        return frozenset()  # word texts live on the objects (icdar, mmocr), not the sample
