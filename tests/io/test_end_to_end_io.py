"""`imgsynth run` on a dataset source with every detection label format, read back."""

from __future__ import annotations

import warnings

import numpy as np

from imgsynth.io.readers import read_dataset
from imgsynth.run import run_recipe

RECIPE = """
seed: 3
source:
  type: dataset
  path: {data}
  copies: 1
output:
  formats: [coco, yolo, yolo_seg, voc, semantic_masks, hf]
  preview: false
"""


def test_run_writes_every_format_and_each_reads_back_as_the_source(tmp_path):
    data = "sample_assets/datasets/shapes_coco"
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(RECIPE.format(data=data))
    out = tmp_path / "out"
    summary = run_recipe(recipe, out, quiet=True)
    assert summary.written == 12
    source = read_dataset(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # clean data: no label may be clipped or dropped
        readers = {fmt: read_dataset(root, fmt, classes=source.classes if fmt == "voc" else None)
                   for fmt, root in [("coco", out), ("yolo", out), ("voc", out),
                                     ("yolo", out / "yolo_seg")]}
    for i in range(len(source)):
        want = source.load(i)
        for name, ds in readers.items():
            assert ds.classes == source.classes, name
            got = ds.load(i)
            assert got.class_names == want.class_names, name
            for g, w in zip(got.instances, want.instances):
                np.testing.assert_allclose(g.bbox_xyxy, w.bbox_xyxy, atol=1e-3, err_msg=name)
        coco_back = readers["coco"].load(i)
        assert all(np.array_equal(g.mask, w.mask) for g, w in zip(coco_back.instances, want.instances))
    assert len(list((out / "semantic").glob("*.png"))) == 12
    assert (out / "metadata.jsonl").read_text().count("\n") == 12


def test_run_on_an_imagefolder_writes_classification_formats(tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    for k, name in enumerate(["zebra", "apple", "zebra"]):
        (data / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((8, 10, 3), 40 * k, dtype=np.uint8)).save(data / name / f"{k}.png")
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"source:\n  type: dataset\n  path: {data}\n  include_originals: true\n  copies: 0\n"
                      "output:\n  formats: [imagefolder, csv, hf]\n  preview: false\n")
    out = tmp_path / "out"
    assert run_recipe(recipe, out, quiet=True).written == 3
    assert (out / "labels.csv").read_text().splitlines() == [
        "file,label", "images/00000001.png,apple", "images/00000002.png,zebra", "images/00000003.png,zebra"]
    back = read_dataset(out)
    assert back.format == "imagefolder" and back.classes == ["apple", "zebra"]
    assert [back.load(i).label for i in range(3)] == ["apple", "zebra", "zebra"]
    assert '"label":"apple"' in (out / "metadata.jsonl").read_text()
