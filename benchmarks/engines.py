"""Local engine vs Ray engine: the same recipe, the same workers, side by side, one process.

For each worker count, the recipe runs once on `--engine local` and once on `--engine ray`
(interleaved, into fresh folders), and the two output trees are compared file by file
(sha256): the Ray figures only count if the bytes are identical. Ray is started once
before the timed runs (its start-up is printed separately: a cluster pays it once, not
per run); a timed Ray run includes starting its actors and building the pipeline in them.
Label formats and the preview are switched off (`output.formats=[]`, `output.preview=false`):
they run in the driver after the samples, cost the same on both engines, and are not
what is compared.

Threads: OpenCV 1 thread in this process (local workers=1 runs here) and in every
worker; OMP/OpenBLAS/MKL 1 thread. The machine is shared with other jobs: timings are noisy.

Run:
    .venv/bin/python benchmarks/engines.py [--recipe recipes/compose.yaml] [--n 2000] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")
for _name in THREAD_ENV:  # before numpy/cv2 load, and inherited by Ray's worker processes
    os.environ[_name] = "1"

import cv2  # noqa: E402

from imgsynth.run import run_recipe  # noqa: E402


def tree_sha256(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def timed_run(recipe: Path, out: Path, n: int, workers: int, engine: str) -> float:
    t0 = time.perf_counter()
    summary = run_recipe(recipe, out, count=n, workers=workers, engine=engine, quiet=True,
                         overrides=["output.formats=[]", "output.preview=false"])
    seconds = time.perf_counter() - t0
    assert summary.written + sum(summary.skipped.values()) == n, summary
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", default=str(ROOT / "recipes" / "compose.yaml"))
    parser.add_argument("--n", type=int, default=2000, help="samples per run")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    os.chdir(ROOT)  # recipes name sample_assets/ relative to the repository
    cv2.setNumThreads(1)

    import ray

    t0 = time.perf_counter()
    ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    ray_start = time.perf_counter() - t0
    print(f"recipe {args.recipe}, N={args.n}, cores={os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f} (shared machine: timings are noisy)")
    print(f"threads: cv2 {cv2.getNumThreads()} here and 1 per worker; "
          + ", ".join(f"{k}={os.environ[k]}" for k in THREAD_ENV))
    print(f"ray {ray.__version__}: local Ray start-up {ray_start:.1f} s (not in the timings below)\n")

    rows = []
    with tempfile.TemporaryDirectory(prefix="imgsynth-engines-") as tmp:
        for workers in args.workers:
            seconds = {}
            for engine in ("local", "ray"):
                seconds[engine] = timed_run(Path(args.recipe), Path(tmp, f"{engine}-{workers}"),
                                            args.n, workers, engine)
            identical = tree_sha256(Path(tmp, f"local-{workers}")) == tree_sha256(Path(tmp, f"ray-{workers}"))
            for engine in ("local", "ray"):
                shutil.rmtree(Path(tmp, f"{engine}-{workers}"))
            rows.append((workers, seconds["local"], seconds["ray"], identical))
            sys.stdout.flush()

    print(f"{'workers':>7} | {'local s':>8} {'local img/s':>11} | {'ray s':>8} {'ray img/s':>9} | "
          f"{'ray/local':>9} | identical files")
    for workers, local_s, ray_s, identical in rows:
        print(f"{workers:>7} | {local_s:>8.1f} {args.n / local_s:>11.1f} | {ray_s:>8.1f} "
              f"{args.n / ray_s:>9.1f} | {ray_s / local_s:>8.2f}x | {identical}")
    ray.shutdown()


if __name__ == "__main__":
    main()
