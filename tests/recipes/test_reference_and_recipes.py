"""Registry-driven checks: every config is documented, every shipped recipe validates."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgsynth.core.registry import FORMATS, SOURCES, STAGES, resolve
from imgsynth.recipes.reference import render_reference
from imgsynth.run import prepare

ROOT = Path(__file__).resolve().parents[2]
TRAINING_RECIPES = {"dcgan.yaml", "vae.yaml"}  # `imgsynth train`, not `imgsynth run`
NEEDS_MODEL = {"diffusion.yaml"}  # validates only once the user has placed the model


def test_committed_reference_matches_the_schema():
    committed = (ROOT / "docs" / "recipe-reference.md").read_text(encoding="utf-8")
    assert committed == render_reference(), "run `make reference` and commit docs/recipe-reference.md"


@pytest.mark.parametrize("name", sorted(SOURCES) + sorted(STAGES))
def test_every_config_field_is_documented(name):
    model = resolve({**SOURCES, **STAGES}[name])
    undocumented = [f for f, info in model.model_fields.items() if not info.description]
    assert not undocumented, f"{name}: fields without description: {undocumented}"


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_label_format_resolves(name):
    assert callable(resolve(FORMATS[name]))


@pytest.mark.parametrize("recipe", sorted(p.name for p in (ROOT / "recipes").glob("*.yaml")
                                          if p.name not in TRAINING_RECIPES | NEEDS_MODEL))
def test_shipped_recipe_validates(recipe, monkeypatch):
    monkeypatch.chdir(ROOT)
    parts, resolved = prepare(ROOT / "recipes" / recipe)
    assert parts and all(p.recipe.count >= 1 for p in parts)
    assert resolved


@pytest.mark.parametrize("recipe, override, expected", [
    ("compose.yaml", [], "rle"), ("ocr.yaml", [], "lz77"), ("compose.yaml", ["output.png_deflate=lz77"], "lz77")])
def test_png_deflate_auto_is_resolved_from_the_source_and_saved(recipe, override, expected, monkeypatch):
    """Rendered text lines compress far better with LZ77; photos and scenes encode ~2x faster with rle."""
    monkeypatch.chdir(ROOT)
    parts, resolved = prepare(ROOT / "recipes" / recipe, overrides=override)
    assert parts[0].recipe.output.png_deflate == expected
    assert resolved["output"]["png_deflate"] == expected
