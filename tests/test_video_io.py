"""Video and image I/O on the shared data (the real 187-frame driving video with AAC audio, the real 1280×720 photo),
writing mp4 (H.264, optional audio) and PNG, and one-line errors for bad inputs."""

from __future__ import annotations

import os
import pathlib

import numpy as np
import pytest

from jaxreenact.common.errors import UserError
from jaxreenact.data import images, video

EXAMPLES = pathlib.Path(__file__).parents[1] / "jaxreenact" / "resources" / "examples"
VIDEO = EXAMPLES / "driving_lWOTF8SdzJw_2614-2801.mp4"
PHOTO = EXAMPLES / "source_0002775.png"


def test_real_video_probe_and_decode():
    info = video.probe_video(VIDEO)
    assert (info.num_frames, info.width, info.height, info.fps) == (187, 1280, 720, 25.0)
    assert info.has_audio and info.codec == "h264"
    frames = video.read_video(VIDEO, max_frames=3)
    assert frames.shape == (3, 720, 1280, 3) and frames.dtype == np.uint8
    strided = list(video.iter_frames(VIDEO, max_frames=2, stride=5))
    full = video.read_video(VIDEO, max_frames=6)
    np.testing.assert_array_equal(strided[1], full[5])


def test_real_photo_decodes():
    img = images.read_image(PHOTO)
    assert img.shape == (720, 1280, 3) and img.dtype == np.uint8


def test_write_video_with_audio_roundtrip(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 48, 64, 3), dtype=np.uint8)
    frames[:] = frames[:1]  # a still clip encodes near-losslessly
    out = tmp_path / "sub" / "out.mp4"
    assert video.write_video(out, frames, fps=25, audio_from=VIDEO) == 5
    info = video.probe_video(out)
    assert (info.num_frames, info.width, info.height, info.fps, info.has_audio) == (5, 64, 48, 25.0, True)
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left
    video.write_video(tmp_path / "silent.mp4", frames, fps=10)
    assert not video.probe_video(tmp_path / "silent.mp4").has_audio
    with pytest.raises(ValueError):
        video.write_video(tmp_path / "bad.mp4", [frames[0], frames[0][:40]])
    assert not (tmp_path / "bad.mp4").exists()


def test_png_write_and_folder_listing(tmp_path):
    img = np.random.default_rng(1).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    for name in ("b.png", "a.png"):
        images.write_png(tmp_path / name, img)
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in images.list_images(tmp_path)] == ["a.png", "b.png"]
    np.testing.assert_array_equal(images.read_image(tmp_path / "a.png"), img)


def _one_line_error(fn, *args, match=None):
    with pytest.raises(UserError, match=match) as e:
        fn(*args)
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 300
    return msg


def test_bad_video_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("this is not a video\n" * 10)
    (tmp_path / "truncated.mp4").write_bytes(VIDEO.read_bytes()[:20000])
    (tmp_path / "photo.mp4").write_bytes(PHOTO.read_bytes())
    _one_line_error(video.read_video, tmp_path / "empty.mp4", match="empty")
    _one_line_error(video.read_video, tmp_path / "text.mp4", match="not a readable video")
    _one_line_error(video.read_video, tmp_path / "truncated.mp4", match="video")
    _one_line_error(video.probe_video, tmp_path / "photo.mp4", match="still image")
    _one_line_error(video.read_video, PHOTO, match="still image")
    _one_line_error(video.read_video, tmp_path / "missing.mp4", match="no such")
    _one_line_error(video.read_video, tmp_path, match="folder")


def test_bad_image_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("not an image")
    (tmp_path / "cut.png").write_bytes(PHOTO.read_bytes()[:5000])
    _one_line_error(images.read_image, tmp_path / "empty.png", match="empty")
    _one_line_error(images.read_image, tmp_path / "text.png", match="not an image")
    _one_line_error(images.read_image, tmp_path / "cut.png", match="corrupt")
    _one_line_error(images.read_image, tmp_path / "nope.png", match="no such")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can read files without permission")
def test_unreadable_file_is_a_one_line_error(tmp_path):
    p = tmp_path / "locked.mp4"
    p.write_bytes(VIDEO.read_bytes()[:1000])
    p.chmod(0)
    try:
        _one_line_error(video.read_video, p, match="permission")
    finally:
        p.chmod(0o644)
