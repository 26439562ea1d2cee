"""The web app under hostile and heavy use (issue 24): each case that broke the old standard-library server, driven
over HTTP on 127.0.0.1. Bounded in count and time; the tiny networks are loaded but, except for the signal test,
no network runs (jobs are the app's own job machinery on small NumPy work, or stay queued)."""

from __future__ import annotations

import concurrent.futures
import io
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
import tracemalloc
import urllib.error
import urllib.request
import zlib

import numpy as np
import pytest
from webapp_helpers import Client, serving

from jaxreenact.common.errors import UserError
from jaxreenact.webapp import service, sessions, uploads

PHOTO = service.example_path("source")
VIDEO = service.example_path("driving")
TIMEOUT = 1.0  # the app's request timeout in these tests, seconds


@pytest.fixture
def app(tmp_path):
    with serving(tmp_path, server_kw={"request_timeout": TIMEOUT}, queue=2, max_sessions=4, max_upload_mb=1.0,
                 max_pixels=1280 * 720) as (svc, c):  # fmt: skip
        c.new_session()
        yield svc, c


def _addr(c: Client) -> tuple[str, int]:
    host, port = c.url.split("//")[1].rstrip("/").split(":")
    return host, int(port)


def _status_line(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n" not in data:
        piece = sock.recv(4096)
        if not piece:
            break
        data += piece
    return data.split(b"\r\n")[0]


def _files(svc, sid) -> list:
    d = svc.root / sid
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()) if d.exists() else []


def _wait_for(cond, seconds: float, what: str):
    end = time.monotonic() + seconds
    while not cond():
        assert time.monotonic() < end, f"timed out after {seconds} s waiting for {what}"
        time.sleep(0.02)


# -- sessions ---------------------------------------------------------------------------------------------------
def test_other_sites_cannot_evict_or_change_a_session(app):
    svc, c = app
    victim = c.sid
    url = c.url + "api/session"
    for headers in ({"Origin": "http://evil.example", "Content-Type": "text/plain"},  # a cross-site form/fetch
                    {"Content-Type": "text/plain"},  # no Origin sent, but no X-Session either
                    {"Sec-Fetch-Site": "cross-site", "X-Session": ""}) * 3:  # fmt: skip
        req = urllib.request.Request(url, data=b"x", method="POST", headers=headers)
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        assert e.value.code == 403
    code, doc, _ = c.call("/api/session", method="DELETE", headers={"Origin": "http://evil.example"})
    assert code == 403, doc
    assert list(svc.sessions) == [victim]  # nothing made, nothing evicted
    # At the cap a new page is refused (503), never made by evicting a session.
    others = [Client(c.url) for _ in range(3)]
    for o in others:
        o.new_session()
    assert c.call("/api/session", {}, headers={"X-Session": ""})[0] == 503
    assert victim in svc.sessions and c.call("/api/job/none", method="GET")[1]["error"] == "unknown job 'none'"
    assert others[0].ok("/api/session", method="DELETE")["closed"] == others[0].sid  # the page's own close
    assert Client(c.url).new_session() and victim in svc.sessions


# -- jobs -------------------------------------------------------------------------------------------------------
def _busy(ticks: list, folder=None):
    """A job that computes until stopped (matrix products), writing a file to its session's folder each round."""

    def work(job):
        a = np.random.default_rng(0).standard_normal((128, 128))
        while True:
            a = np.tanh(a @ a)
            ticks.append(time.monotonic())
            if folder is not None:
                (folder / "tick").write_bytes(b"x")
            time.sleep(0.005)

    return work


