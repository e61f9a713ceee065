"""The `copy_paste` source (Ghiasi et al. 2021): instances of one image of a COCO dataset
pasted into another with large-scale jitter.

The pasted silhouettes go into a ZBuffer, from which their labels are read; the target's
own annotations keep only the pixels no paste covers.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from imgsynth.compose import blend, placement
from imgsynth.compose.config import CopyPasteConfig
from imgsynth.compose.zbuffer import ZBuffer, paste_window, uncovered_mask
from imgsynth.core.errors import InputError
from imgsynth.core.masks import silhouette, tight_bbox
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext, SkipSample
from imgsynth.io.readers.index import shared_or_parsed


class CopyPasteSource:
    """Copy-paste augmentation: instances of another image of the dataset pasted with
    large-scale jitter; the target's own annotations lose the pixels that get covered."""

    def __init__(self, cfg: CopyPasteConfig, ctx: BuildContext):
        self.cfg = cfg
        self.dataset = shared_or_parsed(ctx, cfg.dataset, cfg.format, cfg.parsed_dataset)
        if len(self.dataset) < 2:
            raise InputError("copy_paste needs at least 2 images", file=cfg.dataset, key="source.dataset")
        self.classes = list(self.dataset.classes)

    def __len__(self) -> int:
        return len(self.dataset) * self.cfg.copies

    def generate(self, index: int, rng: np.random.Generator) -> Sample:
        cfg = self.cfg
        n = len(self.dataset)
        target_index = index % n
        source_index = int(rng.integers(n - 1))
        source_index += source_index >= target_index
        target = self.dataset.load(target_index)
        source = self.dataset.load(source_index)
        counts: Counter = Counter()
        image = _rgb(target.image).copy()
        height, width = image.shape[:2]
        base = self._with_pixels(target.instances, counts)
        candidates = [inst for _, inst in self._with_pixels(source.instances, counts)]

        scale = float(rng.uniform(*cfg.scale))
        flip = bool(rng.random() < cfg.flip_horizontal)
        k = int(rng.integers(cfg.pastes[0], cfg.pastes[1] + 1))
        chosen = sorted(rng.choice(len(candidates), size=min(k, len(candidates)), replace=False).tolist()) \
            if candidates else []
        src_h, src_w = source.image.shape[:2]
        sw, sh = src_w * scale, src_h * scale
        # The jittered source image lands anywhere it still overlaps the target.
        ox = float(rng.uniform(min(0.0, width - sw), max(0.0, width - sw)))
        oy = float(rng.uniform(min(0.0, height - sh), max(0.0, height - sh)))
        margin = int(math.ceil(2 * cfg.feather_radius)) + 2 if cfg.blend == "gaussian" else 1

        zbuf = ZBuffer(height, width)
        src_rgb = _rgb(source.image)
        for i in chosen:
            inst = candidates[i]
            x1, y1, x2, y2 = (int(v) for v in tight_bbox(inst.mask))
            rgba = placement.premultiply(np.dstack([src_rgb[y1:y2, x1:x2],
                                                    inst.mask[y1:y2, x1:x2].astype(np.uint8) * 255]))
            rgb, alpha = placement.warp_object(rgba, scale, scale, 0.0, flip, False, margin)
            sil = silhouette(alpha)
            if not sil.any():
                counts["too_small"] += 1
                continue
            centre_x = (src_w - (x1 + x2) / 2.0) if flip else (x1 + x2) / 2.0
            x = int(round(ox + centre_x * scale - sil.shape[1] / 2.0))
            y = int(round(oy + (y1 + y2) / 2.0 * scale - sil.shape[0] / 2.0))
            win = paste_window(x, y, *sil.shape, height, width)
            if win is None:
                counts["pasted_outside"] += 1
                continue
            rows, cols, prow, pcol = win
            image[rows, cols] = blend.blend_patch(image[rows, cols], rgb[prow, pcol], alpha[prow, pcol],
                                                  cfg.blend, feather_radius=cfg.feather_radius)
            zbuf.paste(sil, x, y, inst.class_name)

        instances = []
        for k, inst in base:
            mask = uncovered_mask(inst.mask, zbuf.ids)
            area = int(np.count_nonzero(mask))
            total = int(np.count_nonzero(inst.mask))
            if area < cfg.min_area or area / total < cfg.min_visible_fraction:
                counts["covered"] += 1
                continue
            instances.append(Instance(
                class_name=inst.class_name, bbox_xyxy=tight_bbox(mask), mask=mask,
                truncated=inst.truncated, occluded=1.0 - area / total, visible_fraction=area / total,
                iscrowd=inst.iscrowd, attributes={"copy_paste": "kept", "original_index": k}))
        pasted, hidden = zbuf.labels(
            min_area=cfg.min_area, min_visible_fraction=cfg.min_visible_fraction,
            attributes=lambda vis: {"copy_paste": "pasted", "truncated_fraction": vis.truncated_fraction})
        instances += pasted
        counts["pasted_hidden"] += hidden
        if not instances and not base and not candidates:
            raise SkipSample("no_instances", f"images {target_index} and {source_index} have no masks")
        return Sample(
            index=index, image=image, instances=instances,
            source_files=list(target.source_files) + list(source.source_files),
            meta={"copy_paste": {"target": target_index, "source": source_index,
                                 "scale": round(scale, 4), "flip": flip, "pasted": len(chosen),
                                 "left_out": dict(sorted((k, v) for k, v in counts.items() if v))}})

    @staticmethod
    def _with_pixels(instances: list[Instance], counts: Counter) -> list[tuple[int, Instance]]:
        """(position, instance) of those with a nonempty mask; the others are counted, never labeled."""
        kept = []
        for k, inst in enumerate(instances):
            if inst.mask is None or not inst.mask.any():
                counts["empty_segmentation"] += 1
            else:
                kept.append((k, inst))
        return kept


def _rgb(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return np.dstack([image] * 3)
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    return image[:, :, :3]
