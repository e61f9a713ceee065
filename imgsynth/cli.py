"""The `imgsynth` command. Heavy modules are imported inside the commands that need them."""

from __future__ import annotations

import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from imgsynth.core.errors import ImgsynthError, format_warnings_plainly
from imgsynth.generate.families import FAMILIES

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Make labeled image training data from YAML recipes.")
train_app = typer.Typer(no_args_is_help=True,
                        help=f"Train a generative model ({', '.join(FAMILIES)}).")
app.add_typer(train_app, name="train")

SetOption = Annotated[Optional[list[str]], typer.Option(
    "--set", help="Override a recipe key: dotted.key=value (repeatable).")]


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP: stop as Ctrl-C does (workers stopped, folder resumable)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextmanager
def _signals_interrupt():
    """While a run runs, SIGTERM and SIGHUP (a scheduler's stop, a closed terminal) raise
    Terminated in the main thread, so the run stops its workers and releases its folder,
    as on Ctrl-C; by default they would kill this process and leave the workers running."""
    def interrupt(signum, frame):
        raise Terminated(signum)

    wanted = [sig for sig in (signal.SIGTERM, getattr(signal, "SIGHUP", None)) if sig is not None]
    previous = {sig: signal.signal(sig, interrupt) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _fail(err: ImgsynthError, hint: str | None = None) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = Console(stderr=True, highlight=False, soft_wrap=True)
    console.print(f"[bold red]error:[/] {escape(str(err))}")
    if hint:
        console.print(escape(hint))
    raise typer.Exit(err.exit_code)


@app.command()
def run(recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
        # A string, not a Path: Path would fold the "//" of s3://bucket/prefix.
        out: Annotated[str, typer.Option("--out", "-o", help="Output folder (new or empty, or one to --resume), or a URL: s3://bucket/prefix, gs://..., file:///abs/path.")] = "out/run",
        seed: Annotated[Optional[int], typer.Option(help="Run seed (overrides the recipe's).")] = None,
        workers: Annotated[Optional[int], typer.Option(help="Worker processes.")] = None,
        count: Annotated[Optional[int], typer.Option(help="Number of samples.")] = None,
        set_: SetOption = None,
        resume: Annotated[bool, typer.Option(help="Complete an interrupted run in --out.")] = False,
        engine: Annotated[Optional[str], typer.Option(help="local or ray.")] = None,
        quiet: Annotated[bool, typer.Option(help="No progress output.")] = False) -> None:
    """Run a recipe and write images, manifest.jsonl, label files and preview.png."""
    from imgsynth.run import run_recipe

    try:
        with _signals_interrupt():
            summary = run_recipe(recipe, out, seed=seed, count=count, workers=workers, engine=engine,
                                 overrides=tuple(set_ or ()), resume=resume, quiet=quiet)
    except ImgsynthError as err:
        _fail(err, f"what was written is valid; finish with: imgsynth run {recipe} --out {out} --resume"
              if err.exit_code == 1 else None)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"interrupted ({signal.Signals(signum).name}): the workers are stopped and what was "
              f"written is valid; finish with imgsynth run {recipe} --out {out} --resume",
              file=sys.stderr)
        raise typer.Exit(128 + signum) from None
    if not quiet:
        skipped = sum(summary.skipped.values())
        extra = f", {skipped} skipped ({dict(summary.skipped)})" if skipped else ""
        extra += f", {summary.failed} failed (see errors.jsonl)" if summary.failed else ""
        formats = ", ".join(summary.formats) or "manifest only"
        print(f"wrote {summary.written} samples to {summary.out_dir}{extra} in {summary.seconds:.1f}s "
              f"[{formats}]", file=sys.stderr)


@app.command()
def validate(recipe: Annotated[Path, typer.Argument(help="Recipe YAML file.")],
             set_: SetOption = None) -> None:
    """Check a recipe (for run, or a training one for train) and print it resolved."""
    from imgsynth.recipes.load import dump_yaml, load_yaml
    from imgsynth.run import prepare, training_model

    try:
        model = training_model(load_yaml(recipe))
        if model:
            from imgsynth.generate.cli import load_train_recipe

            resolved = load_train_recipe(model, recipe, tuple(set_ or ())).model_dump(mode="json")
        else:
            _, resolved = prepare(recipe, overrides=tuple(set_ or ()))
    except ImgsynthError as err:
        _fail(err)
    print(dump_yaml(resolved), end="")
    print(f"{recipe}: valid" + (f" (a training recipe: imgsynth train {model} {recipe})" if model else ""),
          file=sys.stderr)


