"""Typed configs for DCGAN/VAE training recipes and the `gan_sample` source.

Only pydantic and the standard library are imported here so that validating a
recipe stays fast; the model families (imgsynth.generate.families) and the source
name the torch modules that use these configs.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from imgsynth.core.stage import StageConfig

RESOLUTIONS = (32, 64, 128, 256)


class TrainDataConfig(BaseModel):
    """Where the training images come from and how they are made uniform."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["folder", "imagefolder", "coco", "digits"] = Field(
        ..., description="folder: every image under `path` (unconditional); imagefolder: one "
        "sub-folder per class under `path`; coco: object crops from `annotations` with images "
        "under `path`, labeled by category; digits: scikit-learn's bundled 8x8 digits (1,797 "
        "images, classes 0-9), upscaled, available offline.")
    path: str | None = Field(None, description="Image folder (folder, imagefolder) or COCO image "
                             "root (coco). Relative paths start from the current folder, as in run recipes.")
    annotations: str | None = Field(None, description="COCO instances JSON (coco only).")
    classes: list[str] | None = Field(
        None, description="Keep only these classes, in this id order. Default: all, sorted "
        "(imagefolder, coco) or 0-9 (digits).")
    fit: Literal["center_crop", "stretch", "error"] = Field(
        "center_crop", description="How images whose size differs from the model resolution are "
        "made to fit: center_crop (resize the short side, crop the middle), stretch (resize both "
        "sides, may distort), error (stop with the file name).")
    min_crop_size: int = Field(16, ge=1, le=4096, description="coco: skip objects whose box is "
                               "smaller than this many pixels on its short side.")
    crop_padding: float = Field(0.1, ge=0.0, le=1.0, description="coco: grow each box by this "
                                "fraction of its size on every side before cropping.")
    holdout_fraction: float = Field(
        0.1, ge=0.0, le=0.5, description="Fraction of images held out of training (seeded "
        "split) for FID / validation loss and the memorization baseline.")
    limit: int | None = Field(None, ge=1, description="Use at most this many images (seeded "
                              "choice), e.g. for a quick try.")

    @model_validator(mode="after")
    def _paths_for_kind(self, info: ValidationInfo) -> TrainDataConfig:
        # A key the kind ignores would silently train on other data (e.g. the digits recipe
        # with --set data.path=... still trains on digits). A checkpoint's stored config is a
        # record of what ran (context stored=True): sampling it needs no data.
        if info.context and info.context.get("stored"):
            return self
        users = {"path": ("folder", "imagefolder", "coco"), "annotations": ("coco",),
                 "min_crop_size": ("coco",), "crop_padding": ("coco",)}
        for name, kinds in users.items():
            if self.kind not in kinds and getattr(self, name) != type(self).model_fields[name].default:
                raise ValueError(f"data.{name} is used only with data.kind {' or '.join(kinds)}, and "
                                 f"data.kind is '{self.kind}': remove data.{name} or set data.kind "
                                 "(imagefolder: one sub-folder per class)")
        if self.kind != "digits" and not self.path:
            raise ValueError(f"data.kind '{self.kind}' needs data.path (the image folder)")
        if self.kind == "coco" and not self.annotations:
            raise ValueError("data.kind 'coco' needs data.annotations (the instances JSON)")
        return self


class TrainConfigBase(BaseModel):
    """Fields shared by both model families: data, resolution, schedule, device, outputs."""

    model_config = ConfigDict(extra="forbid")

    data: TrainDataConfig = Field(..., description="Training images.")
    resolution: int = Field(32, description="Image side in pixels: a power of two from 32 to "
                            "256. The network depth is derived from it.")
    channels: Literal[1, 3] = Field(3, description="1: grayscale, 3: RGB. Images in other modes "
                                    "are converted.")
    conditional: bool = Field(False, description="Class-conditional model: samples carry the "
                              "class they were asked for. Needs labeled data.")
    seed: int = Field(0, ge=0, description="Fixes initial weights, data order, noise: the run "
                      "is reproducible and resumes to the same weights.")
    steps: int = Field(2000, ge=1, description="Optimizer steps (batches) to train in total.")
    batch_size: int = Field(64, ge=1, le=4096, description="Images per step; the training set "
                            "must hold at least this many.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field(
        "auto", description="auto picks cuda, then mps, then cpu.")
    amp: bool = Field(True, description="Mixed precision (float16 autocast + grad scaler) on "
                      "CUDA; ignored on CPU/MPS.")
    channels_last: bool = Field(True, description="Use the channels-last memory layout (faster "
                                "convolutions on most CPUs and GPUs; same results up to rounding).")
    grid_every: int = Field(200, ge=1, description="Write a fixed-noise sample grid PNG every "
                            "this many steps (and at the end).")
    grid_size: int = Field(64, ge=1, le=1024, description="Images on each grid.")
    checkpoint_every: int = Field(500, ge=1, description="Save checkpoints/last.pt every this "
                                  "many steps (and at the end).")
    log_every: int = Field(50, ge=1, description="Append training metrics to metrics.jsonl every "
                           "this many steps.")
    eval_every: int = Field(500, ge=1, description="Evaluate on the held-out images (FID when "
                            "the evaluator is available, else VAE validation loss) every this "
                            "many steps; the best keeps checkpoints/best.pt.")
    eval_samples: int = Field(500, ge=16, le=50000, description="Generated images per FID "
                              "evaluation.")
    fid_extractor: str = Field(
        "builtin", description="Feature extractor for FID during training: builtin (a small "
        "fixed random conv net, offline; for comparing steps of one run, not with published "
        "FIDs), inception (needs its weights file locally) or any name `imgsynth eval "
        "--extractor` accepts.")
    early_stopping_patience: int | None = Field(
        None, ge=1, description="Stop after this many evaluations without improvement. "
        "Default: never stop early.")
    memorization_samples: int = Field(256, ge=0, le=10000, description="Samples compared with "
                                      "the training set (nearest neighbour) at the end; 0 skips.")

    @field_validator("resolution")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value not in RESOLUTIONS:
            raise ValueError(f"resolution {value} is not supported: use a power of two from 32 "
                             f"to 256 ({', '.join(map(str, RESOLUTIONS))})")
        return value

    @model_validator(mode="after")
    def _labels_for_conditional(self) -> TrainConfigBase:
        if self.conditional and self.data.kind == "folder":
            raise ValueError("conditional: true needs class labels, but data.kind 'folder' has "
                             "none: use data.kind imagefolder (one sub-folder per class), coco "
                             "or digits, or set conditional: false")
        return self

    @property
    def latent_size(self) -> int:
        """Length of the latent vector the model samples from."""
        raise NotImplementedError


