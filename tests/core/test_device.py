"""pick_device: the one rule for every `device` setting (train, sample, diffusion, eval)."""

from __future__ import annotations

import pytest
import torch

from imgsynth.core.device import pick_device
from imgsynth.core.errors import RecipeError


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_auto_takes_cuda_then_mps_then_cpu(two_gpus, monkeypatch):
    assert pick_device("auto") == torch.device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device("auto") == torch.device("mps")
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert pick_device("auto") == torch.device("cpu")


def test_a_named_device_must_exist(two_gpus):
    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("cuda") == torch.device("cuda")
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(RecipeError) as err:
        pick_device("cuda:2", key="source.device")
    assert err.value.key == "source.device"
    assert "device 'cuda:2' is not available on this machine (it has: cpu, cuda:0, cuda:1" in str(err.value)


def test_no_gpu_names_the_device_and_the_fix(no_gpu):
    for name in ("cuda", "mps"):
        with pytest.raises(RecipeError) as err:
            pick_device(name)
        assert err.value.key == "device"
        assert f"device '{name}' is not available on this machine (it has: cpu)" in str(err.value)
        assert err.value.fix == "use auto (takes the best of these) or one of: cpu"


@pytest.mark.parametrize("name", ["gpu", "CUDA", "cuda:x", "", "meta", "xpu"])
def test_unknown_devices_are_refused_with_the_choices(name):
    with pytest.raises(RecipeError, match="unknown device") as err:
        pick_device(name, key="--device")
    assert err.value.key == "--device" and "cuda:N" in err.value.fix
