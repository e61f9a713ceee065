"""The offline augment job end to end: recipes/augment.yaml through `imgsynth run`."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from imgsynth.core.masks import rle_decode, tight_bbox

ROOT = Path(__file__).resolve().parents[2]


def run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imgsynth", "run", "recipes/augment.yaml", "--out",
                           str(out), "--count", "6", "--quiet", *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_augment_recipe_writes_all_formats_with_tight_boxes_and_same_bytes(tmp_path):
    first, second = run(tmp_path / "a"), run(tmp_path / "b")
    assert first.returncode == 0, first.stderr
    assert second.returncode == 0, second.stderr
    a = (tmp_path / "a" / "manifest.jsonl").read_text()
    assert a == (tmp_path / "b" / "manifest.jsonl").read_text()  # sha256 of every file inside
    assert (tmp_path / "a" / "annotations.json").exists()
    assert (tmp_path / "a" / "data.yaml").exists() and any((tmp_path / "a" / "labels").iterdir())
    assert any((tmp_path / "a" / "Annotations").iterdir())
    records = [json.loads(line) for line in a.splitlines()]
    assert len(records) == 6 and any(r["instances"] for r in records)
    for record in records:
        for inst in record["instances"]:
            mask = rle_decode(inst["segmentation"])
            assert tuple(inst["bbox_xyxy"]) == tight_bbox(mask)


def test_unknown_transform_exits_2_with_the_key(tmp_path):
    result = run(tmp_path / "c", "--set", "stages.0.transforms.1.name=imgsynth.Rotat")
    assert result.returncode == 2
    assert "stages.0.transforms.1" in result.stderr and "imgsynth.Rotate" in result.stderr
    assert not (tmp_path / "c" / "manifest.jsonl").exists()
