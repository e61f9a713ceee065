"""The one training loop for every model family (imgsynth.generate.families).

A family's trainer (the Trainer protocol below) owns its networks, optimizers and one
`train_step`; this loop owns everything else: device, mixed precision, data
order, fixed-noise grids, metrics, evaluation, early stopping, checkpoints
(imgsynth.generate.checkpoint) and the memorization check (imgsynth.evaluate.memorization).

Exact resume: every source of randomness is either a function of (seed, step)
(the epoch permutation) or a saved generator state (the noise generator), and a
checkpoint holds networks, optimizers, grad scalers, EMA, RNG states and step.
So on CPU, N steps + resume + N steps gives bit-identical weights to 2N steps.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Protocol

import numpy as np
import torch
import yaml

from imgsynth.core.device import pick_device
from imgsynth.core.errors import InputError, RecipeError
from imgsynth.core.rng import run_int_seed
from imgsynth.evaluate.memorization import training_memorization
from imgsynth.generate.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    load_networks,
    numpy_global_state,
    save_checkpoint,
    set_numpy_global_state,
)
from imgsynth.generate.config import TrainConfigBase
from imgsynth.generate.data import TrainingImages, load_training_images, split_holdout
from imgsynth.generate.families import FAMILIES
from imgsynth.generate.images import generate_images, images_to_tensor, save_grid
from imgsynth.io.atomic import atomic_write_text

# Keys that decide the trained weights besides the architecture: resuming with other
# values would silently train a different model.
RESUME_FIXED_FIELDS = ("data", "seed", "batch_size")

# What each of the run's torch seeds is for: core.rng.run_int_seed(seed, purpose[, epoch]).
DATA_ORDER, TRAIN_NOISE, GRID_NOISE, EVAL_NOISE, VALIDATION_NOISE, MEMORIZATION_NOISE = range(1, 7)


class Trainer(Protocol):
    """A model family's half of the loop, built as Trainer(config, num_classes, device)."""

    networks: dict[str, torch.nn.Module]  # saved in checkpoints by name
    optimizers: dict[str, torch.optim.Optimizer]  # one grad scaler each
    architecture_fields: ClassVar[tuple[str, ...]]  # config keys a resume may not change
    has_validation_loss: ClassVar[bool]  # validation_loss ranks checkpoints when FID cannot

    def train_step(self, real01: torch.Tensor, labels: torch.Tensor | None, step: int,
                   gen: torch.Generator, precision: Precision) -> dict[str, torch.Tensor]: ...

    def validation_loss(self, real01: torch.Tensor, labels: torch.Tensor | None,
                        gen: torch.Generator) -> float: ...

    def extra_grids(self, source: TrainingImages) -> dict[str, tuple[np.ndarray, int]]:
        """Grids besides the samples, by file name prefix: (images, images per row)."""


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    stopped_early: bool
    best_by: str  # "fid", "val_loss" or "latest"
    best_metric: float | None
    memorization: dict | None


