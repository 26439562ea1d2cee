"""`python -m jaxreenact.edit` with tiny random networks (--tiny) on the real photo, and its step sequence."""

import pathlib

import numpy as np
import pytest
from PIL import Image

import tiny_checkpoints
from jaxreenact import edit
from jaxreenact.common.errors import UserError
from jaxreenact.common.images import band_height, label_scale
from jaxreenact.data import images as images_lib
from jaxreenact.data import video as video_lib
from jaxreenact.face.pipeline import FixedLocate
from jaxreenact.inference import editing, frames
from jaxreenact.weights import load_bundle

EXAMPLES = pathlib.Path(__file__).parents[1] / "jaxreenact" / "resources" / "examples"
PHOTO = EXAMPLES / "source_0002775.png"
COMMON = ["--tiny", "--batch-size", "8", "--no-progress"]


def test_shift_sequence_is_the_authors_sweep():
    s0 = editing.shift_sequence(0.0)
    np.testing.assert_allclose(s0, np.round(np.arange(-10, 11) * 0.6, 6), atol=1e-5)  # -6, -5.4, ..., 6
    # The authors split at the source's own value, not at 0: start = 1.5 gives -7.5 .. 0.9 then 1.5 .. 4.5.
    s = editing.shift_sequence(1.5)
    first, second = s[s < 1.5 - 1e-6], s[s >= 1.5 - 1e-6]
    np.testing.assert_allclose(first, -7.5 + 0.6 * np.arange(15), atol=1e-5)
    np.testing.assert_allclose(second, 1.5 + 0.6 * np.arange(6), atol=1e-5)
    assert len(s) == 21 and np.all(np.diff(first) > 0) and np.all(np.diff(second) > 0)
    assert not np.any(np.isclose(s, 0.0, atol=1e-4))  # Δ = 0 (the source as inverted) is not among the steps
    # start = 0.3: -6.3, ..., -0.3 (11 steps), then 0.3, ..., 5.7 (10 steps)
    np.testing.assert_allclose(editing.shift_sequence(0.3), np.r_[-6.3 + 0.6 * np.arange(11), 0.3 + 0.6 * np.arange(10)],
                               atol=1e-5)  # fmt: skip
    assert len(editing.shift_sequence(-2.0)) == len(np.arange(-4, -2, 0.6)) + len(np.arange(-2, 8 + 1e-5, 0.6))


def test_edit_photo_writes_gif_mp4_and_sheet(tmp_path, capsys):
    out = tmp_path / "e"
    s = edit.main(["--source", str(PHOTO), "--directions", "0", "3", "--out", str(out), "--tune", "--tune-steps", "1",
                   "--save-images"] + COMMON)  # fmt: skip
    assert s["tuned"]
    last = capsys.readouterr().out.strip().splitlines()[-1]  # the last line names every file and folder written
    assert all(p.name in last for p in out.iterdir()), (sorted(p.name for p in out.iterdir()), last)
    assert list(s["directions"]) == ["0_yaw", "3_jaw"]
    for tag, d in s["directions"].items():
        n = len(editing.shift_sequence(d["start"]))
        assert d["frames"] == n
        info = video_lib.probe_video(out / f"{tag}.mp4")
        band = band_height(label_scale(256))  # the label band above [source | edited]
        assert (info.num_frames, info.width, info.height, info.fps) == (n, 512, 256 + band, editing.FPS)
        with Image.open(out / f"{tag}.gif") as g:
            assert g.n_frames == n and g.size == (512, 256 + band)
            assert g.info["duration"] == 1000 / editing.FPS  # the GIF plays at the MP4's frame rate, exactly
        assert len(list((out / "images" / tag).glob("*.png"))) == n
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.size[0] > 7 * 256 and sheet.size[1] > 2 * 256  # 7 columns, one row per direction
    # Different directions edit differently (the renders are not all one image).
    a = np.asarray(Image.open(out / "images" / "0_yaw" / "000.png"), int)
    b = np.asarray(Image.open(out / "images" / "3_jaw" / "000.png"), int)
    assert np.abs(a - b).max() > 0


