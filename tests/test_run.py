"""run_recipe as a library call: a recipe given as a mapping runs as its YAML file does."""

from __future__ import annotations

import copy

import pytest
import yaml

from imgsynth.core.errors import RecipeError
from imgsynth.core.registry import FORMATS
from imgsynth.run import run_recipe
from tests.conftest import tree_hashes, write_recipe


def _recipe(data) -> dict:
    return {"seed": 2, "source": {"type": "dataset", "path": str(data), "copies": 2},
            "stages": [{"type": "augment", "transforms": [{"name": "HorizontalFlip", "p": 0.5}]}],
            "output": {"formats": ["coco", "yolo"], "preview": False}}


def test_a_mapping_runs_as_its_yaml_file_does_and_is_left_unchanged(tmp_path, coco_dataset):
    recipe = _recipe(coco_dataset)
    given = copy.deepcopy(recipe)
    path = write_recipe(tmp_path / "r.yaml", yaml.safe_dump(recipe))
    run_recipe(path, tmp_path / "from_file", quiet=True)
    summary = run_recipe(recipe, tmp_path / "from_mapping", count=12, quiet=True)
    assert summary.written == 12
    assert tree_hashes(tmp_path / "from_mapping") == tree_hashes(tmp_path / "from_file")
    assert recipe == given


def test_errors_in_a_mapping_say_where_the_recipe_came_from(tmp_path, coco_dataset):
    recipe = _recipe(coco_dataset)
    recipe["sed"] = 1
    with pytest.raises(RecipeError, match="recipe given as a mapping") as caught:
        run_recipe(recipe, tmp_path / "out")
    assert "Did you mean 'seed'?" in str(caught.value) and not (tmp_path / "out").exists()


def test_every_format_states_its_facts_in_one_spec():
    """What a format needs, whether it is written per record and whether it reads the
    sample files back are fields of one FormatSpec per format (they were four tables)."""
    assert {n for n, s in FORMATS.items() if s.needs == "label"} == {"imagefolder", "csv"}
    assert {n for n, s in FORMATS.items() if s.needs == "text"} == {"ocr_labels", "gt_txt", "lmdb"}
    assert {n for n, s in FORMATS.items() if s.per_record} == {"yolo", "yolo_seg", "voc", "semantic_masks"}
    assert {n for n, s in FORMATS.items() if s.reads_sample_files} == {
        "imagefolder", "yolo_seg", "lmdb", "webdataset"}


def test_a_format_whose_package_is_missing_is_refused_before_any_sample(tmp_path, coco_dataset,
                                                                       monkeypatch):
    """Before: a run with `lmdb` and no lmdb package made every sample, then failed with
    ModuleNotFoundError while writing labels."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lmdb" else real(name, *a))
    recipe = _recipe(coco_dataset)
    recipe["output"]["formats"] = ["coco", "lmdb"]
    with pytest.raises(RecipeError, match=r"needs the package lmdb") as caught:
        run_recipe(recipe, tmp_path / "out")
    assert "imgsynth[ocr]" in str(caught.value) and not (tmp_path / "out").exists()
