"""Stable Diffusion through diffusers: offline-first model loading and labeled generation.

Imported only when a config is built (DiffuseConfig, Img2ImgConfig name the classes
here); torch and diffusers are imported inside the functions that need them. The
numbered steps:

1. resolve_model: recipe `model` -> a local diffusers folder (a folder, or a hub id
   found in the local cache; downloaded only with allow_download).
2. load_model: the folder -> a text-to-image pipeline with the speed options applied,
   cached per worker process (a source and an img2img stage share the weights).
3. plan_prompt: per image, a template and slot values drawn from the sample's Generator.
4. run_text2image / run_image2image: one pipeline call; every image has its own seed and
   its own CPU torch.Generator, so its noise does not depend on the batch it ran in.

`regenerate(out_dir, index)` makes one image of a finished run again through the same
steps, with the settings of the run's saved recipe.yaml.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgsynth.core.device import pick_device
from imgsynth.core.errors import InputError, MissingModelError, RecipeError, did_you_mean
from imgsynth.core.rng import derived_int_seed, sample_rng
from imgsynth.core.sample import Sample
from imgsynth.core.stage import BuildContext, SkipSample
from imgsynth.generate.diffusion_config import (
    DiffuseConfig,
    Img2ImgConfig,
    PipelineOptions,
    template_slots,
)

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
# Pages of huggingface.co (huggingface.co/models is the model list), never a repository owner.
_HUB_PAGES = frozenset({"models", "datasets", "spaces"})

# Generators live on the CPU: the initial noise of a seed is then the same on every
# device (diffusers' reproducibility advice), at a negligible cost per image.
GENERATOR_DEVICE = "cpu"


@dataclass(frozen=True)
class ModelRef:
    """Where a recipe's `model` was found."""

    name: str  # as written in the recipe
    folder: Path  # local diffusers folder (model_index.json)
    revision: str | None  # hub commit for a hub id, None for a plain folder
    config_sha256: str  # hash of model_index.json and the component configs


@dataclass
class LoadedModel:
    pipe: Any  # text-to-image pipeline, on its device, speed options applied
    ref: ModelRef
    device: str
    dtype: str
    scheduler_config: dict  # the checkpoint's own scheduler, before any recipe change


_MODELS: dict[tuple, LoadedModel] = {}


def release_models() -> None:
    """Forget this process's loaded pipelines (the driver of a multi-process run loads one
    only to check the recipe; its workers load their own) and return their GPU memory."""
    _MODELS.clear()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def reads_as_hub_id(model: str) -> bool:
    """`owner/name` that can only mean a hub repository: not a path (./, /, ~, more parts, one
    name), and its owner neither a folder here nor one of the hub's own pages (models/...)."""
    if not _HUB_ID.match(model):
        return False
    owner = model.split("/", 1)[0]
    return owner not in _HUB_PAGES and not Path(owner).is_dir()


