"""Stable Diffusion source and img2img stage on a tiny random-weight checkpoint, offline, CPU."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from imgsynth.cli import app
from imgsynth.core.errors import MissingModelError, RecipeError
from imgsynth.core.rng import sample_rng
from imgsynth.core.sample import Instance, Sample
from imgsynth.core.stage import BuildContext, SkipSample
from imgsynth.generate.diffusion_config import SCHEDULERS, DiffuseConfig, Img2ImgConfig
from imgsynth.io.image import decode_image, encode_image
from tests.conftest import tree_hashes
from tests.generate.diffusion_fixtures import tiny_sd_model, tiny_sdxl_model  # noqa: F401 - session fixtures

runner = CliRunner()


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The tiny UNet's ops are microseconds long: thread hand-offs cost more than they save."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _source(model: Path, **fields):
    config = DiffuseConfig(model=str(model), labels=["cat", "dog"], images_per_class=2, steps=3,
                           prompts=["a photo of a {class} {context}"],
                           slots={"context": ["on a sofa", "in a garden", ""]}, **fields)
    return config.build(BuildContext())


def _recipe(tmp_path: Path, model: Path, source_extra: str = "", extra: str = "") -> Path:
    path = tmp_path / "diffusion.yaml"
    path.write_text(f"""
seed: 7
source:
  type: diffuse
  model: {model}
  labels:
    cat: {{}}
    dog: {{text: small dog, negative_prompt: "cartoon"}}
  prompts: ["a photo of a {{class}} {{context}}"]
  slots: {{context: [on a sofa, in a garden]}}
  negative_prompt: blurry
  images_per_class: 2
  steps: 3
{source_extra}
output:
  formats: [imagefolder, csv]
  preview: false
{extra}""")
    return path


def test_every_listed_scheduler_exists_in_diffusers():
    import diffusers

    assert [name for name in SCHEDULERS if not hasattr(diffusers, name)] == []


def test_recipe_errors_name_the_key_and_the_fix():
    with pytest.raises(ValidationError, match="Did you mean 'EulerAncestralDiscreteScheduler'"):
        DiffuseConfig(model="m", labels=["cat"], scheduler="EulerAncestral")
    with pytest.raises(ValidationError, match=r"slot '\{context\}' but no values"):
        DiffuseConfig(model="m", labels=["cat"], prompts=["a {class} {context}"])
    with pytest.raises(ValidationError, match="keep_boxes with strength 0.8"):
        Img2ImgConfig(model="m", strength=0.8, keep_boxes=True)
    config = DiffuseConfig(model="m", labels=["cat", "dog", "bird"], images_per_class=4)
    assert (config.classes(), config.count()) == (["cat", "dog", "bird"], 12)


def test_run_writes_labeled_images_and_records_prompt_seed_model(tmp_path, tiny_sd_model):
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(_recipe(tmp_path, tiny_sd_model)), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["label"] for r in records] == ["cat", "cat", "dog", "dog"]
    for r in records:
        image = decode_image(out / r["image"])
        assert image.shape == (32, 32, 3) and image.std() > 0  # the checkpoint's native size, not blank
        meta = r["meta"]
        assert meta["model"] == str(tiny_sd_model) and len(meta["model_config_sha256"]) == 64
        assert meta["scheduler"] == "PNDMScheduler" and meta["steps"] == 3
        assert meta["prompt"] in {f"a photo of a {t} {c}" for t in ("cat", "small dog")
                                  for c in ("on a sofa", "in a garden")}
    assert records[0]["meta"]["negative_prompt"] == "blurry"
    assert records[2]["meta"]["negative_prompt"] == "cartoon"
    assert records[2]["meta"]["prompt"].startswith("a photo of a small dog")
    assert len({r["meta"]["seed"] for r in records}) == 4  # one seed per image
    assert sorted(p.name for p in (out / "imagefolder" / "dog").iterdir()) == ["00000003.png", "00000004.png"]
    assert "images/00000001.png,cat" in (out / "labels.csv").read_text()


def _documented_snippets() -> list[str]:
    """The Python blocks of docs/diffusion.md's 'Regenerating one image' section, as written."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "diffusion.md").read_text()
    section = text.split("### Regenerating one image", 1)[1].split("\n#", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    assert len(blocks) == 2  # imgsynth's regenerate, and the same in plain diffusers
    return blocks


def test_documented_regeneration_gives_the_runs_bytes_with_channels_last(tmp_path, tiny_sd_model,
                                                                       monkeypatch):
    """Both documented ways (imgsynth.generate.diffusion.regenerate and the plain-diffusers
    code), run as the docs write them, give every image's bytes under the default
    channels_last: true. The plain snippet used to leave the memory format out: 1 pixel of
    an image was 1 level off, since convolutions round differently in channels_last."""
    out = tmp_path / "out" / "diffusion"
    recipe = _recipe(tmp_path, tiny_sd_model)
    recipe.write_text(recipe.read_text().replace("images_per_class: 2", "images_per_class: 6"))
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    saved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert saved["source"]["channels_last"] is True
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(records) == 12
    monkeypatch.chdir(tmp_path)  # the snippets name the run folder out/diffusion
    for snippet in _documented_snippets():
        for record in records:
            code = re.sub(r"(?m)^index = \d+", f"index = {record['index']}", snippet)
            namespace: dict = {}
            exec(compile(code, "docs/diffusion.md", "exec"), namespace)  # noqa: S102 - the docs' own code
            pixels = namespace["pixels"]
            written = (out / record["image"]).read_bytes()
            png = encode_image(pixels, "png", png_deflate=saved["output"]["png_deflate"])
            assert png == written, (snippet.splitlines()[0], record["index"])


@pytest.mark.parametrize("batch_size, caller_threads", [(1, 2), (3, 1)])
def test_regenerate_uses_the_runs_threads_and_batches(tmp_path, tiny_sd_model, batch_size,
                                                      caller_threads):
    """On a CPU the torch thread count changes how convolutions add up (images of a 2-thread
    run were 1 level off in a pixel when made again with 1 thread), and a batch rounds
    unlike single images. A run makes samples with one torch thread whatever the caller set
    (as its worker processes do, so --workers cannot change the bytes); the manifest
    records both, and regenerate applies them, leaving the caller's thread count as it was."""
    import torch

    from imgsynth.generate.diffusion import regenerate

    out = tmp_path / "out"
    recipe = _recipe(tmp_path, tiny_sd_model, source_extra=f"  batch_size: {batch_size}")
    recipe.write_text(recipe.read_text().replace("images_per_class: 2", "images_per_class: 6"))
    torch.set_num_threads(caller_threads)
    try:
        result = runner.invoke(app, ["run", str(recipe), "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == caller_threads
        records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
        assert {r["meta"]["torch_threads"] for r in records} == {1}
        assert records[4]["meta"].get("batch", [4]) == ([3, 4, 5] if batch_size == 3 else [4])
        for record in records:
            assert np.array_equal(regenerate(out, record["index"]), decode_image(out / record["image"]))
        assert torch.get_num_threads() == caller_threads
    finally:
        torch.set_num_threads(1)


def test_batches_keep_seeds_and_prompts_and_regenerate_byte_exact(tiny_sd_model):
    source = _source(tiny_sd_model, batch_size=4)
    rngs = lambda: [sample_rng(3, "diffuse", i) for i in range(4)]  # noqa: E731
    batched = source.generate_batch(list(range(4)), rngs())
    alone = [source.generate(i, rng) for i, rng in enumerate(rngs())]
    for b, a in zip(batched, alone, strict=True):
        assert (b.label, b.meta["prompt"], b.meta["seed"]) == (a.label, a.meta["prompt"], a.meta["seed"])
        # Batched convolutions/GEMMs round differently from batch-1 ones on CPU: at most 1 level.
        assert np.abs(b.image.astype(int) - a.image.astype(int)).max() <= 1
    assert batched[0].meta["batch"] == [0, 1, 2, 3] and "batch" not in alone[0].meta
    again = source.generate_batch(list(range(4)), rngs())
    assert all(np.array_equal(x.image, y.image) for x, y in zip(batched, again, strict=True))


def test_safety_checker_flags_are_skipped_and_not_written(tmp_path, tiny_sd_model, monkeypatch):
    import torch

    import imgsynth.generate.diffusion as diffusion

    class FlagSecondImage(torch.nn.Module):
        """Stands in for StableDiffusionSafetyChecker: blacks out and flags its 2nd image."""

        calls = 0
        device, dtype = torch.device("cpu"), torch.float32  # what the pipeline asks its modules

        def forward(self, images, clip_input):
            flags = []
            for k in range(len(images)):
                FlagSecondImage.calls += 1
                flags.append(FlagSecondImage.calls == 2)
                if flags[-1]:
                    images[k] = 0
            return images, flags

    class FeatureExtractor:
        def __call__(self, images, return_tensors):
            return _Batch(torch.zeros(len(images), 3, 8, 8))

    class _Batch:
        def __init__(self, pixel_values):
            self.pixel_values = pixel_values

        def to(self, device):
            return self

    load = diffusion._load_pipeline

    def load_with_checker(*args, **kwargs):
        pipe = load(*args, **kwargs)
        pipe.safety_checker, pipe.feature_extractor = FlagSecondImage(), FeatureExtractor()
        return pipe

    monkeypatch.setattr(diffusion, "_load_pipeline", load_with_checker)
    monkeypatch.setattr(diffusion, "_MODELS", {})
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(_recipe(tmp_path, tiny_sd_model)), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (out / "images").iterdir()) == ["00000001.png", "00000003.png", "00000004.png"]
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    assert [(s["index"], s["skipped"]) for s in skipped] == [(1, "safety_checker")]
    assert "prompt 'a photo of a cat" in skipped[0]["detail"]


def test_missing_model_exits_2_with_the_fetch_command(tmp_path, tiny_sd_model):
    recipe = _recipe(tmp_path, tiny_sd_model)
    for model, expected in (("nobody-here/no-such-model", "hf download nobody-here/no-such-model"),
                            (str(tmp_path / "models" / "sd15"), "not found")):
        result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "out"), "--quiet",
                                     "--set", f"source.model={model}"])
        assert result.exit_code == 2, result.output
        assert model in result.output and expected in result.output
        assert not (tmp_path / "out" / "images").exists()
    with pytest.raises(MissingModelError, match="not a diffusers pipeline"):
        _source(tiny_sd_model.parent)  # a folder without model_index.json


