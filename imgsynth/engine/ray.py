"""The Ray engine: the same chunks as the local engine, run by Ray Data actor pools.

`ray.data.from_items(chunks)` -> `map_batches(ChunkWorker, compute=ActorPoolStrategy(size=workers))`,
one chunk per batch. A recipe with GPU parts (source or stages on `device: cuda`, or
`auto` on a cluster with GPUs) is split in two: `HeadWorker` actors, one GPU each, run
the chain up to its last GPU part, and the samples go on as data to the CPU
`ChunkWorker`s that run the rest and write; the GPUs never wait on CPU stages or PNG
encoding. Each actor builds its part of the Pipeline once and writes the files itself into the
output store (`imgsynth.io.store`: a folder on local disk or on a shared file system
mounted at the same path on every node, or a URL such as s3://bucket/prefix), under the
same index-based names as the local engine, so the bytes are identical. The driver only
receives per-chunk counts.

Faults: an actor whose process dies is restarted and its chunk re-run (every file is written
whole, so a re-run overwrites with the same bytes). A sample failure is returned as
data and raised in the driver as the same SampleError the local engine raises.

Start: left alone, Ray waits about 13 minutes for a head it cannot reach (20 tries of 40 s
to connect to its GCS, the head's control service), and so does a private local Ray on a
machine whose loopback network does not work (its processes talk over 127.0.0.1). So
`init_ray` first checks with a plain socket that RAY_ADDRESS (or the loopback network)
answers, and gives Ray's own GCS waits a budget of IMGSYNTH_RAY_START_TIMEOUT seconds
(default 30) for what a socket cannot see; either failure is a RunError saying what failed
and the fix.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import socket
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from imgsynth.core.errors import ImgsynthError, RunError, format_warnings_plainly
from imgsynth.engine.pipeline import ChunkResult, Pipeline

# Test hook, documented in docs/scale-out.md: "<chunk_id>:<marker path>" makes the actor
# that picks up that chunk exit hard once (the marker file records that it did).
KILL_CHUNK_ENV = "IMGSYNTH_TEST_KILL_CHUNK"
# A process that dies again and again (e.g. out of memory on every try) ends the run.
MAX_RESTARTS = 3
# Seconds to reach a Ray head (or to find the loopback network for a local Ray) before the
# run stops with a message (docs/scale-out.md).
START_TIMEOUT_ENV = "IMGSYNTH_RAY_START_TIMEOUT"
START_TIMEOUT_S = 30.0


def _enter(workdir: str) -> None:
    # Recipes name inputs relative to where `imgsynth run` was started; an actor on a
    # cluster node starts elsewhere, so it works from the same (shared) folder. A node
    # without that folder (no shared file system, output to a URL) stays where it is:
    # a relative input missing there is then reported as that file.
    if os.path.isdir(workdir):
        os.chdir(workdir)
    format_warnings_plainly()
    bound_threads()


class HeadWorker:
    """A GPU actor of a split run: parts 0..parts-1 of the chain (the source, then stages),
    one chunk per call; the chunk's samples (or why each is missing) go on as data."""

    def __init__(self, resolved: dict[str, Any], location: str, classes: list[str] | None,
                 workdir: str, parts: int):
        _enter(workdir)
        self.pipeline = Pipeline.from_resolved(resolved, location, classes, range(parts))
        bound_threads()  # again: building may have imported torch
        self.stages = range(parts - 1)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outcomes = [pickle.dumps(list(self.pipeline.outcomes(range(int(start), int(stop)), self.stages)))
                    for start, stop in zip(batch["start"], batch["stop"])]
        return {**batch, "outcomes": np.array(outcomes, dtype=object)}


class ChunkWorker:
    """A Ray Data actor: one Pipeline per process, one chunk per call. In a split run it
    builds and runs only the parts from `first_part` on, over the samples a HeadWorker made."""

    def __init__(self, resolved: dict[str, Any], location: str, classes: list[str] | None,
                 workdir: str, kill_chunk: str | None = None, first_part: int = 0):
        _enter(workdir)
        parts = range(first_part, len(resolved.get("stages") or []) + 1)
        self.pipeline = Pipeline.from_resolved(resolved, location, classes, parts)
        bound_threads()  # again: building may have imported torch
        self.stages = range(max(first_part - 1, 0), len(self.pipeline.stages))
        self.kill_chunk = kill_chunk

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows: dict[str, list] = {"chunk_id": [], "written": [], "skipped": [], "failed": [],
                                 "error": []}
        for k, (chunk_id, start, stop) in enumerate(zip(batch["chunk_id"], batch["start"], batch["stop"])):
            self._maybe_die(int(chunk_id))
            error = b""
            try:
                result = self.pipeline.write_chunk(int(chunk_id), self._outcomes(batch, k, start, stop))
            except ImgsynthError as exc:  # on_error: fail; SampleError pickles with its fields
                result = ChunkResult(int(chunk_id), 0, 0, 0)
                error = pickle.dumps(exc)
            for key in ("chunk_id", "written", "skipped", "failed"):
                rows[key].append(getattr(result, key))
            rows["error"].append(error)
        # object dtype: a fixed-width bytes array would drop trailing NUL bytes of a pickle
        return {k: np.array(v, dtype=object if k == "error" else np.int64) for k, v in rows.items()}

    def _outcomes(self, batch: dict[str, np.ndarray], k: int, start: int, stop: int):
        if "outcomes" not in batch:
            return self.pipeline.outcomes(range(int(start), int(stop)))
        return ((index, self.pipeline.apply_stages(index, outcome, self.stages))
                for index, outcome in pickle.loads(batch["outcomes"][k]))

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


