"""DCGAN (Radford et al. 2016) for any power-of-two resolution, optionally class-conditional.

The layer plan is derived from the resolution: a 4x4 seed doubled until it
reaches the image size, widths ngf * (8, 4, 2, 1) for 64x64 (the pytorch/examples
network exactly), capped at 8x for larger images. The conditional discriminator
uses a projection head (Miyato & Koyama 2018); the conditional generator gets a
one-hot class vector appended to its noise.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imgsynth.generate.config import DcganTrainConfig


def width_multipliers(resolution: int) -> list[int]:
    """Channel multipliers of the feature maps at 4x4, 8x8, ... resolution/2."""
    levels = int(math.log2(resolution)) - 2
    return [min(8, 2 ** (levels - 1 - i)) for i in range(levels)]


def init_dcgan_weights(module: nn.Module) -> None:
    """The paper's init: conv weights N(0, 0.02), batch-norm scales N(1, 0.02); class
    embeddings small too, so the projection term does not dominate the first logits."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Embedding)):
        nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, resolution: int, channels: int, nz: int, ngf: int, num_classes: int = 0):
        super().__init__()
        self.nz = nz
        self.num_classes = num_classes
        mults = width_multipliers(resolution)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(nz + num_classes, ngf * mults[0], 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * mults[0]), nn.ReLU(True)]
        for a, b in zip(mults, mults[1:]):
            layers += [nn.ConvTranspose2d(ngf * a, ngf * b, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ngf * b), nn.ReLU(True)]
        layers += [nn.ConvTranspose2d(ngf * mults[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Noise (B, nz) [+ class ids (B,)] -> images (B, C, H, W) in [-1, 1]."""
        if self.num_classes:
            z = torch.cat([z, F.one_hot(labels, self.num_classes).to(z.dtype)], dim=1)
        return self.main(z[:, :, None, None])

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] (the range every sampler returns)."""
        return (self(z, labels) + 1) / 2


class Discriminator(nn.Module):
    def __init__(self, resolution: int, channels: int, ndf: int, num_classes: int = 0,
                 spectral_norm: bool = False):
        super().__init__()
        mults = width_multipliers(resolution)[::-1]  # 1, 2, 4, 8 for 64x64
        wrap = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        layers: list[nn.Module] = [wrap(nn.Conv2d(channels, ndf * mults[0], 4, 2, 1, bias=False)),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for a, b in zip(mults, mults[1:]):
            layers.append(wrap(nn.Conv2d(ndf * a, ndf * b, 4, 2, 1, bias=False)))
            if not spectral_norm:  # spectral norm replaces batch norm (Miyato et al. 2018)
                layers.append(nn.BatchNorm2d(ndf * b))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
        self.main = nn.Sequential(*layers)
        self.head = wrap(nn.Conv2d(ndf * mults[-1], 1, 4, 1, 0, bias=False))
        self.embed = nn.Embedding(num_classes, ndf * mults[-1]) if num_classes else None

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images (B, C, H, W) in [-1, 1] -> logits (B,)."""
        features = self.main(x)
        logits = self.head(features).flatten()
        if self.embed is not None:
            logits = logits + (self.embed(labels) * features.sum(dim=(2, 3))).sum(dim=1)
        return logits


def discriminator_loss(real_logits, fake_logits, loss: str, label_smoothing: float):
    if loss == "hinge":
        return F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    real_target = torch.full_like(real_logits, 1.0 - label_smoothing)
    return (F.binary_cross_entropy_with_logits(real_logits, real_target)
            + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))


def generator_loss(fake_logits, loss: str):
    if loss == "hinge":
        return -fake_logits.mean()
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))


# DiffAugment (Zhao et al. 2020): the same random differentiable transform family is
# applied to real and fake images, so a small data set does not let D memorize it.

def diffaugment_color(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    b = x.shape[0]
    rand = torch.rand(3, b, 1, 1, 1, generator=gen, device=x.device, dtype=x.dtype)
    x = x + (rand[0] - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (rand[1] * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (rand[2] + 0.5) + mean


def diffaugment_translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    ty = torch.randint(-sh, sh + 1, (b, 1, 1), generator=gen, device=x.device)
    tx = torch.randint(-sw, sw + 1, (b, 1, 1), generator=gen, device=x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(b, device=x.device), torch.arange(h, device=x.device),
                                torch.arange(w, device=x.device), indexing="ij")
    gy = torch.clamp(gy + ty + 1, 0, h + 1)
    gx = torch.clamp(gx + tx + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1]).permute(0, 2, 3, 1)
    return padded[gb, gy, gx].permute(0, 3, 1, 2)


def diffaugment_cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=gen, device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=gen, device=x.device)
    gb, gy, gx = torch.meshgrid(torch.arange(b, device=x.device), torch.arange(ch, device=x.device),
                                torch.arange(cw, device=x.device), indexing="ij")
    gy = torch.clamp(gy + oy - ch // 2, 0, h - 1)
    gx = torch.clamp(gx + ox - cw // 2, 0, w - 1)
    mask = torch.ones(b, h, w, dtype=x.dtype, device=x.device)
    mask[gb, gy, gx] = 0
    return x * mask[:, None]


DIFFAUGMENT = {"color": diffaugment_color, "translation": diffaugment_translation,
               "cutout": diffaugment_cutout}


def diffaugment(x: torch.Tensor, policies: list[str], gen: torch.Generator) -> torch.Tensor:
    for name in policies:
        x = DIFFAUGMENT[name](x, gen)
    return x


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p, 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


def build_generator(cfg: DcganTrainConfig, num_classes: int) -> Generator:
    return Generator(cfg.resolution, cfg.channels, cfg.nz, cfg.ngf,
                     num_classes if cfg.conditional else 0)


class DcganTrainer:
    """The DCGAN half of the shared training loop: networks, optimizers, one step."""

    architecture_fields = ("resolution", "channels", "conditional", "nz", "ngf", "ndf",
                           "spectral_norm", "ema_decay")
    has_validation_loss = False  # a GAN has no held-out likelihood; FID decides when available

    def __init__(self, cfg: DcganTrainConfig, num_classes: int, device: torch.device):
        self.cfg = cfg
        self.generator = build_generator(cfg, num_classes)
        self.discriminator = Discriminator(cfg.resolution, cfg.channels, cfg.ndf,
                                           num_classes if cfg.conditional else 0,
                                           cfg.spectral_norm)
        self.generator.apply(init_dcgan_weights)
        self.discriminator.apply(init_dcgan_weights)
        self.networks: dict[str, nn.Module] = {"generator": self.generator,
                                               "discriminator": self.discriminator}
        if cfg.ema_decay is not None:
            self.generator_ema = build_generator(cfg, num_classes)
            self.generator_ema.load_state_dict(self.generator.state_dict())
            self.generator_ema.requires_grad_(False)
            self.networks["generator_ema"] = self.generator_ema
        fused = device.type == "cuda"
        self.optimizers = {
            "g": torch.optim.Adam(self.generator.parameters(), lr=cfg.lr_g,
                                  betas=(cfg.beta1, cfg.beta2), fused=fused),
            "d": torch.optim.Adam(self.discriminator.parameters(), lr=cfg.lr_d,
                                  betas=(cfg.beta1, cfg.beta2), fused=fused)}

    def train_step(self, real01: torch.Tensor, labels: torch.Tensor | None, step: int,
                   gen: torch.Generator, precision) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        real = real01 * 2 - 1
        z = torch.randn(real.shape[0], cfg.nz, generator=gen, device=real.device)
        # 1. Discriminator: real vs detached fake.
        with precision.autocast():
            fake = self.generator(z, labels)
            real_logits = self.discriminator(diffaugment(real, cfg.diffaugment, gen), labels)
            fake_logits = self.discriminator(diffaugment(fake.detach(), cfg.diffaugment, gen),
                                             labels)
            loss_d = discriminator_loss(real_logits.float(), fake_logits.float(), cfg.loss,
                                        cfg.label_smoothing)
        precision.step("d", loss_d, self.optimizers["d"])
        # 2. Generator: fool the updated discriminator with the same fakes.
        with precision.autocast():
            fake_logits_g = self.discriminator(diffaugment(fake, cfg.diffaugment, gen), labels)
            loss_g = generator_loss(fake_logits_g.float(), cfg.loss)
        precision.step("g", loss_g, self.optimizers["g"])
        # 3. Moving average of the generator.
        if cfg.ema_decay is not None:
            update_ema(self.generator_ema, self.generator, cfg.ema_decay)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": torch.sigmoid(real_logits.detach().float()).mean(),
                "d_fake": torch.sigmoid(fake_logits.detach().float()).mean()}

    def extra_grids(self, source) -> dict[str, tuple[np.ndarray, int]]:
        return {}
