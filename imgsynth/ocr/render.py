"""Rendering kernels: a text line through trdg, backgrounds, and boxes from trdg's masks.

The steps of `render_line` follow trdg's `FakeTextDataGenerator.generate` (draw,
skew, distort, scale, background, place, blur) and call trdg's own text drawing
and distortion, with these differences, each for a labeling or speed reason:
- trdg's global `random` is seeded from the sample's Generator inside the call, and
  its state restored afterwards, so a sample does not depend on the worker;
- backgrounds are drawn with numpy from the sample's Generator (trdg's quasicrystal
  is a per-pixel Python loop; its noise uses OpenCV's global RNG);
- character boxes are read from trdg's colour-coded mask *before* blurring (trdg
  blurs the mask too, which mixes the codes);
- nothing is dropped silently and text is never cut by a fixed width.
"""

from __future__ import annotations

import contextlib
import math
import random
import unicodedata
from dataclasses import dataclass

import numpy as np

from imgsynth.core.masks import tight_bbox

# trdg colours piece i of a line (a character, or a word with word_split) in its mask as
# ((i + 1) // 255**2, (i + 1) // 255, (i + 1) % 255). Below 255**2 pieces this decodes
# as G * 255 + B; the recipe caps texts far lower (max_chars <= 20000).
_CODE_WEIGHTS = np.array([0, 255, 1], dtype=np.int32)


@contextlib.contextmanager
def seeded_global_random(seed: int):
    """Seed python's global `random` (which trdg uses) for one call, then restore it."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def has_rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text)


def visual_text(text: str) -> str:
    """What trdg must draw, left to right, for a text in logical order: Arabic letters
    in their joined presentation forms and right-to-left runs reversed. Only used for
    drawing; the label keeps the logical text."""
    if not has_rtl(text):
        return text
    from arabic_reshaper import reshape
    from bidi.algorithm import get_display

    return get_display(reshape(text))


def pieces_to_words(drawn: str, word_split: bool) -> tuple[list[int | None], list[str]]:
    """For each piece trdg draws (a character, or with word_split a word or a space), the
    number of the word it belongs to (None for spaces), and the words. Words are what
    trdg separates with ' '."""
    owner: list[int | None] = []
    words: list[str] = []
    if word_split:
        for k, word in enumerate(drawn.split(" ")):
            if k:
                owner.append(None)  # the space piece trdg puts between words
            if word:
                words.append(word)
                owner.append(len(words) - 1)
            else:
                owner.append(None)
        return owner, words
    current = None
    for ch in drawn:
        if ch == " ":
            owner.append(None)
            current = None
            continue
        if current is None:
            words.append("")
            current = len(words) - 1
        words[current] += ch
        owner.append(current)
    return owner, words


def logical_words_for(drawn_words: list[str], label: str) -> list[str] | None:
    """The label's word for each drawn word, or None when they cannot be matched (mixed
    left-to-right and right-to-left runs are reordered in ways words cannot follow)."""
    logical = [w for w in label.split(" ") if w]
    if not has_rtl(label):
        return logical if len(logical) == len(drawn_words) else None
    reversed_logical = logical[::-1]
    if [visual_text(w) for w in reversed_logical] == drawn_words:
        return reversed_logical
    return None


def decode_piece_codes(mask_rgb: np.ndarray) -> np.ndarray:
    """trdg's colour-coded mask (HxWx3 uint8) -> int32 map of piece number + 1 (0: none)."""
    return mask_rgb[..., :3].astype(np.int32) @ _CODE_WEIGHTS


# Backgrounds, each HxWx3 uint8, drawn from the sample's Generator.

