"""imgsynth.torch.data: worker-count invariance, epochs, image kinds (RecipeTransform,
AugmentedDataset), and ShardDataset streaming a run's shards once per epoch in an order set
by (seed, epoch), with the original pixels and labels or augmented ones."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from imgsynth.core.errors import InputError
from imgsynth.io.image import decode_image
from imgsynth.run import run_recipe
from imgsynth.torch import AugmentedDataset, RecipeTransform, ShardDataset
from tests.conftest import write_recipe
from tests.io.test_shards import CLASSES, N, make_shards


TRANSFORMS = [{"name": "imgsynth.Rotate", "limit": 30},
              {"name": "RandomBrightnessContrast", "p": 0.8},
              {"name": "imgsynth.GaussianNoise", "sigma": [2, 10]},
              {"name": "imgsynth.HorizontalFlip"}]


class Squares(Dataset):
    def __len__(self):
        return 6

    def __getitem__(self, i):
        import cv2

        image = np.full((32, 40, 3), 30 * i, np.uint8)
        mask = np.zeros((1, 32, 40), np.uint8)
        mask[0, 8:20, 5 + i:20 + i] = 1
        target = {"boxes": torch.tensor([[5.0 + i, 8.0, 20.0 + i, 20.0]]),
                  "labels": torch.tensor([i % 3]), "masks": torch.from_numpy(mask),
                  "cv2_threads": cv2.getNumThreads()}
        return image, target


def epoch_items(workers, epoch=0):
    data = AugmentedDataset(Squares(), TRANSFORMS, seed=3)
    data.set_epoch(epoch)
    loader = DataLoader(data, batch_size=None, num_workers=workers)
    return list(loader)


def test_same_results_for_0_and_2_workers_and_new_ones_per_epoch():
    serial, parallel = epoch_items(0), epoch_items(2)
    for (img_a, tgt_a), (img_b, tgt_b) in zip(serial, parallel, strict=True):
        assert np.array_equal(img_a, img_b)
        assert torch.equal(tgt_a["boxes"], tgt_b["boxes"]) and torch.equal(tgt_a["masks"], tgt_b["masks"])
    assert [t["cv2_threads"] for _, t in parallel] == [1] * 6  # set per worker, before item code
    other_epoch = epoch_items(0, epoch=1)
    assert sum(not np.array_equal(a[0], b[0]) for a, b in zip(serial, other_epoch)) >= 5


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_persistent_workers_follow_set_epoch(context):
    data = AugmentedDataset(Squares(), TRANSFORMS, seed=3)
    loader = DataLoader(data, batch_size=None, num_workers=2, persistent_workers=True,
                        multiprocessing_context=context)
    epochs = []
    for epoch in range(2):
        data.set_epoch(epoch)
        epochs.append([image for image, _ in loader])
    for epoch, images in enumerate(epochs):
        expected = [image for image, _ in epoch_items(0, epoch=epoch)]
        assert all(np.array_equal(a, b) for a, b in zip(images, expected, strict=True))


def test_targets_are_torchvision_style_and_boxes_tight():
    image, target = epoch_items(0)[2]
    assert target["boxes"].dtype == torch.float32 and target["boxes"].shape == (1, 4)
    assert target["labels"].dtype == torch.int64 and target["labels"].tolist() == [2]
    assert target["masks"].dtype == torch.uint8 and target["masks"].shape == (1, *image.shape[:2])
    ys, xs = torch.nonzero(target["masks"][0], as_tuple=True)
    assert target["boxes"][0].tolist() == [xs.min().item(), ys.min().item(),
                                           xs.max().item() + 1, ys.max().item() + 1]


def test_recipe_transform_on_tensor_images():
    transform = RecipeTransform(TRANSFORMS, seed=0)
    image = torch.zeros(3, 16, 16, dtype=torch.uint8)
    a = transform(image, index=4)
    assert isinstance(a, torch.Tensor) and a.shape == (3, 16, 16)
    assert torch.equal(a, transform(image, index=4))


def test_a_float_tensor_that_requires_grad_is_augmented_like_a_plain_one():
    """Gradients are not followed through augmentation: the tensor is read detached, and its
    pixels come back as a plain tensor of the same kind."""
    flip = RecipeTransform([{"name": "HorizontalFlip", "p": 1.0}], seed=0)
    image = torch.rand(3, 8, 10)
    out = flip(image.clone().requires_grad_(), index=1)
    assert not out.requires_grad and torch.equal(out, flip(image, index=1))
    assert torch.equal(out, image.flip(2))


FLIP = [{"name": "imgsynth.HorizontalFlip", "p": 1.0}]


def test_pil_images_of_any_mode_come_back_as_pil_with_their_colours():
    from PIL import Image

    index = np.zeros((4, 6), np.uint8)
    index[:, :2] = 1  # left third in palette colour 1
    palette = Image.fromarray(index, "P")
    palette.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    out = RecipeTransform(FLIP)(palette, index=0)
    assert isinstance(out, Image.Image) and out.mode == "RGB"
    assert np.asarray(out)[0, -1].tolist() == [200, 10, 10] and np.asarray(out)[0, 0].tolist() == [0, 0, 0]
    deep = Image.fromarray(np.full((4, 6), 65535, np.uint16))  # 16-bit gray: scaled, not wrapped
    gray = RecipeTransform(FLIP)(deep, index=0)
    assert gray.mode == "L" and np.asarray(gray).min() == 255


def test_normalize_in_a_dataloader_recipe_gives_float_tensors_and_a_fix_for_pil():
    """Normalize belongs in a DataLoader recipe: tensors come back normalized with their boxes
    moved; a PIL image cannot hold such pixels (PIL raised 'Cannot handle this data type')."""
    from PIL import Image

    transform = RecipeTransform(FLIP + [{"name": "Normalize"}])
    image = torch.full((3, 8, 10), 255, dtype=torch.uint8)
    out, target = transform(image, {"boxes": torch.tensor([[0.0, 0.0, 4.0, 8.0]]),
                                    "labels": torch.tensor([1])}, index=0)
    assert out.dtype == torch.float32
    assert out[0].max().item() == pytest.approx((1 - 0.485) / 0.229, rel=1e-4)
    assert target["boxes"].tolist() == [[6.0, 0.0, 10.0, 8.0]]
    with pytest.raises(TypeError, match="pass the image as a tensor"):
        transform(Image.fromarray(np.zeros((8, 10, 3), np.uint8)), index=0)


def test_unsupported_image_dtypes_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="uint16.*scale 16-bit data to 8 bits"):
        RecipeTransform(FLIP)(np.zeros((4, 4, 3), np.uint16), index=0)


@pytest.fixture
def shards(tmp_path) -> tuple[Path, list[dict]]:
    return tmp_path, make_shards(tmp_path)


def _epoch(data: ShardDataset, epoch: int, num_workers: int) -> list[tuple[np.ndarray, dict]]:
    data.set_epoch(epoch)
    loader = torch.utils.data.DataLoader(data, batch_size=None, num_workers=num_workers)
    return [(np.asarray(image), record) for image, record in loader]


@pytest.mark.parametrize("num_workers", [0, 2])
def test_every_sample_once_per_epoch_with_original_pixels_and_labels(shards, num_workers):
    out, records = shards
    data = ShardDataset(out, seed=3, shuffle_buffer=4)
    assert len(data) == N
    for epoch in (0, 1):
        items = _epoch(data, epoch, num_workers)
        assert sorted(rec["id"] for _, rec in items) == list(range(1, N + 1))
        for image, rec in items:
            original = records[rec["id"] - 1]
            np.testing.assert_array_equal(image, decode_image(out / original["image"]))
            assert rec["label"] == original["label"]
            assert rec["class_id"] == CLASSES.index(original["label"])


def test_order_depends_on_seed_and_epoch_only(shards):
    out, _ = shards

    def order(seed: int, epoch: int, num_workers: int = 0) -> list[int]:
        return [rec["id"] for _, rec in _epoch(ShardDataset(out, seed=seed, shuffle_buffer=4),
                                               epoch, num_workers)]

    assert order(3, 0) == order(3, 0)
    assert order(3, 0) != order(3, 1)
    assert order(3, 0) != order(4, 0)
    assert order(3, 1, num_workers=2) == order(3, 1, num_workers=2)
    assert order(3, 0) != list(range(1, N + 1))


def test_ranks_split_the_samples_between_them(shards):
    out, _ = shards
    ranks = [[rec["id"] for _, rec in _epoch(ShardDataset(out, seed=3, rank=r, world_size=2), 1, 0)]
             for r in (0, 1)]
    assert ranks[0] and ranks[1]
    assert sorted(ranks[0] + ranks[1]) == list(range(1, N + 1))


def test_transform_gets_image_and_record(shards):
    out, _ = shards
    data = ShardDataset(out, transform=lambda image, rec: (image.shape, rec["class_id"]))
    assert sorted(x for x in data) == sorted(((8 + i % 3, 10, 3), i % 3) for i in range(N))


def test_missing_index_says_how_to_make_shards(tmp_path):
    with pytest.raises(InputError, match="webdataset"):
        ShardDataset(tmp_path)


def test_run_with_webdataset_format_shards_the_manifest(tmp_path, coco_dataset):
    recipe = write_recipe(tmp_path / "r.yaml", f"""