def _parts(resolved: dict[str, Any]) -> list[dict[str, Any]]:
    return [p if isinstance(p, dict) else {} for p in [resolved.get("source"), *(resolved.get("stages") or [])]]


def _on_gpu(part: dict[str, Any], cluster_gpus: float) -> bool:
    """`device: cuda`, or `device: auto` on a cluster that has GPUs (auto on a CPU
    cluster must not wait for one)."""
    return part.get("device") == "cuda" or (part.get("device") == "auto" and cluster_gpus > 0)


def gpu_parts(resolved: dict[str, Any], cluster_gpus: float) -> int:
    """How many leading parts of the chain (0 = the source, k = stage k) run on GPU
    actors: through the last part on a GPU; 0 when none is."""
    on_gpu = [k for k, part in enumerate(_parts(resolved)) if _on_gpu(part, cluster_gpus)]
    return on_gpu[-1] + 1 if on_gpu else 0


def chunks_per_call(chunks: list[tuple[int, int, int]], workers: int) -> int:
    """Chunks handed to an actor per call. Ray Data costs ~10 ms per call, as much as a
    whole 8-sample chunk of fast samples (OCR lines), so small chunks go in groups: at most
    1,024 samples per call and at least 32 calls per worker, for balance and cheap retries.
    Files, chunk records and resume stay per chunk. A split run keeps one chunk per call:
    its calls carry the chunk's images through the object store."""
    samples = max(stop - start for _, start, stop in chunks)
    return max(1, min(1024 // samples, len(chunks) // (32 * workers)))


def root_cause(exc: BaseException) -> str:
    """The innermost `SomeError: message` of a Ray error's remote traceback (with its fix line)."""
    lines = str(exc).splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"[\w.]*(Error|Exception): ", line)]
    return "\n".join(lines[starts[-1]:]).strip() if starts else (lines[0] if lines else "")


def start_timeout() -> float:
    value = os.environ.get(START_TIMEOUT_ENV, "")
    try:
        seconds = float(value) if value else START_TIMEOUT_S
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise RunError(f"{START_TIMEOUT_ENV}={value!r} is not a number of seconds",
                       fix=f"set it to e.g. {START_TIMEOUT_S:g}, or unset it")
    return seconds


def init_ray(workers: int) -> None:
    """Join the cluster at RAY_ADDRESS, else start a private local Ray of `workers` CPUs;
    a RunError within about `start_timeout()` seconds when Ray cannot start or connect."""
    import ray

    if ray.is_initialized():  # e.g. a test's or a notebook's Ray: nothing to reach
        return _quiet_ray_data()
    quiet = dict(ignore_reinit_error=True, log_to_driver=False, logging_level=logging.ERROR,
                 include_dashboard=False)
    timeout = start_timeout()
    address = os.environ.get("RAY_ADDRESS")
    if address:
        head = _host_port(address)
        if head:
            _check_connect(head, timeout, f"Ray could not reach its head at {address} (RAY_ADDRESS)",
                           _UNREACHABLE_HEAD_FIX)
        try:
            with _gcs_waits(timeout):
                ray.init(address=address, **quiet)
        except (OSError, RuntimeError, ray.exceptions.RpcError) as exc:
            raise RunError(f"Ray could not connect to its head at {address} (RAY_ADDRESS) within "
                           f"about {timeout:g} s: {_first_line(exc)} (Ray's lines above say why)",
                           fix=f"check that a Ray head runs there (`ray status --address {address}`), "
                               "that RAY_ADDRESS names its GCS port (6379 by default, not the "
                               "dashboard's 8265) and, if the cluster uses tokens, RAY_AUTH_MODE=token "
                               f"with its token; {START_TIMEOUT_ENV} sets the wait") from exc
    else:
        # A local Ray's processes talk over 127.0.0.1; without a working loopback network
        # Ray would wait for them for minutes.
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            _check_connect(listener.getsockname(), timeout,
                           "Ray could not start: its processes talk over 127.0.0.1, and the "
                           "loopback network of this machine does not work",
                           "bring the loopback interface up (`ip link set lo up`; a container "
                           "needs a network), or run with --engine local")
        try:
            # Bound to loopback: a local run opens no port to the network.
            ray.init(num_cpus=workers, _node_ip_address="127.0.0.1", **quiet)
        except (OSError, RuntimeError, ray.exceptions.RpcError) as exc:
            raise RunError(f"Ray could not start: {_first_line(exc)}",
                           fix="see the logs under /tmp/ray/session_latest/logs, or run with "
                               "--engine local") from exc
    _quiet_ray_data()


