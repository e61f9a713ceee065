"""The run contract: byte-identical output for any worker count and after a killed run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imgsynth.core.errors import RecipeError
from imgsynth.recipes.load import load_recipe
from imgsynth.run import run_recipe
from tests.conftest import make_coco_dataset, tree_hashes, write_recipe

RECIPE = """
seed: 7
source:
  type: dataset
  path: {data}
  format: coco
  copies: {copies}
output:
  formats: [coco, yolo]
  preview: false
"""


def _recipe(tmp_path: Path, data: Path, copies: int = 3) -> Path:
    return write_recipe(tmp_path / "recipe.yaml", RECIPE.format(data=data, copies=copies))


def test_workers_1_and_2_write_identical_files(tmp_path, coco_dataset):
    recipe = _recipe(tmp_path, coco_dataset)
    one = run_recipe(recipe, tmp_path / "w1", workers=1, quiet=True)
    two = run_recipe(recipe, tmp_path / "w2", workers=2, quiet=True)
    assert one.written == two.written == 18
    h1, h2 = tree_hashes(tmp_path / "w1"), tree_hashes(tmp_path / "w2")
    assert any(k.startswith("images/") for k in h1)
    assert "annotations.json" in h1 and "manifest.jsonl" in h1
    assert h1 == h2


def test_saved_recipe_reproduces_the_run(tmp_path, coco_dataset):
    recipe = _recipe(tmp_path, coco_dataset)
    run_recipe(recipe, tmp_path / "a", quiet=True)
    run_recipe(tmp_path / "a" / "recipe.yaml", tmp_path / "b", quiet=True)
    assert tree_hashes(tmp_path / "a") == tree_hashes(tmp_path / "b")


def test_resume_after_sigkill_gives_identical_files(tmp_path):
    data = make_coco_dataset(tmp_path / "data", n_images=4, size=(240, 320))
    recipe = _recipe(tmp_path, data, copies=60)  # 240 samples, 30 chunks of 8
    reference = tmp_path / "reference"
    run_recipe(recipe, reference, quiet=True)

    out = tmp_path / "killed"
    cmd = [sys.executable, "-m", "imgsynth", "run", str(recipe), "--out", str(out), "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True)
    chunks = out / ".imgsynth" / "chunks"
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if chunks.exists() and len(list(chunks.iterdir())) >= 3:
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (out / "manifest.jsonl").exists()
    n_done = len(list(chunks.iterdir()))
    assert 3 <= n_done < 30

    done = subprocess.run(cmd + ["--resume"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert tree_hashes(out) == tree_hashes(reference)


def test_output_folder_must_be_empty_without_resume(tmp_path, coco_dataset):
    from imgsynth.core.errors import RecipeError

    recipe = _recipe(tmp_path, coco_dataset, copies=1)
    run_recipe(recipe, tmp_path / "out", quiet=True)
    with pytest.raises(RecipeError, match="not empty"):
        run_recipe(recipe, tmp_path / "out", quiet=True)
    with pytest.raises(RecipeError, match="first difference at 'seed'"):
        run_recipe(recipe, tmp_path / "out", seed=99, resume=True, quiet=True)
    # Resuming a finished run is a no-op that leaves the same files.
    before = tree_hashes(tmp_path / "out")
    run_recipe(recipe, tmp_path / "out", resume=True, quiet=True)
    assert tree_hashes(tmp_path / "out") == before


def test_multi_part_recipe_writes_each_part_and_a_combined_preview(tmp_path, coco_dataset):
    recipe = write_recipe(tmp_path / "parts.yaml", f"""
seed: 3
parts:
  first:
    source: {{type: dataset, path: {coco_dataset}, copies: 1}}
    output: {{formats: [coco]}}
  second:
    source: {{type: dataset, path: {coco_dataset}, copies: 2}}
    output: {{formats: [yolo]}}
""")
    summary = run_recipe(recipe, tmp_path / "a", quiet=True)
    assert summary.written == 6 + 12
    assert (tmp_path / "a" / "first" / "annotations.json").exists()
    assert (tmp_path / "a" / "second" / "data.yaml").exists()
    assert (tmp_path / "a" / "preview.png").stat().st_size > 0
    # The saved multi-part recipe reproduces the whole run.
    run_recipe(tmp_path / "a" / "recipe.yaml", tmp_path / "b", quiet=True)
    assert tree_hashes(tmp_path / "a") == tree_hashes(tmp_path / "b")


def test_parts_reject_a_top_level_source(tmp_path, coco_dataset):
    from imgsynth.core.errors import RecipeError

    recipe = write_recipe(tmp_path / "bad.yaml", f"""
source: {{type: dataset, path: {coco_dataset}}}
parts:
  a: {{source: {{type: dataset, path: {coco_dataset}}}}}
