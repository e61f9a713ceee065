"""imgsynth as pip installs it: the sdist and wheel `python -m build` makes (built here with the
same setuptools hooks, sdist first, wheel from the sdist), installed with --no-deps into a fresh
venv that sees this venv's packages, then `imgsynth init` + the quickstart in an empty folder
outside the repository. Also `imgsynth init` itself, and what the pip path says when trdg is
missing."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

import imgsynth
from imgsynth.cli import app
from imgsynth.ocr.trdg_compat import TRDG_INSTALL

ROOT = Path(__file__).resolve().parents[1]
STARTER = ("recipes", "sample_assets")
WHEEL_LIMIT_BYTES = 5_000_000  # 3.3 MB measured: code, recipes, sample assets and fonts
BUILD_HOOK = "import sys; from setuptools import build_meta as b; print(getattr(b, sys.argv[1])(sys.argv[2]))"
runner = CliRunner()


def _repo_starter_files(root: Path = ROOT) -> dict[str, bytes]:
    files = {}
    for folder in STARTER:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts:
                files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _run(cmd: list, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{cmd} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def _build(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(sources, sdist, wheel), built from a copy of the sources (the checkout is shared: no
    build/ or egg-info written into it, and files others change meanwhile do not matter)."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for name in ("imgsynth", *STARTER):  # imgsynth/starter links to the two folders beside it
        shutil.copytree(ROOT / name, src / name, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = tmp_path / "dist"
    sdist = dist / _run([sys.executable, "-c", BUILD_HOOK, "build_sdist", dist], src).stdout.split()[-1]
    with tarfile.open(sdist) as archive:
        safe = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        archive.extractall(tmp_path / "unpacked", **safe)
    unpacked = tmp_path / "unpacked" / sdist.name.removesuffix(".tar.gz")
    wheel = dist / _run([sys.executable, "-c", BUILD_HOOK, "build_wheel", dist], unpacked).stdout.split()[-1]
    return src, sdist, wheel


def _project() -> dict:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_the_wheel_installs_and_init_plus_quickstart_run_outside_the_repository(tmp_path):
    src, sdist, wheel = _build(tmp_path)

    # 1. What the wheel says and holds.
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = f"imgsynth-{imgsynth.__version__}.dist-info"
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert wheel.stat().st_size < WHEEL_LIMIT_BYTES, f"{wheel.stat().st_size:,} bytes"
    project = _project()
    assert re.search(r"^Name: imgsynth$", metadata, re.M)
    assert re.search(rf"^Version: {re.escape(imgsynth.__version__)}$", metadata, re.M)
    assert re.search(r"^License-Expression: MIT$", metadata, re.M)
    assert re.search(rf"^Requires-Python: {re.escape(project['requires-python'])}$", metadata, re.M)
    requires = set(re.findall(r"^Requires-Dist: (.+)$", metadata, re.M))
    assert set(project["dependencies"]) <= requires
    assert set(re.findall(r"^Provides-Extra: (.+)$", metadata, re.M)) == set(project["optional-dependencies"])
    assert 'torch-fidelity>=0.3; extra == "eval"' in requires
    assert re.search(r"^imgsynth = imgsynth\.cli:main$", entry_points, re.M)
    modules = {n for n in names if n.endswith(".py") and not n.startswith("imgsynth/starter/sample_assets/")}
    assert modules == {p.relative_to(src).as_posix() for p in (src / "imgsynth").rglob("*.py")}
    shipped = {n.removeprefix("imgsynth/starter/") for n in names if n.startswith("imgsynth/starter/")}
    assert shipped - {"__init__.py"} == set(_repo_starter_files(src))
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    with tarfile.open(sdist) as archive:
        assert any(n.endswith("imgsynth/starter/recipes/quickstart.yaml") for n in archive.getnames())

    # 2. A fresh venv: the wheel alone (--no-deps), the rest seen from this venv's
    # site-packages through a .pth file (its lines are plain paths: this venv's editable
    # imgsynth is not loaded, since .pth files in that folder are not read).
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], tmp_path)
    python = venv / "bin" / "python"
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
          "--no-index", wheel], tmp_path)
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     tmp_path).stdout.strip())
    (site / "zz_dev_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    work = tmp_path / "work"
    work.mkdir()
    where = _run([python, "-c", "import imgsynth; print(imgsynth.__file__)"], work, env).stdout.strip()
    assert Path(where).is_relative_to(venv), where

    # 3. What the README's pip path runs.
    imgsynth_command = venv / "bin" / "imgsynth"
    _run([imgsynth_command, "init", "demo"], work, env)
    assert _tree(work / "demo") == _repo_starter_files(src)
    _run([imgsynth_command, "run", "recipes/quickstart.yaml", "--out", "out/qs", "--quiet"], work / "demo", env)
    out = work / "demo" / "out" / "qs"
    counts = {part: len((out / part / "manifest.jsonl").read_text().splitlines())
              for part in ("augmented", "scenes", "text")}
    assert counts == {"augmented": 24, "scenes": 16, "text": 16}
    assert (out / "augmented" / "annotations.json").is_file() and (out / "scenes" / "data.yaml").is_file()
    assert len((out / "text" / "gt.txt").read_text(encoding="utf-8").splitlines()) == 16
    assert (out / "text" / "lmdb").is_dir()  # the ocr extra's lmdb, through the .pth
    assert (out / "preview.png").is_file()


def test_the_starter_folders_are_the_repositorys_own():
    """One copy of the recipes and assets: the package's starter folders are links to them."""
    for folder in STARTER:
        assert (ROOT / "imgsynth" / "starter" / folder).resolve() == (ROOT / folder).resolve()