def model_config_sha256(folder: Path) -> str:
    """Identifies a checkpoint's architecture and scheduler without hashing gigabytes of weights."""
    digest = hashlib.sha256()
    files = [folder / "model_index.json", *sorted(folder.glob("*/config.json")),
             *sorted(folder.glob("*/scheduler_config.json"))]
    for path in files:
        digest.update(path.relative_to(folder).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _fetch_fix(model: str, allow_download: bool = False, revision: str | None = None) -> str:
    """How to get the files: for a folder, where to put them; for a hub id, the fetch command
    (and, for a machine without internet, what to copy where)."""
    if not reads_as_hub_id(model):
        folder = Path(model).expanduser().absolute()
        return (f"put a complete diffusers checkpoint (the folder holding model_index.json, unet/, "
                f"vae/, text_encoder/, tokenizer/, scheduler/) at {folder}, e.g. "
                f"`imgsynth models fetch stable-diffusion-v1-5/stable-diffusion-v1-5 --dir {model}` "
                f"(or on a machine with internet `hf download stable-diffusion-v1-5/stable-diffusion-v1-5 "
                f"--local-dir {model}`, then copy the folder here; relative paths start from the "
                "folder imgsynth runs in)")
    from huggingface_hub.constants import HF_HUB_CACHE

    local = f"models/{model.split('/')[-1]}"
    pin = f" --revision {revision}" if revision else ""
    return (f"run `imgsynth models fetch {model}{pin}` (into the hub cache {HF_HUB_CACHE}, moved by "
            f"HF_HOME/HF_HUB_CACHE; it checks the files' checksums); without internet here, on a "
            f"machine with internet run `imgsynth models fetch {model}{pin} --dir {local}` or "
            f"`hf download {model}{pin} --local-dir {local}` (older huggingface_hub: "
            f"`huggingface-cli download ...`), copy {local} here and set model: {local}"
            + ("; or set allow_download: true" if not allow_download
               else "; or unset HF_HUB_OFFLINE" if hub_offline() else ""))


def _why_not_fetched(allow_download: bool, exc: Exception) -> str:
    """What actually kept a hub id from being found: only what is true of this process."""
    if not allow_download:
        return "allow_download is false"
    if hub_offline():
        return f"HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']} is set, which wins over allow_download"
    said = " ".join(str(exc).split())
    said = said if len(said) <= 160 else said[:160] + "..."
    return f"allow_download is true, but the download failed: {type(exc).__name__}: {said}"


def resolve_model(model: str, revision: str | None, allow_download: bool, *, key: str) -> ModelRef:
    """The local diffusers folder for a recipe's `model`; nothing is fetched unless allowed."""
    folder = Path(model).expanduser()
    if folder.is_dir():
        if not (folder / "model_index.json").is_file():
            raise MissingModelError(
                f"'{model}' is a folder but not a diffusers pipeline (no model_index.json)", key=key,
                fix="point model at the folder that holds model_index.json (a diffusers "
                "save_pretrained / `hf download` folder); single .safetensors/.ckpt files are not supported")
        return ModelRef(model, folder, None, model_config_sha256(folder))
    if not reads_as_hub_id(model):
        raise MissingModelError(f"model folder '{model}' not found ({folder.absolute()})", key=key,
                                fix=_fetch_fix(model))
    try:
        if allow_download and not hub_offline():
            from diffusers import DiffusionPipeline

            with libraries_quiet():  # its notes ("Couldn't connect...") are in the error below
                folder = Path(DiffusionPipeline.download(model, revision=revision))
        else:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(model, revision=revision, local_files_only=True))
    except (OSError, ValueError) as exc:  # LocalEntryNotFoundError, HTTP errors are OSErrors
        why = _why_not_fetched(allow_download, exc)
        raise MissingModelError(
            f"hub model '{model}' is not in the local Hugging Face cache ({why}), "
            f"and there is no folder {folder.absolute()}", key=key,
            fix=f"{_fetch_fix(model, allow_download, revision)}. Meant as a folder: put the checkpoint at "
            f"{folder.absolute()}") from None
    if not (folder / "model_index.json").is_file():
        raise MissingModelError(f"hub model '{model}' has no model_index.json: not a diffusers pipeline",
                                key=key, fix="use a diffusers-format repository")
    return ModelRef(model, folder, folder.name, model_config_sha256(folder))


def pick_dtype(dtype: str, device: str) -> str:
    if dtype == "auto":
        return "float32" if device == "cpu" else "float16"
    return dtype


def load_model(options: PipelineOptions, *, key: str) -> LoadedModel:
    """The text-to-image pipeline for `options`, loaded once per worker process."""
    ref = resolve_model(options.model, options.revision, options.allow_download, key=f"{key}.model")
    device = str(pick_device(options.device, key=f"{key}.device"))
    dtype = pick_dtype(options.dtype, device)
    cache_key = (str(ref.folder.resolve()), device, dtype, options.safety_checker, options.channels_last,
                 options.compile, options.vae_slicing, options.vae_tiling, options.cpu_offload)
    if cache_key not in _MODELS:
        with libraries_quiet():
            pipe = _load_pipeline(ref, device, dtype, options, key=key)
        _MODELS[cache_key] = LoadedModel(pipe, ref, device, dtype, dict(pipe.scheduler.config))
    return _MODELS[cache_key]