def test_jobs_queue_cancel_time_limit_and_close_with_their_session(app):
    svc, c = app
    a, b = svc.session(c.sid), svc.new_session()
    ticks_a, ticks_b = [], []
    with svc.device:  # the device busy: jobs queue
        ja = svc.start_job(a, "test", _busy(ticks_a, a.dir))
        jb = svc.start_job(b, "test", _busy(ticks_b))
        third = Client(c.url)
        third.new_session()
        code, doc, _ = third.call("/api/reenact", {"source": "example", "driving": "example", "tune": False})
        assert code == 503 and "queue is full" in doc["error"], doc  # the queue limit (2)
        bc = Client(c.url)
        bc.sid = b.id
        st = bc.ok(f"/api/job/{jb['job']}/cancel")  # a queued job leaves the queue at once
        assert st["state"] == "cancelled", st
    _wait_for(lambda: (a.dir / "tick").exists(), 30, "job A to run")
    assert not ticks_b
    # Closing the page stops its job and removes its folder, which the job does not bring back.
    assert c.ok("/api/session", method="DELETE")["closed"] == a.id
    _wait_for(lambda: not a.dir.exists(), 10, "session A's folder to go")
    n = len(ticks_a)
    time.sleep(0.3)
    assert len(ticks_a) == n and not a.dir.exists() and a.jobs[ja["job"]].state == "cancelled"
    assert c.call(f"/api/job/{ja['job']}", method="GET")[0] == 400  # the session is gone
    # A running job cancelled from the page.
    jb2 = svc.start_job(b, "test", _busy(ticks_b))
    _wait_for(lambda: ticks_b, 30, "job B to run")
    st = bc.ok(f"/api/job/{jb2['job']}/cancel")
    st = bc.wait(st, 10)
    assert st["state"] == "cancelled" and st["error"] == "cancelled", st
    # The time limit.
    svc.opts.job_seconds = 0.5
    st = bc.wait(bc.ok(f"/api/job/{svc.start_job(b, 'test', _busy([]))['job']}", method="GET"), 15)
    assert st["state"] == "cancelled" and "longer than the app's limit of 0.5 s" in st["error"], st


# -- numbers ----------------------------------------------------------------------------------------------------
def test_numbers_bounded_finite_and_booleans_parsed(app):
    svc, c = app
    base = {"source": "example", "driving": "example"}
    cases = {
        "smooth": (1e6, 1e308, "nan", "inf", -1, "NaN"),
        "gains": ("jaw=nan", "jaw=inf", "all=1e9", "jaw=-1e308", " ".join(["1e400"] * 15)),
        "tune": ("maybe", "fals", 2, [1], {}),
        "tune_steps": (1e9, -1, 2.5, "nan"),
        "max_frames": ("1e400", 10**9, 0, "inf"),
    }
    for key, values in cases.items():
        for v in values:
            code, doc, _ = c.call("/api/reenact", {**base, key: v})
            assert code == 400 and doc["error"].startswith(f"{key}:"), (key, v, doc)
    raw = b'{"source": "example", "driving": "example", "smooth": NaN}'  # JSON's NaN literal
    code, doc, _ = c.call("/api/reenact", raw=raw)
    assert code == 400 and "not a finite number" in doc["error"], doc
    assert not svc.session(c.sid).jobs  # no job was started
    code, doc, _ = c.call("/api/edit/sweep", {})  # a missing whole number (here before any edit source)
    assert code == 400, doc
    with pytest.raises(UserError, match="direction: a whole number is needed"):
        sessions.whole_number({}, "direction", None, 0, 14)
    for v, want in (("false", False), ("False", False), (False, False), ("0", False), (0, False), ("true", True),
                    (True, True), ("on", True), (None, True)):  # fmt: skip
        assert sessions.boolean({"tune": v}, "tune", True) is want, v


