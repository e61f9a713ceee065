"""Faults around a run: full disk, out of memory, concurrent runs, planted symlinks, leftovers
of killed runs, signals, absurd counts, YAML bombs, outputs inside inputs, unwritable class
names. Each case ends in the files an uninterrupted run writes, or a clear message and exit
code, never in a folder that silently lost or mixed samples."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from imgsynth.cli import app
from imgsynth.core.errors import EnvironmentFault, RecipeError
from imgsynth.io.atomic import atomic_write_bytes, atomic_writer
from imgsynth.io.image import encode_image
from imgsynth.io.lock import LOCK_NAME, OutputLock
from imgsynth.io.store import LocalStore
from imgsynth.run import run_recipe
from tests.conftest import make_coco_dataset, tree_hashes, write_recipe

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def _cli(*args: str):
    return runner.invoke(app, list(args))


def _recipe(tmp_path: Path, data: Path, extra: str = "", name: str = "r.yaml") -> Path:
    return write_recipe(tmp_path / name, f"""
seed: 3
source:
  type: dataset
  path: {data}
  copies: 4
stages:
  - type: augment
    transforms:
      - {{name: HorizontalFlip, p: 0.5}}
      - {{name: imgsynth.GaussianNoise, sigma: [2, 8], p: 0.5}}
output:
  formats: [coco, yolo]
  preview: false
{extra}""")


def _subprocess_run(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "imgsynth.cli", "run", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=240, **kwargs)


def _no_error_records(out: Path) -> bool:
    lines = [json.loads(line) for p in (out / ".imgsynth" / "chunks").glob("*.jsonl")
             for line in p.read_text().splitlines() if line]
    return not (out / "errors.jsonl").exists() and not any("error" in r or "skipped" in r for r in lines)


# ------------------------------------------------------------- environment faults

@pytest.mark.parametrize("code, name", [(errno.ENOSPC, "ENOSPC"), (errno.EROFS, "EROFS"),
                                        (errno.EIO, "EIO"), (errno.EDQUOT, "EDQUOT")])
def test_full_disk_under_on_error_skip_stops_the_run_and_resume_loses_nothing(tmp_path, coco_dataset,
                                                                               monkeypatch, code, name):
    """Before: each failed image write was a per-sample error under on_error: skip, and the
    resume exited 0 with those samples missing for good. The same for a folder turned
    read-only, an I/O error or a quota."""
    recipe = _recipe(tmp_path, coco_dataset, "on_error: skip\n")
    reference = tmp_path / "reference"
    run_recipe(recipe, reference, quiet=True)

    out = tmp_path / "out"
    real_write = LocalStore.write_bytes
    calls = {"n": 0}

    def write_until_full(self, rel, data):
        calls["n"] += 1
        if calls["n"] > 7:
            raise OSError(code, os.strerror(code), str(self.local_path / rel))
        real_write(self, rel, data)

    monkeypatch.setattr(LocalStore, "write_bytes", write_until_full)
    with pytest.raises(EnvironmentFault) as caught:
        run_recipe(recipe, out, quiet=True)
    assert caught.value.exit_code == 1 and f"({name})" in str(caught.value)
    assert _no_error_records(out)

    monkeypatch.setattr(LocalStore, "write_bytes", real_write)
    summary = run_recipe(recipe, out, resume=True, quiet=True)
    assert summary.written == 24 and summary.failed == 0
    assert tree_hashes(out) == tree_hashes(reference)


def test_full_disk_on_a_real_small_filesystem(tmp_path):
    """The issue's reproduction: a 5 MB tmpfs, then the disk grows and --resume completes."""
    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        args = ["recipes/compose.yaml", "--count", "40", "--set", "on_error=skip", "--quiet"]
        first = _subprocess_run(*args, "--out", str(small / "d"))
        assert first.returncode == 1, first.stderr
        assert "No space left on device (ENOSPC)" in first.stderr and "--resume" in first.stderr
        subprocess.run(["mount", "-o", "remount,size=60m", str(small)], check=True)
        resumed = _subprocess_run(*args, "--out", str(small / "d"), "--resume")
        assert resumed.returncode == 0, resumed.stderr
        reference = _subprocess_run(*args, "--out", str(tmp_path / "ref"))
        assert reference.returncode == 0
        assert tree_hashes(small / "d") == tree_hashes(tmp_path / "ref")
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)


