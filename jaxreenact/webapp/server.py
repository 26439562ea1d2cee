"""The app's HTTP side: a Starlette application served by uvicorn, for the page under `static/` (plain HTML, CSS and
JavaScript, nothing fetched from elsewhere) and a small JSON API over `webapp.service.Service`.

API (every request but GET sends the page's session id in the `X-Session` header; see "Guards" below):
  POST   /api/session                      -> {"session", ...Service.info()}
  DELETE /api/session                      -> the session closed: its jobs stopped, its folder removed
  PUT    /api/upload?slot=S&name=N  (body) -> {"name", "kind", ...}   S: source | driving | edit
  POST   /api/reenact     {source, driving: "upload"|"example", mode, component, gains, smooth, tune, tune_steps,
                           max_frames}     -> a job
  POST   /api/edit/source {source, tune, tune_steps}                -> a job
  POST   /api/edit/render {dp: [15]}                                -> image/png (one jitted frame)
  POST   /api/edit/export {dp: [15]}                                -> {"npy_url", "json_url"}
  POST   /api/edit/sweep  {direction}                               -> a job
  GET    /api/job/ID                       -> {"state": queued|running|done|error|cancelled, "bars", "seconds", ...}
  POST   /api/job/ID/cancel                -> the job, stopped
  GET    /files/SESSION/PATH               -> a file of the session's folder (byte ranges, streamed)
  GET    /examples/source, /examples/driving -> the shipped example inputs
Errors a user can cause come back as 4xx {"error": message} (503 when the app is at a limit); the page shows them.
An internal error is a 500 naming only the exception's type (the traceback goes to the log, never a path).

Guards: on a loopback address only Host names of this machine (and `--allowed-host`) are answered (no DNS
rebinding); a request that changes state must carry the `X-Session` header (a cross-site form or simple request
cannot set one, and no CORS preflight is ever granted) and, when the browser says where it comes from (`Origin`,
`Sec-Fetch-Site`), come from the app's own page. Request headers must arrive within `request_timeout` seconds and
a body must not stall for longer; bodies are bounded before they are read (Content-Length over the limit: 413).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import pathlib
import shutil
import socket
import sys
import threading
import urllib.parse

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route
from uvicorn.protocols.http.h11_impl import H11Protocol

from jaxreenact.common import preemption
from jaxreenact.common.errors import UserError
from jaxreenact.webapp.service import EXAMPLES, Busy, Service, example_path
from jaxreenact.webapp.service import Options as ServiceOptions

STATIC = pathlib.Path(__file__).resolve().parent / "static"
STATIC_FILES = {"/": "index.html", "/static/app.js": "app.js", "/static/app.css": "app.css"}
MAX_JSON = 1 << 20
TYPES = {".mp4": "video/mp4", ".gif": "image/gif", ".png": "image/png", ".json": "application/json",
         ".npy": "application/octet-stream", ".js": "text/javascript", ".css": "text/css", ".html": "text/html"}  # fmt: skip
LOOPBACK = ("127.0.0.1", "localhost", "::1")
NO_STORE = {"Cache-Control": "no-store"}


@dataclasses.dataclass
class Options:
    host: str = "127.0.0.1"
    port: int = 7860  # 0: any free port (the URL line says which)
    service: ServiceOptions = dataclasses.field(default_factory=ServiceOptions)
    verbose: bool = False
    request_timeout: float = 30.0  # seconds for a request's headers, and for each piece of its body
    backlog: int = 256  # connections waiting to be accepted
    max_connections: int = 200  # open connections and requests; beyond: 503
    allowed_hosts: tuple[str, ...] = ()  # Host names answered besides this machine's (a reverse proxy's)


class HTTPError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status, headers=NO_STORE)


# -- guards -----------------------------------------------------------------------------------------------------
class Guard:
    """ASGI middleware: the Host, Origin and CSRF-header checks of the module doc, before any route runs."""

    def __init__(self, app, loopback: bool, allowed_hosts: tuple[str, ...]):
        self.app, self.loopback, self.allowed = app, loopback, {h.lower() for h in allowed_hosts}

    def refuse(self, method: str, h: Headers) -> str | None:
        host = h.get("host") or ""
        name = urllib.parse.urlsplit("//" + host).hostname or ""
        if (self.loopback and name not in LOOPBACK and name not in self.allowed) or (
            not self.loopback and self.allowed and name not in self.allowed
        ):
            return f"Host {name[:80]!r}: this app answers only to {', '.join(LOOPBACK[:2] + tuple(self.allowed))}"
        if method in ("GET", "HEAD"):
            return None
        if h.get("sec-fetch-site", "same-origin") not in ("same-origin", "none"):
            return "a request from another site: refused"
        origin = h.get("origin")
        if origin is not None and urllib.parse.urlsplit(origin).netloc.lower() != host.lower():
            return f"a request from {origin[:80]}: only the app's own page may change its state"
        if "x-session" not in h:
            return "the X-Session header is missing: requests that change state come from the app's page"
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            why = self.refuse(scope["method"], Headers(scope=scope))
            if why is not None:
                await _error(403, why)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class TimedH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for a request's headers (uvicorn itself only times idle
    keep-alive connections): a connection that has not sent a whole request head in `header_timeout` seconds is
    closed (a slow-loris client holds nothing for long)."""

    header_timeout = 30.0

    def connection_made(self, transport):
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_expired)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        in_request = self.cycle is not None and not self.cycle.response_complete
        if in_request and self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        elif not in_request and self._head_timer is None and not self.transport.is_closing():
            self._head_timer = self.loop.call_later(self.header_timeout, self._head_expired)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None  # idle now: uvicorn's keep-alive timeout applies

    def _head_expired(self) -> None:
        self._head_timer = None
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def connection_lost(self, exc):
        if getattr(self, "_head_timer", None) is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)