# -- uploads ----------------------------------------------------------------------------------------------------
def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose header says w×h (8-bit grey) with one short IDAT: tiny on disk, huge if decoded."""

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 4096)) + chunk(b"IEND", b"")
    )


def _npy_header_only(shape) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": shape})
    return buf.getvalue() + b"\0" * 64


def test_uploads_capped_before_decoding_and_failures_leave_nothing(app, tmp_path):
    svc, c = app
    t0 = time.monotonic()
    code, doc, _ = c.upload("source", PHOTO, "bomb.png", raw=_png_header_only(20000, 20000))
    assert code == 400 and doc["error"].startswith("bomb.png: 400000000 pixels is more than the app's limit"), doc
    code, doc, _ = c.upload("source", PHOTO, "big.png", raw=_png_header_only(1281, 720))  # just over the cap
    assert code == 400 and "1281×720 pixels" in doc["error"], doc
    code, doc, _ = c.upload("edit", PHOTO, "w.npy", raw=_npy_header_only((1 << 20, 1 << 20)))  # 8 TiB asked
    assert code == 400 and "w.npy: expected a W [512]" in doc["error"], doc
    code, doc, _ = c.upload("edit", PHOTO, "w.npy", raw=_npy_header_only((14, 512)))  # shape fine, body short
    assert code == 400 and "damaged .npy" in doc["error"], doc
    assert time.monotonic() - t0 < 20
    # A video over the pixel cap is refused from its header (the library's probe, no frame decoded).
    with pytest.raises(UserError, match=r"clip\.mp4: 1280×720 pixels is more than"):
        uploads.inspect(VIDEO, "clip.mp4", uploads.Limits(max_pixels=1280 * 720 - 1))
    # An upload cut off half-way leaves nothing either.
    with socket.create_connection(_addr(c), timeout=10) as s:
        s.sendall(f"PUT /api/upload?slot=source&name=cut.png HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Session: {c.sid}\r\n"
                  "Content-Length: 100000\r\n\r\n".encode() + PHOTO.read_bytes()[:5000])  # fmt: skip
        time.sleep(0.3)
    _wait_for(lambda: _files(svc, c.sid) == [], 10, "the cut-off upload to be removed")
    # What is accepted: the photo and the clip (its header's frame count and the app's cap).
    code, doc, _ = c.upload("source", PHOTO)
    assert code == 200 and doc["size"] == [1280, 720]
    assert [re.sub(r"-\d+/", "-N/", f) for f in _files(svc, c.sid)] == [f"uploads/source-N/{PHOTO.name}"]


# -- HTTP -------------------------------------------------------------------------------------------------------
def test_half_sent_requests_and_stalled_bodies_time_out(app):
    svc, c = app
    host, port = _addr(c)
    slow = [socket.create_connection((host, port), timeout=10) for _ in range(40)]
    try:
        for s in slow:
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # never finished
        t0 = time.monotonic()
        assert c.call("/", method="GET", timeout=10)[0] == 200  # others are still served at once
        assert time.monotonic() - t0 < 5
        for s in slow:  # each half-sent request is closed by the app after its timeout
            assert s.recv(100) == b""
        assert time.monotonic() - t0 < TIMEOUT + 8
    finally:
        for s in slow:
            s.close()
    with socket.create_connection((host, port), timeout=10) as s:  # a body that stops coming
        s.sendall(f"PUT /api/upload?slot=source&name=a.png HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Session: {c.sid}\r\n"
                  "Content-Length: 1000\r\n\r\n0123456789".encode())  # fmt: skip
        assert _status_line(s).startswith(b"HTTP/1.1 408")
    _wait_for(lambda: _files(svc, c.sid) == [], 5, "the stalled upload to be removed")


@pytest.mark.parametrize("length,status", [("-1", b"400"), ("-100000", b"400"), ("99999999999999", b"413"),
                                           ("12x", b"400")])  # fmt: skip
def test_content_length_bounded(app, length, status):
    svc, c = app
    with socket.create_connection(_addr(c), timeout=10) as s:
        s.sendall(f"PUT /api/upload?slot=source&name=a.png HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Session: {c.sid}\r\n"
                  f"Content-Length: {length}\r\n\r\n".encode())  # fmt: skip
        line = _status_line(s)
    assert line.startswith(b"HTTP/1.1 " + status), line
    assert _files(svc, c.sid) == []


def _listen_backlog(port: int) -> int | None:
    """The accept-queue size of the listening socket on `port` (the Send-Q column of iproute2's `ss -ltn`), or None
    where `ss` is missing."""
    try:
        out = subprocess.run(["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return int(out.split()[2]) if out.split() else None


def test_concurrent_uploads_all_served(app, tmp_path):
    svc, c = app
    backlog = _listen_backlog(_addr(c)[1])
    assert backlog is None or backlog >= 128, backlog
    w = tmp_path / "w.npy"
    np.save(w, np.zeros(512, np.float32))
    with concurrent.futures.ThreadPoolExecutor(30) as pool:
        codes = list(pool.map(lambda i: c.upload("edit", w, f"w{i}.npy", raw=w.read_bytes())[0], range(30)))
    assert codes == [200] * 30
    assert len(_files(svc, c.sid)) == 1  # each upload replaced the one before


def test_byte_ranges_streamed_not_read_whole(app):
    svc, c = app
    big = svc.root / c.sid / "reenact" / "001" / "reenacted.mp4"
    big.parent.mkdir(parents=True)
    block = np.random.default_rng(0).bytes(1 << 20)
    with open(big, "wb") as f:
        for _ in range(48):
            f.write(block)
    url = f"/files/{c.sid}/reenact/001/reenacted.mp4"
    tracemalloc.start()
    try:
        code, body, h = c.call(url, method="GET", headers={"Range": "bytes=1000-1099"})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (code, body, h["Content-Range"]) == (206, block[1000:1100], f"bytes 1000-1099/{48 << 20}")
    assert peak < 8 << 20, f"{peak / 2**20:.0f} MB allocated to send 100 bytes"


def test_internal_errors_name_no_path(app, monkeypatch):
    svc, c = app

    def broken(*a, **k):
        raise OSError(f"[Errno 28] No space left on device: '{svc.root / c.sid / 'edit' / 'dp.npy'}'")

    monkeypatch.setattr(svc, "job_status", broken)
    code, doc, _ = c.call("/api/job/abc", method="GET")
    assert code == 500 and doc["error"] == "internal error (OSError); see the app's log", doc
    assert str(svc.root) not in str(doc) and "/tmp" not in str(doc)


# -- forks and signals ------------------------------------------------------------------------------------------
def test_upload_checks_start_no_process_while_a_job_computes(app, monkeypatch):
    """A fork beside a thread inside OpenBLAS jammed the job queue for good (the fork never returns): an upload's
    checks must run in process. A process an upload check would start is refused here (recorded, never forked)."""
    svc, c = app
    started = []

    def refuse(self, args, *a, **k):
        started.append(args)
        raise OSError("the test refuses to start a process")

    s, ticks = svc.session(c.sid), []
    job = svc.start_job(s, "test", _busy(ticks))
    _wait_for(lambda: ticks, 30, "the job to compute")
    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(os, "fork", lambda: refuse(None, "fork"))
    code, doc, _ = c.upload("driving", VIDEO)
    monkeypatch.undo()
    svc.cancel(s, job["job"])
    assert started == [], f"an upload check started {started}"
    assert code == 200 and doc["frames"] == 187, doc


def test_sigint_during_a_job_stops_it_and_removes_the_folders(tmp_path):
    """Ctrl-C while a reenactment runs (tuning 2000 steps): exit status 130 within seconds, the temporary root
    removed, nothing written elsewhere (SIGTERM: tests/test_webapp_browser.py, 143)."""
    cwd, tmp = tmp_path / "cwd", tmp_path / "tmp"
    cwd.mkdir()
    tmp.mkdir()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, TMPDIR=str(tmp), PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env["JAX_COMPILATION_CACHE_DIR"] = os.environ.get("JAXREENACT_TEST_CACHE", "/tmp/jaxreenact-jax-cache")
    log = tmp_path / "app.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "jaxreenact.app", "--tiny", "--port", "0", "--no-progress"],
                                cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        _wait_for(lambda: re.search(r"app: (http://\S+)", log.read_text()) or proc.poll() is not None, 300,
                  "the app to start")  # fmt: skip
        c = Client(re.search(r"app: (http://\S+)", log.read_text())[1])
        c.new_session()
        st = c.ok("/api/reenact", {"source": "example", "driving": "example", "tune": True, "tune_steps": 2000})
        _wait_for(lambda: c.ok(f"/api/job/{st['job']}", method="GET")["state"] == "running", 60, "the job")
        time.sleep(1.0)
        assert list(tmp.iterdir()), "the app made no temporary root"
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=90) == 130, log.read_text()[-2000:]
        stop = time.monotonic() - t0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "interrupted" in log.read_text() and "Traceback" not in log.read_text(), log.read_text()[-2000:]
    assert list(tmp.iterdir()) == [] and list(cwd.iterdir()) == []
    assert stop < 60, stop
