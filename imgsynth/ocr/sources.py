"""Where the texts come from: files of lines, word n-grams, random strings, templates.

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
from imgsynth.ocr.config import (TEMPLATE_PLACEHOLDERS, CharsetTexts, LinesTexts, TemplateTexts,
                                 WordsTexts)

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


def read_lines(path: str, *, key: str) -> list[str]:
    """Non-empty lines of a UTF-8 file, stripped of surrounding whitespace (and "\r")."""
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
            n = int(rng.integers(cfg.min_words, cfg.max_words + 1))
            return word_ngram(self.items, n, cfg.separator, rng)
        if isinstance(cfg, CharsetTexts):
            return random_string(cfg.charset, int(rng.integers(cfg.min_length, cfg.max_length + 1)), rng)
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