class DcganTrainConfig(TrainConfigBase):
    """A DCGAN (Radford et al. 2016) training recipe, with modern stabilizers as options."""

    model: Literal["dcgan"] = Field("dcgan", description="Model family of this recipe.")
    nz: int = Field(100, ge=1, le=1024, description="Latent vector size.")
    ngf: int = Field(64, ge=1, le=512, description="Generator width (channels of its last "
                     "hidden layer; earlier layers have up to 8x).")
    ndf: int = Field(64, ge=1, le=512, description="Discriminator width.")
    lr_g: float = Field(2e-4, gt=0, le=1, description="Generator Adam learning rate.")
    lr_d: float = Field(2e-4, gt=0, le=1, description="Discriminator Adam learning rate.")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam beta1.")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam beta2.")
    loss: Literal["bce", "hinge"] = Field("bce", description="bce: the original non-saturating "
                                          "loss (BCE with logits); hinge: hinge loss.")
    spectral_norm: bool = Field(False, description="Spectral normalization on discriminator "
                                "layers (replaces its batch norm).")
    label_smoothing: float = Field(0.0, ge=0.0, le=0.5, description="One-sided label smoothing: "
                                   "real targets become 1 - this (bce only).")
    ema_decay: float | None = Field(None, ge=0.0, lt=1.0, description="Keep an exponential "
                                    "moving average of the generator (e.g. 0.999); used for "
                                    "grids, evaluation and sampling.")
    diffaugment: list[Literal["color", "translation", "cutout"]] = Field(
        default_factory=list, description="DiffAugment policies applied to real and fake images "
        "before the discriminator (helps with a few hundred images).")

    @property
    def latent_size(self) -> int:
        return self.nz


class VaeTrainConfig(TrainConfigBase):
    """A convolutional VAE training recipe."""

    model: Literal["vae"] = Field("vae", description="Model family of this recipe.")
    latent_dim: int = Field(64, ge=1, le=2048, description="Latent vector size.")
    nf: int = Field(32, ge=1, le=512, description="Width of the first encoder layer (doubles "
                    "per level, up to 8x).")
    lr: float = Field(1e-3, gt=0, le=1, description="Adam learning rate.")
    beta: float = Field(1.0, ge=0.0, description="Weight of the KL term at the end of warm-up.")
    beta_warmup_steps: int = Field(500, ge=0, description="Steps over which the KL weight rises "
                                   "linearly from 0 to beta.")
    recon_loss: Literal["mse", "bce"] = Field("bce", description="Reconstruction loss per pixel "
                                              "(summed over pixels): mse or bce.")

    @property
    def latent_size(self) -> int:
        return self.latent_dim


class GanSampleConfig(StageConfig):
    """Source: images sampled from a checkpoint written by `imgsynth train dcgan|vae`."""

    implementation: ClassVar[str] = "imgsynth.generate.gan_source:CheckpointSampler"
    type: Literal["gan_sample"] = Field("gan_sample", description="Source type.")
    checkpoint: str = Field(..., description="A .pt checkpoint written by `imgsynth train` "
                            "(checkpoints/best.pt or last.pt).")
    sample_classes: list[str] | None = Field(
        None, description="Conditional models: sample only these classes (cycled by index). "
        "Default: every class of the checkpoint, cycled by index.")
    use_ema: bool = Field(True, description="Use the generator's moving average when the "
                          "checkpoint has one.")
    device: Literal["auto", "cpu", "cuda", "mps"] = Field("cpu", description="Where the model "
                                                          "runs. cpu gives byte-identical images "
                                                          "on every machine.")

    def classes(self) -> list[str] | None:
        return self.sample_classes
