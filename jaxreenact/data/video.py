"""Video files: read mp4/avi/mov/mkv/webm frames as RGB uint8, probe size/fps/frame count/audio, write H.264 mp4.

Why PyAV: it runs FFmpeg's libraries inside this process (its wheels bundle FFmpeg with libx264 and AAC), so no
child process is started. Starting one (imageio-ffmpeg's `subprocess.Popen`, which forks) while another thread is
inside an OpenBLAS matrix product leaves OpenBLAS's thread pool torn down by its fork handler, and that thread then
spins forever (issue 24: the web demo's queue jammed that way). Decoding happens in FFmpeg's own threads, never a
fork. The frames are those of the `ffmpeg` command line (same libavcodec, RGB24 through swscale; equal on the shipped
example).

Every user mistake becomes a one-line `UserError`: a missing or unreadable path, a folder, an empty file, a file FFmpeg
cannot open as a video, a video without decodable frames. A video that breaks mid-stream (a truncated download, a
damaged file) is not an error: the frames that decode are used, and a warning says how many of the header's
(`VideoInfo.broken`, `broken_note`).
"""

from __future__ import annotations

import dataclasses
import fractions
import logging
import os
import pathlib
import tempfile
from collections.abc import Iterable, Iterator

import av
import numpy as np

from jaxreenact.common.errors import UserError
from jaxreenact.data.images import _check_file

VIDEO_EXTS = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
# Codecs FFmpeg reports for a single still image read as a "video".
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


def _reason(e: Exception) -> str:
    """The useful part of an FFmpeg error, short."""
    text = getattr(e, "strerror", None) or str(e)
    for pat in ("Invalid data found when processing input", "moov atom not found", "Permission denied",
                "No such file"):  # fmt: skip
        if pat in str(e):
            return pat
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    return (lines[-1] if lines else type(e).__name__)[:160]


def _open(path: pathlib.Path):
    """An open input container and its first video stream (errors -> UserError)."""
    _check_file(path, "video")
    try:
        container = av.open(str(path), mode="r")
    except Exception as e:  # av.error.FFmpegError and OSError subclasses with FFmpeg's reason
        raise UserError(f"{path}: not a readable video ({_reason(e)})") from None
    if not container.streams.video:
        container.close()
        raise UserError(f"{path}: the file has no video stream")
    stream = container.streams.video[0]
    codec = stream.codec_context.name
    duration = float(container.duration or 0) / av.time_base
    if codec in IMAGE_CODECS or (codec == "mjpeg" and duration <= 0.05) or container.format.name.endswith("_pipe"):
        container.close()
        raise UserError(f"{path}: is a still image ({codec}), not a video; pass it as an image file instead")
    stream.thread_type = "AUTO"  # FFmpeg's own decoding threads (no fork)
    return container, stream


