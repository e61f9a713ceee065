"""Who may use a studio, and what it serves: raw HTTP requests, no browser."""

from __future__ import annotations

import json
import os

import pytest

from imgsynth.studio.server import start
from tests.studio.conftest import Client, local_recipe

SECRET = b"the content of a file outside the opened folder"


@pytest.fixture
def opened(studio, tmp_path):
    """A studio on folder `data` (one image file, a sub-folder, symlinks leading out), with a
    secret file beside the folder."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.txt").write_bytes(SECRET)
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    (data / "sub" / "ok.txt").write_bytes(b"inside")
    os.symlink(tmp_path / "outside", data / "link-out")
    os.symlink(tmp_path / "secret.txt", data / "secret-link.txt")
    return studio(data)


def test_a_file_under_the_opened_folder_is_served(opened):
    status, headers, body = opened.get("/files/0/sub/ok.txt")
    assert status == 200 and body == b"inside"
    assert headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize("path", [
    "/files/0/../secret.txt",
    "/files/0/sub/../../secret.txt",
    "/files/0/%2e%2e/secret.txt",
    "/files/0/%2E%2E%2Fsecret.txt",
    "/files/0/sub%2F..%2F..%2Fsecret.txt",
    "/files/0/..%5Csecret.txt",
    "/files/0//etc/passwd",
    "/files/0/%2Fetc%2Fpasswd",
    "/files/0/%252e%252e/secret.txt",
    "/files/0/./sub/../../secret.txt",
    "/files/0/link-out/secret.txt",
    "/files/0/secret-link.txt",
    "/files/0/sub/ok.txt%00.png",
    "/files/1/secret.txt",
    "/files/-1/secret.txt",
    "/static/../server.py",
    "/static/%2e%2e/server.py",
    "/static/..%2Fserver.py",
    "/../secret.txt",
    "/api/sets/0/../../../secret.txt",
])
def test_paths_that_lead_out_of_the_opened_folder_are_refused(opened, path):
    status, _, body = opened.get(path)
    assert status in (400, 403, 404), (path, status)
    assert SECRET not in body and b"import" not in body


def test_a_host_other_than_localhost_is_refused_dns_rebinding(opened):
    for host in ("evil.example:%d", "127.0.0.1.evil.example:%d", "localhost:1", "", "[::1]:%d"):
        status, _, body = opened.get("/files/0/sub/ok.txt", host=host.replace("%d", str(opened.port)))
        assert status == 403 and b"inside" not in body, host
    assert opened.get("/files/0/sub/ok.txt", host=f"localhost:{opened.port}")[0] == 200


def test_without_the_access_key_nothing_is_served(opened):
    for path in ("/", "/api/state", "/files/0/sub/ok.txt", "/static/app.js"):
        status, _, body = opened.get(path, cookie=False)
        assert status == 403 and b"access key" in body, path
    status, _, _ = opened.get("/?key=wrong", cookie=False)
    assert status == 403
    status, headers, _ = opened.get(f"/?key={opened.server.access_key}", cookie=False)
    assert status == 303 and headers["Location"] == "/"
    cookie = headers["Set-Cookie"]
    assert opened.server.access_key in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_the_page_carries_the_token_and_a_strict_content_policy(opened):
    status, headers, body = opened.get("/")
    assert status == 200 and opened.token.encode() in body
    assert "script-src" not in headers["Content-Security-Policy"]  # default-src 'self': no inline script
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


@pytest.fixture
def recipe_studio(studio, tmp_path):
    recipe = local_recipe("compose.yaml", tmp_path)
    return studio(recipe), recipe


@pytest.mark.parametrize("change", [
    {"token": False},
    {"headers": {"Origin": "http://evil.example"}},
    {"headers": {"Origin": "null"}},
    {"headers": {"Sec-Fetch-Site": "cross-site"}},
    {"cookie": False},
])
def test_a_change_without_the_pages_token_or_from_another_origin_is_refused(recipe_studio, change):
    client, recipe = recipe_studio
    before = recipe.read_text()
    status, body = client.post("/api/recipe/save", {"text": "seed: 1\n", "overwrite": True}, **change)
    assert status == 403 and recipe.read_text() == before


def test_a_change_sent_as_a_form_is_refused(recipe_studio):
    client, recipe = recipe_studio
    before = recipe.read_text()
    status, _, _ = client.request("POST", "/api/recipe/save", b'{"text": "seed: 1", "overwrite": true}',
                                  headers={"Content-Type": "text/plain"})
    assert status == 403 and recipe.read_text() == before


def test_a_same_origin_change_with_the_token_is_accepted(recipe_studio):
    client, _ = recipe_studio
    status, answer = client.post("/api/recipe/render", {"text": "seed: [", "count": 1},
                                 headers={"Origin": f"http://127.0.0.1:{client.port}",
                                          "Sec-Fetch-Site": "same-origin"})
    assert status == 200 and "invalid YAML" in answer["error"]


def test_yaml_cannot_run_code(recipe_studio, tmp_path):
    client, recipe = recipe_studio
    planted = tmp_path / "planted"
    for text in (f'!!python/object/apply:os.system ["touch {planted}"]\n',
                 f'seed: !!python/object/apply:os.system ["touch {planted}"]\n',
                 f'source: !!python/object/new:os.system ["touch {planted}"]\n'):
        status, answer = client.post("/api/recipe/render", {"text": text})
        assert status == 200 and answer["samples"] == [] and "error" in answer
        status, answer = client.post("/api/recipe/render", {"text": recipe.read_text(),
                                                            "edit": {"key": "seed", "value": text.split(": ", 1)[-1]}})
        assert status == 200 and answer["samples"] == []  # a tag in a value stays a string
        status, answer = client.post("/api/recipe/save", {"text": text, "overwrite": True})
        assert status == 400
    assert not planted.exists()


def test_an_alias_bomb_is_refused_quickly(recipe_studio):
    client, _ = recipe_studio
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + k)}: &{chr(98 + k)} [*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, "
        f"*{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}, *{chr(97 + k)}]\n" for k in range(8))
    status, answer = client.post("/api/recipe/render", {"text": bomb})
    assert status == 200 and "error" in answer and answer["samples"] == []


def test_a_label_file_cannot_make_the_studio_show_another_file(studio, tmp_path):
    (tmp_path / "secret.png").write_bytes(b"\x89PNG not really")
    data = tmp_path / "out"
    data.mkdir()
    (data / "manifest.jsonl").write_text(json.dumps({"id": 1, "index": 0, "image": "../secret.png",
                                                     "width": 4, "height": 4, "instances": []}) + "\n")
    client = studio(data)
    status, headers, body = client.get("/api/sets/0/thumb/0")
    assert headers["Content-Type"] == "image/svg+xml" and b"outside the opened folder" in body
    assert client.get_json("/api/sets/0/item/0")["links"] == {}


def test_the_server_listens_on_loopback_only(tmp_path):
    server = start(local_recipe("compose.yaml", tmp_path), port=0)
    try:
        assert server.server_address[0] == "127.0.0.1"
        assert Client(server).get("/api/state")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


def test_a_port_in_use_is_a_message(tmp_path):
    from imgsynth.core.errors import RecipeError

    first = start(tmp_path, port=0)
    try:
        with pytest.raises(RecipeError, match="cannot listen on 127.0.0.1 at port") as err:
            start(tmp_path, port=first.port)
        assert err.value.key == "--port"
    finally:
        first.shutdown()
        first.server_close()
