"""Where a run's files go: a local folder, or a URL that fsspec understands (s3://, gs://, ...).

Everything a run writes goes through an output store (workers: sample files and chunk
records; the driver: recipe.yaml and what finalize makes), so names and bytes do not
depend on where the output lives:

- `LocalStore` (a path or a `file://` URL): each file is written under a temporary
  sibling name and renamed (`imgsynth.io.atomic`), so a killed run never leaves a
  half-written file under its final name.
- `FsspecStore` (any other URL): each file is one PUT, which an object store applies
  whole or not at all, so no temporary name is needed. Workers on any node write
  straight to the store. fsspec and its backend (s3fs, gcsfs, ...) are imported only
  here, when a URL is given.

Label formats and the preview are made by code that works on local files (hard links,
tar shards, LMDB). `staging()` gives them a local folder: the output folder itself for
a LocalStore; for an FsspecStore a temporary folder, into which `fetch()` downloads the
sample files they read back, and whose other files are uploaded when the block ends.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from imgsynth.core.errors import RecipeError
from imgsynth.io.atomic import atomic_write_bytes, remove_temporaries
from imgsynth.io.lock import LOCK_NAME

URL = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]+)://")


def open_store(location: str | Path) -> Store:
    """The store for `--out`: a folder path, `file:///abs/path`, or a URL for fsspec."""
    text = str(location)
    match = URL.match(text)
    if match is None:
        return LocalStore(Path(location))
    if match.group(1) == "file":
        return LocalStore(Path(text[len("file://"):]))
    return FsspecStore.from_url(text.rstrip("/"), match.group(1))


class LocalStore:
    def __init__(self, path: Path):
        self.local_path = path
        # Absolute, so workers started elsewhere (Ray actors) write to the same folder.
        self.location = str(path.absolute())

    def __str__(self) -> str:
        return str(self.local_path)

    def child(self, name: str) -> LocalStore:
        return LocalStore(self.local_path / name)

    def write_bytes(self, rel: str, data: bytes) -> None:
        atomic_write_bytes(self.local_path / rel, data)

    def read_bytes(self, rel: str) -> bytes:
        return (self.local_path / rel).read_bytes()

    def exists(self, rel: str) -> bool:
        return (self.local_path / rel).exists()

    def list(self, folder: str) -> list[str]:
        """Paths (relative to the store) of the files directly in `folder`."""
        path = self.local_path / folder
        return sorted(f"{folder}/{p.name}" for p in path.iterdir() if p.is_file()) if path.is_dir() else []

    def remove(self, rel: str) -> None:
        (self.local_path / rel).unlink(missing_ok=True)

    def is_empty(self) -> bool:
        """Nothing in the folder but (at most) the run lock (imgsynth.io.lock)."""
        if not self.local_path.exists():
            return True
        if not self.local_path.is_dir():
            raise RecipeError("--out exists and is not a folder", file=str(self.local_path))
        lock = self.local_path / LOCK_NAME
        return all(p == lock.parent and p.is_dir() and set(p.iterdir()) <= {lock}
                   for p in self.local_path.iterdir())

    def discard_partial(self) -> None:
        """Half-written files and folders of a killed run (only ever under a temporary name)."""
        remove_temporaries(self.local_path)

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """The output folder itself."""
        self.local_path.mkdir(parents=True, exist_ok=True)
        yield self.local_path

    def fetch(self, rels: Iterable[str], staging: Path) -> None:
        """Nothing to do: the files are in the output folder."""


class FsspecStore:
    def __init__(self, fs, root: str, location: str):
        self.fs = fs
        self.root = root  # the location without its scheme, as fsspec's methods take it
        self.location = location
        self.local_path = None
        self._fetched: set[str] = set()  # in the current staging folder, not to upload

    @classmethod
    def from_url(cls, url: str, scheme: str) -> FsspecStore:
        try:
            import fsspec
        except ImportError:
            raise RecipeError("--out is a URL and fsspec is not installed", file=url,
                              fix="pip install 'imgsynth[cloud]'") from None
        try:
            fs, root = fsspec.core.url_to_fs(url)
        except ImportError as exc:
            from fsspec.registry import known_implementations

            known = known_implementations.get(scheme, {})
            package = known.get("class", scheme).split(".")[0]
            raise RecipeError(f"writing to {scheme}:// needs the package {package} ({exc})",
                              file=url, fix=f"pip install {package}  (s3fs and gcsfs come with "
                                            "pip install 'imgsynth[cloud]')") from None
        except ValueError as exc:  # fsspec knows no such protocol
            raise RecipeError(f"--out: {exc}", file=url,
                              fix="give a folder path or a URL such as s3://bucket/prefix") from None
        except Exception as exc:  # noqa: BLE001 - e.g. ftp:// connects at once: refused, timed out
            raise _unreachable(url, exc) from None
        return cls(fs, root.rstrip("/"), url)

    def __str__(self) -> str:
        return self.location

    @property
    def process_local(self) -> bool:
        """memory:// lives in this process: other worker processes cannot write there."""
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        return "memory" in protocols

    def _path(self, rel: str) -> str:
        return f"{self.root}/{rel}"

    def child(self, name: str) -> FsspecStore:
        return FsspecStore(self.fs, self._path(name), f"{self.location}/{name}")

    def write_bytes(self, rel: str, data: bytes) -> None:
        self.fs.pipe_file(self._path(rel), data)

    def read_bytes(self, rel: str) -> bytes:
        return self.fs.cat_file(self._path(rel))

    # Listings are cached per process by fsspec; other processes (workers) write here, so
    # every question about what exists is asked afresh.
    def exists(self, rel: str) -> bool:
        self.fs.invalidate_cache()
        return self.fs.exists(self._path(rel))

    def list(self, folder: str) -> list[str]:
        self.fs.invalidate_cache()
        try:
            found = self.fs.ls(self._path(folder), detail=True)
        except FileNotFoundError:
            return []
        return sorted(f"{folder}/{f['name'].rstrip('/').rsplit('/', 1)[-1]}" for f in found
                      if f["type"] == "file")

    def remove(self, rel: str) -> None:
        if self.exists(rel):
            self.fs.rm_file(self._path(rel))

    def is_empty(self) -> bool:
        self.fs.invalidate_cache()
        try:
            return not self.fs.exists(self.root) or not self.fs.ls(self.root, detail=False)
        except Exception as exc:  # noqa: BLE001 - the first request: say the store is unreachable
            raise _unreachable(self.location, exc) from None

    def discard_partial(self) -> None:
        """Nothing to do: a PUT is applied whole or not at all."""

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A temporary folder; the files written there are uploaded when the block ends
        without an error (those downloaded by `fetch` excepted)."""
        with tempfile.TemporaryDirectory(prefix="imgsynth-staging-") as tmp:
            local = Path(tmp)
            self._fetched = set()
            yield local
            made = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
            made = [rel for rel in made if rel not in self._fetched]
            if made:
                self.fs.put([str(local / rel) for rel in made], [self._path(rel) for rel in made])

    def fetch(self, rels: Iterable[str], staging: Path) -> None:
        """Download the files `rels` into the staging folder (batched: s3fs and gcsfs fetch
        them concurrently)."""
        wanted = sorted(set(rels) - self._fetched)
        for rel in wanted:
            (staging / rel).parent.mkdir(parents=True, exist_ok=True)
        if wanted:
            self.fs.get([self._path(rel) for rel in wanted], [str(staging / rel) for rel in wanted])
        self._fetched.update(wanted)


def _unreachable(url: str, exc: BaseException) -> RecipeError:
    return RecipeError(f"cannot reach --out: {type(exc).__name__}: {exc}", file=url,
                       fix="check the address, the credentials and the network, or write to a "
                           "local folder and copy it")


Store = LocalStore | FsspecStore
