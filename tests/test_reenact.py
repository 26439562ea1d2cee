"""`python -m jaxreenact.reenact` end to end with tiny random networks and a fake face locator (--tiny)."""

import os
import pathlib

import numpy as np
import pytest

import tiny_checkpoints
from converters.common import save_converted
from jaxreenact import reenact
from jaxreenact.common.images import band_height, label_scale
from jaxreenact.data import images as images_lib
from jaxreenact.data import video as video_lib
from jaxreenact.face.pipeline import FixedLocate, Located
from jaxreenact.inference import reenactment
from jaxreenact.pose import params as pose
from jaxreenact.pose.motion import MotionOptions, motion_delta, parse_gains
from jaxreenact.weights import load_A, load_bundle

EXAMPLES = pathlib.Path(__file__).parents[1] / "jaxreenact" / "resources" / "examples"
VIDEO = EXAMPLES / "driving_lWOTF8SdzJw_2614-2801.mp4"
PHOTO = EXAMPLES / "source_0002775.png"
COMMON = ["--tiny", "--batch-size", "4", "--no-progress"]


def _frames(folder):
    return [images_lib.read_image(p) for p in sorted((folder / "frames").glob("*.png"))]


def test_reenact_video_export_replay_and_held_frames(tmp_path, capsys):
    out = tmp_path / "a"
    argv = ["--source", "example", "--driving", "example", "--out", str(out), "--max-frames", "5",
            "--tune-steps", "2", "--save-frames", "--export-motion", str(tmp_path / "m.npz")]  # fmt: skip
    s = reenact.main(argv + COMMON, locate=FixedLocate(missing={2}))  # call 0 = source, call 3 = driving frame 2
    assert s["frames"] == 5 and s["no_face_frames_held"] == ["000001"] and s["pasted"]
    last = capsys.readouterr().out.strip().splitlines()[-1]  # the last line names every file and folder written
    assert all(p.name in last for p in [*out.iterdir(), tmp_path / "m.npz"]), (sorted(os.listdir(out)), last)
    band = band_height(label_scale(256))
    for name, size in (("reenacted.mp4", (256, 256)), ("grid.mp4", (768, 256 + band)), ("pasted.mp4", (1280, 720))):
        info = video_lib.probe_video(out / name)  # pasted.mp4: the source photo's own resolution
        assert (info.num_frames, (info.width, info.height), info.fps, info.has_audio) == (5, size, 25.0, True)
    # the paste changes the face region of the source photo and nothing far from it
    photo = images_lib.read_image(PHOTO).astype(int)
    first = video_lib.read_video(out / "pasted.mp4", max_frames=1)[0].astype(int)
    d = np.abs(first - photo).mean(-1)
    assert d[:40].mean() < 4 and d[-40:].mean() < 4 and d[300:420, 580:700].mean() > 4
    f = _frames(out)
    assert len(f) == 5
    np.testing.assert_array_equal(f[0], f[1])  # the held frame keeps the previous frame's p (absolute mode)
    # replay the exported motion on the same source: the same frames (generator tuning is deterministic)
    out2 = tmp_path / "b"
    argv2 = ["--source", str(PHOTO), "--motion", str(tmp_path / "m.npz"), "--out", str(out2), "--tune-steps", "2",
             "--save-frames"]  # fmt: skip
    reenact.main(argv2 + COMMON)
    for a, b in zip(f, _frames(out2)):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_relative_mode_with_a_constant_driving_video_gives_the_dp0_frame(tmp_path):
    drv = tmp_path / "drv"
    img = images_lib.read_image(PHOTO)
    for i in range(3):
        images_lib.write_png(drv / f"{i:03d}.png", img)
    out = tmp_path / "r"
    reenact.main(["--source", str(PHOTO), "--driving", str(drv), "--out", str(out), "--mode", "relative",
                  "--no-tune", "--save-frames", "--fps", "10"] + COMMON)  # fmt: skip
    ref = images_lib.read_image(out / "source_dp0.png")  # G(trunc(w + A(0))): A(0) is A's bias
    for f in _frames(out):
        assert np.abs(f.astype(int) - ref.astype(int)).max() <= 1
    assert video_lib.probe_video(out / "reenacted.mp4").fps == 10.0


