"""report.json (numbers + how they were computed) and a self-contained report.html.

The HTML has no external references: CSS is inline and every figure is a PNG embedded
as a data: URI, so the file can be mailed or archived alone. Figures are drawn with
matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from imgsynth.io.atomic import atomic_write_text
from imgsynth.io.image import decode_image

THUMB = 64


def figure_png(fig) -> str:
    """A matplotlib figure as a data: URI (metadata stripped so bytes are stable)."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def thumbnail(image: np.ndarray, size: int = THUMB) -> np.ndarray:
    import cv2

    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def grid_image(paths: list[Path], rows: int = 5, cols: int = 5) -> np.ndarray:
    """Up to rows*cols images spread evenly over the set, as one tiled RGB array."""
    tile = np.full((rows * (THUMB + 2), cols * (THUMB + 2), 3), 255, dtype=np.uint8)
    picks = np.unique(np.linspace(0, len(paths) - 1, min(len(paths), rows * cols)).round().astype(int))
    for slot, index in enumerate(picks):
        r, c = divmod(slot, cols)
        tile[r * (THUMB + 2):r * (THUMB + 2) + THUMB, c * (THUMB + 2):c * (THUMB + 2) + THUMB] = \
            thumbnail(decode_image(paths[index]))
    return tile


def grids_figure(real_paths: list[Path] | None, fake_paths: list[Path]) -> str:
    plt = pyplot()
    panels = [("real", real_paths), ("synthetic", fake_paths)]
    panels = [(title, paths) for title, paths in panels if paths]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 5), squeeze=False)
    for ax, (title, paths) in zip(axes[0], panels):
        ax.imshow(grid_image(paths))
        ax.set_title(f"{title} (5x5, evenly spaced)")
        ax.axis("off")
    return figure_png(fig)


def projection_figure(real: np.ndarray, fake: np.ndarray, seed: int, max_points: int = 2000) -> tuple[str, str]:
    """2-D projection of real vs fake features: UMAP when installed, else PCA."""
    rng = np.random.default_rng(seed)
    real = real[rng.choice(len(real), min(len(real), max_points), replace=False)]
    fake = fake[rng.choice(len(fake), min(len(fake), max_points), replace=False)]
    both = np.concatenate([real, fake])
    try:
        import umap

        points = umap.UMAP(n_components=2, random_state=seed).fit_transform(both)
        method = "UMAP"
    except ImportError:
        from sklearn.decomposition import PCA

        points = PCA(n_components=2, random_state=seed).fit_transform(both)
        method = "PCA"
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 5))
    ax.scatter(points[:len(real), 0], points[:len(real), 1], s=6, alpha=0.5, label="real")
    ax.scatter(points[len(real):, 0], points[len(real):, 1], s=6, alpha=0.5, label="synthetic")
    ax.set_title(f"{method} of extractor features")
    ax.legend()
    return figure_png(fig), method


def channel_figure(real_hist: np.ndarray, fake_hist: np.ndarray) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3))
    for c, (ax, name) in enumerate(zip(axes, "RGB")):
        for hist, label in ((real_hist[c], "real"), (fake_hist[c], "synthetic")):
            ax.plot(np.arange(256), hist / max(hist.sum(), 1), label=label)
        ax.set_title(f"{name} intensity")
        ax.set_xlim(0, 255)
    axes[0].legend()
    return figure_png(fig)


def class_figure(balance: dict) -> str:
    plt = pyplot()
    classes = list(balance["classes"])
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(max(5, 0.5 * len(classes)), 3.5))
    ax.bar(x - 0.2, [balance["classes"][c]["real_share"] for c in classes], 0.4, label="real")
    ax.bar(x + 0.2, [balance["classes"][c]["fake_share"] for c in classes], 0.4, label="synthetic")
    ax.set_xticks(x, classes, rotation=45, ha="right")
    ax.set_ylabel("share of images")
    ax.legend()
    return figure_png(fig)


def box_figure(real: dict[str, np.ndarray], fake: dict[str, np.ndarray]) -> str:
    plt = pyplot()
    fig, axes = plt.subplots(1, 4, figsize=(16, 3))
    for ax, name in zip(axes, real):
        data = [v for v in (real[name], fake[name]) if len(v)]
        bins = np.histogram_bin_edges(np.concatenate(data), bins=30) if data else 10
        for values, label in ((real[name], "real"), (fake[name], "synthetic")):
            if len(values):
                ax.hist(values, bins=bins, density=True, alpha=0.5, label=label)
        ax.set_title(name)
    axes[0].legend()
    return figure_png(fig)


