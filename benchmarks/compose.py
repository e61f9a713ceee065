"""imgsynth compose vs flip-data 0.2.1: the same cut-and-paste work, side by side, one process.

Work per scene (both tools): a 640x480 background, 4 RGBA cutouts from sample_assets
(random class), random rotation, left-right flip, width 15-40 % of the background
(flip: RandomResize symmetric_w relative to the parent; imgsynth: longer side 20-53 % of
the 480 px side, the same pixel range), random position with overlap allowed, a
Gaussian-softened alpha paste, one box and one mask per object. No file is written by
either tool (encoding is the same cost for both and is not what is compared).

Correctness, for both tools: every box is compared with the tight box of the pixels its
object really shows in the final image (its silhouette alpha >= 128 minus what later
objects cover, clipped to the image), computed here from each tool's final placements.
flip's boxes are read as its own VOC writer reads them (x, y, x + w, y + h).

Setup (flip-data is GPL: benchmark only, never imported from the package):
    .venv/bin/pip install --no-deps --target benchmarks/.peers flip-data==0.2.1 jinja2
Run:
    .venv/bin/python benchmarks/compose.py [--scenes 200] [--flip-scenes 60]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT / "benchmarks" / ".peers"
WIDTH, HEIGHT, OBJECTS = 640, 480, 4


def load_inputs(tmp: Path) -> tuple[list[np.ndarray], list[tuple[str, np.ndarray]], Path]:
    """640x480 backgrounds (written to tmp for imgsynth) and BGRA cutouts for flip."""
    from imgsynth.io.image import decode_image, encode_image

    bg_dir = tmp / "backgrounds"
    bg_dir.mkdir()
    backgrounds = []
    for k, path in enumerate(sorted((ROOT / "sample_assets" / "backgrounds").iterdir())):
        rgb = cv2.resize(decode_image(path), (WIDTH, HEIGHT), interpolation=cv2.INTER_AREA)
        (bg_dir / f"{k}.png").write_bytes(encode_image(rgb))
        backgrounds.append(rgb)
    objects = []
    for path in sorted((ROOT / "sample_assets" / "objects").glob("*/*.png")):
        objects.append((path.parent.name, decode_image(path, mode="RGBA")))
    return backgrounds, objects, bg_dir


def visible_truth(placed: list[tuple[np.ndarray, int, int]]) -> list[np.ndarray]:
    """Visible mask of each object from (alpha, x, y) in paste order: the reference."""
    ids = np.zeros((HEIGHT, WIDTH), np.int32)
    for k, (alpha, x, y) in enumerate(placed, start=1):
        h, w = alpha.shape
        y0, y1, x0, x1 = max(y, 0), min(y + h, HEIGHT), max(x, 0), min(x + w, WIDTH)
        if y0 < y1 and x0 < x1:
            sil = alpha[y0 - y:y1 - y, x0 - x:x1 - x] >= 128
            ids[y0:y1, x0:x1][sil] = k
    return [ids == k for k in range(1, len(placed) + 1)]


class Tally:
    """Box correctness, added up scene by scene (so no scene is kept in memory)."""

    def __init__(self):
        self.errors: list[float] = []  # max |coordinate error| per box, px
        self.outside = 0  # boxes leaving the image
        self.empty = 0  # labels whose object shows no pixel
        self.boxes = 0

    def add(self, boxes: list, masks: list[np.ndarray]) -> None:
        from imgsynth.core.masks import tight_bbox

        for box, mask in zip(boxes, masks):
            self.boxes += 1
            x1, y1, x2, y2 = box
            self.outside += x1 < 0 or y1 < 0 or x2 > WIDTH or y2 > HEIGHT
            truth = tight_bbox(mask)
            if truth is None:
                self.empty += 1
            else:
                self.errors.append(max(abs(a - b) for a, b in zip(box, truth)))


# -- flip-data -----------------------------------------------------------------------------

def run_flip(backgrounds, objects, n: int, classes: list[str], seed: int = 0):
    sys.path.insert(0, str(PEERS))
    import flip.transformers as tr

    np.random.seed(seed)  # flip draws from the global numpy state
    rng = np.random.default_rng(seed)
    transform = tr.Compose([
        tr.ApplyToObjects([
            tr.data_augmentation.Rotate(mode="random"),
            tr.data_augmentation.Flip(mode="y"),
            tr.data_augmentation.RandomResize(mode="symmetric_w", relation="parent",
                                              w_percentage_min=0.15, w_percentage_max=0.4),
        ]),
        tr.domain_randomization.ObjectsRandomPosition(mode="percentage", x_min=0, y_min=0,
                                                      x_max=1, y_max=1),
        tr.domain_randomization.Draw(),
        tr.labeler.CreateBoundingBoxes(),
        tr.labeler.CreateMasks(classes=classes),
    ])
    seconds, tally = 0.0, Tally()
    with contextlib.redirect_stdout(io.StringIO()):  # Draw prints a line per image
        for _ in range(n):
            bg = backgrounds[int(rng.integers(len(backgrounds)))]
            picks = [objects[int(rng.integers(len(objects)))] for _ in range(OBJECTS)]
            objs = [tr.Element(image=cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA), name=name)
                    for name, rgba in picks]
            element = tr.Element(image=cv2.cvtColor(bg, cv2.COLOR_RGB2BGR), objects=objs)
            t0 = time.perf_counter()
            [element] = transform(element)
            seconds += time.perf_counter() - t0
            # Checked outside the timed part; scenes are dropped so memory stays flat.
            placed = [(o.image[:, :, 3], o.x, o.y) for o in element.objects]
            tally.add([(t["pos"]["x"], t["pos"]["y"], t["pos"]["x"] + t["pos"]["w"],
                        t["pos"]["y"] + t["pos"]["h"]) for t in element.tags], visible_truth(placed))
    return n / seconds, tally


# -- imgsynth ------------------------------------------------------------------------------

def imgsynth_source(bg_dir: Path, blend: dict[str, float]):
    from imgsynth.compose.config import ComposeConfig
    from imgsynth.core.stage import BuildContext

    cfg = ComposeConfig.model_validate({
        "objects": str(ROOT / "sample_assets" / "objects"), "backgrounds": str(bg_dir),
        "width": WIDTH, "height": HEIGHT, "objects_per_image": [OBJECTS, OBJECTS],
        "scale": [0.2, 0.53], "rotation": [0, 360], "flip_horizontal": 0.5, "aspect_jitter": 0,
        "max_occlusion": 1.0, "max_truncation": 0.5, "min_visible_fraction": 0.0, "min_area": 1,
        "blend": blend, "feather_radius": 2.0})
    return cfg.build(BuildContext())


def run_imgsynth(bg_dir: Path, n: int, blend: dict[str, float]):
    from imgsynth.core.rng import sample_rng

    source = imgsynth_source(bg_dir, blend)
    for i in range(8):  # decode every background once (the per-worker cache), like flip's arrays
        source.generate(i, sample_rng(1, "compose", i))
    seconds, tally = 0.0, Tally()
    for i in range(n):
        rng = sample_rng(0, "compose", i)
        t0 = time.perf_counter()
        sample = source.generate(i, rng)
        seconds += time.perf_counter() - t0
        tally.add([inst.bbox_xyxy for inst in sample.instances],
                  [inst.mask for inst in sample.instances])
    return n / seconds, tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=300, help="imgsynth scenes per mode")
    parser.add_argument("--flip-scenes", type=int, default=40, help="flip-data scenes per round")
    parser.add_argument("--rounds", type=int, default=3,
                        help="flip / imgsynth rounds, interleaved so machine load hits both alike")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    print(f"threads: cv2={cv2.getNumThreads()} OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
          f" MALLOC_MMAP_THRESHOLD_={os.environ.get('MALLOC_MMAP_THRESHOLD_', 'unset')}; one process;"
          f" {WIDTH}x{HEIGHT}, {OBJECTS} objects/scene, boxes + masks; cv2 {cv2.__version__},"
          f" numpy {np.__version__}; shared 2-core machine: timings are noisy")
    with tempfile.TemporaryDirectory() as tmp:
        backgrounds, objects, bg_dir = load_inputs(Path(tmp))
        classes = sorted({name for name, _ in objects})
        flip_rates, ours_rates, ratios = [], [], []
        for r in range(args.rounds):
            flip_rate, flip_tally = run_flip(backgrounds, objects, args.flip_scenes, classes, seed=r)
            ours_rate, ours_tally = run_imgsynth(bg_dir, args.scenes, {"gaussian": 1.0})
            flip_rates.append(flip_rate)
            ours_rates.append(ours_rate)
            ratios.append(ours_rate / flip_rate)
            print(f"round {r + 1}: flip-data {flip_rate:.1f}/s, imgsynth {ours_rate:.1f}/s, "
                  f"ratio {ratios[-1]:.1f}x")
        flip_rate, ours_rate = float(np.median(flip_rates)), float(np.median(ours_rates))
        rows = [("flip-data 0.2.1 (Gaussian-softened alpha)", flip_rate, flip_tally),
                ("imgsynth compose (gaussian feather)", ours_rate, ours_tally)]
        extra = [("imgsynth hard", {"hard": 1.0}),
                 ("imgsynth poisson_normal", {"poisson_normal": 1.0}),
                 ("imgsynth all 7 modes mixed", {m: 1.0 for m in ("hard", "alpha", "gaussian", "box",
                                                                  "poisson_normal", "poisson_mixed",
                                                                  "pyramid")})]
        for name, blend in extra:
            n = max(20, args.scenes // (5 if "poisson" in name or "mixed" in name else 1))
            rows.append((name, *run_imgsynth(bg_dir, n, blend)))
    print()
    print(f"{'tool':44s} {'scenes/s':>9s} {'boxes':>6s} {'outside':>8s} {'no pixels':>9s}"
          f" {'median err px':>13s} {'max err px':>10s}")
    for name, rate, t in rows:
        med = f"{np.median(t.errors):.1f}" if t.errors else "-"
        mx = f"{max(t.errors):.1f}" if t.errors else "-"
        print(f"{name:44s} {rate:9.1f} {t.boxes:6d} {t.outside:8d} {t.empty:9d} {med:>13s} {mx:>10s}")
    print(f"\nratio imgsynth / flip-data (same work, gaussian), median of {args.rounds} interleaved "
          f"rounds: {float(np.median(ratios)):.1f}x (target >= 10x; rates above are medians too,"
          f" correctness columns are of the last round)")


if __name__ == "__main__":
    main()
