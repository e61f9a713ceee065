"""Every GPU path of imgsynth, measured against its plain peer in the same run, in one command.

    python benchmarks/gpu.py [--json OUT.json]          # on a CUDA machine: the full plan
    python benchmarks/gpu.py --toy [--json OUT.json]    # tiny sizes (auto when CUDA is absent)
    python benchmarks/gpu.py --estimate                 # the full plan's duration, from FLOPs

Prints one table (section, what, ours, peer, ratio, units, notes) and a list of checks
(labels exact, images regenerate), and writes both as JSON with the device, driver and
library versions. The JSON is rewritten after every section, so a run cut short keeps
what it measured. Exit code 0: every row ran and every check passed; 1 otherwise.

Sections (docs/gpu.md says what each row means and which defaults it decides):
- augment: BatchAugment on the device (flip, rotate, colour, noise with boxes and masks)
  vs the per-sample path (AugmentedDataset in a DataLoader with one worker per core).
- train: steps/s of `imgsynth train dcgan|vae` (its GPU options: AMP, channels_last, fused
  Adam), read from its metrics.jsonl, vs the pytorch/examples DCGAN and a plain VAE in fp32.
- evaluate: Inception features images/s vs torchmetrics' FrechetInceptionDistance.update on
  the same images; FID of two sets end to end, both ways (random Inception weights when
  the real file is absent, said in the output).
- diffusion: an SD 1.5-architecture pipeline with random weights (from configs, nothing
  downloaded), 512x512, 30 steps, batch 1 and 4: imgsynth's defaults vs plain
  StableDiffusionPipeline fp32 defaults; then regeneration checks through recipe runs,
  an SDXL-class tiny pipeline, and the extra options (bf16, channels_last off, compile) as
  far as --budget-s allows.

Toy mode runs the same code at tiny sizes (tiny SD/SDXL configs, 32x32 images, a few
steps); its figures say nothing about speed, they keep this script from rotting
(tests/benchmarks/test_gpu_toy.py). GPU figures are only ever those of a GPU run.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download: every model here is built from configs


def internals() -> SimpleNamespace:
    """The non-public imgsynth functions this benchmark uses, imported in one place so that
    a move inside the package is fixed here. Everything else goes through imgsynth.torch,
    imgsynth.run.run_recipe, the CLI app and imgsynth.evaluate."""
    from imgsynth.core.rng import sample_rng
    from imgsynth.core.stage import BuildContext
    from imgsynth.evaluate.features import find_inception_weights
    from imgsynth.generate.diffusion import regenerate
    from imgsynth.recipes.load import load_recipe

    def build_source(recipe_path: Path):
        """A recipe's source object (a run's workers build theirs the same way)."""
        return load_recipe(recipe_path).source.build(BuildContext())

    def source_unet(source):
        return source.pipe.unet  # DiffusionSource's pipeline (its UNet may be compiled)

    return SimpleNamespace(build_source=build_source, source_unet=source_unet,
                           sample_rng=sample_rng, regenerate=regenerate,
                           real_inception_weights=lambda: find_inception_weights(None))


# -- the plan: every size in one place -----------------------------------------------------
@dataclass(frozen=True)
class Plan:
    name: str
    # diffusion
    sd_model: str  # "sd15" (full SD 1.5 architecture) or "tiny"
    sd_side: int
    sd_steps: int
    sd_warm_steps: int  # the plain pipeline's warm-up call (its steps are a call argument)
    sd_b1_images: int  # timed images at batch 1 (imgsynth)
    sd_b4_calls: int  # timed calls at batch 4 (imgsynth)
    sd_plain_b1_images: int  # the same for plain diffusers (fp32 on a GPU: the slow side)
    sd_plain_b4_calls: int
    sd_check_images: int  # images per regeneration-check run
    # augment
    aug_batches: tuple[int, ...]
    aug_sizes: tuple[tuple[int, int], ...]  # (height, width)
    aug_calls: int  # timed BatchAugment calls per row
    aug_loader_batch: int  # DataLoader batch of the per-sample path
    aug_batches_per_worker: int  # timed loader batches per worker
    # train
    train_runs: tuple[tuple[str, int, tuple[tuple[str, object], ...]], ...]  # (kind, side, overrides)
    train_batch: int
    train_steps: int
    train_log_every: int
    dcgan_width: int  # ngf = ndf
    vae_width: int  # nf
    vae_latent: int
    train_data_limit: int | None
    # evaluate
    eval_batches: tuple[int, ...]
    eval_images: int  # per throughput row
    fid_images: int  # per set
    fid_extractor: str  # "inception" (GPU) or "builtin" (toy: Inception FID needs > 2048 per set)


TRAIN_RUNS = (("dcgan", 64, ()), ("dcgan", 64, (("amp", False),)),
              ("dcgan", 64, (("channels_last", False),)), ("dcgan", 128, ()),
              ("vae", 64, ()), ("vae", 128, ()))

GPU_PLAN = Plan(
    name="gpu", sd_model="sd15", sd_side=512, sd_steps=30, sd_warm_steps=2, sd_b1_images=3,
    sd_b4_calls=2, sd_plain_b1_images=2, sd_plain_b4_calls=1, sd_check_images=4,
    aug_batches=(64, 256), aug_sizes=((256, 256), (480, 640)), aug_calls=5, aug_loader_batch=8,
    aug_batches_per_worker=6,
    train_runs=TRAIN_RUNS, train_batch=64, train_steps=500, train_log_every=100, dcgan_width=64,
    vae_width=32, vae_latent=64, train_data_limit=None,
    eval_batches=(64, 256), eval_images=2048, fid_images=10_000, fid_extractor="inception")

TOY_PLAN = Plan(
    name="toy", sd_model="tiny", sd_side=32, sd_steps=3, sd_warm_steps=2, sd_b1_images=2,
    sd_b4_calls=1, sd_plain_b1_images=2, sd_plain_b4_calls=1, sd_check_images=4,
    aug_batches=(4, 8), aug_sizes=((32, 32), (24, 40)), aug_calls=2, aug_loader_batch=4,
    aug_batches_per_worker=2,
    train_runs=tuple((kind, side // 2, o) for kind, side, o in TRAIN_RUNS), train_batch=8,
    train_steps=6, train_log_every=2, dcgan_width=8, vae_width=8, vae_latent=16,
    train_data_limit=64,
    eval_batches=(2, 4), eval_images=4, fid_images=128, fid_extractor="builtin")

SECTIONS = ("augment", "train", "evaluate", "diffusion")


# -- device helpers --------------------------------------------------------------------------
class Device:
    """The device under test; on a CPU every CUDA-only call is a no-op."""

    def __init__(self, name: str):
        import torch

        self.torch = torch
        self.name = name
        self.cuda = name.startswith("cuda")

    def sync(self) -> None:
        if self.cuda:
            self.torch.cuda.synchronize()

    def seconds(self, fn) -> float:
        self.sync()
        start = time.perf_counter()
        fn()
        self.sync()
        return time.perf_counter() - start

    def reset_peak(self) -> None:
        if self.cuda:
            self.sync()
            self.torch.cuda.reset_peak_memory_stats()

    def peak_gib(self) -> float | None:
        return self.torch.cuda.max_memory_allocated() / 2**30 if self.cuda else None

    def free(self) -> None:
        gc.collect()
        if self.cuda:
            self.torch.cuda.empty_cache()


def device_info(dev: Device, plan: Plan, workers: int) -> dict:
    import torch

    info = {"mode": plan.name, "device": dev.name, "cpu_cores": os.cpu_count(),
            "dataloader_workers": workers, "python": platform.python_version(),
            "torch": torch.__version__, "cuda": torch.version.cuda,
            "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    for package in ("imgsynth", "diffusers", "transformers", "torchvision", "torchmetrics",
                    "torch-fidelity", "albumentations"):
        try:
            from importlib import metadata

            info[package] = metadata.version(package)
        except Exception:  # noqa: BLE001 - a version we cannot read is recorded as such
            info[package] = "not installed"
    if dev.cuda:
        index = torch.device(dev.name).index
        index = torch.cuda.current_device() if index is None else index
        props = torch.cuda.get_device_properties(index)
        info.update(gpu=torch.cuda.get_device_name(index), gpu_memory_gib=round(props.total_memory / 2**30, 1),
                    driver=nvidia_driver(), tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                    tf32_cudnn=torch.backends.cudnn.allow_tf32)
    else:
        info.update(gpu=None, driver=None, cpu=platform.processor() or platform.machine())
    with contextlib.suppress(OSError):
        shm = os.statvfs("/dev/shm")  # DataLoader workers hand tensors over through it
        info["dev_shm_gib"] = round(shm.f_bavail * shm.f_frsize / 2**30, 1)
    return info


def nvidia_driver() -> str:
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown (nvidia-smi not found)"


# -- the report ------------------------------------------------------------------------------
class Report:
    """Rows (ours vs peer), checks (pass/fail or a measured value) and errors, saved as JSON
    after every section."""

    def __init__(self, info: dict, json_path: Path | None):
        self.info, self.json_path = info, json_path
        self.rows: list[dict] = []
        self.checks: list[dict] = []
        self.errors: list[dict] = []
        self.skipped: list[dict] = []
        self.estimate: dict | None = None
        self.started = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def row(self, section: str, what: str, ours: float, peer: float, units: str, notes: str = "") -> None:
        row = {"section": section, "what": what, "ours": float(ours), "peer": float(peer),
               "ratio": float(ours) / float(peer) if peer else float("nan"), "units": units, "notes": notes}
        self.rows.append(row)
        log(f"  {what}: ours {ours:.4g} | peer {peer:.4g} {units} | ratio {row['ratio']:.2f}")

    def check(self, section: str, what: str, passed: bool | None, value=None, notes: str = "") -> None:
        """passed None: a measured value to record, not a pass/fail condition."""
        self.checks.append({"section": section, "what": what, "passed": passed,
                            "value": value, "notes": notes})
        result = "measured" if passed is None else ("pass" if passed else "FAIL")
        log(f"  check {what}: {result} {'' if value is None else value}")

    def skip(self, section: str, what: str, why: str) -> None:
        self.skipped.append({"section": section, "what": what, "why": why})
        log(f"  skipped {what}: {why}")

    @contextlib.contextmanager
    def guard(self, section: str, what: str):
        """One failing measurement is recorded and the rest of the run goes on."""
        try:
            yield
        except Exception as exc:  # noqa: BLE001 - recorded, printed, and the exit code says so
            tail = traceback.format_exc().strip().splitlines()[-6:]
            self.errors.append({"section": section, "what": what,
                                "error": f"{type(exc).__name__}: {exc}", "traceback": tail})
            log(f"  ERROR in {section} / {what}: {type(exc).__name__}: {exc}")

    def as_json(self) -> dict:
        return {"info": self.info, "seconds": round(self.elapsed(), 1), "rows": self.rows,
                "checks": self.checks, "skipped": self.skipped, "errors": self.errors,
                "gpu_estimate": self.estimate}

    def save(self) -> None:
        if self.json_path is not None:
            self.json_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.json_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.as_json(), indent=2, default=str) + "\n")
            tmp.replace(self.json_path)

    def table(self) -> str:
        info = self.info
        lines = [f"imgsynth GPU benchmark, {info['mode']} mode on {info.get('gpu') or info['device']}"
                 f" (driver {info.get('driver')}), torch {info['torch']}, CUDA {info['cuda']}, "
                 f"diffusers {info['diffusers']}, {self.elapsed():.0f} s"]
        if info["mode"] != "gpu":
            lines.append("TOY MODE: tiny sizes; these figures are NOT performance claims.")
        head = f"{'section':10s} {'what':58s} {'ours':>10s} {'peer':>10s} {'ratio':>6s}  units / notes"
        lines += ["", head, "-" * len(head)]
        for r in self.rows:
            lines.append(f"{r['section']:10s} {r['what']:58s} {r['ours']:10.4g} {r['peer']:10.4g} "
                         f"{r['ratio']:6.2f}  {r['units']}" + (f"; {r['notes']}" if r["notes"] else ""))
        lines += ["", "checks:"]
        for c in self.checks:
            result = "measured" if c["passed"] is None else ("pass" if c["passed"] else "FAIL")
            value = "" if c["value"] is None else f" = {c['value']}"
            lines.append(f"  [{result}] {c['section']}: {c['what']}{value}" +
                         (f" ({c['notes']})" if c["notes"] else ""))
        for s in self.skipped:
            lines.append(f"  [skipped] {s['section']}: {s['what']} ({s['why']})")
        for e in self.errors:
            lines.append(f"  [ERROR] {e['section']}: {e['what']}: {e['error']}")
        return "\n".join(lines)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def median_after_first(rates: list[float]) -> float:
    """The first window holds the warm-up (allocator, cuDNN plans); the median of the rest."""
    return statistics.median(rates[1:] if len(rates) > 1 else rates)


# == augment: BatchAugment on the device vs the per-sample DataLoader path ==================
AUG_TRANSFORMS = [{"name": "imgsynth.HorizontalFlip", "p": 0.5},
                  {"name": "imgsynth.Rotate", "limit": 30},
                  {"name": "RandomBrightnessContrast", "brightness_limit": 0.1,
                   "contrast_limit": 0.1, "p": 1.0},
                  {"name": "imgsynth.GaussianNoise", "sigma": [5, 10]}]
AUG_BATCH = {"hflip": 0.5, "rotate_limit": 30.0, "brightness": 0.1, "contrast": 0.1,
             "noise_sigma": (5.0, 10.0)}
AUG_OBJECTS = 3


def disks(n: int, height: int, width: int, seed: int):
    """n images (n, 3, H, W) uint8 with AUG_OBJECTS disks each, their masks and tight boxes."""
    import torch

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    images = rng.integers(0, 80, (n, 3, height, width), dtype=np.uint8)
    masks = np.zeros((n, AUG_OBJECTS, height, width), np.uint8)
    for i in range(n):
        for k in range(AUG_OBJECTS):
            r = max(2, int(rng.integers(min(height, width) // 12, min(height, width) // 5 + 1)))
            cx, cy = int(rng.integers(r, width - r)), int(rng.integers(r, height - r))
            disk = (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r
            masks[i, k] = disk
            images[i][:, disk] = rng.integers(120, 256, (3, 1), dtype=np.uint8)
    images, masks = torch.from_numpy(images), torch.from_numpy(masks)
    return images, masks, [tight_boxes(m) for m in masks]


def tight_boxes(masks):
    """(N, 4) xyxy tight boxes (exclusive right/bottom) of (N, H, W) masks; zeros when empty.
    Written here with torch, independently of imgsynth's own, to check its labels."""
    import torch

    rows, cols = masks.bool().any(dim=2), masks.bool().any(dim=1)
    out = torch.zeros(len(masks), 4)
    for i in range(len(masks)):
        ys, xs = torch.nonzero(rows[i]).flatten(), torch.nonzero(cols[i]).flatten()
        if len(ys):
            out[i] = torch.tensor([xs[0], ys[0], xs[-1] + 1, ys[-1] + 1], dtype=torch.float32)
    return out


