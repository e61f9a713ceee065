"""`imgsynth info`: versions, compute devices, and where weights are looked for."""

from __future__ import annotations

import importlib.util
import os
import platform

from imgsynth import __version__
from imgsynth.core.versions import RECORDED_PACKAGES, package_versions
from imgsynth.models import inventory
from imgsynth.ocr.trdg_compat import TRDG_INSTALL

EXTRA_PACKAGES = ("transformers", "torchmetrics", "ray", "scikit-learn", "scipy", "lmdb",
                  "fonttools", "pycocotools", "typer", "rich", "pyyaml")


def model_files() -> list[str]:
    """Each kind of model file: whether it is here, where it is looked for, how to fetch it."""
    lines = []
    for name, state, where in inventory():
        lines += [f"  {name:<20} {state}", f"  {'':<20} {where}"]
    offline = os.environ.get("HF_HUB_OFFLINE")
    lines.append(f"  HF_HUB_OFFLINE       {offline if offline is not None else '(unset: imgsynth still loads local files only unless a recipe sets allow_download: true)'}")
    return lines


def missing_parts() -> list[str]:
    """What to run for a part that cannot work as installed."""
    if importlib.util.find_spec("trdg") is None:
        return [f"  OCR (ocr, scene_text sources): trdg is not installed: {TRDG_INSTALL}"]
    return []


def devices() -> list[str]:
    try:
        import torch
    except ImportError:
        return ["cpu (torch not installed: pip install 'imgsynth[gen]')"]
    found = [f"cpu ({os.cpu_count()} cores, torch {torch.__version__})"]
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(i)
            found.append(f"cuda:{i} {props.name} {props.total_memory / 2**30:.0f} GiB")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        found.append("mps")
    return found


def describe() -> str:
    lines = [f"python {platform.python_version()} on {platform.platform()}", "", "packages:"]
    found = {"imgsynth": __version__,  # not the installed metadata: stale in an editable install
             **package_versions(RECORDED_PACKAGES + EXTRA_PACKAGES, "(not installed)")}
    lines += [f"  {name:<24} {version}" for name, version in found.items()]
    lines += ["", "devices:"] + [f"  {d}" for d in devices()]
    lines += ["", "model weights (imgsynth models fetch NAME gets one, with its checksum):"]
    lines += model_files()
    missing = missing_parts()
    if missing:
        lines += ["", "not ready:"] + missing
    return "\n".join(lines)
