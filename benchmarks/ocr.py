"""Text lines per second: imgsynth's `ocr` source vs trdg 1.8.0, same strings and font.

    .venv/bin/python benchmarks/ocr.py [--count 600]

Contenders (all at height 32, Gaussian-noise background, no skew/blur, margins 5, one font,
the same three-word lines from trdg's English dictionary):
1. in one process, rendering + PNG encoding (imgsynth's encode_image for both):
   trdg's GeneratorFromStrings (trdg as shipped, plus only the Pillow>=10 getsize shim)
   vs imgsynth's OcrLineSource.generate. trdg is timed first: imgsynth's build() turns
   on its font/measure caches in trdg's module for the rest of the process.
2. end to end, each as its own process writing PNG files and labels:
   trdg's CLI (`trdg -i lines.txt -c N -f 32 -t 1 -na 2 -e png --font F`, run through a
   wrapper that applies the getsize shim and then calls trdg.run.main, because trdg
   1.8.0 crashes on Pillow>=10 without it) vs `imgsynth run` with --workers 1 and 2.
   Process start-up (imports) is included for both.
Thread counts: OpenCV 1 thread in process 1; OMP_NUM_THREADS=1 for every subprocess.
The machine is shared: timings are noisy, run it twice.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FONT = str(ROOT / "sample_assets/fonts/latin/DejaVuSans.ttf")
PYTHON = sys.executable
TRDG_CLI = ("import sys; from imgsynth.ocr import trdg_compat; trdg_compat.install(); "
            "import trdg.run; sys.argv = ['trdg'] + sys.argv[1:]; trdg.run.main()")


def make_strings(count: int) -> list[str]:
    from imgsynth.ocr.texts import read_lines, trdg_dictionary_path

    words = read_lines(trdg_dictionary_path("en"), key="-")
    rnd = random.Random(0)
    return [" ".join(rnd.choice(words) for _ in range(3)) for _ in range(count)]


def time_trdg_generator(strings: list[str]) -> float:
    from imgsynth.io.image import encode_image
    from imgsynth.ocr import trdg_compat
    import numpy as np

    trdg_compat.install()
    from trdg.generators import GeneratorFromStrings

    gen = GeneratorFromStrings(strings, count=len(strings), fonts=[FONT], size=32)
    t0 = time.perf_counter()
    for image, _ in gen:
        encode_image(np.asarray(image.convert("RGB")), "png")
    return len(strings) / (time.perf_counter() - t0)


def ocr_config(lines_file: Path):
    from imgsynth.ocr.config import OcrConfig

    return OcrConfig(type="ocr", texts=[{"kind": "lines", "path": str(lines_file)}], fonts=[FONT], height=32)


def time_imgsynth_source(lines_file: Path, count: int) -> float:
    from imgsynth.core.rng import sample_rng
    from imgsynth.core.stage import BuildContext
    from imgsynth.io.image import encode_image

    source = ocr_config(lines_file).build(BuildContext())
    t0 = time.perf_counter()
    for index in range(count):
        encode_image(source.generate(index, sample_rng(0, "source", index)).image, "png")
    return count / (time.perf_counter() - t0)


def run_timed(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600)
    args = parser.parse_args()
    import cv2

    cv2.setNumThreads(1)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    n = args.count
    strings = make_strings(n)
    print(f"{n} three-word lines, height 32, font {Path(FONT).name}, PNG; cv2 threads "
          f"{cv2.getNumThreads()} in process, OMP_NUM_THREADS=1 in subprocesses; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        lines_file = tmp / "lines.txt"
        lines_file.write_text("\n".join(strings) + "\n", encoding="utf-8")

        print("\n1. one process, render + encode")
        trdg_gen = time_trdg_generator(strings)
        ours = time_imgsynth_source(lines_file, n)
        print(f"  trdg GeneratorFromStrings   {trdg_gen:7.1f} lines/s")
        print(f"  imgsynth OcrLineSource      {ours:7.1f} lines/s   x{ours / trdg_gen:.2f}")

        print("\n2. end to end (own process each, files written, start-up included)")
        cli = n / run_timed([PYTHON, "-c", TRDG_CLI, "-i", str(lines_file), "-c", str(n), "-f", "32",
                             "-t", "1", "-na", "2", "-e", "png", "--font", FONT,
                             "--output_dir", str(tmp / "trdg")], env)
        print(f"  trdg CLI (-t 1)             {cli:7.1f} lines/s")
        recipe = tmp / "ocr.yaml"
        recipe.write_text(f"seed: 0\ncount: {n}\nsource:\n  type: ocr\n  texts: [{{kind: lines, path: {lines_file}}}]\n"
                          f"  fonts: [{FONT}]\n  height: 32\noutput:\n  formats: [gt_txt]\n  preview: false\n")
        for workers in (1, 2):
            rate = n / run_timed([PYTHON, "-m", "imgsynth.cli", "run", str(recipe), "--out",
                                  str(tmp / f"w{workers}"), "--workers", str(workers)], env)
            print(f"  imgsynth run --workers {workers}     {rate:7.1f} lines/s   x{rate / cli:.2f} vs trdg CLI")


if __name__ == "__main__":
    main()
