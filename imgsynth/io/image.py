"""The one image decoder and encoder of the package.

decode_image applies EXIF orientation, converts grayscale/palette/CMYK/16-bit to
8-bit RGB (or keeps alpha when asked), and names the file in every error.

Pixel limit: decode_image and image_size refuse an image of more than
`max_image_pixels()` pixels (width x height, default 8192 x 8192 = 67,108,864), read from
its header before anything is decoded, with an InputError naming the file, its size and
the limit. Change it with `set_max_image_pixels(n)` (this process) or the environment
variable IMGSYNTH_MAX_IMAGE_PIXELS (inherited by worker processes); 0 means no limit. Pillow's
own decompression-bomb limit (PIL.Image.MAX_IMAGE_PIXELS) is set to the same value when
imgsynth opens an image, so it still guards what a header does not show (e.g. GIF frames
larger than the canvas, images embedded in ICO files) and never refuses an image that
imgsynth's limit allows.
"""

from __future__ import annotations

import contextvars
import io
import os
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from imgsynth.core.errors import InputError, RecipeError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
MAX_IMAGE_PIXELS_ENV = "IMGSYNTH_MAX_IMAGE_PIXELS"
DEFAULT_MAX_IMAGE_PIXELS = 8192 * 8192

_UNSET = object()
_max_pixels_set: object = _UNSET  # set_max_image_pixels' value; _UNSET: environment/default
_pillow_limit_lock = threading.Lock()