def collate_list(items):
    """Named (not a lambda) so the DataLoader can hand it to spawned workers too."""
    return items


class DiskSet:
    """A map-style dataset of (CHW uint8 image, target) over a small pool of distinct images."""

    def __init__(self, images, masks, boxes, length: int):
        self.images, self.masks, self.boxes, self.length = images, masks, boxes, length

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        import torch

        i = index % len(self.images)
        return self.images[i], {"boxes": self.boxes[i].clone(), "masks": self.masks[i],
                                "labels": torch.arange(AUG_OBJECTS)}


def boxes_match_masks(boxes, masks) -> bool:
    import torch

    return all(torch.equal(b.float().cpu(), tight_boxes(m.cpu())) for b, m in zip(boxes, masks))


def dihedral_match(image, mask, out_image, out_mask) -> bool:
    """out is one exact flip/quarter turn of (image, mask), the same one for both."""
    import torch

    for k in range(4):
        for flip in (False, True):
            a, m = (image.flip(-1), mask.flip(-1)) if flip else (image, mask)
            a, m = torch.rot90(a, k, dims=(-2, -1)), torch.rot90(m, k, dims=(-2, -1))
            if a.shape == out_image.shape and torch.equal(a, out_image) and torch.equal(m, out_mask):
                return True
    return False


