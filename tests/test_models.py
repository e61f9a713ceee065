"""imgsynth models fetch/list: files fetched from a local HTTP server (a stand-in for the real
weights, put in place of the catalogue's entry), checked, never half-placed, resumed; hub
checkpoints through huggingface_hub (its calls replaced: no network here); and the messages
that name the fetch command when weights are missing."""

from __future__ import annotations

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

from imgsynth import models
from imgsynth.cli import app
from imgsynth.core.errors import MissingModelError
from imgsynth.evaluate.features import INCEPTION_FILE
from imgsynth.io.image import encode_image

runner = CliRunner()
PAYLOAD = np.random.default_rng(0).integers(0, 256, 300_000, dtype=np.uint8).tobytes()
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class StandIn:
    """What the test server serves and what it saw."""

    def __init__(self):
        self.payload = PAYLOAD
        self.cut_after: int | None = None  # send this many bytes of the body, then hang up
        self.honour_range = True
        self.ranges: list[str | None] = []
        self.sent = 0


@pytest.fixture
def server():
    state = StandIn()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            state.ranges.append(self.headers.get("Range"))
            start = 0
            wanted = self.headers.get("Range")
            if wanted and state.honour_range:
                start = int(wanted.removeprefix("bytes=").rstrip("-"))
                if start >= len(state.payload):
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(state.payload) - 1}/{len(state.payload)}")
            else:
                self.send_response(200)
            body = state.payload[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if state.cut_after is not None:
                body = body[:state.cut_after]
                self.close_connection = True
            self.wfile.write(body)
            state.sent += len(body)

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/{INCEPTION_FILE}"
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def stand_in(server, tmp_path, monkeypatch):
    """`inception` points at the test server's file and its checksum (the test hook: the
    catalogue entry, replaced for this test only); TORCH_HOME is a fresh folder."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    target = tmp_path / "torch" / "hub" / "checkpoints" / INCEPTION_FILE

    def entry(url=server.url, sha256=SHA, size=len(PAYLOAD)):
        spec = models.WeightsFile("inception", url, target, sha256, size, "test")
        monkeypatch.setattr(models, "inception", lambda: spec)
        return spec
    entry()
    return SimpleNamespace(server=server, target=target, partial=target.with_name(target.name + ".partial"),
                           entry=entry)


def _fetch(*args):
    return runner.invoke(app, ["models", "fetch", *args])


def test_fetch_places_the_checked_file_where_eval_looks(stand_in):
    result = _fetch("inception")
    assert result.exit_code == 0, result.output
    assert stand_in.target.read_bytes() == PAYLOAD
    assert not stand_in.partial.exists()
    assert "sha256 matches" in result.output and str(stand_in.target) in result.output
    again = _fetch("inception")  # present and right: nothing downloaded
    assert again.exit_code == 0 and "already present" in again.output
    assert len(stand_in.server.ranges) == 1
    listing = runner.invoke(app, ["models", "list"])
    assert f"inception            present" in listing.output
    assert "present" in runner.invoke(app, ["info"]).output.split("inception", 1)[1].splitlines()[0]


def test_a_checksum_mismatch_is_refused_and_nothing_is_placed(stand_in):
    stand_in.entry(sha256=hashlib.sha256(b"other bytes").hexdigest())
    result = _fetch("inception")
    assert result.exit_code == 1, result.output
    assert f"has sha256 {SHA}, not {hashlib.sha256(b'other bytes').hexdigest()}" in " ".join(result.output.split())
    assert "nothing was placed" in result.output
    assert not stand_in.target.exists() and not stand_in.partial.exists()


def test_an_interrupted_download_places_nothing_and_the_next_fetch_resumes(stand_in):
    server = stand_in.server
    server.cut_after = 120_000
    result = _fetch("inception")
    assert result.exit_code == 1, result.output
    assert f"stopped after 120,000 of {len(PAYLOAD):,} bytes" in result.output
    assert "run the same command again" in result.output
    assert not stand_in.target.exists()
    assert stand_in.partial.read_bytes() == PAYLOAD[:120_000]
    listing = runner.invoke(app, ["models", "list"]).output
    assert f"partial download (120,000 of {len(PAYLOAD):,} bytes)" in listing

    server.cut_after, server.sent = None, 0
    result = _fetch("inception")
    assert result.exit_code == 0, result.output
    assert server.ranges == [None, "bytes=120000-"]
    assert server.sent == len(PAYLOAD) - 120_000  # only the missing bytes travelled
    assert "resumed at 120,000" in result.output
    assert stand_in.target.read_bytes() == PAYLOAD and not stand_in.partial.exists()


def test_a_server_that_ignores_range_gives_the_whole_file_again(stand_in):
    stand_in.partial.parent.mkdir(parents=True)
    stand_in.partial.write_bytes(PAYLOAD[:1000])
    stand_in.server.honour_range = False
    result = _fetch("inception")
    assert result.exit_code == 0, result.output
    assert stand_in.target.read_bytes() == PAYLOAD


def test_a_server_sending_more_than_the_known_size_is_cut_off(stand_in):
    stand_in.entry(size=len(PAYLOAD) - 10)
    result = _fetch("inception")
    assert result.exit_code == 1, result.output
    assert "more than the" in result.output
    assert not stand_in.target.exists()


def test_no_network_says_what_to_copy_where(stand_in):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    stand_in.entry(url=f"http://127.0.0.1:{closed}/{INCEPTION_FILE}")
    result = _fetch("inception")
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert f"could not download inception from http://127.0.0.1:{closed}/{INCEPTION_FILE}: cannot reach it" in text
    assert f"copy {INCEPTION_FILE} (sha256 {SHA}) to {stand_in.target} here" in text
    assert "imgsynth models fetch inception --dir DIR" in text
    assert not stand_in.target.exists() and not stand_in.partial.exists()


def test_dir_puts_the_file_in_that_folder(stand_in, tmp_path):
    result = _fetch("inception", "--dir", str(tmp_path / "staging"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "staging" / INCEPTION_FILE).read_bytes() == PAYLOAD
    assert not stand_in.target.exists()


def test_a_wrong_file_already_there_is_named_and_kept(stand_in):
    stand_in.target.parent.mkdir(parents=True)
    stand_in.target.write_bytes(b"not the weights")
    result = _fetch("inception")
    assert result.exit_code == 2, result.output
    assert "--force" in result.output and str(stand_in.target) in result.output
    assert stand_in.target.read_bytes() == b"not the weights"
    assert _fetch("inception", "--force").exit_code == 0
    assert stand_in.target.read_bytes() == PAYLOAD


def test_torchvision_weights_use_torchvisions_url_and_the_hash_in_its_name(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    spec = models.resolve("torchvision:resnet18")
    assert spec.url == "https://download.pytorch.org/models/resnet18-f37072fd.pth"
    assert spec.path == tmp_path / "torch" / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    assert spec.sha256 == "f37072fd"
    result = _fetch("torchvision:resnet81")
    assert result.exit_code == 2 and "Did you mean 'resnet18'" in result.output


# ---------------------------------------------------------------- Hugging Face hub
# Not tested here: a real download from the hub (no network); what is tested is what
# imgsynth passes to huggingface_hub/diffusers and what it does with their answers.

@pytest.fixture
def hub(tmp_path, monkeypatch):
    import diffusers
    import huggingface_hub

    calls = []
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)

    def pipeline_folder(root: Path) -> Path:
        (root / "unet").mkdir(parents=True, exist_ok=True)
        (root / "model_index.json").write_text("{}")
        (root / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"weights")
        return root

    def download(repo_id, **kwargs):
        calls.append(("diffusers", repo_id, kwargs))
        return str(pipeline_folder(tmp_path / "cache" / "snapshots" / "0123abcd"))

    def snapshot_download(repo_id, **kwargs):
        calls.append(("snapshot", repo_id, kwargs))
        return str(pipeline_folder(Path(kwargs["local_dir"])))

    state = SimpleNamespace(calls=calls, mismatches=[])

    def verify(self, repo_id, **kwargs):
        calls.append(("verify", repo_id, kwargs))
        return SimpleNamespace(checked_count=2, mismatches=state.mismatches)

    monkeypatch.setattr(diffusers.DiffusionPipeline, "download", download)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    monkeypatch.setattr(huggingface_hub.HfApi, "verify_repo_checksums", verify)
    return state


def test_hub_model_goes_to_the_cache_at_the_pinned_revision(hub):
    result = _fetch("stabilityai/sd-turbo", "--revision", "b261bac")
    assert result.exit_code == 0, result.output
    assert hub.calls[0] == ("diffusers", "stabilityai/sd-turbo", {"revision": "b261bac"})
    assert hub.calls[1] == ("verify", "stabilityai/sd-turbo", {"revision": "0123abcd"})  # the cached commit
    assert "2 files match the hub's checksums" in result.output


def test_hub_model_into_a_folder(hub, tmp_path):
    result = _fetch("stabilityai/sd-turbo", "--dir", str(tmp_path / "models" / "sd-turbo"))
    assert result.exit_code == 0, result.output
    kind, repo, kwargs = hub.calls[0]
    assert (kind, repo, kwargs["local_dir"], kwargs["revision"]) == (
        "snapshot", "stabilityai/sd-turbo", tmp_path / "models" / "sd-turbo", None)
    assert "model_index.json" in kwargs["allow_patterns"] and "*.ckpt" in kwargs["ignore_patterns"]
    assert hub.calls[1][2]["local_dir"] == tmp_path / "models" / "sd-turbo"


def test_hub_files_that_do_not_match_are_deleted(hub, tmp_path):
    hub.mismatches = [SimpleNamespace(path="unet/diffusion_pytorch_model.safetensors")]
    folder = tmp_path / "models" / "sd-turbo"
    result = _fetch("stabilityai/sd-turbo", "--dir", str(folder))
    assert result.exit_code == 1, result.output
    assert "do not match the hub's checksums" in result.output
    assert not (folder / "unet" / "diffusion_pytorch_model.safetensors").exists()


def test_a_recipe_fetches_its_hub_models_at_their_revisions(hub, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("source:\n  type: diffuse\n  model: org/base\n  revision: abc123\n"
                      "stages:\n  - type: diffuse_img2img\n    model: org/refiner\n")
    result = _fetch(str(recipe))
    assert result.exit_code == 0, result.output
    fetched = [(c[1], c[2]) for c in hub.calls if c[0] == "diffusers"]
    assert fetched == [("org/base", {"revision": "abc123"}), ("org/refiner", {"revision": None})]


def test_hub_offline_or_unreachable_says_what_to_copy_where(hub, monkeypatch):
    import diffusers

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = _fetch("stabilityai/sd-turbo", "--revision", "b261bac")
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "HF_HUB_OFFLINE=1 is set" in text
    assert ("imgsynth models fetch stabilityai/sd-turbo --revision b261bac --dir models/sd-turbo" in text
            and "copy models/sd-turbo here and set model: models/sd-turbo" in text)
    monkeypatch.delenv("HF_HUB_OFFLINE")

    def no_network(*args, **kwargs):
        raise OSError("Couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(diffusers.DiffusionPipeline, "download", no_network)
    result = _fetch("stabilityai/sd-turbo")
    assert result.exit_code == 1, result.output
    text = " ".join(result.output.split())
    assert "could not fetch hub model 'stabilityai/sd-turbo' (OSError: Couldn't connect" in text
    assert "hf download stabilityai/sd-turbo --local-dir models/sd-turbo" in text


# ---------------------------------------------------------------- missing weights name the command

def test_eval_without_inception_weights_names_the_fetch_command(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    for name in ("real", "fake"):
        (tmp_path / name).mkdir()
        for k in range(2):
            (tmp_path / name / f"{k}.png").write_bytes(encode_image(np.full((8, 8, 3), k * 50, np.uint8), "png"))
    result = runner.invoke(app, ["eval", "--real", str(tmp_path / "real"), "--fake", str(tmp_path / "fake"),
                                 "--out", str(tmp_path / "report")])
    assert result.exit_code == 2, result.output
    text = " ".join(result.output.split())
    assert "imgsynth models fetch inception" in text
    assert f"at {tmp_path / 'torch' / 'hub' / 'checkpoints' / INCEPTION_FILE}" in text  # the offline copy
    assert not (tmp_path / "report").exists()


def test_a_missing_diffusion_model_names_the_fetch_command_with_its_revision(tmp_path, monkeypatch):
    from imgsynth.generate.diffusion import resolve_model

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(MissingModelError) as error:
        resolve_model("stabilityai/sd-turbo", "b261bac", False, key="source.model")
    text = str(error.value)
    assert "run `imgsynth models fetch stabilityai/sd-turbo --revision b261bac`" in text
    assert "hf download stabilityai/sd-turbo --revision b261bac --local-dir models/sd-turbo" in text
    with pytest.raises(MissingModelError) as error:
        resolve_model(str(tmp_path / "models" / "sd15"), None, False, key="source.model")
    assert f"--dir {tmp_path / 'models' / 'sd15'}" in str(error.value)


def test_a_hub_model_that_cannot_be_checked_says_so(hub, monkeypatch):
    import huggingface_hub

    class ConnectError(Exception):  # the hub client's HTTP library's own type, not an OSError
        pass

    def unreachable(self, repo_id, **kwargs):
        raise ConnectError("[Errno 111] Connection refused")

    monkeypatch.setattr(huggingface_hub.HfApi, "verify_repo_checksums", unreachable)
    result = _fetch("stabilityai/sd-turbo")
    assert result.exit_code == 0, result.output
    assert "files not checked (ConnectError: [Errno 111] Connection refused)" in " ".join(result.output.split())


def test_a_second_fetch_of_the_same_file_waits_its_turn(stand_in):
    """Two fetches of one file at once would interleave their bytes in the partial file."""
    import fcntl

    stand_in.partial.parent.mkdir(parents=True)
    with open(stand_in.partial, "a+b") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        result = _fetch("inception")
    assert result.exit_code == 1, result.output
    assert "another imgsynth models fetch is writing this file" in result.output
    assert stand_in.server.ranges == [] and not stand_in.target.exists()


def test_a_symlink_planted_at_the_partial_name_is_never_written_through(stand_in, tmp_path):
    """The partial file keeps a fixed name (so a fetch can resume it): it is opened without
    following a symlink there, as every temporary of imgsynth is."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    stand_in.partial.parent.mkdir(parents=True)
    stand_in.partial.symlink_to(victim)
    result = _fetch("inception")
    assert result.exit_code == 2, result.output
    assert "remove this file (or link)" in result.output and "Traceback" not in result.output
    assert victim.read_bytes() == b"precious" and not stand_in.target.exists()
