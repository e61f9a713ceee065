"""The Ray engine keeps the run contract: the same bytes as the local engine, after a killed
worker and after --resume; a failing sample stops the run with its index and source."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imgsynth.core.errors import RunError, SampleError
from imgsynth.engine.pipeline import chunk_file
from imgsynth.engine.ray import KILL_CHUNK_ENV, chunks_per_call, gpu_parts, run_ray
from imgsynth.recipes.load import load_yaml
from imgsynth.run import run_recipe
from tests.conftest import make_coco_dataset, tree_hashes, write_recipe
from tests.io.conftest import moto_s3, store_hashes

ray = pytest.importorskip("ray")

RECIPE = """
seed: 7
source:
  type: dataset
  path: {data}
  format: coco
  copies: 4
output:
  formats: [coco, yolo]
  preview: false
"""


@pytest.fixture(scope="module")
def s3():
    with moto_s3() as fs:
        yield fs


@pytest.fixture(scope="module", autouse=True)
def local_ray(s3):
    """One 2-CPU Ray for the module; run_ray joins it instead of starting its own. Started
    after the S3 server: its actors inherit the server's address from the environment."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A 24-sample recipe (3 chunks of 8) and its output from the local engine."""
    root = tmp_path_factory.mktemp("ray")
    data = make_coco_dataset(root / "data")
    recipe = write_recipe(root / "recipe.yaml", RECIPE.format(data=data))
    run_recipe(recipe, root / "local", workers=1, quiet=True)
    return root, data, recipe


def test_ray_writes_the_same_files_as_local(case, tmp_path, s3):
    root, _, recipe = case
    summary = run_recipe(recipe, tmp_path / "ray", engine="ray", workers=2, quiet=True)
    assert summary.written == 24
    local, remote = tree_hashes(root / "local"), tree_hashes(tmp_path / "ray")
    assert sum(k.startswith("images/") for k in remote) == 24
    assert "annotations.json" in remote and "manifest.jsonl" in remote
    assert remote == local
    # --out as a URL: the actors write straight to the bucket, no shared folder.
    run_recipe(recipe, "s3://imgsynth-test/ray", engine="ray", workers=2, quiet=True)
    assert store_hashes(s3, "imgsynth-test/ray") == local


def test_killed_worker_is_retried_and_output_is_identical(case, tmp_path, monkeypatch):
    root, _, recipe = case
    marker = tmp_path / "killed-once"
    monkeypatch.setenv(KILL_CHUNK_ENV, f"1:{marker}")
    summary = run_recipe(recipe, tmp_path / "ray", engine="ray", workers=2, quiet=True)
    assert marker.exists(), "the test hook did not kill the worker"
    assert summary.written == 24
    assert tree_hashes(tmp_path / "ray") == tree_hashes(root / "local")


def test_resume_runs_only_missing_chunks(case, tmp_path):
    root, _, recipe = case
    out = tmp_path / "out"
    shutil.copytree(root / "local", out)
    # An interrupted run: chunk 2 (indices 16..23) never finished, nothing was assembled.
    (out / chunk_file(2)).unlink()
    for index in range(16, 24):
        (out / "images" / f"{index + 1:08d}.png").unlink()
    (out / "manifest.jsonl").unlink()
    kept = (out / "images" / "00000001.png").stat().st_mtime_ns
    run_recipe(recipe, out, engine="ray", workers=2, resume=True, quiet=True)
    assert tree_hashes(out) == tree_hashes(root / "local")
    assert (out / "images" / "00000001.png").stat().st_mtime_ns == kept  # chunk 0 not redone


def test_sample_error_names_index_and_source(case, tmp_path):
    root, data, _ = case
    broken = shutil.copytree(data, tmp_path / "data")
    (broken / "images" / "img002.png").write_bytes(b"not a png")
    recipe = write_recipe(tmp_path / "recipe.yaml", RECIPE.format(data=broken))
    with pytest.raises(SampleError) as info:
        run_recipe(recipe, tmp_path / "out", engine="ray", workers=2, quiet=True)
    assert info.value.exit_code == 1
    assert info.value.index in range(8, 12)  # the 4 copies of the third image
    assert "img002.png" in str(info.value)
    assert not (tmp_path / "out" / "manifest.jsonl").exists()


def test_relative_input_paths_resolve_from_where_imgsynth_was_started(case, tmp_path, monkeypatch):
    root, data, _ = case
    shutil.copytree(data, tmp_path / "inputs")
    recipe = write_recipe(tmp_path / "recipe.yaml", RECIPE.format(data="inputs"))
    monkeypatch.chdir(tmp_path)  # the actors of the module's Ray started elsewhere
    summary = run_recipe(recipe, "out", engine="ray", workers=2, quiet=True)
    assert summary.written == 24
    images = {k: v for k, v in tree_hashes(tmp_path / "out").items() if k.startswith("images/")}
    assert images == {k: v for k, v in tree_hashes(root / "local").items() if k.startswith("images/")}


