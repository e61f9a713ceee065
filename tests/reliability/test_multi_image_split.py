"""Multi-image transforms (imgsynth.Mosaic, MixUp, CutMix, CopyPaste) draw their other images
from the recipe's dataset source wherever the augment stage is built: in a process that also
built the source, and in one that did not (a split Ray run's CPU workers, the studio after
an edit of the stage only). Same recipe and seed, same bytes."""

from __future__ import annotations

import pytest

from imgsynth.engine.pipeline import Pipeline
from imgsynth.io.store import open_store
from imgsynth.recipes.load import load_yaml
from imgsynth.run import prepare, run_recipe
from imgsynth.studio.render import RecipeSession
from tests.conftest import make_coco_dataset, tree_hashes, write_recipe

RECIPE = """
seed: 5
source: {{type: dataset, path: {data}, format: coco, copies: 2}}
stages:
  - type: augment
    transforms:
      - {{name: imgsynth.Mosaic, size: [64, 80]}}
      - {{name: imgsynth.MixUp, p: 0.5}}
      - {{name: imgsynth.CopyPaste, p: 0.5}}
output: {{formats: [coco], preview: false}}
"""


@pytest.fixture
def recipe(tmp_path):
    data = make_coco_dataset(tmp_path / "data", n_images=4, size=(48, 64))
    return write_recipe(tmp_path / "recipe.yaml", RECIPE.format(data=data))


def test_augment_stage_built_without_the_source_makes_the_same_samples(recipe, tmp_path):
    """What a split run's CPU worker does: build only the augment stage, and apply it to
    the samples another process's source made."""
    parts, _ = prepare(recipe)
    config = parts[0].recipe
    store = open_store(str(tmp_path / "out"))
    whole = Pipeline(config, store)
    source_only = Pipeline(config, store, parts=range(0, 1))
    stage_only = Pipeline(config, store, parts=range(1, 2))
    indices = range(config.count)
    expected = list(whole.outcomes(indices))
    made = [(i, stage_only.apply_stages(i, outcome))
            for i, outcome in source_only.outcomes(indices, stages=range(0))]
    assert len(made) == len(expected) == 8
    mosaics = 0
    for (i, a), (j, b) in zip(made, expected, strict=True):
        assert i == j and a.image.tobytes() == b.image.tobytes(), i
        assert [x.bbox_xyxy for x in a.instances] == [x.bbox_xyxy for x in b.instances]
        assert a.meta == b.meta and a.seed_keys == b.seed_keys
        mosaics += "mosaic" in a.meta
    assert mosaics == 8


def test_workers_write_the_same_files_as_one_process(recipe, tmp_path):
    run_recipe(recipe, tmp_path / "one", workers=1, quiet=True)
    run_recipe(recipe, tmp_path / "two", workers=2, quiet=True)
    assert tree_hashes(tmp_path / "two") == tree_hashes(tmp_path / "one")


def test_studio_rebuilds_the_stage_alone_after_an_edit(recipe):
    """The studio keeps the built source and rebuilds only the edited stage."""
    session = RecipeSession(recipe)
    try:
        first = session.render(session.baseline, count=4)
        assert not first.get("error") and len(first["samples"]) == 4
        edited = session.render(first["text"], edit=("stages.0.transforms.1.p", "1.0"), count=4)
        assert not edited.get("error"), edited.get("error")
        assert edited["timing"]["built"] == 1  # the augment stage, not the source
        assert [s["index"] for s in edited["samples"]] == [0, 1, 2, 3]
    finally:
        session.close()


def test_split_ray_run_writes_the_same_files_as_local(recipe, tmp_path):
    """The source on head actors, the augment stage on CPU workers (a GPU stage splits a
    run so; forced here on CPUs): the files of the local run."""
    ray = pytest.importorskip("ray")
    from imgsynth.engine.ray import run_ray

    run_recipe(recipe, tmp_path / "local", workers=1, quiet=True)
    resolved = load_yaml(tmp_path / "local" / "recipe.yaml")
    resolved.pop("imgsynth")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    try:
        done = []
        run_ray(resolved, str(tmp_path / "split"), None, [(0, 0, 8)], 2, done.append, split=1)
    finally:
        ray.shutdown()
    assert [r.written for r in done] == [8]
    local = tree_hashes(tmp_path / "local")
    split = tree_hashes(tmp_path / "split")
    assert split == {k: v for k, v in local.items() if k.startswith(("images/", "masks/", ".imgsynth/"))}
    assert sum(k.startswith("images/") for k in split) == 8
