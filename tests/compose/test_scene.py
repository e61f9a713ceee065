"""The compose source: exact labels, determinism, placement limits and bad inputs."""

import numpy as np
import pytest

from imgsynth.compose.config import BLEND_MODES, ComposeConfig
from imgsynth.core.errors import InputError, RecipeError
from imgsynth.core.masks import tight_bbox
from imgsynth.core.rng import sample_rng
from imgsynth.core.stage import BuildContext
from imgsynth.io.image import encode_image
from tests.compose.conftest import build, generate, make_backgrounds, shape_alpha, textured


def test_boxes_are_the_tight_boxes_of_disjoint_visible_masks(assets):
    source = build(assets, objects_per_image=[4, 6], max_occlusion=0.9, max_truncation=0.5,
                   rotation=[-45, 45], scale=[0.2, 0.6], min_visible_fraction=0.0, min_area=1)
    seen = 0
    for i in range(12):
        sample = generate(source, i)
        union = np.zeros((120, 160), np.int32)
        for inst in sample.instances:
            assert inst.mask.shape == (120, 160) and inst.mask.any()
            assert inst.bbox_xyxy == tight_bbox(inst.mask)
            x1, y1, x2, y2 = inst.bbox_xyxy
            assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 120
            assert abs(inst.visible_fraction + inst.occluded
                       + inst.attributes["truncated_fraction"] - 1) < 1e-9
            union += inst.mask
            seen += 1
        assert union.max() <= 1  # one owner per pixel
    assert seen >= 40


def test_same_seed_gives_same_bytes_and_labels(assets):
    kwargs = dict(blend={m: 1 for m in BLEND_MODES}, motion_blur=0.3, harmonize=0.5, shadow=0.5,
                  photometric=[{"RandomBrightnessContrast": {"p": 0.8}}, {"GaussNoise": {"p": 0.5}}])
    a = [generate(build(assets, **kwargs), i) for i in range(4)]
    b = [generate(build(assets, **kwargs), i) for i in reversed(range(4))][::-1]
    for x, y in zip(a, b):
        assert encode_image(x.image) == encode_image(y.image)
        assert [i.bbox_xyxy for i in x.instances] == [i.bbox_xyxy for i in y.instances]
    assert encode_image(a[0].image) != encode_image(a[1].image)


@pytest.mark.parametrize("library", ["objects", "pairs"])
@pytest.mark.parametrize("mode", BLEND_MODES)
def test_every_blend_mode_runs_on_rgba_and_image_mask_inputs(assets, library, mode):
    fmt = "rgba" if library == "objects" else "image_mask"
    source = build(assets, objects=[{"path": str(assets / library), "format": fmt}],
                   blend={mode: 1}, objects_per_image=[2, 2], scale=[0.3, 0.4])
    sample = generate(source, 0)
    background = generate(build(assets, objects_per_image=[0, 0]), 0).image
    assert sample.meta["compose"]["blend"] == [mode, mode]
    assert len(sample.instances) == 2
    for inst in sample.instances:
        # the object's pixels differ from the bare background under it (mixed gradients keep
        # the background's texture where it is stronger, so less)
        change = np.abs(sample.image[inst.mask].astype(int) - background[inst.mask]).mean()
        assert change > (2 if mode == "poisson_mixed" else 5)


def test_no_truncation_by_default_and_truncation_when_allowed(assets):
    strict = build(assets, objects_per_image=[3, 3], scale=[0.3, 0.5])
    assert not any(inst.truncated for i in range(8) for inst in generate(strict, i).instances)
    loose = build(assets, objects_per_image=[3, 3], scale=[0.3, 0.5], max_truncation=0.5,
                  min_visible_fraction=0.0)
    insts = [inst for i in range(8) for inst in generate(loose, i).instances]
    assert any(inst.truncated for inst in insts)
    assert all(inst.attributes["truncated_fraction"] <= 0.5 + 1e-9 for inst in insts)


