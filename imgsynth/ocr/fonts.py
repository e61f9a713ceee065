"""Font files: finding them, checking glyph coverage, choosing one that covers a text.

A font that lacks a glyph draws a box (tofu) or nothing; an image of boxes with a
text label is a wrong training sample. So every text is checked against the font's
character map (fontTools cmap) before it is rendered.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np

from imgsynth.core.errors import InputError
from imgsynth.core.stage import SkipSample
from imgsynth.io.folders import files_in

FONT_SUFFIXES = (".ttf", ".otf")

# Characters that are layout, not ink: no glyph is needed for them.
_NO_GLYPH_NEEDED = frozenset(" \u200c\u200d\u200e\u200f")


def collect_font_files(paths: list[str], *, key: str) -> list[str]:
    """Font files named by `paths` (files, or folders searched recursively), sorted so
    that the choice of a font by index is the same on every machine."""
    found: list[str] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            files = sorted(str(p) for p in files_in(path, FONT_SUFFIXES))  # as strings, as ever
            if not files:
                raise InputError("no .ttf/.otf font files in this folder", file=str(path),
                                 fix=f"put fonts into it or change '{key}'")
            found.extend(files)
        elif path.is_file():
            if path.suffix.lower() not in FONT_SUFFIXES:
                raise InputError("not a .ttf/.otf font file", file=str(path),
                                 fix=f"list font files or folders under '{key}'")
            found.append(str(path))
        else:
            raise InputError("font file or folder not found", file=str(path),
                             fix=f"correct the path under '{key}' (relative paths are read "
                                 "from the directory you run imgsynth in)")
    return list(dict.fromkeys(found))  # a font named twice is drawn no more often


@functools.lru_cache(maxsize=None)
def font_codepoints(path: str) -> frozenset[int]:
    """Every code point the font maps to a glyph (all cmap subtables), cached per file."""
    from fontTools.ttLib import TTFont, TTLibError

    try:
        with TTFont(path, lazy=True) as font:
            cmap = font["cmap"]
            return frozenset(cp for table in cmap.tables for cp in table.cmap)
    except (TTLibError, KeyError, OSError) as exc:
        raise InputError(f"cannot read the font's character map: {exc}", file=path,
                         fix="replace the font file or remove it from the recipe") from None


def missing_characters(path: str, text: str) -> str:
    """The characters of `text` the font has no glyph for, in order, without repeats."""
    have = font_codepoints(path)
    missing = dict.fromkeys(ch for ch in text if ch not in _NO_GLYPH_NEEDED and ord(ch) not in have)
    return "".join(missing)


def choose_covering_font(fonts: list[str], text: str, rng: np.random.Generator) -> tuple[str, bool]:
    """A font drawn from `fonts` that covers `text`; if the drawn font lacks a glyph, another
    covering font is drawn instead (returned flag: True). No covering font: SkipSample."""
    first = fonts[int(rng.integers(len(fonts)))]
    if not missing_characters(first, text):
        return first, False
    covering = [f for f in fonts if not missing_characters(f, text)]
    if not covering:
        raise SkipSample("no_font_covers_text",
                         f"missing {missing_characters(first, text)!r} in {os.path.basename(first)}"
                         f" and every other font")
    return covering[int(rng.integers(len(covering)))], True
