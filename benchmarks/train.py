"""DCGAN/VAE trainer benchmark: speed against the pytorch/examples DCGAN, and quality.

Speed: training steps/s of imgsynth's DCGAN (its real loop body: batch selection +
`train_step`) against the pytorch/examples DCGAN written below from its description
(64x64 RGB, batch 64, nz 100, ngf = ndf = 64, Adam 2e-4 beta1 0.5, BCE), on the same
in-memory images, same process, alternating rounds. Target >= 1.0x on CPU.

Quality: a class-conditional DCGAN and a conditional VAE trained on scikit-learn's
digits (32x32 gray) by `imgsynth.generate.train.train`; a logistic-regression
classifier trained on real digits labels 100 samples per class; we report the
fraction labeled as the class the model was asked for (target >= 90%) and FID against
held-out real digits with the evaluator's offline `builtin` extractor (relative
numbers only; the real-vs-real FID of the same sets is printed as the floor).

Usage: python benchmarks/train.py [--speed-steps 10] [--dcgan-steps 1500] [--vae-steps 1500]
The machine is shared: timings are noisy; run it twice before trusting a ratio.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from imgsynth.generate.config import DcganTrainConfig, TrainDataConfig, VaeTrainConfig
from imgsynth.generate.gan_source import load_sampler
from imgsynth.generate.images import generate_images
from imgsynth.generate.train import TrainingRun, train

THREADS = 2


# -- the pytorch/examples DCGAN (reference), written from its description -----------------
class RefGenerator(nn.Module):
    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 8), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf), nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh())

    def forward(self, x):
        return self.main(x)


class RefDiscriminator(nn.Module):
    def __init__(self, ndf=64, nc=3):
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 8), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), nn.Sigmoid())

    def forward(self, x):
        return self.main(x)


def weights_init(m):
    name = m.__class__.__name__
    if "Conv" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class ReferenceDcgan:
    """The pytorch/examples training step, verbatim in structure."""

    def __init__(self, images_uint8_nchw: torch.Tensor, batch_size=64, nz=100):
        torch.manual_seed(0)
        self.images, self.batch_size, self.nz = images_uint8_nchw, batch_size, nz
        self.netG, self.netD = RefGenerator(nz), RefDiscriminator()
        self.netG.apply(weights_init)
        self.netD.apply(weights_init)
        self.criterion = nn.BCELoss()
        self.optD = torch.optim.Adam(self.netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.optG = torch.optim.Adam(self.netG.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step(self):
        idx = torch.randint(0, len(self.images), (self.batch_size,))
        real = self.images[idx].float() / 127.5 - 1
        self.netD.zero_grad()
        label = torch.full((self.batch_size,), 1.0)
        err_real = self.criterion(self.netD(real).view(-1), label)
        err_real.backward()
        noise = torch.randn(self.batch_size, self.nz, 1, 1)
        fake = self.netG(noise)
        label.fill_(0.0)
        err_fake = self.criterion(self.netD(fake.detach()).view(-1), label)
        err_fake.backward()
        self.optD.step()
        self.netG.zero_grad()
        label.fill_(1.0)
        err_g = self.criterion(self.netD(fake).view(-1), label)
        err_g.backward()
        self.optG.step()


def time_steps(step_fn, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        step_fn()
    return n / (time.perf_counter() - start)


def speed(steps: int, rounds: int) -> None:
    print(f"== speed: DCGAN 64x64x3, batch 64, nz 100, ngf=ndf=64, CPU, torch threads "
          f"{torch.get_num_threads()} ==")
    out = Path(tempfile.mkdtemp(prefix="imgsynth-bench-train-"))
    runs = {}
    for channels_last in (True, False):
        cfg = DcganTrainConfig(data=TrainDataConfig(kind="digits", holdout_fraction=0.0),
                               resolution=64, channels=3, batch_size=64, device="cpu",
                               channels_last=channels_last, memorization_samples=0)
        run = TrainingRun("dcgan", cfg, out / str(channels_last), lambda _: None)
        runs[channels_last] = run
    ref = ReferenceDcgan(runs[True].images)

    def imgsynth_step(run):
        def step():
            images, labels = run.batch(run.step)
            run.model.train_step(images, labels, run.step, run.noise, run.precision)
            run.step += 1
        return step

    contenders = {"pytorch/examples": ref.step,
                  "imgsynth (channels_last)": imgsynth_step(runs[True]),
                  "imgsynth (contiguous)": imgsynth_step(runs[False])}
    for fn in contenders.values():  # warm-up: allocator, oneDNN primitive caches
        time_steps(fn, 2)
    rates = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            rates[name].append(time_steps(fn, steps))
    base = statistics.median(rates["pytorch/examples"])
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"{name:28s} {med:6.3f} steps/s  ({med * 64:6.1f} images/s)  ratio {med / base:4.2f}x"
              f"   rounds: {', '.join(f'{v:.3f}' for v in values)}")


def digits_classifier():
    """Logistic regression on real 32x32 digits (the same upscaling the trainer uses)."""
    from sklearn.linear_model import LogisticRegression

    from imgsynth.generate.data import digits_images, split_holdout

    data = digits_images(32, 1, None)
    train_idx, test_idx = split_holdout(len(data), 0.1, 0)  # the trainer's split with seed 0
    def features(images):
        return images.reshape(len(images), -1).astype(np.float64) / 255.0
    clf = LogisticRegression(max_iter=2000)
    clf.fit(features(data.images[train_idx]), data.labels[train_idx])
    acc = clf.score(features(data.images[test_idx]), data.labels[test_idx])
    return clf, features, acc, data.images[train_idx], data.images[test_idx]


def quality(kind: str, steps: int, clf, features, heldout, train_real) -> None:
    from imgsynth.evaluate.fid import fid_from_arrays

    common = dict(data=TrainDataConfig(kind="digits"), resolution=32, channels=1,
                  conditional=True, steps=steps, batch_size=64, grid_every=steps,
                  checkpoint_every=steps, eval_every=steps, log_every=max(1, steps // 5),
                  eval_samples=1000, device="cpu")
    if kind == "dcgan":
        cfg = DcganTrainConfig(**common, ngf=32, ndf=32, ema_decay=0.999)
    else:
        cfg = VaeTrainConfig(**common, nf=32, latent_dim=8, beta=2.0, beta_warmup_steps=steps // 3)
    out = Path(tempfile.mkdtemp(prefix=f"imgsynth-bench-{kind}-"))
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    result = train(kind, cfg, out)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    sampler = load_sampler(out / "checkpoints" / "last.pt")
    per_class = 100
    gen = torch.Generator().manual_seed(123)
    z = torch.randn(10 * per_class, sampler.latent_dim, generator=gen)
    labels = torch.arange(10).repeat_interleave(per_class)
    samples = generate_images(sampler.network, z, labels)
    pred = clf.predict(features(samples))
    acc = (pred == labels.numpy()).mean()
    per = [(pred[labels.numpy() == c] == c).mean() for c in range(10)]
    fid = fid_from_arrays(heldout, samples, "builtin")
    print(f"{kind:6s} {steps} steps in {seconds:.0f}s wall / {cpu:.0f}s CPU: conditioned-class "
          f"accuracy {acc:.1%} (per class min {min(per):.0%}), FID(builtin) vs held-out real "
          f"{fid:.2f}, best by {result.best_by}, memorization ratio "
          f"{result.memorization.get('ratio', float('nan')):.2f} "
          f"(near copies {result.memorization.get('near_copies')}/{result.memorization['samples']})"
          f"  [{out}]")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--speed-steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dcgan-steps", type=int, default=1500)
    parser.add_argument("--vae-steps", type=int, default=1500)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(THREADS)
    import cv2

    cv2.setNumThreads(1)
    print(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}, cv2 threads 1")
    if not args.skip_speed:
        speed(args.speed_steps, args.rounds)
    if not args.skip_quality:
        from imgsynth.evaluate.fid import fid_from_arrays

        clf, features, acc, train_real, heldout = digits_classifier()
        print(f"== quality: conditional models on sklearn digits 32x32 ==\nclassifier "
              f"(logistic regression, real digits) held-out accuracy {acc:.1%}; FID(builtin) "
              f"held-out real vs training real {fid_from_arrays(heldout, train_real, 'builtin'):.2f}")
        quality("dcgan", args.dcgan_steps, clf, features, heldout, train_real)
        quality("vae", args.vae_steps, clf, features, heldout, train_real)


if __name__ == "__main__":
    main()
