"""The local engine: a spawn-safe process pool over fixed chunks of indices.

Memory stays flat: at most 2 chunks per worker are in flight and records go to
chunk files, not to the parent. Worker threads are bounded (OpenCV, BLAS, OpenMP)
so K workers use K cores, not K x cores.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any

from imgsynth.core.errors import RunError
from imgsynth.engine.pipeline import ChunkResult, Pipeline

THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")

_PIPELINE: Pipeline | None = None


def _init_worker(resolved: dict[str, Any], location: str, classes: list[str] | None) -> None:
    global _PIPELINE
    import cv2

    cv2.setNumThreads(1)
    _PIPELINE = Pipeline.from_resolved(resolved, location, classes)


def _run_chunk(chunk_id: int, start: int, stop: int) -> ChunkResult:
    assert _PIPELINE is not None
    return _PIPELINE.run_chunk(chunk_id, range(start, stop))


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
    chunks = list(chunks)
    if not chunks:
        return
    context = multiprocessing.get_context("spawn")
    pending = iter(chunks)
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
        if isinstance(failure, BrokenProcessPool):
            raise RunError("a worker process died (killed, or out of memory; from a Python "
                           "script: run_recipe called outside `if __name__ == \"__main__\":`, "
                           "which worker processes re-run on start)",
                           fix="lower --workers if memory is short, then rerun with --resume")
        if failure is not None:
            raise failure