def _fps(stream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def iter_frames(path: str | os.PathLike, max_frames: int | None = None, stride: int = 1) -> Iterator[np.ndarray]:
    """Yield the frames of a video as RGB uint8 [H, W, 3], every `stride`-th one (upstream's `counter % fps == 0`)."""
    path = pathlib.Path(path)
    container, stream = _open(path)
    n_out = 0
    try:
        for i, frame in enumerate(container.decode(stream)):
            if max_frames is not None and n_out >= max_frames:
                break
            if i % stride:
                continue
            yield frame.to_ndarray(format="rgb24")
            n_out += 1
    except UserError:
        raise
    except Exception as e:  # a damaged stream
        if n_out == 0:
            raise UserError(f"{path}: decoding failed at the first frame ({_reason(e)})") from None
        log.warning("%s: decoding stopped after %d frame(s) (%s); using the %d frames that decoded", path, n_out,
                    _reason(e), n_out)  # fmt: skip
        return
    finally:
        container.close()
    if n_out == 0 and (max_frames is None or max_frames > 0):
        raise UserError(f"{path}: the video has no decodable frames (corrupt file?)")


def _count_frames(container, stream) -> int:
    """Frames of the video stream that decode (exact, as `ffmpeg -f null`; a damaged tail ends the count). No
    conversion to RGB: about 1 ms a 720p frame."""
    n = 0
    try:
        for _ in container.decode(stream):
            n += 1
    except Exception as e:
        log.warning("%s: decoding stopped after %d frame(s) (%s)", container.name, n, _reason(e))
    return n


def probe_video(path: str | os.PathLike, count_frames: bool = True) -> VideoInfo:
    """Size, fps, codec and audio presence from the header; the frame count by decoding (exact) unless
    `count_frames=False` (then estimated as round(duration · fps))."""
    path = pathlib.Path(path)
    container, stream = _open(path)
    try:
        fps = _fps(stream)
        duration = float(container.duration or 0) / av.time_base
        if stream.duration and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        n = _count_frames(container, stream) if count_frames else int(round(duration * fps))
        return VideoInfo(
            path=str(path),
            num_frames=int(n),
            width=int(stream.codec_context.width),
            height=int(stream.codec_context.height),
            fps=fps,
            has_audio=bool(container.streams.audio),
            duration=duration,
            codec=str(stream.codec_context.name),
            expected_frames=int(round(duration * fps)),
        )
    finally:
        container.close()


def read_video(path: str | os.PathLike, max_frames: int | None = None, stride: int = 1) -> np.ndarray:
    """All (or the first `max_frames`) frames as one RGB uint8 array [T, H, W, 3]."""
    return np.stack(list(iter_frames(path, max_frames=max_frames, stride=stride)))


def has_audio(path: str | os.PathLike) -> bool:
    container, _ = _open(pathlib.Path(path))
    try:
        return bool(container.streams.audio)
    finally:
        container.close()


def _add_audio_stream(out, source: pathlib.Path):
    """An AAC stream in `out` shaped as the first audio track of `source` (added before anything is muxed)."""
    with av.open(str(source)) as src:
        a_in = src.streams.audio[0].codec_context
        a_out = out.add_stream("aac", rate=a_in.sample_rate)
        a_out.layout = a_in.layout
    return a_out


def _mux_audio(out, a_out, source: pathlib.Path, seconds: float) -> None:
    """The first audio track of `source` re-encoded into `a_out`, cut to `seconds` (ffmpeg's `-shortest`)."""
    src = av.open(str(source))
    try:
        a_in = src.streams.audio[0]
        for frame in src.decode(a_in):
            if frame.time is not None and frame.time >= seconds:
                break
            frame.pts = None
            out.mux(a_out.encode(frame))
        out.mux(a_out.encode(None))
    finally:
        src.close()


def write_video(
    path: str | os.PathLike,
    frames: Iterable[np.ndarray],
    fps: float = 25.0,
    audio_from: str | os.PathLike | None = None,
    quality: float = 7.0,
) -> int:
    """Write RGB uint8 frames [H, W, 3] (all the same size; an odd side gets one edge-replicated row or column, as
    yuv420p needs even sides) as an H.264 mp4 (libx264, yuv420p, CRF int(51·(1 − quality/10)), +faststart),
    optionally with the audio track of `audio_from` (AAC; cut to the video's length). Written to a temporary file
    next to `path`, then renamed: no half-written video is left behind. Returns the number of frames written."""
    path = pathlib.Path(path)
    audio = None
    if audio_from is not None and has_audio(audio_from):
        audio = pathlib.Path(audio_from)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=path.suffix or ".mp4")
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files
    rate = fractions.Fraction(fps).limit_denominator(1001 * 1000)
    out = None
    n = 0
    try:
        out = av.open(tmp, mode="w", format="mp4", options={"movflags": "+faststart"})
        stream = None
        for frame in frames:
            frame = np.ascontiguousarray(frame)
            if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
                raise ValueError(f"frames must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
            if stream is None:
                size = (frame.shape[1], frame.shape[0])
                stream = out.add_stream("libx264", rate=rate)
                stream.width, stream.height = size[0] + size[0] % 2, size[1] + size[1] % 2
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(int((1 - quality / 10.0) * 51))}
                a_out = _add_audio_stream(out, audio) if audio is not None else None
            elif (frame.shape[1], frame.shape[0]) != size:
                raise ValueError(
                    f"frame {n} has size {frame.shape[1]}x{frame.shape[0]}, the video is {size[0]}x{size[1]}"
                )
            if size[0] % 2 or size[1] % 2:
                frame = np.pad(frame, ((0, size[1] % 2), (0, size[0] % 2), (0, 0)), mode="edge")
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
            n += 1
        if stream is None:
            raise ValueError("no frames to write")
        out.mux(stream.encode(None))
        if audio is not None:
            _mux_audio(out, a_out, audio, n / float(rate))
        out.close()
        out = None
        os.replace(tmp, path)
    finally:
        if out is not None:
            out.close()
        if os.path.exists(tmp):
            os.unlink(tmp)
    return n


def is_video_path(path: str | os.PathLike) -> bool:
    return pathlib.Path(path).suffix.lower() in VIDEO_EXTS
