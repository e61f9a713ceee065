"""Registries of sources, stages and label formats.

Entries are 'module:attribute' strings so that looking a name up (to validate a
recipe or print the reference) imports only light config modules, never torch.
A new stage adds one line here and one config module.
"""

from __future__ import annotations

import importlib
from typing import Any

from imgsynth.core.errors import RecipeError, did_you_mean

SOURCES: dict[str, str] = {
    "dataset": "imgsynth.io.source:DatasetSourceConfig",
    "compose": "imgsynth.compose.config:ComposeConfig",
    "copy_paste": "imgsynth.compose.config:CopyPasteConfig",
    "ocr": "imgsynth.ocr.config:OcrConfig",
    "scene_text": "imgsynth.ocr.config:SceneTextConfig",
    "gan_sample": "imgsynth.generate.config:GanSampleConfig",
    "diffuse": "imgsynth.generate.diffusion_config:DiffuseConfig",
}

STAGES: dict[str, str] = {
    "augment": "imgsynth.augment.config:AugmentConfig",
    "diffuse_img2img": "imgsynth.generate.diffusion_config:Img2ImgConfig",
}

# Label formats written at the end of a run from manifest.jsonl.
FORMATS: dict[str, str] = {
    "coco": "imgsynth.io.writers.coco:write_coco",
    "yolo": "imgsynth.io.writers.yolo:write_yolo_detect",
    "yolo_seg": "imgsynth.io.writers.yolo:write_yolo_segment",
    "voc": "imgsynth.io.writers.voc:write_voc",
    "imagefolder": "imgsynth.io.writers.classification:write_imagefolder",
    "csv": "imgsynth.io.writers.classification:write_csv",
    "hf": "imgsynth.io.writers.classification:write_hf_metadata",
    "semantic_masks": "imgsynth.io.writers.masks:write_semantic_masks",
    "ocr_labels": "imgsynth.io.writers.ocr:write_labels_txt",
    "gt_txt": "imgsynth.io.writers.ocr:write_gt_txt",
    "mmocr": "imgsynth.io.writers.ocr:write_mmocr",
    "lmdb": "imgsynth.io.writers.ocr:write_lmdb",
    "icdar": "imgsynth.io.writers.ocr:write_icdar",
    "webdataset": "imgsynth.io.writers.shards:write_webdataset",
}


def resolve(entry: str) -> Any:
    module, _, attr = entry.partition(":")
    return getattr(importlib.import_module(module), attr)


def lookup(registry: dict[str, str], name: str, *, key: str, what: str) -> Any:
    if name not in registry:
        raise RecipeError(
            f"unknown {what} '{name}'.{did_you_mean(name, registry)}",
            key=key, fix=f"use one of: {', '.join(sorted(registry))}")
    return resolve(registry[name])
