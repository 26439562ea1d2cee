"""Shared by the web app's tests: the tiny networks (built once per test process), an HTTP client of the app's
API (it sends the page's `X-Session` header), and the app served in a thread on a free port of 127.0.0.1."""

from __future__ import annotations

import contextlib
import functools
import json
import time
import urllib.error
import urllib.parse
import urllib.request

from jaxreenact.webapp import server, service


@functools.cache
def tiny_bundle():
    from jaxreenact.weights import load_bundle

    return load_bundle(service.BUNDLE_NAMES, tiny_seed=0)


class Client:
    def __init__(self, url: str):
        self.url, self.sid = url, ""

    def call(self, path, body=None, method="POST", raw=None, headers=None, timeout=600):
        data = raw if raw is not None else json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path.lstrip("/"), data=data, method=method,
                                     headers={"X-Session": self.sid, **(headers or {})})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                b = r.read()
                is_json = r.headers["Content-Type"].startswith("application/json")
                return r.status, json.loads(b) if is_json else b, r.headers
        except urllib.error.HTTPError as e:
            b = e.read()
            try:
                return e.code, json.loads(b) if b else None, e.headers
            except ValueError:
                return e.code, b, e.headers

    def ok(self, path, body=None, **kw):
        code, doc, _ = self.call(path, body, **kw)
        assert code == 200, doc
        return doc

    def upload(self, slot, path, name=None, raw=None):
        q = urllib.parse.urlencode({"slot": slot, "name": name or path.name})
        return self.call(f"/api/upload?{q}", method="PUT", raw=path.read_bytes() if raw is None else raw)

    def new_session(self) -> str:
        self.sid = ""
        self.sid = self.ok("/api/session", {})["session"]
        return self.sid

    def wait(self, st, timeout=600):
        end = time.monotonic() + timeout
        while st["state"] in ("queued", "running"):
            assert time.monotonic() < end, st
            time.sleep(0.1)
            st = self.ok(f"/api/job/{st['job']}", method="GET")
        return st


@contextlib.contextmanager
def serving(tmp_path, locate=None, server_kw=None, **service_kw):
    """(service, client) of the app on the tiny networks, served in a thread; afterwards stopped and its
    temporary root checked gone."""
    opts = service.Options(**{"tiny": True, "batch_size": 4, "progress": False, "tmp": str(tmp_path), **service_kw})
    svc = service.Service(opts, locate=locate, bundle=tiny_bundle())
    try:
        httpd = server.make_server(svc, "127.0.0.1", 0, **(server_kw or {})).start()
    except BaseException:
        svc.close()
        raise
    try:
        yield svc, Client(httpd.url)
    finally:
        httpd.shutdown()
        assert svc.close(wait=60), "a job thread did not stop"
    assert not svc.root.exists()