class Precision:
    """float16 autocast + one grad scaler per optimizer on CUDA; plain float32 elsewhere."""

    def __init__(self, device: torch.device, enabled: bool, optimizer_names):
        self.device = device
        self.enabled = enabled and device.type == "cuda"
        self.scalers = {name: torch.amp.GradScaler(device.type, enabled=self.enabled)
                        for name in optimizer_names}

    def autocast(self):
        return torch.autocast(device_type=self.device.type, dtype=torch.float16,
                              enabled=self.enabled)

    def step(self, name: str, loss: torch.Tensor, optimizer: torch.optim.Optimizer) -> None:
        scaler = self.scalers[name]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of the training set for one epoch: a pure function of (seed, epoch)."""
    generator = torch.Generator().manual_seed(run_int_seed(seed, DATA_ORDER, epoch))
    return torch.randperm(n, generator=generator)


class TrainingRun:
    """State of one training run in an output folder."""

    def __init__(self, kind: str, cfg: TrainConfigBase, out_dir: Path, log: Callable[[str], None]):
        self.kind, self.cfg, self.out_dir, self.log = kind, cfg, out_dir, log
        self.family = FAMILIES[kind]
        self.device = pick_device(cfg.device)
        # 1. Data, loaded once; a seeded held-out split for FID / validation / memorization.
        data = load_training_images(cfg.data, cfg.resolution, cfg.channels, cfg.seed)
        train_idx, hold_idx = split_holdout(len(data), cfg.data.holdout_fraction, cfg.seed)
        self.train_set: TrainingImages = data.subset(train_idx)
        self.holdout: TrainingImages = data.subset(hold_idx)
        self.classes = data.classes
        if len(self.train_set) < cfg.batch_size:
            raise InputError(
                f"only {len(self.train_set)} training images (of {len(data)}, after holding out "
                f"{len(self.holdout)}) for batch_size {cfg.batch_size}",
                file=cfg.data.path or "digits",
                fix=f"add images, lower batch_size to {max(1, len(self.train_set))} or less, "
                    "or lower data.holdout_fraction")
        self.images = images_to_tensor(self.train_set.images, self.device)
        self.labels = torch.from_numpy(self.train_set.labels).to(self.device)
        self.batches_per_epoch = len(self.train_set) // cfg.batch_size  # last partial batch dropped
        self._order_epoch, self._order = -1, None
        # 2. Model: the seed fixes the initial weights.
        torch.manual_seed(cfg.seed)
        self.model: Trainer = self.family.trainer_class()(cfg, len(self.classes), self.device)
        memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        for net in self.model.networks.values():
            net.to(self.device, memory_format=memory)
        self.memory_format = memory
        self.precision = Precision(self.device, cfg.amp, self.model.optimizers)
        self.noise = torch.Generator(self.device).manual_seed(run_int_seed(cfg.seed, TRAIN_NOISE))
        self.step = 0
        self.best: float | None = None
        self.bad_evals = 0
        self.fid, why_not = self._fid_setup()
        self.best_by = ("fid" if self.fid else
                        "val_loss" if self.model.has_validation_loss and len(self.holdout)
                        else "latest")
        if why_not:
            log(f"FID off: {why_not}; best checkpoint by {self.best_by}")
        # 3. Fixed noise for the grids: one column per class when conditional.
        self.grid_cols = (len(self.classes) if cfg.conditional and len(self.classes) <= 16
                          else max(1, int(math.sqrt(cfg.grid_size))))
        self.grid_z, self.grid_labels = self._latents(cfg.grid_size, GRID_NOISE)

    def sampler(self) -> torch.nn.Module:
        """The network grids, evaluation and the memorization check sample with."""
        return self.model.networks[self.family.sampler_network(self.model.networks)]

    def _latents(self, n: int, purpose: int):
        generator = torch.Generator().manual_seed(run_int_seed(self.cfg.seed, purpose))
        z = torch.randn(n, self.cfg.latent_size, generator=generator)
        labels = (torch.arange(n) % len(self.classes)).to(self.device) if self.cfg.conditional else None
        return z.to(self.device), labels

    def _fid_setup(self):
        """((extractor, fid function, real images), None) when FID can be computed, else
        (None, the reason)."""
        try:
            from imgsynth.evaluate.features import get_extractor
            from imgsynth.evaluate.fid import fid_from_arrays
        except ImportError as exc:
            return None, f"the evaluator cannot be imported ({exc})"
        extractor = get_extractor(self.cfg.fid_extractor, preset="clean", device=str(self.device))
        real = self.holdout.images
        if len(real) <= extractor.num_features:
            return None, (f"{len(real)} held-out images, {extractor.num_features + 1} needed by "
                          f"the '{self.cfg.fid_extractor}' extractor")
        return (extractor, fid_from_arrays, real), None

    # -- checkpoints ---------------------------------------------------------------
    def checkpoint(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT, "kind": self.kind,
            "config": self.cfg.model_dump(mode="json"), "classes": self.classes,
            "step": self.step,
            "networks": {k: v.state_dict() for k, v in self.model.networks.items()},
            "optimizers": {k: v.state_dict() for k, v in self.model.optimizers.items()},
            "scalers": {k: v.state_dict() for k, v in self.precision.scalers.items()},
            # The noise generator is what the loop draws from; the global states are saved
            # too because user code and libraries may draw from them.
            "rng": {"noise": self.noise.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                    "numpy": numpy_global_state()},
            "data": {"epoch": self.step // self.batches_per_epoch,
                     "position": self.step % self.batches_per_epoch},
            "early_stopping": {"best": self.best, "bad_evals": self.bad_evals,
                               "best_by": self.best_by},
        }

    def save(self, name: str) -> None:
        save_checkpoint(self.out_dir / "checkpoints" / name, self.checkpoint())

    def resume(self) -> None:
        path = self.out_dir / "checkpoints" / "last.pt"
        if not path.exists():
            raise RecipeError("nothing to resume: no checkpoints/last.pt", file=str(self.out_dir),
                              fix="train without --resume, or give the --out of an earlier run")
        ckpt = load_checkpoint(path, self.device)
        if ckpt["kind"] != self.kind:
            raise RecipeError(f"the checkpoint is a {ckpt['kind']}, not a {self.kind}",
                              file=str(path), fix=f"use `imgsynth train {ckpt['kind']}`")
        now = self.cfg.model_dump(mode="json")
        for key in RESUME_FIXED_FIELDS + self.model.architecture_fields:
            if ckpt["config"].get(key) != now[key]:
                raise RecipeError(
                    f"cannot resume: the run was trained with {key}={ckpt['config'].get(key)!r}, "
                    f"the recipe now says {now[key]!r}", key=key, file=str(path),
                    fix="resume with the same value, or train into a new --out folder")
        load_networks(self.model.networks, ckpt["networks"], path)
        for name, opt in self.model.optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        for name, scaler in self.precision.scalers.items():
            scaler.load_state_dict(ckpt["scalers"][name])
        rng = ckpt["rng"]
        self.noise.set_state(rng["noise"].cpu())
        torch.set_rng_state(rng["torch"].cpu())
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in rng["cuda"]])
        set_numpy_global_state(rng["numpy"])
        self.step = ckpt["step"]
        stopping = ckpt["early_stopping"]
        self.best, self.bad_evals = stopping["best"], stopping["bad_evals"]
        self._truncate_metrics()
        self.log(f"resumed {self.kind} at step {self.step} from {path}")

    def _truncate_metrics(self) -> None:
        """Drop metric lines written after the checkpoint by the interrupted run."""
        path = self.out_dir / "metrics.jsonl"
        if path.exists():
            kept = [line for line in path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= self.step]
            atomic_write_text(path, "".join(line + "\n" for line in kept))

    # -- the loop ------------------------------------------------------------------
    def batch(self, step: int):
        epoch, position = divmod(step, self.batches_per_epoch)
        if self._order_epoch != epoch:
            self._order = epoch_order(len(self.train_set), self.cfg.seed, epoch).to(self.device)
            self._order_epoch = epoch
        idx = self._order[position * self.cfg.batch_size:(position + 1) * self.cfg.batch_size]
        images = (self.images[idx].float() / 255).contiguous(memory_format=self.memory_format)
        return images, (self.labels[idx] if self.cfg.conditional else None)

    def write_metrics(self, record: dict) -> None:
        with open(self.out_dir / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")

    def write_grids(self) -> None:
        grids = self.out_dir / "grids"
        samples = generate_images(self.sampler(), self.grid_z, self.grid_labels)
        save_grid(grids / f"samples_{self.step:08d}.png", samples, self.grid_cols)
        # Real images shown beside the model's own (a VAE's reconstructions): held-out ones.
        source = self.holdout if len(self.holdout) else self.train_set
        for name, (images, cols) in self.model.extra_grids(source).items():
            save_grid(grids / f"{name}_{self.step:08d}.png", images, cols)

    def evaluate(self) -> float | None:
        """FID (or VAE validation loss) on held-out images; None when there is no metric."""
        if self.fid:
            extractor, fid_from_arrays, real = self.fid
            z, labels = self._latents(self.cfg.eval_samples, EVAL_NOISE)
            fake = generate_images(self.sampler(), z, labels)
            return float(fid_from_arrays(real, fake, extractor))
        if self.best_by == "val_loss":
            real = images_to_tensor(self.holdout.images, self.device).float() / 255
            labels = torch.from_numpy(self.holdout.labels).to(self.device) if self.cfg.conditional else None
            seed = run_int_seed(self.cfg.seed, VALIDATION_NOISE)
            return self.model.validation_loss(real, labels, torch.Generator(self.device).manual_seed(seed))
        return None

    def run(self) -> TrainResult:
        cfg = self.cfg
        stopped_early = self.early_stopping_due()
        window_start, window_step = time.perf_counter(), self.step
        for net in self.model.networks.values():
            net.train()
        while self.step < cfg.steps and not stopped_early:
            images, labels = self.batch(self.step)
            metrics = self.model.train_step(images, labels, self.step, self.noise, self.precision)
            self.step += 1
            last = self.step == cfg.steps
            if self.step % cfg.log_every == 0 or last:
                now = time.perf_counter()
                record = {"step": self.step, "epoch": self.step // self.batches_per_epoch}
                record.update({k: round(float(v), 6) for k, v in metrics.items()})
                record["steps_per_s"] = round((self.step - window_step) / max(now - window_start, 1e-9), 3)
                self.write_metrics(record)
                self.log(" ".join(f"{k}={v}" for k, v in record.items()))
                window_start, window_step = now, self.step
            if self.step % cfg.grid_every == 0 or last:
                self.write_grids()
            if self.step % cfg.eval_every == 0 or last:
                stopped_early = self.record_evaluation()
            if self.step % cfg.checkpoint_every == 0 or last or stopped_early:
                self.save("last.pt")
        if stopped_early:
            self.log(f"early stopping at step {self.step}: no better {self.best_by} in "
                     f"{self.bad_evals} evaluations")
        if self.best_by == "latest":
            self.save("best.pt")
        report = self.check_memorization()
        return TrainResult(self.out_dir, self.step, stopped_early, self.best_by, self.best, report)

    def early_stopping_due(self) -> bool:
        patience = self.cfg.early_stopping_patience
        return patience is not None and self.best_by != "latest" and self.bad_evals >= patience

    def record_evaluation(self) -> bool:
        """Evaluate, keep best.pt, and say whether early stopping is due."""
        value = self.evaluate()
        if value is None:
            return False
        improved = self.best is None or value < self.best
        if improved:
            self.best, self.bad_evals = value, 0
            self.save("best.pt")
        else:
            self.bad_evals += 1
        self.write_metrics({"step": self.step, "eval": {self.best_by: round(value, 6)},
                            "best": improved})
        self.log(f"step {self.step}: {self.best_by}={value:.4f}{' (best)' if improved else ''}")
        return self.early_stopping_due()

    def check_memorization(self) -> dict | None:
        n = self.cfg.memorization_samples
        if n == 0:
            return None
        z, labels = self._latents(n, MEMORIZATION_NOISE)
        samples = generate_images(self.sampler(), z, labels)
        report = training_memorization(samples, self.train_set.images, self.holdout.images)
        atomic_write_text(self.out_dir / "memorization.json", json.dumps(report, indent=2) + "\n")
        if "ratio" in report:
            self.log(f"memorization: median nearest-training-image distance of samples "
                     f"{report['sample_nn_median']:.4f} vs held-out real "
                     f"{report['heldout_nn_median']:.4f} (ratio {report['ratio']:.2f}); "
                     f"{report['near_copies']}/{n} samples closer than the 1% held-out quantile")
        return report


def train(kind: str, cfg: TrainConfigBase, out_dir: str | Path, *, resume: bool = False,
          log: Callable[[str], None] = lambda _: None) -> TrainResult:
    """Train (or resume) a `kind` model into out_dir: checkpoints/, grids/, metrics.jsonl,
    memorization.json and config.yaml (the resolved recipe)."""
    out_dir = Path(out_dir)
    if not resume and (out_dir / "checkpoints").exists():
        raise RecipeError("the output folder already holds a training run", file=str(out_dir),
                          fix="pass --resume to continue it, or choose a new --out folder")
    run = TrainingRun(kind, cfg, out_dir, log)
    if resume:
        run.resume()
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_dir / "config.yaml", yaml.safe_dump(cfg.model_dump(mode="json"),
                                                              sort_keys=False))
    log(f"training {kind} on {len(run.train_set)} images ({len(run.classes)} classes, "
        f"{len(run.holdout)} held out) at {cfg.resolution}x{cfg.resolution}x{cfg.channels} on "
        f"{run.device}; best checkpoint by {run.best_by}")
    return run.run()
