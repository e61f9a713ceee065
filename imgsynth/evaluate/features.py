"""Feature extractors: images (N, H, W, 3 uint8) -> features (N, D) and, for IS, logits.

Every extractor has an `id` that names the network, its weights (sha256 prefix of the
file) and the resize rule, so a number in a report says exactly what computed it.
Features from different ids are never compared.

Extractors:
- `inception`: the FID Inception v3 (TF 2015-12-05 weights, torch-fidelity's port, the
  network torchmetrics uses). Weights come from a local file or the torch hub cache;
  nothing is downloaded unless `allow_download=True`.
- `torchvision:<arch>` / `timm:<name>`: an ImageNet classifier's pooled features, weights
  from a local file (or the hub cache for torchvision's default weights).
- `dinov2:<vits14|vitb14|vitl14|vitg14>`: FD-DINOv2, from a local torch hub checkout
  of facebookresearch/dinov2 and its checkpoint.
- `builtin`: a small fixed random-weight conv net (weights drawn from a seeded numpy
  PCG64, so identical everywhere). Needs no files; for tests, smoke runs and relative
  comparisons only: its numbers are NOT comparable to published FID.

Presets: `paper` resizes like the original TF code (bilinear, no antialias; for Inception
torch-fidelity's TF1-compatible kernel); `clean` resizes with antialiasing.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imgsynth.core.errors import InputError, MissingModelError, RecipeError, did_you_mean
from imgsynth.io.folders import file_sha256

PRESETS = ("paper", "clean")
INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"
# sha256 of torch-fidelity's v0.2.0 release asset; torch hub names the file by its first
# 8 hex digits (6726825d), which is what we can check for sure.
INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
INCEPTION_URL = ("https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/"
                 + INCEPTION_FILE)
DINOV2_VARIANTS = ("vits14", "vitb14", "vitl14", "vitg14")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def hub_checkpoints_dir() -> Path:
    """$TORCH_HOME/hub/checkpoints (torch's default cache), without importing torch."""
    torch_home = os.environ.get("TORCH_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "torch")
    return Path(torch_home) / "hub" / "checkpoints"




def check_preset(preset: str) -> str:
    if preset not in PRESETS:
        raise RecipeError(f"unknown preset '{preset}'.{did_you_mean(preset, PRESETS)}",
                          key="preset", fix=f"use one of: {', '.join(PRESETS)}")
    return preset


def resize_batch(images, size: int, preset: str):
    """(N,3,H,W) float tensor -> (N,3,size,size), antialiased only for 'clean'."""
    import torch.nn.functional as F

    if images.shape[-2:] == (size, size):
        return images
    return F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=(preset == "clean"))


class FeatureExtractor:
    """Base: subclasses set id, num_features, num_logits and implement `_forward`."""

    id: str = ""
    num_features: int = 0
    num_logits: int | None = None  # None: no class logits, so no Inception Score
    resize_note: str = ""

    def __init__(self, device: str = "cpu"):
        self.device = device

    def extract(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, H, W, 3) uint8 -> (features (N, D) float64, logits (N, K) float64 or None)."""
        import torch

        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"extract expects (N, H, W, 3) uint8, got {images.shape} {images.dtype}")
        batch = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).to(self.device)
        with torch.inference_mode():
            feats, logits = self._forward(batch)
        feats = feats.double().cpu().numpy()
        return feats, (None if logits is None else logits.double().cpu().numpy())

    def _forward(self, batch_uint8_nchw):
        raise NotImplementedError


class BuiltinExtractor(FeatureExtractor):
    """Three random 3x3 conv layers (ReLU, average pooling) on a 32x32 resize.

    Features: 16 channels x 2x2 positions of layer 2 plus 32 channels of layer 3 pooled
    globally (96 dims), so both layout and texture count. Weights are He-scaled normals
    from numpy PCG64(seed): fixed forever, no files, no torch RNG.
    """

    num_features = 96
    num_logits = 10
    size = 32

    def __init__(self, preset: str = "clean", device: str = "cpu", seed: int = 20240607):
        import torch

        super().__init__(device)
        self.preset = check_preset(preset)
        self.id = f"builtin-randconv-v1-seed{seed}-{self.num_features}d-{preset}"
        self.resize_note = f"bilinear to {self.size}x{self.size}, antialias={preset == 'clean'}"
        rng = np.random.Generator(np.random.PCG64(seed))

        def he(shape, fan_in):
            return torch.from_numpy(rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).float()

        self.w1 = he((16, 3, 3, 3), 27).to(device)
        self.w2 = he((16, 16, 3, 3), 144).to(device)
        self.w3 = he((32, 16, 3, 3), 144).to(device)
        self.head = he((self.num_features, self.num_logits), self.num_features).to(device)

    def _forward(self, batch):
        import torch
        import torch.nn.functional as F

        x = resize_batch(batch.float() / 127.5 - 1.0, self.size, self.preset)
        x = F.avg_pool2d(F.relu(F.conv2d(x, self.w1, padding=1)), 2)
        x = F.avg_pool2d(F.relu(F.conv2d(x, self.w2, padding=1)), 2)
        layout = F.adaptive_avg_pool2d(x, 2).flatten(1)
        texture = F.relu(F.conv2d(x, self.w3, padding=1)).mean(dim=(2, 3))
        feats = torch.cat([layout, texture], dim=1)
        return feats, feats @ self.head


def find_inception_weights(weights: str | os.PathLike | None) -> Path | None:
    """An explicit path, else $TORCH_HOME/hub/checkpoints/<INCEPTION_FILE>, else None."""
    if weights is not None:
        return Path(weights)
    candidate = hub_checkpoints_dir() / INCEPTION_FILE
    return candidate if candidate.is_file() else None


def missing_inception_error(path: Path | None) -> MissingModelError:
    target = hub_checkpoints_dir() / INCEPTION_FILE
    where = f"'{path}' does not exist" if path is not None else f"not found in {target.parent}"
    return MissingModelError(
        f"the FID Inception weights are needed and {where}; nothing is downloaded at run time",
        file=str(path or target),
        fix=(f"run `imgsynth models fetch inception` (it checks the sha256); without internet "
             f"here, place {INCEPTION_FILE} (sha256 {INCEPTION_SHA256}, from {INCEPTION_URL}) at "
             f"{target} (set TORCH_HOME to move it) or pass --weights PATH; or use "
             f"--extractor builtin for a quick, non-comparable check"))


class InceptionExtractor(FeatureExtractor):
    """torchmetrics' NoTrainInceptionV3 (torch-fidelity's TF-exact port): pool3 2048-d
    features and the unbiased logits IS uses, in one forward pass."""

    num_features = 2048
    num_logits = 1008

    def __init__(self, preset: str = "paper", weights=None, device: str = "cpu",
                 allow_download: bool = False):
        super().__init__(device)
        self.preset = check_preset(preset)
        path = find_inception_weights(weights)
        if path is None and not allow_download:
            raise missing_inception_error(None)
        if path is not None and not path.is_file():
            raise missing_inception_error(path)
        try:
            from torchmetrics.image.fid import NoTrainInceptionV3
        except ModuleNotFoundError as exc:  # torchmetrics[image] needs torch-fidelity
            raise InputError(f"the Inception extractor needs torch-fidelity ({exc})",
                             fix="pip install torch-fidelity") from None
        sha = file_sha256(path) if path is not None else INCEPTION_SHA256
        try:
            self.model = NoTrainInceptionV3(
                name="inception-v3-compat", features_list=["2048", "logits_unbiased"],
                feature_extractor_weights_path=None if path is None else str(path),
                antialias=(preset == "clean")).to(device)
        except Exception as exc:  # noqa: BLE001 - any load failure means a bad file
            raise MissingModelError(
                f"not a valid Inception weights file ({type(exc).__name__}: {str(exc)[:200]})",
                file=str(path), fix=f"replace it with {INCEPTION_FILE} (sha256 {INCEPTION_SHA256})"
            ) from None
        self.weights_sha256 = sha
        self.id = f"inception-v3-compat-2048-{sha[:8]}-{preset}"
        self.resize_note = (f"299x299, {'TF1-compatible bilinear, no antialias' if preset == 'paper' else 'bilinear with antialias'}")

    def _forward(self, batch):
        # _torch_fidelity_forward returns every requested layer at once; forward() only
        # the first. Same code path as torchmetrics' FID/IS, so numbers match it.
        feats, logits = self.model._torch_fidelity_forward(batch)
        return feats, logits


class TorchvisionExtractor(FeatureExtractor):
    """A torchvision classifier with its head removed: ImageNet-normalised 224x224 input."""

    size = 224

    def __init__(self, arch: str, preset: str = "clean", weights=None, device: str = "cpu",
                 allow_download: bool = False):
        import torch
        import torchvision

        super().__init__(device)
        self.preset = check_preset(preset)
        if arch not in torchvision.models.list_models():
            raise RecipeError(f"unknown torchvision model '{arch}'."
                              f"{did_you_mean(arch, torchvision.models.list_models())}",
                              key="extractor", fix="see torchvision.models.list_models()")
        model = torchvision.models.get_model(arch, weights=None)
        path = Path(weights) if weights else None
        if path is None:
            default = torchvision.models.get_model_weights(arch).DEFAULT
            path = hub_checkpoints_dir() / os.path.basename(default.url)
            if not path.is_file() and not allow_download:
                raise MissingModelError(
                    f"weights for torchvision '{arch}' not found", file=str(path),
                    fix=f"run `imgsynth models fetch torchvision:{arch}`; without internet here, "
                        f"place {path.name} ({default.url}) there or pass --weights PATH")
        if not path.is_file():
            raise MissingModelError("weights file not found", file=str(path),
                                    fix="pass an existing state_dict file with --weights")
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        self.num_features = replace_head(model)
        self.model = model.eval().to(device)
        self.id = f"torchvision-{arch}-{file_sha256(path)[:8]}-{preset}"
        self.resize_note = f"bilinear to 224x224, antialias={preset == 'clean'}, ImageNet mean/std"

    def _forward(self, batch):
        x = imagenet_normalize(resize_batch(batch.float() / 255.0, self.size, self.preset))
        return self.model(x), None


def replace_head(model) -> int:
    """Swap the classifier for Identity; returns the pooled feature width."""
    import torch.nn as nn

    for attr in ("fc", "classifier", "heads", "head"):
        head = getattr(model, attr, None)
        if head is None:
            continue
        linears = [m for m in head.modules() if isinstance(m, nn.Linear)] if not isinstance(
            head, nn.Linear) else [head]
        if linears:
            setattr(model, attr, nn.Identity())
            return linears[0].in_features
    raise RecipeError(f"cannot find the classifier head of {type(model).__name__}",
                      key="extractor", fix="use a model with .fc, .classifier or .heads")


def imagenet_normalize(x):
    import torch

    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


class TimmExtractor(FeatureExtractor):
    size = 224

    def __init__(self, name: str, preset: str = "clean", weights=None, device: str = "cpu"):
        super().__init__(device)
        self.preset = check_preset(preset)
        try:
            import timm
        except ModuleNotFoundError:
            raise InputError("the timm extractor needs the timm package",
                             fix="pip install timm") from None
        if weights is None or not Path(weights).is_file():
            raise MissingModelError(f"timm model '{name}' needs a local weights file",
                                    file=str(weights) if weights else None,
                                    fix="pass --weights PATH (a timm checkpoint)")
        model = timm.create_model(name, pretrained=False, num_classes=0,
                                  checkpoint_path=str(weights))
        self.num_features = int(model.num_features)
        self.model = model.eval().to(device)
        self.id = f"timm-{name}-{file_sha256(weights)[:8]}-{preset}"
        self.resize_note = f"bilinear to 224x224, antialias={preset == 'clean'}, ImageNet mean/std"

    def _forward(self, batch):
        x = imagenet_normalize(resize_batch(batch.float() / 255.0, self.size, self.preset))
        return self.model(x), None


class Dinov2Extractor(FeatureExtractor):
    """FD-DINOv2 (Stein et al. 2023): CLS token of DINOv2 at 224x224."""

    size = 224

    def __init__(self, variant: str, preset: str = "clean", weights=None, device: str = "cpu"):
        import torch

        super().__init__(device)
        self.preset = check_preset(preset)
        if variant not in DINOV2_VARIANTS:
            raise RecipeError(f"unknown DINOv2 variant '{variant}'.{did_you_mean(variant, DINOV2_VARIANTS)}",
                              key="extractor", fix=f"use dinov2:{'|'.join(DINOV2_VARIANTS)}")
        repo = hub_checkpoints_dir().parent / "facebookresearch_dinov2_main"
        ckpt = Path(weights) if weights else hub_checkpoints_dir() / f"dinov2_{variant}_pretrain.pth"
        if not (repo / "hubconf.py").is_file() or not ckpt.is_file():
            raise MissingModelError(
                "DINOv2 needs a local torch hub checkout and its checkpoint",
                file=str(repo if not (repo / "hubconf.py").is_file() else ckpt),
                fix=f"put the facebookresearch/dinov2 repository at {repo} and "
                    f"dinov2_{variant}_pretrain.pth at {ckpt}")
        model = torch.hub.load(str(repo), f"dinov2_{variant}", source="local", pretrained=False)
        model.load_state_dict(torch.load(ckpt, map_location="cpu", weights_only=True))
        self.num_features = int(model.embed_dim)
        self.model = model.eval().to(device)
        self.id = f"dinov2-{variant}-{file_sha256(ckpt)[:8]}-{preset}"
        self.resize_note = f"bicubic to 224x224, antialias={preset == 'clean'}, ImageNet mean/std"

    def _forward(self, batch):
        import torch.nn.functional as F

        x = F.interpolate(batch.float() / 255.0, size=(self.size, self.size), mode="bicubic",
                          align_corners=False, antialias=(self.preset == "clean"))
        return self.model(imagenet_normalize(x)), None


EXTRACTORS = ("inception", "builtin", "torchvision:<arch>", "timm:<name>", "dinov2:<variant>")


def get_extractor(name: str = "inception", *, preset: str = "paper", weights=None,
                  device: str = "cpu", allow_download: bool = False) -> FeatureExtractor:
    """Build an extractor by name: 'inception', 'builtin', 'torchvision:resnet50',
    'timm:<model>', 'dinov2:vitb14'. `weights` is a local file where the model needs one."""
    kind, _, arg = name.partition(":")
    if kind == "inception":
        return InceptionExtractor(preset, weights, device, allow_download)
    if kind == "builtin":
        return BuiltinExtractor(preset, device)
    if kind == "torchvision" and arg:
        return TorchvisionExtractor(arg, preset, weights, device, allow_download)
    if kind == "timm" and arg:
        return TimmExtractor(arg, preset, weights, device)
    if kind == "dinov2" and arg:
        return Dinov2Extractor(arg, preset, weights, device)
    raise RecipeError(f"unknown feature extractor '{name}'.{did_you_mean(name, EXTRACTORS)}",
                      key="extractor", fix=f"use one of: {', '.join(EXTRACTORS)}")
