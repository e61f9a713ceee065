"""The `scene_text` source: words drawn with trdg and pasted on background photos,
labeled with word quads (class 'text') for text detection.

Built once per worker; one sample per index from that sample's Generator alone. A word's
mask is the silhouette of its drawn alpha (imgsynth.core.masks, the rule compositing uses).
"""

from __future__ import annotations

import os

import numpy as np

from imgsynth.core.masks import silhouette, tight_bbox
from imgsynth.core.rng import derived_int_seed
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext, SkipSample
from imgsynth.ocr import render, trdg_compat
from imgsynth.ocr.backgrounds import collect_image_files, load_background
from imgsynth.ocr.config import SceneTextConfig
from imgsynth.ocr.texts import TextPicker


class SceneTextSource:
    """Background photos with words pasted on them, labeled by word quads (class 'text')."""

    def __init__(self, cfg: SceneTextConfig, ctx: BuildContext):
        trdg_compat.install_caches()
        self.cfg = cfg
        self.texts = TextPicker(cfg)
        self.backgrounds = collect_image_files(cfg.backgrounds, key="source.backgrounds")

    def generate(self, index: int, rng: np.random.Generator) -> Sample:
        cfg = self.cfg
        path = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        image = self._scaled(load_background(path)).copy()
        height, width = image.shape[:2]
        occupied = np.zeros((height, width), dtype=bool)
        instances, fonts = [], []
        for k in range(int(rng.integers(cfg.words[0], cfg.words[1] + 1))):
            word = self._word(index * cfg.words[1] + k, rng)
            if word is None:
                continue
            label, rgba, font = word
            placed = place_word(rgba, float(rng.uniform(*cfg.rotation)), occupied, rng,
                                cfg.placement_attempts)
            if placed is None:
                continue
            warped, quad, x, y = placed
            ink = np.zeros((height, width), dtype=bool)
            # the silhouette rule of compositing (before opacity: a faint word is still a word)
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
            label, drawn, font, _ = self.texts.pick(index, rng)
        except SkipSample:
            return None  # one word less on this image; the image itself is still right
        size = int(rng.integers(cfg.text_height[0], cfg.text_height[1] + 1))
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
