"""The OCR sources: text-line images (`ocr`) and words on photos (`scene_text`).

Both are built once per worker (fonts, word lists and trdg's patches are loaded in
`__init__`) and make one sample per index from that sample's Generator alone.
"""

from __future__ import annotations

import math
import os
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

from imgsynth.core.errors import InputError
from imgsynth.core.masks import tight_bbox
from imgsynth.core.rng import derived_int_seed
from imgsynth.core.sample import Instance, Sample
from imgsynth.compose.zbuffer import silhouette
from imgsynth.core.stage import SkipSample
from imgsynth.io.image import decode_image, is_image_file
from imgsynth.ocr import render, trdg_compat
from imgsynth.ocr.config import OcrConfig, SceneTextConfig
from imgsynth.ocr.fonts import choose_covering_font, collect_font_files
from imgsynth.ocr.sources import MixedTexts

_DISTORTIONS = {"none": 0, "sine": 1, "cosine": 2, "random": 3}
_DISTORTION_AXES = {"vertical": 0, "horizontal": 1, "both": 2}


def collect_image_files(paths: list[str], *, key: str) -> list[str]:
    """Image files named by `paths` (files, or folders searched recursively), sorted."""
    found: list[str] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files = sorted(str(p) for p in path.rglob("*") if is_image_file(p))
            if not files:
                raise InputError("no images in this folder", file=str(path), fix=f"add images or change '{key}'")
            found.extend(files)
        elif path.is_file():
            found.append(str(path))
        else:
            raise InputError("image file or folder not found", file=str(path), fix=f"correct '{key}'")
    return list(dict.fromkeys(found))


@lru_cache(maxsize=16)
def load_background(path: str) -> np.ndarray:
    """Decoded background image, kept for the next samples of this worker."""
    return decode_image(path)


def check_renderable(label: str, max_chars: int) -> None:
    """Leave out texts no image can show exactly: control characters and line/paragraph
    separators (a tab, newline, U+2028 or NUL has no place in one drawn line), texts
    without any visible character, over-long texts."""
    if len(label) > max_chars:
        raise SkipSample("text_too_long", f"{len(label)} characters > max_chars {max_chars}")
    controls = [ch for ch in label if unicodedata.category(ch) in ("Cc", "Cs", "Cn", "Zl", "Zp")]
    if controls:
        raise SkipSample("control_character", f"{''.join(dict.fromkeys(controls))!r} cannot be drawn")
    if not label.strip():
        raise SkipSample("empty_text", repr(label))


class _TextRenderer:
    """What both sources share: texts, fonts per text source, trdg set up for this process."""

    def __init__(self, cfg: OcrConfig | SceneTextConfig):
        trdg_compat.install_caches()
        self.cfg = cfg
        self.texts = MixedTexts(cfg.texts)
        fonts = collect_font_files(cfg.fonts, key="source.fonts")
        self.fonts_per_source = [
            collect_font_files(t.fonts, key=f"source.texts.{i}.fonts") if t.fonts else fonts
            for i, t in enumerate(cfg.texts)]

    def pick_text(self, index: int, rng: np.random.Generator) -> tuple[str, str, str, bool]:
        """(label, text to draw, font file, font was rerouted)."""
        label, which = self.texts.pick(index, rng)
        check_renderable(label, self.cfg.max_chars)
        drawn = render.visual_text(label)
        font, rerouted = choose_covering_font(self.fonts_per_source[which], drawn, rng)
        return label, drawn, font, rerouted