def augment_section(plan: Plan, dev: Device, report: Report, workers: int) -> None:
    import torch

    from imgsynth.torch import AugmentedDataset, BatchAugment, RecipeTransform

    for height, width in plan.aug_sizes:
        size = f"{width}x{height}"
        pool = 32 if height * width <= 256 * 256 else 16
        images, masks, boxes = disks(pool, height, width, seed=height * width)

        # 1. The per-sample path: one rate per image size (each sample is augmented alone,
        #    so the DataLoader batch does not change the work), all workers busy.
        cpu_rate = None
        with report.guard("augment", f"per-sample path {size}"):
            n = plan.aug_loader_batch * workers * plan.aug_batches_per_worker
            dataset = AugmentedDataset(DiskSet(images, masks, boxes, n), AUG_TRANSFORMS, seed=0)
            loader = torch.utils.data.DataLoader(
                dataset, batch_size=plan.aug_loader_batch, num_workers=workers,
                collate_fn=collate_list, persistent_workers=workers > 0)
            exact = True
            for batch in loader:  # warm-up epoch (starts the workers), labels checked here
                exact &= boxes_match_masks([t["boxes"] for _, t in batch], [t["masks"] for _, t in batch])
            dataset.set_epoch(1)
            # Timed epoch: nothing kept (a kept tensor pins its shared memory in /dev/shm).
            start = time.perf_counter()
            count = sum(len(batch) for batch in loader)
            cpu_rate = count / (time.perf_counter() - start)
            del loader
            report.check("augment", f"per-sample path {size}: every box is the tight box of its mask",
                         exact, notes=f"{count} images, {workers} DataLoader workers")

        # 2. BatchAugment on the device, same image size, each batch size.
        # the torch kernels: what runs on a GPU, also in toy mode on a CPU (which would pick OpenCV)
        augment = BatchAugment(seed=0, kernels="torch", **AUG_BATCH)
        for b in plan.aug_batches:
            with report.guard("augment", f"BatchAugment B={b} {size}"):
                pick = [i % pool for i in range(b)]
                x = images[pick].to(dev.name)
                bx = [boxes[i].to(dev.name) for i in pick]
                mk = [masks[i].to(dev.name) for i in pick]
                out = augment(x, bx, mk, batch_index=0)  # warm-up
                seconds = dev.seconds(lambda: [augment(x, bx, mk, batch_index=i)
                                               for i in range(1, 1 + plan.aug_calls)])
                rate = b * plan.aug_calls / seconds
                if cpu_rate:
                    report.row("augment", f"BatchAugment B={b} {size}, boxes+masks", rate, cpu_rate,
                               "images/s", f"ours on {dev.name}, batch resident there; peer: "
                               f"AugmentedDataset, {workers} DataLoader workers")
                else:  # the peer failed (see errors): keep our figure
                    report.check("augment", f"BatchAugment B={b} {size}: images/s (no peer)", None, round(rate, 1))
                report.check("augment", f"BatchAugment B={b} {size}: every box is the tight box of its mask",
                             boxes_match_masks(out[1], out[2]))

        # 3. Exact geometry on the device: pixels and masks take the same exact flip/turn.
        with report.guard("augment", f"exact flips {size}"):
            b = plan.aug_batches[0]
            pick = [i % pool for i in range(b)]
            x, mk = images[pick].to(dev.name), [masks[i].to(dev.name) for i in pick]
            bx = [boxes[i].to(dev.name) for i in pick]
            geometry = BatchAugment(seed=1, hflip=0.5, vflip=0.5, rot90=0.5)
            out, out_boxes, out_masks = geometry(x, bx, mk, batch_index=0)
            exact = all(dihedral_match(x[i], mk[i], out[i], out_masks[i]) for i in range(b))
            flipped, flipped_boxes, flipped_masks = BatchAugment(seed=2, hflip=1.0)(x, bx, mk, batch_index=0)
            mirrored = [torch.stack([width - bb[:, 2], bb[:, 1], width - bb[:, 0], bb[:, 3]], -1) for bb in bx]
            exact_flip = (torch.equal(flipped, x.flip(-1))
                          and all(torch.equal(m2, m.flip(-1)) for m2, m in zip(flipped_masks, mk))
                          and all(torch.equal(b2.float(), m.float()) for b2, m in zip(flipped_boxes, mirrored)))
            report.check("augment", f"BatchAugment on {dev.name} {size}: flips/quarter turns exact "
                         "(pixels, masks, boxes)", exact and exact_flip
                         and boxes_match_masks(out_boxes, out_masks))
            transform = RecipeTransform([{"name": "imgsynth.HorizontalFlip", "p": 1.0}])
            image, target = transform(images[0], {"boxes": boxes[0], "masks": masks[0],
                                                  "labels": torch.arange(AUG_OBJECTS)}, index=0)
            report.check("augment", f"per-sample path {size}: horizontal flip exact (pixels, masks, boxes)",
                         torch.equal(image, images[0].flip(-1)) and torch.equal(target["masks"], masks[0].flip(-1))
                         and torch.equal(target["boxes"], torch.stack(
                             [width - boxes[0][:, 2], boxes[0][:, 1], width - boxes[0][:, 0], boxes[0][:, 3]], -1)))
        dev.free()


