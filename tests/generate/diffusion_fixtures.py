"""A tiny random-weight Stable Diffusion checkpoint, saved like a user's local model.

Built from small configs (UNet2DConditionModel, AutoencoderKL, CLIPTextModel) with a
CLIP tokenizer whose vocabulary is written here (single byte-level characters, no
merges), then `save_pretrained` into a folder that the tests load through the same
offline path a real checkpoint takes. Default image size: 32x32.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def _byte_level_chars() -> list[str]:
    """The 256 printable stand-ins CLIP's byte-level BPE uses for the bytes 0..255."""
    kept = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars = list(kept)
    extra = 0
    for b in range(256):
        if b not in kept:
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def write_tiny_tokenizer_files(folder: Path) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    chars = _byte_level_chars()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab_file, merges_file = folder / "vocab.json", folder / "merges.txt"
    vocab_file.write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    merges_file.write_text("#version: 0.2\n")
    return vocab_file, merges_file


def tiny_tokenizer(folder: Path):
    from transformers import CLIPTokenizer

    vocab_file, merges_file = write_tiny_tokenizer_files(folder / "tokenizer_src")
    # transformers 5 names these `vocab`/`merges`; `vocab_file=` is silently ignored there.
    return CLIPTokenizer(vocab=str(vocab_file), merges=str(merges_file), model_max_length=77)


def _tiny_vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=4,
        down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        sample_size=32)


def _tiny_text_config(tokenizer):
    from transformers import CLIPTextConfig

    vocab = tokenizer.get_vocab()
    return CLIPTextConfig(
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"], vocab_size=len(vocab), hidden_size=16,
        intermediate_size=32, num_attention_heads=2, num_hidden_layers=2,
        max_position_embeddings=77, projection_dim=16)


def build_tiny_sd_pipeline(folder: Path):
    """A StableDiffusionPipeline with random weights: block widths 8/16, 2 text layers."""
    import torch
    from diffusers import PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    tokenizer = tiny_tokenizer(folder)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=16, norm_num_groups=4, attention_head_dim=2)
    vae = _tiny_vae()
    text_encoder = CLIPTextModel(_tiny_text_config(tokenizer))
    scheduler = PNDMScheduler(skip_prk_steps=True, steps_offset=1)
    return StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def build_tiny_sdxl_pipeline(folder: Path):
    """An SDXL-class pipeline with random weights: two text encoders (the second with a
    projection), the UNet's text_time conditioning; the same tiny tokenizer for both."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = tiny_tokenizer(folder)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=(2, 4),
        use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=8,
        projection_class_embeddings_input_dim=6 * 8 + 16,  # 6 size/crop values + pooled text
        cross_attention_dim=32, norm_num_groups=4)  # 16 + 16: both encoders' hidden states
    vae = _tiny_vae()
    text = _tiny_text_config(tokenizer)
    return StableDiffusionXLPipeline(
        vae=vae, text_encoder=CLIPTextModel(text), text_encoder_2=CLIPTextModelWithProjection(text),
        tokenizer=tokenizer, tokenizer_2=tokenizer, unet=unet, scheduler=EulerDiscreteScheduler())


@pytest.fixture(scope="session")
def tiny_sdxl_model(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny_sdxl")
    build_tiny_sdxl_pipeline(root).save_pretrained(root / "model")
    return root / "model"


@pytest.fixture(scope="session")
def tiny_sd_model(tmp_path_factory) -> Path:
    """Folder of a saved tiny checkpoint (model_index.json, unet/, vae/, ...)."""
    root = tmp_path_factory.mktemp("tiny_sd")
    build_tiny_sd_pipeline(root).save_pretrained(root / "model")
    return root / "model"
