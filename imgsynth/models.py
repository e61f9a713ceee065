"""`imgsynth models`: the model files imgsynth uses, where each is looked for, and fetching
them in one command with their checksums.

- `inception`: the FID Inception weights, into $TORCH_HOME/hub/checkpoints, the folder
  imgsynth eval, torchmetrics and torch-fidelity all look in.
- `torchvision:<arch>`: an ImageNet classifier's default weights for
  `imgsynth eval --extractor torchvision:<arch>`, into the same folder, checked against the
  sha256 prefix torchvision writes into the file name (torch hub's convention).
- `<owner>/<name>`: a Stable Diffusion checkpoint from the Hugging Face hub, into its cache
  (the files diffusers loads) or, with a folder, as a plain diffusers folder; a recipe
  file names the hub models it uses, each at its pinned `revision`.

A file is downloaded to `<name>.partial` beside its final name and renamed only once every
byte is there and its sha256 matches: a broken or interrupted download never lands under
the final name, and the next fetch asks for the missing bytes only (an HTTP Range request).
"""

from __future__ import annotations

import http.client
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from imgsynth import __version__
from imgsynth.core.errors import InputError, RecipeError, RunError, did_you_mean
from imgsynth.evaluate.features import (
    INCEPTION_FILE,
    INCEPTION_SHA256,
    INCEPTION_URL,
    hub_checkpoints_dir,
)
from imgsynth.io.folders import file_sha256
from imgsynth.io.atomic import open_resumable

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: fetches of one file are not kept apart
    fcntl = None

# Measured size of the release asset (the same 95,628,359 bytes wherever it is mirrored):
# a server that sends more is cut off, so a download is never unbounded.
INCEPTION_BYTES = 95_628_359
CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60  # per connect and per read: a stalled server is an error, never a hang
PARTIAL_SUFFIX = ".partial"
# torch hub names a checkpoint `<name>-<first hex digits of its sha256>.<ext>`.
HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,})\.")
NAMES = ("inception", "torchvision:<arch>", "<owner>/<name>", "RECIPE.yaml")
# A diffusers folder: model_index.json and the component folders. Single-file checkpoints
# and other frameworks' copies are left out (imgsynth loads neither).
HUB_FOLDER_FILES = ["model_index.json", "*/*"]
HUB_NOT_LOADED = ["*.ckpt", "*.msgpack", "*.h5", "*.onnx", "*.onnx_data", "*.pb", "*.tflite"]

Progress = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class WeightsFile:
    """One file to fetch: where from, where to, and what it must hash to."""

    name: str  # what `imgsynth models fetch` takes
    url: str
    path: Path  # where the code that loads it looks
    sha256: str | None  # the full hex digest, or a prefix of it; None: nothing to check against
    size: int | None = None  # exact byte count when known
    used_by: str = ""

    @property
    def partial(self) -> Path:
        return self.path.with_name(self.path.name + PARTIAL_SUFFIX)

    def in_folder(self, folder: Path) -> WeightsFile:
        return WeightsFile(self.name, self.url, Path(folder) / self.path.name, self.sha256,
                           self.size, self.used_by)


def inception() -> WeightsFile:
    return WeightsFile("inception", INCEPTION_URL, hub_checkpoints_dir() / INCEPTION_FILE,
                       INCEPTION_SHA256, INCEPTION_BYTES,
                       "FID/IS/KID: imgsynth eval, torchmetrics, torch-fidelity")


def torchvision_weights(arch: str) -> WeightsFile:
    """The default ImageNet weights of a torchvision classifier, named as torch hub names them."""
    try:
        import torchvision
    except ModuleNotFoundError:
        raise InputError("torchvision is not installed", fix="pip install 'imgsynth[eval]'") from None
    known = torchvision.models.list_models()
    if arch not in known:
        raise RecipeError(f"unknown torchvision model '{arch}'.{did_you_mean(arch, known)}",
                          fix="see torchvision.models.list_models()")
    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    filename = url.rsplit("/", 1)[-1]
    recorded = HASH_IN_NAME.search(filename)
    return WeightsFile(f"torchvision:{arch}", url, hub_checkpoints_dir() / filename,
                       recorded.group(1) if recorded else None, None,
                       f"imgsynth eval --extractor torchvision:{arch}")