def test_max_occlusion_is_respected(assets):
    source = build(assets, objects_per_image=[6, 6], scale=[0.4, 0.5], max_occlusion=0.1,
                   min_visible_fraction=0.0)
    insts = [inst for i in range(6) for inst in generate(source, i).instances]
    assert insts and all(inst.occluded <= 0.1 + 1e-9 for inst in insts)


def test_hidden_instances_leave_labels_but_stay_as_clutter(assets):
    source = build(assets, objects_per_image=[8, 8], scale=[0.5, 0.6], max_occlusion=1.0,
                   min_visible_fraction=0.6)
    samples = [generate(source, i) for i in range(6)]
    hidden = sum(s.meta["compose"]["left_out"].get("hidden_as_clutter", 0) for s in samples)
    assert hidden > 0
    for s in samples:
        assert all(inst.visible_fraction >= 0.6 for inst in s.instances)
        assert len(s.meta["compose"]["blend"]) == len(s.instances) + s.meta["compose"]["left_out"].get("hidden_as_clutter", 0)


def test_resample_draws_scenes_without_hidden_objects(assets):
    source = build(assets, objects_per_image=[3, 3], scale=[0.4, 0.5], max_occlusion=1.0,
                   min_visible_fraction=0.5, on_hidden="resample", max_resample=50)
    for i in range(4):
        sample = generate(source, i)
        assert len(sample.instances) == 3


def test_allowed_region_and_perspective(assets):
    source = build(assets, objects_per_image=[3, 3], allowed_region=[0.0, 0.5, 1.0, 1.0],
                   perspective=[0.5, 2.0], scale=[0.2, 0.2], aspect_jitter=0, rotation=[0, 0],
                   max_occlusion=0.0, min_visible_fraction=0)
    insts = [inst for i in range(10) for inst in generate(source, i).instances]
    centre_y = np.array([(inst.bbox_xyxy[1] + inst.bbox_xyxy[3]) / 2 for inst in insts])
    side = np.array([max(inst.bbox_xyxy[2] - inst.bbox_xyxy[0], inst.bbox_xyxy[3] - inst.bbox_xyxy[1])
                     for inst in insts])
    assert len(insts) >= 15 and centre_y.min() >= 59
    assert np.corrcoef(centre_y, side)[0, 1] > 0.8  # lower in the image -> larger


def test_class_weights_pick_classes(assets):
    source = build(assets, class_weights={"box": 0.0}, objects_per_image=[3, 3])
    names = {inst.class_name for i in range(5) for inst in generate(source, i).instances}
    assert names == {"disk"}


def test_distractors_occlude_and_are_never_labeled(assets, tmp_path):
    source = build(assets, distractors=str(assets / "objects" / "box"), distractors_per_image=[3, 3],
                   objects=[{"path": str(assets / "objects"), "classes": ["disk"]}],
                   objects_per_image=[1, 1])
    for i in range(4):
        sample = generate(source, i)
        assert {inst.class_name for inst in sample.instances} <= {"disk"}
        assert len(sample.meta["compose"]["blend"]) == 4


def test_oversize_objects_scaled_down_or_skipped_and_counted(assets):
    big = dict(scale=[400, 500], scale_unit="pixels", objects_per_image=[1, 1], max_occlusion=1.0)
    scaled = generate(build(assets, **big), 0)
    assert scaled.meta["compose"]["left_out"] == {"oversize_scaled": 1}
    assert len(scaled.instances) == 1
    skipped = generate(build(assets, oversize="skip", **big), 0)
    assert skipped.meta["compose"]["left_out"] == {"oversize_skipped": 1}
    assert skipped.instances == []


def _library(tmp_path, files):
    for rel, data in files.items():
        path = tmp_path / "lib" / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    make_backgrounds(tmp_path / "bg")
    return ComposeConfig.model_validate({"objects": str(tmp_path / "lib"), "backgrounds": str(tmp_path / "bg"),
                                         "width": 64, "height": 48})


