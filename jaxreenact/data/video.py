"""Video files: read mp4/avi/mov/mkv/webm frames as RGB uint8, probe size/fps/frame count/audio, write H.264 mp4.

Why imageio-ffmpeg: it is a small, well-kept PyPI package (part of the imageio project) whose wheels bundle a static
ffmpeg binary built with libx264 and AAC, so reading and writing mp4 works from a plain `pip install` with no system
ffmpeg, no OpenCV and no compiled Python extension; frames come over a pipe as raw RGB, so decoding is exactly
ffmpeg's. (PyAV would also work but pins FFmpeg ABI versions per wheel; OpenCV's writer cannot mux audio and its
`MP4V` codec is not H.264.)

Every user mistake becomes a one-line `UserError`: a missing or unreadable path, a folder, an empty file, a file ffmpeg
cannot open as a video, a video without decodable frames. A video that breaks mid-stream (a truncated download, a
damaged file) is not an error: the frames that decode are used, and a warning says how many of the header's
(`VideoInfo.broken`, `broken_note`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import pathlib
import tempfile
import warnings
from collections.abc import Iterable, Iterator

import numpy as np

from jaxreenact.common.errors import UserError
from jaxreenact.data.images import _check_file

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
# Codecs ffmpeg reports for a single still image read as a "video".
IMAGE_CODECS = ("png", "bmp", "tiff", "webp", "jpegls", "jpeg2000", "ppm", "pgm", "pam")
log = logging.getLogger("jaxreenact.data.video")


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    path: str
    num_frames: int
    width: int
    height: int
    fps: float
    has_audio: bool
    duration: float
    codec: str
    expected_frames: int = 0  # round(duration · fps) from the header

    @property
    def broken(self) -> bool:
        """Fewer frames decode than the header promises (more than 2 and 5 % short): truncated or damaged."""
        short = self.expected_frames - self.num_frames
        return short > max(2, 0.05 * self.expected_frames)

    def broken_note(self) -> str | None:
        if not self.broken:
            return None
        return (f"{self.path}: the video breaks after {self.num_frames} of the {self.expected_frames} frames its "
                f"header announces (truncated or damaged file); using the {self.num_frames} frames that decode")  # fmt: skip


@contextlib.contextmanager
def _quiet_fork():
    """ffmpeg runs as a subprocess (fork + exec, no Python in the child), which is safe beside JAX's threads; silence
    JAX's generic os.fork() warning for it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        yield


def _ffmpeg_reason(e: Exception) -> str:
    text = str(e)
    for pat in (
        "Invalid data found when processing input",
        "moov atom not found",
        "does not contain any stream",
        "Permission denied",
        "No such file",
    ):
        if pat in text:
            return pat
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return (lines[-1] if lines else type(e).__name__)[:160]


def _open(path: pathlib.Path, input_params=None):
    """A started `imageio_ffmpeg.read_frames` generator and its metadata (errors -> UserError)."""
    import imageio_ffmpeg

    _check_file(path, "video")
    gen = imageio_ffmpeg.read_frames(str(path), input_params=input_params)
    try:
        with _quiet_fork():
            meta = next(gen)
    except StopIteration:
        raise UserError(f"{path}: not a video ffmpeg can read (no stream found)") from None
    except Exception as e:  # imageio-ffmpeg raises OSError/RuntimeError with ffmpeg's log
        gen.close()
        raise UserError(f"{path}: not a readable video ({_ffmpeg_reason(e)})") from None
    if not meta.get("size") or not meta.get("codec"):
        gen.close()
        raise UserError(f"{path}: the file has no video stream")
    codec = str(meta["codec"]).strip().rstrip(",")
    meta["codec"] = codec
    still = codec in IMAGE_CODECS or (codec == "mjpeg" and float(meta.get("duration") or 0.0) <= 0.05)
    if still:
        gen.close()
        raise UserError(f"{path}: is a still image ({codec}), not a video; pass it as an image file instead")
    return gen, meta