def test_out_of_memory_while_encoding_stops_the_run_instead_of_failing_the_sample(
        tmp_path, coco_dataset, monkeypatch):
    import imgsynth.engine.pipeline as pipeline

    recipe = _recipe(tmp_path, coco_dataset, "on_error: skip\n")
    real = pipeline.encode_image
    calls = {"n": 0}

    def encode(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 5:
            raise MemoryError()
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "encode_image", encode)
    with pytest.raises(EnvironmentFault, match="out of memory"):
        run_recipe(recipe, tmp_path / "out", quiet=True)
    assert _no_error_records(tmp_path / "out")


def _limited_memory():
    """A child process that can map 8 GiB at most: allocations past that fail at once,
    whatever the machine's overcommit policy (nothing is really allocated)."""
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))


_LIMITED_ENV = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")  # thread stacks fit


@pytest.mark.parametrize("fuse", ["true", "false"])
def test_opencv_out_of_memory_in_a_stage_stops_the_run_instead_of_failing_the_sample(tmp_path, coco_dataset,
                                                                                      fuse):
    """OpenCV reports a failed allocation as cv2.error (-4:Insufficient memory), not as a
    MemoryError: it was recorded as that sample's error (skipped under on_error: skip) and
    the run went on, where an environment fault must stop it resumably. Unfused, the error
    reaches the run inside the message that names the transform."""
    recipe = write_recipe(tmp_path / "r.yaml", f"""
seed: 3
source: {{type: dataset, path: {coco_dataset}}}
stages:
  - type: augment
    fuse: {fuse}
    transforms: [{{name: Resize, height: 70000, width: 70000}}]
output: {{formats: [coco], preview: false}}
on_error: skip
""")
    done = subprocess.run([sys.executable, "-m", "imgsynth.cli", "run", str(recipe), "--out", str(tmp_path / "out"),
                           "--workers", "1"], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          preexec_fn=_limited_memory, env=_LIMITED_ENV)
    assert done.returncode == 1, done.stderr
    assert "out of memory" in done.stderr and "--resume" in done.stderr
    assert _no_error_records(tmp_path / "out")


