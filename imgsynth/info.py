"""`imgsynth info`: versions, compute devices, and where weights are looked for."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from imgsynth import __version__
from imgsynth.core.versions import RECORDED_PACKAGES, package_versions

EXTRA_PACKAGES = ("transformers", "torchmetrics", "ray", "scikit-learn", "scipy", "lmdb",
                  "fonttools", "pycocotools", "typer", "rich", "pyyaml")


def weight_locations() -> dict[str, str]:
    torch_home = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch"))
    hf_home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return {
        "Inception for FID/IS/KID": str(torch_home / "hub" / "checkpoints" /
                                        "weights-inception-2015-12-05-6726825d.pth"),
        "Hugging Face hub cache (diffusers models)": str(Path(os.environ.get("HF_HUB_CACHE", hf_home / "hub"))),
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "(unset: imgsynth still loads local files only "
                                         "unless a recipe sets allow_download: true)"),
    }


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
    lines += ["", "model weights are looked for in:"]
    lines += [f"  {k}: {v}" for k, v in weight_locations().items()]
    return "\n".join(lines)
