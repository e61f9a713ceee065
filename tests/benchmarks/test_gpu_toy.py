"""benchmarks/gpu.py in toy mode (tiny sizes on the CPU): every section runs, every figure is a
finite positive number beside its peer, the label and regeneration checks pass, and the GPU
plan is estimated to fit its 8 minutes. Keeps the one-command GPU run from rotting while no
GPU is at hand; its figures are not performance claims."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_toy")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--toy", "--device", "cpu", "--json", str(out / "toy.json"),
         "--work", str(out / "work")],
        capture_output=True, text=True, timeout=300)
    return result, json.loads((out / "toy.json").read_text())


def test_toy_mode_measures_every_section_against_its_peer(toy_run):
    result, report = toy_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert report["errors"] == [] and report["info"]["mode"] == "toy"
    assert report["info"]["torch"] and report["info"]["diffusers"]
    for row in report["rows"]:
        for key in ("ours", "peer", "ratio"):
            assert math.isfinite(row[key]) and row[key] > 0, row
        assert row["units"] and row["what"]
    whats = {row["section"]: [] for row in report["rows"]}
    for row in report["rows"]:
        whats[row["section"]].append(row["what"])
    assert set(whats) == {"augment", "train", "evaluate", "diffusion"}
    assert len(whats["augment"]) == 4  # B = 4, 8 at two image sizes
    assert len(whats["train"]) == 6  # DCGAN defaults, amp off, channels_last off, larger; VAE x2
    assert any("FID end to end" in w for w in whats["evaluate"])
    assert sum("Inception features" in w for w in whats["evaluate"]) == 2
    for batch in (1, 4):
        assert any(f"batch {batch}: images/s" in w for w in whats["diffusion"])
        assert any(f"batch {batch}: UNet it/s" in w for w in whats["diffusion"])
    assert any(w.startswith("SDXL-class tiny") for w in whats["diffusion"])
    table = result.stdout
    assert "TOY MODE" in table and "NOT performance claims" in table
    assert all(row["what"] in table for row in report["rows"])


def test_toy_mode_label_and_regeneration_checks_pass(toy_run):
    _, report = toy_run
    checks = report["checks"]
    assert all(c["passed"] in (True, None) for c in checks), [c for c in checks if c["passed"] is False]
    augment = [c["what"] for c in checks if c["section"] == "augment"]
    assert sum("tight box of its mask" in w for w in augment) == 6  # per-sample + 2 batch sizes, 2 sizes
    assert sum("exact" in w for w in augment) == 4  # BatchAugment and per-sample flips, 2 sizes
    diffusion = {c["what"]: c for c in checks if c["section"] == "diffusion"}
    assert any("rerun" in w and c["passed"] for w, c in diffusion.items())
    assert any("regenerate" in w and c["passed"] for w, c in diffusion.items())
    deviation = next(c for w, c in diffusion.items() if "batch 1 vs batch 4" in w)
    assert deviation["passed"] is None and 0 <= deviation["value"] <= 255
    assert any("SDXL" in w and c["passed"] for w, c in diffusion.items())
    assert any("one pipeline call" in w and c["passed"] for w, c in diffusion.items())
    assert any("not blank" in w and c["passed"] for w, c in diffusion.items())
    fid = next(c for c in checks if c["section"] == "evaluate")
    assert fid["passed"] is True


def test_the_gpu_plan_is_estimated_to_fit_eight_minutes(toy_run):
    _, report = toy_run
    estimate = report["gpu_estimate"]
    assert all(v > 0 for v in estimate["flops"].values())
    assert 0 < estimate["total_s"] < 480, estimate["seconds"]
