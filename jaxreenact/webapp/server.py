"""The app's HTTP side: a standard-library `ThreadingHTTPServer` serving the page under `static/` and a small JSON API
over `webapp.service.Service`. Nothing is fetched from elsewhere (no CDN, no fonts): the page is plain HTML, CSS
and JavaScript.

API (the page sends its session id in the `X-Session` header):
  POST /api/session                      -> {"session", ...Service.info()}
  PUT  /api/upload?slot=S&name=N  (body) -> {"name", "kind", ...}   S: source | driving | edit
  POST /api/reenact       {source, driving: "upload"|"example", mode, component, gains, smooth, tune, tune_steps,
                           max_frames}   -> a job
  POST /api/edit/source   {source, tune, tune_steps}                -> a job
  POST /api/edit/render   {dp: [15]}                                -> image/png (one jitted frame)
  POST /api/edit/export   {dp: [15]}                                -> {"npy_url", "json_url"}
  POST /api/edit/sweep    {direction}                               -> a job
  GET  /api/job/ID                       -> {"state": queued|running|done|error, "bars", "seconds", "result"|"error"}
  GET  /files/SESSION/PATH               -> a file of the session's folder (byte ranges, for <video>)
  GET  /examples/source, /examples/driving -> the shipped example inputs
Errors a user can cause come back as 400 {"error": message}; the page shows them.
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import mimetypes
import pathlib
import re
import signal
import sys
import threading
import traceback
import urllib.parse

from jaxreenact.common.errors import UserError
from jaxreenact.webapp.service import EXAMPLES, Service, example_path
from jaxreenact.webapp.service import Options as ServiceOptions

STATIC = pathlib.Path(__file__).resolve().parent / "static"
STATIC_FILES = {"/": "index.html", "/static/app.js": "app.js", "/static/app.css": "app.css"}
MAX_JSON = 1 << 20
TYPES = {".mp4": "video/mp4", ".gif": "image/gif", ".png": "image/png", ".json": "application/json",
         ".npy": "application/octet-stream", ".js": "text/javascript", ".css": "text/css", ".html": "text/html"}  # fmt: skip
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclasses.dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 7860  # 0: any free port (the URL line says which)
    service: ServiceOptions = dataclasses.field(default_factory=ServiceOptions)
    verbose: bool = False


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "jaxreenact-app"
    protocol_version = "HTTP/1.1"
    service: Service  # set on the subclass `make_server` builds
    verbose = False

    # -- plumbing ---------------------------------------------------------------------------------------------
    def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
        if self.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, body: bytes, ctype: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj, status: int = 200) -> None:
        self._send(status, json.dumps(obj).encode(), "application/json")

    def _body(self, limit: int) -> bytes:
        try:
            n = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise HTTPError(400, "bad Content-Length") from None
        if n > limit:
            raise UserError(f"the request is larger than the app's limit ({limit / 2**20:g} MB; see --max-upload-mb)")
        return self.rfile.read(n) if n else b""

    def _request_json(self) -> dict:
        try:
            doc = json.loads(self._body(MAX_JSON) or b"{}")
        except json.JSONDecodeError as e:
            raise HTTPError(400, f"the request is not JSON ({e})") from None
        if not isinstance(doc, dict):
            raise HTTPError(400, "the request must be a JSON object")
        return doc

    def _dispatch(self, fn) -> None:
        try:
            self._check_host()
            fn()
        except UserError as e:
            self._json({"error": str(e)}, 400)
        except HTTPError as e:
            self._json({"error": str(e)}, e.status)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # shown in the page; the traceback goes to the log
            traceback.print_exc(file=sys.stderr)
            self._json({"error": f"internal error ({type(e).__name__}: {e}); see the app's log"}, 500)

    def _check_host(self) -> None:
        """On a loopback address, only pages of this machine may call the app (no DNS rebinding)."""
        if self.server.server_address[0] not in ("127.0.0.1", "::1"):
            return
        host = urllib.parse.urlsplit("//" + (self.headers.get("Host") or "")).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise HTTPError(403, f"Host {host!r}: this app answers only to 127.0.0.1 / localhost")

    def _session(self):
        return self.service.session(self.headers.get("X-Session"))

    # -- methods ----------------------------------------------------------------------------------------------
    def do_GET(self):
        self._dispatch(self._get)

    do_HEAD = do_GET

    def do_POST(self):
        self._dispatch(self._post)

    def do_PUT(self):
        self._dispatch(self._put)

    def _get(self):
        url = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(url.path)
        if path in STATIC_FILES:
            f = STATIC / STATIC_FILES[path]
            return self._send(200, f.read_bytes(), TYPES[f.suffix] + "; charset=utf-8")
        if path == "/api/info":
            return self._json(self.service.info())
        if path.startswith("/api/job/"):
            return self._json(self.service.job_status(self._session(), path.rpartition("/")[2]))
        if path.startswith("/files/"):
            return self._file(path)
        if path.startswith("/examples/") and path[10:] in EXAMPLES:
            f = example_path(path[10:])
            if f is not None:
                return self._send_file(f)
        raise HTTPError(404, f"no such page: {path}")

    def _post(self):
        path = urllib.parse.urlsplit(self.path).path
        svc = self.service
        if path == "/api/session":
            self._body(MAX_JSON)
            return self._json({"session": svc.new_session().id, **svc.info()})
        actions = {
            "/api/reenact": svc.reenact,
            "/api/edit/source": svc.edit_source,
            "/api/edit/export": svc.export_dp,
            "/api/edit/sweep": svc.sweep,
        }
        if path == "/api/edit/render":
            req = self._request_json()
            return self._send(200, svc.render(self._session(), req), "image/png")
        if path in actions:
            req = self._request_json()
            return self._json(actions[path](self._session(), req))
        raise HTTPError(404, f"no such action: {path}")

    def _put(self):
        url = urllib.parse.urlsplit(self.path)
        if url.path != "/api/upload":
            raise HTTPError(404, f"no such upload target: {url.path}")
        q = urllib.parse.parse_qs(url.query)
        s = self._session()
        data = self._body(int(self.service.opts.max_upload_mb * 2**20))
        self._json(self.service.upload(s, q.get("slot", [""])[0], q.get("name", [""])[0], data))

    def _file(self, path: str):
        """A file of a session's folder, with single byte ranges (what <video> asks for)."""
        m = re.fullmatch(r"/files/([^/]+)/(.+)", path)
        if m is None:
            raise HTTPError(404, f"no such file: {path}")
        s = self.service.session(m[1])
        f = (s.dir / m[2]).resolve()
        if not f.is_relative_to(s.dir.resolve()) or not f.is_file():
            raise HTTPError(404, f"no such file: {m[2]}")
        self._send_file(f)

    def _send_file(self, f: pathlib.Path):
        data = f.read_bytes()
        ctype = TYPES.get(f.suffix.lower()) or mimetypes.guess_type(f.name)[0] or "application/octet-stream"
        headers = {"Accept-Ranges": "bytes"}
        r = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", "").strip())
        if r is None or not (r[1] or r[2]):
            return self._send(200, data, ctype, headers)
        size = len(data)
        lo, hi = (int(r[1]), min(int(r[2] or size - 1), size - 1)) if r[1] else (max(0, size - int(r[2])), size - 1)
        if lo > hi or lo >= size:
            return self._send(416, b"", ctype, {"Content-Range": f"bytes */{size}"})
        headers["Content-Range"] = f"bytes {lo}-{hi}/{size}"
        self._send(206, data[lo : hi + 1], ctype, headers)