def test_latent_source_needs_no_face_and_the_start_step_is_shifted_by_start(tmp_path):
    w = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "lat"
    s = edit.main(["--source", str(tmp_path / "w.npy"), "--directions", "4", "--out", str(out), "--save-images"]
                  + COMMON)  # fmt: skip
    assert s["latent_source"] and (out / "4_exp0.gif").exists() and (out / "source.png").exists()
    # The authors' split at `start`: the first step of the second half feeds Δp = start·e_d, not 0, so its frame is
    # the source pushed by its own value once more (≈ 2·start in absolute terms), not the source as inverted.
    d = s["directions"]["4_exp0"]
    start, shifts = d["start"], np.array(d["shifts"])
    k = int(np.sum(shifts < start - 1e-4))
    assert shifts[k] == pytest.approx(start, abs=1e-4) and abs(start) > 0.5  # tiny nets, seed 0: start ≈ -2.45
    nets, variables = load_bundle(("generator", "A"), tiny_seed=0)
    dp = np.zeros((2, 15), np.float32)
    dp[0, 4] = start
    w = editing.load_latent_source(tmp_path / "w.npy", 14)
    at_start, at_zero = frames.render_dp(nets, variables, variables["g"], w, dp, 8).astype(int)
    frame = images_lib.read_image(out / "images" / "4_exp0" / f"{k:03d}.png").astype(int)
    assert np.abs(frame - at_start).max() <= 1  # the same render (batch padding may move a value by one level)
    assert np.abs(frame - at_zero).max() > 8


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    with pytest.raises(UserError, match=r"use indices 0\.\.14 \(0 yaw, 1 pitch"):
        editing.check_directions([0, 15])
    np.save(tmp_path / "bad.npy", np.zeros((3, 7), np.float32))
    with pytest.raises(SystemExit):
        edit.main(["--source", str(tmp_path / "bad.npy"), "--directions", "0", "--out", str(tmp_path / "o")] + COMMON)
    assert "expected a W [512] or W+ [n, 512] latent, got shape (3, 7)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        edit.main(["--source", str(PHOTO), "--directions", "0", "--out", str(tmp_path / "o"),
                   "--A", str(tmp_path / "noA"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert "python -m converters.direction_matrix" in err and str(tmp_path / "noA") in err
    with pytest.raises(SystemExit):
        edit.main(["--source", str(PHOTO), "--directions", "0", "--out", str(tmp_path / "o")] + COMMON,
                  locate=FixedLocate(missing={0}))  # fmt: skip
    assert "no face found in the source" in capsys.readouterr().err
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(SystemExit):
        edit.main(
            ["--source", str(tmp_path / "broken.png"), "--directions", "0", "--out", str(tmp_path / "o")] + COMMON
        )
    assert "broken.png: not an image file" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # nothing written on a failed run


def test_tuning_is_off_by_default_and_an_A_workdir_sets_the_units(tmp_path):
    """As the authors' editing script: no generator tuning unless --tune. `--A` = a training workdir (converted
    files, not --tiny): its shift_scale sets the sweep (±shift_scale in steps of shift_scale/10) and the source's
    start (angles and expressions scale with it; the jaw keeps its ±6 line, as upstream)."""
    paths = tiny_checkpoints.converted(tmp_path / "w", ("generator", "deca"))
    _, av = load_bundle(("A",), tiny_seed=0)
    np.save(tmp_path / "w.npy", np.random.default_rng(0).standard_normal(512).astype(np.float32))
    summaries = {}
    for scale in (6.0, 3.0):
        work = tiny_checkpoints.training_workdir(tmp_path / f"run{scale:g}", av["A"], shift_scale=scale)
        argv = ["--source", str(tmp_path / "w.npy"), "--directions", "3", "4", "--out", str(tmp_path / f"e{scale:g}"),
                "--A", str(work), "--batch-size", "8", "--no-progress"]  # fmt: skip
        summaries[scale] = edit.main(argv + [f"--{n}={p}" for n, p in paths.items()])
    six, three = summaries[6.0]["directions"], summaries[3.0]["directions"]
    assert three["4_exp0"]["start"] == pytest.approx(six["4_exp0"]["start"] / 2, abs=2e-4)
    assert three["3_jaw"]["start"] == pytest.approx(six["3_jaw"]["start"], abs=1e-4)
    for d in three.values():
        np.testing.assert_allclose(d["shifts"], editing.shift_sequence(d["start"], 3.0), atol=2e-4)
        assert d["shifts"][0] == pytest.approx(-3.0 - d["start"], abs=2e-4)  # the sweep starts at -3 in target
    # A photo source without --tune is not tuned (and needs no LPIPS).
    s = edit.main(["--source", str(PHOTO), "--directions", "0", "--out", str(tmp_path / "p"), "--lpips",
                   str(tmp_path / "no_lpips")] + COMMON)  # fmt: skip
    assert s["tuned"] is False


def test_latent_inputs_are_checked_before_any_network_loads(tmp_path, capsys, monkeypatch):
    def no_networks(*a, **k):
        raise AssertionError("networks loaded before the input was checked")

    monkeypatch.setattr(editing, "load_bundle", no_networks)
    np.save(tmp_path / "pickled.npy", np.array([{"w": 1}], dtype=object), allow_pickle=True)
    w = np.zeros((14, 512), np.float32)
    w[3, 7] = np.nan
    np.save(tmp_path / "nan.npy", w)
    np.save(tmp_path / "ok.npy", np.zeros(512, np.float32))
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "ok.npy").read_bytes()[:200])
    (tmp_path / "empty.npy").write_bytes(b"")
    (tmp_path / "dir.npy").mkdir()
    (tmp_path / "dir.png").mkdir()
    cases = {
        "pickled.npy": "a pickled .npy (object array); it is never unpickled",
        "nan.npy": "the latent has 1 NaN/inf value(s)",
        "trunc.npy": "a truncated or damaged .npy latent",
        "empty.npy": "the latent file is empty",
        "dir.npy": "is a folder, expected a .npy latent file",
        "dir.png": "is a folder; the source must be one photo",
    }
    for name, match in cases.items():
        with pytest.raises(SystemExit) as e:
            edit.main(["--source", str(tmp_path / name), "--directions", "0", "--out", str(tmp_path / "o")] + COMMON)
        err = capsys.readouterr().err.strip()
        assert e.value.code == 2 and match in err and "\n" not in err, (name, err)
    assert not (tmp_path / "o").exists()
