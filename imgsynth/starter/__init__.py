"""The starter files `imgsynth init` writes: the recipes and the sample assets they read.

One copy of each: in a source checkout `recipes` and `sample_assets` here are links to the
repository's own folders (which `make demo` and the tests use); a built wheel holds the
files themselves as package data, so a pip-installed imgsynth can make a working folder.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from imgsynth.core.errors import InputError
from imgsynth.io.atomic import atomic_write_bytes

FOLDERS = ("recipes", "sample_assets")
NOT_SHIPPED = ("__pycache__",)


def starter_files() -> dict[str, Traversable]:
    """{relative path: the packaged file}, recipes/ and sample_assets/ in sorted order."""
    found: dict[str, Traversable] = {}

    def walk(node: Traversable, relative: str) -> None:
        for child in sorted(node.iterdir(), key=lambda c: c.name):
            if child.name in NOT_SHIPPED or child.name.endswith(".pyc"):
                continue
            if child.is_dir():
                walk(child, f"{relative}/{child.name}")
            else:
                found[f"{relative}/{child.name}"] = child

    root = resources.files(__name__)
    for folder in FOLDERS:
        walk(root / folder, folder)
    return found


def write_starter(dest: Path, force: bool = False) -> tuple[list[str], list[str]]:
    """Write the starter files under `dest`: (written, already there with the same bytes).

    A file that exists with other bytes is never overwritten without `force`: the whole
    call is refused before anything is written, naming the file."""
    if dest.exists() and not dest.is_dir():
        raise InputError("is not a folder", file=str(dest), fix="name a new or existing folder")
    plan, same = [], []
    for relative, source in starter_files().items():
        target = dest / relative
        data = source.read_bytes()
        if target.is_dir():
            raise InputError(f"is a folder where imgsynth init writes the file {relative}",
                             file=str(target), fix="move it away, or init into another folder")
        if target.exists() or target.is_symlink():
            if not target.is_symlink() and target.read_bytes() == data:
                same.append(relative)
                continue
            if not force:
                raise InputError("already exists with other content; nothing was written",
                                 file=str(target),
                                 fix="pass --force to overwrite the starter files, or init into another folder")
        plan.append((target, relative, data))
    for target, _, data in plan:
        atomic_write_bytes(target, data)  # replaces a symlink, never writes through it
    return [relative for _, relative, _ in plan], same