# == train: imgsynth's trainer vs the pytorch/examples DCGAN and a plain VAE ================
def reference_networks():
    """pytorch/examples' DCGAN (64x64: its exact layers; 128x128: one more block of the same
    kind) and a plain convolutional VAE of imgsynth's default shape, in plain PyTorch."""
    from torch import nn

    def mults(side: int) -> list[int]:
        levels = int(math.log2(side)) - 2
        return [min(8, 2 ** (levels - 1 - i)) for i in range(levels)]  # 8, 4, 2, 1 at 64x64

    class RefGenerator(nn.Module):
        def __init__(self, side, nz, ngf, nc=3):
            super().__init__()
            m = mults(side)
            layers = [nn.ConvTranspose2d(nz, ngf * m[0], 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * m[0]), nn.ReLU(True)]
            for a, b in zip(m, m[1:]):
                layers += [nn.ConvTranspose2d(ngf * a, ngf * b, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * b), nn.ReLU(True)]
            layers += [nn.ConvTranspose2d(ngf * m[-1], nc, 4, 2, 1, bias=False), nn.Tanh()]
            self.main = nn.Sequential(*layers)

        def forward(self, x):
            return self.main(x)

    class RefDiscriminator(nn.Module):
        def __init__(self, side, ndf, nc=3):
            super().__init__()
            m = mults(side)[::-1]
            layers = [nn.Conv2d(nc, ndf * m[0], 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
            for a, b in zip(m, m[1:]):
                layers += [nn.Conv2d(ndf * a, ndf * b, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * b),
                           nn.LeakyReLU(0.2, inplace=True)]
            layers += [nn.Conv2d(ndf * m[-1], 1, 4, 1, 0, bias=False), nn.Sigmoid()]
            self.main = nn.Sequential(*layers)

        def forward(self, x):
            return self.main(x)

    class RefVae(nn.Module):
        def __init__(self, side, nf, latent, nc=3):
            super().__init__()
            m = mults(side)[::-1]
            enc, c = [], nc
            for k in m:
                enc += [nn.Conv2d(c, nf * k, 4, 2, 1, bias=False), nn.BatchNorm2d(nf * k), nn.LeakyReLU(0.2, inplace=True)]
                c = nf * k
            self.encoder, self.top = nn.Sequential(*enc), c
            self.mu, self.logvar = nn.Linear(c * 16, latent), nn.Linear(c * 16, latent)
            self.up = nn.Linear(latent, c * 16)
            dec = []
            for a, b in zip(m[::-1], m[::-1][1:]):
                dec += [nn.BatchNorm2d(nf * a), nn.ReLU(True), nn.ConvTranspose2d(nf * a, nf * b, 4, 2, 1, bias=False)]
            dec += [nn.BatchNorm2d(nf * m[0]), nn.ReLU(True), nn.ConvTranspose2d(nf * m[0], nc, 4, 2, 1)]
            self.decoder = nn.Sequential(*dec)

        def forward(self, x):
            h = self.encoder(x).flatten(1)
            return self.mu(h), self.logvar(h)

    return RefGenerator, RefDiscriminator, RefVae


def weights_init(module) -> None:
    from torch import nn

    name = type(module).__name__
    if "Conv" in name:
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def reference_step(kind: str, side: int, plan: Plan, dev: Device):
    """One training step of the fp32 reference, as a closure over its own state."""
    import torch
    import torch.nn.functional as F

    RefGenerator, RefDiscriminator, RefVae = reference_networks()
    torch.manual_seed(0)
    b, nz = plan.train_batch, 100
    data = torch.randint(0, 256, (max(4 * b, 256), 3, side, side), dtype=torch.uint8, device=dev.name)
    if kind == "dcgan":
        net_g = RefGenerator(side, nz, plan.dcgan_width).to(dev.name)
        net_d = RefDiscriminator(side, plan.dcgan_width).to(dev.name)
        net_g.apply(weights_init)
        net_d.apply(weights_init)
        criterion = torch.nn.BCELoss()
        opt_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
        opt_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))

        def step():  # pytorch/examples/dcgan/main.py, one iteration
            real = data[torch.randint(0, len(data), (b,), device=dev.name)].float() / 127.5 - 1
            net_d.zero_grad()
            label = torch.full((b,), 1.0, device=dev.name)
            criterion(net_d(real).view(-1), label).backward()
            fake = net_g(torch.randn(b, nz, 1, 1, device=dev.name))
            label.fill_(0.0)
            criterion(net_d(fake.detach()).view(-1), label).backward()
            opt_d.step()
            net_g.zero_grad()
            label.fill_(1.0)
            criterion(net_d(fake).view(-1), label).backward()
            opt_g.step()
        return step

    vae = RefVae(side, plan.vae_width, plan.vae_latent).to(dev.name)
    opt = torch.optim.Adam(vae.parameters(), lr=1e-3)

    def step():
        x = data[torch.randint(0, len(data), (b,), device=dev.name)].float() / 255
        mu, logvar = vae(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = vae.decoder(vae.up(z).view(-1, vae.top, 4, 4))
        loss = (F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
                - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())) / b
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def reference_rate(step, plan: Plan, dev: Device) -> float:
    """Steps/s in windows of log_every steps, each ending in a sync, as the trainer logs them."""
    rates = []
    for _ in range(plan.train_steps // plan.train_log_every):
        rates.append(plan.train_log_every / dev.seconds(lambda: [step() for _ in range(plan.train_log_every)]))
    return median_after_first(rates)


def imgsynth_train_rate(kind: str, side: int, overrides: dict, plan: Plan, dev: Device, work: Path) -> float:
    """`imgsynth train KIND RECIPE` through the CLI; steps/s from its metrics.jsonl."""
    import yaml
    from typer.testing import CliRunner

    from imgsynth.cli import app

    tag = "-".join([kind, str(side)] + [f"{k}{v}" for k, v in overrides.items()])
    folder = work / "train" / tag
    folder.mkdir(parents=True, exist_ok=True)
    s = plan.train_steps
    recipe = {"data": {"kind": "digits", "holdout_fraction": 0.0, "limit": plan.train_data_limit},
              "resolution": side, "channels": 3, "batch_size": plan.train_batch, "steps": s,
              "log_every": plan.train_log_every, "grid_every": s, "grid_size": 16,
              "checkpoint_every": s, "eval_every": s, "memorization_samples": 0,
              "device": "cuda" if dev.cuda else "cpu", **overrides}
    recipe.update({"nz": 100, "ngf": plan.dcgan_width, "ndf": plan.dcgan_width} if kind == "dcgan"
                  else {"nf": plan.vae_width, "latent_dim": plan.vae_latent})
    path = folder / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    result = CliRunner().invoke(app, ["train", kind, str(path), "--out", str(folder / "run"), "--quiet"])
    if result.exit_code != 0:
        raise RuntimeError(f"imgsynth train {kind} exited {result.exit_code}: {result.output[-800:]}"
                           + ("".join(traceback.format_exception(result.exception))[-1500:]
                              if result.exception else ""))
    lines = (folder / "run" / "metrics.jsonl").read_text().splitlines()
    rates = [r["steps_per_s"] for r in map(json.loads, lines) if "steps_per_s" in r]
    return median_after_first(rates)


def train_section(plan: Plan, dev: Device, report: Report, work: Path) -> None:
    references: dict[tuple[str, int], float] = {}
    for kind, side, overrides in plan.train_runs:
        overrides = dict(overrides)
        options = ", ".join(f"{k}: {str(v).lower()}" for k, v in overrides.items()) or "defaults"
        what = f"{kind.upper()} {side}x{side} batch {plan.train_batch}, imgsynth {options}"
        with report.guard("train", what):
            if (kind, side) not in references:
                references[(kind, side)] = reference_rate(reference_step(kind, side, plan, dev), plan, dev)
            ours = imgsynth_train_rate(kind, side, overrides, plan, dev, work)
            peer = ("pytorch/examples DCGAN" if kind == "dcgan" else "plain VAE (same layers)")
            gpu_options = ("AMP fp16 + GradScaler, channels_last, fused Adam" if dev.cuda
                           else "CPU: AMP and fused Adam are off there")
            report.row("train", what, ours, references[(kind, side)], "steps/s",
                       f"ours: `imgsynth train {kind}` ({gpu_options}; overrides: {options}), median "
                       f"of metrics.jsonl windows; peer: {peer}, fp32, {plan.train_steps} steps")
        dev.free()


# == evaluate: Inception features and FID vs torchmetrics ====================================
def noise_images(n: int, side: int, seed: int) -> np.ndarray:
    """(n, side, side, 3) uint8: smooth random colour fields (upscaled noise)."""
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, side // 8, side // 8, 3), dtype=np.uint8)
    return np.stack([cv2.resize(s, (side, side), interpolation=cv2.INTER_CUBIC) for s in small])


def random_inception_weights(path: Path) -> Path:
    """A state_dict of torch-fidelity's InceptionV3 (the FID network) with seeded random init:
    the work per image is that of the real weights; only the numbers mean nothing. The same
    file benchmarks/evaluate.py makes."""
    from benchmarks.evaluate import random_inception_weights as make

    return make(path)


def evaluate_section(plan: Plan, dev: Device, report: Report, work: Path, weights: Path | None) -> None:
    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance

    from imgsynth.evaluate import features_from_arrays, fid_from_arrays, get_extractor

    real_weights = weights or internals().real_inception_weights()
    kind = "real" if real_weights is not None else "random (the real weights file is absent)"
    if real_weights is None:
        real_weights = random_inception_weights(work / "inception-random.pth")
    report.info["inception_weights"] = kind
    note = f"Inception weights: {kind}"

    def batches(images: np.ndarray, b: int):
        for i in range(0, len(images), b):
            yield torch.from_numpy(images[i:i + b]).permute(0, 3, 1, 2).to(dev.name)

    images = noise_images(plan.eval_images, 64, seed=1)
    for b in plan.eval_batches:
        with report.guard("evaluate", f"Inception features batch {b}"):
            extractor = get_extractor("inception", preset="clean", weights=real_weights, device=dev.name)
            features_from_arrays(images[:b], extractor, batch_size=b)  # warm-up
            ours = len(images) / dev.seconds(lambda: features_from_arrays(images, extractor, batch_size=b))
            metric = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(real_weights)).to(dev.name)
            metric.update(next(batches(images, b)), real=True)  # warm-up
            metric.reset()
            peer = len(images) / dev.seconds(lambda: [metric.update(x, real=True) for x in batches(images, b)])
            report.row("evaluate", f"Inception features, 64x64 -> 299, batch {b}", ours, peer, "images/s",
                       f"ours: features_from_arrays (host uint8 in, float64 features out); peer: "
                       f"torchmetrics FID.update (also accumulates the covariance); {note}")
            del extractor, metric
            dev.free()

    n = plan.fid_images
    with report.guard("evaluate", f"FID {n} vs {n}"):
        real, fake = noise_images(n, 64, seed=2), noise_images(n, 64, seed=3)
        b = plan.eval_batches[-1]
        if plan.fid_extractor == "inception":
            extractor = get_extractor("inception", preset="clean", weights=real_weights, device=dev.name)
            metric = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(real_weights))
            how = note
        else:  # toy: Inception FID needs more than 2048 images per set, so the builtin network
            extractor = get_extractor("builtin", preset="clean", device=dev.name)
            metric = FrechetInceptionDistance(feature=ExtractorModule(extractor))
            how = "toy: builtin 96-d extractor for both (Inception FID needs > 2048 images per set)"
        metric = metric.to(dev.name)
        fid = {}

        def ours_run():
            fid["ours"] = fid_from_arrays(real, fake, extractor, preset="clean", batch_size=b)

        def peer_run():
            for x in batches(real, b):
                metric.update(x, real=True)
            for x in batches(fake, b):
                metric.update(x, real=False)
            fid["peer"] = float(metric.compute())

        ours = 2 * n / dev.seconds(ours_run)
        peer = 2 * n / dev.seconds(peer_run)
        report.row("evaluate", f"FID end to end, {n} vs {n} images 64x64, batch {b}", ours, peer,
                   "images/s", f"ours: fid_from_arrays; peer: torchmetrics FrechetInceptionDistance "
                   f"update + compute; {how}")
        a, c = fid["ours"], fid["peer"]
        report.check("evaluate", f"FID {n} vs {n}: imgsynth's value equals torchmetrics'",
                     abs(a - c) <= 1e-3 * max(abs(a), abs(c)) + 1e-6, f"{a:.6g} vs {c:.6g}", how)
        dev.free()


