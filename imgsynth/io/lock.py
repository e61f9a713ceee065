"""One run owns its output folder: an exclusive lock on OUT/.imgsynth/lock.

The lock is an `flock` on that file, held for the whole run (resume included). The kernel
drops it when the holder's process ends, however it ends (SIGKILL, out of memory), so a
lock left by a dead run is free by construction and the next run takes it over; the file
still names the dead holder, which is how a take-over is noticed. The file holds the
holder's pid, host, start time and command, shown to a second run that is refused.

Where flock is not supported (some network file systems answer ENOLCK), the lock falls back
to the holder's record alone: a holder on this host whose pid is alive keeps it; any other
record is taken over. Object-store outputs (s3://, gs://) have no lock at all: see
docs/reliability.md.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from imgsynth.core.errors import RecipeError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

LOCK_NAME = ".imgsynth/lock"


def describe_holder(holder: dict[str, Any]) -> str:
    if not holder:
        return "another imgsynth run (it has not written its pid yet)"
    return (f"pid {holder.get('pid')} on host {holder.get('host')}, started "
            f"{holder.get('started')}: {holder.get('command')}")


class OutputLock:
    """`with OutputLock(folder):` holds the folder for this process, or raises RecipeError
    naming the holder. `created` lists the folders the lock had to make (so that a run
    refused before writing anything can leave no trace: `release(clean=True)`)."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None
        self.created: list[Path] = []
        self.taken_over: dict[str, Any] | None = None  # the record of a dead holder

    def __enter__(self) -> OutputLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        missing = [p for p in (self.path.parent, *self.path.parent.parents) if not p.exists()]
        for folder in reversed(missing):  # outermost first, each recorded once made
            try:
                folder.mkdir()
            except FileExistsError:
                continue
            except OSError as exc:
                self._undo_created()
                raise RecipeError(f"cannot create the output folder: {exc.strerror}",
                                  file=str(folder),
                                  fix="check the path and that you may write there") from None
            self.created.append(folder)
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
            except OSError as exc:
                self._undo_created()
                raise RecipeError(f"cannot lock the output folder: {exc.strerror}", file=str(self.path),
                                  fix="check that you may write there (a symlink at this name is "
                                      "refused)") from None
            holder = _read(fd)
            if not self._lock(fd, holder):
                for _ in range(20):  # the holder writes its record just after locking
                    holder = holder or _read(fd)
                    if holder:
                        break
                    time.sleep(0.05)
                os.close(fd)
                self._undo_created()
                raise RecipeError(f"another run is writing to this folder ({describe_holder(holder)})",
                                  file=str(self.folder),
                                  fix="wait for it to finish (or stop it), or choose another --out")
            # The holder before us may have removed the file between our open and our lock:
            # then we locked a file nobody else will see; start again on the current one.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        self.fd = fd
        if holder and holder.get("pid") != os.getpid():
            self.taken_over = holder  # its process ended without releasing: a killed run
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                  "command": " ".join(sys.argv)[:500]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)

    def _lock(self, fd: int, holder: dict[str, Any]) -> bool:
        """True when this process now holds the lock."""
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                return False
            except OSError as exc:
                if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                    raise
        return not _alive_here(holder)

    def release(self, clean: bool = False) -> None:
        """Give the folder up. `clean`: nothing was written, remove the lock and the folders
        made for it, so that a refused run leaves the file system as it found it."""
        if self.fd is None:
            return
        try:
            if os.path.samestat(os.fstat(self.fd), os.stat(self.path, follow_symlinks=False)):
                self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None
        if clean:
            self._undo_created()

    def _undo_created(self) -> None:
        for folder in reversed(self.created):
            try:
                folder.rmdir()  # only if empty
            except OSError:
                pass
        self.created = []


def _read(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 4096, 0)
        holder = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


def _alive_here(holder: dict[str, Any]) -> bool:
    """The record's process runs on this host (for file systems without flock)."""
    pid = holder.get("pid")
    if not isinstance(pid, int) or holder.get("host") != socket.gethostname() or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