seed: 1
source: {{type: dataset, path: {coco_dataset}, format: coco, copies: 2}}
output: {{formats: [webdataset], shard_size: 4, preview: false}}
""")
    run_recipe(recipe, tmp_path / "out", quiet=True)
    manifest = [json.loads(line) for line in (tmp_path / "out/manifest.jsonl").read_text().splitlines()]
    got = sorted((rec for _, rec in ShardDataset(tmp_path / "out", shuffle_buffer=1)),
                 key=lambda r: r["id"])
    assert got == manifest and len(got) == 12
    with tarfile.open(tmp_path / "out/shards/shard-000000.tar") as tar:
        assert tar.extractfile("00000001.mask.png").read() == \
            (tmp_path / "out" / manifest[0]["mask"]).read_bytes()


def test_augment_moves_images_and_their_labels_together_per_epoch(tmp_path, coco_dataset):
    """`augment=`: items are (image, target) augmented together; class ids from classes.json;
    persistent workers follow set_epoch."""
    from imgsynth.torch import record_target

    recipe = write_recipe(tmp_path / "r.yaml", f"""
seed: 1
source: {{type: dataset, path: {coco_dataset}, format: coco, copies: 1}}
output: {{formats: [webdataset, coco], shard_size: 2, preview: false}}
""")
    run_recipe(recipe, tmp_path / "out", quiet=True)
    plain = {rec["id"]: (image, rec) for image, rec in ShardDataset(tmp_path / "out")}
    data = ShardDataset(tmp_path / "out", seed=3, augment=[{"name": "imgsynth.HorizontalFlip", "p": 1.0}])
    assert data.classes == ["disk", "square"]
    for image, target in data:
        original, rec = plain[target["id"]]
        width = original.shape[1]
        assert np.array_equal(image, original[:, ::-1])
        want = record_target(rec, data.classes)
        assert target["labels"].tolist() == want["labels"].tolist() and len(want["labels"]) > 0
        assert torch.equal(target["masks"], want["masks"].flip(-1))
        x1, y1, x2, y2 = want["boxes"].unbind(1)
        assert torch.allclose(target["boxes"], torch.stack([width - x2, y1, width - x1, y2], 1))
    noisy = ShardDataset(tmp_path / "out", augment=[{"name": "imgsynth.GaussianNoise", "sigma": 8}])
    loader = torch.utils.data.DataLoader(noisy, batch_size=None, num_workers=2, persistent_workers=True)
    epochs = []
    for epoch in (0, 1):
        noisy.set_epoch(epoch)
        epochs.append({t["id"]: image for image, t in loader})
    assert all(not np.array_equal(epochs[0][k], epochs[1][k]) for k in epochs[0])


def test_augmented_classification_shards_keep_the_class_id(shards):
    out, records = shards
    data = ShardDataset(out, augment=[{"name": "imgsynth.HorizontalFlip", "p": 1.0}])
    got = {target["id"]: target["class_id"] for _, target in data}
    assert got == {rec["id"]: CLASSES.index(rec["label"]) for rec in records}


MOSAIC = [{"name": "imgsynth.Mosaic"}, {"name": "imgsynth.HorizontalFlip"}]


def test_multi_image_transforms_draw_items_of_the_dataset_per_epoch_and_index():
    """Mosaic in a DataLoader: the other items come from the wrapped dataset, picked by the
    sample's Generator, so 0 and 2 workers give the same items; boxes stay tight."""
    def items(workers, epoch):
        data = AugmentedDataset(Squares(), MOSAIC, seed=4)
        data.set_epoch(epoch)
        return list(DataLoader(data, batch_size=None, num_workers=workers))

    serial, parallel, other = items(0, 0), items(2, 0), items(0, 1)
    for (img_a, tgt_a), (img_b, tgt_b) in zip(serial, parallel, strict=True):
        assert np.array_equal(img_a, img_b) and torch.equal(tgt_a["boxes"], tgt_b["boxes"])
    assert sum(len(t["boxes"]) for _, t in serial) > len(serial)  # objects of several items
    for image, target in serial:
        assert image.shape == (32, 40, 3) and len(target["masks"]) == len(target["boxes"])
        for box, mask in zip(target["boxes"], target["masks"]):
            ys, xs = torch.nonzero(mask, as_tuple=True)
            assert box.tolist() == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    assert sum(not np.array_equal(a[0], b[0]) for a, b in zip(serial, other)) >= 4


class Classes(Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, i):
        return torch.full((3, 16, 16), 20 * i, dtype=torch.uint8), i % 4


def test_mixup_on_classification_items_gives_soft_labels():
    data = AugmentedDataset(Classes(), [{"name": "imgsynth.MixUp", "alpha": 1.0}], seed=0, num_classes=4)
    for i in range(len(data)):
        image, weights = data[i]
        assert image.shape == (3, 16, 16) and weights.shape == (4,)
        assert abs(float(weights.sum()) - 1) < 1e-5 and weights[i % 4] > 0
    with pytest.raises(ValueError, match="num_classes"):
        AugmentedDataset(Classes(), [{"name": "imgsynth.CutMix"}])[0]


def test_shard_stream_mixes_with_the_samples_it_read_before(shards):
    out, records = shards
    data = ShardDataset(out, seed=1, shuffle_buffer=4, augment=[{"name": "imgsynth.CutMix"}])
    got = list(data)
    assert len(got) == N
    for image, target in got:
        weights = target["class_weights"]
        assert weights.shape == (len(CLASSES),) and abs(float(weights.sum()) - 1) < 1e-5
    assert any((t["class_weights"] > 0).sum() == 2 for _, t in got)