def ExtractorModule(extractor):  # noqa: N802 - a class built on demand (torch imported lazily)
    """An imgsynth extractor as the nn.Module torchmetrics' FID accepts as `feature`."""
    import torch

    class Wrapped(torch.nn.Module):
        num_features = extractor.num_features

        def forward(self, x):
            feats, _ = extractor.extract(x.permute(0, 2, 3, 1).cpu().numpy())
            return torch.from_numpy(feats).float().to(x.device)

    return Wrapped()


# == diffusion: imgsynth's source vs plain diffusers, regeneration, SDXL-class ================
def tiny_tokenizer(folder: Path):
    """A CLIP tokenizer with a byte-level vocabulary and no merges (no download): every
    prompt still pads to 77 tokens, so the text encoder does the work of a real one."""
    from transformers import CLIPTokenizer

    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = [chr(c) for c in kept] + [chr(256 + i) for i in range(256 - len(kept))]
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return CLIPTokenizer(vocab=str(folder / "vocab.json"), merges=str(folder / "merges.txt"),
                         model_max_length=77)


def sd_unet_vae_configs(model: str) -> tuple[dict, dict, dict]:
    """(UNet, VAE, CLIP text) configs: SD 1.5's shapes, or tiny ones for toy mode."""
    if model == "sd15":
        unet = dict(sample_size=64, cross_attention_dim=768, attention_head_dim=8, layers_per_block=2,
                    block_out_channels=(320, 640, 1280, 1280),
                    down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                    up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
        vae = dict(block_out_channels=(128, 256, 512, 512), latent_channels=4, layers_per_block=2,
                   sample_size=512, down_block_types=("DownEncoderBlock2D",) * 4,
                   up_block_types=("UpDecoderBlock2D",) * 4)
        text = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                    num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu")
        return unet, vae, text
    unet = dict(block_out_channels=(8, 16), layers_per_block=1, sample_size=16,
                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), cross_attention_dim=16,
                norm_num_groups=4, attention_head_dim=2)
    vae = dict(block_out_channels=(8, 16), latent_channels=4, norm_num_groups=4, sample_size=32,
               down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2)
    text = dict(hidden_size=16, intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
                max_position_embeddings=77, projection_dim=16)
    return unet, vae, text


