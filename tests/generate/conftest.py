"""Tiny training runs shared by the generate tests: 32x32 digits, narrow nets, few steps."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

TINY = {"data": {"kind": "digits", "limit": 160}, "resolution": 32, "channels": 1,
        "batch_size": 16, "steps": 4, "grid_every": 2, "log_every": 2, "eval_every": 2,
        "checkpoint_every": 2, "grid_size": 20, "memorization_samples": 16}
TINY_MODEL = {"dcgan": {"ngf": 8, "ndf": 8, "nz": 16}, "vae": {"nf": 8, "latent_dim": 8}}


def tiny_recipe(folder: Path, kind: str, **overrides) -> Path:
    """Write a tiny training recipe (digits, so no files are needed) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{kind}.yaml"
    path.write_text(yaml.safe_dump({**TINY, **TINY_MODEL[kind], **overrides}))
    return path


@pytest.fixture(scope="session")
def conditional_dcgan(tmp_path_factory) -> Path:
    """checkpoints/last.pt of a conditional DCGAN (with EMA) trained for 4 steps."""
    from imgsynth.generate.cli import train_command

    root = tmp_path_factory.mktemp("cond_dcgan")
    recipe = tiny_recipe(root, "dcgan", conditional=True, ema_decay=0.9)
    train_command("dcgan", recipe, root / "run", quiet=True)
    return root / "run" / "checkpoints" / "last.pt"


@pytest.fixture(scope="session")
def unconditional_vae(tmp_path_factory) -> Path:
    from imgsynth.generate.cli import train_command

    root = tmp_path_factory.mktemp("vae")
    recipe = tiny_recipe(root, "vae")
    train_command("vae", recipe, root / "run", quiet=True)
    return root / "run" / "checkpoints" / "last.pt"
