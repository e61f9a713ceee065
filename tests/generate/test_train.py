"""The shared training loop: exact resume, outputs a user watches, early stopping, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from imgsynth.core.errors import RecipeError
from imgsynth.core.rng import run_int_seed, run_rng
from imgsynth.generate.checkpoint import load_checkpoint
from imgsynth.generate.cli import load_train_recipe, train_command
from imgsynth.generate.data import split_holdout
from imgsynth.generate.train import TrainingRun, epoch_order
from imgsynth.io.image import decode_image
from tests.generate.conftest import tiny_recipe

ROOT = Path(__file__).resolve().parents[2]


def assert_same_weights(a_path, b_path):
    a, b = load_checkpoint(a_path), load_checkpoint(b_path)
    assert a["step"] == b["step"]
    assert a["networks"].keys() == b["networks"].keys()
    for net, state in a["networks"].items():
        for key, tensor in state.items():
            assert torch.equal(tensor, b["networks"][net][key]), f"{net}.{key} differs"
    for name, opt in a["optimizers"].items():
        for pid, moments in opt["state"].items():
            for key, value in moments.items():
                assert torch.equal(value, b["optimizers"][name]["state"][pid][key])


@pytest.mark.parametrize("kind, options", [
    # every source of randomness in the DCGAN step at once: DiffAugment, EMA, spectral norm
    ("dcgan", {"conditional": True, "ema_decay": 0.9, "spectral_norm": True, "loss": "hinge",
               "diffaugment": ["color", "translation", "cutout"], "label_smoothing": 0.1}),
    ("vae", {"conditional": True, "beta_warmup_steps": 6}),
])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path, kind, options):
    # 13 training images / batch 4 = 3 batches per epoch: the 8 steps cross epochs, and
    # the interruption at step 4 falls in the middle of the second epoch.
    recipe = tiny_recipe(tmp_path, kind, batch_size=4, data={"kind": "digits", "limit": 14},
                         memorization_samples=0, **options)
    train_command(kind, recipe, tmp_path / "straight", overrides=["steps=8"], quiet=True)
    train_command(kind, recipe, tmp_path / "resumed", overrides=["steps=4"], quiet=True)
    train_command(kind, recipe, tmp_path / "resumed", resume=True, overrides=["steps=8"], quiet=True)
    assert_same_weights(tmp_path / "straight/checkpoints/last.pt",
                        tmp_path / "resumed/checkpoints/last.pt")
    steps = [json.loads(line)["step"] for line in
             (tmp_path / "resumed/metrics.jsonl").read_text().splitlines()
             if "eval" not in json.loads(line)]
    assert steps == [2, 4, 6, 8]


def test_train_writes_checkpoints_grids_metrics_and_memorization(tmp_path):
    recipe = tiny_recipe(tmp_path, "dcgan", conditional=True)
    result = train_command("dcgan", recipe, tmp_path / "run", quiet=True)
    run = tmp_path / "run"
    assert result.step == 4
    ckpt = load_checkpoint(run / "checkpoints/last.pt")
    assert ckpt["kind"] == "dcgan" and ckpt["step"] == 4 and ckpt["classes"] == list("0123456789")
    assert (run / "checkpoints/best.pt").exists()
    # one grid per grid_every steps; 20 images in columns of 10 classes -> 2 rows of 32 px
    grids = sorted(p.name for p in (run / "grids").iterdir())
    assert grids == ["samples_00000002.png", "samples_00000004.png"]
    grid = decode_image(run / "grids/samples_00000004.png", mode="L")
    assert grid.shape == (2 * 34 + 2, 10 * 34 + 2)
    assert grid[2:34, 2:34].std() > 0  # a generated image, not blank padding
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    train_lines = [r for r in lines if "eval" not in r]
    assert [r["step"] for r in train_lines] == [2, 4]
    assert all(np.isfinite(r["loss_d"]) and np.isfinite(r["loss_g"]) for r in train_lines)
    memo = json.loads((run / "memorization.json").read_text())
    assert memo["samples"] == 16 and 0 < memo["sample_nn_median"] <= 1
    assert memo["near_copies"] <= 16


def test_vae_writes_reconstruction_grids_and_keeps_best_by_validation_loss(tmp_path):
    recipe = tiny_recipe(tmp_path, "vae")
    result = train_command("vae", recipe, tmp_path / "run", quiet=True)
    assert result.best_by == "val_loss"  # 16 held-out digits: too few for FID
    evals = [json.loads(line) for line in (tmp_path / "run/metrics.jsonl").read_text().splitlines()
             if "eval" in json.loads(line)]
    assert [e["step"] for e in evals] == [2, 4]
    best = min(e["eval"]["val_loss"] for e in evals)
    assert result.best_metric == pytest.approx(best, rel=1e-5)
    recon = decode_image(tmp_path / "run/grids/recon_00000004.png", mode="L")
    # grid_size 20 -> 8 originals in one row, their reconstructions in the row below
    assert recon.shape == (2 * 34 + 2, 8 * 34 + 2)
    assert np.abs(recon[2:34].astype(int) - recon[36:68].astype(int)).mean() > 0


def test_early_stopping_after_patience_evaluations_without_improvement(tmp_path, monkeypatch):
    values = iter([3.0, 2.0, 2.5, 2.6, 1.0])
    monkeypatch.setattr(TrainingRun, "evaluate", lambda self: next(values))
    recipe = tiny_recipe(tmp_path, "vae", steps=10, eval_every=1, early_stopping_patience=2)
    result = train_command("vae", recipe, tmp_path / "run", quiet=True)
    assert result.stopped_early and result.step == 4
    assert result.best_metric == 2.0
    assert load_checkpoint(tmp_path / "run/checkpoints/best.pt")["step"] == 2
    assert load_checkpoint(tmp_path / "run/checkpoints/last.pt")["step"] == 4


def test_existing_run_needs_resume_and_the_same_architecture(tmp_path):
    recipe = tiny_recipe(tmp_path, "dcgan")
    train_command("dcgan", recipe, tmp_path / "run", quiet=True)
    with pytest.raises(RecipeError, match="already holds a training run") as err:
        train_command("dcgan", recipe, tmp_path / "run", quiet=True)
    assert "--resume" in str(err.value)
    with pytest.raises(RecipeError, match="trained with ngf=8, the recipe now says 16") as err:
        train_command("dcgan", recipe, tmp_path / "run", resume=True, overrides=["ngf=16"],
                      quiet=True)
    assert err.value.key == "ngf"
    with pytest.raises(RecipeError, match="nothing to resume"):
        train_command("dcgan", recipe, tmp_path / "new", resume=True, quiet=True)


@pytest.mark.parametrize("override, key, text", [
    ("resolution=48", "resolution", "power of two from 32 to 256"),
    ("conditional=true", "conditional", "needs class labels"),
    ("lr_g=-1", "lr_g", "greater than 0"),
    ("ngff=3", "ngff", "Did you mean 'ngf'"),
    ("data.annotations=instances.json", "data.annotations", "used only with data.kind coco"),
])
def test_bad_recipe_values_name_the_key(tmp_path, override, key, text):
    recipe = tiny_recipe(tmp_path, "dcgan", data={"kind": "folder", "path": "imgs"})
    with pytest.raises(RecipeError) as err:
        load_train_recipe("dcgan", recipe, [override])
    assert key in str(err.value) and text in str(err.value)


def test_a_path_on_the_digits_recipe_is_refused_not_ignored():
    """`--set data.path=...` on the shipped digits recipe used to train on digits anyway."""
    with pytest.raises(RecipeError) as err:
        load_train_recipe("dcgan", ROOT / "recipes" / "dcgan.yaml", ["data.path=/data/my_classes"])
    assert "data.path is used only with data.kind folder or imagefolder or coco" in str(err.value)
    assert "'digits'" in str(err.value)


def test_a_vae_recipe_given_to_train_dcgan_says_which_command(tmp_path):
    recipe = tiny_recipe(tmp_path, "vae", model="vae")
    with pytest.raises(RecipeError, match="imgsynth train vae"):
        load_train_recipe("dcgan", recipe)


def test_without_held_out_images_best_is_the_latest_checkpoint(tmp_path):
    recipe = tiny_recipe(tmp_path, "vae", data={"kind": "digits", "limit": 32,
                                                "holdout_fraction": 0.0})
    result = train_command("vae", recipe, tmp_path / "run", quiet=True)
    assert result.best_by == "latest" and result.best_metric is None
    assert load_checkpoint(tmp_path / "run/checkpoints/best.pt")["step"] == 4
    assert "ratio" not in result.memorization  # no held-out baseline to compare with


@pytest.mark.parametrize("kind", ["dcgan", "vae"])
def test_shipped_recipe_trains_through_the_cli(tmp_path, kind):
    from typer.testing import CliRunner

    from imgsynth.cli import app

    recipe = ROOT / "recipes" / f"{kind}.yaml"
    cfg = load_train_recipe(kind, recipe)
    assert cfg.data.kind == "digits" and cfg.conditional and cfg.resolution == 32
    small = ["steps=2", "batch_size=8", "data.limit=120", "grid_every=2", "memorization_samples=8",
             "ngf=4" if kind == "dcgan" else "nf=4", "ndf=4" if kind == "dcgan" else "latent_dim=4"]
    args = ["train", kind, str(recipe), "--out", str(tmp_path / "run"), "--quiet"]
    result = CliRunner().invoke(app, args + [a for s in small for a in ("--set", s)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "run/grids/samples_00000002.png").exists()
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 2 and "--resume" in again.output


def test_training_seeds_are_the_numbers_earlier_versions_drew():
    """The trainer's seeds come from core.rng; these are the values its own derivation gave
    (SeedSequence([seed, *purpose])), so a run retrains and resumes to the same weights."""
    assert [run_int_seed(0, 1, 0), run_int_seed(7, 2), run_int_seed(7, 3), run_int_seed(7, 4),
            run_int_seed(7, 5), run_int_seed(7, 6), run_int_seed(2**40, 1, 3)] == [
        2918264622725855778, 9139555415570476218, 2530781778362038830, 6355185125837863469,
        4346648539189822640, 351528316132178081, 4117514787827399083]
    assert epoch_order(12, 5, 2).tolist() == [10, 3, 6, 2, 0, 4, 1, 8, 7, 9, 5, 11]
    assert [a.tolist() for a in split_holdout(12, 0.25, 5)] == [[0, 1, 2, 3, 4, 7, 8, 10, 11], [5, 6, 9]]
    assert np.sort(run_rng(5).choice(30, 6, replace=False)).tolist() == [0, 13, 15, 16, 20, 22]