_UNREACHABLE_HEAD_FIX = ("start the cluster (`ray start --head` on the head node, which prints "
                         "the address), set RAY_ADDRESS to the head's HOST:PORT (6379 by default), "
                         "or unset it to start a local Ray")


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a RAY_ADDRESS such as HOST:6379 or ray://HOST:10001; None for forms
    Ray resolves itself (`auto`)."""
    host, sep, port = address.split("://", 1)[-1].rstrip("/").rpartition(":")
    return (host.strip("[]"), int(port)) if sep and host and port.isdigit() else None


def _check_connect(address: tuple[str, int], timeout: float, what: str, fix: str) -> None:
    try:
        socket.create_connection(address, timeout=timeout).close()
    except OSError as exc:
        reason = f"no answer in {timeout:g} s" if isinstance(exc, TimeoutError) else \
            exc.strerror or str(exc) or type(exc).__name__
        raise RunError(f"{what} ({reason})", fix=fix) from exc


@contextmanager
def _gcs_waits(timeout: float) -> Iterator[None]:
    """Ray's own waits for a head's GCS, sized to `timeout`, for a port that takes a socket
    but where no GCS answers (by default one try waits 5 + 5 + 30 s, and Ray tries 20 times).
    Only for joining a cluster: the driver starts no Ray process then, so none inherits them
    (the driver keeps them; they only bound a first connection, which a live GCS answers at
    once). A value the user set is kept."""
    from ray._raylet import Config

    connect = max(1, int(timeout // 10))  # each of two gRPC channels
    answer = max(1, int(timeout // 5))
    waits = {"RAY_gcs_rpc_server_connect_timeout_s": connect, "RAY_py_gcs_connect_timeout_s": answer,
             "RAY_gcs_server_port_wait_time_s": max(1, int(timeout // (2 * connect + answer + 1)))}
    added = [name for name in waits if name not in os.environ]
    os.environ.update({name: str(waits[name]) for name in added})
    Config.initialize("")  # Ray read its settings from the environment when it was imported
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _quiet_ray_data() -> None:
    import ray

    context = ray.data.DataContext.get_current()
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    context.enable_progress_bars = False  # imgsynth prints its own progress
    context.print_on_execution_start = False


def run_ray(resolved: dict[str, Any], location: str, classes: list[str] | None,
            chunks: Iterable[tuple[int, int, int]], workers: int,
            on_done: Callable[[ChunkResult], None], split: int | None = None) -> None:
    """Run (chunk_id, start, stop) chunks on Ray, writing to the output store at `location`
    (an absolute path or a URL); raise the first sample failure. `split` overrides how
    many leading parts run on HeadWorkers (default: `gpu_parts`)."""
    chunks = list(chunks)
    if not chunks:
        return
    import ray

    init_ray(workers)
    cluster_gpus = ray.cluster_resources().get("GPU", 0)
    split = gpu_parts(resolved, cluster_gpus) if split is None else split
    items = [{"chunk_id": c, "start": start, "stop": stop} for c, start, stop in chunks]
    common = {"resolved": resolved, "location": location, "classes": classes, "workdir": os.getcwd()}
    with warnings.catch_warnings():
        # Ray 2.60 flags actor options passed as keywords as deprecated but has no named
        # parameter for them yet; its default (restart forever) could hang a run.
        warnings.simplefilter("ignore", DeprecationWarning)
        data = ray.data.from_items(items, override_num_blocks=len(items))
        if split:
            # One actor per GPU (model loaded once per actor); on a cluster without GPUs
            # (only when `split` is forced) as many as CPU workers. A head holds a GPU,
            # not a CPU slot: the --workers CPU workers all run beside it.
            needs_gpu = any(_on_gpu(part, cluster_gpus) for part in _parts(resolved)[:split])
            heads = int(cluster_gpus) if needs_gpu and cluster_gpus >= 1 else workers
            data = data.map_batches(
                HeadWorker, fn_constructor_kwargs={**common, "parts": split}, batch_size=1,
                compute=ray.data.ActorPoolStrategy(size=max(1, min(heads, len(items)))),
                num_cpus=0, num_gpus=int(needs_gpu),
                max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)
        results = data.map_batches(
            ChunkWorker,
            fn_constructor_kwargs={**common, "kill_chunk": os.environ.get(KILL_CHUNK_ENV),
                                   "first_part": split},
            batch_size=1 if split else chunks_per_call(chunks, workers),
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(items))),
            num_cpus=1, max_restarts=MAX_RESTARTS, max_task_retries=MAX_RESTARTS)
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
