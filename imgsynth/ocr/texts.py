"""Where the texts come from: files of lines, word n-grams, random strings, templates;
and, for each text, a font that can draw it (TextPicker, used by both OCR sources).

Every text is returned in logical order, Unicode NFC, exactly as it will be labeled.
Right-to-left scripts are reordered for drawing elsewhere (imgsynth.ocr.render); the
label never is.
"""

from __future__ import annotations

import calendar
import string
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgsynth.core.errors import InputError
from imgsynth.core.stage import SkipSample
from imgsynth.ocr import render
from imgsynth.ocr.config import (TEMPLATE_PLACEHOLDERS, CharsetTexts, LinesTexts, TemplateTexts,
                                 WordsTexts, read_lines)
from imgsynth.ocr.fonts import choose_covering_font, collect_font_files

# Fixed English names: calendar.month_abbr follows the process locale, which would make
# the same seed give different labels on different machines.
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_DATE_FORMATS = ("{y:04d}-{m:02d}-{d:02d}", "{d:02d}/{m:02d}/{y:04d}", "{m:02d}/{d:02d}/{y:04d}",
                 "{d:02d}.{m:02d}.{y:04d}", "{d} {mon} {y:04d}")
_UPPER = string.ascii_uppercase
_DIGITS = string.digits


def to_label(text: str) -> str:
    """The label form of a text: Unicode NFC, logical order, nothing else changed."""
    return unicodedata.normalize("NFC", text)


def trdg_dictionary_path(language: str) -> str:
    import trdg

    return str(Path(trdg.__file__).parent / "dicts" / f"{language}.txt")


# Template placeholder generators: each draws only from the Generator it is given.

def random_date(rng: np.random.Generator) -> str:
    y = int(rng.integers(1970, 2036))
    m = int(rng.integers(1, 13))
    d = int(rng.integers(1, calendar.monthrange(y, m)[1] + 1))
    fmt = _DATE_FORMATS[int(rng.integers(len(_DATE_FORMATS)))]
    return fmt.format(y=y, m=m, d=d, mon=_MONTHS[m - 1])


def random_time(rng: np.random.Generator) -> str:
    return f"{int(rng.integers(24)):02d}:{int(rng.integers(60)):02d}"


def random_amount(rng: np.random.Generator) -> str:
    value = float(10 ** rng.uniform(-1, 6))  # cents to millions, log-uniform
    grouped = bool(rng.integers(2))
    return f"{value:,.2f}" if grouped else f"{value:.2f}"


def random_int(rng: np.random.Generator) -> str:
    return str(int(10 ** rng.uniform(0, 5)))


def random_digits(rng: np.random.Generator) -> str:
    return random_string(_DIGITS, int(rng.integers(4, 11)), rng)


def random_id(rng: np.random.Generator) -> str:
    prefix = random_string(_UPPER, int(rng.integers(2, 4)), rng)
    return f"{prefix}-{random_string(_DIGITS, int(rng.integers(4, 9)), rng)}"


def random_plate(rng: np.random.Generator) -> str:
    if rng.integers(2):
        return f"{random_string(_UPPER, 3, rng)} {random_string(_DIGITS, 4, rng)}"
    return f"{random_string(_UPPER, 2, rng)}-{random_string(_DIGITS, 3, rng)}-{random_string(_UPPER, 2, rng)}"


PLACEHOLDERS = {"date": random_date, "time": random_time, "amount": random_amount,
                "int": random_int, "digits": random_digits, "id": random_id, "plate": random_plate}
assert tuple(PLACEHOLDERS) == TEMPLATE_PLACEHOLDERS


def random_string(charset: str, length: int, rng: np.random.Generator) -> str:
    return "".join(charset[i] for i in rng.integers(len(charset), size=length))


