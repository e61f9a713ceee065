"""Recipe configs of the Stable Diffusion source (`diffuse`) and stage (`diffuse_img2img`).

Only pydantic and the standard library are imported here, so validating a recipe
never imports torch or diffusers; each config names its class in
`imgsynth.generate.diffusion`, imported only when it is built.
"""

from __future__ import annotations

import string
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from imgsynth.core.errors import did_you_mean
from imgsynth.core.stage import StageConfig

# Schedulers that work with Stable Diffusion 1.x/2.x/SDXL-class (epsilon/v-prediction)
# checkpoints: diffusers' KarrasDiffusionSchedulers plus the distilled-model ones.
# Checked here without importing diffusers; tests check every name exists in diffusers,
# and build() checks the name against the loaded checkpoint's own compatible list.
SCHEDULERS: tuple[str, ...] = (
    "DDIMScheduler", "DDPMScheduler", "PNDMScheduler", "LMSDiscreteScheduler",
    "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
    "DPMSolverMultistepScheduler", "DPMSolverSinglestepScheduler", "DPMSolverSDEScheduler",
    "KDPM2DiscreteScheduler", "KDPM2AncestralDiscreteScheduler", "DEISMultistepScheduler",
    "UniPCMultistepScheduler", "EDMEulerScheduler", "LCMScheduler", "TCDScheduler",
)


# YAML 1.1's boolean words (what PyYAML reads as true/false when unquoted).
_SWITCH_WORDS = {"on": True, "yes": True, "true": True, "off": False, "no": False, "false": False}


def template_slots(template: str) -> list[str]:
    """Slot names of a prompt template in order of appearance ('{class}' included)."""
    names = []
    for _, field, spec, conv in string.Formatter().parse(template):
        if field is None:
            continue
        if field == "" or field.isdigit() or spec or conv or "." in field or "[" in field:
            raise ValueError(f"prompt template {template!r}: slots are plain names like "
                             "{class} or {context}, without positions, formats or attributes")
        if field not in names:
            names.append(field)
    return names


def _check_templates(templates: list[str], slots: dict[str, list[str]], where: str) -> None:
    for template in templates:
        for name in template_slots(template):
            if name != "class" and name not in slots:
                raise ValueError(
                    f"{where}: template {template!r} uses slot '{{{name}}}' but no values are "
                    f"given.{did_you_mean(name, slots)} Add 'slots: {{{name}: [...]}}' or "
                    "remove it from the template")


class PipelineOptions(StageConfig):
    """Model, sampler and speed settings shared by text-to-image and image-to-image."""

    model: str = Field(
        ..., min_length=1,
        description="A local diffusers folder (with model_index.json), e.g. "
        "models/stable-diffusion-v1-5, or a Hugging Face hub id resolved from the local cache "
        "(~/.cache/huggingface/hub, or $HF_HOME). Nothing is downloaded unless allow_download is true.")
    revision: str | None = Field(
        None, description="Hub revision (branch, tag or commit) for a hub id. Default: main.")
    allow_download: bool = Field(
        False, description="Download a hub id that is not in the local cache. Ignored (treated "
        "as false) when HF_HUB_OFFLINE=1 is set.")
    negative_prompt: str = Field(
        "", description="What the images should not show (classifier-free guidance negative).")
    steps: int = Field(30, ge=1, le=1000, description="Denoising steps per image.")
    guidance_scale: float = Field(
        7.5, ge=0.0, le=50.0, description="Classifier-free guidance scale; <= 1 turns guidance off.")
    scheduler: str | None = Field(
        None, description="diffusers scheduler class, e.g. DPMSolverMultistepScheduler, "
        "EulerAncestralDiscreteScheduler. Default: the checkpoint's own scheduler.")
    scheduler_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra scheduler config, e.g. {use_karras_sigmas: true}.")
    device: Literal["auto", "cuda", "mps", "cpu"] = Field(
        "auto", description="auto: cuda if available, else mps, else cpu.")
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = Field(
        "auto", description="Weights and compute type. auto: float16 on cuda/mps, float32 on cpu.")
    channels_last: bool = Field(
        True, description="channels_last memory format for the UNet and VAE (faster convolutions on GPU).")
    compile: bool = Field(
        False, description="torch.compile the UNet: faster after a one-off compile of tens of "
        "seconds to minutes per worker; pays off for hundreds of images.")
    vae_slicing: bool = Field(False, description="Decode a batch one image at a time (less memory).")
    vae_tiling: bool = Field(False, description="Decode in tiles (less memory for large images).")
    cpu_offload: Literal["none", "model", "sequential"] = Field(
        "none", description="Keep weights in CPU memory for small GPUs: model (moves whole "
        "models, slower by ~20%) or sequential (moves layers, much slower, least memory).")
    safety_checker: Literal["default", "off"] = Field(
        "default", description="default: run the checkpoint's safety checker when it has one "
        "(SD 1.x does, SDXL does not); flagged images are skipped (reason safety_checker), "
        "never written black. off: do not load it.")

    @field_validator("safety_checker", mode="before")
    @classmethod
    def _switch_words(cls, value: Any) -> Any:
        """YAML reads an unquoted `off`/`no` as false: a switch word means the same as the
        boolean it is, quoted or not."""
        if isinstance(value, str) and value.strip().lower() in _SWITCH_WORDS:
            value = _SWITCH_WORDS[value.strip().lower()]
        if isinstance(value, bool):
            return "default" if value else "off"
        return value

    @field_validator("scheduler")
    @classmethod
    def _known_scheduler(cls, name: str | None) -> str | None:
        if name is not None and name not in SCHEDULERS:
            raise ValueError(f"unknown scheduler '{name}'.{did_you_mean(name, SCHEDULERS)} "
                             f"Use one of: {', '.join(SCHEDULERS)}, or leave it out for the "
                             "checkpoint's own")
        return name