def _missing_model_text(model: str, allow_download: bool = False) -> str:
    from imgsynth.generate.diffusion import resolve_model

    with pytest.raises(MissingModelError) as error:
        resolve_model(model, None, allow_download, key="source.model")
    return str(error.value)


def test_missing_model_message_says_only_what_is_true(tmp_path, monkeypatch):
    """Why a hub id was not found is what holds in this process: allow_download false, or
    HF_HUB_OFFLINE set, or the download failed (it said 'HF_HUB_OFFLINE is set' whenever
    allow_download was true, set or not)."""
    import diffusers

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    text = _missing_model_text("nobody-here/no-such-model")
    assert "allow_download is false" in text and "HF_HUB_OFFLINE" not in text.split("fix:")[0]
    text = _missing_model_text("nobody-here/no-such-model", allow_download=True)
    assert "HF_HUB_OFFLINE=1 is set" in text

    def no_network(*args, **kwargs):
        raise OSError("Couldn't connect to 'https://huggingface.co'")

    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(diffusers.DiffusionPipeline, "download", no_network)
    text = _missing_model_text("nobody-here/no-such-model", allow_download=True)
    assert "HF_HUB_OFFLINE" not in text
    assert "the download failed: OSError: Couldn't connect to 'https://huggingface.co'" in text
    assert "hf download nobody-here/no-such-model" in text


