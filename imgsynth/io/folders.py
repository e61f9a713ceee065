"""The one walk over a folder of inputs (images, fonts), and a file's sha256.

Files come back sorted, because samples pick them by position: the same folder gives
the same picks on every machine, whatever order the file system lists them in.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from imgsynth.io.image import IMAGE_SUFFIXES


def files_in(folder: str | os.PathLike, suffixes: tuple[str, ...], *,
             recursive: bool = True) -> list[Path]:
    """The files under `folder` (and its sub-folders unless recursive=False) whose suffix,
    in any case, is one of `suffixes`; sorted by path."""
    root = Path(folder)
    found = root.rglob("*") if recursive else root.iterdir()
    return sorted(p for p in found if p.suffix.lower() in suffixes and p.is_file())


def image_files(folder: str | os.PathLike, *, recursive: bool = True) -> list[Path]:
    """The image files (IMAGE_SUFFIXES) under `folder`, sorted by path."""
    return files_in(folder, IMAGE_SUFFIXES, recursive=recursive)


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes (hex), read 1 MB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
