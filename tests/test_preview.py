"""The contact sheet: boxes in the class colour, tinted masks, readable OCR text, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imgsynth.core.errors import InputError, RecipeError
from imgsynth.core.masks import rle_encode
from imgsynth.io.image import decode_image, encode_image
from imgsynth.preview import MASK_OPACITY, class_colors, make_preview, spread_indices

GRAY = (123, 45, 67)  # an image colour that no text or overlay of the sheet uses


def write_sample(root: Path, index: int, image: np.ndarray, **fields) -> dict:
    rel = f"images/{index + 1:08d}.png"
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / rel).write_bytes(encode_image(image, "png"))
    record = {"id": index + 1, "index": index, "image": rel, "width": image.shape[1],
              "height": image.shape[0], "label": None, "text": None, "instances": []}
    record.update(fields)
    return record


def write_manifest(root: Path, records: list[dict]) -> None:
    (root / "manifest.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


def color_blocks(sheet: np.ndarray, color) -> list[tuple[int, int, int, int]]:
    """(x1, y1, x2, y2) inclusive bounds of each region of exactly `color` (10 px or more)."""
    import cv2

    hit = np.all(sheet == np.array(color, np.uint8), axis=2).astype(np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(hit)
    return sorted((x, y, x + w - 1, y + h - 1) for x, y, w, h, _area in stats[1:]
                  if w >= 10 and h >= 10)


def uniform(height: int, width: int, color=GRAY) -> np.ndarray:
    return np.full((height, width, 3), color, np.uint8)


def test_boxes_have_class_colour_and_masks_are_tinted(tmp_path):
    mask = np.zeros((90, 120), bool)
    mask[20:60, 60:100] = True  # circle: box (60, 20, 100, 60)
    instances = [
        {"class": "circle", "bbox_xyxy": [60, 20, 100, 60], "segmentation": rle_encode(mask)},
        {"class": "star", "bbox_xyxy": [10, 30, 40, 80], "segmentation": None},
    ]
    write_manifest(tmp_path, [write_sample(tmp_path, 0, uniform(90, 120), instances=instances)])

    path = make_preview(tmp_path)

    assert path == tmp_path / "preview.png"
    sheet = decode_image(path)
    blocks = np.array(color_blocks(sheet, GRAY))  # the box outlines cut the image in parts
    x0, y0 = blocks[:, :2].min(axis=0)
    x1, y1 = blocks[:, 2:].max(axis=0)
    # The 120x90 image is shown at 2x (it fills a 240-wide tile).
    assert (x1 - x0 + 1, y1 - y0 + 1) == (240, 180)
    colors = class_colors(["circle", "star"])
    assert colors["circle"] != colors["star"]
    circle = tuple(colors["circle"])
    assert tuple(sheet[y0 + 2 * 60 - 1, x0 + 2 * 80]) == circle  # bottom edge
    assert tuple(sheet[y0 + 2 * 40, x0 + 2 * 100 - 1]) == circle  # right edge
    assert tuple(sheet[y0 + 2 * 40, x0 + 2 * 60]) == circle  # left edge
    assert tuple(sheet[y0 + 2 * 80 - 1, x0 + 2 * 25]) == tuple(colors["star"])
    tinted = sheet[y0 + 2 * 40, x0 + 2 * 80].astype(float)
    expected = np.array(GRAY) * (1 - MASK_OPACITY) + np.array(circle) * MASK_OPACITY
    assert np.abs(tinted - expected).max() <= 1
    # The box-only star is not filled: its inside keeps the image colour.
    assert tuple(sheet[y0 + 2 * 55, x0 + 2 * 25]) == GRAY


def test_samples_are_spread_evenly_and_bytes_are_deterministic(tmp_path):
    colors = [(20 * k + 10, 60, 200) for k in range(9)]
    write_manifest(tmp_path, [write_sample(tmp_path, k, uniform(30, 40, c), label=f"c{k % 2}")
                              for k, c in enumerate(colors)])

    first = make_preview(tmp_path, n=3, dest=tmp_path / "a.png").read_bytes()
    second = make_preview(tmp_path, n=3, dest=tmp_path / "b.png").read_bytes()

    assert first == second
    sheet = decode_image(tmp_path / "a.png")
    shown = [k for k, c in enumerate(colors) if color_blocks(sheet, c)]
    assert shown == [0, 4, 8]
    assert spread_indices(9, 3) == [0, 4, 8]
    assert spread_indices(2, 16) == [0, 1]


def test_ocr_text_is_printed_under_wide_tiles_in_one_column(tmp_path):
    texts = ["a", "Invoice ZL-4958: 878 x orchard @ $583.45 (due 2017-03-06)",
             "line\nbreak\x00nul" + "y" * 300]
    write_manifest(tmp_path, [write_sample(tmp_path, k, uniform(32, 200), text=t)
                              for k, t in enumerate(texts)])

    sheet = decode_image(make_preview(tmp_path))

    blocks = color_blocks(sheet, GRAY)
    assert len(blocks) == 3
    assert len({b[0] for b in blocks}) == 1  # one column
    assert sheet.shape[1] < 900  # 300 hostile characters are cut, not drawn off the sheet

    def ink_under(block) -> np.ndarray:
        x1, _, x2, y2 = block
        band = sheet[y2 + 1:y2 + 24, x1:x2 + 1].astype(int).sum(axis=2)  # the caption line
        return np.flatnonzero((band < 250).any(axis=0))  # columns holding dark text

    short, invoice, hostile = (ink_under(b) for b in blocks)
    assert len(invoice) > 5 * len(short)
    # The truncated hostile line runs to the right end of the tile (ends with '…').
    assert hostile.max() > 0.9 * (blocks[2][2] - blocks[2][0])


def test_folder_of_images_without_manifest(tmp_path):
    (tmp_path / "images").mkdir()
    for k, color in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        (tmp_path / "images" / f"photo{k}.jpg").write_bytes(encode_image(uniform(50, 50, color), "png"))

    make_preview(tmp_path)
    make_preview(tmp_path)  # the first preview.png must not become a sample

    sheet = decode_image(tmp_path / "preview.png")
    assert all(color_blocks(sheet, c) for c in [(200, 30, 30), (30, 200, 30), (30, 30, 200)])
    assert sheet.shape[1] < 3 * 240 + 4 * 10 + 1  # three tiles in one row, nothing else


def test_missing_image_gets_a_placeholder_tile(tmp_path):
    records = [write_sample(tmp_path, 0, uniform(40, 40)), write_sample(tmp_path, 1, uniform(40, 40))]
    records[1]["image"] = "images/gone.png"
    write_manifest(tmp_path, records)

    sheet = decode_image(make_preview(tmp_path))

    assert len(color_blocks(sheet, GRAY)) == 1
    reddish = (sheet[..., 0] > 200) & (sheet[..., 1] < 150) & (sheet[..., 2] < 150)
    assert reddish.sum() > 20  # the error message is drawn in the empty tile


def test_empty_or_missing_folder_and_bad_n_are_user_errors(tmp_path):
    with pytest.raises(InputError, match="nothing to preview"):
        make_preview(tmp_path)
    (tmp_path / "manifest.jsonl").write_text("\n")
    with pytest.raises(InputError, match="nothing to preview"):
        make_preview(tmp_path)
    with pytest.raises(InputError, match="not found"):
        make_preview(tmp_path / "nope")
    with pytest.raises(RecipeError, match="--n"):
        make_preview(tmp_path, n=0)
    assert not (tmp_path / "preview.png").exists()


def test_run_then_preview_from_the_command_line(tmp_path):
    from typer.testing import CliRunner

    from imgsynth.cli import app

    shapes = Path(__file__).resolve().parent.parent / "sample_assets" / "datasets" / "shapes_coco"
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"seed: 1\nsource:\n  type: dataset\n  path: {shapes}\n")
    out = tmp_path / "out"
    runner = CliRunner()

    ran = runner.invoke(app, ["run", str(recipe), "--out", str(out), "--quiet"])
    shown = runner.invoke(app, ["preview", str(out), "--n", "4", "--out", str(tmp_path / "p.png")])
    empty = runner.invoke(app, ["preview", str(tmp_path / "empty_dir_missing")])

    assert ran.exit_code == 0, ran.output
    assert shown.exit_code == 0, shown.output
    sheet = decode_image(out / "preview.png")  # written by the run itself
    for color in class_colors(["circle", "hexagon", "star", "triangle"]).values():
        assert np.all(sheet == color, axis=2).sum() > 100  # boxes, tags and legend swatches
    assert decode_image(tmp_path / "p.png").shape[1] < sheet.shape[1]  # 2x2 instead of 4x3
    assert empty.exit_code == 2 and "not found" in empty.output


def test_scene_text_with_square_images_keeps_the_grid(tmp_path):
    write_manifest(tmp_path, [write_sample(tmp_path, k, uniform(100, 100), text=f"word {k}")
                              for k in range(4)])

    blocks = color_blocks(decode_image(make_preview(tmp_path)), GRAY)

    assert len(blocks) == 4
    assert len({b[0] for b in blocks}) == 2  # 2x2 grid, not one column of wide strips
