"""The `ocr` source: one text-line image per sample, for text recognition.

Built once per worker (fonts, word lists and trdg's patches are loaded in `__init__`);
makes one sample per index from that sample's Generator alone. (Words pasted on photos,
for detection, are imgsynth.ocr.scene_text.)
"""

from __future__ import annotations

import os

import numpy as np

from imgsynth.core.masks import tight_bbox
from imgsynth.core.rng import derived_int_seed
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext, SkipSample
from imgsynth.ocr import render, trdg_compat
from imgsynth.ocr.backgrounds import collect_image_files, load_background
from imgsynth.ocr.config import OcrConfig
from imgsynth.ocr.texts import TextPicker

_DISTORTIONS = {"none": 0, "sine": 1, "cosine": 2, "random": 3}
_DISTORTION_AXES = {"vertical": 0, "horizontal": 1, "both": 2}


class OcrLineSource:
    """One text line per sample: image, exact label, optional char/word boxes."""

    def __init__(self, cfg: OcrConfig, ctx: BuildContext):
        trdg_compat.install_caches()
        self.cfg = cfg
        self.texts = TextPicker(cfg)
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

    def generate(self, index: int, rng: np.random.Generator) -> Sample:
        cfg, style = self.cfg, self.style
        # 1. text and a font that has every glyph of it
        label, drawn, font, rerouted = self.texts.pick(index, rng)
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
