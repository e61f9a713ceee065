"""The one atomic-write helper: write to a temporary sibling, then rename it into place.

A killed run never leaves a half-written file under its final name. Temporaries are
named `.<name>.<random>.tmp` and created with O_CREAT | O_EXCL | O_NOFOLLOW (what
`tempfile.mkstemp` does), so a name planted in the output folder (a symlink to a file
elsewhere) is never opened: a different random name is taken. The final rename replaces a
symlink at the final name with the file; it never writes through it.
Everything a killed run can leave behind matches `TEMPORARY_GLOB` (files and folders:
`remove_temporaries` clears both).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

TEMPORARY_SUFFIX = ".tmp"
TEMPORARY_GLOB = f".*{TEMPORARY_SUFFIX}"


def temporary_file(path: Path) -> tuple[int, Path]:
    """A new, exclusively created temporary beside `path`: (open fd, its path)."""
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    return fd, Path(name)


def temporary_dir(path: Path) -> Path:
    """A new, empty temporary folder beside `path` (mode 0700, never an existing name)."""
    folder = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent))
    folder.chmod(0o777 & ~_UMASK)  # mkdtemp makes 0700; outputs are ordinary folders
    return folder


@contextmanager
def atomic_writer(path: str | os.PathLike, mode: str = "wb", *, replace: bool = True) -> Iterator[IO]:
    """A file to write piece by piece (big outputs need not be one string in memory),
    renamed to `path` when the block ends; removed if the block fails. With replace=False
    it is linked into place instead, so a file that appeared at `path` meanwhile is never
    replaced (FileExistsError)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temporary_file(path)
    text = {} if "b" in mode else {"encoding": "utf-8", "newline": ""}
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs are ordinary files
        with open(fd, mode, **text) as fh:
            yield fh
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if replace:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, replace: bool = True) -> None:
    with atomic_writer(path, "wb", replace=replace) as fh:
        fh.write(data)


def atomic_write_text(path: str | os.PathLike, text: str, *, replace: bool = True) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), replace=replace)


def open_resumable(path: Path) -> IO[bytes]:
    """A temporary that must keep a fixed name so that a later process can resume it (an
    interrupted download's `.partial`): created if missing, opened for appending, and, like
    every temporary here, never through a symlink planted at its name (OSError ELOOP)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0),
                 0o666 & ~_UMASK)
    return os.fdopen(fd, "a+b")


def replace_dir(tmp: Path, final: Path) -> None:
    """Move a finished folder into place; a reader never sees a half-written one. The old
    folder (if any) is first renamed to a fresh temporary name, then removed."""
    if final.exists() or final.is_symlink():
        old = temporary_dir(final)  # an empty folder: rename(2) may replace it
        if final.is_symlink() or not final.is_dir():
            old.rmdir()
            final.unlink()
        else:
            os.replace(final, old)
            shutil.rmtree(old, ignore_errors=True)
    os.replace(tmp, final)


def remove_temporaries(root: Path) -> int:
    """Remove what killed runs left under `root`: temporary files and folders (never
    following a symlink out of `root`). Returns how many were removed."""
    removed = 0
    for tmp in sorted(Path(root).rglob(TEMPORARY_GLOB), key=lambda p: len(p.parts), reverse=True):
        if tmp.is_symlink() or not tmp.is_dir():
            tmp.unlink(missing_ok=True)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
        removed += 1
    return removed


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _umask()  # read once: os.umask can only be read by setting it