def is_image_file(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def max_image_pixels() -> int | None:
    """The largest image (width x height pixels) imgsynth decodes; None: no limit.

    Inside `pixel_limit(n)`, n; else the value given to set_max_image_pixels, else
    IMGSYNTH_MAX_IMAGE_PIXELS, else 8192 x 8192."""
    scoped = _scoped_limit.get()
    if scoped is not _UNSET:
        return scoped  # type: ignore[return-value]
    if _max_pixels_set is not _UNSET:
        return _max_pixels_set  # type: ignore[return-value]
    text = os.environ.get(MAX_IMAGE_PIXELS_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_IMAGE_PIXELS
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        value = -1
    if value < 0:
        raise RecipeError(f"environment variable {MAX_IMAGE_PIXELS_ENV}={text!r} is not a "
                          "number of pixels",
                          fix=f"set it to a whole number, e.g. {4 * DEFAULT_MAX_IMAGE_PIXELS} "
                          "(0: no limit), or unset it for the default 8192 x 8192")
    return value or None


def set_max_image_pixels(pixels: int | None) -> None:
    """Set the pixel limit of this process: `pixels` > 0, or 0 for no limit; None goes back
    to IMGSYNTH_MAX_IMAGE_PIXELS or the default. Worker processes started later do not see
    it; they read the environment variable."""
    global _max_pixels_set
    if pixels is None:
        _max_pixels_set = _UNSET
        return
    if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 0:
        raise ValueError(f"the pixel limit is a whole number >= 0 (0: no limit), got {pixels!r}")
    _max_pixels_set = pixels or None


@contextmanager
def pixel_limit(pixels: int | None) -> Iterator[None]:
    """The limit for the code inside the block only (this thread; a run's recipe value):
    `pixels` > 0, 0 for no limit, None to keep the process's. The process setting is left
    as it was, so running a recipe does not change what the caller decodes afterwards."""
    if pixels is None:
        yield
        return
    if isinstance(pixels, bool) or not isinstance(pixels, int) or pixels < 0:
        raise ValueError(f"the pixel limit is a whole number >= 0 (0: no limit), got {pixels!r}")
    token = _scoped_limit.set(pixels or None)
    try:
        yield
    finally:
        _scoped_limit.reset(token)


_scoped_limit: contextvars.ContextVar = contextvars.ContextVar("imgsynth_pixel_limit", default=_UNSET)


def decode_image(path: str | os.PathLike, *, mode: str = "RGB", data: bytes | None = None) -> np.ndarray:
    """Read an image file as HxWx3 (mode 'RGB'), HxWx4 ('RGBA') or HxW ('L') uint8.

    With `data`, decode those bytes instead (e.g. a tar shard member); `path` names them in errors.

    16-bit images are scaled to 8 bits (value >> 8 after normalising to the full
    range of the type), never clipped.
    """
    return _decode(Path(path), data, mode, None)[0]


def decode_image_reduced(path: str | os.PathLike, fit: tuple[int, int], *, mode: str = "RGB",
                         data: bytes | None = None) -> tuple[np.ndarray, tuple[int, int]]:
    """The image reduced by the largest whole factor that keeps it at least as large as it
    is when fitted into fit = (width, height) keeping its aspect ratio (never enlarged), and
    its full (width, height) as displayed.

    For previews of large images: a JPEG is scaled down in its decoder (DCT scaling by 1/2
    to 1/8), other formats are decoded and at once reduced by averaging blocks, before any
    conversion. Otherwise as decode_image; the pixel limit applies to the full size.
    """
    return _decode(Path(path), data, mode, fit)


def _decode(path: Path, data: bytes | None, mode: str,
            fit: tuple[int, int] | None) -> tuple[np.ndarray, tuple[int, int]]:
    from PIL import ImageOps

    data = _image_bytes(path, data)
    with _decoder_errors(path), _opened(io.BytesIO(data), path) as img:
        stored = img.size  # a JPEG draft below makes img.size smaller
        drafted = 1
        if fit is not None and img.format == "JPEG":  # a JPEG's EXIF precedes its pixels
            drafted = _jpeg_draft(img, _reduce_factor(_displayed_size(img, stored), fit))
        img.load()
        size = _displayed_size(img, stored)  # after load: a PNG's EXIF may follow its pixels
        if fit is not None:
            factor = _reduce_factor(size, fit) // drafted
            if factor > 1:
                img = _reducible(img).reduce(factor)
        return pil_to_array(ImageOps.exif_transpose(img), mode), size


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) after EXIF orientation, from the header (a PNG without EXIF before
    its pixel data is decoded to look for it after them, as decode_image does). An image
    over the pixel limit raises the same InputError as decode_image, before that."""
    path = Path(path)
    try:
        source = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise InputError("image file not found", file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read image: {exc}", file=str(path)) from None
    with source, _decoder_errors(path), _opened(source, path) as img:
        return _displayed_size(img, img.size)


def _displayed_size(img, stored: tuple[int, int]) -> tuple[int, int]:
    """The stored (width, height) after the image's EXIF orientation."""
    w, h = stored
    return (h, w) if img.getexif().get(0x0112, 1) in (5, 6, 7, 8) else (w, h)


def _reduce_factor(size: tuple[int, int], fit: tuple[int, int]) -> int:
    """The largest f with ceil(size / f) still at least the size fitted into `fit`."""
    scale = min(max(1, fit[0]) / max(1, size[0]), max(1, fit[1]) / max(1, size[1]))
    return 1 if scale >= 1 else max(1, int(1 / scale))


def _image_bytes(path: Path, data: bytes | None) -> bytes:
    try:
        data = path.read_bytes() if data is None else data
    except FileNotFoundError:
        raise InputError("image file not found", file=str(path)) from None
    except OSError as exc:
        raise InputError(f"cannot read image: {exc}", file=str(path)) from None
    if not data:
        raise InputError("image file is empty (0 bytes)", file=str(path),
                         fix="re-export or remove the file")
    return data


@contextmanager
def _decoder_errors(path: Path):
    """Whatever Pillow raises about a file's content becomes an InputError naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        yield
    except UnidentifiedImageError:
        raise InputError("not a readable image (corrupt or unknown format)", file=str(path),
                         fix="re-export the image as PNG or JPEG, or remove it") from None
    except Image.DecompressionBombError as exc:
        # Pillow's own guard, for what the header does not show (see the module docstring).
        raise InputError(f"part of the image is larger than the pixel limit allows ({exc})",
                         file=str(path), fix=_LIMIT_FIX) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InputError(f"corrupt image: {exc}", file=str(path),
                         fix="re-export the image or remove it") from None


_LIMIT_FIX = ("if the image is genuine, raise the limit: the recipe key max_image_pixels: N "
              f"(pixels, 0: no limit) for a run, {MAX_IMAGE_PIXELS_ENV}=N for any command, or "
              "imgsynth.io.image.set_max_image_pixels(N) in Python; otherwise remove the file")


@contextmanager
def _opened(source, path: Path):
    """The image opened from its header in `source` (a binary file object; nothing decoded
    yet), refused when over the limit."""
    from PIL import Image

    limit = max_image_pixels()
    Image.MAX_IMAGE_PIXELS = limit  # Pillow warns above its limit and refuses above twice it
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(source)
    except Image.DecompressionBombError:
        # Over twice the limit: Pillow refused before the size could be named.
        _check_pixels(_unchecked_size(source), limit, path)
        raise
    with img:
        _check_pixels(img.size, limit, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield img


def _check_pixels(size: tuple[int, int], limit: int | None, path: Path) -> None:
    width, height = size
    if limit is not None and width * height > limit:
        raise InputError(
            f"the image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{limit:,} pixels (a decompression bomb, or a genuinely huge image); it was not "
            "decoded", file=str(path), fix=_LIMIT_FIX)


def _unchecked_size(source) -> tuple[int, int]:
    """The header's size with Pillow's limit off: only to name the size of an image that
    Pillow refused (nothing is decoded). The lock keeps two such reads from restoring each
    other's value."""
    from PIL import Image

    with _pillow_limit_lock:
        saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
        try:
            source.seek(0)
            with Image.open(source) as img:
                return img.size
        finally:
            Image.MAX_IMAGE_PIXELS = saved


def _jpeg_draft(img, factor: int) -> int:
    """Let the JPEG decoder scale by the largest power of two (<= 8) dividing `factor`;
    returns the scale it will apply (1 when none)."""
    scale = min(8, factor & -factor)
    width, height = img.size
    if scale == 1 or width < scale or height < scale:
        return 1
    img.draft(img.mode, (width // scale, height // scale))  # picks exactly `scale` for these
    return scale if img.size != (width, height) else 1


def _reducible(img):
    """The image in a mode Image.reduce averages correctly (not palette indices or 16-bit)."""
    img = _eight_bit(img)
    if img.mode == "P":
        return img.convert("RGBA" if "transparency" in img.info else "RGB")
    if img.mode == "1":
        return img.convert("L")
    return img


def _eight_bit(img):
    """16-bit and float images as 8-bit 'L', with the scaling decode_image documents."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "I;16N"):
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        arr8 = np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8)
        return Image.fromarray(arr8, mode="L")
    if img.mode == "F":
        arr = np.asarray(img, dtype=np.float64)
        top = 1.0 if arr.max() <= 1.0 else 255.0
        return Image.fromarray(np.clip(np.round(arr / top * 255.0), 0, 255).astype(np.uint8), "L")
    return img


def pil_to_array(img, mode: str = "RGB") -> np.ndarray:
    """A PIL image (any mode: palette, CMYK, 16-bit, gray, alpha) as uint8 in `mode`
    (RGB, RGBA or L), with the conversions decode_image documents."""
    from PIL import Image

    img = _eight_bit(img)
    if mode == "RGBA":
        if img.mode == "P" and "transparency" in img.info:
            img = img.convert("RGBA")
        if img.mode in ("LA", "PA"):
            img = img.convert("RGBA")
        if img.mode != "RGBA":
            img = img.convert("RGB").convert("RGBA")
        return np.array(img, dtype=np.uint8)
    if mode == "L":
        return np.array(img.convert("L"), dtype=np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels have no defined colour: composite on black, stated here.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, rgba)
    return np.array(img.convert("RGB"), dtype=np.uint8)


def png_params(deflate: str) -> list[int]:
    """OpenCV PNG options. lz77: zlib level 3 with libpng's adaptive row filters. rle:
    zlib's run-length strategy with the Paeth filter on every row, measured on 640x480
    scenes and photos 2.0-2.3x faster to encode at -13% to +1% of the size (uint16 masks 2x
    faster, half the size), but 40-95% larger on rendered text lines, whose repeated glyphs
    LZ77 matches (see docs/architecture.md)."""
    import cv2

    if deflate == "lz77":
        return [cv2.IMWRITE_PNG_COMPRESSION, 3]
    if deflate != "rle":
        raise ValueError(f"unknown PNG deflate strategy '{deflate}' (rle, lz77)")
    params = [cv2.IMWRITE_PNG_COMPRESSION, 3, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV >= 4.11
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_PAETH]
    return params


def encode_image(image: np.ndarray, fmt: str = "png", quality: int = 95, *,
                 png_deflate: str = "lz77") -> bytes:
    """Encode an HxW, HxWx3 (RGB) or HxWx4 (RGBA) uint8 array. Deterministic bytes.
    `png_deflate`: see png_params."""
    import cv2

    fmt = fmt.lower().lstrip(".")
    arr = np.ascontiguousarray(image)
    if arr.dtype != np.uint8 and arr.dtype != np.uint16:
        raise TypeError(f"encode_image expects uint8 or uint16, got {arr.dtype}")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if arr.ndim == 3 and arr.shape[2] == 3:
        arr = arr[:, :, ::-1]
    elif arr.ndim == 3 and arr.shape[2] == 4:
        arr = arr[:, :, [2, 1, 0, 3]]
    if fmt == "png":
        params = png_params(png_deflate)
    elif fmt in ("jpg", "jpeg"):
        fmt = "jpg"
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif fmt == "webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    else:
        raise ValueError(f"unsupported image format '{fmt}' (png, jpg, webp)")
    ok, buf = cv2.imencode("." + fmt, np.ascontiguousarray(arr), params)
    if not ok:
        raise RuntimeError(f"OpenCV could not encode a {arr.shape} image as {fmt}")
    return buf.tobytes()