def test_motion_options():

    units = pose.shift_units(pose.load_ranges(pose.default_ranges_path()))
    rng = np.random.default_rng(0)
    p = rng.normal(size=(6, 15)).astype(np.float32)
    src = rng.normal(size=15).astype(np.float32)
    rel = motion_delta(src, p, units, pose.VOXCELEB, MotionOptions("relative", smooth=0))
    np.testing.assert_allclose(rel[0], 0, atol=1e-6)
    po = motion_delta(src, p, units, pose.VOXCELEB, MotionOptions("absolute", component="pose"))
    assert np.all(po[:, 3:] == 0) and np.any(po[:, :3] != 0)
    ex = motion_delta(src, p, units, pose.VOXCELEB, MotionOptions("absolute", component="expression"))
    assert np.all(ex[:, :3] == 0)
    g = parse_gains(["jaw=2", "exp=0"])
    gd = motion_delta(src, p, units, pose.VOXCELEB, MotionOptions("absolute", gains=g))
    full = motion_delta(src, p, units, pose.VOXCELEB, MotionOptions("absolute"))
    np.testing.assert_allclose(gd[:, 3], 2 * full[:, 3], rtol=1e-6)
    assert np.all(gd[:, 4:] == 0)


def test_clear_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        reenact.main(["--source", str(PHOTO), "--driving", str(VIDEO), "--out", str(tmp_path / "o"),
                      "--generator", str(tmp_path / "nope"), "--A", str(tmp_path / "noA")])  # fmt: skip
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "nope" in err and "noA" in err and "converters.direction_matrix" in err and "converters.stylegan2" in err
    with pytest.raises(SystemExit):
        reenact.main(["--source", str(PHOTO), "--driving", str(VIDEO), "--out", str(tmp_path / "o")] + COMMON,
                     locate=FixedLocate(missing={0}))  # fmt: skip
    assert "no face found in the source" in capsys.readouterr().err


def _scaled_A(a_vars, factor):
    """A with its weight scaled by `factor` per direction ([15]): A'(Δp) = A(factor ⊙ Δp)."""
    lin = a_vars["params"]["linear"]
    w = np.asarray(lin["weight"]) * np.asarray(factor, np.float32)[:, None]
    return {"params": {"linear": {"weight": w, "bias": np.asarray(lin["bias"])}}}


