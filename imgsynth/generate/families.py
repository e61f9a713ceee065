"""The model families `imgsynth train` trains and `imgsynth sample` samples, each declared
once: its training config, its trainer and the network it samples with. The CLI's
`train` commands, the training loop and the checkpoint sampler all read this table.

Entries are "module:attribute" strings (as in imgsynth.core.registry) so that reading the
table, as `imgsynth --help` does, imports neither pydantic nor torch (nor the registry).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ModelFamily:
    name: str  # `imgsynth train NAME`, a recipe's `model:` and a checkpoint's "kind"
    summary: str  # the help line of `imgsynth train NAME`
    config: str  # its training recipe (a TrainConfigBase)
    # Called as Trainer(config, num_classes, device): networks, optimizers, train_step.
    trainer: str
    # Called as build(config, num_classes): the network that makes images (.generate).
    sampler: str
    # Checkpoint networks that can sample, by preference: the first one present is used.
    sampler_networks: tuple[str, ...]

    def config_class(self) -> Any:
        return _resolve(self.config)

    def trainer_class(self) -> Any:
        return _resolve(self.trainer)

    def build_sampler(self, cfg: Any, num_classes: int) -> Any:
        return _resolve(self.sampler)(cfg, num_classes)

    def sampler_network(self, present) -> str:
        """The name of the network to sample with, among the networks `present`."""
        return next(name for name in self.sampler_networks if name in present)


def _resolve(entry: str) -> Any:
    from imgsynth.core.registry import resolve

    return resolve(entry)


FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (
    ModelFamily(
        "dcgan", "Train a DCGAN on an image folder, class folders, COCO crops or sklearn digits.",
        config="imgsynth.generate.config:DcganTrainConfig",
        trainer="imgsynth.generate.dcgan:DcganTrainer",
        sampler="imgsynth.generate.dcgan:build_generator",
        sampler_networks=("generator_ema", "generator")),
    ModelFamily(
        "vae", "Train a convolutional VAE.",
        config="imgsynth.generate.config:VaeTrainConfig",
        trainer="imgsynth.generate.vae:VaeTrainer",
        sampler="imgsynth.generate.vae:build_vae",
        sampler_networks=("vae",)),
)}
