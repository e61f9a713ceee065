"""The checkpoint format: what is not an imgsynth checkpoint, or not this architecture, is an
InputError naming the file."""

from __future__ import annotations

import pytest
import torch

from imgsynth.core.errors import InputError
from imgsynth.generate.checkpoint import load_checkpoint, save_checkpoint, stored_config
from imgsynth.generate.gan_source import load_sampler


def test_foreign_and_mismatched_checkpoints_are_input_errors(conditional_dcgan, tmp_path):
    plain = tmp_path / "plain.pt"
    torch.save({"weight": torch.zeros(3)}, plain)
    with pytest.raises(InputError, match="not an imgsynth DCGAN/VAE checkpoint"):
        load_sampler(plain)
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(InputError, match="not a readable imgsynth checkpoint"):
        load_sampler(text)
    # the same checkpoint claiming another architecture: weights do not fit
    ckpt = torch.load(conditional_dcgan, weights_only=True)
    ckpt["config"]["ngf"] = 16
    other = tmp_path / "other.pt"
    torch.save(ckpt, other)
    with pytest.raises(InputError, match="does not fit the 'generator_ema' network") as err:
        load_sampler(other)
    assert "another resolution, width or class count" in str(err.value)


def test_a_saved_checkpoint_reads_back_with_its_typed_config(conditional_dcgan, tmp_path):
    ckpt = load_checkpoint(conditional_dcgan)
    save_checkpoint(tmp_path / "copy.pt", ckpt)
    again = load_checkpoint(tmp_path / "copy.pt")
    assert again["kind"] == "dcgan" and again["step"] == ckpt["step"]
    assert torch.equal(again["networks"]["generator"]["main.0.weight"],
                       ckpt["networks"]["generator"]["main.0.weight"])
    cfg = stored_config(again)
    assert type(cfg).__name__ == "DcganTrainConfig" and cfg.conditional and cfg.latent_size == 16