def test_init_writes_the_starter_files_and_never_overwrites_without_force(tmp_path):
    demo = tmp_path / "demo"
    result = runner.invoke(app, ["init", str(demo)])
    assert result.exit_code == 0, result.output
    assert _tree(demo) == _repo_starter_files()
    assert "imgsynth run recipes/quickstart.yaml" in result.output

    again = runner.invoke(app, ["init", str(demo)])  # same bytes: nothing to overwrite
    assert again.exit_code == 0 and "already there, unchanged" in again.output

    (demo / "recipes" / "quickstart.yaml").write_text("seed: 7\n")
    (demo / "recipes" / "ocr.yaml").unlink()
    refused = runner.invoke(app, ["init", str(demo)])
    assert refused.exit_code == 2, refused.output
    assert str(demo / "recipes" / "quickstart.yaml") in refused.output and "--force" in refused.output
    assert (demo / "recipes" / "quickstart.yaml").read_text() == "seed: 7\n"
    assert not (demo / "recipes" / "ocr.yaml").exists()  # refused before writing anything

    forced = runner.invoke(app, ["init", str(demo), "--force"])
    assert forced.exit_code == 0, forced.output
    assert _tree(demo) == _repo_starter_files()


def test_init_into_a_file_is_refused(tmp_path):
    (tmp_path / "taken").write_text("x")
    result = runner.invoke(app, ["init", str(tmp_path / "taken")])
    assert result.exit_code == 2 and "is not a folder" in result.output


@pytest.mark.parametrize("command", [["run", "recipes/ocr.yaml", "--out", "{out}", "--count", "2", "--workers", "1"],
                                     ["info"]])
def test_without_trdg_the_ocr_source_and_info_say_what_to_install(tmp_path, command):
    """As after `pip install imgsynth` alone: trdg cannot be imported."""
    out = tmp_path / "out"
    argv = [a.replace("{out}", str(out)) for a in command]
    code = ("import sys; sys.modules['trdg'] = None\n"
            f"sys.argv = ['imgsynth', *{argv!r}]\n"
            "from imgsynth.cli import main\nmain()\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    text = done.stdout + done.stderr
    assert TRDG_INSTALL == "pip install 'imgsynth[ocr]' && pip install --no-deps trdg==1.8.0"
    assert TRDG_INSTALL in text, text
    assert "Traceback" not in text
    if command[0] == "run":
        assert done.returncode == 2 and "trdg is not installed" in text
        assert not out.exists()
    else:
        assert done.returncode == 0
