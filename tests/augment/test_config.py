"""Recipe validation: unknown transforms and parameters name the key and the fix."""

import json
import subprocess
import sys

import pytest

from imgsynth.core.errors import RecipeError
from imgsynth.recipes.load import parse_recipe

DATASET = {"type": "dataset", "path": "sample_assets/datasets/shapes_coco", "copies": 1}


def recipe_error(transforms) -> str:
    with pytest.raises(RecipeError) as info:
        parse_recipe({"source": DATASET, "stages": [
            {"type": "augment", "transforms": [{"name": "HorizontalFlip"}, *transforms]}]})
    return str(info.value)


def test_unknown_transform_names_the_key_and_suggests():
    text = recipe_error([{"name": "GausianBlur"}])
    assert "stages.0.transforms.1" in text and "Did you mean 'GaussianBlur'?" in text
    text = recipe_error([{"name": "imgsynth.GausianNoise"}])
    assert "stages.0.transforms.1" in text and "'imgsynth.GaussianNoise'" in text


def test_unknown_parameter_suggests_from_the_signature():
    text = recipe_error([{"name": "Rotate", "limt": 30}])
    assert "stages.0.transforms.1" in text and "Did you mean 'limit'?" in text
    assert "Did you mean 'sigma'?" in recipe_error([{"name": "imgsynth.GaussianNoise", "sigmaa": 3}])


def test_albumentations_own_validation_becomes_a_message():
    text = recipe_error([{"name": "Rotate", "limit": "abc"}])
    assert "invalid parameters for Rotate" in text and "limit" in text
    assert "errors.pydantic.dev" not in text
    assert "must lie in" in recipe_error([{"name": "imgsynth.SaltPepper", "amount": 2}])


def test_border_modes_by_name_and_mirroring_rejected():
    recipe = parse_recipe({"source": DATASET, "stages": [{"type": "augment", "transforms": [
        {"name": "Rotate", "border_mode": "replicate"}]}]})
    assert recipe.stages[0].transforms[0].params == {"border_mode": "replicate"}
    assert "imgsynth.Rotate" in recipe_error([{"name": "Rotate", "border_mode": "reflect"}])
    assert "Did you mean 'replicate'" in recipe_error([{"name": "Rotate", "border_mode": "replicat"}])


def test_transforms_a_recipe_cannot_feed_are_refused_when_the_recipe_loads():
    """Before, these failed at the first sample (exit 1 after the run had started), or,
    for distortions with albumentations' default keypoint method, lost label points."""
    text = recipe_error([{"name": "FDA"}])
    assert "stages.0.transforms.1" in text and "fda_metadata" in text and "Remove it" in text
    assert "'mask'" in recipe_error([{"name": "MaskDropout"}])
    text = recipe_error([{"name": "CoarseDropout3D"}])
    assert "3D (volume) transform" in text and "Did you mean 'CoarseDropout'?" in text
    text = recipe_error([{"name": "ElasticTransform", "keypoint_remapping_method": "mask"}])
    assert "loses label points" in text
    recipe = parse_recipe({"source": DATASET, "stages": [{"type": "augment", "transforms": [
        {"name": "GridDistortion"}]}]})
    assert recipe.stages[0].transforms[0].name == "GridDistortion"


def test_albumentations_stages_import_neither_torch_nor_the_network():
    """Every worker builds its stages: albumentations' PyPI version check and its torch
    import (ToTensorV2) would cost a network request and ~500 MB per worker."""
    code = """
import json, os, sys, urllib.request
calls = []
urllib.request.OpenerDirector.open = lambda self, url, *a, **k: calls.append(str(url))
os.environ.pop("NO_ALBUMENTATIONS_UPDATE", None)
from imgsynth.augment.config import AugmentConfig
from imgsynth.core.stage import BuildContext
AugmentConfig.model_validate({"type": "augment", "transforms": [
    {"name": "Rotate", "limit": 10}, {"name": "GaussianBlur"}]}).build(BuildContext())
print(json.dumps({"torch": "torch" in sys.modules, "requests": calls}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"torch": False, "requests": []}
