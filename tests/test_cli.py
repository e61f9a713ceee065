"""What a user sees from the command line: exit codes, messages, nothing written on errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from imgsynth.cli import app
from tests.conftest import tree_hashes, write_recipe
from tests.io.conftest import store_hashes

runner = CliRunner()


def _run(*args: str):
    return runner.invoke(app, list(args))


def _dataset_recipe(tmp_path: Path, data: Path, extra: str = "") -> Path:
    return write_recipe(tmp_path / "r.yaml", f"""
seed: 1
source:
  type: dataset
  path: {data}
  copies: 2
output:
  formats: [coco]
  preview: false
{extra}""")


def test_run_writes_a_dataset_and_exits_0(tmp_path, coco_dataset):
    recipe = _dataset_recipe(tmp_path, coco_dataset)
    result = _run("run", str(recipe), "--out", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "out" / "images").iterdir())) == 12
    assert (tmp_path / "out" / "annotations.json").exists()


def test_unknown_key_names_the_key_with_did_you_mean_and_writes_nothing(tmp_path, coco_dataset):
    recipe = _dataset_recipe(tmp_path, coco_dataset, "sed: 3\n")
    out = tmp_path / "out"
    result = _run("run", str(recipe), "--out", str(out))
    assert result.exit_code == 2
    assert "sed: unknown key. Did you mean 'seed'?" in result.output
    assert not out.exists()


def test_nested_typo_and_wrong_type_name_the_dotted_path(tmp_path, coco_dataset):
    recipe = _dataset_recipe(tmp_path, coco_dataset)
    result = _run("run", str(recipe), "--out", str(tmp_path / "o"), "--set", "output.image_fromat=jpg")
    assert result.exit_code == 2
    assert "output.image_fromat: unknown key. Did you mean 'image_format'?" in result.output
    result = _run("run", str(recipe), "--out", str(tmp_path / "o"), "--set", "output.quality=500")
    assert result.exit_code == 2 and "output.quality" in result.output and "100" in result.output
    result = _run("run", str(recipe), "--out", str(tmp_path / "o"), "--set", "source.copies=many")
    assert result.exit_code == 2 and "source.copies" in result.output
    assert not (tmp_path / "o").exists()


def test_unknown_source_type_and_format_suggest_the_fix(tmp_path, coco_dataset):
    recipe = _dataset_recipe(tmp_path, coco_dataset)
    result = _run("validate", str(recipe), "--set", "source.type=datset")
    assert result.exit_code == 2 and "Did you mean 'dataset'?" in result.output
    result = _run("validate", str(recipe), "--set", "output.formats=[coco, yolov]")
    assert result.exit_code == 2 and "output.formats.1" in result.output and "'yolo'" in result.output


def test_a_format_the_source_cannot_fill_exits_2_before_any_sample(tmp_path, coco_dataset):
    """Before, a COCO dataset run with `csv` or OCR lines for a detection set failed after
    every sample was made, and --resume refuses the changed formats: the samples were lost."""
    recipe = _dataset_recipe(tmp_path, coco_dataset)
    for fmt, said in (("csv", "needs a classification label"), ("gt_txt", "needs a text")):
        result = _run("run", str(recipe), "--out", str(tmp_path / fmt), "--set", f"output.formats=[coco, {fmt}]")
        assert result.exit_code == 2 and "output.formats.1" in result.output and said in result.output
        assert "'dataset' source makes none" in result.output and not (tmp_path / fmt).exists()
    shipped = Path(__file__).resolve().parents[1] / "recipes" / "ocr.yaml"
    ok = _run("validate", str(shipped), "--set", "output.formats=[gt_txt, lmdb]")
    assert ok.exit_code == 0, ok.output


def test_missing_dataset_folder_is_named(tmp_path):
    recipe = _dataset_recipe(tmp_path, tmp_path / "nowhere")
    result = _run("run", str(recipe), "--out", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "source.path" in result.output and "nowhere" in result.output
    assert not (tmp_path / "out").exists()


def test_bad_yaml_and_missing_recipe(tmp_path):
    bad = write_recipe(tmp_path / "bad.yaml", "source: [unclosed\n")
    result = _run("validate", str(bad))
    assert result.exit_code == 2 and "bad.yaml" in result.output and "line" in result.output
    result = _run("validate", str(tmp_path / "absent.yaml"))
    assert result.exit_code == 2 and "not found" in result.output


def test_resume_adds_label_formats_to_a_finished_run_without_new_samples(tmp_path, coco_dataset):
    recipe, out = _dataset_recipe(tmp_path, coco_dataset), tmp_path / "out"
    assert _run("run", str(recipe), "--out", str(out)).exit_code == 0
    images = {k: v for k, v in tree_hashes(out).items() if k.startswith(("images/", "masks/"))}
    more = _run("run", str(recipe), "--out", str(out), "--resume", "--set", "output.formats=[coco, yolo, voc]")
    assert more.exit_code == 0, more.output
    after = tree_hashes(out)
    assert {k: v for k, v in after.items() if k.startswith(("images/", "masks/"))} == images
    assert any(k.startswith("labels/") for k in after) and any(k.startswith("Annotations/") for k in after)
    assert "voc" in (out / "recipe.yaml").read_text()
    changed = _run("run", str(recipe), "--out", str(out), "--resume", "--set", "output.image_format=jpg")
    assert changed.exit_code == 2 and "output.image_format" in changed.output


def test_resume_refuses_a_folder_made_with_other_package_versions(tmp_path, coco_dataset):
    """Other numpy/OpenCV/imgsynth versions may make other bytes: a resume that mixed them
    would break byte identity silently, so it exits 2 naming the package and both versions."""
    recipe, out = _dataset_recipe(tmp_path, coco_dataset), tmp_path / "out"
    assert _run("run", str(recipe), "--out", str(out), "--count", "2").exit_code == 0
    saved = (out / "recipe.yaml").read_text()
    import numpy

    assert f"numpy: {numpy.__version__}" in saved
    (out / "recipe.yaml").write_text(saved.replace(f"numpy: {numpy.__version__}", "numpy: 1.0.0"))
    before = tree_hashes(out)
    result = _run("run", str(recipe), "--out", str(out), "--count", "2", "--resume")
    assert result.exit_code == 2
    assert f"numpy 1.0.0 (now {numpy.__version__})" in result.output
    assert "pip install 'numpy==1.0.0'" in result.output
    assert tree_hashes(out) == before


def test_normalized_pixels_are_not_written_as_an_image(tmp_path):
    """albumentations Normalize makes pixels around 0 (-2..2.6): they used to be clipped to
    0..1 and written as a black-and-white picture, exit 0."""
    result = _run("run", "recipes/augment.yaml", "--out", str(tmp_path / "out"), "--count", "1",
                  "--set", "stages.0.transforms=[{name: Normalize}]")
    assert result.exit_code == 1
    assert "not [0, 1]" in result.output and "normalize in the DataLoader" in result.output
    assert not (tmp_path / "out" / "images").exists()


def test_failing_sample_exits_1_and_resume_completes(tmp_path, coco_dataset):
    victim = sorted((coco_dataset / "images").iterdir())[3]
    good = victim.read_bytes()
    victim.write_bytes(b"")  # zero-byte image
    recipe = _dataset_recipe(tmp_path, coco_dataset)
    out = tmp_path / "out"
    result = _run("run", str(recipe), "--out", str(out), "--quiet")
    assert result.exit_code == 1
    assert victim.name in result.output and "0 bytes" in result.output and "--resume" in result.output
    assert not (out / "manifest.jsonl").exists()
    victim.write_bytes(good)
    result = _run("run", str(recipe), "--out", str(out), "--quiet", "--resume")
    assert result.exit_code == 0, result.output
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 12


def test_on_error_skip_records_the_failure(tmp_path, coco_dataset):
    victim = sorted((coco_dataset / "images").iterdir())[0]
    victim.write_bytes(b"not an image")
    recipe = _dataset_recipe(tmp_path, coco_dataset, "on_error: skip\n")
    out = tmp_path / "out"
    result = _run("run", str(recipe), "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    errors = (out / "errors.jsonl").read_text().splitlines()
    assert len(errors) == 2 and all(victim.name in line for line in errors)
    assert len((out / "manifest.jsonl").read_text().splitlines()) == 10


def test_out_as_a_file_or_memory_url_writes_the_same_bytes_as_a_folder(tmp_path, coco_dataset):
    fsspec = pytest.importorskip("fsspec")
    recipe = write_recipe(tmp_path / "r.yaml", f"""