def save_sd_pipeline(model: str, folder: Path) -> Path:
    """An SD 1.5-architecture (or tiny) text-to-image checkpoint with random weights, saved
    as a local diffusers folder: what a user's model: key points at."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tokenizer = tiny_tokenizer(folder / "tokenizer_src")
    vocab = tokenizer.get_vocab()
    unet_cfg, vae_cfg, text_cfg = sd_unet_vae_configs(model)
    text_cfg.setdefault("vocab_size", len(vocab))
    torch.manual_seed(0)
    pipe = StableDiffusionPipeline(
        unet=UNet2DConditionModel(**unet_cfg), vae=AutoencoderKL(**vae_cfg),
        text_encoder=CLIPTextModel(CLIPTextConfig(
            **text_cfg, bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
            pad_token_id=vocab["<|endoftext|>"])),
        tokenizer=tokenizer, safety_checker=None, feature_extractor=None, requires_safety_checker=False,
        scheduler=PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                skip_prk_steps=True, steps_offset=1))
    pipe.save_pretrained(folder / "model")
    return folder / "model"


def save_tiny_sdxl_pipeline(folder: Path) -> Path:
    """An SDXL-class pipeline (two text encoders, text_time conditioning) with tiny random weights."""
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = tiny_tokenizer(folder / "tokenizer_src")
    vocab = tokenizer.get_vocab()
    _, vae_cfg, text_cfg = sd_unet_vae_configs("tiny")
    text = CLIPTextConfig(**text_cfg, vocab_size=len(vocab), bos_token_id=vocab["<|startoftext|>"],
                          eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"])
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 16, cross_attention_dim=32, norm_num_groups=4)
    pipe = StableDiffusionXLPipeline(
        vae=AutoencoderKL(**vae_cfg), text_encoder=CLIPTextModel(text),
        text_encoder_2=CLIPTextModelWithProjection(text), tokenizer=tokenizer, tokenizer_2=tokenizer,
        unet=unet, scheduler=EulerDiscreteScheduler())
    pipe.save_pretrained(folder / "model")
    return folder / "model"


class UNetTimer:
    """Sums the UNet's forward time: CUDA events around each call on a GPU (the pipeline does
    not wait for the GPU between steps, so wall clock would not see it), wall clock on a CPU."""

    def __init__(self, unet, dev: Device):
        self.dev, self.spans, self._open = dev, [], None
        self.handles = [unet.register_forward_pre_hook(self._start), unet.register_forward_hook(self._stop)]

    def _start(self, module, args):
        if self.dev.cuda:
            self._open = self.dev.torch.cuda.Event(enable_timing=True)
            self._open.record()
        else:
            self._open = time.perf_counter()

    def _stop(self, module, args, output):
        if self.dev.cuda:
            end = self.dev.torch.cuda.Event(enable_timing=True)
            end.record()
            self.spans.append((self._open, end))
        else:
            self.spans.append(time.perf_counter() - self._open)

    def reset(self) -> None:
        self.spans = []

    def seconds(self) -> float | None:
        """None when the hooks never fired (e.g. a compiled module that bypasses them)."""
        if not self.spans:
            return None
        if self.dev.cuda:
            self.dev.sync()
            return sum(a.elapsed_time(b) for a, b in self.spans) / 1000.0
        return sum(self.spans)

    def close(self) -> None:
        for handle in self.handles:
            handle.remove()


def diffuse_recipe(path: Path, model: Path, steps: int, side: int, **source) -> Path:
    """A recipe with a diffuse source: imgsynth's defaults plus the given keys."""
    import yaml

    recipe = {"seed": 0, "output": {"preview": False},
              "source": {"type": "diffuse", "model": str(model), "labels": ["cat", "dog"],
                         "images_per_class": 10_000, "steps": steps, "width": side, "height": side,
                         "safety_checker": "off", **source}}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(recipe, sort_keys=False))
    return path


@dataclass
class SdResult:
    images_per_s: float
    unet_it_per_s: float
    unet_timed: bool  # False: UNet it/s estimated from wall time (hooks did not fire)
    peak_gib: float | None
    warm_s: float
    unet: str  # dtype and attention processors of the UNet that ran


def unet_kind(unet) -> str:
    """'float16, AttnProcessor2_0': what a row's UNet computed with (AttnProcessor2_0 is SDPA)."""
    processors = sorted({type(p).__name__ for p in unet.attn_processors.values()})
    return f"{str(unet.dtype).replace('torch.', '')}, {'/'.join(processors)}"


def time_sd(call, batch: int, calls: int, steps: int, unet, dev: Device, warm) -> SdResult:
    """Warm up once, then `calls` timed calls of `batch` images; UNet time from its hooks."""
    timer = UNetTimer(unet, dev)
    try:
        warm_s = dev.seconds(warm)
        timer.reset()
        dev.reset_peak()
        seconds = dev.seconds(lambda: [call() for _ in range(calls)])
        images = batch * calls
        unet_s = timer.seconds()
        return SdResult(images / seconds, steps * images / (unet_s or seconds), unet_s is not None,
                        dev.peak_gib(), warm_s, unet_kind(unet))
    finally:
        timer.close()


def diffusion_section(plan: Plan, dev: Device, report: Report, work: Path, budget_s: float,
                      compile_unet: bool) -> None:
    import diffusers

    inner = internals()
    steps, side = plan.sd_steps, plan.sd_side
    arch = "SD 1.5 architecture" if plan.sd_model == "sd15" else "tiny SD (toy)"
    prompts = [f"a photo of a {c}" for c in ("cat", "dog")] * 32
    log(f"  building the {arch} checkpoint with random weights ...")
    model = save_sd_pipeline(plan.sd_model, work / "sd")
    label = f"{arch} {side}x{side}, {steps} steps"
    results: dict[str, SdResult] = {}

    # 1. Plain diffusers: StableDiffusionPipeline as loaded, fp32, its default attention.
    with report.guard("diffusion", "plain StableDiffusionPipeline"):
        plain = diffusers.StableDiffusionPipeline.from_pretrained(model, local_files_only=True).to(dev.name)
        plain.set_progress_bar_config(disable=True)
        try:
            for batch, calls in ((1, plan.sd_plain_b1_images), (4, plan.sd_plain_b4_calls)):
                def call(n=steps, batch=batch):
                    plain(prompts[:batch], num_inference_steps=n, height=side, width=side)
                results[f"plain{batch}"] = time_sd(call, batch, calls, steps, plain.unet, dev,
                                                   warm=lambda call=call: call(plan.sd_warm_steps))
        finally:
            del plain
            dev.free()

    counter = itertools.count()

    def imgsynth_variants(keys: dict[str, int], **options) -> None:
        """imgsynth's sources built from recipes (one per batch size, sharing one loaded
        model, as a run's workers would), timed through generate_batch as the engine calls it."""
        sources = {key: inner.build_source(diffuse_recipe(work / "recipes" / f"{key}.yaml", model, steps,
                                                          side, batch_size=batch, **options))
                   for key, batch in keys.items()}
        try:
            for key, batch in keys.items():
                source = sources[key]

                def call(source=source, batch=batch):
                    indices = [next(counter) for _ in range(batch)]
                    source.generate_batch(indices, [inner.sample_rng(0, "diffuse", i) for i in indices])
                calls = plan.sd_b1_images if batch == 1 else plan.sd_b4_calls
                results[key] = time_sd(call, batch, calls, steps, inner.source_unet(source), dev, warm=call)
        finally:
            for source in sources.values():
                source.close()
            dev.free()

    def rows(key: str, peer_key: str, what: str, options: str) -> None:
        ours, peer = results.get(key), results.get(peer_key)
        if ours is None or peer is None:
            return
        notes = f"ours: imgsynth {options} ({ours.unet}); peer: StableDiffusionPipeline defaults ({peer.unet})"
        report.row("diffusion", f"{label}, {what}: images/s", ours.images_per_s, peer.images_per_s,
                   "images/s", notes + (f"; warm-up (compile) {ours.warm_s:.0f} s" if "compile" in options else ""))
        timed = "" if ours.unet_timed and peer.unet_timed else "; from wall time (UNet hooks did not fire)"
        report.row("diffusion", f"{label}, {what}: UNet it/s", ours.unet_it_per_s, peer.unet_it_per_s,
                   "it/s (one step of one image)", "CFG: each step runs the UNet on 2x the batch" + timed)
        if ours.peak_gib is not None and peer.peak_gib is not None:
            report.row("diffusion", f"{label}, {what}: peak GPU memory", ours.peak_gib, peer.peak_gib,
                       "GiB (lower is better)", "torch.cuda.max_memory_allocated over the timed calls")

    with report.guard("diffusion", "imgsynth defaults, batch 1 and 4"):
        imgsynth_variants({"ours1": 1, "ours4": 4})
    rows("ours1", "plain1", "batch 1", "defaults (dtype auto, SDPA, channels_last)")
    rows("ours4", "plain4", "batch 4", "defaults, batch_size: 4")

    # 2. Regeneration through recipe runs: same batch size twice, batch 1 vs 4, regenerate().
    with report.guard("diffusion", "regeneration checks"):
        regeneration_checks(plan, dev, report, work, model, label)

    # 3. SDXL-class tiny pipeline: runs through imgsynth, against plain diffusers.
    with report.guard("diffusion", "SDXL-class tiny"):
        sdxl_check(plan, dev, report, work)

    # 4. Options the defaults are decided by, while the budget lasts (compile last: slowest).
    extras = [("bf16", {"dtype": "bfloat16"}, "dtype: bfloat16, batch_size: 4", 25),
              ("nocl", {"channels_last": False}, "channels_last: false, batch_size: 4", 25),
              ("compile", {"compile": True}, "compile: true, batch_size: 4", 150)]
    for key, options, text, needs_s in extras:
        if key == "compile" and not (dev.cuda and compile_unet):
            report.skip("diffusion", text, "CPU/toy mode (inductor's CPU compile takes minutes)"
                        if not dev.cuda else "--no-compile")
            continue
        if dev.cuda and report.elapsed() + needs_s > budget_s:
            report.skip("diffusion", text, f"--budget-s {budget_s:.0f} reached ({report.elapsed():.0f} s "
                        f"used, ~{needs_s} s needed)")
            continue
        with report.guard("diffusion", text):
            imgsynth_variants({key: 4}, **options)
        rows(key, "plain4", f"batch 4, {text.split(',')[0]}", text)


