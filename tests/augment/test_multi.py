"""Multi-image transforms: Mosaic, MixUp, CutMix and CopyPaste keep labels exact (masks
pixel by pixel, boxes clipped to what each image keeps), draw everything from the sample's
Generator, and run from a recipe with a dataset source."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgsynth.augment.config import AugmentConfig
from imgsynth.core.errors import RecipeError
from imgsynth.core.masks import rle_decode, tight_bbox
from imgsynth.core.rng import sample_rng
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext
from imgsynth.run import run_recipe
from tests.conftest import write_recipe

H, W = 100, 120


class Pool:
    def __init__(self, samples):
        self.samples = samples

    def __len__(self):
        return len(self.samples)

    def sample(self, index):
        return self.samples[index]


def tile(k: int) -> Sample:
    """A flat image of value 40 + 30 k with a disc (mask) and a box-only object, class 'c<k>'."""
    image = np.full((H, W, 3), 40 + 30 * k, np.uint8)
    yy, xx = np.mgrid[:H, :W] + 0.5
    disc = (xx - 30 - 5 * k) ** 2 + (yy - 35) ** 2 < 18 ** 2
    image[disc] = 250
    return Sample(index=k, image=image, label=f"c{k % 2}", source_files=[f"tile{k}.png"],
                  instances=[Instance(f"disc{k}", tight_bbox(disc), mask=disc),
                             Instance(f"box{k}", (70.0, 50.0, 115.0, 95.0))])


POOL = Pool([tile(k) for k in range(1, 6)])


def stage(transforms, pool=POOL, **kwargs):
    config = AugmentConfig.model_validate({"type": "augment", "transforms": transforms, **kwargs})
    return config.build(BuildContext(samples=pool))


def test_mosaic_clips_every_object_to_its_quadrant_exactly():
    augment = stage([{"name": "imgsynth.Mosaic"}])
    for seed in range(6):
        out = augment.apply(tile(0), sample_rng(0, "m", seed))
        cx, cy = out.meta["mosaic"]["center"]
        assert out.image.shape == (H, W, 3)
        quadrants = {"left_top": (0, 0, cx, cy), "right_top": (cx, 0, W, cy),
                     "left_bottom": (0, cy, cx, H), "right_bottom": (cx, cy, W, H)}
        for inst in out.instances:
            x1, y1, x2, y2 = inst.bbox_xyxy
            inside = [q for q in quadrants.values() if q[0] <= x1 and q[1] <= y1 and x2 <= q[2] and y2 <= q[3]]
            assert inside, (inst.class_name, inst.bbox_xyxy, cx, cy)
            if inst.mask is not None:
                assert inst.bbox_xyxy == tight_bbox(inst.mask)
                assert (out.image[inst.mask] == 250).all()  # the object's own pixels
            else:  # the exact rectangle: the tile's box moved to its corner, cut at the quadrant
                qx0, qy0, qx1, qy1 = inside[0]
                assert (x2 - x1) <= 45 and (y2 - y1) <= 45
                assert x1 in (qx0, 70 + (cx - W if qx0 == 0 else cx)) and y1 in (qy0, 50 + (cy - H if qy0 == 0 else cy))
        weights = out.meta["label_weights"]
        assert set(weights) <= {"c0", "c1"} and abs(sum(weights.values()) - 1) < 1e-6
        assert out.source_files[0] == "tile0.png" and len(out.source_files) >= 2
    again = augment.apply(tile(0), sample_rng(0, "m", 5))
    assert np.array_equal(again.image, out.image) and again.meta == out.meta


def test_mixup_blends_by_lambda_and_keeps_both_images_objects():
    out = stage([{"name": "imgsynth.MixUp", "alpha": 2.0}]).apply(tile(0), sample_rng(0, "x", 0))
    lam = out.meta["mixup"]["lambda"]
    other = next(s for s in POOL.samples if s.instances[0].class_name == out.instances[2].class_name)
    expected = lam * tile(0).image.astype(float) + (1 - lam) * other.image.astype(float)
    assert np.abs(out.image - expected).max() <= 1
    assert [i.class_name for i in out.instances][:2] == ["disc0", "box0"] and len(out.instances) == 4
    assert out.instances[2].bbox_xyxy == tight_bbox(out.instances[2].mask)
    weights = out.meta["label_weights"]
    assert abs(sum(weights.values()) - 1) < 1e-6 and (len(weights) == 1 or min(weights.values()) > 0)


def test_cutmix_takes_the_rectangle_from_the_other_image_and_labels_follow():
    augment = stage([{"name": "imgsynth.CutMix"}])
    seen_cut = False
    for seed in range(10):
        out = augment.apply(tile(0), sample_rng(0, "c", seed))
        x0, y0, x1, y1 = out.meta["cutmix"]["box_xyxy"]
        inside = np.zeros((H, W), bool)
        inside[y0:y1, x0:x1] = True
        assert (out.image[~inside] == tile(0).image[~inside]).all()
        for inst in out.instances:
            if inst.class_name.endswith("0"):  # the sample's own objects lose the rectangle
                region = inst.mask if inst.mask is not None else None
                if region is not None:
                    assert not (region & inside).any() and inst.bbox_xyxy == tight_bbox(region)
                else:
                    bx1, by1, bx2, by2 = (int(v) for v in inst.bbox_xyxy)
                    box = np.zeros((H, W), bool)
                    box[by1:by2, bx1:bx2] = True
                    original = np.zeros((H, W), bool)
                    original[50:95, 70:115] = True
                    assert inst.bbox_xyxy == tight_bbox(original & ~inside)
                    seen_cut |= bool((original & inside).any())
            else:  # the other's objects are cut to the rectangle
                x_1, y_1, x_2, y_2 = inst.bbox_xyxy
                assert x0 <= x_1 and y0 <= y_1 and x_2 <= x1 and y_2 <= y1
        share = (x1 - x0) * (y1 - y0) / (H * W)
        weights = out.meta["label_weights"]
        if len(weights) == 2:
            assert abs(weights["c0"] - (1 - share)) < 1e-5
    assert seen_cut


def test_copy_paste_puts_objects_on_top_and_takes_their_pixels_from_those_below():
    sample = tile(0)
    out = stage([{"name": "imgsynth.CopyPaste", "max_objects": 1}]).apply(sample, sample_rng(0, "p", 1))
    pasted = [i for i in out.instances if i.attributes.get("copy_paste") == "pasted"]
    assert len(pasted) == 1 and out.meta["copy_paste"]["pasted"] == 1
    own = [i for i in out.instances if i.class_name == "disc0"]
    if own:
        assert not (own[0].mask & pasted[0].mask).any()
        assert own[0].bbox_xyxy == tight_bbox(own[0].mask)
        assert own[0].visible_fraction < 1.0 or not (sample.instances[0].mask & pasted[0].mask).any()
    else:
        assert out.meta["augment_dropped_instances"] == 1
    assert (out.image[pasted[0].mask] == 250).all()


def test_transforms_after_a_multi_image_transform_see_the_combined_image():
    augment = stage([{"name": "imgsynth.Mosaic"}, {"name": "HorizontalFlip", "p": 1},
                     {"name": "Affine", "rotate": [10, 10], "p": 1}], min_area=20)
    out = augment.apply(tile(0), sample_rng(0, "a", 2))
    plain = stage([{"name": "imgsynth.Mosaic"}]).apply(tile(0), sample_rng(0, "a", 2))
    assert out.meta["mosaic"] == plain.meta["mosaic"]
    for inst in out.instances:
        if inst.mask is not None:
            assert inst.bbox_xyxy == tight_bbox(inst.mask)


def test_a_recipe_without_a_dataset_source_is_refused_before_anything_is_written(tmp_path):
    config = AugmentConfig.model_validate({"type": "augment", "transforms": [{"name": "imgsynth.MixUp"}]})
    with pytest.raises(RecipeError, match="dataset") as info:
        config.build(BuildContext())
    assert "AugmentedDataset" in str(info.value)


def test_recipe_with_mosaic_over_a_dataset_writes_exact_labels(tmp_path, coco_dataset):
    recipe = write_recipe(tmp_path / "r.yaml", f"""
seed: 2
source: {{type: dataset, path: {coco_dataset}, format: coco, copies: 2}}
stages:
  - type: augment
    transforms:
      - {{name: imgsynth.Mosaic, size: [96, 128]}}
      - {{name: imgsynth.HorizontalFlip, p: 0.5}}
output: {{formats: [coco], preview: false}}
""")
    run_recipe(recipe, tmp_path / "a", quiet=True)
    run_recipe(recipe, tmp_path / "b", quiet=True)
    manifest = (tmp_path / "a/manifest.jsonl").read_text()
    assert manifest == (tmp_path / "b/manifest.jsonl").read_text()
    records = [json.loads(line) for line in manifest.splitlines()]
    assert records and all(r["width"] == 128 and r["height"] == 96 for r in records)
    assert sum(len(r["instances"]) for r in records) > len(records)  # objects of several images
    for record in records:
        assert "mosaic" in record["meta"]
        for inst in record["instances"]:
            assert tuple(inst["bbox_xyxy"]) == tight_bbox(rle_decode(inst["segmentation"]))
