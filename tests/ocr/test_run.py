"""`imgsynth run` with OCR recipes: every format holds the exact labels, names are safe,
any worker count gives the same bytes, skips are counted."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import lmdb
import pytest

from imgsynth.core.errors import RecipeError
from imgsynth.io.image import decode_image
from imgsynth.io.writers.manifest import read_manifest
from imgsynth.io.writers.ocr import write_gt_txt, write_labels_txt, write_lmdb, write_mmocr
from imgsynth.recipes.schema import OutputConfig
from imgsynth.run import run_recipe
from tests.conftest import tree_hashes, write_recipe

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = ["../../x", "/etc/passwd", "a/b\\c", "C:\\win\\sys", "x" * 300, "-rf *", "Cafe\u0301",
           "mixed مرحبا", "x\u2028y", "नमस्ते"]

RECIPE = """
seed: 7
count: {count}
source:
  type: ocr
  texts:
    - kind: lines
      path: {lines}
  fonts: [{root}/sample_assets/fonts/latin, {root}/sample_assets/fonts/arabic]
  height: 32
  skew_angle: 3
  random_skew: true
  distortion: random
output:
  formats: [{formats}]
  preview: false
"""


def ocr_recipe(tmp_path: Path, lines: list[str], formats: str, count: int | None = None) -> Path:
    path = tmp_path / "lines.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return write_recipe(tmp_path / "ocr.yaml", RECIPE.format(
        count=count or len(lines), lines=path, root=ROOT, formats=formats))


def test_hostile_texts_get_safe_names_and_exact_labels_in_every_format(tmp_path):
    recipe = ocr_recipe(tmp_path, HOSTILE, "gt_txt, ocr_labels, mmocr, lmdb, hf, icdar")
    # U+2028 cannot be drawn in one line and Devanagari is not in these fonts: both skipped
    summary = run_recipe(recipe, tmp_path / "out", quiet=True)
    out = tmp_path / "out"
    assert summary.skipped == {"no_font_covers_text": 1, "control_character": 1}
    expected = {i + 1: unicodedata.normalize("NFC", t) for i, t in enumerate(HOSTILE)
                if t not in ("x\u2028y", "नमस्ते")}
    assert sorted(p.name for p in (out / "images").iterdir()) == [f"{i:08d}.png" for i in expected]
    assert not any(p.name.startswith(("..", "x", "etc")) for p in out.rglob("*"))
    records = read_manifest(out / "manifest.jsonl")
    assert {r["id"]: r["text"] for r in records} == expected
    for rec in records:
        assert decode_image(out / rec["image"]).shape[0] == 32

    gt = (out / "gt.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert [tuple(line.split("\t", 1)) for line in gt] == [(f"images/{i:08d}.png", t) for i, t in expected.items()]
    labels = (out / "labels.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert [tuple(line.split(" ", 1)) for line in labels] == [(f"images/{i:08d}.png", t) for i, t in expected.items()]
    mmocr = json.loads((out / "mmocr_textrecog.json").read_text(encoding="utf-8"))
    assert mmocr["metainfo"]["task_name"] == "textrecog"
    assert [d["instances"][0]["text"] for d in mmocr["data_list"]] == list(expected.values())
    hf = [json.loads(line) for line in (out / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [row["text"] for row in hf] == list(expected.values())

    env = lmdb.open(str(out / "lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        n = int(txn.get(b"num-samples"))
        assert n == len(expected)
        for number, (ident, text) in enumerate(expected.items(), start=1):
            assert txn.get(b"label-%09d" % number).decode("utf-8") == text
            assert txn.get(b"image-%09d" % number) == (out / f"images/{ident:08d}.png").read_bytes()
        assert txn.get(b"label-%09d" % (n + 1)) is None
    env.close()


def test_workers_1_and_2_write_identical_bytes(tmp_path):
    corpus = (ROOT / "sample_assets/text/corpus.txt").read_text(encoding="utf-8").splitlines()[:24]
    recipe = ocr_recipe(tmp_path, corpus, "gt_txt, mmocr, hf, ocr_labels, lmdb")
    one = run_recipe(recipe, tmp_path / "w1", workers=1, quiet=True)
    two = run_recipe(recipe, tmp_path / "w2", workers=2, quiet=True)
    assert one.written == two.written == 24
    h1, h2 = tree_hashes(tmp_path / "w1"), tree_hashes(tmp_path / "w2")
    assert "gt.txt" in h1 and "lmdb/data.mdb" in h1 and len([k for k in h1 if k.startswith("images/")]) == 24
    assert h1 == h2


def test_scene_text_run_writes_coco_icdar_and_mmocr_detection(tmp_path):
    recipe = write_recipe(tmp_path / "scene.yaml", f"""
seed: 1
count: 3
source:
  type: scene_text
  texts: [{{kind: words, path: {ROOT}/sample_assets/text/words.txt}}]
  fonts: [{ROOT}/sample_assets/fonts/latin]
  backgrounds: [{ROOT}/sample_assets/backgrounds]
  max_side: 256
  min_words: 2
  max_words: 4
