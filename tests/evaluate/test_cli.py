"""eval_command end to end: report files, caching, stats files, bad input messages."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from imgsynth.core.errors import InputError, RecipeError
from imgsynth.evaluate import eval_command, save_stats_command
from tests.evaluate.conftest import write_image_folder, write_manifest_folder

QUIET = {"log": lambda message: None}


@pytest.fixture(scope="module")
def folders(tmp_path_factory, digits):
    images, labels = digits
    root = tmp_path_factory.mktemp("eval")
    real = write_image_folder(root / "real", images[:300], labels[:300])
    fake = write_image_folder(root / "fake", images[300:560], labels[300:560])
    return root, real, fake


@pytest.fixture(scope="module")
def first_report(folders):
    root, real, fake = folders
    report = eval_command(real, fake, None, "clean", root / "out", "builtin",
                          cache_dir=root / "cache", kid_subsets=20, **QUIET)
    return root, report


def test_report_json_states_how_and_holds_every_metric(first_report):
    root, report = first_report
    on_disk = json.loads((root / "out" / "report.json").read_text())
    assert on_disk["metrics"].keys() == {"fid", "kid", "is", "prdc", "memorization", "stats", "tstr"}
    how = on_disk["how"]
    assert how["extractor_id"].startswith("builtin-randconv-v1") and how["preset"] == "clean"
    assert (how["n_real"], how["n_fake"], how["feature_dim"]) == (300, 260, 96)
    assert "antialias=True" in how["resize"] and how["versions"]["torchmetrics"] != "not installed"
    assert how["real_layout"] == "imagefolder"
    metrics = on_disk["metrics"]
    assert metrics["fid"]["value"] > 0 and 0.5 < metrics["prdc"]["precision"] <= 1
    assert metrics["tstr"]["train_real_test_real"] > 0.8
    assert set(metrics["stats"]["class_balance"]["classes"]) == {str(d) for d in range(10)}
    assert any("not comparable to published" in w for w in on_disk["warnings"])


def test_report_html_is_self_contained(first_report):
    root, _ = first_report
    page = (root / "out" / "report.html").read_text()
    assert "http://" not in page and "https://" not in page
    sources = re.findall(r"src='([^']*)'", page)
    assert len(sources) >= 4 and all(s.startswith("data:image/png;base64,") for s in sources)
    assert "How these numbers were computed" in page and "builtin-randconv-v1" in page


def test_second_fake_set_reuses_cached_real_features(folders, first_report, digits):
    root, real, fake = folders
    images, labels = digits
    other = write_image_folder(root / "fake2", images[600:700], labels[600:700])
    report = eval_command(real, other, "fid", "clean", root / "out2", "builtin",
                          cache_dir=root / "cache", **QUIET)
    assert report["timings_s"]["real_from_cache"] and not report["timings_s"]["fake_from_cache"]
    again = eval_command(real, fake, "fid", "clean", root / "out3", "builtin",
                         cache_dir=root / "cache", **QUIET)
    assert again["metrics"]["fid"] == first_report[1]["metrics"]["fid"]
    # a changed file invalidates the cache of its set
    (other / "0" / sorted(p.name for p in (other / "0").iterdir())[0]).write_bytes(
        (fake / "0" / sorted(p.name for p in (fake / "0").iterdir())[0]).read_bytes())
    changed = eval_command(real, other, "fid", "clean", root / "out2", "builtin",
                           cache_dir=root / "cache", **QUIET)
    assert not changed["timings_s"]["fake_from_cache"]


def test_real_stats_file_gives_the_same_fid(folders, first_report):
    root, real, fake = folders
    stats = save_stats_command(real, root / "real_stats.npz", "builtin", "clean",
                               cache_dir=root / "cache")
    report = eval_command(stats, fake, "fid,prdc", "clean", root / "out4", "builtin",
                          cache_dir=root / "cache", **QUIET)
    assert abs(report["metrics"]["fid"]["value"] - first_report[1]["metrics"]["fid"]["value"]) < 1e-9
    assert "stats file" in report["metrics"]["prdc"]["skipped"]
    with pytest.raises(InputError, match="preset 'clean'"):
        eval_command(stats, fake, "fid", "paper", root / "out5", "builtin", **QUIET)


def test_detection_manifest_gives_box_histograms(tmp_path, digits):
    images, labels = digits
    boxes = [[(2.0, 2.0, 10.0 + i % 5, 12.0)] for i in range(120)]
    real = write_manifest_folder(tmp_path / "real", images[:120], labels[:120], boxes)
    fake = write_manifest_folder(tmp_path / "fake", images[120:240], labels[120:240],
                                 [[(0.0, 0.0, 16.0, 4.0)]] * 120)
    report = eval_command(real, fake, "stats,fid", "paper", tmp_path / "out", "builtin",
                          cache_dir=False, **QUIET)
    box = report["metrics"]["stats"]["boxes"]
    assert box["log2_aspect"]["fake_median"] == 2.0 and box["log2_aspect"]["ks"]["statistic"] == 1.0
    assert "class_balance" in report["metrics"]["stats"]
    assert "fid" in report["metrics"] and "skipped" not in report["metrics"]["fid"]
    assert any("paper preset: only 120 images" in w for w in report["warnings"])
    assert "alt='boxes'" in (tmp_path / "out" / "report.html").read_text()


def test_bad_inputs_get_clear_messages(tmp_path, digits, folders):
    _, real, _ = folders
    images, _ = digits
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        eval_command(real, tmp_path / "empty", "fid", "clean", tmp_path / "o", "builtin", **QUIET)
    broken = write_image_folder(tmp_path / "broken", images[:3])
    (broken / "00001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(InputError) as info:
        eval_command(real, broken, "fid", "clean", tmp_path / "o", "builtin", cache_dir=False, **QUIET)
    assert "00001.png" in str(info.value)
    with pytest.raises(RecipeError, match="Did you mean 'prdc'"):
        eval_command(real, real, "prcd", "clean", tmp_path / "o", "builtin", **QUIET)
    with pytest.raises(InputError, match="does not exist"):
        eval_command(tmp_path / "nope", real, "fid", "clean", tmp_path / "o", "builtin", **QUIET)


def test_too_few_images_for_fid_skip_it_and_suggest_kid(tmp_path, digits):
    images, _ = digits
    gray_real = write_image_folder(tmp_path / "real", images[:50])
    small = write_image_folder(tmp_path / "small", images[1000:1040])
    tinted = images[1000:1040].copy()
    tinted[..., 0] = 255 - tinted[..., 0]
    colour = write_image_folder(tmp_path / "colour", tinted)
    report = eval_command(gray_real, small, "fid,kid", "clean", tmp_path / "o", "builtin",
                          cache_dir=False, kid_subsets=5, **QUIET)
    assert "singular" in report["metrics"]["fid"]["skipped"] and "KID" in report["metrics"]["fid"]["skipped"]
    assert np.isfinite(report["metrics"]["kid"]["mean"])
    mixed = eval_command(gray_real, colour, "kid", "clean", tmp_path / "o2", "builtin",
                         cache_dir=False, kid_subsets=5, **QUIET)
    assert any("mismatched channels" in w for w in mixed["warnings"])


def test_imgsynth_eval_command_line(tmp_path, folders, monkeypatch):
    from typer.testing import CliRunner

    from imgsynth.cli import app

    _, real, fake = folders
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    monkeypatch.setenv("IMGSYNTH_CACHE", str(tmp_path / "cache"))
    runner = CliRunner()
    missing = runner.invoke(app, ["eval", "--real", str(real), "--fake", str(fake),
                                  "--out", str(tmp_path / "r1")])
    assert missing.exit_code == 2
    assert "weights-inception-2015-12-05-6726825d.pth" in missing.output
    assert not (tmp_path / "r1").exists()
    ok = runner.invoke(app, ["eval", "--real", str(real), "--fake", str(fake), "--metrics", "fid,prdc",
                             "--extractor", "builtin", "--out", str(tmp_path / "r2")])
    assert ok.exit_code == 0, ok.output
    assert json.loads((tmp_path / "r2" / "report.json").read_text())["metrics"]["fid"]["value"] > 0


@pytest.mark.parametrize("device, said", [
    ("cuda:99", "device 'cuda:99' is not available on this machine (it has: cpu"),
    ("gpu", "unknown device 'gpu'"),
])
def test_a_device_this_machine_lacks_is_a_message_before_any_work(tmp_path, folders, device, said):
    from typer.testing import CliRunner

    from imgsynth.cli import app

    _, real, fake = folders
    for args in (["eval", "--real", str(real), "--fake", str(fake), "--extractor", "builtin",
                  "--out", str(tmp_path / "report")],
                 ["save-stats", str(real), "--extractor", "builtin", "--out", str(tmp_path / "s.npz")]):
        result = CliRunner().invoke(app, args + ["--device", device])
        assert result.exit_code == 2, result.output
        assert said in result.output and "--device" in result.output
        assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