# -- the application --------------------------------------------------------------------------------------------
def build_app(service: Service, opts: Options | None = None):
    """The ASGI application of the app on `service` (the guards of the module doc around the routes)."""
    opts = opts or Options()
    svc = service
    max_upload = int(svc.opts.max_upload_mb * 2**20)

    async def read_body(request: Request, limit: int, sink=None) -> bytes:
        """The request's body, at most `limit` bytes (checked from Content-Length first), each piece within
        `request_timeout`; written to `sink` when given."""
        n = request.headers.get("content-length")
        if n is not None and (not n.isdigit() or int(n) > limit):
            if n.isdigit():
                raise HTTPError(413, f"the request is larger than the app's limit ({limit / 2**20:g} MB; "
                                     "see --max-upload-mb)")  # fmt: skip
            raise HTTPError(400, "bad Content-Length")
        chunks, total = [], 0
        while True:
            try:
                msg = await asyncio.wait_for(request.receive(), opts.request_timeout)
            except TimeoutError:
                raise HTTPError(408, f"the request's body stalled for {opts.request_timeout:g} s") from None
            if msg["type"] == "http.disconnect":
                raise HTTPError(400, "the client went away during the upload")
            piece = msg.get("body", b"")
            total += len(piece)
            if total > limit:
                raise HTTPError(413, f"the request is larger than the app's limit ({limit / 2**20:g} MB)")
            if sink is not None:
                sink(piece)
            else:
                chunks.append(piece)
            if not msg.get("more_body", False):
                return b"".join(chunks)

    async def request_json(request: Request) -> dict:
        raw = await read_body(request, MAX_JSON)
        try:
            doc = json.loads(raw or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise HTTPError(400, f"the request is not JSON ({str(e)[:80]})") from None
        if not isinstance(doc, dict):
            raise HTTPError(400, "the request must be a JSON object")
        return doc

    def session_of(request: Request):
        return svc.session(request.headers.get("x-session"))

    async def page(request: Request):
        f = STATIC / STATIC_FILES[request.url.path]
        return Response(f.read_bytes(), media_type=TYPES[f.suffix] + "; charset=utf-8", headers=NO_STORE)

    async def info(request: Request):
        return JSONResponse(svc.info(), headers=NO_STORE)

    async def session_new(request: Request):
        await read_body(request, MAX_JSON)
        s = await run_in_threadpool(svc.new_session)
        return JSONResponse({"session": s.id, **svc.info()}, headers=NO_STORE)

    async def session_close(request: Request):
        s = session_of(request)
        await run_in_threadpool(svc.close_session, s)
        return JSONResponse({"closed": s.id}, headers=NO_STORE)

    async def upload(request: Request):
        s = session_of(request)
        slot, name = request.query_params.get("slot", ""), request.query_params.get("name", "")
        path = await run_in_threadpool(svc.upload_path, s, slot, name)
        try:
            with open(path, "wb") as f:
                await read_body(request, max_upload, f.write)
            out = await run_in_threadpool(svc.accept_upload, s, slot, name, path)
        except BaseException:  # too large, stalled, cut off, refused: nothing stays
            shutil.rmtree(path.parent, ignore_errors=True)
            raise
        return JSONResponse(out, headers=NO_STORE)

    def action(fn, png: bool = False):
        async def endpoint(request: Request):
            s = session_of(request)
            req = await request_json(request)
            out = await run_in_threadpool(fn, s, req)
            if png:
                return Response(out, media_type="image/png", headers=NO_STORE)
            return JSONResponse(out, headers=NO_STORE)

        return endpoint

    async def job(request: Request):
        st = svc.job_status(session_of(request), request.path_params["job"])
        return JSONResponse(st, headers=NO_STORE)

    async def job_cancel(request: Request):
        await read_body(request, MAX_JSON)
        st = await run_in_threadpool(svc.cancel, session_of(request), request.path_params["job"])
        return JSONResponse(st, headers=NO_STORE)

    def send_file(f: pathlib.Path) -> FileResponse:
        ctype = TYPES.get(f.suffix.lower()) or "application/octet-stream"
        return FileResponse(f, media_type=ctype, headers=NO_STORE)  # streamed; single and multiple byte ranges

    async def files(request: Request):
        s = svc.session(request.path_params["session"])
        rel = request.path_params["path"]
        f = (s.dir / rel).resolve()
        if not f.is_relative_to(s.dir.resolve()) or not f.is_file():
            raise HTTPError(404, f"no such file: {rel[:200]}")
        return send_file(f)

    async def examples(request: Request):
        kind = request.path_params["kind"]
        f = example_path(kind) if kind in EXAMPLES else None
        if f is None:
            raise HTTPError(404, f"no such example: {kind[:40]}")
        return send_file(f)

    async def user_error(request, e: UserError):
        return _error(503 if isinstance(e, Busy) else 400, str(e))

    async def http_error(request, e):
        status = getattr(e, "status", None) or getattr(e, "status_code", 500)
        msg = str(e) if isinstance(e, HTTPError) else (e.detail if status != 404 else "no such page")
        return _error(status, msg)

    async def internal(request, e: Exception):  # uvicorn logs the traceback
        return _error(500, f"internal error ({type(e).__name__}); see the app's log")

    routes = [
        *(Route(p, page, methods=["GET"]) for p in STATIC_FILES),
        Route("/api/info", info, methods=["GET"]),
        Route("/api/session", session_new, methods=["POST"]),
        Route("/api/session", session_close, methods=["DELETE"]),
        Route("/api/upload", upload, methods=["PUT"]),
        Route("/api/reenact", action(svc.reenact), methods=["POST"]),
        Route("/api/edit/source", action(svc.edit_source), methods=["POST"]),
        Route("/api/edit/render", action(svc.render, png=True), methods=["POST"]),
        Route("/api/edit/export", action(svc.export_dp), methods=["POST"]),
        Route("/api/edit/sweep", action(svc.sweep), methods=["POST"]),
        Route("/api/job/{job}", job, methods=["GET"]),
        Route("/api/job/{job}/cancel", job_cancel, methods=["POST"]),
        Route("/files/{session}/{path:path}", files, methods=["GET"]),
        Route("/examples/{kind}", examples, methods=["GET"]),
    ]
    handlers = {UserError: user_error, HTTPError: http_error, HTTPException: http_error, Exception: internal}
    app = Starlette(routes=routes, exception_handlers=handlers)
    return Guard(app, opts.host in LOOPBACK or opts.host.startswith("127."), opts.allowed_hosts)


# -- serving ----------------------------------------------------------------------------------------------------
class AppServer:
    """The app on a bound, listening socket: `serve_forever()` (blocking) or `start()` (a thread, for tests),
    `shutdown()`."""

    def __init__(self, service: Service, opts: Options):
        family = socket.AF_INET6 if ":" in opts.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((opts.host, opts.port))
            sock.listen(opts.backlog)
        except OSError as e:
            sock.close()
            raise UserError(f"--host {opts.host} --port {opts.port}: cannot listen there ({e.strerror or e}); "
                            "pick another port (--port 0 takes any free one)") from None  # fmt: skip
        self.sock, self.service, self.opts = sock, service, opts
        protocol = type("Protocol", (TimedH11Protocol,), {"header_timeout": opts.request_timeout})
        config = uvicorn.Config(
            build_app(service, opts),
            http=protocol,
            lifespan="off",
            backlog=opts.backlog,
            limit_concurrency=opts.max_connections,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=5,
            h11_max_incomplete_event_size=64 * 1024,
            log_level="info" if opts.verbose else "warning",
            access_log=opts.verbose,
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self.thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def serve_forever(self) -> None:
        self.server.run(sockets=[self.sock])

    def start(self) -> AppServer:
        self.thread = threading.Thread(target=self.serve_forever, name="app-server", daemon=True)
        self.thread.start()
        while not self.server.started and self.thread.is_alive():
            threading.Event().wait(0.02)
        return self

    def shutdown(self) -> None:
        self.server.should_exit = True
        if self.thread is not None:
            self.thread.join(30)
        self.sock.close()


def make_server(service: Service, host: str = "127.0.0.1", port: int = 0, verbose: bool = False,
                **kw) -> AppServer:  # fmt: skip
    """The app on `service`, listening (not serving yet: `serve_forever()` or `start()`)."""
    return AppServer(service, Options(host=host, port=port, verbose=verbose, **kw))


def serve(opts: Options, locate=None) -> None:
    """Load the networks, start the server and serve until interrupted (Ctrl-C, SIGTERM: the running jobs are
    stopped and the temporary folders removed; `cli_main` turns the signal into exit status 130 / 143)."""
    service = Service(opts.service, locate=locate)
    try:
        httpd = AppServer(service, opts)
    except BaseException:
        service.close()
        raise
    try:
        print(f"jaxreenact app: {httpd.url}  (Ctrl-C stops it)", flush=True)
        if opts.service.tiny:
            print(f"  NOTE: {service.info()['banner']}", flush=True)
        if service.weights_message:
            print("  " + service.weights_message.replace("\n", "\n  "), flush=True)
        if opts.host not in LOOPBACK:
            print(f"  WARNING: listening on {opts.host}: anyone who can reach it can use the app", flush=True)
        httpd.serve_forever()  # uvicorn re-raises the signal that stopped it once it has shut down
    finally:
        httpd.sock.close()
        stopped = service.close(wait=30.0)
        if not stopped:  # a job stuck in one device call: leave now rather than abort at interpreter exit
            e = sys.exc_info()[1]
            code = preemption.exit_code(e) if isinstance(e, KeyboardInterrupt) else 1
            print(f"{preemption.message(e) if isinstance(e, KeyboardInterrupt) else 'stopped'}; a job did not "
                  "stop within 30 s (temporary folders removed)", file=sys.stderr, flush=True)  # fmt: skip
            os._exit(code)
