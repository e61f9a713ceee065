"""imgsynth's diffuse source vs plain diffusers defaults, same checkpoint, same run.

GPU: a Stable Diffusion 1.5-architecture pipeline with random weights (no download),
512x512, 30 steps. Rows: plain `StableDiffusionPipeline` (float32, default attention),
imgsynth defaults (float16, SDPA, channels_last), + batch 8, + torch.compile.
Printed: images/s, UNet it/s (timed with CUDA events around UNet calls), peak GPU memory.
CPU (no GPU): the tiny test pipeline at 32x32 only, which says nothing about GPU speed.

    python benchmarks/diffusion.py [--images 16] [--threads 2] [--steps 30]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def sd15_random_pipeline(folder: Path):
    """SD 1.5's UNet/VAE/CLIP-L shapes with random weights and the tiny test tokenizer."""
    import torch
    from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from tests.generate.diffusion_fixtures import tiny_tokenizer

    tokenizer = tiny_tokenizer(folder)
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=64, cross_attention_dim=768, attention_head_dim=8, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512), latent_channels=4, layers_per_block=2, sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4)
    vocab = tokenizer.get_vocab()
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
        num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
        bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
        pad_token_id=vocab["<|endoftext|>"]))
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                              skip_prk_steps=True, steps_offset=1)
    return StableDiffusionPipeline(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


class UNetTimer:
    """Sums UNet forward time (CUDA events on GPU, wall clock on CPU)."""

    def __init__(self, unet, cuda: bool):
        import torch

        self.cuda, self.calls, self.pairs, self.wall = cuda, 0, [], 0.0
        self._torch = torch
        unet.register_forward_pre_hook(self._start)
        unet.register_forward_hook(self._stop)

    def _start(self, module, args):
        self.calls += 1
        if self.cuda:
            self.pairs.append([self._torch.cuda.Event(enable_timing=True), self._torch.cuda.Event(enable_timing=True)])
            self.pairs[-1][0].record()
        else:
            self._t0 = time.perf_counter()

    def _stop(self, module, args, output):
        if self.cuda:
            self.pairs[-1][1].record()
        else:
            self.wall += time.perf_counter() - self._t0

    def seconds(self) -> float:
        if self.cuda:
            self._torch.cuda.synchronize()
            return sum(a.elapsed_time(b) for a, b in self.pairs) / 1000.0
        return self.wall


def measure(name: str, make_images, unet, images: int, batch: int, steps: int, cuda: bool) -> dict:
    import torch

    make_images(list(range(batch)))  # warm-up (and compile) outside the timing
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    timer = UNetTimer(unet, cuda)
    t0 = time.perf_counter()
    for start in range(0, images, batch):
        make_images(list(range(start, min(start + batch, images))))
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    unet_steps = steps * images  # one UNet call per step covers the whole batch (CFG included)
    return {"name": name, "images_per_s": images / seconds, "unet_it_per_s": unet_steps / timer.seconds(),
            "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()

    import diffusers
    import torch

    from imgsynth.core.rng import sample_rng
    from imgsynth.core.stage import BuildContext
    from imgsynth.generate import diffusion
    from imgsynth.generate.diffusion_config import DiffuseConfig
    from tests.generate.diffusion_fixtures import build_tiny_sd_pipeline

    torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    side = 512 if cuda else 32
    print(f"torch {torch.__version__}, diffusers {diffusers.__version__}, torch threads {args.threads}, "
          f"device {torch.cuda.get_device_name() if cuda else 'cpu'}")
    if not cuda:
        print("no GPU: CPU mode runs the tiny test pipeline at 32x32 only (not SD 1.5)")
    prompts = ["a photo of a cat on a sofa", "a photo of a dog in a garden"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "model"
        (sd15_random_pipeline if cuda else build_tiny_sd_pipeline)(Path(tmp)).save_pretrained(folder)

        # Plain diffusers: float32, its default attention, one image per call.
        plain = diffusers.StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
        plain.set_progress_bar_config(disable=True)
        plain.to("cuda" if cuda else "cpu")

        def plain_images(indices):
            for i in indices:
                plain(prompts[i % 2], num_inference_steps=args.steps, width=side, height=side,
                      generator=torch.Generator("cpu").manual_seed(i), output_type="np")

        rows.append(measure("diffusers StableDiffusionPipeline fp32", plain_images, plain.unet,
                            args.images, 1, args.steps, cuda))
        del plain
        if cuda:
            torch.cuda.empty_cache()

        variants = [("imgsynth defaults", {})]
        if cuda:
            variants += [("imgsynth batch_size 8", {"batch_size": 8}),
                         ("imgsynth batch 8 + compile", {"batch_size": 8, "compile": True})]
        for name, extra in variants:
            config = DiffuseConfig(model=str(folder), labels=["cat", "dog"], images_per_class=args.images,
                                   prompts=["a photo of a {class}"], steps=args.steps, width=side,
                                   height=side, safety_checker="off", **extra)
            source = config.build(BuildContext())

            def imgsynth_images(indices, source=source):
                source.generate_batch(indices, [sample_rng(0, "diffuse", i) for i in indices])

            rows.append(measure(name, imgsynth_images, source.pipe.unet, args.images,
                                config.batch_size, args.steps, cuda))
            diffusion._MODELS.clear()
            del source
            if cuda:
                torch.cuda.empty_cache()

    base = rows[0]["images_per_s"]
    print(f"\n{args.images} images, {side}x{side}, {args.steps} steps, guidance 7.5 (UNet batch 2 per image)")
    print("UNet it/s counts one denoising step of one image (a batch-8 call counts 8)")
    print(f"{'variant':42s} {'images/s':>9s} {'UNet it/s':>10s} {'vs plain':>9s} {'peak GiB':>9s}")
    for r in rows:
        print(f"{r['name']:42s} {r['images_per_s']:9.3f} {r['unet_it_per_s']:10.2f} "
              f"{r['images_per_s'] / base:8.2f}x {r['peak_gib']:9.2f}")


if __name__ == "__main__":
    main()
