"""A studio on a free port of 127.0.0.1, and a raw HTTP client for it (http.client sends a
path exactly as given: no normalisation of '..' or percent escapes)."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]


class Client:
    """Requests to a running studio, with its access cookie and page token unless told not to."""

    def __init__(self, server):
        self.server = server
        self.port = server.port
        self.cookie = f"{server.cookie_name}={server.access_key}"
        self.token = server.page_token

    def request(self, method: str, path: str, body: bytes | None = None, *, host: str | None = None,
                cookie: bool = True, token: bool = True, headers: dict | None = None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", host if host is not None else f"127.0.0.1:{self.port}")
            if cookie:
                conn.putheader("Cookie", self.cookie)
            if method == "POST":
                if token:
                    conn.putheader("X-Studio-Token", self.token)
                if "Content-Type" not in (headers or {}):
                    conn.putheader("Content-Type", "application/json")
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body or b"")))
            conn.endheaders(body or b"")
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            conn.close()

    def get(self, path: str, **kwargs):
        return self.request("GET", path, **kwargs)

    def get_json(self, path: str):
        status, _, body = self.get(path)
        assert status == 200, body
        return json.loads(body)

    def post(self, path: str, data: dict, **kwargs):
        status, headers, body = self.request("POST", path, json.dumps(data).encode(), **kwargs)
        return status, json.loads(body) if headers.get("Content-Type") == "application/json" else body


@pytest.fixture
def studio():
    """studio(target) -> Client of a studio serving `target`; all are stopped at the end."""
    from imgsynth.studio.server import start

    servers = []

    def open_studio(target) -> Client:
        server = start(target, port=0)
        servers.append(server)
        return Client(server)

    yield open_studio
    for server in servers:
        server.shutdown()
        server.server_close()
        if server.studio.recipe is not None:
            server.studio.recipe.close()


def local_recipe(name: str, folder: Path) -> Path:
    """A copy of recipes/NAME in `folder`, reading the repository's sample_assets wherever
    the test runs (saving it cannot touch recipes/)."""
    text = (REPO / "recipes" / name).read_text(encoding="utf-8")
    path = folder / name
    path.write_text(text.replace("sample_assets/", f"{REPO}/sample_assets/"), encoding="utf-8")
    return path


def path_of(url: str) -> str:
    return urlsplit(url).path