def gaussian_noise_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Paper-like gray noise, mean 235 and deviation 10 (trdg's values)."""
    gray = np.clip(rng.normal(235.0, 10.0, size=(height, width)), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def plain_background(height: int, width: int) -> np.ndarray:
    return np.full((height, width, 3), 255, dtype=np.uint8)


def quasicrystal_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """trdg's quasicrystal pattern (same formula), vectorised."""
    frequency = rng.random() * 30 + 20
    phase = rng.random() * 2 * math.pi
    rotations = int(rng.integers(10, 21))
    x = np.linspace(-2 * math.pi, 2 * math.pi, height)[:, None]
    y = np.linspace(-2 * math.pi, 2 * math.pi, width)[None, :]
    radius = np.hypot(x, y)
    angle = np.arctan2(y, x)
    z = np.zeros((height, width))
    for i in range(rotations):
        z += np.cos(radius * np.sin(angle + i * math.pi * 2.0 / rotations) * frequency + phase)
    gray = np.clip(255 - np.round(255 * z / rotations), 0, 255).astype(np.uint8)
    return np.repeat(gray[:, :, None], 3, axis=2)


def crop_background(image: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A random height x width crop of an RGB image, scaled up first if it is too small."""
    import cv2

    h, w = image.shape[:2]
    scale = max(height / h, width / w, 1.0)
    if scale > 1.0:
        image = cv2.resize(image, (max(width, math.ceil(w * scale)), max(height, math.ceil(h * scale))),
                           interpolation=cv2.INTER_LINEAR)
        h, w = image.shape[:2]
    y = int(rng.integers(h - height + 1))
    x = int(rng.integers(w - width + 1))
    return np.ascontiguousarray(image[y:y + height, x:x + width])


@dataclass
class LineStyle:
    """Resolved per-run drawing options (from OcrConfig), in trdg's terms."""

    height: int
    font_size: int
    vertical: bool
    text_color: str
    stroke_width: int
    stroke_fill: str
    character_spacing: int
    space_width: float
    word_split: bool
    fit: bool
    margins: tuple[int, int, int, int]  # top, left, bottom, right
    min_width: int
    alignment: str
    distortion: int  # trdg code: 0 none, 1 sine, 2 cosine, 3 random
    distortion_orientation: int  # trdg code: 0 vertical, 1 horizontal, 2 both


@dataclass
class RenderedLine:
    image: np.ndarray  # HxWx3 uint8, not yet blurred
    piece_codes: np.ndarray  # HxW int32, piece number + 1 under each ink pixel, 0 elsewhere
    text_box: tuple[int, int, int, int]  # x, y, w, h of the pasted text


def draw_text_pieces(drawn: str, font: str, style: LineStyle, angle: float):
    """trdg's text drawing, skew and distortion: RGBA text image and RGB piece-code mask
    (PIL images). Uses trdg's global `random`: call inside `seeded_global_random`."""
    from PIL import Image
    from trdg import computer_text_generator, distorsion_generator

    image, mask = computer_text_generator.generate(
        drawn, font, style.text_color, style.font_size, 1 if style.vertical else 0,
        style.space_width, style.character_spacing, style.fit, style.word_split,
        style.stroke_width, style.stroke_fill)
    mask = mask.convert("RGB")
    if angle:
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
        mask = mask.rotate(angle, resample=Image.Resampling.NEAREST, expand=True)
    if style.distortion:
        distort = {1: distorsion_generator.sin, 2: distorsion_generator.cos,
                   3: distorsion_generator.random}[style.distortion]
        image, mask = distort(image, mask, vertical=style.distortion_orientation in (0, 2),
                              horizontal=style.distortion_orientation in (1, 2))
    return image, mask


def scale_to_line(image, mask, style: LineStyle):
    """Scale the drawn text so that it fills the line height (width when vertical)."""
    from PIL import Image

    top, left, bottom, right = style.margins
    w, h = image.size
    if style.vertical:
        new_w = style.height - left - right
        new_h = max(1, int(h * new_w / w))
    else:
        new_h = style.height - top - bottom
        new_w = max(1, int(w * new_h / h))
    return (image.resize((new_w, new_h), Image.Resampling.LANCZOS),
            mask.resize((new_w, new_h), Image.Resampling.NEAREST))


def line_canvas_size(text_w: int, text_h: int, style: LineStyle) -> tuple[int, int]:
    """(width, height) of the whole image around a text of text_w x text_h."""
    top, left, bottom, right = style.margins
    if style.vertical:
        return style.height, text_h + top + bottom
    return max(style.min_width, text_w + left + right), style.height


def place_text(text_w: int, canvas_w: int, style: LineStyle) -> tuple[int, int]:
    """Top-left corner of the text on the canvas (trdg's alignment rule)."""
    top, left, _, right = style.margins
    if style.vertical or style.alignment == "left":
        return left, top
    if style.alignment == "center":
        return int(canvas_w / 2 - text_w / 2), top
    return canvas_w - text_w - right, top


def paste_text(background: np.ndarray, text_rgba: np.ndarray, x: int, y: int) -> None:
    """Alpha-blend an RGBA text image onto an RGB background in place."""
    h, w = text_rgba.shape[:2]
    region = background[y:y + h, x:x + w]
    alpha = text_rgba[:, :, 3:4].astype(np.float32) / 255.0
    blended = text_rgba[:, :, :3].astype(np.float32) * alpha + region.astype(np.float32) * (1 - alpha)
    region[...] = np.rint(blended).astype(np.uint8)


def piece_boxes(codes: np.ndarray, pieces: list[int]) -> dict[int, tuple[float, float, float, float]]:
    """Tight xyxy box of each piece number that has ink."""
    boxes = {}
    for piece in pieces:
        box = tight_bbox(codes == piece + 1)
        if box is not None:
            boxes[piece] = box
    return boxes


def gaussian_blur(image: np.ndarray, radius: float) -> np.ndarray:
    """PIL's GaussianBlur (what trdg applies), on an HxWx3 uint8 array."""
    from PIL import Image, ImageFilter

    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius=radius)))


def text_contrast(image: np.ndarray, ink: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """Absolute difference of mean gray between ink pixels and the other pixels of the text box."""
    x, y, w, h = box
    gray = image[y:y + h, x:x + w].mean(axis=2)
    inside = ink[y:y + h, x:x + w]
    if not inside.any() or inside.all():
        return 255.0
    return float(abs(gray[inside].mean() - gray[~inside].mean()))
