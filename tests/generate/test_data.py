"""Training images: folders of mixed sizes/modes, class folders, COCO crops, digits."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imgsynth.core.errors import InputError, RecipeError
from imgsynth.generate.cli import train_command
from imgsynth.generate.config import TrainDataConfig
from imgsynth.generate.data import fit_image, load_training_images, split_holdout
from tests.generate.conftest import tiny_recipe


def write_mixed_folder(root):
    """Four images of different sizes and modes: RGB, RGBA, L, 16-bit gray."""
    root.mkdir(parents=True)
    Image.new("RGB", (40, 30), (200, 10, 10)).save(root / "a.png")
    Image.new("RGBA", (32, 32), (10, 200, 10, 255)).save(root / "b.png")
    Image.new("L", (64, 48), 128).save(root / "c.png")
    Image.fromarray(np.full((20, 20), 65535, dtype=np.uint16)).save(root / "d.png")


def test_mixed_sizes_and_modes_are_converted_and_fitted(tmp_path):
    write_mixed_folder(tmp_path / "imgs")
    rgb = load_training_images(TrainDataConfig(kind="folder", path=str(tmp_path / "imgs")), 32, 3, 0)
    assert rgb.images.shape == (4, 32, 32, 3) and rgb.images.dtype == np.uint8
    assert tuple(rgb.images[0, 16, 16]) == (200, 10, 10)  # colour survives the crop/resize
    gray = load_training_images(TrainDataConfig(kind="folder", path=str(tmp_path / "imgs")), 32, 1, 0)
    assert gray.images.shape == (4, 32, 32, 1)
    assert gray.images[2, 16, 16, 0] == 128 and gray.images[3, 16, 16, 0] == 255


def test_fit_error_names_the_file_and_the_option(tmp_path):
    write_mixed_folder(tmp_path / "imgs")
    with pytest.raises(InputError) as err:
        load_training_images(TrainDataConfig(kind="folder", path=str(tmp_path / "imgs"), fit="error"),
                             32, 3, 0)
    assert "a.png" in str(err.value) and "40x30" in str(err.value)
    assert "data.fit" in str(err.value)


def test_center_crop_keeps_the_middle_and_stretch_keeps_everything():
    image = np.zeros((32, 64, 1), np.uint8)
    image[:, :16] = 255  # a white band on the left quarter
    assert fit_image(image, 32, "center_crop").max() == 0
    stretched = fit_image(image, 32, "stretch")
    assert stretched[:, :7].min() == 255 and stretched[:, 9:].max() == 0


def test_imagefolder_classes_become_labels(tmp_path):
    for name, value in (("cat", 50), ("dog", 200)):
        (tmp_path / "pets" / name).mkdir(parents=True)
        for k in range(2):
            Image.new("L", (32, 32), value + k).save(tmp_path / "pets" / name / f"{k}.png")
    pets = str(tmp_path / "pets")
    data = load_training_images(TrainDataConfig(kind="imagefolder", path=pets), 32, 1, 0)
    assert data.classes == ["cat", "dog"]
    assert data.labels.tolist() == [0, 0, 1, 1]
    assert data.images[:, 0, 0, 0].tolist() == [50, 51, 200, 201]
    only_dog = load_training_images(TrainDataConfig(kind="imagefolder", path=pets, classes=["dog"]),
                                    32, 1, 0)
    assert only_dog.classes == ["dog"] and len(only_dog) == 2
    with pytest.raises(RecipeError, match="not found") as err:
        load_training_images(TrainDataConfig(kind="imagefolder", path=pets, classes=["bird"]), 32, 1, 0)
    assert err.value.key == "data.classes"


def test_coco_crops_are_labeled_by_category(coco_dataset, monkeypatch):
    monkeypatch.chdir(coco_dataset)  # relative paths start from the current folder
    cfg = TrainDataConfig(kind="coco", path="images", annotations="annotations.json",
                          min_crop_size=4)
    data = load_training_images(cfg, 32, 3, 0)
    # make_coco_dataset puts 1 + i % 3 objects on image i: 6 images -> 12 objects
    assert len(data) == 12 and data.images.shape[1:] == (32, 32, 3)
    assert data.classes == ["disk", "square"]
    assert sorted(set(data.labels.tolist())) == [0, 1]
    # the object (bright) fills the middle of its crop; the background is dark
    assert data.images[:, 14:18, 14:18].mean() > 100


def test_digits_are_upscaled_with_their_classes():
    data = load_training_images(TrainDataConfig(kind="digits"), 32, 1, 0)
    assert data.images.shape == (1797, 32, 32, 1)
    assert data.classes == [str(d) for d in range(10)]
    assert np.bincount(data.labels).min() > 170
    some = load_training_images(TrainDataConfig(kind="digits", classes=["3", "7"], limit=50),
                                32, 3, 0)
    assert some.classes == ["3", "7"] and len(some) == 50 and some.images.shape[-1] == 3


def test_holdout_split_is_seeded_and_disjoint():
    train, hold = split_holdout(100, 0.1, 7)
    assert len(hold) == 10 and not set(train) & set(hold) and len(train) + len(hold) == 100
    assert split_holdout(100, 0.1, 7)[1].tolist() == hold.tolist()
    assert split_holdout(100, 0.1, 8)[1].tolist() != hold.tolist()


def test_too_few_images_for_the_batch_size(tmp_path, monkeypatch):
    write_mixed_folder(tmp_path / "imgs")
    monkeypatch.chdir(tmp_path)  # data.path is relative to the current folder, not the recipe's
    recipe = tiny_recipe(tmp_path / "recipes", "dcgan", data={"kind": "folder", "path": "imgs"})
    with pytest.raises(InputError) as err:
        train_command("dcgan", recipe, tmp_path / "run", quiet=True)
    assert "only 4 training images" in str(err.value) and "batch_size 16" in str(err.value)
    assert "lower batch_size to 4" in str(err.value)


def test_missing_folder_is_an_input_error(tmp_path):
    recipe = tiny_recipe(tmp_path, "vae", data={"kind": "folder", "path": "nowhere"})
    with pytest.raises(InputError, match="image folder not found"):
        train_command("vae", recipe, tmp_path / "run", quiet=True)