class OcrLineSource(_TextRenderer):
    """One text line per sample: image, exact label, optional char/word boxes."""

    def __init__(self, cfg: OcrConfig):
        super().__init__(cfg)
        self.style = render.LineStyle(
            height=cfg.height, font_size=cfg.font_size or cfg.height,
            vertical=cfg.orientation == "vertical", text_color=cfg.text_color,
            stroke_width=cfg.stroke_width, stroke_fill=cfg.stroke_fill,
            character_spacing=cfg.character_spacing, space_width=cfg.space_width,
            word_split=cfg.word_split, fit=cfg.fit, margins=tuple(cfg.margins),
            min_width=cfg.width or 0, alignment=cfg.alignment,
            distortion=_DISTORTIONS[cfg.distortion],
            distortion_orientation=_DISTORTION_AXES[cfg.distortion_orientation])
        self.backgrounds = (collect_image_files(cfg.background_images, key="source.background_images")
                            if cfg.background == "image" else [])

    def __len__(self) -> int | None:
        return None  # texts are drawn per index: any count

    def generate(self, index: int, rng: np.random.Generator) -> Sample:
        cfg, style = self.cfg, self.style
        # 1. text and a font that has every glyph of it
        label, drawn, font, rerouted = self.pick_text(index, rng)
        # 2. draw, skew and distort with trdg (its global random seeded for this sample)
        angle = float(rng.uniform(-cfg.skew_angle, cfg.skew_angle)) if cfg.random_skew else cfg.skew_angle
        with render.seeded_global_random(derived_int_seed(rng)):
            text_img, mask = render.draw_text_pieces(drawn, font, style, angle)
        text_img, mask = render.scale_to_line(text_img, mask, style)
        text_w, text_h = text_img.size
        # 3. background, and the text placed on it
        canvas_w, canvas_h = render.line_canvas_size(text_w, text_h, style)
        image, background_file = self._background(canvas_h, canvas_w, rng)
        x, y = render.place_text(text_w, canvas_w, style)
        render.paste_text(image, np.asarray(text_img), x, y)
        codes = np.zeros((canvas_h, canvas_w), dtype=np.int32)
        codes[y:y + text_h, x:x + text_w] = render.decode_piece_codes(np.asarray(mask))
        if cfg.min_contrast and render.text_contrast(image, codes > 0, (x, y, text_w, text_h)) < cfg.min_contrast:
            raise SkipSample("low_contrast", f"text and background differ by less than {cfg.min_contrast}")
        # 4. blur and colour mode
        radius = float(rng.uniform(0, cfg.blur)) if cfg.random_blur else cfg.blur
        if radius > 0:
            image = render.gaussian_blur(image, radius)
        if cfg.image_mode == "L":
            image = np.asarray(np.rint(image @ np.array([0.299, 0.587, 0.114])), dtype=np.uint8)[:, :, None]
        meta = {"font": os.path.basename(font), "font_rerouted": rerouted}
        instances = self._instances(label, drawn, codes, meta)
        return Sample(index=index, image=np.ascontiguousarray(image), text=label, instances=instances,
                      source_files=[font] + ([background_file] if background_file else []), meta=meta)

    def _background(self, height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, str | None]:
        kind = self.cfg.background
        if kind == "gaussian_noise":
            return render.gaussian_noise_background(height, width, rng), None
        if kind == "plain":
            return render.plain_background(height, width), None
        if kind == "quasicrystal":
            return render.quasicrystal_background(height, width, rng), None
        path = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        return render.crop_background(load_background(path), height, width, rng), path

    def _instances(self, label: str, drawn: str, codes: np.ndarray, meta: dict) -> list[Instance]:
        want = self.cfg.boxes
        if want == "none":
            return []
        owner, drawn_words = render.pieces_to_words(drawn, self.cfg.word_split)
        instances = []
        if want in ("char", "both"):
            if render.has_rtl(label):
                # drawn characters are joined presentation forms in visual order, not the label's
                meta["char_boxes_omitted"] = "right_to_left"
            else:
                boxes = render.piece_boxes(codes, [i for i, ch in enumerate(drawn) if ch != " "])
                instances += [self._instance("char", box, codes == piece + 1, drawn[piece])
                              for piece, box in boxes.items()]
        if want in ("word", "both"):
            words = render.logical_words_for(drawn_words, label)
            if words is None:
                meta["word_boxes_omitted"] = "mixed_direction"
            else:
                for number, word in enumerate(words):
                    ink = np.isin(codes, [p + 1 for p, o in enumerate(owner) if o == number])
                    box = tight_bbox(ink)
                    if box is not None:
                        instances.append(self._instance("word", box, ink, word))
        return instances

    def _instance(self, class_name: str, box, ink: np.ndarray, text: str) -> Instance:
        return Instance(class_name=class_name, bbox_xyxy=box, mask=ink if self.cfg.box_masks else None,
                        attributes={"text": text})