@contextmanager
def libraries_quiet() -> Iterator[None]:
    """diffusers' and transformers' loading bars and notes off while a pipeline loads (a run
    shows its own progress, even --quiet printed theirs; an error still says what failed),
    as they were afterwards."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    saved = [(lib, lib.is_progress_bar_enabled(), lib.get_verbosity())
             for lib in (diffusers_logging, transformers_logging)]
    for lib, _, _ in saved:
        lib.disable_progress_bar()
        lib.set_verbosity_error()
    try:
        yield
    finally:
        for lib, bars, level in saved:
            if bars:
                lib.enable_progress_bar()
            lib.set_verbosity(level)


def _load_pipeline(ref: ModelRef, device: str, dtype: str, options: PipelineOptions, *, key: str) -> Any:
    import torch
    from diffusers import AutoPipelineForText2Image

    if options.cpu_offload != "none" and device == "cpu":
        raise RecipeError("cpu_offload moves weights between CPU and a GPU; the device is cpu",
                          key=f"{key}.cpu_offload", fix="set cpu_offload: none, or run on a GPU")
    extra = {"safety_checker": None, "requires_safety_checker": False} if options.safety_checker == "off" else {}
    try:
        pipe = AutoPipelineForText2Image.from_pretrained(
            ref.folder, dtype=getattr(torch, dtype), local_files_only=True, **extra)
    except (OSError, ValueError) as exc:
        raise MissingModelError(f"cannot load model '{ref.name}' from {ref.folder}: {exc}",
                                key=f"{key}.model", fix=f"the folder is incomplete or damaged; {_fetch_fix(ref.name, revision=ref.revision)}") from None
    pipe.set_progress_bar_config(disable=True)  # the engine shows progress over images
    if options.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if options.vae_slicing:
        pipe.vae.enable_slicing()
    if options.vae_tiling:
        pipe.vae.enable_tiling()
    if options.cpu_offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif options.cpu_offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    if options.compile:
        pipe.unet = torch.compile(pipe.unet)
    return pipe


def make_scheduler(model: LoadedModel, options: PipelineOptions, *, key: str) -> Any:
    """A fresh scheduler (schedulers hold per-call state) from the checkpoint's config."""
    import diffusers

    compatible = {cls.__name__ for cls in model.pipe.scheduler.compatibles} | {
        type(model.pipe.scheduler).__name__}
    name = options.scheduler or model.scheduler_config.get("_class_name") or type(model.pipe.scheduler).__name__
    if name not in compatible:
        raise RecipeError(f"scheduler '{name}' does not work with model '{options.model}'."
                          f"{did_you_mean(name, compatible)}", key=f"{key}.scheduler",
                          fix=f"use one of: {', '.join(sorted(compatible))}")
    try:
        return getattr(diffusers, name).from_config(model.scheduler_config, **options.scheduler_options)
    except ImportError as exc:  # e.g. DPMSolverSDEScheduler needs torchsde
        raise RecipeError(f"scheduler '{name}' needs a missing package: {exc}", key=f"{key}.scheduler",
                          fix="install it or choose another scheduler") from None


def default_size(pipe: Any) -> int:
    """The checkpoint's native image side (512 for SD 1.5, 768 for SD 2.x, 1024 for SDXL)."""
    sample_size = pipe.unet.config.sample_size
    side = sample_size[0] if isinstance(sample_size, list | tuple) else sample_size
    return int(side) * int(pipe.vae_scale_factor)


def plan_prompt(templates: list[str], slots: dict[str, list[str]], class_text: str,
                rng: np.random.Generator) -> tuple[str, str, dict[str, str]]:
    """(prompt, template, slot values): a template and one value per slot it uses."""
    template = templates[int(rng.integers(len(templates)))]
    values = {name: slots[name][int(rng.integers(len(slots[name])))]
              for name in template_slots(template) if name != "class"}
    prompt = template.format(**{"class": class_text, **values})
    return " ".join(prompt.split()), template, values  # an empty slot value leaves no double space


def images_to_uint8(images: np.ndarray) -> list[np.ndarray]:
    """diffusers' float [0, 1] output -> uint8, rounded as diffusers' own numpy_to_pil does."""
    return [np.clip(np.round(img * 255.0), 0, 255).astype(np.uint8) for img in images]


def _nsfw_flags(output: Any, count: int) -> list[bool]:
    flags = getattr(output, "nsfw_content_detected", None)
    return [bool(f) for f in flags] if flags is not None else [False] * count


def run_text2image(pipe: Any, prompts: list[str], negative_prompts: list[str], seeds: list[int], *,
                   steps: int, guidance_scale: float, width: int, height: int
                   ) -> tuple[list[np.ndarray], list[bool]]:
    """Images (HxWx3 uint8) and safety-checker flags, one per prompt."""
    import torch

    generators = [torch.Generator(GENERATOR_DEVICE).manual_seed(int(s)) for s in seeds]
    output = pipe(prompt=prompts, negative_prompt=negative_prompts, num_inference_steps=steps,
                  guidance_scale=guidance_scale, width=width, height=height,
                  generator=generators, output_type="np")
    return images_to_uint8(output.images), _nsfw_flags(output, len(prompts))


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
    """Edge-pad bottom/right so both sides are multiples of `multiple` (no resampling)."""
    h, w = image.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return image
    return np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="edge")