def test_torch_out_of_memory_is_an_environment_fault():
    """torch's CPU allocator raises RuntimeError ("can't allocate memory"), its GPU one
    torch.OutOfMemoryError: both are the machine's, not the sample's."""
    code = ("import torch\n"
            "from imgsynth.core.errors import EnvironmentFault, environment_cause\n"
            "try:\n"
            "    torch.empty(1 << 34, dtype=torch.uint8)\n"
            "except RuntimeError as exc:\n"
            "    fault = EnvironmentFault.of(exc)\n"
            "    print(environment_cause(exc) is exc, repr(str(fault)))\n"
            "print(environment_cause(torch.OutOfMemoryError('CUDA out of memory')) is not None)\n"
            "print(environment_cause(RuntimeError('shape mismatch')))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          preexec_fn=_limited_memory, env=_LIMITED_ENV)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("True ") and "out of memory" in lines[0] and "--resume" in lines[0]
    assert lines[1:] == ["True", "None"]


def test_a_full_disk_while_writing_labels_is_a_resumable_exit_1(tmp_path, coco_dataset, monkeypatch):
    import imgsynth.io.writers.coco as coco

    recipe = _recipe(tmp_path, coco_dataset)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", "annotations.json")

    monkeypatch.setattr(coco, "write_coco", full)  # the registry resolves it at lookup
    result = _cli("run", str(recipe), "--out", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 1, result.output
    assert "ENOSPC" in result.output and "--resume" in result.output
    assert "Traceback" not in result.output


def test_an_interrupt_while_writing_labels_leaves_a_folder_resume_completes(tmp_path, coco_dataset,
                                                                            monkeypatch):
    """Ctrl-C or SIGTERM (the CLI raises it as an interrupt) in the middle of finalize: the
    label file being written stays a temporary, and --resume writes the same tree as an
    uninterrupted run."""
    import imgsynth.io.writers.yolo as yolo

    recipe = _recipe(tmp_path, coco_dataset)
    run_recipe(recipe, tmp_path / "reference", quiet=True)
    real = yolo.atomic_write_text
    calls = {"n": 0}

    def interrupted(path, text):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        real(path, text)

    monkeypatch.setattr(yolo, "atomic_write_text", interrupted)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, out, quiet=True)
    assert not (out / LOCK_NAME).exists() and not (out / "data.yaml").exists()
    monkeypatch.setattr(yolo, "atomic_write_text", real)
    run_recipe(recipe, out, resume=True, quiet=True)
    assert tree_hashes(out) == tree_hashes(tmp_path / "reference")


# ------------------------------------------------------------- one run per folder

def test_a_second_run_into_a_locked_folder_exits_2_naming_the_holder(tmp_path, coco_dataset):
    recipe = _recipe(tmp_path, coco_dataset)
    out = tmp_path / "out"
    holder = OutputLock(out)
    holder.acquire()
    try:
        for extra in ([], ["--resume"]):
            result = _cli("run", str(recipe), "--out", str(out), *extra)
            assert result.exit_code == 2, result.output
            assert f"pid {os.getpid()}" in result.output and "another run is writing" in result.output
        assert sorted(p.name for p in out.rglob("*")) == [".imgsynth", "lock"]  # nothing written
    finally:
        holder.release()


def test_two_runs_started_together_never_mix(tmp_path, coco_dataset, monkeypatch):
    """Before: both passed the emptiness check, both exited 0, and the folder mixed them.
    The two runs are held between that check and their first write until both got there
    (or 3 s passed), the window in which two processes started together meet."""
    import threading

    from imgsynth.engine.pipeline import Pipeline

    barrier = threading.Barrier(2, timeout=3)
    real_init = Pipeline.__init__

    def meet_then_build(self, *args, **kwargs):
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "__init__", meet_then_build)
    recipe = _recipe(tmp_path, coco_dataset)
    out = tmp_path / "out"
    outcome: dict[int, str] = {}

    def run(seed: int) -> None:
        try:
            run_recipe(recipe, out, seed=seed, quiet=True)
            outcome[seed] = "done"
        except RecipeError as exc:
            outcome[seed] = str(exc)

    threads = [threading.Thread(target=run, args=(seed,)) for seed in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(outcome.values())[0] == "done", outcome
    refused = sorted(outcome.values())[1]
    assert "another run is writing to this folder (pid" in refused or "not empty" in refused
    import hashlib

    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    for rec in records:  # the folder is one run's, whole: every file matches the manifest
        for rel, sha in rec["sha256"].items():
            assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == sha
    assert len(list((out / "images").iterdir())) == len(records) == 24


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, coco_dataset):
    recipe = _recipe(tmp_path, coco_dataset)
    out = tmp_path / "out"
    (out / ".imgsynth").mkdir(parents=True)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True).stdout.strip()
    (out / LOCK_NAME).write_text(json.dumps({"pid": int(dead), "host": os.uname().nodename,
                                             "started": "2026-01-01T00:00:00", "command": "imgsynth run"}))
    result = _cli("run", str(recipe), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"took over the lock of a run that ended without releasing it (pid {dead}" in result.output
    assert not (out / LOCK_NAME).exists()


def test_a_refused_run_leaves_no_folder_behind(tmp_path, coco_dataset):
    recipe = _recipe(tmp_path, coco_dataset)
    out = tmp_path / "new" / "out"
    result = _cli("run", str(recipe), "--out", str(out), "--set", 'output.classes=[disk, square, "a\\x07"]',
                  "--set", "output.formats=[voc]")
    assert result.exit_code == 2, result.output
    assert "U+0007" in result.output and "'voc'" in result.output
    assert not out.exists() and not out.parent.exists()


# ------------------------------------------------------------- temporaries and leftovers

def test_temporaries_never_write_through_a_planted_symlink(tmp_path):
    """Before: the temporary of OUT/x.png was OUT/.x.png.<pid>.tmp, opened with open('wb'):
    a symlink planted there overwrote its target."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    for pid in range(os.getpid() - 5, os.getpid() + 5):  # the old, predictable names
        (out / f".x.png.{pid}.tmp").symlink_to(victim)
    (out / "y.png").symlink_to(victim)  # and the final name itself
    atomic_write_bytes(out / "x.png", b"image")
    atomic_write_bytes(out / "y.png", b"image")
    assert victim.read_text() == "precious"
    assert (out / "x.png").read_bytes() == b"image" and not (out / "y.png").is_symlink()
    names = set()
    for _ in range(3):
        with atomic_writer(out / "z.png"):
            names.update(p.name for p in out.glob(".z.png.*.tmp"))
    assert len(names) == 3  # unpredictable, fresh every time


def test_resume_removes_every_leftover_temporary_file_and_folder(tmp_path, coco_dataset):
    """Before: a kill while writing lmdb left .lmdb.PID.tmp/, and every resume failed with
    IsADirectoryError."""
    recipe = _recipe(tmp_path, coco_dataset)
    out = tmp_path / "out"
    assert _cli("run", str(recipe), "--out", str(out), "--quiet").exit_code == 0
    expected = tree_hashes(out)
    (out / ".lmdb.4242.tmp").mkdir()
    (out / ".lmdb.4242.tmp" / "data.mdb").write_bytes(b"x" * 100)
    (out / "images" / ".00000001.png.abc.tmp").write_bytes(b"half")
    (out / ".imgsynth" / "chunks" / ".000000.jsonl.1.tmp").write_bytes(b"{")
    result = _cli("run", str(recipe), "--out", str(out), "--resume", "--quiet")
    assert result.exit_code == 0, result.output
    assert tree_hashes(out) == expected


# ------------------------------------------------------------- bounded plans and inputs

def test_an_absurd_count_is_refused_before_anything_is_written(tmp_path, coco_dataset):
    recipe = _recipe(tmp_path, coco_dataset)
    result = _cli("run", str(recipe), "--out", str(tmp_path / "out"), "--count", "1000000000000")
    assert result.exit_code == 2 and "count" in result.output and "1000000000" in result.output
    assert not (tmp_path / "out").exists()


def test_the_run_plan_takes_the_same_memory_for_any_count(tmp_path, coco_dataset, monkeypatch):
    """Before: a list of every chunk was built before the first sample (3.9e9 entries for
    --count 1e12). Now the plan is a generator: the largest allowed count starts at once."""
    from imgsynth.engine.pipeline import Pipeline

    class FirstChunk(Exception):
        pass

    def stop(self, chunk_id, indices):
        raise FirstChunk(len(indices))

    monkeypatch.setattr(Pipeline, "run_chunk", stop)
    recipe = _recipe(tmp_path, coco_dataset)
    tracemalloc.start()
    t0 = time.perf_counter()
    with pytest.raises(FirstChunk):
        run_recipe(recipe, tmp_path / "out", count=1_000_000_000, quiet=True)
    seconds = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 30 << 20 and seconds < 10


def test_yaml_alias_bombs_and_self_references_are_refused_quickly(tmp_path):
    levels = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for k, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[k]
        levels.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    bomb = write_recipe(tmp_path / "bomb.yaml", "\n".join(levels) + "\nsource: *i\n")
    loop = write_recipe(tmp_path / "loop.yaml", "source: &s\n  type: dataset\n  path: *s\n")
    deep = write_recipe(tmp_path / "deep.yaml", "source: " + "[" * 5000 + "]" * 5000 + "\n")
    for recipe, said in ((bomb, "once its aliases"), (loop, "refers to the value that contains it"),
                         (deep, "nested more than")):
        for command in (["validate", str(recipe)], ["run", str(recipe), "--out", str(tmp_path / "o")]):
            t0 = time.perf_counter()
            result = _cli(*command)
            assert result.exit_code == 2 and said in result.output, result.output
            assert time.perf_counter() - t0 < 5 and len(result.output) < 2000
            assert "lol" not in result.output
    assert not (tmp_path / "o").exists()


def test_out_inside_an_input_folder_is_refused(tmp_path, coco_dataset, monkeypatch):
    """Before: accepted, and the next run read its own output (24 samples became 122)."""
    recipe = _recipe(tmp_path, coco_dataset)
    for out in (coco_dataset / "generated", coco_dataset):
        result = _cli("run", str(recipe), "--out", str(out))
        assert result.exit_code == 2, result.output
        assert "recipe key 'source'" in result.output and "which the run reads" in result.output
    assert not (coco_dataset / "generated").exists()
    monkeypatch.chdir(ROOT)  # the shipped recipe names its assets from the repository root
    compose = _cli("run", "recipes/compose.yaml", "--out", "sample_assets/backgrounds/x", "--count", "2")
    assert compose.exit_code == 2 and "recipe key 'source'" in compose.output
    assert not (ROOT / "sample_assets" / "backgrounds" / "x").exists()


# ------------------------------------------------------------- label names before samples

def test_a_class_name_a_format_cannot_hold_is_refused_before_any_sample(tmp_path):
    """Before: VOC wrote unreadable XML for a control character (exit 0), and an ImageFolder
    class 'a\\b' was refused only after every sample was written."""
    data = tmp_path / "folders"
    for name in ("a\\b", "ok"):
        (data / name).mkdir(parents=True)
        (data / name / "x.png").write_bytes(encode_image(np.zeros((8, 8, 3), np.uint8), "png"))
    recipe = write_recipe(tmp_path / "r.yaml", f"""
source: {{type: dataset, path: {data}}}
output: {{formats: [imagefolder], preview: false}}
""")
    out = tmp_path / "out"
    result = _cli("run", str(recipe), "--out", str(out))
    assert result.exit_code == 2 and "path separator" in result.output and not out.exists()


def test_repeated_declared_class_names_are_refused(tmp_path, coco_dataset):
    recipe = _recipe(tmp_path, coco_dataset)
    result = _cli("validate", str(recipe), "--set", "output.classes=[disk, square, disk]")
    assert result.exit_code == 2 and "repeated: 'disk'" in result.output


# ------------------------------------------------------------- resume and --out edge cases

@pytest.mark.parametrize("saved, said", [("", "holds nothing"), ("- a\n- b\n", "holds list"),
                                         ("a: [1,\n", "invalid YAML")])
def test_resume_with_a_broken_recipe_yaml_names_the_file(tmp_path, coco_dataset, saved, said):
    recipe = _recipe(tmp_path, coco_dataset)
    out = tmp_path / "out"
    out.mkdir()
    (out / "recipe.yaml").write_text(saved)
    (out / "images").mkdir()
    result = _cli("run", str(recipe), "--out", str(out), "--resume")
    assert result.exit_code == 2 and said in result.output and "recipe.yaml" in result.output
    assert "Traceback" not in result.output


def test_an_unreachable_url_out_is_a_clear_error(tmp_path, coco_dataset):
    recipe = _recipe(tmp_path, coco_dataset)
    result = _cli("run", str(recipe), "--out", "ftp://127.0.0.1:1/data")
    assert result.exit_code == 2 and "cannot reach --out" in result.output
    assert "Connection refused" in result.output


# ------------------------------------------------------------- diagnostics

def test_errors_name_the_files_a_failed_sample_came_from(tmp_path):
    data = make_coco_dataset(tmp_path / "data", n_images=3)
    (data / "images" / "img001.png").write_bytes(b"not a png")
    recipe = _recipe(tmp_path, data, "on_error: skip\n")
    assert _cli("run", str(recipe), "--out", str(tmp_path / "out"), "--quiet").exit_code == 0
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert errors and all(str(data / "images" / "img001.png") in e["sources"] for e in errors)
    assert all(str(data / "annotations.json") in e["sources"] for e in errors)


def test_label_warnings_print_one_plain_line(tmp_path):
    data = make_coco_dataset(tmp_path / "data", n_images=2)
    doc = json.loads((data / "annotations.json").read_text())
    doc["annotations"][0]["bbox"] = [90, 60, 100, 100]  # partly outside the 128x96 image
    doc["annotations"][0].pop("segmentation")
    doc["annotations"][1]["bbox"] = [500, 500, 5, 5]  # wholly outside: dropped
    doc["annotations"][1].pop("segmentation")
    (data / "annotations.json").write_text(json.dumps(doc))
    recipe = _recipe(tmp_path, data)
    done = _subprocess_run(str(recipe), "--out", str(tmp_path / "out"), "--quiet")
    assert done.returncode == 0, done.stderr
    assert "imgsynth: warning: " in done.stderr and "dropped" in done.stderr
    assert "warnings.warn" not in done.stderr and ".py:" not in done.stderr


# ------------------------------------------------------------- signals

def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return found


def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in status


def _start_and_wait_for_chunks(args: list[str], out: Path, log: Path) -> subprocess.Popen:
    """The run's output goes to a file, not a pipe: workers left running (the fault these
    tests catch) would hold a pipe open and make reading it hang instead of fail."""
    with open(log, "w") as stderr:
        proc = subprocess.Popen([sys.executable, "-m", "imgsynth.cli", "run", *args], cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=stderr, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / ".imgsynth" / "chunks").glob("*.jsonl")):
        assert proc.poll() is None, log.read_text()
        time.sleep(0.1)
    return proc


def _gone(pids: set[int], seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    alive = [p for p in pids if _alive(p)]
    for pid in alive:  # left running by a failing run: do not leave them to the next tests
        os.kill(pid, signal.SIGKILL)
    return not alive


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_stops_the_workers_and_leaves_a_resumable_folder(tmp_path, sig):
    """Before: the workers and the resource tracker ran on for 10 minutes, with no message."""
    out = tmp_path / "out"
    args = ["recipes/compose.yaml", "--count", "160", "--workers", "2", "--set", "output.preview=false",
            "--set", "output.formats=[coco]"]
    proc = _start_and_wait_for_chunks([*args, "--out", str(out)], out, tmp_path / "err")
    children = _children(proc.pid)
    assert children
    proc.send_signal(sig)
    code = proc.wait(timeout=60)
    workers_stopped = _gone(children, 10)
    stderr = (tmp_path / "err").read_text()
    assert code == 128 + sig, stderr
    assert "--resume" in stderr and signal.Signals(sig).name in stderr
    assert workers_stopped
    resumed = _subprocess_run(*args, "--out", str(out), "--resume", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 160


def test_workers_exit_when_their_driver_is_killed_and_resume_completes(tmp_path):
    out = tmp_path / "out"
    args = ["recipes/compose.yaml", "--count", "160", "--workers", "2", "--quiet",
            "--set", "output.preview=false", "--set", "output.formats=[coco]"]
    proc = _start_and_wait_for_chunks([*args, "--out", str(out)], out, tmp_path / "err")
    children = _children(proc.pid)
    proc.kill()
    proc.wait(timeout=30)
    assert _gone(children, 10)
    resumed = _subprocess_run(*args, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "took over the lock" not in resumed.stderr  # --quiet
    assert len(json.loads((out / "annotations.json").read_text())["images"]) == 160


def test_lock_in_one_process_is_exclusive_and_released(tmp_path):
    first = OutputLock(tmp_path / "o")
    first.acquire()
    with pytest.raises(RecipeError, match="another run is writing"):
        OutputLock(tmp_path / "o").acquire()
    first.release()
    with OutputLock(tmp_path / "o"):
        pass
    assert not (tmp_path / "o" / LOCK_NAME).exists()
    shutil.rmtree(tmp_path / "o")


def test_the_pixel_limit_is_a_recipe_key_recorded_and_applied_in_every_worker(tmp_path, coco_dataset,
                                                                              monkeypatch):
    import yaml

    recipe = _recipe(tmp_path, coco_dataset, "on_error: skip\n")
    monkeypatch.setenv("IMGSYNTH_MAX_IMAGE_PIXELS", "5000000")
    assert _cli("run", str(recipe), "--out", str(tmp_path / "a"), "--quiet").exit_code == 0
    assert yaml.safe_load((tmp_path / "a" / "recipe.yaml").read_text())["max_image_pixels"] == 5_000_000
    for workers in ("1", "2"):  # 96x128 images over a 10,000-pixel limit: every sample fails by name
        out = tmp_path / f"w{workers}"
        result = _cli("run", str(recipe), "--out", str(out), "--quiet", "--workers", workers,
                      "--set", "max_image_pixels=10000")
        assert result.exit_code == 0, result.output
        errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
        assert len(errors) == 24 and all("over the limit of 10,000 pixels" in e["error"] for e in errors)
        assert all(any(s.endswith(".png") for s in e["sources"]) for e in errors)
    from imgsynth.io.image import max_image_pixels

    assert max_image_pixels() == 5_000_000  # a run does not change what its caller decodes


def test_a_yaml_bomb_in_a_yolo_data_yaml_names_the_file(tmp_path):
    from imgsynth.core.errors import InputError
    from imgsynth.io.readers import read_dataset

    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    levels = ['a: &a ["x","x","x","x","x","x","x","x","x"]'] + [
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]" for p, n in zip("abcdefgh", "bcdefghi")]
    (tmp_path / "data.yaml").write_text("\n".join(levels) + "\nnames: *i\n")
    with pytest.raises(InputError, match="once its aliases") as caught:
        read_dataset(tmp_path, "yolo")
    assert "data.yaml" in str(caught.value)
