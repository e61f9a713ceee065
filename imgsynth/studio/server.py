"""`imgsynth studio`: a local web app on the standard library's HTTP server.

Who may use it, checked on every request:
- the server listens on 127.0.0.1 only;
- the Host header must name 127.0.0.1 or localhost at this port: a page of another site
  whose name was rebound to 127.0.0.1 (DNS rebinding) is refused;
- the browser must hold the access key: the address printed at start-up carries it once
  (`/?key=...`), which sets an HttpOnly, SameSite=Strict cookie; other local users and
  other sites' pages do not have it;
- a request that changes something (POST) must also carry the page's token in a header,
  come as JSON, and come from this origin (Origin, Sec-Fetch-Site).
What it serves: the app (imgsynth/studio/static), the recipe's rendered samples (from
memory), and files under the opened folders only (`/files/ROOT/PATH`: no '..', no empty or
absolute parts, and the real path, symlinks resolved, inside the folder). HTML files from
there (an evaluation report) are served sandboxed: they run no script with this origin.
Recipes are read with the bounded safe YAML loader: an edit cannot run code.
"""

from __future__ import annotations

import hmac
import json
import math
import mimetypes
import os
import re
import secrets
import shutil
import signal
import sys
import threading
import traceback
from http.cookies import CookieError, SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from imgsynth.studio.browse import DETAIL_FIT, THUMB_FIT, DataSet, Found, inside, open_set, scan
from imgsynth.studio.render import (LABEL_FIT, ImgsynthError, InputError, RecipeError,
                                    RecipeSession, safe_load)

