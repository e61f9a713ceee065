"""`imgsynth train dcgan|vae` and `imgsynth sample`, as plain functions the CLI calls.

User errors are RecipeError/InputError (the CLI prints them and exits 2).
"""

from __future__ import annotations

import sys
from pathlib import Path

from imgsynth.core.errors import RecipeError
from imgsynth.generate.config import TrainConfigBase
from imgsynth.generate.families import FAMILIES
from imgsynth.recipes.load import apply_overrides, load_yaml, validate_model


def load_train_recipe(kind: str, recipe_path: str | Path,
                      overrides: tuple[str, ...] | list[str] = ()) -> TrainConfigBase:
    """Training recipe YAML + `--set` overrides -> the typed config of `kind`."""
    if kind not in FAMILIES:
        raise RecipeError(f"unknown model '{kind}'", fix=f"use one of: {', '.join(FAMILIES)}")
    data = apply_overrides(load_yaml(recipe_path), list(overrides))
    if data.get("model", kind) != kind:
        raise RecipeError(f"this is a '{data['model']}' recipe", key="model", file=str(recipe_path),
                          fix=f"run `imgsynth train {data['model']} {recipe_path}`")
    return validate_model(FAMILIES[kind].config_class(), data, file=str(recipe_path))


def train_command(kind: str, recipe_path: str | Path, out: str | Path | None = None,
                  resume: bool = False, overrides: tuple[str, ...] | list[str] = (),
                  quiet: bool = False):
    """Train (or --resume) a model; output goes to --out (default runs/<recipe name>)."""
    from imgsynth.generate.train import train

    recipe_path = Path(recipe_path)
    cfg = load_train_recipe(kind, recipe_path, overrides)
    out_dir = Path(out) if out is not None else Path("runs") / recipe_path.stem
    log = (lambda _: None) if quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = train(kind, cfg, out_dir, resume=resume, log=log)
    log(f"trained to step {result.step}; checkpoints in {out_dir / 'checkpoints'}, grids in "
        f"{out_dir / 'grids'}; sample with: imgsynth sample {out_dir / 'checkpoints' / 'best.pt'} "
        f"--n 1000 --out DIR")
    return result


def sample_command(checkpoint: str | Path, n: int, out: str | Path, class_name: str | None = None,
                   seed: int = 0, formats: list[str] | tuple[str, ...] = ("imagefolder", "csv", "hf"),
                   quiet: bool = False):
    """Sample n labeled images into `out` through `imgsynth run` with a gan_sample source:
    images/, manifest.jsonl (with each image's latent seed), the label formats, recipe.yaml."""
    from imgsynth.generate.gan_source import chosen_classes, load_sampler
    from imgsynth.run import run_recipe

    if n < 1:
        raise RecipeError(f"--n must be at least 1, got {n}")
    checkpoint = Path(checkpoint).resolve()
    # Checked here so a wrong --class is reported as the option, not as a recipe key.
    chosen_classes(load_sampler(checkpoint), [class_name] if class_name else None, "--class")
    recipe = {"seed": seed, "count": n,
              "source": {"type": "gan_sample", "checkpoint": str(checkpoint),
                         "sample_classes": [class_name] if class_name else None},
              "output": {"formats": list(formats)}}
    summary = run_recipe(recipe, out, quiet=quiet)
    if not quiet:
        print(f"wrote {summary.written} samples to {summary.out_dir} "
              f"[{', '.join(summary.formats) or 'manifest only'}]", file=sys.stderr)
    return summary