""")
    with pytest.raises(RecipeError, match="move 'source' into a part"):
        run_recipe(recipe, tmp_path / "o", quiet=True)
    assert not (tmp_path / "o").exists()


def test_quickstart_is_byte_identical_for_1_and_2_workers(tmp_path, monkeypatch):
    """Compose, augment and OCR together: the contract holds for every stage the demo shows."""
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)
    recipe = root / "recipes" / "quickstart.yaml"
    one = run_recipe(recipe, tmp_path / "w1", count=6, workers=1, quiet=True)
    two = run_recipe(recipe, tmp_path / "w2", count=6, workers=2, quiet=True)
    assert one.written == two.written == 18
    h1, h2 = tree_hashes(tmp_path / "w1"), tree_hashes(tmp_path / "w2")
    assert {"scenes/annotations.json", "text/gt.txt", "augmented/data.yaml", "preview.png"} <= set(h1)
    assert h1 == h2


def test_errors_inside_a_part_name_the_full_key_path(tmp_path, coco_dataset):
    from imgsynth.core.errors import RecipeError

    recipe = write_recipe(tmp_path / "bad.yaml", f"""
parts:
  first:
    source: {{type: dataset, path: {coco_dataset}, copiez: 2}}
    output: {{quality: 500}}
""")
    with pytest.raises(RecipeError) as info:
        run_recipe(recipe, tmp_path / "o", quiet=True)
    assert "parts.first.output.quality" in str(info.value)
    recipe.write_text(recipe.read_text().replace("quality: 500", "quality: 90"))
    with pytest.raises(RecipeError, match=r"parts\.first\.source\.copiez: unknown key\. Did you mean 'copies'"):
        run_recipe(recipe, tmp_path / "o", quiet=True)
    assert not (tmp_path / "o").exists()


def test_big_runs_write_per_record_label_formats_in_worker_processes(tmp_path, coco_dataset, monkeypatch):
    """yolo, yolo_seg, voc and semantic_masks are written over slices of the manifest by
    --workers processes once a run is big enough: the files equal a one-process pass."""
    import imgsynth.engine.local as local
    import imgsynth.run as run

    text = RECIPE.format(data=coco_dataset, copies=3).replace(
        "formats: [coco, yolo]", "formats: [coco, yolo, yolo_seg, voc, semantic_masks]")
    recipe = write_recipe(tmp_path / "recipe.yaml", text)
    run_recipe(recipe, tmp_path / "w1", workers=1, quiet=True)
    sliced_calls = []
    write = local.write_formats_in_slices
    monkeypatch.setattr(local, "write_formats_in_slices",
                        lambda formats, *args: sliced_calls.append(formats) or write(formats, *args))
    monkeypatch.setattr(run, "PARALLEL_FINALIZE_MIN", 5)
    run_recipe(recipe, tmp_path / "w2", workers=2, quiet=True)
    assert sliced_calls == [["yolo", "yolo_seg", "voc", "semantic_masks"]]
    h1, h2 = tree_hashes(tmp_path / "w1"), tree_hashes(tmp_path / "w2")
    assert any(k.startswith("yolo_seg/labels/") for k in h1) and any(k.startswith("semantic/") for k in h1)
    assert h1 == h2
    too_many = "[disk,square," + ",".join(f"c{i}" for i in range(254)) + "]"
    with pytest.raises(RecipeError, match="do not fit a uint8 map"):  # raised in a worker, reported here
        run_recipe(recipe, tmp_path / "w3", workers=2, quiet=True, overrides=[f"output.classes={too_many}"])


def test_per_record_formats_are_written_in_process_when_no_worker_can_start(tmp_path, coco_dataset, monkeypatch):
    """E.g. a script without a __main__ guard under the Ray engine: the pool breaks, the
    labels are still written, the same as one pass."""
    from concurrent.futures.process import BrokenProcessPool

    import imgsynth.engine.local as local

    text = RECIPE.format(data=coco_dataset, copies=3).replace("formats: [coco, yolo]", "formats: [yolo, voc]")
    recipe = write_recipe(tmp_path / "recipe.yaml", text)
    run_recipe(recipe, tmp_path / "w1", workers=1, quiet=True)

    class Broken:
        def __init__(self, *args, **kwargs):
            pass

        def __enter__(self):
            raise BrokenProcessPool("a child process terminated abruptly")

        def __exit__(self, *exc):
            return False

    shutil.copytree(tmp_path / "w1", tmp_path / "again")
    for folder in ("labels", "Annotations"):
        shutil.rmtree(tmp_path / "again" / folder)
    monkeypatch.setattr(local, "ProcessPoolExecutor", Broken)
    local.write_formats_in_slices(["yolo", "voc"], tmp_path / "again", tmp_path / "again" / "manifest.jsonl",
                                  18, ["disk", "square"], load_recipe(recipe).output, 2)
    assert tree_hashes(tmp_path / "w1") == tree_hashes(tmp_path / "again")