def test_an_A_trained_here_is_read_from_its_workdir_in_its_own_units(tmp_path):
    """The program on its real loading path (converted files, not --tiny) with `--A` = a training workdir: the same
    frames as the same A converted; a workdir trained with shift_scale = 3 gets Δp in ±3 units (angles and
    expressions halved, the jaw line kept at ±6 as upstream), i.e. the frames of A·diag(d) in ±6 units."""
    paths = tiny_checkpoints.converted(tmp_path / "w", ("generator", "e4e", "deca"))
    a, av = load_bundle(("A",), tiny_seed=0)
    # Not the tiny A (a run that ignored --A would differ), and large: the tiny DECA's p moves by ~1e-3 units only.
    a_vars = _scaled_A(av["A"], np.full(15, 3e4))
    work6 = tiny_checkpoints.training_workdir(tmp_path / "run6", a_vars)
    work3 = tiny_checkpoints.training_workdir(tmp_path / "run3", a_vars, shift_scale=3.0)
    module, loaded = load_A(work3)
    assert module.shift_scale == 3.0 and module.input_dim == 15 and module.num_layers == 8
    np.testing.assert_array_equal(loaded["params"]["linear"]["weight"], a_vars["params"]["linear"]["weight"])
    d = np.full(15, 0.5, np.float32)
    d[3] = 1.0  # jaw: ±6 in either case
    save_converted(tmp_path / "A_conv", a.A, a_vars, converter="test", sources={})
    save_converted(tmp_path / "A_diag", a.A, _scaled_A(a_vars, d), converter="test", sources={})

    drv = tmp_path / "drv"
    img = images_lib.read_image(PHOTO)
    images_lib.write_png(drv / "000.png", img[:, ::-1])
    images_lib.write_png(drv / "001.png", np.full_like(img, 200))
    u = np.random.default_rng(1).uniform(0, 1, (68, 2))

    def locate(images):  # landmarks that depend on the frame, so each driving frame has its own p
        out = []
        for im in images:
            h, w = im.shape[:2]
            s = float(im.mean()) / 255.0
            pts = np.stack([w * (0.40 + 0.15 * u[:, 0] + 0.05 * s), h * (0.35 + 0.3 * u[:, 1])], 1)
            box = np.array([w * 0.4, h * 0.32, w * 0.6, h * 0.68, 0.999], np.float32)
            out.append(Located(box[None], 1, box, pts.astype(np.float32)))
        return out

    def run(a_path, name):
        out = tmp_path / name
        argv = ["--source", str(PHOTO), "--driving", str(drv), "--out", str(out), "--no-tune", "--save-frames",
                "--batch-size", "2", "--no-progress", "--A", str(a_path)]  # fmt: skip
        reenact.main(argv + [f"--{n}={p}" for n, p in paths.items()], locate=locate)
        return np.stack(_frames(out)).astype(int)

    f6, f_conv = run(work6, "w6"), run(tmp_path / "A_conv", "conv")
    np.testing.assert_array_equal(f6, f_conv)
    f3, f_diag = run(work3, "w3"), run(tmp_path / "A_diag", "diag")
    assert np.abs(f3 - f_diag).max() <= 1
    assert np.abs(f3 - f6).max() > 8  # the units matter


def test_a_single_image_drives_one_frame(tmp_path):
    out = tmp_path / "one"
    s = reenact.main(["--source", str(PHOTO), "--driving", str(PHOTO), "--out", str(out), "--no-tune",
                      "--no-paste-back", "--fps", "5"] + COMMON)  # fmt: skip
    assert s["frames"] == 1 and not s["pasted"] and "pasted.mp4" not in s["outputs"]
    info = video_lib.probe_video(out / "reenacted.mp4")
    assert (info.num_frames, info.fps, info.has_audio) == (1, 5.0, False)
    assert not (out / "pasted.mp4").exists()


def test_inputs_are_checked_before_any_network_loads(tmp_path, capsys, monkeypatch):
    def no_networks(*a, **k):
        raise AssertionError("networks loaded before the inputs were checked")

    monkeypatch.setattr(reenactment, "load_bundle", no_networks)
    (tmp_path / "trunc.png").write_bytes(PHOTO.read_bytes()[:5000])
    (tmp_path / "noise.mp4").write_bytes(b"not a video" * 50)
    (tmp_path / "empty_dir").mkdir()
    (tmp_path / "file").write_text("x")
    np.savez(tmp_path / "m.npz", p=np.full((3, 15), np.nan, np.float32), valid=np.ones(3, bool), fps=25.0)
    src, drv = ["--source", str(PHOTO)], ["--driving", str(VIDEO)]
    cases = {
        "corrupt or truncated image": ["--source", str(tmp_path / "trunc.png"), *drv],
        "is a folder; the source must be one photo": ["--source", str(tmp_path / "empty_dir"), *drv],
        "not a readable video": [*src, "--driving", str(tmp_path / "noise.mp4")],
        "holds no image files": [*src, "--driving", str(tmp_path / "empty_dir")],
        "no such file or folder": [*src, "--driving", str(tmp_path / "missing.mp4")],
        "non-finite values": [*src, "--motion", str(tmp_path / "m.npz")],
        "is a file, not a folder": [*src, *drv, "--out", str(tmp_path / "file")],
    }
    for match, args in cases.items():
        args = args if "--out" in args else [*args, "--out", str(tmp_path / "o")]
        with pytest.raises(SystemExit) as e:
            reenact.main(args + COMMON)
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and match in err and "\n" not in err, (match, err)
    assert not (tmp_path / "o").exists()
