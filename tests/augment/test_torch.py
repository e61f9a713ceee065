"""imgsynth.torch: worker-count invariance, epochs, torchvision targets, batched path."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from imgsynth.torch import AugmentedDataset, BatchAugment, RecipeTransform

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


def test_batched_path_draws_parameters_per_sample_and_flips_boxes_exactly():
    images = torch.zeros(8, 3, 24, 24)
    images[:, :, 2:6, 3:9] = 1.0
    boxes = [torch.tensor([[3.0, 2.0, 9.0, 6.0]]) for _ in range(8)]
    augment = BatchAugment(seed=5, hflip=0.5, vflip=0.5, rot90=0.5, brightness=0.1, contrast=0.1)
    out, out_boxes, _ = augment(images, boxes, batch_index=0)
    expected = [tuple(b[0].tolist()) for b in out_boxes]
    assert len(set(expected)) >= 3  # different flips/turns within one batch
    for i in range(8):
        ys, xs = torch.nonzero(out[i, 0] > out[i, 0].mean(), as_tuple=True)
        assert expected[i] == (xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1)
    brightness = out.mean(dim=(1, 2, 3))
    assert len(set(brightness.round(decimals=5).tolist())) >= 6
    again, again_boxes, _ = augment(images, boxes, batch_index=0)
    assert torch.equal(out, again)
    other, _, _ = augment(images, boxes, batch_index=1)
    assert not torch.equal(out, other)


def test_batched_rotation_boxes_match_rotated_masks():
    images = torch.zeros(4, 3, 32, 48, dtype=torch.uint8)
    masks = [torch.zeros(1, 32, 48, dtype=torch.uint8) for _ in range(4)]
    for m in masks:
        m[0, 8:16, 20:36] = 1
    boxes = [torch.tensor([[20.0, 8.0, 36.0, 16.0]]) for _ in range(4)]
    out, out_boxes, out_masks = BatchAugment(seed=1, hflip=0.0, rotate_limit=40,
                                             noise_sigma=(2, 8))(images, boxes, masks, batch_index=0)
    assert out.dtype == torch.uint8
    for b, m in zip(out_boxes, out_masks):
        ys, xs = torch.nonzero(m[0], as_tuple=True)
        assert b[0].tolist() == [xs.min().item(), ys.min().item(), xs.max().item() + 1, ys.max().item() + 1]
    assert len({m.numpy().tobytes() for m in out_masks}) == 4  # one angle per sample


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


@pytest.mark.parametrize("fmt", ["XYWH", "CXCYWH"])
def test_torchvision_bounding_boxes_keep_their_format_and_get_the_new_canvas(fmt):
    from torchvision import tv_tensors
    from torchvision.ops import box_convert

    xyxy = torch.tensor([[2.0, 4.0, 12.0, 10.0]])
    boxes = tv_tensors.BoundingBoxes(box_convert(xyxy, "xyxy", fmt.lower()), format=fmt, canvas_size=(16, 20))
    image = tv_tensors.Image(torch.zeros(3, 16, 20, dtype=torch.uint8))
    out_image, target = RecipeTransform(FLIP)(image, {"boxes": boxes, "labels": torch.tensor([1])}, index=0)
    assert isinstance(out_image, tv_tensors.Image)
    out = target["boxes"]
    assert isinstance(out, tv_tensors.BoundingBoxes) and out.format == boxes.format
    assert out.canvas_size == (16, 20)
    assert box_convert(out.as_subclass(torch.Tensor), fmt.lower(), "xyxy").tolist() == [[8.0, 4.0, 18.0, 10.0]]


def test_unsupported_image_dtypes_are_refused_with_the_fix():
    with pytest.raises(ValueError, match="uint16.*scale 16-bit data to 8 bits"):
        RecipeTransform(FLIP)(np.zeros((4, 4, 3), np.uint16), index=0)


def test_batched_path_takes_and_returns_bounding_boxes_in_their_format():
    from torchvision import tv_tensors

    images = torch.zeros(2, 3, 16, 20, dtype=torch.uint8)
    boxes = [tv_tensors.BoundingBoxes([[2.0, 4.0, 10.0, 6.0]], format="XYWH", canvas_size=(16, 20))] * 2
    _, out, _ = BatchAugment(seed=0, hflip=1.0)(images, boxes, batch_index=0)
    assert all(isinstance(b, tv_tensors.BoundingBoxes) and b.format == boxes[0].format for b in out)
    assert [b.tolist() for b in out] == [[[8.0, 4.0, 10.0, 6.0]]] * 2  # x -> W - x - w, still XYWH


def test_per_object_target_entries_follow_the_objects_that_stay():
    image = np.zeros((32, 40, 3), np.uint8)
    target = {"boxes": torch.tensor([[2.0, 2.0, 10.0, 10.0], [25.0, 20.0, 35.0, 30.0]]),
              "labels": torch.tensor([1, 2]), "iscrowd": torch.tensor([0, 1]),
              "area": torch.tensor([64.0, 100.0]), "image_id": 7,
              "keypoints": torch.tensor([[[4.0, 5.0, 2.0]], [[30.0, 25.0, 2.0]]])}
    crop = [{"name": "Crop", "x_min": 0, "y_min": 0, "x_max": 20, "y_max": 16}]  # the 2nd object leaves
    _, out = RecipeTransform(crop)(image, target, index=0)
    assert out["labels"].tolist() == [1] and out["boxes"].tolist() == [[2.0, 2.0, 10.0, 10.0]]
    assert out["iscrowd"].tolist() == [0] and out["area"].tolist() == [64.0] and out["image_id"] == 7
    assert out["keypoints"].tolist() == [[[4.0, 5.0, 2.0]]]
    _, flipped = RecipeTransform(FLIP)(image, target, index=0)
    assert flipped["keypoints"][:, 0, :2].tolist() == [[36.0, 5.0], [10.0, 25.0]]  # x -> W - x


def test_coco_annotation_lists_and_unmoved_geometry_are_refused():
    class CocoLike(Dataset):  # what torchvision.datasets.CocoDetection returns
        def __len__(self):
            return 1

        def __getitem__(self, i):
            return np.zeros((8, 8, 3), np.uint8), [{"bbox": [1, 1, 3, 3], "category_id": 1}]

    with pytest.raises(TypeError, match="wrap_dataset_for_transforms_v2"):
        AugmentedDataset(CocoLike(), FLIP)[0]
    with pytest.raises(ValueError, match="target key 'bbox'"):
        RecipeTransform(FLIP)(np.zeros((8, 8, 3), np.uint8), {"bbox": torch.zeros(1, 4)}, index=0)