def test_missing_model_fix_fits_a_folder_path_or_a_hub_id(tmp_path, monkeypatch):
    """A value that reads as a folder gets where to put the files, never `hf download
    <the folder>`; a hub id gets the hf command."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    (tmp_path / "checkpoints").mkdir()
    for model in ("models/sd15", "./models/sd15", "checkpoints/sd15", "sd15", str(tmp_path / "w" / "sd15")):
        text = _missing_model_text(model)
        absolute = str((tmp_path / model.removeprefix("./")).absolute())
        assert f"model folder '{model}' not found" in text, text
        assert f"at {absolute}" in text and "model_index.json" in text
        assert f"hf download {model}" not in text and "hf download ./" not in text
        assert f"--local-dir {model}" in text  # how to fill that folder from the hub
    text = _missing_model_text("stabilityai/sdxl-turbo")
    assert "hub model 'stabilityai/sdxl-turbo' is not in the local Hugging Face cache" in text
    assert "hf download stabilityai/sdxl-turbo --local-dir models/sdxl-turbo" in text


@pytest.mark.parametrize("written, canonical", [
    ("off", "off"), ("no", "off"), ("false", "off"), ("'off'", "off"), ("'no'", "off"), ("'false'", "off"),
    ("default", "default"), ("on", "default"), ("true", "default"), ("'yes'", "default")])
def test_safety_checker_accepts_yaml_booleans(written, canonical):
    """`safety_checker: off` unquoted is YAML false; it was refused. Booleans and their
    spellings map to the two values, and the saved recipe records the canonical one."""
    value = yaml.safe_load(f"safety_checker: {written}")["safety_checker"]
    config = DiffuseConfig(model="m", labels=["cat"], safety_checker=value)
    assert config.safety_checker == canonical
    assert config.model_dump(mode="json")["safety_checker"] == canonical
    with pytest.raises(ValidationError, match="safety_checker"):
        DiffuseConfig(model="m", labels=["cat"], safety_checker="maybe")


def test_quiet_run_prints_nothing_of_diffusers(tmp_path, tiny_sd_model, capfd, monkeypatch):
    """--quiet printed diffusers' and transformers' loading bars ('Loading pipeline
    components...', 'Loading weights'); a run shows its own progress, so theirs are off
    while imgsynth loads a model (and back as they were after). The recipe's unquoted
    `safety_checker: off` also leaves out diffusers' note about a disabled checker."""
    from diffusers.utils import logging as diffusers_logging

    from imgsynth.generate import diffusion

    monkeypatch.setattr(diffusion, "_MODELS", {})  # load the model in this run
    capfd.readouterr()
    out = tmp_path / "out"
    recipe = _recipe(tmp_path, tiny_sd_model, source_extra="  safety_checker: off")
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    printed = capfd.readouterr()
    assert (result.output, printed.out, printed.err) == ("", "", "")
    assert "safety_checker: 'off'" in (out / "recipe.yaml").read_text()
    assert diffusers_logging.is_progress_bar_enabled()


def test_missing_model_fails_in_a_second_without_loading_diffusers(tmp_path):
    """The shipped recipe before its model is placed: exit 2 and the fix, without diffusers' ~8 s import."""
    recipe = Path(__file__).resolve().parents[2] / "recipes" / "diffusion.yaml"
    code = ("import sys\nfrom imgsynth.cli import main\n"
            f"sys.argv = ['imgsynth', 'run', {str(recipe)!r}, '--out', 'out', '--quiet']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n"
            "    print('exit', exc.code, 'diffusers' in sys.modules, 'torch' in sys.modules)\n")
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.stdout.strip() == "exit 2 False False", done.stdout + done.stderr
    assert "source.model" in done.stderr and "model_index.json" in done.stderr
    assert "--local-dir models/stable-diffusion-v1-5" in done.stderr
    assert not (tmp_path / "out").exists()


def test_bad_scheduler_name_exits_2(tmp_path, tiny_sd_model):
    recipe = _recipe(tmp_path, tiny_sd_model, source_extra="  scheduler: DPMSolverMultistep")
    result = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "source.scheduler" in result.output and "DPMSolverMultistepScheduler" in result.output


def test_scheduler_by_name_changes_images_and_is_recorded(tiny_sd_model):
    default, euler = _source(tiny_sd_model), _source(tiny_sd_model, scheduler="EulerDiscreteScheduler")
    a, b = default.generate(0, sample_rng(0, "diffuse", 0)), euler.generate(0, sample_rng(0, "diffuse", 0))
    assert (a.meta["scheduler"], b.meta["scheduler"]) == ("PNDMScheduler", "EulerDiscreteScheduler")
    assert a.meta["seed"] == b.meta["seed"] and not np.array_equal(a.image, b.image)


def _labeled_sample(image: np.ndarray) -> Sample:
    box = Instance("cat", (4.0, 6.0, 20.0, 18.0))
    return Sample(index=0, image=image, instances=[box], label="cat", meta={"source": "real"})


def test_img2img_keeps_size_label_and_drops_boxes_unless_asked(tiny_sd_model):
    image = np.random.default_rng(0).integers(0, 255, (30, 22, 3), dtype=np.uint8)  # not a multiple of 8
    stage = Img2ImgConfig(model=str(tiny_sd_model), steps=4, strength=0.5).build(BuildContext())
    out = stage.apply(_labeled_sample(image), sample_rng(0, "0.diffuse_img2img", 0))
    assert out.image.shape == (30, 22, 3) and out.label == "cat" and out.instances == []
    assert not np.array_equal(out.image, image)
    assert out.meta["source"] == "real" and out.meta["diffuse_img2img"]["prompt"] == "a photo of a cat"
    again = stage.apply(_labeled_sample(image), sample_rng(0, "0.diffuse_img2img", 0))
    assert np.array_equal(out.image, again.image)

    keep = Img2ImgConfig(model=str(tiny_sd_model), steps=4, strength=0.25, keep_boxes=True).build(BuildContext())
    gray = keep.apply(_labeled_sample(image[:, :, :1]), sample_rng(0, "0.diffuse_img2img", 0))
    assert gray.image.shape == (30, 22, 1)
    assert [i.bbox_xyxy for i in gray.instances] == [(4.0, 6.0, 20.0, 18.0)]


def test_filtered_img2img_sample_is_skipped(tiny_sd_model):
    stage = Img2ImgConfig(model=str(tiny_sd_model), steps=2, strength=0.5).build(BuildContext())

    # What StableDiffusionPipeline's checker does with a flagged image: black it out and say so.
    stage.pipe.run_safety_checker = lambda image, device, dtype: (image * 0, [True])
    with pytest.raises(SkipSample) as skip:
        stage.apply(_labeled_sample(np.zeros((16, 16, 3), np.uint8)), sample_rng(0, "s", 0))
    assert skip.value.reason == "safety_checker"


def test_img2img_run_on_a_real_coco_set_keeps_boxes_at_low_strength(tmp_path, tiny_sd_model, coco_dataset):
    recipe = tmp_path / "img2img.yaml"
    recipe.write_text(f"""
seed: 2
source: {{type: dataset, path: {coco_dataset}}}
stages:
  - type: diffuse_img2img
    model: {tiny_sd_model}
    prompts: ["a photo of {{class}}, {{weather}}"]
    slots: {{weather: [sunny, foggy]}}
    strength: 0.25
    steps: 4
    keep_boxes: true
output: {{formats: [coco], preview: false}}
""")
    out = tmp_path / "out"
    result = runner.invoke(app, ["run", str(recipe), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    before = json.loads((coco_dataset / "annotations.json").read_text())
    after = json.loads((out / "annotations.json").read_text())
    assert [a["bbox"] for a in after["annotations"]] == [a["bbox"] for a in before["annotations"]]
    record = json.loads((out / "manifest.jsonl").read_text().splitlines()[0])
    assert record["meta"]["diffuse_img2img"]["prompt"] in {"a photo of disk, sunny", "a photo of disk, foggy"}
    original = decode_image(coco_dataset / "images" / "img000.png")
    assert decode_image(out / record["image"]).shape == original.shape
    assert not np.array_equal(decode_image(out / record["image"]), original)


def test_engine_batches_a_run_with_the_same_seeds_and_prompts(tmp_path, tiny_sd_model):
    outs = {}
    for batch in (1, 4):
        out = tmp_path / f"b{batch}"
        recipe = _recipe(tmp_path, tiny_sd_model, source_extra=f"  batch_size: {batch}")
        result = runner.invoke(app, ["run", str(recipe), "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        outs[batch] = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert outs[4][0]["meta"]["batch"] == [0, 1, 2, 3]  # the engine really grouped them
    for alone, grouped in zip(outs[1], outs[4], strict=True):
        assert alone["meta"]["seed"] == grouped["meta"]["seed"]
        assert alone["meta"]["prompt"] == grouped["meta"]["prompt"]
        assert alone["label"] == grouped["label"]
        a = decode_image(tmp_path / "b1" / alone["image"]).astype(int)
        b = decode_image(tmp_path / "b4" / grouped["image"]).astype(int)
        assert abs(a - b).max() <= 1


def test_an_sdxl_class_checkpoint_generates_and_varies_labeled_images(tiny_sdxl_model):
    """Two text encoders and text_time conditioning, through the same AutoPipeline path."""
    source = _source(tiny_sdxl_model)
    assert type(source.pipe).__name__ == "StableDiffusionXLPipeline"
    first = source.generate(0, sample_rng(0, "diffuse", 0))
    again = source.generate(0, sample_rng(0, "diffuse", 0))
    assert first.image.shape == (32, 32, 3) and first.label == "cat"
    assert np.array_equal(first.image, again.image) and first.meta["scheduler"] == "EulerDiscreteScheduler"
    stage = Img2ImgConfig(model=str(tiny_sdxl_model), steps=4, strength=0.5).build(BuildContext())
    assert type(stage.pipe).__name__ == "StableDiffusionXLImg2ImgPipeline"
    varied = stage.apply(first, sample_rng(0, "0.diffuse_img2img", 0))
    assert varied.label == "cat" and varied.image.shape == (32, 32, 3)
    assert not np.array_equal(varied.image, first.image)


def test_a_multi_process_run_frees_the_drivers_model_for_its_workers(tmp_path, tiny_sd_model):
    """The driver loads the model only to check the recipe; with workers it lets it go (on a
    GPU, its copy would take the memory the workers' copies need) and the files are the same."""
    from imgsynth.generate import diffusion

    recipe = _recipe(tmp_path, tiny_sd_model)
    one = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "one"), "--quiet"])
    assert one.exit_code == 0 and diffusion._MODELS  # in-process: the model serves the run
    two = runner.invoke(app, ["run", str(recipe), "--out", str(tmp_path / "two"), "--quiet", "--workers", "2"])
    assert two.exit_code == 0, two.output
    assert not diffusion._MODELS
    assert tree_hashes(tmp_path / "one") == tree_hashes(tmp_path / "two")


def test_a_device_this_machine_lacks_is_a_recipe_error_naming_the_key(tiny_sd_model, monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RecipeError) as err:
        _source(tiny_sd_model, device="cuda")
    assert err.value.key == "source.device"
    assert "device 'cuda' is not available on this machine" in str(err.value)
    with pytest.raises(RecipeError) as err:
        Img2ImgConfig(model=str(tiny_sd_model), device="cuda").build(BuildContext())
    assert err.value.key == "stages.diffuse_img2img.device"