def run_images(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "images").glob("*.png"))}


def decoded(png: bytes) -> np.ndarray:
    import io

    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def regeneration_checks(plan: Plan, dev: Device, report: Report, work: Path, model: Path, label: str) -> None:
    from imgsynth.run import run_recipe

    n = plan.sd_check_images
    runs = {}
    for name, batch in (("b1", 1), ("b1-again", 1), ("b4", 4)):
        recipe = diffuse_recipe(work / "recipes" / f"run-{name}.yaml", model, plan.sd_steps,
                                plan.sd_side, batch_size=batch)
        run_recipe(recipe, work / "runs" / name, count=n, workers=1, quiet=True)
        runs[name] = run_images(work / "runs" / name)
        dev.free()
    report.check("diffusion", f"{label}: the runs' images are not blank (so byte identity means something)",
                 all(decoded(png).std() > 0 for images in runs.values() for png in images.values()),
                 notes="random weights in float16 could overflow into NaN, which writes flat images")
    same = runs["b1"] == runs["b1-again"] and len(runs["b1"]) == n
    report.check("diffusion", f"{label}: a rerun with the same recipe writes byte-identical PNGs",
                 same, f"{n} images, batch 1, {dev.name}")
    records = [json.loads(line) for line in (work / "runs" / "b4" / "manifest.jsonl").read_text().splitlines()]
    report.check("diffusion", f"{label}: the batch_size 4 run made its {n} images in one pipeline call",
                 all(r["meta"].get("batch") == list(range(n)) for r in records) and len(records) == n,
                 notes="the manifest's batch")
    diff = max(int(np.abs(decoded(runs["b1"][k]) - decoded(runs["b4"][k])).max()) for k in runs["b1"])
    report.check("diffusion", f"{label}: batch 1 vs batch 4, max abs pixel difference", None, diff,
                 "0 = byte-identical; the manifest records the batch, so regenerate() is exact either way")
    index = min(1, n - 1)
    again = internals().regenerate(work / "runs" / "b4", index)
    name = f"{index + 1:08d}.png"
    report.check("diffusion", f"{label}: regenerate(run, {index}) of the batch-4 run gives its pixels",
                 bool(np.array_equal(again.astype(np.int16), decoded(runs["b4"][name]))))
    dev.free()


def sdxl_check(plan: Plan, dev: Device, report: Report, work: Path) -> None:
    import diffusers

    from imgsynth.run import run_recipe

    inner = internals()
    model = save_tiny_sdxl_pipeline(work / "sdxl")
    recipe = diffuse_recipe(work / "recipes" / "sdxl.yaml", model, plan.sd_steps, 32, batch_size=2)
    summary = run_recipe(recipe, work / "runs" / "sdxl", count=2, workers=1, quiet=True)
    report.check("diffusion", "SDXL-class tiny config: a recipe run writes its images",
                 summary.written == 2 and len(run_images(work / "runs" / "sdxl")) == 2,
                 f"{summary.written} written")
    calls = 2
    source = inner.build_source(recipe)
    try:
        counter = itertools.count()

        def call():
            indices = [next(counter) for _ in range(2)]
            source.generate_batch(indices, [inner.sample_rng(0, "diffuse", i) for i in indices])
        ours = time_sd(call, 2, calls, plan.sd_steps, inner.source_unet(source), dev, warm=call)
    finally:
        source.close()
    plain = diffusers.StableDiffusionXLPipeline.from_pretrained(model, local_files_only=True).to(dev.name)
    plain.set_progress_bar_config(disable=True)

    def plain_call():
        plain(["a photo of a cat", "a photo of a dog"], num_inference_steps=plan.sd_steps, height=32, width=32)
    peer = time_sd(plain_call, 2, calls, plan.sd_steps, plain.unet, dev, warm=plain_call)
    report.row("diffusion", f"SDXL-class tiny 32x32, {plan.sd_steps} steps, batch 2: images/s",
               ours.images_per_s, peer.images_per_s, "images/s",
               f"ours: imgsynth defaults ({ours.unet}); peer: StableDiffusionXLPipeline defaults "
               f"({peer.unet}); tiny: says it runs, not how fast SDXL is")
    del plain
    dev.free()


# == the GPU plan's duration, estimated from FLOPs ============================================
# Achieved throughput assumed on one H200 (989 TFLOPS dense fp16/bf16 peak, 67 fp32): SD 1.5
# runs at ~20-25 it/s with CFG on an A100 in fp16 and ~35-40 on an H100 (public diffusers
# figures); 1.6 TFLOP per CFG step makes that ~60 TFLOPS at batch 1. Batch 4 and fp32 scaled
# by the usual factors; everything below about a tenth of peak, so the estimate is generous.
ASSUMED_TFLOPS = {"fp16 batch 1": 60.0, "fp16 batch 4": 100.0, "fp32": 15.0, "inception fp32": 20.0}
# Fixed costs (seconds), not FLOP-bound: building and saving SD 1.5 with random weights on
# 16 cores (1.07 B parameters, 4.3 GB safetensors), one pipeline load, one torch.compile of
# the UNet, one DataLoader worker start-up round, one `imgsynth train` start-up, imports + CUDA.
FIXED_S = {"sd build + save": 25.0, "sd load": 6.0, "compile": 120.0, "workers": 3.0,
           "train start": 6.0, "startup": 15.0}


