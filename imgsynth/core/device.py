"""Where torch work runs: the one rule behind every `device` setting (training, sampling a
checkpoint, diffusion, `imgsynth eval --device`). torch is imported only when a device is
picked, so importing this module stays light."""

from __future__ import annotations

from typing import TYPE_CHECKING

from imgsynth.core.errors import RecipeError

if TYPE_CHECKING:
    import torch

DEVICE_CHOICES = "auto, cpu, cuda, cuda:N (the N-th GPU) or mps"


def available_devices() -> list[str]:
    """The devices this machine has, as a `device` setting names them."""
    import torch

    found = ["cpu"]
    if torch.cuda.is_available():
        found += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        found.append("mps")
    return found


def pick_device(name: str, *, key: str = "device") -> torch.device:
    """The torch device for a `device` setting. auto takes cuda, then mps, then cpu; a named
    device must exist on this machine: one that does not is a RecipeError at `key` naming it
    and what there is, not a CUDA traceback halfway through a run."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:  # torch's own message lists device types imgsynth does not support
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise RecipeError(f"unknown device '{name}'", key=key, fix=f"use {DEVICE_CHOICES}")
    if device.type == "cuda":
        exists = torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
    else:
        exists = device.type == "cpu" or torch.backends.mps.is_available()
    if not exists:
        here = available_devices()
        raise RecipeError(f"device '{name}' is not available on this machine (it has: "
                          f"{', '.join(here)})", key=key,
                          fix=f"use auto (takes the best of these) or one of: {', '.join(here)}")
    return device
