"""The checkpoint format of `imgsynth train`: what a .pt file holds, writing and reading it.

A checkpoint is one dict saved with torch.save: "format" (CHECKPOINT_FORMAT), "kind" (the
model family), "config" (the training recipe, resolved), "classes", "step", "networks"
(state dicts by name), and for resuming "optimizers", "scalers", "rng", "data" and
"early_stopping". Sampling reads only the first six.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from imgsynth.core.errors import InputError
from imgsynth.generate.families import FAMILIES
from imgsynth.io.atomic import atomic_write_bytes

CHECKPOINT_FORMAT = "imgsynth-generative/1"


def save_checkpoint(path: Path, checkpoint: dict) -> None:
    """Write atomically: an interrupted save leaves the previous file whole."""
    buf = io.BytesIO()
    torch.save(checkpoint, buf)
    atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint written by `imgsynth train`; anything else is an InputError."""
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
    except FileNotFoundError:
        raise InputError("checkpoint not found", file=str(path),
                         fix="give a .pt file written by `imgsynth train` (checkpoints/last.pt "
                             "or best.pt)") from None
    except Exception as exc:  # noqa: BLE001 - pickle/zip errors of a foreign file
        raise InputError(f"not a readable imgsynth checkpoint ({type(exc).__name__}: "
                         f"{str(exc)[:200]})", file=str(path),
                         fix="give a .pt file written by `imgsynth train`") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError("not an imgsynth DCGAN/VAE checkpoint (no 'format: "
                         f"{CHECKPOINT_FORMAT}' entry; a plain state_dict or another "
                         "program's checkpoint cannot be resumed or sampled)", file=str(path),
                         fix="give a .pt file written by `imgsynth train`")
    return ckpt


def stored_config(ckpt: dict) -> Any:
    """The typed training config a checkpoint records. It is a record of what ran, so keys
    a recipe may no longer combine (context stored=True) still load."""
    return FAMILIES[ckpt["kind"]].config_class().model_validate(ckpt["config"],
                                                                context={"stored": True})


def load_networks(networks: dict[str, torch.nn.Module], states: dict, path: Path) -> None:
    """Load state dicts; a shape or key mismatch means another architecture."""
    for name, net in networks.items():
        if name not in states:
            raise InputError(f"checkpoint has no '{name}' network (it has {sorted(states)})",
                             file=str(path), fix="it was trained with another model setup")
        try:
            net.load_state_dict(states[name])
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()
            raise InputError(f"checkpoint does not fit the '{name}' network: "
                             f"{' '.join(first[1:3] or first)[:300]}", file=str(path),
                             fix="it was trained with another resolution, width or class "
                                 "count") from None


def numpy_global_state() -> list:
    """numpy's global random state as plain values (torch.load's weights_only reads them)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def set_numpy_global_state(state: list) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
