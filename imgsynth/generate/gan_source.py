"""Checkpoint -> labeled images: the `gan_sample` source behind `imgsynth sample`.

Each image comes from its own latent seed (drawn from the sample's Generator and
recorded in the manifest as meta.latent_seed), through a one-image forward pass
in eval mode, so an image does not depend on which other images are made with
it, on the worker that made it, or on the batch size.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from imgsynth.core.device import pick_device
from imgsynth.core.errors import RecipeError, did_you_mean
from imgsynth.core.rng import derived_int_seed
from imgsynth.core.sample import Sample
from imgsynth.core.stage import BuildContext
from imgsynth.generate.checkpoint import load_checkpoint, load_networks, stored_config
from imgsynth.generate.config import GanSampleConfig
from imgsynth.generate.families import FAMILIES
from imgsynth.generate.images import generate_images


@dataclass
class LoadedSampler:
    network: torch.nn.Module
    kind: str
    network_name: str
    classes: list[str]
    conditional: bool
    latent_dim: int
    device: torch.device
    step: int


def load_sampler(path: str | Path, device: str = "cpu", use_ema: bool = True, *,
                 device_key: str = "device") -> LoadedSampler:
    """The generating network of a checkpoint (EMA generator first when asked), in eval mode.
    A device this machine does not have is a RecipeError at `device_key`."""
    path = Path(path)
    ckpt = load_checkpoint(path)
    family = FAMILIES[ckpt["kind"]]
    cfg = stored_config(ckpt)
    present = [n for n in ckpt["networks"] if use_ema or n != "generator_ema"]
    name = family.sampler_network(present)
    classes = list(ckpt["classes"])
    network = family.build_sampler(cfg, len(classes))
    load_networks({name: network}, ckpt["networks"], path)
    torch_device = pick_device(device, key=device_key)
    network.to(torch_device).eval()
    return LoadedSampler(network, family.name, name, classes, cfg.conditional, cfg.latent_size,
                         torch_device, int(ckpt["step"]))


def sample_image(sampler: LoadedSampler, latent_seed: int, class_id: int | None) -> np.ndarray:
    """One HxWxC uint8 image from a latent seed (and a class id for conditional models)."""
    z = torch.randn(1, sampler.latent_dim, generator=torch.Generator().manual_seed(latent_seed))
    labels = None if class_id is None else torch.tensor([class_id], device=sampler.device)
    return generate_images(sampler.network, z.to(sampler.device), labels)[0]


def chosen_classes(sampler: LoadedSampler, wanted: list[str] | None, key: str) -> list[str]:
    """The classes to cycle through; only conditional checkpoints can be asked for one."""
    if not wanted:
        return sampler.classes if sampler.conditional else []
    if not sampler.conditional:
        raise RecipeError("this checkpoint is unconditional: it cannot sample a chosen class",
                          key=key, fix="train with conditional: true, or sample without a class")
    for name in wanted:
        if name not in sampler.classes:
            raise RecipeError(f"'{name}' is not a class of this checkpoint."
                              f"{did_you_mean(name, sampler.classes)}", key=key,
                              fix=f"use one of: {', '.join(sampler.classes)}")
    return list(wanted)


class CheckpointSampler:
    """Source: sample i is class classes[i % len(classes)] from latent seed drawn from rng."""

    def __init__(self, config: GanSampleConfig, ctx: BuildContext):
        self.sampler = load_sampler(config.checkpoint, config.device, config.use_ema,
                                    device_key="source.device")
        self.checkpoint = config.checkpoint
        self.classes = chosen_classes(self.sampler, config.sample_classes, "source.sample_classes")

    def source_files(self, index: int) -> list[str]:
        return [self.checkpoint]

    def generate(self, index: int, rng: np.random.Generator) -> Sample:
        latent_seed = derived_int_seed(rng)
        label = self.classes[index % len(self.classes)] if self.classes else None
        class_id = None if label is None else self.sampler.classes.index(label)
        image = sample_image(self.sampler, latent_seed, class_id)
        return Sample(index=index, image=image, label=label, source_files=[self.checkpoint],
                      meta={"latent_seed": latent_seed, "model": self.sampler.kind,
                            "network": self.sampler.network_name,
                            "checkpoint_step": self.sampler.step})
