"""Installed versions, as a run records them (recipe.yaml) and `imgsynth info` shows them."""

from __future__ import annotations

import platform
from importlib import metadata

# The packages whose versions decide a run's bytes: a --resume with other versions is refused.
RECORDED_PACKAGES = ("numpy", "opencv-python-headless", "pillow", "albumentations", "pydantic",
                     "trdg", "torch", "torchvision", "diffusers")


def package_versions(names: tuple[str, ...] | list[str], missing: str | None = None) -> dict[str, str]:
    """{name: version} of installed distributions; a missing one maps to `missing`, or is
    left out when `missing` is None."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            if missing is not None:
                found[name] = missing
    return found


def run_versions() -> dict[str, str]:
    """imgsynth, Python and RECORDED_PACKAGES: what recipe.yaml records under `imgsynth:`."""
    from imgsynth import __version__

    return {"imgsynth": __version__, "python": platform.python_version(),
            **package_versions(RECORDED_PACKAGES)}
