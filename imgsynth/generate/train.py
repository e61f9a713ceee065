"""The one training loop for DCGAN and VAE, and its checkpoints.

A model family (DcganTrainer, VaeTrainer) owns its networks, optimizers and one
`train_step`; this loop owns everything else: device, mixed precision, data
order, fixed-noise grids, metrics, evaluation, early stopping, checkpoints and
the memorization check.

Exact resume: every source of randomness is either a function of (seed, step)
(the epoch permutation) or a saved generator state (the noise generator), and a
checkpoint holds networks, optimizers, grad scalers, EMA, RNG states and step.
So on CPU, N steps + resume + N steps gives bit-identical weights to 2N steps.
"""

from __future__ import annotations

import io
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import yaml

from imgsynth.core.errors import InputError, RecipeError
from imgsynth.generate.config import TrainConfigBase
from imgsynth.generate.data import TrainingImages, load_training_images, split_holdout
from imgsynth.generate.dcgan import DcganTrainer
from imgsynth.generate.vae import VaeTrainer
from imgsynth.io.atomic import atomic_write_bytes, atomic_write_text
from imgsynth.io.image import encode_image

CHECKPOINT_FORMAT = "imgsynth-generative/1"
FAMILIES = {"dcgan": DcganTrainer, "vae": VaeTrainer}
# Keys that decide the trained weights besides the architecture: resuming with other
# values would silently train a different model.
RESUME_FIXED_FIELDS = ("data", "seed", "batch_size")


@dataclass
class TrainResult:
    out_dir: Path
    step: int
    stopped_early: bool
    best_by: str  # "fid", "val_loss" or "latest"
    best_metric: float | None
    memorization: dict | None


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RecipeError("device 'cuda' is not available on this machine", key="device",
                          fix="use device: auto or cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise RecipeError("device 'mps' is not available on this machine", key="device",
                          fix="use device: auto or cpu")
    return torch.device(name)


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


def derived_seed(seed: int, *purpose: int) -> int:
    """An independent 63-bit seed for one purpose (data order of an epoch, grid noise...)."""
    return int(np.random.SeedSequence([seed, *purpose]).generate_state(2, np.uint64)[0] >> 1)


def epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    """The permutation of the training set for one epoch: a pure function of (seed, epoch)."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(derived_seed(seed, 1, epoch)))


def images_to_uint8(x01: torch.Tensor) -> np.ndarray:
    """(B, C, H, W) floats in [0, 1] -> (B, H, W, C) uint8."""
    x = (x01.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


def tile_grid(images: np.ndarray, nrow: int, pad: int = 2) -> np.ndarray:
    """(B, H, W, C) uint8 -> one image, nrow images per row, `pad` black pixels between."""
    b, h, w, c = images.shape
    rows = math.ceil(b / nrow)
    grid = np.zeros((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), dtype=np.uint8)
    for i, image in enumerate(images):
        r, k = divmod(i, nrow)
        grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = image
    return grid


def save_grid(path: Path, images: np.ndarray, nrow: int) -> None:
    atomic_write_bytes(path, encode_image(tile_grid(images, nrow), "png"))


@torch.no_grad()
def generate_images(sampler: torch.nn.Module, z: torch.Tensor, labels: torch.Tensor | None,
                    batch_size: int = 256) -> np.ndarray:
    """Sampler output as uint8, in eval mode (batch norm uses its running statistics)."""
    was_training = sampler.training
    sampler.eval()
    out = [images_to_uint8(sampler.generate(z[i:i + batch_size],
                                            None if labels is None else labels[i:i + batch_size]))
           for i in range(0, len(z), batch_size)]
    sampler.train(was_training)
    return np.concatenate(out)


def memorization_check(samples: np.ndarray, train: np.ndarray, heldout: np.ndarray) -> dict:
    """Nearest-neighbour distance (RMS per pixel in [0, 1], at most 64x64) of generated
    images to the training set, against the same distance for held-out real images.

    A model that copies its training images puts many samples closer to them than
    held-out real images ever are; `near_copies` counts samples below the 1% quantile
    of the held-out distances (about 1% expected for a model that does not copy).
    """
    from imgsynth.evaluate.memorization import nearest_distances

    def pixels(images: np.ndarray) -> np.ndarray:
        if images.shape[1] > 64:
            factor = images.shape[1] // 64
            images = images.reshape(len(images), 64, factor, 64, factor, -1).mean(axis=(2, 4))
        return images.reshape(len(images), -1).astype(np.float64) / 255.0

    reference = pixels(train)
    dim = reference.shape[1]
    fake_nn = nearest_distances(pixels(samples), reference)[0] / math.sqrt(dim)
    report = {"space": f"pixels at {min(train.shape[1], 64)}px, RMS in [0, 1]",
              "samples": int(len(samples)), "training_images": int(len(train)),
              "sample_nn_median": float(np.median(fake_nn)), "sample_nn_min": float(fake_nn.min())}
    if len(heldout):
        real_nn = nearest_distances(pixels(heldout), reference)[0] / math.sqrt(dim)
        threshold = float(np.quantile(real_nn, 0.01))
        report.update({"heldout_nn_median": float(np.median(real_nn)),
                       "ratio": float(np.median(fake_nn) / max(np.median(real_nn), 1e-12)),
                       "near_copy_threshold": threshold,
                       "near_copies": int((fake_nn < threshold).sum())})
    return report


def _numpy_state() -> list:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _set_numpy_state(state: list) -> None:
    name, keys, pos, has_gauss, cached = state
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))


def load_checkpoint(path: Path, device: torch.device | str = "cpu") -> dict:
    """A checkpoint written by this trainer; anything else is an InputError."""
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


class TrainingRun:
    """State of one training run in an output folder."""

    def __init__(self, kind: str, cfg: TrainConfigBase, out_dir: Path, log: Callable[[str], None]):
        self.kind, self.cfg, self.out_dir, self.log = kind, cfg, out_dir, log
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
        self.images = self._to_device(self.train_set.images)
        self.labels = torch.from_numpy(self.train_set.labels).to(self.device)
        self.batches_per_epoch = len(self.train_set) // cfg.batch_size  # last partial batch dropped
        self._order_epoch, self._order = -1, None
        # 2. Model: the seed fixes the initial weights.
        torch.manual_seed(cfg.seed)
        self.model = FAMILIES[kind](cfg, len(self.classes), self.device)
        memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        for net in self.model.networks.values():
            net.to(self.device, memory_format=memory)
        self.memory_format = memory
        self.precision = Precision(self.device, cfg.amp, self.model.optimizers)
        self.noise = torch.Generator(self.device).manual_seed(derived_seed(cfg.seed, 2))
        self.step = 0
        self.best: float | None = None
        self.bad_evals = 0
        self.fid, why_not = self._fid_setup()
        self.best_by = ("fid" if self.fid else
                        "val_loss" if kind == "vae" and len(self.holdout) else "latest")
        if why_not:
            log(f"FID off: {why_not}; best checkpoint by {self.best_by}")
        # 3. Fixed noise for the grids: one column per class when conditional.
        self.grid_cols = (len(self.classes) if cfg.conditional and len(self.classes) <= 16
                          else max(1, int(math.sqrt(cfg.grid_size))))
        self.grid_z, self.grid_labels = self._latents(cfg.grid_size, derived_seed(cfg.seed, 3))

    def _to_device(self, images_nhwc: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(images_nhwc).permute(0, 3, 1, 2).contiguous().to(self.device)

    def _latents(self, n: int, seed: int):
        z = torch.randn(n, self.model.latent_dim, generator=torch.Generator().manual_seed(seed))
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
                    "numpy": _numpy_state()},
            "data": {"epoch": self.step // self.batches_per_epoch,
                     "position": self.step % self.batches_per_epoch},
            "early_stopping": {"best": self.best, "bad_evals": self.bad_evals,
                               "best_by": self.best_by},
        }

    def save(self, name: str) -> None:
        buf = io.BytesIO()
        torch.save(self.checkpoint(), buf)
        atomic_write_bytes(self.out_dir / "checkpoints" / name, buf.getvalue())

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
        _set_numpy_state(rng["numpy"])
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
        cfg, grids = self.cfg, self.out_dir / "grids"
        samples = generate_images(self.model.sampler(), self.grid_z, self.grid_labels)
        save_grid(grids / f"samples_{self.step:08d}.png", samples, self.grid_cols)
        if self.kind == "vae":
            source = self.holdout if len(self.holdout) else self.train_set
            # Rows of originals, each followed by the row of their reconstructions.
            n = min(len(source), max(8, cfg.grid_size // 2))
            cols = min(n, 8)
            n -= n % cols
            real = self._to_device(source.images[:n]).float() / 255
            labels = torch.from_numpy(source.labels[:n]).to(self.device) if cfg.conditional else None
            self.model.vae.eval()
            recon = images_to_uint8(self.model.reconstruct(real, labels))
            self.model.vae.train()
            pairs = [block for start in range(0, n, cols)
                     for block in (source.images[start:start + cols], recon[start:start + cols])]
            save_grid(grids / f"recon_{self.step:08d}.png", np.concatenate(pairs), cols)

    def evaluate(self) -> float | None:
        """FID (or VAE validation loss) on held-out images; None when there is no metric."""
        if self.fid:
            extractor, fid_from_arrays, real = self.fid
            z, labels = self._latents(self.cfg.eval_samples, derived_seed(self.cfg.seed, 4))
            fake = generate_images(self.model.sampler(), z, labels)
            return float(fid_from_arrays(real, fake, extractor))
        if self.kind == "vae" and len(self.holdout):
            real = self._to_device(self.holdout.images).float() / 255
            labels = torch.from_numpy(self.holdout.labels).to(self.device) if self.cfg.conditional else None
            gen = torch.Generator(self.device).manual_seed(derived_seed(self.cfg.seed, 5))
            self.model.vae.eval()
            loss = self.model.validation_loss(real, labels, gen)
            self.model.vae.train()
            return loss
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
        z, labels = self._latents(n, derived_seed(self.cfg.seed, 6))
        samples = generate_images(self.model.sampler(), z, labels)
        report = memorization_check(samples, self.train_set.images, self.holdout.images)
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
