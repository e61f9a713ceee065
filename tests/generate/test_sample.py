"""Checkpoint -> labeled data set: labels, latent seeds, determinism, bad checkpoints, CLI."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from imgsynth.cli import app
from imgsynth.core.errors import RecipeError
from imgsynth.generate.cli import sample_command
from imgsynth.generate.gan_source import load_sampler, sample_image
from imgsynth.io.image import decode_image
from imgsynth.run import run_recipe
from tests.conftest import tree_hashes


def manifest(out):
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def test_conditional_samples_cycle_through_classes_and_are_labeled(conditional_dcgan, tmp_path):
    sample_command(conditional_dcgan, 12, tmp_path / "all", seed=1, quiet=True)
    records = manifest(tmp_path / "all")
    assert [r["label"] for r in records] == [str(i % 10) for i in range(12)]
    with open(tmp_path / "all/labels.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [(row["file"], row["label"]) for row in rows] == [(r["image"], r["label"]) for r in records]
    assert (tmp_path / "all/imagefolder/3/00000004.png").exists()
    hf = [json.loads(line) for line in (tmp_path / "all/metadata.jsonl").read_text().splitlines()]
    assert hf[5] == {"file_name": "images/00000006.png", "label": "5"}


def test_class_option_samples_only_that_class(conditional_dcgan, tmp_path):
    sample_command(conditional_dcgan, 5, tmp_path / "sevens", class_name="7", seed=1, quiet=True)
    assert {r["label"] for r in manifest(tmp_path / "sevens")} == {"7"}
    assert sorted(p.name for p in (tmp_path / "sevens/imagefolder").iterdir()) == ["7"]


def test_a_checkpoint_whose_record_has_an_unused_data_key_still_samples(conditional_dcgan, tmp_path):
    """Runs from before unused data keys were refused stored e.g. digits + data.path."""
    ckpt = torch.load(conditional_dcgan, weights_only=True)
    ckpt["config"]["data"] = {**ckpt["config"]["data"], "kind": "digits", "path": "/data/ignored"}
    old = tmp_path / "old.pt"
    torch.save(ckpt, old)
    sample_command(old, 3, tmp_path / "out", seed=1, quiet=True)
    assert [r["label"] for r in manifest(tmp_path / "out")] == ["0", "1", "2"]


def test_each_image_is_reproduced_from_its_latent_seed(conditional_dcgan, tmp_path):
    sample_command(conditional_dcgan, 4, tmp_path / "out", seed=5, formats=[], quiet=True)
    sampler = load_sampler(conditional_dcgan)
    assert sampler.network_name == "generator_ema"
    for record in manifest(tmp_path / "out"):
        image = decode_image(tmp_path / "out" / record["image"], mode="L")
        again = sample_image(sampler, record["meta"]["latent_seed"], int(record["label"]))
        assert np.array_equal(image, again[:, :, 0])
        assert record["source_files"] == [str(conditional_dcgan.resolve())]


def test_same_seed_same_bytes_other_seed_other_images(unconditional_vae, tmp_path):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        sample_command(unconditional_vae, 6, tmp_path / name, seed=seed, formats=["hf"], quiet=True)
    # recipe.yaml records package versions, preview.png the folder name: compared apart
    a, b, c = ({k: v for k, v in tree_hashes(tmp_path / n).items()
                if k not in ("recipe.yaml", "preview.png")} for n in "abc")
    assert "manifest.jsonl" in a and "metadata.jsonl" in a
    assert a == b
    assert a["images/00000001.png"] != c["images/00000001.png"]
    assert all(r["label"] is None for r in manifest(tmp_path / "a"))


def test_unconditional_checkpoint_refuses_a_class(unconditional_vae, tmp_path):
    with pytest.raises(RecipeError, match="unconditional") as err:
        sample_command(unconditional_vae, 2, tmp_path / "out", class_name="3")
    assert err.value.key == "--class"


def test_unknown_class_suggests_the_known_ones(conditional_dcgan, tmp_path):
    with pytest.raises(RecipeError, match="'11' is not a class") as err:
        sample_command(conditional_dcgan, 2, tmp_path / "out", class_name="11")
    assert "0, 1, 2" in str(err.value)


def test_gan_sample_source_inside_imgsynth_run(conditional_dcgan, tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(f"seed: 2\ncount: 6\nsource:\n  type: gan_sample\n"
                      f"  checkpoint: {conditional_dcgan}\n  sample_classes: ['1', '2']\n"
                      f"output:\n  formats: [csv]\n")
    summary = run_recipe(recipe, tmp_path / "out", workers=2, quiet=True)
    assert summary.written == 6
    assert [r["label"] for r in manifest(tmp_path / "out")] == ["1", "2"] * 3
    # two workers or one: same bytes (the model is loaded once per worker)
    run_recipe(recipe, tmp_path / "one", workers=1, quiet=True)
    one, two = tree_hashes(tmp_path / "one"), tree_hashes(tmp_path / "out")
    assert {k: v for k, v in one.items() if k.startswith("images/")} == \
           {k: v for k, v in two.items() if k.startswith("images/")}


def test_cli_exit_codes(conditional_dcgan, tmp_path):
    runner = CliRunner()
    bad = runner.invoke(app, ["sample", str(tmp_path / "missing.pt"), "--n", "2",
                              "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "checkpoint not found" in bad.output
    good = runner.invoke(app, ["sample", str(conditional_dcgan), "--n", "3", "--class", "4",
                               "--out", str(tmp_path / "ok")])
    assert good.exit_code == 0, good.output
    assert [r["label"] for r in manifest(tmp_path / "ok")] == ["4"] * 3
    same_as_run = runner.invoke(app, ["sample", str(conditional_dcgan), "--count", "2", "--out", str(tmp_path / "c")])
    assert same_as_run.exit_code == 0 and len(manifest(tmp_path / "c")) == 2, same_as_run.output


def test_a_device_this_machine_lacks_names_the_source_key(conditional_dcgan, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    recipe = {"count": 2, "source": {"type": "gan_sample", "checkpoint": str(conditional_dcgan),
                                     "device": "cuda"}}
    with pytest.raises(RecipeError) as err:
        run_recipe(recipe, tmp_path / "out", workers=1, quiet=True)
    assert err.value.key == "source.device"
    assert "device 'cuda' is not available on this machine" in str(err.value)
    assert not (tmp_path / "out").exists()