# ---------------------------------------------------------------- one file over HTTP(S)

def copy_instructions(spec: WeightsFile) -> str:
    """What to do without internet on this machine: the file, its checksum, where it goes."""
    check = f" (sha256 {spec.sha256})" if spec.sha256 and len(spec.sha256) == 64 else (
        f" (sha256 starting {spec.sha256})" if spec.sha256 else "")
    return (f"on a machine with internet run `imgsynth models fetch {spec.name} --dir DIR` (or "
            f"download {spec.url}), then copy {spec.path.name}{check} to {spec.path} here")


def fetch_file(spec: WeightsFile, *, force: bool = False, progress: Progress | None = None) -> tuple[Path, str]:
    """Download `spec` to its path and check it: (path, what happened)."""
    if spec.path.is_file() and not force:
        digest = file_sha256(spec.path)
        if spec.sha256 and not digest.startswith(spec.sha256):
            raise InputError(f"is already there but its sha256 is {digest}, not {spec.sha256}",
                             file=str(spec.path), fix=f"imgsynth models fetch {spec.name} --force replaces it")
        return spec.path, "already present" + (", sha256 matches" if spec.sha256 else "")
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    try:
        partial = open_resumable(spec.partial)
    except OSError as exc:  # e.g. a symlink planted at the partial name: never written through
        raise InputError(f"cannot write the download: {exc.strerror}", file=str(spec.partial),
                         fix="remove this file (or link) and fetch again") from None
    with partial as fh:
        try:  # two fetches of one file would interleave their bytes
            if fcntl is not None:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunError("another imgsynth models fetch is writing this file", file=str(spec.partial),
                           fix="wait for it to finish") from None
        try:
            resumed = _download(spec, fh, progress)
        except RunError:
            if fh.seek(0, os.SEEK_END) == 0:  # nothing to resume from: leave no trace
                spec.partial.unlink(missing_ok=True)
            raise
        fh.flush()
        os.fsync(fh.fileno())
    digest = file_sha256(spec.partial)
    if spec.sha256 and not digest.startswith(spec.sha256):
        spec.partial.unlink()
        raise RunError(f"the file downloaded from {spec.url} has sha256 {digest}, not {spec.sha256}: "
                       f"it was deleted and nothing was placed at {spec.path}",
                       fix=f"run the same command again later, or {copy_instructions(spec)}")
    os.replace(spec.partial, spec.path)
    what = f"fetched {spec.path.stat().st_size:,} bytes" + (f" (resumed at {resumed:,})" if resumed else "")
    return spec.path, what + (", sha256 matches" if spec.sha256 else ", no checksum known to check")


