"""imgsynth.torch.targets: torchvision targets follow the objects (formats, per-object
entries) and geometry that would not move is refused."""

import numpy as np
import pytest
import torch
from torch.utils.data import Dataset

from imgsynth.torch import AugmentedDataset, RecipeTransform


FLIP = [{"name": "imgsynth.HorizontalFlip", "p": 1.0}]


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