def test_empty_alpha_cutout_is_left_out_and_a_class_of_only_those_is_an_error(tmp_path, caplog):
    good = encode_image(np.dstack([textured(20, 20, 1), shape_alpha(20, 20, 0)]))
    empty = encode_image(np.zeros((20, 20, 4), np.uint8))
    cfg = _library(tmp_path, {"a/good.png": good, "a/empty.png": empty})
    source = cfg.build(BuildContext())
    assert [c.file.endswith("good.png") for c in source.library.by_class["a"]] == [True]
    assert "empty.png" in caplog.text
    cfg = _library(tmp_path / "2", {"a/good.png": good, "b/empty.png": empty})
    with pytest.raises(InputError, match="no usable objects for class.*b") as err:
        cfg.build(BuildContext())
    assert "empty.png: empty alpha" in str(err.value)


def test_unreadable_object_file_names_the_file(tmp_path):
    cfg = _library(tmp_path, {"a/broken.png": b"not a png"})
    with pytest.raises(InputError, match="broken.png"):
        cfg.build(BuildContext())


def test_empty_class_folder_and_missing_mask_are_errors(tmp_path):
    (tmp_path / "lib" / "empty").mkdir(parents=True)
    cfg = _library(tmp_path, {"a/x.png": encode_image(np.dstack([textured(9, 9, 1), shape_alpha(9, 9, 1)]))})
    with pytest.raises(InputError, match="class 'empty' has no images"):
        cfg.build(BuildContext())
    pairs = ComposeConfig.model_validate({
        "objects": {"path": str(tmp_path / "lib"), "format": "image_mask", "classes": ["a"]},
        "backgrounds": str(tmp_path / "bg")})
    with pytest.raises(InputError, match="x_mask.png"):
        pairs.build(BuildContext())


def test_recipe_errors_name_the_key(assets):
    with pytest.raises(RecipeError, match=r"source.photometric\[0\]"):
        build(assets, photometric=[{"HorizontalFlip": {}}])
    with pytest.raises(RecipeError, match="class_weights"):
        build(assets, class_weights={"dsik": 1.0})
    with pytest.raises(ValueError, match="blend"):
        ComposeConfig.model_validate({"objects": "o", "backgrounds": "b", "blend": {"poisson": 1}})
    with pytest.raises(ValueError, match="scale"):
        ComposeConfig.model_validate({"objects": "o", "backgrounds": "b", "scale": [0.5, 0.1]})


def test_keep_background_size(assets):
    source = build(assets, width=None, height=None)
    sizes = {generate(source, i).image.shape for i in range(6)}
    assert sizes <= {(120, 160, 3), (150, 200, 3)} and len(sizes) == 2


def test_rng_is_the_only_randomness(assets):
    source = build(assets)
    one = source.generate(3, sample_rng(1, "compose", 3))
    np.random.seed(123)  # global state must not matter
    two = source.generate(3, sample_rng(1, "compose", 3))
    assert (one.image == two.image).all()


def test_avoid_mask_keeps_object_centres_off_its_pixels(assets, tmp_path):
    avoid = np.zeros((30, 40), np.uint8)
    avoid[:, :20] = 255  # the left half, at another size than the output
    (tmp_path / "avoid.png").write_bytes(encode_image(avoid))
    source = build(assets, avoid_mask=str(tmp_path / "avoid.png"), objects_per_image=[3, 3],
                   rotation=[0, 0], aspect_jitter=0, flip_horizontal=0, max_occlusion=0.0)
    insts = [inst for i in range(6) for inst in generate(source, i).instances]
    assert len(insts) >= 10
    assert all((inst.bbox_xyxy[0] + inst.bbox_xyxy[2]) / 2 >= 80 - 1 for inst in insts)