output:
  formats: [coco, icdar, mmocr]
  preview: false
""")
    run_recipe(recipe, tmp_path / "out", quiet=True)
    out = tmp_path / "out"
    records = read_manifest(out / "manifest.jsonl")
    coco = json.loads((out / "annotations.json").read_text())
    assert [c["name"] for c in coco["categories"]] == ["text"]
    assert len(coco["annotations"]) == sum(len(r["instances"]) for r in records) > 0
    det = json.loads((out / "mmocr_textdet.json").read_text())["data_list"]
    for rec, entry in zip(records, det):
        lines = (out / "icdar" / f"gt_{Path(rec['image']).stem}.txt").read_text().splitlines()
        assert len(lines) == len(rec["instances"]) == len(entry["instances"])
        for line, inst, mm in zip(lines, rec["instances"], entry["instances"]):
            *coords, text = line.split(",", 8)
            assert text == inst["attributes"]["text"] == mm["text"]
            assert [round(v) for v in inst["polygons"][0]] == [int(c) for c in coords]


def write_image(out: Path, rec: dict) -> None:
    (out / rec["image"]).parent.mkdir(parents=True, exist_ok=True)
    (out / rec["image"]).write_bytes(b"not decoded by the writers")


@pytest.mark.parametrize("text", ["line\nbreak", "cr\rhere", "nel\x85", "ls\u2028"])
def test_line_formats_refuse_a_line_break_and_json_and_lmdb_keep_it(tmp_path, text):
    records = [{"id": 1, "image": "images/00000001.png", "width": 4, "height": 4, "text": text,
                "instances": []},
               {"id": 2, "image": "images/00000002.png", "width": 4, "height": 4, "text": "tab\there\x00nul",
                "instances": []}]
    for rec in records:
        write_image(tmp_path, rec)
    output = OutputConfig()
    for writer in (write_gt_txt, write_labels_txt):
        with pytest.raises(RecipeError, match="sample id 1.*cannot hold"):
            writer(tmp_path, records, [], output)
    assert not (tmp_path / "gt.txt").exists() and not (tmp_path / "labels.txt").exists()
    write_mmocr(tmp_path, records, [], output)
    stored = json.loads((tmp_path / "mmocr_textrecog.json").read_text(encoding="utf-8"))
    assert [d["instances"][0]["text"] for d in stored["data_list"]] == [text, "tab\there\x00nul"]
    write_lmdb(tmp_path, records, [], output)
    env = lmdb.open(str(tmp_path / "lmdb"), readonly=True, lock=False)
    with env.begin() as txn:
        assert txn.get(b"label-000000001").decode() == text
        assert txn.get(b"label-000000002").decode() == "tab\there\x00nul"
    env.close()
    # a tab fits labels.txt (the text is all after the first space) but not gt.txt
    write_labels_txt(tmp_path, records[1:], [], output)
    assert (tmp_path / "labels.txt").read_text() == "images/00000002.png tab\there\x00nul\n"
    with pytest.raises(RecipeError, match="U\\+0009"):
        write_gt_txt(tmp_path, records[1:], [], output)


SCENE = """
seed: 2
count: 3
source:
  type: scene_text
  texts: [{{kind: words, path: {root}/sample_assets/text/words.txt, {words}}}]
  fonts: [{root}/sample_assets/fonts/latin]
  backgrounds: [{root}/sample_assets/backgrounds]
  max_side: 200
  {ranges}
output:
  formats: [coco, icdar]
  preview: false
"""


def test_old_range_spellings_write_the_same_folder(tmp_path):
    """Recipes written with min_/max_ keys, max_rotation and placement_tries still run, byte
    for byte, and the saved recipe.yaml holds the new spelling (so both folders are identical)."""
    old = write_recipe(tmp_path / "old.yaml", SCENE.format(
        root=ROOT, words="min_words: 1, max_words: 2",
        ranges="min_words: 2\n  max_words: 4\n  min_text_height: 12\n  max_text_height: 24\n"
               "  max_rotation: 30\n  placement_tries: 5"))
    new = write_recipe(tmp_path / "new.yaml", SCENE.format(
        root=ROOT, words="words: [1, 2]",
        ranges="words: [2, 4]\n  text_height: [12, 24]\n  rotation: [-30, 30]\n  placement_attempts: 5"))
    with pytest.warns(FutureWarning) as warned:
        run_recipe(old, tmp_path / "old", quiet=True)
    assert len(warned) == 5
    run_recipe(new, tmp_path / "new", quiet=True)
    assert tree_hashes(tmp_path / "old") == tree_hashes(tmp_path / "new")
    saved = (tmp_path / "old" / "recipe.yaml").read_text()
    assert "placement_attempts: 5" in saved and "min_words" not in saved
