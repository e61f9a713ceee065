"""The Ray engine: the same chunks as the local engine, run by a Ray Data actor pool.

`ray.data.from_items(chunks)` -> `map_batches(ChunkWorker, compute=ActorPoolStrategy(size=workers))`,
one chunk per batch. Each actor builds the Pipeline once and writes the files itself into the
output store (`imgsynth.io.store`: a folder on local disk or on a shared file system
mounted at the same path on every node, or a URL such as s3://bucket/prefix), under the
same index-based names as the local engine, so the bytes are identical. The driver only
receives per-chunk counts.

Faults: an actor whose process dies is restarted and its chunk re-run (every file is written
whole, so a re-run overwrites with the same bytes). A sample failure is returned as
data and raised in the driver as the same SampleError the local engine raises.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import sys
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from imgsynth.core.errors import ImgsynthError, RunError
from imgsynth.engine.pipeline import ChunkResult, Pipeline

# Test hook, documented in docs/scale-out.md: "<chunk_id>:<marker path>" makes the actor
# that picks up that chunk exit hard once (the marker file records that it did).
KILL_CHUNK_ENV = "IMGSYNTH_TEST_KILL_CHUNK"
# A process that dies again and again (e.g. out of memory on every try) ends the run.
MAX_RESTARTS = 3


class ChunkWorker:
    """A Ray Data actor: one Pipeline per process, one chunk per call."""

    def __init__(self, resolved: dict[str, Any], location: str, classes: list[str] | None,
                 workdir: str, kill_chunk: str | None = None):
        # Recipes name inputs relative to where `imgsynth run` was started; an actor on a
        # cluster node starts elsewhere, so it works from the same (shared) folder. A node
        # without that folder (no shared file system, output to a URL) stays where it is:
        # a relative input missing there is then reported as that file.
        if os.path.isdir(workdir):
            os.chdir(workdir)
        bound_threads()
        self.pipeline = Pipeline.from_resolved(resolved, location, classes)
        bound_threads()  # again: building may have imported torch
        self.kill_chunk = kill_chunk

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: dict[str, list] = {"chunk_id": [], "written": [], "skipped": [], "failed": [],
                                 "error": []}
        for chunk_id, start, stop in zip(batch["chunk_id"], batch["start"], batch["stop"]):
            self._maybe_die(int(chunk_id))
            error = b""
            try:
                result = self.pipeline.run_chunk(int(chunk_id), range(int(start), int(stop)))
            except ImgsynthError as exc:  # on_error: fail; SampleError pickles with its fields
                result = ChunkResult(int(chunk_id), 0, 0, 0)
                error = pickle.dumps(exc)
            for key in ("chunk_id", "written", "skipped", "failed"):
                rows[key].append(getattr(result, key))
            rows["error"].append(error)
        # object dtype: a fixed-width bytes array would drop trailing NUL bytes of a pickle
        return {k: np.array(v, dtype=object if k == "error" else np.int64) for k, v in rows.items()}

    def _maybe_die(self, chunk_id: int) -> None:
        if not self.kill_chunk:
            return
        target, marker = self.kill_chunk.split(":", 1)
        if int(target) == chunk_id and not os.path.exists(marker):
            Path(marker).touch()
            os._exit(1)


def bound_threads() -> None:
    """One actor = one CPU: OpenCV and torch would otherwise start a thread per core.
    (Ray sets OMP_NUM_THREADS to the actor's num_cpus for BLAS/OpenMP.)"""
    import cv2

    cv2.setNumThreads(1)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def gpus_per_worker(resolved: dict[str, Any], cluster_gpus: float) -> int:
    """One GPU per actor when the source or a stage runs on CUDA: `device: cuda`, or
    `device: auto` on a cluster that has GPUs (auto on a CPU cluster must not wait for one)."""
    parts = [resolved.get("source") or {}, *(resolved.get("stages") or [])]
    devices = {p.get("device") for p in parts if isinstance(p, dict)}
    return int("cuda" in devices or ("auto" in devices and cluster_gpus > 0))


def root_cause(exc: BaseException) -> str:
    """The innermost `SomeError: message` of a Ray error's remote traceback (with its fix line)."""
    lines = str(exc).splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"[\w.]*(Error|Exception): ", line)]
    return "\n".join(lines[starts[-1]:]).strip() if starts else (lines[0] if lines else "")


def init_ray(workers: int) -> None:
    """Join the cluster at RAY_ADDRESS, else start a private local Ray of `workers` CPUs."""
    import ray

    quiet = dict(ignore_reinit_error=True, log_to_driver=False, logging_level=logging.ERROR,
                 include_dashboard=False)
    address = os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, **quiet)
    else:
        # Bound to loopback: a local run opens no port to the network.
        ray.init(num_cpus=workers, _node_ip_address="127.0.0.1", **quiet)
    context = ray.data.DataContext.get_current()
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context.enable_progress_bars = False  # imgsynth prints its own progress
    context.print_on_execution_start = False


def run_ray(resolved: dict[str, Any], location: str, classes: list[str] | None,
            chunks: Iterable[tuple[int, int, int]], workers: int,
            on_done: Callable[[ChunkResult], None]) -> None:
    """Run (chunk_id, start, stop) chunks on Ray, writing to the output store at `location`
    (an absolute path or a URL); raise the first sample failure."""
    chunks = list(chunks)
    if not chunks:
        return
    import ray

    init_ray(workers)
    items = [{"chunk_id": c, "start": start, "stop": stop} for c, start, stop in chunks]
    with warnings.catch_warnings():
        # Ray 2.60 flags actor options passed as keywords as deprecated but has no named
        # parameter for them yet; its default (restart forever) could hang a run.
        warnings.simplefilter("ignore", DeprecationWarning)
        results = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
            ChunkWorker,
            fn_constructor_kwargs={"resolved": resolved, "location": location,
                                   "classes": classes, "workdir": os.getcwd(),
                                   "kill_chunk": os.environ.get(KILL_CHUNK_ENV)},
            batch_size=1, compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))),
            num_cpus=1, num_gpus=gpus_per_worker(resolved, ray.cluster_resources().get("GPU", 0)),
            max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)
    try:
        for row in results.iter_rows():
            if row["error"]:
                raise pickle.loads(row["error"])
            on_done(ChunkResult(int(row["chunk_id"]), int(row["written"]), int(row["skipped"]),
                                int(row["failed"])))
    except ray.exceptions.RayError as exc:
        raise RunError(f"the Ray run failed: {type(exc).__name__}: {root_cause(exc)}",
                       fix="check `ray status` and the worker logs (/tmp/ray/session_latest/logs), "
                           "then rerun with --resume") from exc
