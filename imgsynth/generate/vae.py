"""Convolutional VAE for any power-of-two resolution, optionally class-conditional.

The encoder halves the image down to 4x4 (widths nf * 1, 2, 4, 8, capped at 8x),
the decoder mirrors it. A conditional VAE appends a one-hot class vector to the
encoder's flattened features and to the latent code, so sampling z ~ N(0, I)
with a chosen class draws that class.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imgsynth.generate.config import VaeTrainConfig
from imgsynth.generate.images import images_to_tensor, images_to_uint8

if TYPE_CHECKING:
    from imgsynth.generate.data import TrainingImages


def level_multipliers(resolution: int) -> list[int]:
    """Channel multipliers after each stride-2 encoder layer (resolution/2 ... 4x4)."""
    levels = int(math.log2(resolution)) - 2
    return [min(8, 2 ** i) for i in range(levels)]


class ConvVae(nn.Module):
    def __init__(self, resolution: int, channels: int, latent_dim: int, nf: int,
                 num_classes: int = 0):
        super().__init__()
        self.num_classes = num_classes
        mults = level_multipliers(resolution)
        encoder: list[nn.Module] = []
        c_in = channels
        for m in mults:
            encoder += [nn.Conv2d(c_in, nf * m, 4, 2, 1, bias=False), nn.BatchNorm2d(nf * m),
                        nn.LeakyReLU(0.2, inplace=True)]
            c_in = nf * m
        self.encoder = nn.Sequential(*encoder)
        self.top_channels = nf * mults[-1]
        flat = self.top_channels * 16
        self.to_mu = nn.Linear(flat + num_classes, latent_dim)
        self.to_logvar = nn.Linear(flat + num_classes, latent_dim)
        self.from_latent = nn.Linear(latent_dim + num_classes, flat)
        decoder: list[nn.Module] = []
        for a, b in zip(mults[::-1], mults[::-1][1:]):
            decoder += [nn.BatchNorm2d(nf * a), nn.ReLU(True),
                        nn.ConvTranspose2d(nf * a, nf * b, 4, 2, 1, bias=False)]
        decoder += [nn.BatchNorm2d(nf * mults[0]), nn.ReLU(True),
                    nn.ConvTranspose2d(nf * mults[0], channels, 4, 2, 1)]
        self.decoder = nn.Sequential(*decoder)

    def _with_class(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if not self.num_classes:
            return x
        return torch.cat([x, F.one_hot(labels, self.num_classes).to(x.dtype)], dim=1)

    def encode(self, x01: torch.Tensor, labels: torch.Tensor | None = None):
        """Images in [0, 1] -> (mu, logvar) of q(z | x)."""
        h = self._with_class(self.encoder(x01).flatten(1), labels)
        return self.to_mu(h), self.to_logvar(h)

    def decode_logits(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.from_latent(self._with_class(z, labels))
        return self.decoder(h.view(-1, self.top_channels, 4, 4))

    def generate(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Images in [0, 1] (the range every sampler returns)."""
        return torch.sigmoid(self.decode_logits(z, labels))


def vae_loss(model: ConvVae, x01, labels, noise: torch.Tensor, beta: float, recon: str):
    """(total, reconstruction, KL) per image; reconstruction summed over pixels."""
    mu, logvar = model.encode(x01, labels)
    z = mu + torch.exp(0.5 * logvar) * noise
    logits = model.decode_logits(z, labels).float()
    b = x01.shape[0]
    if recon == "bce":
        rec = F.binary_cross_entropy_with_logits(logits, x01.float(), reduction="sum") / b
    else:
        rec = F.mse_loss(torch.sigmoid(logits), x01.float(), reduction="sum") / b
    mu, logvar = mu.float(), logvar.float()
    kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / b
    return rec + beta * kl, rec, kl


def kl_weight(step: int, beta: float, warmup_steps: int) -> float:
    """beta rises linearly from 0 over the warm-up (avoids early posterior collapse)."""
    if warmup_steps == 0:
        return beta
    return beta * min(1.0, (step + 1) / warmup_steps)


def build_vae(cfg: VaeTrainConfig, num_classes: int) -> ConvVae:
    return ConvVae(cfg.resolution, cfg.channels, cfg.latent_dim, cfg.nf,
                   num_classes if cfg.conditional else 0)


class VaeTrainer:
    """The VAE half of the shared training loop."""

    architecture_fields = ("resolution", "channels", "conditional", "latent_dim", "nf")
    has_validation_loss = True

    def __init__(self, cfg: VaeTrainConfig, num_classes: int, device: torch.device):
        self.cfg = cfg
        self.device = device
        self.latent_dim = cfg.latent_size
        self.vae = build_vae(cfg, num_classes)
        self.networks: dict[str, nn.Module] = {"vae": self.vae}
        self.optimizers = {"vae": torch.optim.Adam(self.vae.parameters(), lr=cfg.lr,
                                                   fused=device.type == "cuda")}

    def train_step(self, real01, labels, step: int, gen: torch.Generator, precision):
        beta = kl_weight(step, self.cfg.beta, self.cfg.beta_warmup_steps)
        noise = torch.randn(real01.shape[0], self.latent_dim, generator=gen, device=real01.device)
        with precision.autocast():
            loss, rec, kl = vae_loss(self.vae, real01, labels, noise, beta, self.cfg.recon_loss)
        precision.step("vae", loss, self.optimizers["vae"])
        return {"loss": loss.detach(), "recon": rec.detach(), "kl": kl.detach(),
                "beta": torch.tensor(beta)}

    @torch.no_grad()
    def validation_loss(self, real01, labels, gen: torch.Generator) -> float:
        """Full-beta ELBO loss on held-out images (eval mode, fixed noise)."""
        noise = torch.randn(real01.shape[0], self.latent_dim, generator=gen, device=real01.device)
        self.vae.eval()
        loss, _, _ = vae_loss(self.vae, real01, labels, noise, self.cfg.beta, self.cfg.recon_loss)
        self.vae.train()
        return float(loss)

    @torch.no_grad()
    def reconstruct(self, real01, labels) -> torch.Tensor:
        mu, _ = self.vae.encode(real01, labels)
        return self.vae.generate(mu, labels)

    def extra_grids(self, source: TrainingImages) -> dict[str, tuple[np.ndarray, int]]:
        """recon: rows of originals from `source`, each followed by the row of their
        reconstructions."""
        n = min(len(source), max(8, self.cfg.grid_size // 2))
        cols = min(n, 8)
        n -= n % cols
        real = images_to_tensor(source.images[:n], self.device).float() / 255
        labels = torch.from_numpy(source.labels[:n]).to(self.device) if self.cfg.conditional else None
        self.vae.eval()
        recon = images_to_uint8(self.reconstruct(real, labels))
        self.vae.train()
        pairs = [block for start in range(0, n, cols)
                 for block in (source.images[start:start + cols], recon[start:start + cols])]
        return {"recon": (np.concatenate(pairs), cols)}