@app.command()
def preview(directory: Annotated[Path, typer.Argument(help="An imgsynth output folder.")],
            n: Annotated[int, typer.Option("--n", help="Samples on the sheet.")] = 16,
            out: Annotated[Optional[Path], typer.Option(help="PNG to write (default DIR/preview.png).")] = None) -> None:
    """Draw a contact sheet with boxes, masks, class names or text labels."""
    from imgsynth.preview import make_preview

    try:
        path = make_preview(directory, n=n, dest=out)
    except ImgsynthError as err:
        _fail(err)
    print(path)


@app.command()
def info() -> None:
    """Versions, devices, and where model weights are looked for."""
    from imgsynth.info import describe

    print(describe())


@app.command()
def init(directory: Annotated[Path, typer.Argument(help="Folder to make (or fill).")] = Path("."),
         force: Annotated[bool, typer.Option(help="Overwrite starter files that differ.")] = False) -> None:
    """Write the starter recipes and the sample assets they read into a folder."""
    import importlib.util

    from imgsynth.starter import write_starter

    try:
        written, same = write_starter(directory, force=force)
    except ImgsynthError as err:
        _fail(err)
    kept = f" ({len(same)} already there, unchanged)" if same else ""
    print(f"wrote {len(written)} files to {directory}: recipes/, sample_assets/{kept}", file=sys.stderr)
    print(f"next: cd {directory} && imgsynth run recipes/quickstart.yaml --out out/qs", file=sys.stderr)
    if importlib.util.find_spec("trdg") is None:
        from imgsynth.ocr.trdg_compat import TRDG_INSTALL

        print(f"note: the quickstart's text part needs trdg: {TRDG_INSTALL}", file=sys.stderr)