def test_worker_that_cannot_start_fails_the_run_with_the_cause(case, tmp_path):
    root, _, _ = case
    resolved = load_yaml(root / "local" / "recipe.yaml")
    resolved.pop("imgsynth")
    resolved["source"]["path"] = str(tmp_path / "gone")  # e.g. not mounted on that node
    with pytest.raises(RunError) as info:
        run_ray(resolved, str(tmp_path / "out"), None, [(0, 0, 8)], 1, lambda result: None)
    assert info.value.exit_code == 1
    assert "gone" in str(info.value) and "--resume" in str(info.value)


def test_the_chain_splits_after_its_last_gpu_part():
    cpu_only = {"source": {"type": "compose"}, "stages": [{"type": "augment"}]}
    assert gpu_parts(cpu_only, cluster_gpus=8) == 0
    cuda = {"source": {"type": "compose"},
            "stages": [{"type": "diffuse_img2img", "device": "cuda"}, {"type": "augment"}]}
    assert gpu_parts(cuda, cluster_gpus=0) == 2  # source + img2img on GPU actors, augment on CPU
    auto = {"source": {"type": "diffuse", "device": "auto"}, "stages": [{"type": "augment"}]}
    assert (gpu_parts(auto, cluster_gpus=4), gpu_parts(auto, cluster_gpus=0)) == (1, 0)


@pytest.mark.parametrize("split", [1, 2])
def test_split_run_writes_the_same_files_as_local(case, tmp_path, split):
    """Head actors (GPU actors on a cluster; forced here on CPUs) run the first `split`
    parts and hand the samples to the CPU workers: same images and records as one process."""
    root, data, _ = case
    recipe = write_recipe(tmp_path / "recipe.yaml", RECIPE.format(data=data) + """
stages:
  - type: augment
    transforms: [{name: imgsynth.Rotate, limit: 20}, {name: imgsynth.GaussianNoise, sigma: 5}]
""")
    run_recipe(recipe, tmp_path / "local", workers=1, quiet=True)
    resolved = load_yaml(tmp_path / "local" / "recipe.yaml")
    resolved.pop("imgsynth")
    done = []
    run_ray(resolved, str(tmp_path / "split"), None, [(0, 0, 8), (1, 8, 16), (2, 16, 24)], 2,
            done.append, split=split)
    assert sorted(r.written for r in done) == [8, 8, 8]
    local = tree_hashes(tmp_path / "local")
    split_files = tree_hashes(tmp_path / "split")
    assert split_files == {k: v for k, v in local.items() if k.startswith(("images/", "masks/", ".imgsynth/"))}


def test_small_chunks_go_to_actors_in_groups_with_the_same_files(case, tmp_path):
    """Ray Data costs ~10 ms per call: 1-sample chunks travel in groups of 3 here, and
    every chunk still gets its own records file, with the same bytes."""
    _, data, _ = case
    recipe = write_recipe(tmp_path / "recipe.yaml", RECIPE.format(data=data).replace("copies: 4", "copies: 16"))
    run_recipe(recipe, tmp_path / "local", workers=1, quiet=True)
    resolved = load_yaml(tmp_path / "local" / "recipe.yaml")
    resolved.pop("imgsynth")
    chunks = [(i, i, i + 1) for i in range(96)]
    assert chunks_per_call(chunks, workers=1) == 3
    done = []
    run_ray(resolved, str(tmp_path / "grouped"), None, chunks, 1, done.append)
    assert sorted(r.chunk_id for r in done) == list(range(96))
    files = tree_hashes(tmp_path / "grouped")
    assert sum(k.startswith(".imgsynth/chunks/") for k in files) == 96
    local = tree_hashes(tmp_path / "local")
    assert {k: v for k, v in files.items() if k.startswith("images/")} == \
        {k: v for k, v in local.items() if k.startswith("images/")}


def test_chunks_per_call_bounds_samples_and_keeps_calls_per_worker():
    assert chunks_per_call([(i, 8 * i, 8 * i + 8) for i in range(250)], workers=2) == 3
    assert chunks_per_call([(i, 256 * i, 256 * i + 256) for i in range(40000)], workers=64) == 4
    assert chunks_per_call([(0, 0, 8), (1, 8, 16)], workers=2) == 1


def test_import_imgsynth_does_not_import_ray():
    code = "import sys, imgsynth, imgsynth.run, imgsynth.cli; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
