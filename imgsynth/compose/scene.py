"""The `compose` source: scenes of object cutouts pasted on backgrounds.

Objects paste their silhouettes into one ZBuffer while they paint pixels, then every
label is read off it: mask = visible pixels, box = tight box of the mask, area = pixel
count. (`copy_paste`, the same idea over a COCO dataset, is imgsynth.compose.copy_paste.)
"""

from __future__ import annotations

import math
from collections import Counter, OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from imgsynth.augment.config import TransformSpec
from imgsynth.compose import blend, placement
from imgsynth.compose.config import ComposeConfig
from imgsynth.compose.objects import Cutout, ObjectLibrary, load_library
from imgsynth.compose.zbuffer import ZBuffer, paste_window
from imgsynth.core.errors import InputError, RecipeError
from imgsynth.core.masks import silhouette
from imgsynth.core.rng import derived_int_seed
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext
from imgsynth.io.folders import image_files
from imgsynth.io.image import decode_image

BACKGROUND_CACHE_BYTES = 512 * 2**20


def list_images(path: str, key: str) -> list[Path]:
    root = Path(path)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError("folder not found", file=path, key=key, fix="point it at a folder of images")
    files = image_files(root)
    if not files:
        raise InputError("no images found", file=path, key=key,
                         fix="add .png/.jpg files or point it at another folder")
    return files


def fit_background(image: np.ndarray, width: int, height: int, fit: str,
                   rng: np.random.Generator) -> np.ndarray:
    """Crop (random window of the output's aspect, then resize) or stretch to width x height."""
    h, w = image.shape[:2]
    if (w, h) == (width, height):
        return image.copy()
    if fit == "crop":
        s = max(width / w, height / h)
        cw, ch = min(w, round(width / s)), min(h, round(height / s))
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
        image = image[y0:y0 + ch, x0:x0 + cw]
    interp = cv2.INTER_AREA if image.shape[1] > width else cv2.INTER_LINEAR
    return cv2.resize(image, (width, height), interpolation=interp)


def build_photometric(entries: list[TransformSpec], key: str):
    """An albumentations Compose of pixel-level transforms, or None for an empty list.
    Names and parameters were checked with the recipe (TransformSpec, as in augment)."""
    if not entries:
        return None
    from imgsynth.augment.pipeline import import_albumentations, make_transform

    A = import_albumentations()
    transforms = []
    for i, entry in enumerate(entries):
        transform = make_transform(entry.name, entry.params)
        if not isinstance(transform, A.ImageOnlyTransform):
            raise RecipeError(f"'{entry.name}' is not an albumentations pixel-level transform",
                              key=f"{key}[{i}]",
                              fix="use a photometric transform such as RandomBrightnessContrast, "
                              "HueSaturationValue, GaussNoise, ColorJitter")
        transforms.append(transform)
    return A.Compose(transforms)


@dataclass
class PasteStyle:
    """Per-object appearance parameters (all drawn up front, so draws never depend on data)."""

    mode: str
    motion_length: int  # 1 = none
    motion_angle: float
    harmonize: bool
    shadow: bool
    photometric_seed: int