def pairs_figure(pairs: list[dict], real_root: Path, fake_root: Path, limit: int = 6) -> str:
    """The closest synthetic/real pairs side by side (what a reviewer checks by eye)."""
    plt = pyplot()
    pairs = pairs[:limit]
    fig, axes = plt.subplots(2, len(pairs), figsize=(2 * len(pairs), 4.4), squeeze=False)
    for col, pair in enumerate(pairs):
        for row, (root, key) in enumerate(((fake_root, "fake"), (real_root, "real"))):
            axes[row][col].imshow(thumbnail(decode_image(root / pair[key]), 96))
            axes[row][col].set_title(f"{key}: {pair[key]}"[:28], fontsize=7)
            axes[row][col].axis("off")
    return figure_png(fig)


def format_value(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return html.escape(str(value))


def table_html(rows: dict) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td>{format_value(v)}</td></tr>"
                    for k, v in rows.items() if not isinstance(v, (dict, list)))
    return f"<table>{cells}</table>"


def headline_rows(metrics: dict) -> dict:
    """One line per metric for the summary table."""
    rows = {}
    for name, result in metrics.items():
        if "skipped" in result:
            rows[name] = "skipped: " + result["skipped"]
        elif name == "fid":
            rows["FID (lower is better)"] = result["value"]
        elif name == "kid":
            rows["KID (lower is better)"] = f"{result['mean']:.6g} ± {result['std']:.3g}"
        elif name == "is":
            rows["IS (higher is better)"] = f"{result['mean']:.6g} ± {result['std']:.3g}"
        elif name == "prdc":
            for key in ("precision", "recall", "density", "coverage"):
                rows[key] = result[key]
        elif name == "memorization":
            rows["share closer than NN threshold"] = result["share_closer_than_threshold"]
            rows["exact duplicates of real images"] = result["exact_duplicates"]
            rows["near duplicates (pHash)"] = result["near_duplicates"]
        elif name == "tstr":
            rows["accuracy train real / test real"] = result["train_real_test_real"]
            rows["accuracy train synthetic / test real"] = result["train_synth_test_real"]
            rows["accuracy train real+synthetic / test real"] = result["train_real_plus_synth_test_real"]
            rows["TSTR / TRTR"] = result["tstr_over_trtr"]
    return rows


CSS = """body{font-family:sans-serif;max-width:1100px;margin:2em auto;color:#222}
table{border-collapse:collapse;margin:0.5em 0}th,td{border:1px solid #ccc;padding:3px 8px;
text-align:left;font-size:14px}th{background:#f4f4f4}img{max-width:100%}
.warn{background:#fff4d6;border-left:4px solid #e0a000;padding:6px 10px;margin:4px 0}
pre{background:#f7f7f7;padding:8px;overflow-x:auto;font-size:12px}"""


def render_html(report: dict, figures: dict[str, str]) -> str:
    how = report["how"]
    parts = [f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>imgsynth evaluation</title>"
             f"<style>{CSS}</style></head><body><h1>imgsynth evaluation</h1>",
             f"<p>real: <code>{html.escape(how['real'])}</code> ({how['n_real']} images)<br>"
             f"synthetic: <code>{html.escape(how['fake'])}</code> ({how['n_fake']} images)</p>"]
    parts += [f"<div class='warn'>{html.escape(w)}</div>" for w in report["warnings"]]
    parts.append("<h2>Summary</h2>" + table_html(headline_rows(report["metrics"])))
    parts.append("<h2>How these numbers were computed</h2>" + table_html(
        {k: v for k, v in how.items() if k != "versions"}) + table_html(how["versions"]))
    titles = {"projection": "Real vs synthetic features (2-D projection)",
              "grids": "Samples", "channels": "Per-channel intensity histograms",
              "classes": "Class balance", "boxes": "Boxes: size, aspect ratio, position",
              "closest_pairs": "Closest synthetic/real pairs (memorization check)"}
    for key, title in titles.items():
        if key in figures:
            parts.append(f"<h2>{title}</h2><img alt='{key}' src='{figures[key]}'>")
    parts.append("<h2>All numbers (report.json)</h2><pre>"
                 + html.escape(json.dumps(report["metrics"], indent=1)) + "</pre></body></html>")
    return "".join(parts)


def write_report(out_dir: Path, report: dict, figures: dict[str, str]) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    atomic_write_text(json_path, json.dumps(report, indent=2, sort_keys=False) + "\n")
    atomic_write_text(html_path, render_html(report, figures))
    return json_path, html_path