def iter_frames(path: str | os.PathLike, max_frames: int | None = None, stride: int = 1) -> Iterator[np.ndarray]:
    """Yield the frames of a video as RGB uint8 [H, W, 3], every `stride`-th one (upstream's `counter % fps == 0`)."""
    path = pathlib.Path(path)
    gen, meta = _open(path)
    w, h = meta["size"]
    n_out = 0
    try:
        for i, buf in enumerate(gen):
            if max_frames is not None and n_out >= max_frames:
                break
            if i % stride:
                continue
            frame = np.frombuffer(buf, np.uint8)
            if frame.size != w * h * 3:
                if n_out == 0:
                    raise UserError(f"{path}: frame {i} is truncated ({frame.size} bytes, expected {w * h * 3})")
                log.warning("%s: frame %d is truncated; using the %d frames before it", path, i, n_out)
                return
            yield frame.reshape(h, w, 3)
            n_out += 1
    except UserError:
        raise
    except Exception as e:
        if n_out == 0:
            raise UserError(f"{path}: decoding failed at the first frame ({_ffmpeg_reason(e)})") from None
        log.warning("%s: decoding stopped after %d frame(s) (%s); using the %d frames that decoded", path, n_out,
                    _ffmpeg_reason(e), n_out)  # fmt: skip
        return
    finally:
        gen.close()
    if n_out == 0 and (max_frames is None or max_frames > 0):
        raise UserError(f"{path}: the video has no decodable frames (corrupt file?)")


def probe_video(path: str | os.PathLike, count_frames: bool = True) -> VideoInfo:
    """Size, fps, codec and audio presence from the header; the frame count by decoding (exact) unless
    `count_frames=False` (then estimated as round(duration · fps))."""
    import imageio_ffmpeg

    path = pathlib.Path(path)
    gen, meta = _open(path)
    gen.close()
    fps = float(meta.get("fps") or 0.0)
    duration = float(meta.get("duration") or 0.0)
    if count_frames:
        try:
            with _quiet_fork():
                n, secs = imageio_ffmpeg.count_frames_and_secs(str(path))
        except Exception as e:
            raise UserError(f"{path}: cannot count frames ({_ffmpeg_reason(e)})") from None
        duration = duration or float(secs)
    else:
        n = int(round(duration * fps))
    w, h = meta["size"]
    return VideoInfo(
        path=str(path),
        num_frames=int(n),
        width=int(w),
        height=int(h),
        fps=fps,
        has_audio=bool(meta.get("audio_codec")),
        duration=duration,
        codec=str(meta.get("codec")),
        expected_frames=int(round(float(meta.get("duration") or 0.0) * fps)),
    )


def read_video(path: str | os.PathLike, max_frames: int | None = None, stride: int = 1) -> np.ndarray:
    """All (or the first `max_frames`) frames as one RGB uint8 array [T, H, W, 3]."""
    return np.stack(list(iter_frames(path, max_frames=max_frames, stride=stride)))


def has_audio(path: str | os.PathLike) -> bool:
    gen, meta = _open(pathlib.Path(path))
    gen.close()
    return bool(meta.get("audio_codec"))


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    audio_from: str | os.PathLike | None = None,
    quality: float = 7.0,
) -> int:
    """Write RGB uint8 frames [H, W, 3] (all the same size; even sides are best for yuv420p) as an H.264 mp4
    (libx264, yuv420p, +faststart), optionally muxing the audio track of `audio_from` (AAC; cut to the video's
    length). Written to a temporary file next to `path`, then renamed: no half-written video is left behind.
    Returns the number of frames written."""
    import imageio_ffmpeg

    path = pathlib.Path(path)
    audio = None
    if audio_from is not None:
        audio_from = pathlib.Path(audio_from)
        if has_audio(audio_from):
            audio = str(audio_from)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix or ".mp4")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files
    writer = None
    n = 0
    try:
        for frame in frames:
            frame = np.ascontiguousarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
            if writer is None:
                size = (frame.shape[1], frame.shape[0])
                writer = imageio_ffmpeg.write_frames(
                    tmp,
                    size,
                    fps=fps,
                    codec="libx264",
                    pix_fmt_out="yuv420p",
                    quality=quality,
                    macro_block_size=2,
                    audio_path=audio,
                    audio_codec="aac" if audio else None,
                    output_params=["-movflags", "+faststart"] + (["-shortest"] if audio else []),
                )
                with _quiet_fork():
                    writer.send(None)
            elif (frame.shape[1], frame.shape[0]) != size:
                raise ValueError(
                    f"frame {n} has size {frame.shape[1]}x{frame.shape[0]}, the video is {size[0]}x{size[1]}"
                )
            writer.send(frame)
            n += 1
        if writer is None:
            raise ValueError("no frames to write")
        writer.close()
        writer = None
        os.replace(tmp, path)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return n


def is_video_path(path: str | os.PathLike) -> bool:
    return pathlib.Path(path).suffix.lower() in VIDEO_EXTS