class SceneTextSource(_TextRenderer):
    """Background photos with words pasted on them, labeled by word quads (class 'text')."""

    def __init__(self, cfg: SceneTextConfig):
        super().__init__(cfg)
        self.backgrounds = collect_image_files(cfg.backgrounds, key="source.backgrounds")

    def __len__(self) -> int | None:
        return None

    def generate(self, index: int, rng: np.random.Generator) -> Sample:
        cfg = self.cfg
        path = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        image = self._scaled(load_background(path)).copy()
        height, width = image.shape[:2]
        occupied = np.zeros((height, width), dtype=bool)
        instances, fonts = [], []
        for k in range(int(rng.integers(cfg.min_words, cfg.max_words + 1))):
            word = self._word(index * cfg.max_words + k, rng)
            if word is None:
                continue
            label, rgba, font = word
            placed = place_word(rgba, float(rng.uniform(-cfg.max_rotation, cfg.max_rotation)),
                                occupied, rng, cfg.placement_tries)
            if placed is None:
                continue
            warped, quad, x, y = placed
            ink = np.zeros((height, width), dtype=bool)
            # the compositing stage's silhouette rule (before opacity: a faint word is still a word)
            ink[y:y + warped.shape[0], x:x + warped.shape[1]] = silhouette(warped[:, :, 3])
            box = tight_bbox(ink)
            if box is None:
                continue  # strokes too thin to show at this size
            if cfg.opacity < 1:
                warped[:, :, 3] = np.rint(warped[:, :, 3] * cfg.opacity).astype(np.uint8)
            render.paste_text(image, warped, x, y)
            occupied |= quad_mask(quad, height, width)
            instances.append(Instance(class_name="text", bbox_xyxy=box, mask=ink,
                                      polygons=[quad], attributes={"text": label}))
            fonts.append(os.path.basename(font))
        return Sample(index=index, image=image, instances=instances, source_files=[path],
                      meta={"fonts": fonts})

    def _scaled(self, image: np.ndarray) -> np.ndarray:
        side = self.cfg.max_side
        if side is None or max(image.shape[:2]) <= side:
            return image
        import cv2

        scale = side / max(image.shape[:2])
        size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))
        return cv2.resize(image, size, interpolation=cv2.INTER_AREA)

    def _word(self, index: int, rng: np.random.Generator):
        """(label, tight RGBA image of the drawn word, font), or None when the text is left out."""
        cfg = self.cfg
        try:
            label, drawn, font, _ = self.pick_text(index, rng)
        except SkipSample:
            return None  # one word less on this image; the image itself is still right
        size = int(rng.integers(cfg.min_text_height, cfg.max_text_height + 1))
        style = render.LineStyle(
            height=size, font_size=size, vertical=False, text_color=cfg.text_color,
            stroke_width=cfg.stroke_width, stroke_fill=cfg.stroke_fill,
            character_spacing=cfg.character_spacing, space_width=cfg.space_width,
            word_split=cfg.word_split, fit=True, margins=(0, 0, 0, 0), min_width=0,
            alignment="left", distortion=0, distortion_orientation=0)
        with render.seeded_global_random(derived_int_seed(rng)):
            text_img, _ = render.draw_text_pieces(drawn, font, style, 0.0)
        return label, np.asarray(text_img), font


def rotated_quad(width: int, height: int, angle: float) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Affine matrix rotating a width x height image by `angle` degrees (counter-clockwise)
    into a canvas that holds it, the rotated corners (TL, TR, BR, BL of the text, so the
    first point is the text's top-left), and the canvas size."""
    import cv2

    matrix = cv2.getRotationMatrix2D((width / 2, height / 2), angle, 1.0)
    corners = np.array([[0, 0], [width, 0], [width, height], [0, height]], dtype=np.float64)
    rotated = corners @ matrix[:, :2].T + matrix[:, 2]
    low = np.floor(rotated.min(axis=0))
    matrix[:, 2] -= low
    rotated -= low
    canvas_w, canvas_h = (np.ceil(rotated.max(axis=0))).astype(int)
    return matrix, rotated, int(canvas_w), int(canvas_h)


def place_word(rgba: np.ndarray, angle: float, occupied: np.ndarray, rng: np.random.Generator,
               tries: int):
    """Rotate a word and find a spot where its quad overlaps no earlier word.
    Returns (rotated RGBA, quad in image coordinates, x, y) or None."""
    import cv2

    height, width = occupied.shape
    matrix, quad, canvas_w, canvas_h = rotated_quad(rgba.shape[1], rgba.shape[0], angle)
    if canvas_w > width or canvas_h > height:
        return None
    warped = cv2.warpAffine(rgba, matrix, (canvas_w, canvas_h), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0, 0))
    for _ in range(tries):
        x = int(rng.integers(width - canvas_w + 1))
        y = int(rng.integers(height - canvas_h + 1))
        placed = quad + (x, y)
        if not (quad_mask(placed, height, width) & occupied).any():
            return warped, placed, x, y
    return None


def quad_mask(quad: np.ndarray, height: int, width: int) -> np.ndarray:
    """Pixels inside a quad, used to keep words apart."""
    import cv2

    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.fillConvexPoly(canvas, np.round(quad).astype(np.int32), 1)
    return canvas.astype(bool)