STATIC = Path(__file__).resolve().parent / "static"
HOST = "127.0.0.1"
DEFAULT_PORT = 8765
PORTS_TRIED = 20  # without --port, the next free port after the default is taken
MAX_BODY = 4 << 20
APP_CSP = ("default-src 'self'; img-src 'self' data: blob:; frame-src 'self'; object-src 'none'; "
           "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# Files from an opened folder: a report's inline styles and images, no scripts, own origin.
FILE_CSP = ("sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; "
            "frame-ancestors 'self'")


class Studio:
    """What one studio serves: the opened folders, the data sets and reports found in
    them, and at most one recipe being edited."""

    def __init__(self):
        self.lock = threading.Lock()
        self.roots: list[Path] = []
        self.items: list[dict[str, Any]] = []  # data sets and reports, by id
        self.sets: dict[int, DataSet] = {}
        self.recipe: RecipeSession | None = None

    def open(self, target: str | os.PathLike) -> dict[str, Any]:
        """Open a recipe (a YAML file with source or parts), or a folder (or a COCO .json /
        YOLO data.yaml, whose folder is opened)."""
        path = Path(target).expanduser()
        if not path.exists():
            raise InputError("no such file or folder", file=str(path),
                             fix="give a recipe .yaml, an imgsynth output folder or a data set folder")
        if path.is_file():
            if path.suffix.lower() in (".yaml", ".yml") and not _is_data_yaml(path):
                session = RecipeSession(path)
                with self.lock:
                    if self.recipe is not None:
                        self.recipe.close()
                    self.recipe = session
                return {"opened": "recipe", "path": str(path)}
            if path.suffix.lower() not in (".json", ".yaml", ".yml"):
                raise InputError("not a recipe or a data set", file=str(path),
                                 fix="give a recipe .yaml, a folder, a COCO .json or a YOLO data.yaml")
            # its folder is opened; a COCO file of any name is one of its data sets
            also = [Found("coco", Path(os.path.realpath(path)))] if path.suffix.lower() == ".json" else []
            return {"opened": "folder", "root": self.add_root(path.parent, also)}
        return {"opened": "folder", "root": self.add_root(path)}

    def add_root(self, folder: Path, also: list[Found] = ()) -> int:
        real = Path(os.path.realpath(folder))
        with self.lock:
            if real in self.roots:
                return self.roots.index(real)
            self.roots.append(real)
            root_id = len(self.roots) - 1
        found = scan(real)
        found += [item for item in also if all(f.path != item.path for f in found)]
        with self.lock:
            for item in found:
                self.items.append(self._describe(item, root_id, folder))
        return root_id

    def _describe(self, found: Found, root_id: int, shown_root: Path) -> dict[str, Any]:
        root = self.roots[root_id]
        rel = found.path.relative_to(root).as_posix()
        item = {"id": len(self.items), "kind": found.kind, "root": root_id,
                "name": (shown_root / rel).as_posix() if rel != "." else str(shown_root),
                "rel": "" if rel == "." else rel, "path": str(found.path)}
        if found.kind == "report":
            item["url"] = f"/files/{root_id}/{item['rel'] + '/' if item['rel'] else ''}report.html"
        return item

    def data_set(self, item_id: int) -> DataSet:
        with self.lock:
            if not 0 <= item_id < len(self.items) or self.items[item_id]["kind"] in ("report", "recipe"):
                raise InputError(f"no data set {item_id}")
            if item_id in self.sets and self.sets[item_id].stale():
                del self.sets[item_id]  # read again: the index thread of the old one ends by itself
            if item_id not in self.sets:
                item = self.items[item_id]
                self.sets[item_id] = open_set(Found(item["kind"], Path(item["path"])),
                                              self.roots[item["root"]])
            return self.sets[item_id]

    def state(self) -> dict[str, Any]:
        with self.lock:
            return {"roots": [str(r) for r in self.roots], "items": list(self.items),
                    "recipe": str(self.recipe.path) if self.recipe else None}

    def file_path(self, root_id: int, rel: str) -> Path | None:
        """The file `rel` under opened folder `root_id`, or None when the path is refused:
        a part that is empty, '.' or '..' (so no absolute path either), a NUL, or a real
        path (symlinks resolved) outside the folder."""
        if not 0 <= root_id < len(self.roots) or "\x00" in rel:
            return None
        parts = rel.split("/")
        if any(part in ("", ".", "..") for part in parts):
            return None
        root = self.roots[root_id]
        path = root.joinpath(*parts)
        return path if inside(path, root) else None


def _is_data_yaml(path: Path) -> bool:
    """A YOLO data.yaml rather than a recipe: it names classes and has no source."""
    try:
        data = safe_load(path.read_text(encoding="utf-8"), str(path))
    except (OSError, UnicodeDecodeError, ImgsynthError):
        return False
    return isinstance(data, dict) and "names" in data and not {"source", "parts", "model"} & set(data)


# ---------------------------------------------------------------- HTTP

class StudioServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = False  # a port in use is an error, not shared

    def __init__(self, studio: Studio, port: int):
        super().__init__((HOST, port), Handler)
        self.studio = studio
        self.port = self.server_address[1]
        self.access_key = secrets.token_urlsafe(24)
        self.page_token = secrets.token_urlsafe(24)
        self.cookie_name = f"imgsynth_studio_{self.port}"  # cookies are per host, not per port

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/?key={self.access_key}"


class Handler(BaseHTTPRequestHandler):
    server: StudioServer
    server_version = "imgsynth-studio"
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle kept-alive connection is closed

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        pass  # the terminal shows errors only

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self._handle("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._handle("POST")

    # -- checks --------------------------------------------------------------------------

    def _handle(self, method: str) -> None:
        try:
            url = urlsplit(self.path)
            if not self._host_allowed():
                return self._plain(403, "refused: the Host header must be 127.0.0.1 or localhost "
                                        f"at port {self.server.port}")
            query = parse_qs(url.query)
            if method == "GET" and url.path == "/" and "key" in query:
                return self._enter(query["key"][0])
            if not self._has_key():
                return self._plain(403, "this studio needs its access key: open the address that "
                                        "`imgsynth studio` printed (http://127.0.0.1:PORT/?key=...)")
            if method == "POST":
                refusal = self._post_refusal()
                if refusal:
                    return self._plain(403, refusal)
                return self._post(url.path, self._json_body())
            return self._get(url.path, query)
        except ImgsynthError as err:
            self._json({"error": f"error: {err}"}, 400)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except _BadRequest as exc:
            self._plain(exc.status, exc.message)
        except Exception:  # noqa: BLE001 - a bug: its traceback on the terminal, a 500 to the page
            traceback.print_exc(file=sys.stderr)
            self._json({"error": "internal error in imgsynth studio (traceback in its terminal)"}, 500)

    def _host_allowed(self) -> bool:
        host = self.headers.get("Host", "")
        name, _, port = host.rpartition(":") if not host.endswith("]") else (host, "", "")
        if not port.isdigit():
            name, port = host, "80"
        return name.lower() in ("127.0.0.1", "localhost") and int(port) == self.server.port

    def _has_key(self) -> bool:
        try:
            cookie = SimpleCookie(self.headers.get("Cookie", ""))
        except CookieError:
            return False
        morsel = cookie.get(self.server.cookie_name)
        return morsel is not None and hmac.compare_digest(morsel.value, self.server.access_key)

    def _enter(self, key: str) -> None:
        if not hmac.compare_digest(key, self.server.access_key):
            return self._plain(403, "wrong access key: open the address that `imgsynth studio` printed")
        self.send_response(303)
        self.send_header("Location", "/")
        self.send_header("Set-Cookie", f"{self.server.cookie_name}={self.server.access_key}; "
                                       "HttpOnly; SameSite=Strict; Path=/")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _post_refusal(self) -> str | None:
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{self.headers.get('Host')}":
            return f"refused: a request from {origin}"
        if self.headers.get("Sec-Fetch-Site", "same-origin") not in ("same-origin", "none"):
            return "refused: a cross-site request"
        if not hmac.compare_digest(self.headers.get("X-Studio-Token", ""), self.server.page_token):
            return "refused: a change needs the page's token (reload the studio page)"
        if not self.headers.get("Content-Type", "").startswith("application/json"):
            return "refused: changes are sent as application/json"
        return None

    def _json_body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise _BadRequest(411, "a Content-Length is needed") from None
        if not 0 <= length <= MAX_BODY:
            raise _BadRequest(413, f"at most {MAX_BODY} bytes")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            raise _BadRequest(400, "the body is not JSON") from None
        if not isinstance(body, dict):
            raise _BadRequest(400, "the body is not a JSON object")
        return body

    # -- routes --------------------------------------------------------------------------

    def _get(self, path: str, query: dict[str, list[str]]) -> None:
        studio = self.server.studio
        if path == "/":
            page = (STATIC / "index.html").read_text(encoding="utf-8")
            return self._send(page.replace("{{TOKEN}}", self.server.page_token).encode("utf-8"),
                              "text/html; charset=utf-8", csp=APP_CSP)
        if path.startswith("/static/"):
            return self._static(path[len("/static/"):])
        if path == "/api/state":
            return self._json(studio.state())
        if path == "/api/recipe":
            recipe = self._recipe()
            return self._json({"path": str(recipe.path), "text": recipe.baseline})
        if match := re.fullmatch(r"/api/render/(\d+)/(\d+)/(image|mask|labels)", path):
            fit = _fit(query, LABEL_FIT)
            found = self._recipe().file(int(match[1]), int(match[2]), match[3], fit)
            if found is None:
                return self._plain(404, "no such file (a sample without a mask, or a render no "
                                        "longer kept: render again)")
            return self._send(found[0], found[1], cache=True)
        if match := re.fullmatch(r"/api/sets/(\d+)", path):
            data_set = studio.data_set(int(match[1]))
            return self._json({**studio.items[int(match[1])], **data_set.info()})
        if match := re.fullmatch(r"/api/sets/(\d+)/page", path):
            data_set = studio.data_set(int(match[1]))
            return self._json(data_set.page(
                _int(query, "start", 0), _int(query, "size", 48),
                [c for c in query.get("class", []) if c],
                (_float(query, "min_count", 0), _float(query, "max_count", float("inf"))),
                (_float(query, "min_size", 0) / 100, _float(query, "max_size", float("inf")) / 100)))
        if match := re.fullmatch(r"/api/sets/(\d+)/item/(\d+)", path):
            detail = studio.data_set(int(match[1])).detail(int(match[2]))
            if detail is None:
                return self._plain(404, "no such record")
            root = studio.items[int(match[1])]["root"]
            detail["links"] = {name: f"/files/{root}/{rel}" for name, rel in detail["links"].items()}
            return self._json(detail)
        if match := re.fullmatch(r"/api/sets/(\d+)/thumb/(\d+)", path):
            data_set = studio.data_set(int(match[1]))
            fit = _fit(query, THUMB_FIT, most=DETAIL_FIT[0])
            try:
                data = data_set.thumbnail(int(match[2]), query.get("labels", ["1"])[0] != "0", fit)
            except ImgsynthError as err:
                return self._send(_message_image(str(err.message)), "image/svg+xml", status=200,
                                  csp=FILE_CSP)
            return self._send(data, "image/jpeg", cache=True)
        if match := re.fullmatch(r"/files/(\d+)/(.+)", path):
            return self._file(int(match[1]), unquote(match[2]))
        if path == "/favicon.ico":
            return self._send(b"", "image/x-icon", status=204)
        return self._plain(404, "not found")

    def _post(self, path: str, body: dict[str, Any]) -> None:
        studio = self.server.studio
        if path == "/api/open":
            return self._json(studio.open(str(body.get("path", ""))))
        if path == "/api/recipe/render":
            edit = body.get("edit")
            if edit is not None:
                edit = (str(edit["key"]), str(edit["value"]))
            return self._json(self._recipe().render(
                str(body.get("text", "")), edit=edit, part=body.get("part"),
                start=int(body.get("start", 0)), count=int(body.get("count", 12)),
                reload=body.get("reload") is True))
        if path == "/api/recipe/save":
            recipe = self._recipe()
            saved = recipe.save(str(body.get("text", "")), body.get("name") or None,
                                overwrite=body.get("overwrite") is True)
            return self._json(saved)  # saved: false, exists: true -> the page asks first
        return self._plain(404, "not found")

    def _recipe(self) -> RecipeSession:
        recipe = self.server.studio.recipe
        if recipe is None:
            raise RecipeError("no recipe is open", fix="start the studio with a recipe, or open one")
        return recipe

    # -- responses -----------------------------------------------------------------------

    def _static(self, name: str) -> None:
        if not re.fullmatch(r"[\w-]+\.(js|css|svg|png)", name) or not (STATIC / name).is_file():
            return self._plain(404, "not found")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith(("text/", "application/javascript")):
            kind += "; charset=utf-8"
        return self._send((STATIC / name).read_bytes(), kind)

    def _file(self, root_id: int, rel: str) -> None:
        path = self.server.studio.file_path(root_id, rel)
        if path is None:
            return self._plain(403, "refused: only files under the opened folders are served")
        if not path.is_file():
            return self._plain(404, "not found")
        kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix.lower() in (".jsonl", ".yaml", ".yml", ".txt", ".json", ".xml", ".csv"):
            kind = "text/plain"
        with open(path, "rb") as fh:
            size = os.fstat(fh.fileno()).st_size
            self.send_response(200)
            self._headers(kind + ("; charset=utf-8" if kind.startswith("text/") else ""), size,
                          csp=FILE_CSP)
            self.end_headers()
            shutil.copyfileobj(fh, self.wfile)

    def _json(self, data: Any, status: int = 200) -> None:
        try:
            text = json.dumps(data, allow_nan=False, default=_jsonable)
        except ValueError:  # a NaN in a record (Python's json writes one): null for the browser
            text = json.dumps(_finite(data), allow_nan=False, default=_jsonable)
        self._send(text.encode("utf-8"), "application/json", status=status)

    def _plain(self, status: int, text: str) -> None:
        self.close_connection = True  # a refused request's body may be unread
        self._send((text + "\n").encode("utf-8"), "text/plain; charset=utf-8", status=status)

    def _send(self, data: bytes, kind: str, *, status: int = 200, csp: str | None = None,
              cache: bool = False) -> None:
        self.send_response(status)
        self._headers(kind, len(data), csp=csp, cache=cache)
        self.end_headers()
        self.wfile.write(data)

    def _headers(self, kind: str, length: int, *, csp: str | None, cache: bool = False) -> None:
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Cache-Control", "private, max-age=3600" if cache else "no-store")
        if csp:
            self.send_header("Content-Security-Policy", csp)
        if self.close_connection:
            self.send_header("Connection", "close")


class _BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def _int(query: dict, name: str, default: int) -> int:
    try:
        return int(query[name][0]) if name in query else default
    except ValueError:
        raise _BadRequest(400, f"'{name}' is not a whole number") from None


def _float(query: dict, name: str, default: float) -> float:
    raw = query.get(name, [""])[0].strip()
    try:
        return float(raw) if raw else default
    except ValueError:
        raise _BadRequest(400, f"'{name}' is not a number") from None


def _fit(query: dict, default: tuple[int, int], most: int = 2048) -> tuple[int, int]:
    side = _int(query, "fit", 0)
    return (min(side, most), min(side, most)) if side > 0 else default


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _message_image(text: str) -> bytes:
    """A tile saying why an image is not shown (unreadable, too large, outside the folder)."""
    from html import escape

    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='240' height='180'>"
            f"<rect width='100%' height='100%' fill='#2d2d2d'/><foreignObject x='8' y='8' "
            f"width='224' height='164'><div xmlns='http://www.w3.org/1999/xhtml' style='color:#ff8a8a;"
            f"font:12px sans-serif'>{escape(text[:300])}</div></foreignObject></svg>").encode("utf-8")


# ---------------------------------------------------------------- starting

def bind(studio: Studio, port: int | None) -> StudioServer:
    """A server on 127.0.0.1:port; without a port, the first free one from DEFAULT_PORT."""
    tried = [port] if port is not None else range(DEFAULT_PORT, DEFAULT_PORT + PORTS_TRIED)
    last: OSError | None = None
    for candidate in tried:
        try:
            return StudioServer(studio, candidate)
        except OSError as exc:
            last = exc
    shown = f"port {port}" if port is not None else f"ports {DEFAULT_PORT}-{DEFAULT_PORT + PORTS_TRIED - 1}"
    raise RecipeError(f"cannot listen on {HOST} at {shown}: {last.strerror if last else ''}",
                      key="--port", fix="pass another --port, or --port 0 for any free port")


def start(target: str | os.PathLike | None, port: int | None = 0) -> StudioServer:
    """A studio serving in a background thread (for tests and scripts): `server.url`,
    then `server.shutdown()`."""
    studio = Studio()
    studio.open(target if target is not None else ".")
    server = bind(studio, port)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                     name="imgsynth studio", daemon=True).start()
    return server


def serve(target: str | os.PathLike | None, port: int | None = None) -> None:
    """`imgsynth studio`: serve until Ctrl-C."""
    studio = Studio()
    studio.open(target if target is not None else ".")
    server = bind(studio, port)
    print(f"imgsynth studio: open {server.url}\n(only this machine can connect; Ctrl-C stops it)",
          file=sys.stderr, flush=True)

    def stop(signum, frame):  # SIGTERM as Ctrl-C: the scratch folder is removed
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("imgsynth studio: stopped", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.server_close()
        if studio.recipe is not None:
            studio.recipe.close()