def fill_template(template: str, rng: np.random.Generator) -> str:
    """Replace each placeholder with a fresh random value ({{ and }} are literal braces)."""
    out = []
    for literal, name, _, _ in string.Formatter().parse(template):
        out.append(literal)
        if name is not None:
            out.append(PLACEHOLDERS[name](rng))
    return "".join(out)


def word_ngram(words: list[str], n: int, separator: str, rng: np.random.Generator) -> str:
    return separator.join(words[i] for i in rng.integers(len(words), size=n))


@dataclass
class TextSource:
    """One configured text source; `text(index, rng)` returns the text before case/NFC."""

    config: LinesTexts | WordsTexts | CharsetTexts | TemplateTexts
    items: list[str]  # lines, words or templates

    def text(self, index: int, rng: np.random.Generator) -> str:
        cfg = self.config
        if isinstance(cfg, LinesTexts):
            pick = index if cfg.order == "sequential" else int(rng.integers(len(self.items)))
            return self.items[pick % len(self.items)]
        if isinstance(cfg, WordsTexts):
            n = int(rng.integers(cfg.words[0], cfg.words[1] + 1))
            return word_ngram(self.items, n, cfg.separator, rng)
        if isinstance(cfg, CharsetTexts):
            return random_string(cfg.charset, int(rng.integers(cfg.length[0], cfg.length[1] + 1)), rng)
        return fill_template(self.items[int(rng.integers(len(self.items)))], rng)


def build_text_source(cfg, key: str) -> TextSource:
    if isinstance(cfg, LinesTexts):
        return TextSource(cfg, read_lines(cfg.path, key=f"{key}.path"))
    if isinstance(cfg, WordsTexts):
        if cfg.dictionary is not None:
            path = trdg_dictionary_path(cfg.dictionary)
            if not Path(path).is_file():
                raise InputError(f"trdg has no bundled word list '{cfg.dictionary}'", file=path,
                                 fix=f"use a language code trdg ships (e.g. en, fr, de) or 'path' under '{key}'")
            return TextSource(cfg, read_lines(path, key=f"{key}.dictionary"))
        return TextSource(cfg, read_lines(cfg.path, key=f"{key}.path"))
    if isinstance(cfg, CharsetTexts):
        return TextSource(cfg, [])
    return TextSource(cfg, list(cfg.templates))


class MixedTexts:
    """Draws a text source by weight, then a text from it; returns (label, source position)."""

    def __init__(self, configs: list, key: str = "source.texts"):
        self.sources = [build_text_source(cfg, f"{key}.{i}") for i, cfg in enumerate(configs)]
        weights = np.array([cfg.weight for cfg in configs], dtype=np.float64)
        self.probabilities = weights / weights.sum()

    def pick(self, index: int, rng: np.random.Generator) -> tuple[str, int]:
        which = 0 if len(self.sources) == 1 else int(rng.choice(len(self.sources), p=self.probabilities))
        source = self.sources[which]
        text = source.text(index, rng)
        if source.config.case == "upper":
            text = text.upper()
        elif source.config.case == "lower":
            text = text.lower()
        return to_label(text), which


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


class TextPicker:
    """What both OCR sources draw from: the mixed texts, and the fonts of each text source."""

    def __init__(self, cfg):
        self.max_chars = cfg.max_chars
        self.texts = MixedTexts(cfg.texts)
        fonts = collect_font_files(cfg.fonts, key="source.fonts")
        self.fonts_per_source = [
            collect_font_files(t.fonts, key=f"source.texts.{i}.fonts") if t.fonts else fonts
            for i, t in enumerate(cfg.texts)]

    def pick(self, index: int, rng: np.random.Generator) -> tuple[str, str, str, bool]:
        """(label, text to draw, font file, font was rerouted)."""
        label, which = self.texts.pick(index, rng)
        check_renderable(label, self.max_chars)
        drawn = render.visual_text(label)
        font, rerouted = choose_covering_font(self.fonts_per_source[which], drawn, rng)
        return label, drawn, font, rerouted
