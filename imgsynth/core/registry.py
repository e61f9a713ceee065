"""Registries of sources, stages and label formats.

Entries are 'module:attribute' strings so that looking a name up (to validate a
recipe or print the reference) imports only light config modules, never torch.
A new stage adds one line here and one config module; a new label format one FormatSpec.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
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

@dataclass(frozen=True)
class FormatSpec:
    """Everything imgsynth knows about one label format, in one place.

    entry: its writer, 'module:function', called as
        writer(out_dir, records, classes, output) -> list[Path] at the end of a run;
    needs: a per-sample field the format cannot do without ("label": a class per image,
        "text": a transcription); a run whose source makes none is refused before any sample;
    per_record: its files are one per record plus files made from the class list alone, so a
        big run writes it in parallel over slices of the manifest (tests check the bytes
        equal one pass);
    reads_sample_files: it reads the images back (copies, hard links, tar shards, LMDB), so a
        run whose output is a URL downloads them for it;
    class_names: which class names it can hold as they are ("xml", "folder": rules in
        imgsynth.io.writers; None: any), checked on the declared classes before any sample;
    requires: modules its writer imports beyond the core dependencies, with the extra that
        installs them: a run without them is refused before any sample, not after all.
    """

    entry: str
    needs: str | None = None
    per_record: bool = False
    reads_sample_files: bool = False
    class_names: str | None = None
    requires: tuple[str, ...] = ()
    extra: str | None = None


_W = "imgsynth.io.writers"
# Label formats written at the end of a run from manifest.jsonl.
FORMATS: dict[str, FormatSpec] = {
    "coco": FormatSpec(f"{_W}.coco:write_coco"),
    "yolo": FormatSpec(f"{_W}.yolo:write_yolo_detect", per_record=True),
    "yolo_seg": FormatSpec(f"{_W}.yolo:write_yolo_segment", per_record=True, reads_sample_files=True),
    "voc": FormatSpec(f"{_W}.voc:write_voc", per_record=True, class_names="xml"),
    "imagefolder": FormatSpec(f"{_W}.classification:write_imagefolder", needs="label",
                              reads_sample_files=True, class_names="folder"),
    "csv": FormatSpec(f"{_W}.classification:write_csv", needs="label"),
    "hf": FormatSpec(f"{_W}.classification:write_hf_metadata"),
    "semantic_masks": FormatSpec(f"{_W}.masks:write_semantic_masks", per_record=True),
    "ocr_labels": FormatSpec(f"{_W}.ocr:write_labels_txt", needs="text"),
    "gt_txt": FormatSpec(f"{_W}.ocr:write_gt_txt", needs="text"),
    "mmocr": FormatSpec(f"{_W}.ocr:write_mmocr"),
    "lmdb": FormatSpec(f"{_W}.ocr:write_lmdb", needs="text", reads_sample_files=True,
                       requires=("lmdb",), extra="ocr"),
    "icdar": FormatSpec(f"{_W}.ocr:write_icdar"),
    "webdataset": FormatSpec(f"{_W}.shards:write_webdataset", reads_sample_files=True),
}


def resolve(entry: str | FormatSpec) -> Any:
    """The object a registry entry names: a 'module:attribute' string, or a spec's `entry`."""
    module, _, attr = getattr(entry, "entry", entry).partition(":")
    return getattr(importlib.import_module(module), attr)


def lookup(registry: dict[str, str], name: str, *, key: str, what: str) -> Any:
    if name not in registry:
        raise RecipeError(
            f"unknown {what} '{name}'.{did_you_mean(name, registry)}",
            key=key, fix=f"use one of: {', '.join(sorted(registry))}")
    return resolve(registry[name])