def run_image2image(pipe: Any, image: np.ndarray, prompt: str, negative_prompt: str, seed: int, *,
                    strength: float, steps: int, guidance_scale: float) -> tuple[np.ndarray, bool]:
    """A variation of `image` (HxWx3 or HxWx1 uint8) of the same size and channels."""
    import torch
    from PIL import Image

    h, w = image.shape[:2]
    rgb = np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image
    # Pad instead of resizing so that pixel coordinates (boxes, masks) stay where they were.
    padded = pad_to_multiple(rgb, 8)
    output = pipe(prompt=[prompt], negative_prompt=[negative_prompt], image=Image.fromarray(padded),
                  strength=strength, num_inference_steps=steps, guidance_scale=guidance_scale,
                  generator=[torch.Generator(GENERATOR_DEVICE).manual_seed(int(seed))], output_type="np")
    result = images_to_uint8(output.images)[0][:h, :w]
    if image.shape[2] == 1:
        import cv2

        result = cv2.cvtColor(result, cv2.COLOR_RGB2GRAY)[:, :, None]
    return result, _nsfw_flags(output, 1)[0]


def _threads_meta(device: str) -> dict[str, int]:
    """On a CPU the number of torch threads changes how convolutions add up (a pixel can end
    1 level apart), so it is recorded with each image and `regenerate` runs with it."""
    if device != "cpu":
        return {}
    import torch

    return {"torch_threads": torch.get_num_threads()}


def _settings_meta(model: LoadedModel, pipe: Any, options: PipelineOptions) -> dict[str, Any]:
    import diffusers

    return {"model": model.ref.name, "model_revision": model.ref.revision,
            "model_config_sha256": model.ref.config_sha256, "scheduler": type(pipe.scheduler).__name__,
            "scheduler_options": dict(options.scheduler_options), "steps": options.steps,
            "guidance_scale": options.guidance_scale, "dtype": model.dtype, "device": model.device,
            "generator_device": GENERATOR_DEVICE, "diffusers": diffusers.__version__}


@dataclass(frozen=True)
class ImagePlan:
    index: int
    label: str
    prompt: str
    negative_prompt: str
    template: str
    slots: dict[str, str]
    seed: int