def make_server(service: Service, host: str = "127.0.0.1", port: int = 0, verbose: bool = False):
    """A `ThreadingHTTPServer` of the app on `service` (not started: call `serve_forever`)."""
    handler = type("AppHandler", (Handler,), {"service": service, "verbose": verbose})
    try:
        httpd = http.server.ThreadingHTTPServer((host, port), handler)
    except OSError as e:
        raise UserError(f"--host {host} --port {port}: cannot listen there ({e.strerror or e}); "
                        "pick another port (--port 0 takes any free one)") from None  # fmt: skip
    httpd.daemon_threads = True
    return httpd


def url_of(httpd) -> str:
    host, port = httpd.server_address[:2]
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"


def serve(opts: Options, locate=None) -> None:
    """Load the networks, start the server and serve until interrupted (Ctrl-C, SIGTERM); the temporary folders
    are removed on the way out."""
    service = Service(opts.service, locate=locate)
    try:
        httpd = make_server(service, opts.host, opts.port, opts.verbose)
    except BaseException:
        service.close()
        raise
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        print(f"jaxreenact app: {url_of(httpd)}  (Ctrl-C stops it)", flush=True)
        if opts.service.tiny:
            print(f"  NOTE: {service.info()['banner']}", flush=True)
        if service.weights_message:
            print("  " + service.weights_message.replace("\n", "\n  "), flush=True)
        if opts.host not in LOOPBACK:
            print(f"  WARNING: listening on {opts.host}: anyone who can reach it can use the app", flush=True)
        httpd.serve_forever(poll_interval=0.25)
    finally:
        httpd.server_close()
        service.close()


def _terminate(signum, frame):
    print("terminated", file=sys.stderr)
    raise SystemExit(143)
