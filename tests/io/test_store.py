"""--out as a URL (imgsynth.io.store), against a local S3 server: workers write straight to
the bucket, the files are the same bytes as a run into a folder, --resume completes an
interrupted run there, and a URL that cannot be written stops the run before anything."""

from __future__ import annotations

import importlib.util

import pytest
from typer.testing import CliRunner

from imgsynth.cli import app
from imgsynth.core.errors import RecipeError
from imgsynth.run import run_recipe
from tests.conftest import make_coco_dataset, tree_hashes, write_recipe
from tests.io.conftest import moto_s3, store_hashes

RECIPE = """
seed: 3
source:
  type: dataset
  path: {data}
  copies: 3
output:
  formats: [coco, yolo, webdataset]
  shard_size: 5
  preview: true
  preview_count: 4
"""


@pytest.fixture(scope="module")
def s3():
    with moto_s3() as fs:
        yield fs


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """An 18-sample recipe (3 chunks) and its output in a local folder."""
    root = tmp_path_factory.mktemp("store")
    recipe = write_recipe(root / "recipe.yaml", RECIPE.format(data=make_coco_dataset(root / "data")))
    run_recipe(recipe, root / "local", workers=1, quiet=True)
    return recipe, root / "local"


def test_s3_output_equals_a_folder_and_resumes_there(case, s3):
    recipe, local = case
    expected = tree_hashes(local)
    assert any(k.startswith("shards/") for k in expected) and "preview.png" in expected
    run_recipe(recipe, "s3://imgsynth-test/run", workers=2, quiet=True)  # spawned workers
    assert store_hashes(s3, "imgsynth-test/run") == expected

    # An interrupted run: chunk 1 (indices 8..15) never finished, nothing was assembled.
    s3.rm([f"imgsynth-test/run/{rel}" for rel in
           [".imgsynth/chunks/000001.jsonl", "manifest.jsonl", "annotations.json"]
           + [f"images/{index + 1:08d}.png" for index in range(8, 16)]])
    with pytest.raises(RecipeError, match="not empty"):
        run_recipe(recipe, "s3://imgsynth-test/run", workers=1, quiet=True)
    run_recipe(recipe, "s3://imgsynth-test/run", workers=1, resume=True, quiet=True)
    assert store_hashes(s3, "imgsynth-test/run") == expected


def test_missing_bucket_is_a_usage_error(case, s3):
    recipe, _ = case
    with pytest.raises(RecipeError) as info:
        run_recipe(recipe, "s3://no-such-bucket/run", workers=1, quiet=True)
    assert info.value.exit_code == 2
    assert "cannot write to --out" in str(info.value) and "s3://no-such-bucket/run" in str(info.value)


@pytest.mark.skipif(importlib.util.find_spec("adlfs") is not None, reason="adlfs is installed")
def test_url_whose_backend_is_not_installed_names_the_package(case, tmp_path, monkeypatch):
    recipe, _ = case
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["run", str(recipe), "--out", "az://container/run"])
    assert result.exit_code == 2, result.output
    assert "pip install adlfs" in result.output
    assert list(tmp_path.iterdir()) == []