class DiffusionSource:
    """Text-to-image source: index -> (label, k) -> prompt and seed -> image."""

    def __init__(self, config: DiffuseConfig, ctx: BuildContext):
        self.config = config
        self.batch_size = config.batch_size  # the engine groups indices by this (generate_batch)
        self.model = load_model(config, key="source")  # a missing model fails before diffusers loads
        from diffusers import AutoPipelineForText2Image

        # A pipeline object of its own (sharing the cached weights) holds this source's scheduler.
        self.pipe = AutoPipelineForText2Image.from_pipe(self.model.pipe)
        self.pipe.set_progress_bar_config(disable=True)
        self.pipe.scheduler = make_scheduler(self.model, config, key="source")
        self.width = config.width or default_size(self.pipe)
        self.height = config.height or default_size(self.pipe)
        self.labels = list(config.labels)
        self.settings = {**_settings_meta(self.model, self.pipe, config),
                         "width": self.width, "height": self.height}

    def close(self) -> None:
        self.pipe = self.model = None
        release_models()

    def plan(self, index: int, rng: np.random.Generator) -> ImagePlan:
        """The draws are in a fixed order: seed, template, slot values."""
        label = self.labels[index // self.config.images_per_class]
        override = self.config.labels[label]
        seed = derived_int_seed(rng)
        templates = (override.prompts if override and override.prompts else None) or self.config.prompts
        slots = {**self.config.slots, **(override.slots if override else {})}
        class_text = (override.text if override and override.text else None) or label
        prompt, template, values = plan_prompt(templates, slots, class_text, rng)
        negative = override.negative_prompt if override and override.negative_prompt is not None \
            else self.config.negative_prompt
        return ImagePlan(index, label, prompt, negative, template, values, seed)

    def generate(self, index: int, rng: np.random.Generator) -> Sample:
        result = self.generate_batch([index], [rng])[0]
        if isinstance(result, SkipSample):
            raise result
        return result

    def generate_batch(self, indices: list[int], rngs: list[np.random.Generator]) -> list[Sample | SkipSample]:
        """One pipeline call for several indices. A filtered image comes back as a
        SkipSample in its place (not raised), so the other images of the batch survive."""
        plans = [self.plan(i, r) for i, r in zip(indices, rngs, strict=True)]
        images, flagged = run_text2image(
            self.pipe, [p.prompt for p in plans], [p.negative_prompt for p in plans],
            [p.seed for p in plans], steps=self.config.steps, guidance_scale=self.config.guidance_scale,
            width=self.width, height=self.height)
        batch = {"batch": list(indices)} if len(indices) > 1 else {}
        threads = _threads_meta(self.model.device)
        results: list[Sample | SkipSample] = []
        for plan, image, nsfw in zip(plans, images, flagged, strict=True):
            if nsfw:
                results.append(SkipSample("safety_checker", f"seed {plan.seed}, prompt {plan.prompt!r}"))
                continue
            meta = {"prompt": plan.prompt, "negative_prompt": plan.negative_prompt, "seed": plan.seed,
                    "template": plan.template, "slots": plan.slots, **self.settings, **threads, **batch}
            results.append(Sample(index=plan.index, image=image, label=plan.label, meta=meta))
        return results


class Img2ImgStage:
    """A Stable Diffusion variation of each sample; the label carries over."""

    def __init__(self, config: Img2ImgConfig, ctx: BuildContext):
        self.config = config
        self.model = load_model(config, key="stages.diffuse_img2img")  # a missing model fails first
        from diffusers import AutoPipelineForImage2Image

        # from_pipe shares the weights with a text-to-image source of the same model.
        self.pipe = AutoPipelineForImage2Image.from_pipe(self.model.pipe)
        self.pipe.set_progress_bar_config(disable=True)
        self.pipe.scheduler = make_scheduler(self.model, config, key="stages.diffuse_img2img")
        self.settings = {**_settings_meta(self.model, self.pipe, config), "strength": config.strength}

    def close(self) -> None:
        self.pipe = self.model = None
        release_models()

    def apply(self, sample: Sample, rng: np.random.Generator) -> Sample:
        if sample.passthrough:
            return sample
        seed = derived_int_seed(rng)
        class_text = sample.label or " and ".join(dict.fromkeys(sample.class_names))
        prompt, template, values = plan_prompt(self.config.prompts, self.config.slots, class_text, rng)
        image, nsfw = run_image2image(
            self.pipe, sample.image, prompt, self.config.negative_prompt, seed,
            strength=self.config.strength, steps=self.config.steps, guidance_scale=self.config.guidance_scale)
        if nsfw:
            raise SkipSample("safety_checker", f"seed {seed}, prompt {prompt!r}")
        record = {"prompt": prompt, "negative_prompt": self.config.negative_prompt, "seed": seed,
                  "template": template, "slots": values, **self.settings,
                  **_threads_meta(self.model.device), "boxes_kept": self.config.keep_boxes}
        return dataclasses.replace(
            sample, image=image, instances=list(sample.instances) if self.config.keep_boxes else [],
            meta={**sample.meta, "diffuse_img2img": record})


def regenerate(out_dir: str | os.PathLike, index: int) -> np.ndarray:
    """The image of sample `index` of a finished run with a `diffuse` source, made again
    (HxWx3 uint8): the same bytes as the run's image on the same kind of device with the same
    library versions (images/ holds it as made when the recipe has no stages).

    Exact by construction: the pipeline is loaded from the run's saved recipe.yaml through
    the run's own code (model, dtype, device, scheduler, memory format, VAE and compile
    options), the seed and prompt are drawn again as the run drew them, the images that
    shared the pipeline call (`batch`) are made with it, and on a CPU the run's torch thread
    count is used.
    """
    import torch

    from imgsynth.io.writers.manifest import ManifestRecords
    from imgsynth.recipes.load import load_recipe, stage_names

    out = Path(out_dir)
    recipe = load_recipe(out / "recipe.yaml")
    if not isinstance(recipe.source, DiffuseConfig):
        raise RecipeError(f"the run's source is '{recipe.source.type}', not diffuse",
                          file=str(out / "recipe.yaml"),
                          fix="give the folder of a run whose recipe has a `type: diffuse` source")
    manifest = out / "manifest.jsonl"
    record = next((r for r in ManifestRecords(manifest) if r["index"] == index), None)
    if record is None:
        raise InputError(f"no written image has index {index}", file=str(manifest),
                         fix="give the 'index' of a manifest entry (file id - 1)")
    meta = record["meta"]
    group = meta.get("batch", [index])
    source_name = stage_names(recipe)[0]
    source = DiffusionSource(recipe.source, BuildContext())
    threads = torch.get_num_threads()
    torch.set_num_threads(meta.get("torch_threads", threads))
    try:
        made = source.generate_batch(group, [sample_rng(recipe.seed, source_name, i) for i in group])
    finally:
        torch.set_num_threads(threads)
    image = made[group.index(index)]
    recorded = (meta["seed"], meta["prompt"])
    if isinstance(image, SkipSample) or (image.meta["seed"], image.meta["prompt"]) != recorded:
        raise InputError(f"recipe.yaml does not give image {index} its recorded seed and prompt",
                         file=str(out / "recipe.yaml"),
                         fix="use the recipe.yaml the run saved beside this manifest, unchanged")
    return image.image
