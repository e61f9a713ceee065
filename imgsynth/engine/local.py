"""The local engine: a spawn-safe process pool over fixed chunks of indices.

Memory stays flat: at most 2 chunks per worker are in flight and records go to
chunk files, not to the parent. Worker threads are bounded (OpenCV, BLAS, OpenMP)
so K workers use K cores, not K x cores.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imgsynth.core.errors import RunError, format_warnings_plainly
from imgsynth.engine.pipeline import ChunkResult, Pipeline

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")

_PIPELINE: Pipeline | None = None


def _init_worker(resolved: dict[str, Any], location: str, classes: list[str] | None) -> None:
    global _PIPELINE
    import cv2

    _exit_with_driver()
    format_warnings_plainly()
    cv2.setNumThreads(1)
    _PIPELINE = Pipeline.from_resolved(resolved, location, classes)


def _exit_with_driver() -> None:
    """A worker whose driver is gone (killed with SIGKILL, so it could not stop its workers)
    exits too, within a second, instead of running on unseen. What it was writing is under
    a temporary name, which the next --resume removes."""
    driver = os.getppid()

    def watch() -> None:
        while os.getppid() == driver:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="imgsynth-exit-with-driver", daemon=True).start()


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop a pool now (the run was interrupted or failed): terminate its processes rather
    than wait for their chunks, which a --resume makes again."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):  # no public API before 3.14
        if process.is_alive():
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def _run_chunk(chunk_id: int, start: int, stop: int) -> ChunkResult:
    assert _PIPELINE is not None
    return _PIPELINE.run_chunk(chunk_id, range(start, stop))


def _one_cv2_thread() -> None:
    import cv2

    _exit_with_driver()
    format_warnings_plainly()
    cv2.setNumThreads(1)


def _write_slice(fmt: str, out_dir: Path, manifest: Path, start: int, stop: int,
                 classes: list[str], output: Any) -> None:
    from imgsynth.core.registry import FORMATS, resolve
    from imgsynth.io.writers.manifest import ManifestRecords

    resolve(FORMATS[fmt])(out_dir, ManifestRecords(manifest, start, stop), classes, output)


def write_formats_in_slices(formats: list[str], out_dir: Path, manifest: Path, count: int,
                            classes: list[str], output: Any, workers: int) -> None:
    """Per-record label formats (FormatSpec.per_record) written by
    `workers` processes, each over a contiguous slice of the manifest's records."""
    step = max(1, -(-count // (4 * workers)))  # 4 slices per worker keep them all busy
    try:
        with _single_threaded_children(), ProcessPoolExecutor(
                max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_one_cv2_thread) as pool:
            try:
                futures = [pool.submit(_write_slice, fmt, out_dir, manifest, start,
                                       min(count, start + step), classes, output)
                           for fmt in formats for start in range(0, count, step)]
                for future in futures:
                    future.result()  # the first writer error (e.g. an undeclared class) is raised here
            except BaseException as exc:
                if not isinstance(exc, BrokenProcessPool):
                    stop_workers(pool)
                raise
    except BrokenProcessPool:
        # No worker process could run (e.g. a script calling run_recipe without an
        # `if __name__ == "__main__":` guard, which spawned processes re-run): write here.
        # Writes are atomic and whole files, so what the pool wrote is simply written again.
        for fmt in formats:
            _write_slice(fmt, out_dir, manifest, 0, count, classes, output)


@contextmanager
def _single_threaded_children():
    """Spawned children read these at import time; the parent is already set up."""
    saved = {k: os.environ.get(k) for k in THREAD_ENV}
    for k in THREAD_ENV:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run_local(resolved: dict[str, Any], location: str, classes: list[str] | None,
              chunks: Iterable[tuple[int, int, int]], workers: int,
              on_done: Callable[[ChunkResult], None]) -> None:
    """Run (chunk_id, start, stop) chunks in `workers` processes writing to the output store
    at `location` (a path or URL); raise the first sample failure after in-flight work ends.
    (One worker runs in-process: see imgsynth.run.)"""
    pending = iter(chunks)  # consumed as workers free up: never a list of every chunk
    first = next(pending, None)
    if first is None:
        return
    pending = itertools.chain([first], pending)
    context = multiprocessing.get_context("spawn")
    with _single_threaded_children(), ProcessPoolExecutor(
            max_workers=workers, mp_context=context, initializer=_init_worker,
            initargs=(resolved, location, classes)) as pool:
        in_flight: set[Future] = set()
        failure: BaseException | None = None

        def submit_next() -> bool:
            item = next(pending, None)
            if item is None:
                return False
            in_flight.add(pool.submit(_run_chunk, *item))
            return True

        try:
            for _ in range(2 * workers):
                if not submit_next():
                    break
            while in_flight:
                done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
                for fut in done:
                    in_flight.discard(fut)
                    exc = fut.exception()
                    if exc is not None:
                        failure = failure or exc
                        continue
                    on_done(fut.result())
                    if failure is None:
                        submit_next()
        except BaseException:  # Ctrl-C, SIGTERM (raised by the CLI's handler), a bug here
            stop_workers(pool)
            raise
        if isinstance(failure, BrokenProcessPool):
            raise RunError("a worker process died (killed, or out of memory; from a Python "
                           "script: run_recipe called outside `if __name__ == \"__main__\":`, "
                           "which worker processes re-run on start)",
                           fix="lower --workers if memory is short, then rerun with --resume")
        if failure is not None:
            raise failure