def _download(spec: WeightsFile, fh, progress: Progress | None) -> int:
    """Append the file's missing bytes to the open partial file; returns where it resumed."""
    have = fh.seek(0, os.SEEK_END)
    if spec.size is not None and have > spec.size:  # not the start of this file
        fh.truncate(0)
        have = 0
    if spec.size is not None and have == spec.size:  # all there: the checksum decides
        return have
    headers = {"User-Agent": f"imgsynth/{__version__}"}
    if have:
        headers["Range"] = f"bytes={have}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(spec.url, headers=headers),
                                          timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # nothing past what we hold: the checksum decides
            return have
        raise _not_fetched(spec, f"the server answered HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise _not_fetched(spec, f"cannot reach it ({_reason(exc)})") from None
    resumed = have
    with response:
        if have and response.status != 206:  # the server ignored the Range: start over
            fh.truncate(0)
            have = resumed = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else spec.size
        limit = spec.size or total
        try:
            for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                fh.write(block)
                have += len(block)
                if limit is not None and have > limit:
                    fh.truncate(0)
                    raise _not_fetched(spec, f"the server sent more than the {limit:,} bytes expected")
                if progress:
                    progress(have, total)
        except (OSError, http.client.HTTPException) as exc:
            raise _interrupted(spec, have, total, _reason(exc)) from None
    if total is not None and have < total:
        raise _interrupted(spec, have, total, "the connection closed early")
    return resumed


def _reason(exc: BaseException) -> str:
    reason = getattr(exc, "reason", None) or exc
    return f"{type(reason).__name__}: {reason}" if str(reason) else type(reason).__name__


def _not_fetched(spec: WeightsFile, why: str) -> RunError:
    return RunError(f"could not download {spec.name} from {spec.url}: {why}; nothing was placed "
                    f"at {spec.path}", fix=copy_instructions(spec))


def _interrupted(spec: WeightsFile, have: int, total: int | None, why: str) -> RunError:
    of = f" of {total:,}" if total else ""
    return RunError(f"the download of {spec.name} from {spec.url} stopped after {have:,}{of} bytes "
                    f"({why}); they are kept in {spec.partial}, nothing was placed at {spec.path}",
                    fix=f"run the same command again: it asks for the remaining bytes "
                    f"only. Without internet here: {copy_instructions(spec)}")


# ---------------------------------------------------------------- Hugging Face hub

@dataclass(frozen=True)
class HubModel:
    repo_id: str
    revision: str | None = None


def hub_copy_instructions(model: HubModel) -> str:
    local = f"models/{model.repo_id.split('/')[-1]}"
    pin = f" --revision {model.revision}" if model.revision else ""
    return (f"on a machine with internet run `imgsynth models fetch {model.repo_id}{pin} --dir {local}` "
            f"(or `hf download {model.repo_id}{pin} --local-dir {local}`), copy {local} here and set "
            f"model: {local} in the recipe")


def fetch_hub_model(model: HubModel, folder: Path | None = None) -> tuple[Path, str]:
    """A diffusers checkpoint into the hub cache (what diffusers loads) or `folder`, then
    every file that has a hub checksum is checked against it."""
    from imgsynth.generate.diffusion import hub_offline

    if hub_offline():
        raise RunError(f"HF_HUB_OFFLINE={os.environ['HF_HUB_OFFLINE']} is set, so nothing can be "
                       f"fetched from the hub", fix=f"unset HF_HUB_OFFLINE, or {hub_copy_instructions(model)}")
    try:  # the hub client's own progress bars show: these are gigabytes
        if folder is None:
            try:
                from diffusers import DiffusionPipeline
            except ModuleNotFoundError:
                raise InputError("fetching a Stable Diffusion checkpoint needs diffusers",
                                 fix="pip install 'imgsynth[diffusion]'") from None
            path = Path(DiffusionPipeline.download(model.repo_id, revision=model.revision))
        else:
            from huggingface_hub import snapshot_download

            path = Path(snapshot_download(model.repo_id, revision=model.revision, local_dir=folder,
                                          allow_patterns=HUB_FOLDER_FILES, ignore_patterns=HUB_NOT_LOADED))
    except (OSError, ValueError) as exc:  # not found, no network, offline: OSErrors in the hub client
        said = " ".join(str(exc).split())
        raise RunError(f"could not fetch hub model '{model.repo_id}'"
                       + (f" at revision {model.revision}" if model.revision else "")
                       + f" ({type(exc).__name__}: {said[:300]})",
                       fix=f"check the name and revision; without internet here: {hub_copy_instructions(model)}"
                       ) from None
    if not (path / "model_index.json").is_file():
        raise InputError(f"hub model '{model.repo_id}' has no model_index.json: not a diffusers pipeline",
                         file=str(path), fix="use a diffusers-format repository")
    return path, _verify_hub_files(model, path, folder)


def _verify_hub_files(model: HubModel, path: Path, folder: Path | None) -> str:
    """Check the fetched files against the hub's sha256 (LFS) and git hashes; a file that
    does not match is deleted, so a later fetch gets it again."""
    from huggingface_hub import HfApi

    api = HfApi()
    if not hasattr(api, "verify_repo_checksums"):
        import huggingface_hub

        return f"files not checked (huggingface_hub {huggingface_hub.__version__} cannot list checksums)"
    try:
        where = {"local_dir": folder} if folder is not None else {}
        revision = model.revision if folder is not None else path.name  # the cache's commit folder
        result = api.verify_repo_checksums(model.repo_id, revision=revision, **where)
    except Exception as exc:  # noqa: BLE001 - the hub client raises its HTTP library's own types
        return f"files not checked ({type(exc).__name__}: {' '.join(str(exc).split())[:200]})"
    if result.mismatches:
        for mismatch in result.mismatches:
            bad = path / mismatch.path
            blob = bad.resolve()
            bad.unlink(missing_ok=True)
            if blob != bad:  # the cache's snapshot entry links to a blob
                blob.unlink(missing_ok=True)
        names = ", ".join(m.path for m in result.mismatches[:5])
        raise RunError(f"{len(result.mismatches)} fetched file(s) of '{model.repo_id}' do not match "
                       f"the hub's checksums ({names}); they were deleted", file=str(path),
                       fix="run the same command again to fetch them anew")
    return f"{result.checked_count} files match the hub's checksums"


# ---------------------------------------------------------------- names and what is here

def resolve(name: str) -> WeightsFile | HubModel | list[HubModel]:
    """What `imgsynth models fetch NAME` means."""
    from imgsynth.generate.diffusion import reads_as_hub_id

    kind, _, arg = name.partition(":")
    if name == "inception":
        return inception()
    if kind == "torchvision" and arg:
        return torchvision_weights(arg)
    if name.endswith((".yaml", ".yml")) and Path(name).is_file():
        return recipe_hub_models(Path(name))
    if reads_as_hub_id(name):
        return HubModel(name)
    raise RecipeError(f"unknown model '{name}'.{did_you_mean(name, ('inception',))}",
                      fix=f"name one of: {', '.join(NAMES)} (imgsynth models list)")


def recipe_hub_models(recipe: Path) -> list[HubModel]:
    """The hub models a recipe's diffusion sources and stages name, at their pinned revisions."""
    from imgsynth.generate.diffusion import reads_as_hub_id
    from imgsynth.recipes.load import load_yaml

    found: dict[tuple, HubModel] = {}
    for entry in _mappings(load_yaml(recipe)):
        model = entry.get("model")
        if isinstance(model, str) and str(entry.get("type", "")).startswith("diffuse") and reads_as_hub_id(model):
            revision = entry.get("revision")
            found.setdefault((model, revision), HubModel(model, None if revision is None else str(revision)))
    if not found:
        raise InputError("names no Stable Diffusion hub model (a diffuse source or stage whose "
                         "model is <owner>/<name>)", file=str(recipe),
                         fix="fetch a folder model with `imgsynth models fetch <owner>/<name> --dir FOLDER`")
    return list(found.values())


def _mappings(node) -> Iterator[dict]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _mappings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _mappings(value)


def hf_hub_cache() -> Path:
    """The hub cache huggingface_hub uses, without importing it."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "huggingface")
    return Path(hf_home) / "hub"


def cached_pipelines() -> list[str]:
    """Hub ids of the diffusers pipelines in the hub cache."""
    found = []
    cache = hf_hub_cache()
    for repo in sorted(cache.glob("models--*")) if cache.is_dir() else ():
        if any((repo / "snapshots").glob("*/model_index.json")):
            found.append(repo.name.removeprefix("models--").replace("--", "/"))
    return found


def inventory() -> list[tuple[str, str, str]]:
    """(name, state, where) for each kind of model file imgsynth uses; cheap (no hashing, no torch)."""
    spec = inception()
    if spec.path.is_file():
        size = spec.path.stat().st_size
        state = "present" if size == spec.size else (
            f"present but {size:,} bytes, not {spec.size:,}: imgsynth models fetch inception --force")
    elif spec.partial.is_file():
        state = (f"partial download ({spec.partial.stat().st_size:,} of {spec.size:,} bytes): "
                 "imgsynth models fetch inception resumes it")
    else:
        state = "missing: imgsynth models fetch inception"
    checkpoints = spec.path.parent
    others = sorted(p.name for p in checkpoints.glob("*.pth") if p.name != INCEPTION_FILE) if (
        checkpoints.is_dir()) else []
    pipelines = cached_pipelines()
    return [
        ("inception", state, str(spec.path)),
        ("torchvision:<arch>", (f"{len(others)} present: {', '.join(others)}" if others else
                                "none present: imgsynth models fetch torchvision:<arch>"), str(checkpoints)),
        ("<owner>/<name>", (f"{len(pipelines)} cached: {', '.join(pipelines)}" if pipelines else
                            "none cached: imgsynth models fetch <owner>/<name>"), str(hf_hub_cache())),
    ]
