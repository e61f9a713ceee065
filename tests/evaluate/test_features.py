"""Extractors: the builtin one is fixed; model weights come only from local files."""

from __future__ import annotations

import numpy as np
import pytest

from imgsynth.core.errors import MissingModelError, RecipeError
from imgsynth.evaluate.features import INCEPTION_FILE, INCEPTION_SHA256, get_extractor


def test_builtin_features_are_identical_across_instances(digits):
    images = digits[0][:20]
    a, logits_a = get_extractor("builtin", preset="clean").extract(images)
    b, logits_b = get_extractor("builtin", preset="clean").extract(images)
    assert a.shape == (20, 96) and logits_a.shape == (20, 10)
    assert np.array_equal(a, b) and np.array_equal(logits_a, logits_b)
    assert a.std() > 0


def test_preset_changes_resize_and_id(digits):
    # antialiasing only matters when shrinking: 64x64 images go down to the net's 32x32
    large = np.repeat(np.repeat(digits[0][:8], 4, axis=1), 4, axis=2)
    paper, clean = get_extractor("builtin", preset="paper"), get_extractor("builtin", preset="clean")
    assert paper.id != clean.id
    assert not np.allclose(paper.extract(large)[0], clean.extract(large)[0])


def test_missing_inception_weights_name_file_sha_and_place(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(MissingModelError) as info:
        get_extractor("inception")
    text = str(info.value)
    assert info.value.exit_code == 2
    assert INCEPTION_FILE in text and INCEPTION_SHA256 in text
    assert str(tmp_path / "th" / "hub" / "checkpoints") in text


def test_a_bad_inception_file_is_named(tmp_path, monkeypatch):
    checkpoints = tmp_path / "th" / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / INCEPTION_FILE).write_bytes(b"not a checkpoint")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    with pytest.raises(MissingModelError) as info:
        get_extractor("inception")
    assert "not a valid Inception weights file" in str(info.value)
    assert str(checkpoints / INCEPTION_FILE) in str(info.value)


def test_torchvision_model_from_a_local_weights_file(tmp_path, digits):
    import torch
    import torchvision

    torch.manual_seed(0)
    path = tmp_path / "mnv3.pth"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), path)
    extractor = get_extractor("torchvision:mobilenet_v3_small", preset="clean", weights=path)
    features, logits = extractor.extract(digits[0][:2])
    assert features.shape == (2, 576) and logits is None
    assert extractor.id.startswith("torchvision-mobilenet_v3_small-")


def test_torchvision_without_weights_says_which_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(MissingModelError, match="mobilenet_v3_small"):
        get_extractor("torchvision:mobilenet_v3_small")


def test_unknown_extractor_suggests_a_name():
    with pytest.raises(RecipeError, match="Did you mean 'builtin'"):
        get_extractor("builtn")
