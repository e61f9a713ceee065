"""Background photos of the OCR sources: found once per worker, decoded once per file."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from imgsynth.core.errors import InputError
from imgsynth.io.folders import image_files
from imgsynth.io.image import decode_image


def collect_image_files(paths: list[str], *, key: str) -> list[str]:
    """Image files named by `paths` (files, or folders searched recursively), in order."""
    found: list[str] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            # Sorted as strings (not as Paths, which order sub-folders differently): a
            # sample picks its background by position in this list.
            files = sorted(str(p) for p in image_files(path))
            if not files:
                raise InputError("no images in this folder", file=str(path), fix=f"add images or change '{key}'")
            found.extend(files)
        elif path.is_file():
            found.append(str(path))
        else:
            raise InputError("image file or folder not found", file=str(path), fix=f"correct '{key}'")
    return list(dict.fromkeys(found))


@lru_cache(maxsize=16)
def load_background(path: str) -> np.ndarray:
    """Decoded background image, kept for the next samples of this worker."""
    return decode_image(path)
