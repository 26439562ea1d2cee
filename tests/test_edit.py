"""`python -m jaxreenact.edit` with tiny random networks (--tiny) on the real photo, and its step sequence."""

import pathlib

import numpy as np
import pytest
from PIL import Image

from jaxreenact import edit, editing
from jaxreenact.data import video as video_lib
from jaxreenact.errors import UserError

DATA = pathlib.Path(__file__).parent / "data"
PHOTO = DATA / "source_0002775.png"
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
    assert len(editing.shift_sequence(-2.0)) == len(np.arange(-4, -2, 0.6)) + len(np.arange(-2, 8 + 1e-5, 0.6))


def test_edit_photo_writes_gif_mp4_and_sheet(tmp_path):
    out = tmp_path / "e"
    s = edit.main(["--source", str(PHOTO), "--directions", "0", "3", "--out", str(out), "--tune-steps", "1",
                   "--save-images"] + COMMON)  # fmt: skip
    assert list(s["directions"]) == ["0_yaw", "3_jaw"]
    for tag, d in s["directions"].items():
        n = len(editing.shift_sequence(d["start"]))
        assert d["frames"] == n
        info = video_lib.probe_video(out / f"{tag}.mp4")
        assert (info.num_frames, info.width, info.height, info.fps) == (n, 512, 256, 15.0)
        with Image.open(out / f"{tag}.gif") as g:
            assert g.n_frames == n and g.size == (512, 256)
        assert len(list((out / "images" / tag).glob("*.png"))) == n
    with Image.open(out / "contact_sheet.png") as sheet:
        assert sheet.size[0] > 7 * 256 and sheet.size[1] > 2 * 256  # 7 columns, one row per direction
    # Different directions edit differently (the renders are not all one image).
    a = np.asarray(Image.open(out / "images" / "0_yaw" / "000.png"), int)
    b = np.asarray(Image.open(out / "images" / "3_jaw" / "000.png"), int)
    assert np.abs(a - b).max() > 0


def test_latent_source_needs_no_face(tmp_path):
    w = np.random.default_rng(0).standard_normal(512).astype(np.float32)
    np.save(tmp_path / "w.npy", w)
    out = tmp_path / "lat"
    s = edit.main(["--source", str(tmp_path / "w.npy"), "--directions", "1", "--out", str(out)] + COMMON)
    assert s["latent_source"] and (out / "1_pitch.gif").exists() and (out / "source.png").exists()


def test_bad_inputs_are_clear_errors(tmp_path, capsys):
    with pytest.raises(UserError, match=r"use indices 0\.\.14 \(0 yaw, 1 pitch"):
        editing.check_directions([0, 15])
    np.save(tmp_path / "bad.npy", np.zeros((3, 7), np.float32))
    with pytest.raises(SystemExit):
        edit.main(["--source", str(tmp_path / "bad.npy"), "--directions", "0", "--out", str(tmp_path / "o")] + COMMON)
    assert "expected a finite W [512] or W+ [14, 512]" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        edit.main(["--source", str(PHOTO), "--directions", "0", "--out", str(tmp_path / "o"),
                   "--A", str(tmp_path / "noA"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert "python -m converters.direction_matrix" in err and str(tmp_path / "noA") in err