seed: 1
source: {{type: dataset, path: {coco_dataset}, copies: 2}}
output: {{formats: [yolo, yolo_seg], preview: true}}
""")
    for out in (str(tmp_path / "folder"), f"file://{tmp_path}/url", "memory://imgsynth-cli/run"):
        result = _run("run", str(recipe), "--out", out, "--workers", "1", "--quiet")
        assert result.exit_code == 0, result.output
    expected = tree_hashes(tmp_path / "folder")
    assert "preview.png" in expected and any(k.startswith("yolo_seg/images/") for k in expected)
    assert tree_hashes(tmp_path / "url") == expected
    memory = fsspec.filesystem("memory")
    try:
        assert store_hashes(memory, "/imgsynth-cli/run") == expected
    finally:
        memory.rm("/imgsynth-cli", recursive=True)
    # Worker processes cannot see this process's memory: refused up front, nothing written.
    result = _run("run", str(recipe), "--out", "memory://imgsynth-cli/two", "--workers", "2", "--quiet")
    assert result.exit_code == 2 and "--workers 1" in result.output
    assert not memory.exists("/imgsynth-cli/two")


def test_help_and_import_do_not_load_heavy_modules():
    code = ("import sys; sys.argv = ['imgsynth', '--help']\n"
            "import imgsynth, imgsynth.run\n"
            "from imgsynth.cli import main\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('torch', 'diffusers', 'transformers', 'ray', 'fsspec') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "Usage" in out and "HEAVY []" in out


def test_training_recipes_validate_and_run_points_to_train(tmp_path):
    result = _run("validate", "recipes/dcgan.yaml")
    assert result.exit_code == 0, result.output
    assert "imgsynth train dcgan recipes/dcgan.yaml" in result.output
    result = _run("validate", "recipes/vae.yaml", "--set", "steps=0")
    assert result.exit_code == 2 and "steps" in result.output
    result = _run("run", "recipes/vae.yaml", "--out", str(tmp_path / "out"))
    assert result.exit_code == 2 and "imgsynth train vae recipes/vae.yaml" in result.output
    assert not (tmp_path / "out").exists()
