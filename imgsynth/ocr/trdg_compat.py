"""Make trdg 1.8.0 usable on current Pillow, in every worker process.

trdg calls `FreeTypeFont.getsize`, removed in Pillow 10, through
`trdg.utils.get_text_height` and the copy `trdg.computer_text_generator` imported.
Both are replaced by a getbbox-based version. The patch is applied by `install()`,
which every stage calls inside `build()`: spawned workers import trdg afresh and do
not inherit a patch made in the parent.

trdg loads the font file and measures every character again for every image; here
fonts are loaded once per (file, size) and character widths/heights are memoised per
font object, which is most of the speed-up over trdg's own CLI.

trdg also prints "Missing modules for handwritten text generation." on import (its
handwritten mode needs TensorFlow 1 and is dead); that print is silenced here.
"""

from __future__ import annotations

import contextlib
import functools
import io
import types

from imgsynth.core.errors import InputError

_installed = False
_cached = False

# trdg 1.8.0 pins versions that would replace Pillow and OpenCV, so it is installed without
# them; the modules it imports come with imgsynth's `ocr` extra.
TRDG_INSTALL = "pip install 'imgsynth[ocr]' && pip install --no-deps trdg==1.8.0"


def text_height(image_font, text: str) -> int:
    """Pillow<10 `getsize(text)[1]`: the bottom of the ink box measured from the top of
    the line. A string without ink (a space) measures one em: it then never sets the
    height of a horizontal line, and a vertical line keeps room for its spaces."""
    _, top, _, bottom = image_font.getbbox(text)
    return int(bottom) if bottom > top else int(image_font.size)


def install() -> None:
    """Import trdg with the getsize shim applied (idempotent, once per process)."""
    global _installed
    if _installed:
        return
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            import trdg.data_generator  # noqa: F401 - prints the handwritten message
        import fontTools  # noqa: F401 - the OCR sources read fonts with it
    except ModuleNotFoundError as exc:
        what = "trdg is not installed" if (exc.name or "").split(".")[0] == "trdg" else (
            f"the module '{exc.name}' (of the OCR extra) is not installed")
        raise InputError(f"text rendering needs trdg 1.8.0 and the OCR extra's modules: {what}",
                         fix=TRDG_INSTALL) from None
    import trdg.computer_text_generator
    import trdg.utils

    trdg.utils.get_text_height = text_height
    trdg.computer_text_generator.get_text_height = text_height
    _installed = True


def install_caches() -> None:
    """Memoise trdg's font loading and character measuring (after `install()`).

    Separate from `install()` so that a benchmark can time trdg as shipped first."""
    global _cached
    install()
    if _cached:
        return
    import trdg.computer_text_generator

    ctg = trdg.computer_text_generator
    ctg.get_text_height = functools.lru_cache(maxsize=65536)(text_height)
    ctg._compute_character_width = functools.lru_cache(maxsize=65536)(ctg._compute_character_width)
    # computer_text_generator calls ImageFont.truetype(font=path, size=n) per image.
    ctg.ImageFont = types.SimpleNamespace(truetype=lambda font, size: load_font(font, size))
    _cached = True


@functools.lru_cache(maxsize=256)
def load_font(font: str, size: int):
    """A font object, loaded once per (file, size) in each process."""
    return _glyph_cached_font_class()(font=font, size=size)


@functools.lru_cache(maxsize=1)
def _glyph_cached_font_class():
    from PIL import ImageFont

    class GlyphCachedFont(ImageFont.FreeTypeFont):
        """A FreeType font that keeps the bitmap of every glyph it has rendered.

        trdg draws a line one character at a time, twice (image and mask), so the same
        few dozen glyphs are rasterised over and over; rasterising was half of its time.
        A coverage mask (mode "L"/"1") does not depend on the ink colour, so the cache
        key leaves the colour out; colour glyphs (mode "RGBA") are not cached."""

        _glyph_limit = 8192

        def getmask2(self, text, mode="", direction=None, features=None, language=None,
                     stroke_width=0, anchor=None, ink=0, start=None, *args, **kwargs):
            if mode == "RGBA" or args:
                return super().getmask2(text, mode, direction, features, language, stroke_width,
                                        anchor, ink, start, *args, **kwargs)
            key = (text, mode, direction, tuple(features or ()), language, stroke_width, anchor,
                   start, tuple(sorted(kwargs.items())))
            cache = self.__dict__.setdefault("_glyphs", {})
            found = cache.get(key)
            if found is None:
                if len(cache) >= self._glyph_limit:
                    cache.clear()
                found = cache[key] = super().getmask2(text, mode, direction, features, language,
                                                      stroke_width, anchor, ink, start, **kwargs)
            return found

    return GlyphCachedFont