class ClassPrompts(BaseModel):
    """Per-class overrides of the shared prompts."""

    model_config = ConfigDict(extra="forbid")

    text: str | None = Field(None, description="What {class} becomes in prompts. Default: the class name.")
    prompts: list[str] | None = Field(
        None, min_length=1, description="Templates for this class instead of the shared ones.")
    negative_prompt: str | None = Field(None, description="Negative prompt for this class instead of the shared one.")
    slots: dict[str, list[str]] = Field(
        default_factory=dict, description="Slot values for this class, replacing the shared values of the same slot.")


class DiffuseConfig(PipelineOptions):
    """Text-to-image source: a labeled classification set from per-class prompt templates.

    Sample i is image k = i % images_per_class of label i // images_per_class; its seed,
    template and slot values are drawn from sample i's Generator.
    """

    implementation: ClassVar[str] = "imgsynth.generate.diffusion:DiffusionSource"
    type: Literal["diffuse"] = Field("diffuse", description="Stable Diffusion text-to-image source.")
    labels: dict[str, ClassPrompts | None] = Field(
        ..., min_length=1,
        description="Class names (the labels, in id order), each with optional prompt "
        "overrides (`cat: {prompts: [...]}`), or a plain list of names.")
    prompts: list[str] = Field(
        ["a photo of a {class}"], min_length=1,
        description="Prompt templates; one is drawn per image. {class} is the class text, other "
        "{slots} take a value drawn from `slots`.")
    slots: dict[str, list[str]] = Field(
        default_factory=dict, description="Values per slot, e.g. {context: [on a table, in a garden]}.")
    images_per_class: int = Field(10, ge=1, description="Images made per class.")
    width: int | None = Field(
        None, ge=8, le=4096, multiple_of=8, description="Image width. Default: the checkpoint's (512 for SD 1.5, 1024 for SDXL).")
    height: int | None = Field(
        None, ge=8, le=4096, multiple_of=8, description="Image height. Default: the checkpoint's.")
    batch_size: int = Field(
        1, ge=1, le=64, description="Images per pipeline call (faster on GPU). Noise and prompts "
        "do not depend on it, but pixels may differ by floating-point rounding between batch "
        "sizes; the manifest records the batch so any image regenerates byte-exact.")

    @field_validator("labels", mode="before")
    @classmethod
    def _names_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {str(name): None for name in value}
        return value

    @field_validator("slots")
    @classmethod
    def _slot_values(cls, slots: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, values in slots.items():
            if not values:
                raise ValueError(f"slot '{name}' has no values")
        return slots

    @model_validator(mode="after")
    def _templates_have_values(self) -> DiffuseConfig:
        _check_templates(self.prompts, self.slots, "prompts")
        for name, override in self.labels.items():
            if override is None:
                continue
            for slot, values in override.slots.items():
                if not values:
                    raise ValueError(f"labels.{name}.slots.{slot} has no values")
            _check_templates(override.prompts or self.prompts, {**self.slots, **override.slots},
                             f"labels.{name}")
        return self

    def classes(self) -> list[str] | None:
        return list(self.labels)

    def count(self) -> int | None:
        return len(self.labels) * self.images_per_class

    def provides(self) -> frozenset[str]:
        return frozenset({"label"})


class Img2ImgConfig(PipelineOptions):
    """Image-to-image stage: a variation of each sample's image; the class label carries over."""

    implementation: ClassVar[str] = "imgsynth.generate.diffusion:Img2ImgStage"
    type: Literal["diffuse_img2img"] = Field("diffuse_img2img", description="Stable Diffusion image-to-image stage.")
    prompts: list[str] = Field(
        ["a photo of a {class}"], min_length=1,
        description="Prompt templates; {class} is the sample's label (or its instance classes).")
    slots: dict[str, list[str]] = Field(default_factory=dict, description="Values per template slot.")
    strength: float = Field(
        0.3, gt=0.0, le=1.0, description="How far from the input: 0.3 keeps layout and objects "
        "in place, 0.6+ redraws them. strength x steps denoising steps run.")
    keep_boxes: bool = Field(
        False, description="Keep the sample's instances (boxes, masks). Only valid at low strength "
        "(<= 0.5 allowed, <= 0.3 advised); default drops them and keeps the class label.")

    @model_validator(mode="after")
    def _consistent(self) -> Img2ImgConfig:
        _check_templates(self.prompts, self.slots, "prompts")
        if int(self.steps * self.strength) < 1:
            raise ValueError(f"steps x strength = {self.steps} x {self.strength} runs no "
                             "denoising step: raise steps or strength")
        if self.keep_boxes and self.strength > 0.5:
            raise ValueError(f"keep_boxes with strength {self.strength}: above 0.5 objects move, "
                             "change shape or vanish, so boxes would be wrong. Lower strength "
                             "(<= 0.3 advised) or set keep_boxes: false")
        return self