class ComposeSource:
    """Scenes of objects pasted on backgrounds, one per index."""

    def __init__(self, cfg: ComposeConfig, ctx: BuildContext):
        self.cfg = cfg
        self.library = ObjectLibrary()
        for i, lib_cfg in enumerate(cfg.objects):
            part = load_library(lib_cfg, f"source.objects[{i}]")
            for name, cutouts in part.by_class.items():
                self.library.by_class.setdefault(name, []).extend(cutouts)
            self.library.left_out += part.left_out
        self.classes = self.library.classes
        unknown = sorted(set(cfg.class_weights) - set(self.classes))
        if unknown:
            raise RecipeError(f"class_weights names unknown class(es) {', '.join(unknown)}",
                              key="source.class_weights", fix=f"classes are: {', '.join(self.classes)}")
        weights = np.array([cfg.class_weights.get(c, 1.0) for c in self.classes], np.float64)
        if weights.sum() <= 0:
            raise RecipeError("all class weights are 0", key="source.class_weights")
        self.class_p = weights / weights.sum()
        self.distractors = (load_library(cfg.distractors, "source.distractors", unlabeled=True).all()
                            if cfg.distractors else [])
        if cfg.distractors_per_image[1] > 0 and not self.distractors:
            raise RecipeError("distractors_per_image > 0 but no distractors folder is set",
                              key="source.distractors")
        self.backgrounds = list_images(cfg.backgrounds, "source.backgrounds")
        self._bg_cache: OrderedDict[Path, np.ndarray] = OrderedDict()
        self.avoid = decode_image(cfg.avoid_mask, mode="L") > 0 if cfg.avoid_mask else None
        self.photometric = build_photometric(cfg.photometric, "source.photometric")
        modes = list(cfg.blend)
        self.blend_modes = modes
        self.blend_p = np.array([cfg.blend[m] for m in modes], np.float64) / sum(cfg.blend.values())
        self.margin = int(math.ceil(max(
            2 * cfg.feather_radius,
            cfg.motion_blur_length[1] if cfg.motion_blur > 0 else 0,
            max(map(abs, cfg.shadow_offset)) + 3 * cfg.shadow_blur if cfg.shadow > 0 else 0,
            2 ** cfg.pyramid_levels if "pyramid" in modes else 0))) + 2

    # -- one scene -----------------------------------------------------------------------

    def generate(self, index: int, rng: np.random.Generator) -> Sample:
        cfg = self.cfg
        bg_file = self.backgrounds[int(rng.integers(len(self.backgrounds)))]
        decoded = self._background(bg_file)
        if cfg.width is None:
            background = decoded.copy()
        else:
            background = fit_background(decoded, cfg.width, cfg.height, cfg.background_fit, rng)
        tries = cfg.max_resample if cfg.on_hidden == "resample" else 1
        for attempt in range(tries):
            image, zbuf, files, counts, styles = self._compose_scene(background, rng)
            instances, hidden = self._labels(zbuf, styles)
            if not hidden or attempt == tries - 1:
                break
        counts["resampled"] += attempt
        counts["hidden_as_clutter"] += hidden
        return Sample(
            index=index, image=image, instances=instances,
            source_files=[str(bg_file)] + files,
            meta={"compose": {"background": str(bg_file),
                              "left_out": dict(sorted((k, v) for k, v in counts.items() if v)),
                              "blend": [styles[layer.layer_id] for layer in zbuf.layers]}})

    def _background(self, path: Path) -> np.ndarray:
        if path in self._bg_cache:
            self._bg_cache.move_to_end(path)
            return self._bg_cache[path]
        image = decode_image(path)
        self._bg_cache[path] = image
        while sum(a.nbytes for a in self._bg_cache.values()) > BACKGROUND_CACHE_BYTES and len(self._bg_cache) > 1:
            self._bg_cache.popitem(last=False)
        return image

    def _compose_scene(self, background: np.ndarray, rng: np.random.Generator):
        cfg = self.cfg
        image = background.copy()
        zbuf = ZBuffer(*image.shape[:2])
        n_obj = int(rng.integers(cfg.objects_per_image[0], cfg.objects_per_image[1] + 1))
        n_dis = int(rng.integers(cfg.distractors_per_image[0], cfg.distractors_per_image[1] + 1))
        order = rng.permutation(np.array([True] * n_obj + [False] * n_dis, bool))
        files: list[str] = []
        counts: Counter = Counter()
        styles: dict[int, str] = {}
        for labeled in order:
            if labeled:
                name = self.classes[int(rng.choice(len(self.classes), p=self.class_p))]
                pool = self.library.by_class[name]
            else:
                pool = self.distractors
            cutout = pool[int(rng.integers(len(pool)))]
            pasted = self._paste(image, zbuf, cutout, bool(labeled), rng, counts)
            if pasted is not None:
                files.append(cutout.file)
                styles[pasted[0]] = pasted[1]
        return image, zbuf, files, counts, styles

    def _style(self, rng: np.random.Generator) -> PasteStyle:
        cfg = self.cfg
        mode = self.blend_modes[int(rng.choice(len(self.blend_modes), p=self.blend_p))]
        blur = rng.random() < cfg.motion_blur
        length = int(rng.integers(cfg.motion_blur_length[0], cfg.motion_blur_length[1] + 1))
        angle = float(rng.uniform(0, 180))
        return PasteStyle(mode, length if blur else 1, angle, bool(rng.random() < cfg.harmonize),
                          bool(rng.random() < cfg.shadow), derived_int_seed(rng))

    def _paste(self, image: np.ndarray, zbuf: ZBuffer, cutout: Cutout, labeled: bool,
               rng: np.random.Generator, counts: Counter) -> tuple[int, str] | None:
        """Place one object (a few tries), paint it, stamp its silhouette.

        Returns (layer id, blend mode used) or None when it was left out (counted).
        """
        cfg = self.cfg
        height, width = image.shape[:2]
        pose = placement.sample_pose(
            rng, scale=cfg.scale, unit=cfg.scale_unit, background_short_side=min(height, width),
            rotation=cfg.rotation, flip_h=cfg.flip_horizontal, flip_v=cfg.flip_vertical,
            aspect_jitter=cfg.aspect_jitter)
        style = self._style(rng)
        ax1, ay1, ax2, ay2 = cfg.allowed_region
        patch = None
        factor = 1.0
        for _ in range(cfg.placement_attempts):
            if cfg.perspective is not None:
                cy = float(rng.uniform(ay1 * height, ay2 * height))
                new_factor = placement.perspective_factor(cy, height, *cfg.perspective)
                if patch is None or new_factor != factor:
                    patch, factor = None, new_factor
            if patch is None:
                patch = self._warp(cutout, pose, factor, height, width, counts)
                if patch is None:
                    return None
            rgb, alpha, sil = patch
            ext_h, ext_w = sil.shape[0] - 2 * self.margin, sil.shape[1] - 2 * self.margin
            xr = placement.center_range(ax1, ax2, width, ext_w, cfg.max_truncation)
            yr = placement.center_range(ay1, ay2, height, ext_h, cfg.max_truncation)
            if xr is None or yr is None:
                continue
            cx = float(rng.uniform(*xr))
            if cfg.perspective is None:
                cy = float(rng.uniform(*yr))
            elif not yr[0] <= cy <= yr[1]:
                continue
            if self.avoid is not None:
                ah, aw = self.avoid.shape
                if self.avoid[min(int(cy / height * ah), ah - 1), min(int(cx / width * aw), aw - 1)]:
                    continue
            x = int(round(cx - (sil.shape[1] - 1) / 2.0))
            y = int(round(cy - (sil.shape[0] - 1) / 2.0))
            if not self._fits(zbuf, sil, x, y):
                continue
            self._paint(image, rgb, alpha, x, y, style)
            layer = zbuf.paste(sil, x, y, cutout.class_name if labeled else None)
            if layer is None:
                return None
            return layer.layer_id, style.mode if style.motion_length == 1 else "motion_blur"
        counts["placement_failed"] += 1
        return None

    def _warp(self, cutout: Cutout, pose: placement.ObjectPose, factor: float, height: int,
              width: int, counts: Counter):
        h, w = cutout.rgba.shape[:2]
        sx, sy = placement.pose_scales(pose, h, w, factor)
        _, out_w, out_h = placement.object_matrix(h, w, sx, sy, pose.angle_deg, pose.flip_h,
                                                  pose.flip_v, 0)
        if out_w > width or out_h > height:
            if self.cfg.oversize == "skip":
                counts["oversize_skipped"] += 1
                return None
            shrink = min(width / out_w, height / out_h) * 0.999
            sx, sy = sx * shrink, sy * shrink
            counts["oversize_scaled"] += 1
        rgb, alpha = placement.warp_object(cutout.rgba, sx, sy, pose.angle_deg, pose.flip_h,
                                           pose.flip_v, self.margin)
        sil = silhouette(alpha)
        if not sil.any():
            counts["too_small"] += 1
            return None
        return rgb, alpha, sil

    def _fits(self, zbuf: ZBuffer, sil: np.ndarray, x: int, y: int) -> bool:
        """Exact checks on pixels: truncation of this object, occlusion of earlier ones."""
        win = paste_window(x, y, *sil.shape, *zbuf.ids.shape)
        if win is None:
            return False
        inside = int(np.count_nonzero(sil[win[2], win[3]]))
        total = int(np.count_nonzero(sil))
        if inside == 0 or 1.0 - inside / total > self.cfg.max_truncation + 1e-9:
            return False
        occlusion = zbuf.occlusion_after(sil, x, y)
        labeled = np.array([layer.class_name is not None for layer in zbuf.layers], bool)
        return not (occlusion[labeled] > self.cfg.max_occlusion + 1e-9).any()

    def _paint(self, image: np.ndarray, rgb: np.ndarray, alpha: np.ndarray, x: int, y: int,
               style: PasteStyle) -> None:
        cfg = self.cfg
        win = paste_window(x, y, *alpha.shape, *image.shape[:2])
        rows, cols, prow, pcol = win
        if self.photometric is not None:
            self.photometric.set_random_seed(style.photometric_seed)
            out = self.photometric(image=rgb)["image"]
            if out.shape != rgb.shape or out.dtype != np.uint8:
                raise RecipeError("a photometric transform changed the object's size or type",
                                  key="source.photometric", fix="use pixel-level transforms only")
            rgb = out
        bg = image[rows, cols]
        fg, a = rgb[prow, pcol], alpha[prow, pcol]
        if style.harmonize:
            fg = blend.harmonize_lab(fg, a, bg, cfg.harmonize_strength)
        if style.shadow:
            shade = blend.shadow_alpha(alpha, *cfg.shadow_offset, cfg.shadow_blur, cfg.shadow_opacity)
            bg = blend.darken(bg, shade[prow, pcol])
        if style.motion_length > 1:
            # A moving object has no crisp edge to feather or solve for: blend with its blur.
            fg, a = blend.motion_blur_patch(fg, a, style.motion_length, style.motion_angle)
            image[rows, cols] = blend.blend_alpha(bg, fg, a)
        else:
            image[rows, cols] = blend.blend_patch(bg, fg, a, style.mode,
                                                  feather_radius=cfg.feather_radius,
                                                  pyramid_levels=cfg.pyramid_levels)

    def _labels(self, zbuf: ZBuffer, styles: dict[int, str]) -> tuple[list[Instance], int]:
        return zbuf.labels(min_area=self.cfg.min_area, min_visible_fraction=self.cfg.min_visible_fraction,
                           attributes=lambda vis: {"truncated_fraction": vis.truncated_fraction,
                                                   "blend": styles[vis.layer.layer_id]})