def flop_counts() -> dict[str, float]:
    """FLOPs (2 x multiply-adds) of one SD 1.5 CFG UNet step (batch 2 latents 64x64), one VAE
    decode to 512x512, one Inception forward at 299: counted by torch's FlopCounterMode on
    meta tensors (shapes only, no memory, no weights)."""
    import torch
    import torchvision
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from torch.utils.flop_counter import FlopCounterMode

    unet_cfg, vae_cfg, _ = sd_unet_vae_configs("sd15")
    with torch.device("meta"):
        unet, vae = UNet2DConditionModel(**unet_cfg), AutoencoderKL(**vae_cfg)
        inception = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False).eval()
    counts = {}
    with torch.no_grad():
        for name, fn in (
                ("unet_cfg_step", lambda: unet(torch.zeros(2, 4, 64, 64, device="meta"),
                                               torch.tensor(10, device="meta"),
                                               encoder_hidden_states=torch.zeros(2, 77, 768, device="meta"))),
                ("vae_decode", lambda: vae.decode(torch.zeros(1, 4, 64, 64, device="meta"))),
                ("inception", lambda: inception(torch.zeros(1, 3, 299, 299, device="meta")))):
            with FlopCounterMode(display=False) as counter:
                fn()
            counts[name] = float(counter.get_total_flops())
    return counts


def gpu_estimate(plan: Plan = GPU_PLAN) -> dict:
    """Seconds per part of the GPU plan: counted FLOPs / assumed TFLOPS + fixed costs."""
    f = flop_counts()
    image = plan.sd_steps * f["unet_cfg_step"] + f["vae_decode"]  # one 512x512 image
    warm = plan.sd_warm_steps * f["unet_cfg_step"] + f["vae_decode"]
    t = {k: v * 1e12 for k, v in ASSUMED_TFLOPS.items()}
    b4_images = 4 * (plan.sd_b4_calls + 1)  # timed calls + the warm-up call
    loads = 9  # plain, imgsynth (batch 1 and 4 share it), 3 runs, regenerate, bf16, channels_last, compile
    train_refs = len({(kind, side) for kind, side, _ in plan.train_runs})
    per_sample = plan.aug_loader_batch * 16 * plan.aug_batches_per_worker  # images per epoch, 16 workers
    parts = {
        f"diffusion: build and save SD 1.5, {loads} pipeline loads":
            FIXED_S["sd build + save"] + loads * FIXED_S["sd load"],
        "diffusion: plain fp32, batch 1 and 4":
            ((plan.sd_plain_b1_images + 4 * plan.sd_plain_b4_calls) * image + 5 * warm) / t["fp32"],
        "diffusion: imgsynth fp16, batch 1 and 4": (plan.sd_b1_images + 1) * image / t["fp16 batch 1"]
            + b4_images * image / t["fp16 batch 4"],
        "diffusion: regeneration runs (3 x 4 images, regenerate 4)":
            4 * plan.sd_check_images * image / t["fp16 batch 1"],
        "diffusion: bf16 and channels_last-off rows": 2 * b4_images * image / t["fp16 batch 4"],
        "diffusion: compile row": FIXED_S["compile"] + b4_images * image / t["fp16 batch 4"],
        "augment: per size, worker start + 2 epochs at ~15 ms/image/worker + BatchAugment":
            len(plan.aug_sizes) * (FIXED_S["workers"] + 2 * per_sample * 0.015 / 16 + 4.0),
        f"train: {len(plan.train_runs)} imgsynth runs + {train_refs} references at ~5 ms/step":
            len(plan.train_runs) * (FIXED_S["train start"] + plan.train_steps * 0.005)
            + train_refs * plan.train_steps * 0.005,
        "evaluate: Inception rows + FID of 2 x 10k images, both ways, + 6 model loads":
            (len(plan.eval_batches) * 2 * plan.eval_images + 2 * 2 * plan.fid_images) * f["inception"]
            / t["inception fp32"] + 6 * 2.0,
        "startup: imports, CUDA init, FLOP count": FIXED_S["startup"],
    }
    return {"flops": f, "assumed_tflops": ASSUMED_TFLOPS, "fixed_s": FIXED_S,
            "seconds": {k: round(v, 1) for k, v in parts.items()},
            "total_s": round(sum(parts.values()), 1),
            "method": "FLOPs counted with torch.utils.flop_counter on meta tensors, divided by the "
                      "assumed achieved TFLOPS; fixed costs added; augment at ~15 ms per 640x480 "
                      "sample per worker, train at ~5 ms per step (launch-bound)"}


def print_estimate(estimate: dict) -> None:
    f = estimate["flops"]
    print(f"FLOPs: SD 1.5 UNet CFG step {f['unet_cfg_step'] / 1e12:.2f} TFLOP, VAE decode 512x512 "
          f"{f['vae_decode'] / 1e12:.2f} TFLOP, Inception 299 {f['inception'] / 1e9:.1f} GFLOP")
    print(f"assumed achieved TFLOPS: {estimate['assumed_tflops']}")
    for part, seconds in estimate["seconds"].items():
        print(f"  {seconds:7.1f} s  {part}")
    print(f"  {estimate['total_s']:7.1f} s  total (budget 480 s)")


# == main ========================================================================================
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--toy", action="store_true", help="tiny sizes (automatic without CUDA)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cuda, cuda:1, cpu")
    parser.add_argument("--json", type=Path, help="write the table and checks here as JSON")
    parser.add_argument("--sections", default=",".join(SECTIONS), help=f"comma-separated: {','.join(SECTIONS)}")
    parser.add_argument("--budget-s", type=float, default=480.0,
                        help="the extra diffusion rows (bf16, channels_last off, compile) run only "
                             "while the run stays under this many seconds")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile row")
    parser.add_argument("--workers", type=int, help="DataLoader workers of the per-sample path "
                        "(default: every core; 2 in toy mode)")
    parser.add_argument("--inception-weights", type=Path, help="the FID Inception weights file "
                        "(default: the torch hub cache; random weights when absent)")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed)")
    parser.add_argument("--estimate", action="store_true", help="print the GPU plan's estimated "
                        "duration and exit")
    args = parser.parse_args(argv)
    if args.estimate:
        print_estimate(gpu_estimate())
        return 0

    import torch

    name = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    plan = TOY_PLAN if args.toy or not name.startswith("cuda") else GPU_PLAN
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; choose from {','.join(SECTIONS)}")
    workers = args.workers or (min(2, os.cpu_count() or 1) if plan is TOY_PLAN else os.cpu_count() or 1)
    dev = Device(name)
    if not dev.cuda:
        # One thread: CPU figures stay comparable between rows, and on a shared machine torch's
        # spinning worker threads cannot slow a row by 100x (seen with 2 threads on 2 busy cores).
        torch.set_num_threads(1)
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    for library in (diffusers_logging, transformers_logging):
        library.disable_progress_bar()
        library.set_verbosity_error()
    report = Report(device_info(dev, plan, workers), args.json)
    log(f"imgsynth GPU benchmark: {plan.name} mode on {report.info.get('gpu') or name}, sections {sections}")
    with report.guard("estimate", "GPU plan estimate"):
        report.estimate = gpu_estimate()
    work = Path(args.work or tempfile.mkdtemp(prefix="imgsynth-gpu-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        for section in SECTIONS:
            if section not in sections:
                continue
            log(f"[{section}] ({report.elapsed():.0f} s)")
            with report.guard(section, "section"):
                if section == "augment":
                    augment_section(plan, dev, report, workers)
                elif section == "train":
                    train_section(plan, dev, report, work)
                elif section == "evaluate":
                    evaluate_section(plan, dev, report, work, args.inception_weights)
                else:
                    diffusion_section(plan, dev, report, work, args.budget_s, not args.no_compile)
            report.save()
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    report.save()
    print(report.table())
    failed = report.errors or any(c["passed"] is False for c in report.checks)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
