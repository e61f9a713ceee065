"""The compose recipe: transforms written as in augment and checked when the recipe loads,
ranges written [lo, hi], the old photometric spelling still read."""

from __future__ import annotations

import pytest
import yaml
from typer.testing import CliRunner

from imgsynth.cli import app
from imgsynth.compose.config import ComposeConfig
from imgsynth.core.errors import RecipeError
from imgsynth.core.ranges import RecipeDeprecationWarning
from imgsynth.io.image import encode_image
from imgsynth.recipes.load import dump_yaml, parse_recipe, resolved_dict
from tests.compose.conftest import build, generate

OLD = [{"RandomBrightnessContrast": {"p": 0.8}}, {"GaussNoise": {"p": 0.5}}, {"ToGray": None}]
NEW = [{"name": "RandomBrightnessContrast", "p": 0.8}, {"name": "GaussNoise", "p": 0.5},
       {"name": "ToGray"}]


def _compose(**fields) -> dict:
    return {"type": "compose", "objects": "o", "backgrounds": "b", **fields}


def _message(recipe: dict) -> str:
    with pytest.raises(RecipeError) as info:
        parse_recipe(recipe)
    return str(info.value)


def test_photometric_is_written_as_augment_transforms_and_the_old_mapping_gives_the_same_scenes(assets):
    new = build(assets, photometric=NEW)
    with pytest.warns(RecipeDeprecationWarning, match="photometric"):
        old = build(assets, photometric=OLD)
    assert old.cfg == new.cfg
    for index in range(3):
        assert encode_image(generate(old, index).image) == encode_image(generate(new, index).image)


def test_the_saved_recipe_holds_the_new_spelling():
    with pytest.warns(RecipeDeprecationWarning):
        recipe = parse_recipe({"source": _compose(photometric=OLD)})
    saved = resolved_dict(recipe)["source"]
    assert saved["photometric"] == NEW and saved["objects_per_image"] == [1, 4]
    again = parse_recipe(resolved_dict(recipe))  # what workers and --resume read: no rewrite
    assert dump_yaml(resolved_dict(again)) == dump_yaml(resolved_dict(recipe))


@pytest.mark.parametrize("photometric", [
    [{"name": "RandomBrightnesContrast", "p": 0.5}], [{"RandomBrightnesContrast": {"p": 0.5}}]])
def test_a_misspelled_photometric_transform_is_refused_by_validate_as_in_augment(tmp_path, photometric):
    """Before, validate passed it and only building the source failed."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"source": _compose(photometric=photometric)}))
    result = CliRunner().invoke(app, ["validate", str(recipe)])
    assert result.exit_code == 2
    assert "source.photometric.0: unknown transform 'RandomBrightnesContrast'. Did you mean " \
           "'RandomBrightnessContrast'?" in result.output
    augment = _message({"source": {"type": "dataset", "path": "sample_assets/datasets/shapes_coco"},
                        "stages": [{"type": "augment", "transforms": [
                            {"name": "RandomBrightnesContrast", "p": 0.5}]}]})
    same = augment.split("stages.0.transforms.0: ")[1]
    assert same in result.output


def test_photometric_parameters_are_checked_when_the_recipe_loads():
    text = _message({"source": _compose(photometric=[{"name": "GaussNoise", "std_rang": [0.1, 0.2]}])})
    assert "source.photometric.0: unknown parameter 'std_rang' for GaussNoise. Did you mean 'std_range'?" in text


@pytest.mark.parametrize("field, value, expected", [
    ("objects_per_image", [5, 1], "source.objects_per_image: the first value (5) must not exceed the second (1)"),
    ("distractors_per_image", [-1, 2], "source.distractors_per_image.0: Input should be greater than or equal to 0"),
    ("scale", [0.0, 0.5], "source.scale.0: Input should be greater than 0"),
    ("rotation", [10, -10], "source.rotation: the first value (10.0) must not exceed the second (-10.0)"),
    ("objects_per_image", [1, 2, 3], "source.objects_per_image: Tuple should have at most 2 items"),
])
def test_ranges_name_the_key_and_what_is_wrong(field, value, expected):
    assert expected in _message({"source": _compose(**{field: value})})


def test_copy_paste_ranges_are_checked_alike():
    text = _message({"source": {"type": "copy_paste", "dataset": "d", "pastes": [4, 2]}})
    assert "source.pastes: the first value (4) must not exceed the second (2)" in text
    assert "source.scale.0: Input should be greater than 0" in _message(
        {"source": {"type": "copy_paste", "dataset": "d", "scale": [0, 1]}})


def test_defaults_are_valid_ranges():
    config = ComposeConfig.model_validate(_compose())
    assert config.objects_per_image == (1, 4) and config.rotation == (-20.0, 20.0)
