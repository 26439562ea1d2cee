"""The web app's service and HTTP API without a browser (tiny random networks, the fake face locator): uploads and
their errors, a short reenactment through the API with its files served in byte ranges, the edit actions (one-frame
renders that agree with the library's sweep, Δp export, the sweep GIF, a latent source), the errors the page shows
(no face, missing weights with the converter command), and the per-session temporary folders."""

from __future__ import annotations

import dataclasses
import io
import time

import numpy as np
import pytest
from PIL import Image
from webapp_helpers import serving, tiny_bundle

from jaxreenact.common.errors import UserError
from jaxreenact.data import video as video_lib
from jaxreenact.face.pipeline import FixedLocate
from jaxreenact.inference import editing
from jaxreenact.webapp import service

PHOTO = service.example_path("source")  # the shipped examples
VIDEO = service.example_path("driving")


@pytest.fixture
def app(tmp_path, monkeypatch):
    """The app on the tiny networks (a frame cap of 4 per job), served from an empty working folder; afterwards
    nothing is left behind and nothing was written elsewhere."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    with serving(tmp_path, max_frames=4) as (svc, c):
        yield svc, c
    assert list(cwd.iterdir()) == []


def test_page_uploads_reenact_and_byte_ranges(app, tmp_path):
    svc, c = app
    code, page, _ = c.call("/", method="GET")
    assert code == 200 and b"/static/app.js" in page
    for f in ("/static/app.js", "/static/app.css"):
        assert c.call(f, method="GET")[0] == 200
    assert c.call("/api/reenact", {})[1]["error"].startswith("this page's session is unknown")
    assert c.call("/", method="GET", headers={"Host": "evil.example:80"})[0] == 403  # no DNS rebinding
    info = c.ok("/api/session", {})
    c.sid = info["session"]
    assert info["limits"]["max_frames"] == 4
    assert info["tiny"] and "mean nothing" in info["banner"] and len(info["directions"]) == 15
    assert info["examples"] == {"source": True, "driving": True}
    session_dir = svc.root / c.sid
    assert session_dir.is_dir()

    # Uploads: checked at once, errors name the file the user gave (not the temporary path).
    code, doc, _ = c.upload("source", PHOTO, "my face.png")
    assert code == 200 and doc["kind"] == "image" and doc["size"] == [1280, 720]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not a png")
    code, doc, _ = c.upload("source", bad, "holiday.png")
    assert (
        code == 400 and doc["error"].startswith("holiday.png: not an image file") and str(svc.root) not in doc["error"]
    )
    code, doc, _ = c.upload("driving", bad, "notes.txt")
    assert code == 400 and "unsupported file type .txt" in doc["error"]
    code, doc, _ = c.upload("driving", bad, "clip.mp4")
    assert code == 400 and doc["error"].startswith("clip.mp4:")
    assert c.call("/api/reenact", {"source": "upload", "driving": "upload"})[1]["error"].startswith("no driving file")
    for n in (0, 5):  # 5: over the app's frame cap
        err = c.call("/api/reenact", {"source": "upload", "driving": "example", "max_frames": n})[1]["error"]
        assert err.startswith(f"max_frames: {n} is not allowed"), err
    assert "unknown name 'nose'" in c.call("/api/reenact", {"source": "upload", "driving": "example",
                                                            "gains": "nose=2"})[1]["error"]  # fmt: skip

    # A short reenactment: the uploaded photo, the example clip (187 frames: the app's cap of 4 applies), absolute
    # mode, tuning off as the string "false" (never truthy), smoothing left to the mode.
    st = c.wait(c.ok("/api/reenact", {"source": "upload", "driving": "example", "mode": "absolute", "tune": "false",
                                      "gains": "jaw=1.5", "smooth": ""}))  # fmt: skip
    assert st["state"] == "done", st
    r = st["result"]
    s = r["summary"]
    assert (s["frames"], s["tuned"], s["source"], s["gains"][3]) == (4, False, "my face.png", 1.5)
    assert set(r["videos"]) == {"reenacted", "grid"} | ({"pasted"} if "pasted.mp4" in s["outputs"] else set())
    assert "4 frame(s)" in r["text"] and "wrote" not in r["text"]
    mp4 = session_dir / r["videos"]["reenacted"].split("/", 3)[3]
    assert video_lib.probe_video(mp4).num_frames == 4
    whole = mp4.read_bytes()
    code, body, h = c.call(r["videos"]["reenacted"], method="GET")
    assert code == 200 and body == whole and h["Accept-Ranges"] == "bytes"
    code, body, h = c.call(r["videos"]["reenacted"], method="GET", headers={"Range": "bytes=10-109"})
    assert (code, body, h["Content-Range"]) == (206, whole[10:110], f"bytes 10-109/{len(whole)}")
    code, body, _ = c.call(r["videos"]["reenacted"], method="GET", headers={"Range": "bytes=-16"})
    assert (code, body) == (206, whole[-16:])
    assert c.call(r["videos"]["reenacted"], method="GET", headers={"Range": f"bytes={len(whole)}-"})[0] == 416
    on_disk = c.call(r["summary_url"], method="GET")[1]
    assert on_disk["frames"] == 4 and on_disk["source"].endswith("my_face.png")
    # Only the session's own files are served.
    assert c.call(f"/files/{c.sid}/../../etc/passwd", method="GET")[0] == 404
    assert c.call(f"/files/{c.sid}/%2e%2e/%2e%2e/etc/hostname", method="GET")[0] == 404
    assert c.call("/files/someone-else/reenact/001/reenacted.mp4", method="GET")[0] == 400
    assert c.call("/examples/driving", method="GET")[1] == VIDEO.read_bytes()
    # Everything the session wrote is inside its folder.
    assert {p.relative_to(svc.root).parts[0] for p in svc.root.rglob("*")} == {c.sid}


def _png(b: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(b)).convert("RGB"), np.int16)


def test_edit_render_export_sweep_and_latent(app, tmp_path):
    svc, c = app
    c.new_session()
    assert "load a photo" in c.call("/api/edit/render", {"dp": [0] * 15})[1]["error"]
    st = c.wait(c.ok("/api/edit/source", {"source": "example", "tune": False}))
    assert st["state"] == "done", st
    start = np.array(st["result"]["start"])
    assert start.shape == (15,) and not st["result"]["tuned"]
    st2 = c.wait(c.ok("/api/edit/source", {"source": "example", "tune": False}))  # the cached source
    assert st2["result"]["start"] == st["result"]["start"] and len(svc.sessions[c.sid].sources) == 1

    # One-frame renders: deterministic, and equal to the frames of the library's batched sweep at the same Δp.
    d = 3  # jaw
    sweep = c.wait(c.ok("/api/edit/sweep", {"direction": d}))
    assert sweep["state"] == "done", sweep
    shifts = np.array(sweep["result"]["shifts"])
    np.testing.assert_allclose(shifts, editing.shift_sequence(float(start[d])), atol=1e-3)
    gif = svc.root / c.sid / sweep["result"]["gif_url"].split("/", 3)[3].split("?")[0]
    e = svc.sessions[c.sid].edit
    nets, variables = svc.bundle
    exact, edited, lib_frames = editing.sweep(nets, variables, e.g_vars, e.w, e.shown, d, float(e.start[d]), 4)
    with Image.open(gif) as g:  # the library's labelled [source | edited] frames
        h, w = lib_frames[0].shape[:2]
        assert (g.n_frames, g.size) == (len(shifts), (w, h)) and w == 512 and h >= 256
    renders = []
    for k in (0, len(exact) - 1):
        dp = np.zeros(15)
        dp[d] = exact[k]
        renders.append(_png(c.ok("/api/edit/render", {"dp": dp.tolist()})))
        assert np.abs(renders[-1] - edited[k]).max() <= 1  # one frame at a time == the batched sweep
    np.testing.assert_array_equal(_png(c.ok("/api/edit/render", {"dp": dp.tolist()})), renders[-1])
    assert np.abs(renders[0] - renders[1]).max() > 0  # the slider moves the face
    assert "dp: expected 15" in c.call("/api/edit/render", {"dp": [0, 1]})[1]["error"]
    assert "direction: 15 is not allowed" in c.call("/api/edit/sweep", {"direction": 15})[1]["error"]

    dp = np.linspace(-1, 1, 15)
    links = c.ok("/api/edit/export", {"dp": dp.tolist()})
    np.testing.assert_allclose(np.load(io.BytesIO(c.call(links["npy_url"], method="GET")[1])), dp, rtol=1e-6)
    doc = c.call(links["json_url"], method="GET")[1]
    assert list(doc["dp"])[:4] == ["yaw", "pitch", "roll", "jaw"] and doc["source"] == "example"

    # A .npy latent source needs no face; the rendered latent is what the page shows.
    w = tmp_path / "w.npy"
    np.save(w, np.random.default_rng(0).standard_normal(512).astype(np.float32))
    assert c.upload("edit", w)[1]["kind"] == "latent"
    st = c.wait(c.ok("/api/edit/source", {"source": "upload"}))
    assert st["state"] == "done" and st["result"]["latent"], st
    np.save(w, np.zeros(7, np.float32))
    assert "expected a W [512] or W+" in c.upload("edit", w)[1]["error"]


def test_errors_shown_in_the_page(tmp_path):
    # No face in the photo: the job ends with the library's message, naming the user's file.
    svc = service.Service(service.Options(tiny=True, progress=False, tmp=str(tmp_path)),
                          locate=FixedLocate(missing=set(range(100))), bundle=tiny_bundle())  # fmt: skip
    try:
        s = svc.new_session()
        svc.upload(s, "edit", "me.png", PHOTO.read_bytes())
        st = svc.job_status(s, svc.edit_source(s, {"source": "upload", "tune": False})["job"])
        while st["state"] in ("queued", "running"):
            time.sleep(0.05)
            st = svc.job_status(s, st["job"])
        assert st["state"] == "error" and st["error"].startswith("me.png: no face found in the source image"), st
    finally:
        svc.close()

    # Missing converted weights: the app starts, says what is missing and how to make it, and each action repeats it.
    weights = {n: str(tmp_path / "none" / n) for n in service.WEIGHT_NAMES}
    svc = service.Service(service.Options(weights=weights, tmp=str(tmp_path)))
    try:
        assert "python -m converters.stylegan2" in svc.weights_message and "converters.fan" in svc.weights_message
        s = svc.new_session()
        with pytest.raises(UserError, match=r"missing converted weights(.|\n)*python -m converters\.e4e"):
            svc.reenact(s, {"source": "example", "driving": "example", "max_frames": 2})
        with pytest.raises(UserError, match=r"python -m converters\.direction_matrix"):
            svc.edit_source(s, {"source": "example", "tune": False})
    finally:
        svc.close()
    assert list(tmp_path.iterdir()) == []


def test_converted_checkpoints_load_once_and_serve_the_edit_tab(tmp_path):
    """The path of real weights: converted checkpoints (here of the tiny networks) load at start; a render on them
    equals the render on the same networks in memory."""
    from converters.common import save_converted
    from jaxreenact.weights.registry import REGISTRY

    nets, variables = tiny_bundle()
    paths = dict(service.default_paths(service.WEIGHT_NAMES))
    for n in service.BUNDLE_NAMES:
        paths[n] = str(tmp_path / "weights" / n)
        save_converted(
            paths[n], getattr(nets, REGISTRY[n].key), variables[REGISTRY[n].key], converter="test", sources={}
        )
    pngs = []
    for opts, bundle in ((service.Options(weights=paths), None), (service.Options(tiny=True), tiny_bundle())):
        svc = service.Service(dataclasses.replace(opts, progress=False, tmp=str(tmp_path)), locate=FixedLocate(),
                              bundle=bundle)  # fmt: skip
        try:
            assert svc.weights_message is None and svc.loaded == set(service.WEIGHT_NAMES)
            s = svc.new_session()
            st = svc.job_status(s, svc.edit_source(s, {"source": "example", "tune": False})["job"])
            while st["state"] in ("queued", "running"):
                time.sleep(0.05)
                st = svc.job_status(s, st["job"])
            assert st["state"] == "done", st
            pngs.append(_png(svc.render(s, {"dp": np.linspace(-2, 2, 15).tolist()})))
        finally:
            svc.close()
    np.testing.assert_array_equal(pngs[0], pngs[1])


def test_program_errors_are_one_line(tmp_path, monkeypatch, capsys):
    import socket
    import tempfile

    from jaxreenact import app

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    with pytest.raises(SystemExit) as e:
        app.main(["--tiny", "--batch-size", "0"])
    assert e.value.code == 2 and "--batch-size must be >= 1" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(SystemExit) as e:
            app.main(["--tiny", "--port", str(busy.getsockname()[1]), "--no-progress"])
    assert e.value.code == 2 and "cannot listen there" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # the temporary root went with the failed start