models_app = typer.Typer(no_args_is_help=True, help="Model weights: what is here, and fetching them with checksums.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list() -> None:
    """The model files imgsynth uses, where each is looked for, and which are present."""
    from imgsynth.models import inventory

    for name, state, where in inventory():
        print(f"{name:<20} {state}\n{'':<20} {where}")


@models_app.command("fetch")
def models_fetch(
        names: Annotated[list[str], typer.Argument(help="inception, torchvision:<arch>, a hub id <owner>/<name>, or a recipe (its hub models at their revisions).")],
        revision: Annotated[Optional[str], typer.Option(help="Hub revision (branch, tag or commit) for a hub id.")] = None,
        dir_: Annotated[Optional[Path], typer.Option("--dir", help="Put the files in this folder instead of where imgsynth looks by default (a hub model becomes a plain diffusers folder).")] = None,
        force: Annotated[bool, typer.Option(help="Fetch a file again even if it is present.")] = False) -> None:
    """Download model weights, check their checksums, and put them where imgsynth looks."""
    from imgsynth.core.errors import RecipeError
    from imgsynth.models import HubModel, WeightsFile, fetch_file, fetch_hub_model, resolve

    try:
        for name in names:
            found = resolve(name)
            if revision is not None and not isinstance(found, HubModel):
                raise RecipeError(f"--revision is for a hub id, not '{name}'",
                                  fix="drop --revision (a recipe pins each model's revision itself)")
            if isinstance(found, WeightsFile):
                spec = found.in_folder(dir_) if dir_ is not None else found
                path, what = fetch_file(spec, force=force, progress=_download_progress(spec.name))
                print(f"{spec.name}: {path} ({what})", file=sys.stderr)
                continue
            for model in found if isinstance(found, list) else [HubModel(found.repo_id, revision)]:
                path, what = fetch_hub_model(model, dir_)
                print(f"{model.repo_id}: {path} ({what})", file=sys.stderr)
    except ImgsynthError as err:
        _fail(err)


def _download_progress(name: str):
    """Percent done on one terminal line (nothing when stderr is not a terminal)."""
    if not sys.stderr.isatty():
        return None
    shown = [-1]

    def show(done: int, total: Optional[int]) -> None:
        percent = done * 100 // total if total else -1
        if percent != shown[0]:
            shown[0] = percent
            size = f"{done / 1e6:.1f}" + (f" of {total / 1e6:.1f} MB ({percent}%)" if total else " MB")
            print(f"\r{name}: {size}", end="", file=sys.stderr, flush=True)
            if total and done >= total:
                print(file=sys.stderr)
    return show


@app.command()
def reference() -> None:
    """Print the annotated reference of every recipe key (generated from the schema)."""
    from imgsynth.recipes.reference import render_reference

    print(render_reference(), end="")


def _train_command(kind: str):
    """`imgsynth train KIND`: one command per model family (imgsynth.generate.families)."""
    def train(recipe: Path, out: Annotated[Optional[Path], typer.Option("--out", "-o")] = None,
              resume: bool = False, set_: SetOption = None, quiet: bool = False) -> None:
        from imgsynth.generate.cli import train_command

        try:
            train_command(kind, recipe, out, resume, tuple(set_ or ()), quiet)
        except ImgsynthError as err:
            _fail(err)
    return train


for _family in FAMILIES.values():
    train_app.command(_family.name, help=_family.summary)(_train_command(_family.name))


@app.command()
def sample(checkpoint: Path,
           n: Annotated[int, typer.Option("--n", "--count", help="Images to sample.")] = 64,
           out: Annotated[Path, typer.Option("--out", "-o")] = Path("out/samples"),
           class_name: Annotated[Optional[str], typer.Option("--class", help="Only this class (conditional models).")] = None,
           seed: int = 0,
           formats: Annotated[str, typer.Option(help="Comma-separated label formats.")] = "imagefolder,csv,hf") -> None:
    """Sample a trained DCGAN/VAE checkpoint into a labeled data set."""
    from imgsynth.generate.cli import sample_command

    try:
        sample_command(checkpoint, n, out, class_name, seed, [f for f in formats.split(",") if f])
    except ImgsynthError as err:
        _fail(err)


@app.command("eval")
def eval_(real: Annotated[Path, typer.Option("--real", help="Real images: a folder, an imgsynth output, or a stats .npz from save-stats.")],
          fake: Annotated[Path, typer.Option("--fake", help="Folder of synthetic images (or an imgsynth output).")],
          out: Annotated[Path, typer.Option("--out", "-o", help="Report folder.")] = Path("out/report"),
          metrics: Annotated[str, typer.Option(help="Comma-separated: fid,is,kid,prdc,memorization,stats,tstr.")] = "fid,kid,prdc,memorization,stats",
          preset: Annotated[str, typer.Option(help="paper (TF-compatible resize) or clean (antialiased).")] = "clean",
          extractor: Annotated[str, typer.Option(help="inception, builtin, torchvision:<arch>, timm:<name>, dinov2:<variant>.")] = "inception",
          weights: Annotated[Optional[Path], typer.Option(help="Local weights file for the extractor.")] = None,
          device: Annotated[str, typer.Option(help="cpu, cuda, cuda:1, mps, or auto (cuda, then mps, then cpu).")] = "cpu",
          batch_size: Annotated[int, typer.Option(help="Images per feature batch.")] = 64,
          save_real_stats: Annotated[Optional[Path], typer.Option(help="Also save the real set's stats .npz here.")] = None,
          allow_download: Annotated[bool, typer.Option(help="Allow downloading extractor weights.")] = False,
          seed: int = 0) -> None:
    """Score synthetic images against real ones and write report.json + report.html."""
    from imgsynth.evaluate.cli import eval_command

    try:
        eval_command(real=real, fake=fake, metrics=[m for m in metrics.split(",") if m],
                     preset=preset, out=out, extractor=extractor, seed=seed, weights=weights,
                     device=device, batch_size=batch_size, save_real_stats=save_real_stats,
                     allow_download=allow_download)
    except ImgsynthError as err:
        _fail(err)


@app.command("save-stats")
def save_stats(images: Annotated[Path, typer.Argument(help="Folder of real images.")],
               out: Annotated[Path, typer.Option("--out", "-o", help="Stats .npz to write.")],
               extractor: str = "inception", preset: str = "clean",
               weights: Annotated[Optional[Path], typer.Option(help="Local weights file.")] = None,
               device: str = "cpu") -> None:
    """Encode a real image set once into FID stats (.npz), usable as `eval --real`."""
    from imgsynth.evaluate.cli import save_stats_command

    try:
        print(save_stats_command(images, out, extractor, preset, weights=weights, device=device))
    except ImgsynthError as err:
        _fail(err)


@app.command()
def studio(target: Annotated[Optional[Path], typer.Argument(help="A recipe YAML to edit while seeing its samples, or a folder to browse: an imgsynth output, a COCO/YOLO/VOC/ImageFolder data set, an eval report, or a folder holding several (default: the current folder).")] = None,
           port: Annotated[Optional[int], typer.Option(help="Port on 127.0.0.1 (default: the first free one from 8765; 0: any free port).")] = None) -> None:
    """A local web app: a recipe's samples as you edit it, and a browser of data sets."""
    from imgsynth.studio import serve

    try:
        serve(target, port)
    except ImgsynthError as err:
        _fail(err)


def main() -> None:
    format_warnings_plainly()
    app()


if __name__ == "__main__":
    main()
