"""VoxCeleb-style trees of frames and e4e latents: scanning, a TFDS (array_record) builder, readers, global arrays.

Tree layout (METHOD.md 5, as written by the VoxCeleb preprocessing and `python -m jaxreenact.invert`)::

    ROOT/<id>/<video>/frames_cropped/<name>.png                 256x256 RGB crops
    ROOT/<id>/<video>/inversion/latent_codes/<name>.npy         e4e W+ latent, float32 (14, 512) or (1, 14, 512)

A frame and a latent belong together when their file names without extension (stems) are equal. The authors sort
the two lists and pair them by index, which silently mispairs a whole video after one missing file; here every
mismatch is reported (`Skip`) and left out. A frame without latent, a latent without frame, an unreadable image, a
latent of the wrong shape or with non-finite values: each becomes one `Skip(path, kind, reason)` in the build
report, and the build goes on. A root that does not exist or holds no `<id>/<video>/frames_cropped` folder is a
`UserError`.

Built dataset (`build_frames_dataset`, CLI `python -m jaxreenact.data.build`): one TFDS dataset per split, stored
as array_record under ``OUT/jaxreenact_voxceleb/<split>/1.0.0/`` with no TensorFlow needed, examples in tree order
(ids, videos, frames sorted by name; TFDS shuffling disabled), each example
``{id, video, frame: text, video_index: int32, image: uint8 [S,S,3] (PNG), latent: float32 [14,512]}``.
Beside it, in the same folder: ``video_index.npz`` (example → video, video names, frame names) and
``build_report.json`` (counts and every skipped file with its reason).

Readers (`VoxCelebFrames`): batches are numpy dicts, images float32 in [-1, 1] NHWC, latents [B, 14, 512].

Determinism and multi-host contract (the same for frames and pairs):
* all randomness comes from ``numpy.random.SeedSequence([seed, epoch, stream])``; the global order of an epoch is
  a pure function of (seed, epoch) and does not depend on the number of hosts;
* global batch ``s`` of an epoch is ``order[s*B:(s+1)*B]`` (B = global batch size); the last partial global batch
  is dropped (``drop_remainder=True``, for training) or padded with ``valid=False`` rows (for evaluation);
* host ``p`` of ``P`` reads rows ``[p*B/P, (p+1)*B/P)`` of every global batch (B must be divisible by P), so the
  hosts read disjoint slices that together cover the global batch, and `to_global` assembles the global array;
* ``start_step`` skips whole batches without reading them, and `frame_batches` / `pair_batches` map a global
  training step to (epoch, step in epoch), so a resumed run continues with exactly the same data order.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import dataclasses
import io
import json
import os
import pathlib
import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from jaxreenact.errors import UserError

LATENT_SHAPE = (14, 512)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
FRAMES_DIR = "frames_cropped"
LATENTS_DIR = os.path.join("inversion", "latent_codes")
DATASET_NAME = "jaxreenact_voxceleb"
VERSION = "1.0.0"
INDEX_FILE = "video_index.npz"
REPORT_FILE = "build_report.json"
BUILD_COMMAND = "python -m jaxreenact.data.build --root DATASET_ROOT --out TFDS_DIR --split SPLIT"

# Streams of the per-epoch random generators (fixed forever: changing one changes every run's data order).
_STREAM_FRAMES = 0
_STREAM_PAIRS = 1
_STREAM_EVAL_PAIRS = 2


# ----------------------------------------------------------------------------------------------------------------
# Scanning the tree


@dataclasses.dataclass(frozen=True)
class Skip:
    """A file (or folder) left out of the dataset: `kind` is a short tag, `reason` a sentence for the user."""

    path: str
    kind: str
    reason: str


@dataclasses.dataclass(frozen=True)
class FrameRecord:
    name: str  # the common stem of the frame and its latent
    image_path: pathlib.Path
    latent_path: pathlib.Path


@dataclasses.dataclass(frozen=True)
class VideoRecord:
    id: str
    video: str
    path: pathlib.Path
    frames: tuple[FrameRecord, ...]

    @property
    def key(self) -> str:
        return f"{self.id}/{self.video}"


@dataclasses.dataclass
class TreeScan:
    root: pathlib.Path
    videos: list[VideoRecord]
    skipped: list[Skip]

    @property
    def num_frames(self) -> int:
        return sum(len(v.frames) for v in self.videos)


def _visible_dirs(path: pathlib.Path) -> list[pathlib.Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def files_by_stem(folder: pathlib.Path, extensions: Sequence[str], skipped: list[Skip]) -> dict[str, pathlib.Path]:
    """{stem: path} of the files in `folder` with one of `extensions`; a stem seen twice is reported and dropped."""
    found: dict[str, list[pathlib.Path]] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in extensions:
            found.setdefault(p.stem, []).append(p)
    out = {}
    for stem, paths in found.items():
        if len(paths) == 1:
            out[stem] = paths[0]
        else:
            for p in paths:
                skipped.append(Skip(str(p), "duplicate_name", f"{len(paths)} files named {stem!r} in {folder}"))
    return out


def find_video_dirs(root: str | os.PathLike) -> list[tuple[str, str, pathlib.Path]]:
    """[(id, video, video_dir)] of every ``root/<id>/<video>/frames_cropped`` folder, sorted; `UserError` if none."""
    root = pathlib.Path(root)
    if not root.is_dir():
        raise UserError(
            f"dataset root {root} does not exist or is not a folder: pass the folder that holds "
            f"<id>/<video>/{FRAMES_DIR}/*.png"
        )
    videos = []
    for id_dir in _visible_dirs(root):
        for video_dir in _visible_dirs(id_dir):
            if (video_dir / FRAMES_DIR).is_dir():
                videos.append((id_dir.name, video_dir.name, video_dir))
    if not videos:
        hint = ""
        if (root / FRAMES_DIR).is_dir() or any((d / FRAMES_DIR).is_dir() for d in _visible_dirs(root)):
            hint = " (it looks like a single video or identity folder: pass the folder two levels above frames_cropped)"
        raise UserError(f"dataset root {root} holds no videos: expected {root}/<id>/<video>/{FRAMES_DIR}/*.png{hint}")
    return videos


def scan_tree(root: str | os.PathLike) -> TreeScan:
    """Match frames and latents of a VoxCeleb-style tree by name. Cheap: lists files, reads none.

    Returns the videos (each with its frames that have a latent of the same stem, sorted by name) and the skips
    found so far (frames without latent, latents without frame, duplicate names, videos without any frame or
    without a latent folder). Contents are checked later, by `load_frame`, while building.
    """
    root = pathlib.Path(root)
    skipped: list[Skip] = []
    videos = []
    for id_name, video_name, video_dir in find_video_dirs(root):
        frames = files_by_stem(video_dir / FRAMES_DIR, IMAGE_EXTENSIONS, skipped)
        latent_dir = video_dir / LATENTS_DIR
        if not frames:
            skipped.append(Skip(str(video_dir / FRAMES_DIR), "no_frames", "no .png frames in this folder"))
            continue
        if not latent_dir.is_dir():
            skipped.append(
                Skip(
                    str(latent_dir),
                    "no_latent_folder",
                    f"missing: its {len(frames)} frames have no latents (run `python -m jaxreenact.invert {root}`)",
                )
            )
            continue
        latents = files_by_stem(latent_dir, (".npy",), skipped)
        records = []
        for stem in sorted(frames):
            if stem in latents:
                records.append(FrameRecord(stem, frames[stem], latents[stem]))
            else:
                skipped.append(Skip(str(frames[stem]), "missing_latent", f"no latent {stem}.npy in {latent_dir}"))
        for stem in sorted(set(latents) - set(frames)):
            skipped.append(
                Skip(str(latents[stem]), "missing_frame", f"no frame {stem}.png in {video_dir / FRAMES_DIR}")
            )
        if records:
            videos.append(VideoRecord(id_name, video_name, video_dir, tuple(records)))
    return TreeScan(root, videos, skipped)


def load_latent(path: str | os.PathLike) -> np.ndarray:
    """An e4e latent file as float32 [14, 512] (a leading axis of 1 is squeezed); `UserError` when unusable."""
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as e:  # any unreadable file is a user-data problem
        raise UserError(f"unreadable latent: {type(e).__name__}: {e}") from None
    if not isinstance(a, np.ndarray) or not np.issubdtype(a.dtype, np.floating):
        raise UserError(f"latent is not a float array (dtype {getattr(a, 'dtype', type(a))})")
    if a.ndim == len(LATENT_SHAPE) + 1 and a.shape[0] == 1:
        a = a[0]
    if a.shape != LATENT_SHAPE:
        raise UserError(f"latent has shape {tuple(a.shape)}, expected {LATENT_SHAPE} (or (1, 14, 512))")
    if not np.all(np.isfinite(a)):
        raise UserError("latent has NaN or infinite values")
    return np.asarray(a, np.float32)


def load_image(path: str | os.PathLike, image_size: int):
    """A frame for the dataset: PNG bytes as they are when the file already is an RGB PNG of `image_size`²,
    else an RGB PIL image (resized with PIL bilinear, as the authors' Resize). The file is fully decoded either
    way, so a truncated or corrupt file raises `UserError` here."""
    import PIL.Image

    try:
        data = pathlib.Path(path).read_bytes()
        with PIL.Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.format == "PNG" and im.mode == "RGB" and im.size == (image_size, image_size):
                return data
            im = im.convert("RGB")
    except Exception as e:  # truncated/corrupt files raise OSError, SyntaxError, ValueError...
        raise UserError(f"unreadable image: {type(e).__name__}: {e}") from None
    if im.size != (image_size, image_size):
        im = im.resize((image_size, image_size), PIL.Image.BILINEAR)
    return im


def load_frame(record: FrameRecord, image_size: int):
    """(image: PNG bytes or PIL image, latent) of one frame, or a `Skip` saying why it cannot be used."""
    try:
        image = load_image(record.image_path, image_size)
    except UserError as e:
        return Skip(str(record.image_path), "unreadable_frame", str(e))
    try:
        latent = load_latent(record.latent_path)
    except UserError as e:
        return Skip(str(record.latent_path), "bad_latent", str(e))
    return image, latent


def ordered_map(fn, items, num_threads: int, window: int = 256):
    """`map(fn, items)` on a thread pool, in order, with at most `window` results waiting (bounded memory)."""
    if num_threads <= 1:
        yield from map(fn, items)
        return
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        pending = collections.deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= window:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# ----------------------------------------------------------------------------------------------------------------
# Building


def dataset_dir(out: str | os.PathLike, split: str = "train") -> pathlib.Path:
    """Where `build_frames_dataset(out=..., split=...)` writes the split: ``OUT/jaxreenact_voxceleb/<split>/1.0.0``."""
    return pathlib.Path(out) / DATASET_NAME / split / VERSION


def _check_split(split: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_]+", split or ""):
        raise UserError(f"split name {split!r} must be letters, digits or '_' (e.g. train, test)")


def _builder_class():
    """The TFDS builder class, defined on first use so that importing this module does not import TFDS."""
    global _BUILDER
    if _BUILDER is not None:
        return _BUILDER
    import tensorflow_datasets as tfds
    from tqdm import tqdm

    class JaxreenactVoxceleb(tfds.core.GeneratorBasedBuilder):
        """Frames + e4e latents of a local VoxCeleb-style tree; one builder config per split name."""

        name = DATASET_NAME
        VERSION = tfds.core.Version(VERSION)
        RELEASE_NOTES = {str(VERSION): "Frames and latents matched by name."}
        # No checksums/code files to locate (TFDS would need the `importlib_resources` backport for that).
        code_path = None

        def __init__(
            self,
            *,
            scan: TreeScan | None = None,
            image_size: int = 256,
            progress: bool = True,
            num_threads: int = 8,
            **kwargs,
        ):
            self._scan = scan
            self._num_threads = num_threads
            self._image_size = int(image_size)
            self._progress = progress
            self.skipped: list[Skip] = []
            self.written: list[tuple[int, str]] = []  # (video number in scan, frame name) per example, in order
            super().__init__(**kwargs)

        def _info(self):
            s = self._image_size
            return tfds.core.DatasetInfo(
                builder=self,
                description="Frames and e4e latents of a local VoxCeleb-style tree (jaxreenact).",
                features=tfds.features.FeaturesDict(
                    {
                        "id": tfds.features.Text(),
                        "video": tfds.features.Text(),
                        "frame": tfds.features.Text(),
                        "video_index": tfds.features.Scalar(dtype=np.int32),
                        "image": tfds.features.Image(shape=(s, s, 3), encoding_format="png"),
                        "latent": tfds.features.Tensor(shape=LATENT_SHAPE, dtype=np.float32),
                    }
                ),
                disable_shuffling=True,  # keep tree order: the video index beside the data relies on it
            )

        def _split_generators(self, dl_manager):
            return {self.builder_config.name: self._generate_examples()}

        def _generate_examples(self):
            scan = self._scan
            bar = tqdm(total=scan.num_frames, desc="frames", unit="frame", disable=not self._progress)
            items = [(vi, rec) for vi, video in enumerate(scan.videos) for rec in video.frames]
            loaded_items = ordered_map(lambda it: load_frame(it[1], self._image_size), items, self._num_threads)
            key = 0
            for (vi, rec), loaded in zip(items, loaded_items):
                bar.update(1)
                if isinstance(loaded, Skip):
                    self.skipped.append(loaded)
                    continue
                image, latent = loaded
                video = scan.videos[vi]
                self.written.append((vi, rec.name))
                yield (
                    key,
                    {
                        "id": video.id,
                        "video": video.video,
                        "frame": rec.name,
                        "video_index": vi,  # renumbered in video_index.npz if a whole video was skipped
                        "image": image,
                        "latent": latent,
                    },
                )
                key += 1
            bar.close()

    _BUILDER = JaxreenactVoxceleb
    return _BUILDER


_BUILDER = None


@contextlib.contextmanager
def _quiet_tfds(tfds):
    """TFDS's own progress bars and absl notices off while we build (our tqdm bar counts the frames)."""
    import logging

    from tensorflow_datasets.core.utils import tqdm_utils

    was_active, absl_logger = tqdm_utils._active, logging.getLogger("absl")
    level = absl_logger.level
    tfds.disable_progress_bar()
    absl_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        tfds.display_progress_bar(was_active)
        absl_logger.setLevel(level)


@dataclasses.dataclass
class BuildReport:
    root: str
    split: str
    data_dir: str
    image_size: int
    num_videos: int
    num_examples: int
    skipped: list[Skip]

    def to_json(self) -> dict:
        d = dataclasses.asdict(self)
        d["num_skipped"] = len(self.skipped)
        d["skipped_by_kind"] = dict(collections.Counter(s.kind for s in self.skipped))
        return d

    def summary(self, max_lines: int = 20) -> str:
        lines = [
            f"built split {self.split!r}: {self.num_examples} frames of {self.num_videos} videos from {self.root}",
            f"  -> {self.data_dir}",
        ]
        if not self.skipped:
            lines.append("skipped: nothing")
        else:
            counts = collections.Counter(s.kind for s in self.skipped)
            lines.append(f"skipped {len(self.skipped)}: " + ", ".join(f"{k} {n}" for k, n in sorted(counts.items())))
            for s in self.skipped[:max_lines]:
                lines.append(f"  {s.kind}: {s.path}: {s.reason}")
            if len(self.skipped) > max_lines:
                lines.append(f"  ... and {len(self.skipped) - max_lines} more")
            lines.append(f"full list: {pathlib.Path(self.data_dir) / REPORT_FILE}")
        return "\n".join(lines)


def build_frames_dataset(
    root: str | os.PathLike,
    out: str | os.PathLike,
    split: str = "train",
    image_size: int = 256,
    overwrite: bool = False,
    progress: bool = True,
    num_threads: int = 8,
) -> BuildReport:
    """Build the frames+latents dataset of the tree at `root` as split `split` under `out` (see module docstring).

    Never downloads; everything TFDS writes stays inside `out`. Unusable files are skipped and reported (returned,
    printed by the CLI, and written to ``build_report.json`` beside the data). An existing build of the same split
    is an error unless `overwrite`.
    """
    _check_split(split)
    if int(image_size) < 1:
        raise UserError(f"image size must be positive, got {image_size}")
    scan = scan_tree(root)
    target = dataset_dir(out, split)
    if target.exists() and not (target / "dataset_info.json").is_file():
        shutil.rmtree(target)  # what a failed or interrupted build left
    if target.exists():
        if not overwrite:
            raise UserError(f"{target} already exists: pass --overwrite to rebuild it, or choose another --out")
        shutil.rmtree(target)
    report = BuildReport(str(scan.root), split, str(target), int(image_size), 0, 0, list(scan.skipped))

    def fail(message):
        target.mkdir(parents=True, exist_ok=True)
        (target / REPORT_FILE).write_text(json.dumps(report.to_json(), indent=1, default=str))
        raise UserError(f"{message}; nothing was built ({report.summary(5)})")

    if scan.num_frames == 0:
        fail(f"no frame in {scan.root} has a latent of the same name")

    import tensorflow_datasets as tfds

    pathlib.Path(out).mkdir(parents=True, exist_ok=True)
    with _quiet_tfds(tfds), tempfile.TemporaryDirectory(dir=out, prefix=".downloads_") as tmp:
        builder = _builder_class()(
            scan=scan,
            image_size=image_size,
            progress=progress,
            num_threads=num_threads,
            data_dir=str(out),
            config=tfds.core.BuilderConfig(name=split, description=f"split {split} of {scan.root}"),
            file_format="array_record",
        )
        try:
            builder.download_and_prepare(download_dir=tmp)
        except (ValueError, AssertionError) as e:  # TFDS: "No examples were yielded"
            if builder.written:
                raise
            report.skipped = list(scan.skipped) + builder.skipped
            for p in target.parent.glob(f"incomplete.*{VERSION}"):
                shutil.rmtree(p, ignore_errors=True)
            fail(f"every frame of {scan.root} was unusable ({e})")
    report.skipped = list(scan.skipped) + builder.skipped

    # The per-video index: renumber the videos that kept at least one frame.
    used = sorted({vi for vi, _ in builder.written})
    renumber = {vi: i for i, vi in enumerate(used)}
    video_of_example = np.array([renumber[vi] for vi, _ in builder.written], np.int32)
    np.savez(
        target / INDEX_FILE,
        video_of_example=video_of_example,
        scan_video_index=np.array([vi for vi, _ in builder.written], np.int32),
        video_ids=np.array([scan.videos[vi].id for vi in used], dtype=str),
        video_names=np.array([scan.videos[vi].video for vi in used], dtype=str),
        frame_names=np.array([name for _, name in builder.written], dtype=str),
    )
    report.num_videos = len(used)
    report.num_examples = len(builder.written)
    (target / REPORT_FILE).write_text(json.dumps(report.to_json(), indent=1, default=str))
    return report


# ----------------------------------------------------------------------------------------------------------------
# Reading


def _rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    if int(seed) < 0 or int(epoch) < 0:
        raise UserError(f"seed and epoch must be non-negative integers, got seed={seed}, epoch={epoch}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), stream]))


def _host_rows(batch_size: int, process_index: int, process_count: int) -> slice:
    if process_count < 1 or not 0 <= process_index < process_count:
        raise ValueError(f"process_index {process_index} is not in [0, process_count={process_count})")
    if batch_size < 1 or batch_size % process_count:
        raise UserError(
            f"global batch size {batch_size} must be a positive multiple of the number of hosts ({process_count})"
        )
    per_host = batch_size // process_count
    return slice(process_index * per_host, (process_index + 1) * per_host)


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Global batches of an epoch of `n` items."""
    return n // batch_size if drop_remainder else -(-n // batch_size)


def host_batches(
    order: np.ndarray,
    batch_size: int,
    process_index: int = 0,
    process_count: int = 1,
    start_step: int = 0,
    drop_remainder: bool = True,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """This host's (rows of `order`, valid mask) for each global batch from `start_step` (the sharding contract).

    `order` may be 1-D (example indices) or 2-D (one row per item, e.g. [source, target]). Without
    `drop_remainder` the last global batch is padded with copies of the epoch's first items, marked invalid.
    """
    rows = _host_rows(batch_size, process_index, process_count)
    order = np.asarray(order)
    n = len(order)
    for step in range(int(start_step), num_batches(n, batch_size, drop_remainder)):
        idx = np.arange(step * batch_size, (step + 1) * batch_size)[rows]
        valid = idx < n
        yield order[np.where(valid, idx, idx % max(n, 1))], valid


class VoxCelebFrames:
    """A built split (`build_frames_dataset`) opened for reading through ``builder.as_data_source`` (no TF).

    Attributes: `num_examples`, `image_size`, `video_of_example` (int32 [N], video number of each example),
    `videos` (list of "id/video"), `frame_names`, `video_members` (list of int arrays: the examples of each video).
    """

    def __init__(self, out: str | os.PathLike, split: str = "train", num_threads: int = 8):
        _check_split(split)
        path = dataset_dir(out, split)
        if not (path / "dataset_info.json").is_file():
            raise UserError(f"no built dataset at {path}: build it with `{BUILD_COMMAND}`")
        import tensorflow_datasets as tfds

        self.path = path
        self.split = split
        self._source = tfds.builder_from_directory(str(path)).as_data_source(split=split)
        self.num_examples = len(self._source)
        self._pool = concurrent.futures.ThreadPoolExecutor(num_threads) if num_threads > 1 else None
        self._num_threads = num_threads
        index_file = path / INDEX_FILE
        if index_file.is_file():
            with np.load(index_file, allow_pickle=False) as z:
                self.video_of_example = z["video_of_example"]
                keys = [f"{i}/{v}" for i, v in zip(z["video_ids"], z["video_names"])]
                self.frame_names = list(z["frame_names"])
                scan_index = z["scan_video_index"]
            if len(self.video_of_example) != self.num_examples:
                raise UserError(f"{index_file} does not match the data ({self.num_examples} examples): rebuild it")
            for i in {0, self.num_examples - 1}:  # cheap consistency check of the stored order
                ex = self._source[i]
                if int(ex["video_index"]) != scan_index[i] or _text(ex["frame"]) != self.frame_names[i]:
                    raise UserError(f"{index_file} does not match example {i} of the data: rebuild the dataset")
        else:  # slow fallback: read every example once
            examples = [self._source[i] for i in range(self.num_examples)]
            keys_of = [f"{_text(ex['id'])}/{_text(ex['video'])}" for ex in examples]
            keys = list(dict.fromkeys(keys_of))
            pos = {k: i for i, k in enumerate(keys)}
            self.video_of_example = np.array([pos[k] for k in keys_of], np.int32)
            self.frame_names = [_text(ex["frame"]) for ex in examples]
        self.videos = keys
        order = np.argsort(self.video_of_example, kind="stable")
        bounds = np.searchsorted(self.video_of_example[order], np.arange(len(keys) + 1))
        self.video_members = [order[bounds[v] : bounds[v + 1]] for v in range(len(keys))]
        first = self._source[0]
        self.image_size = int(first["image"].shape[0])

    def __len__(self) -> int:
        return self.num_examples

    def close(self) -> None:
        """Stop the decoding threads (also done by ``with VoxCelebFrames(...) as ds:``)."""
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- decoding ------------------------------------------------------------------------------------------
    def _fetch(self, indices: np.ndarray) -> list[dict]:
        indices = [int(i) for i in np.asarray(indices).reshape(-1)]
        if self._pool is None or len(indices) < 2:
            return list(self._source.__getitems__(indices))
        chunks = [c for c in np.array_split(np.array(indices), min(self._num_threads, len(indices))) if len(c)]
        parts = self._pool.map(lambda c: self._source.__getitems__([int(i) for i in c]), chunks)
        return [ex for part in parts for ex in part]

    def read(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        """Examples at `indices`: image float32 [b,S,S,3] in [-1,1], latent float32 [b,14,512], index, video."""
        indices = np.asarray(indices, np.int64)
        examples = self._fetch(indices)
        return {
            "image": np.stack([ex["image"] for ex in examples]).astype(np.float32) / 127.5 - 1.0,
            "latent": np.stack([ex["latent"] for ex in examples]).astype(np.float32),
            "index": indices,
            "video": self.video_of_example[indices],
        }

    # -- frames ----------------------------------------------------------------------------------------------
    def epoch_order(self, seed: int, epoch: int) -> np.ndarray:
        """The global order of all examples in `epoch`: a permutation, pure function of (seed, epoch)."""
        return _rng(seed, epoch, _STREAM_FRAMES).permutation(self.num_examples)

    def steps_per_epoch(self, batch_size: int, drop_remainder: bool = True) -> int:
        return num_batches(self.num_examples, batch_size, drop_remainder)

    def iterate_frames(
        self,
        batch_size: int,
        seed: int,
        epoch: int,
        process_index: int = 0,
        process_count: int = 1,
        start_step: int = 0,
        drop_remainder: bool = True,
    ) -> Iterator[dict[str, np.ndarray]]:
        """This host's part of each global batch of `epoch` (`batch_size` is GLOBAL), from `start_step`.

        Dict: image [b,S,S,3] float32 [-1,1], latent [b,14,512], index (example), video, valid (bool), with
        b = batch_size / process_count.
        """
        order = self.epoch_order(seed, epoch)
        for idx, valid in host_batches(order, batch_size, process_index, process_count, start_step, drop_remainder):
            batch = self.read(idx)
            batch["valid"] = valid
            yield batch

    def frame_batches(
        self, batch_size: int, seed: int, start_step: int = 0, process_index: int = 0, process_count: int = 1
    ) -> Iterator[dict[str, np.ndarray]]:
        """Endless training stream: global step t reads batch t % steps_per_epoch of epoch t // steps_per_epoch."""
        steps = self.steps_per_epoch(batch_size)
        if steps == 0:
            raise UserError(f"the split has {self.num_examples} frames, fewer than one global batch ({batch_size})")
        epoch, step = divmod(int(start_step), steps)
        while True:
            yield from self.iterate_frames(batch_size, seed, epoch, process_index, process_count, start_step=step)
            epoch, step = epoch + 1, 0

    # -- pairs -----------------------------------------------------------------------------------------------
    def epoch_pairs(self, seed: int, epoch: int, max_pairs: int = 2) -> np.ndarray:
        """[n, 2] (source, target) example indices of `epoch`, in the epoch's (shuffled) order (METHOD.md 5).

        For each video with at least 2 frames (in video order): a random permutation of its frames, the first
        `max_pairs` become sources, and each source gets a uniformly random other frame of the same video as target.
        The pairs are then shuffled. Pure function of (seed, epoch); the count does not depend on the seed.
        """
        rng = _rng(seed, epoch, _STREAM_PAIRS)
        pairs = []
        for members in self.video_members:
            n = len(members)
            if n < 2:
                continue
            perm = rng.permutation(n)
            for s in perm[:max_pairs]:
                t = rng.integers(n - 1)
                t = t + (t >= s)  # uniform over the other frames
                pairs.append((members[s], members[t]))
        pairs = np.array(pairs, np.int64).reshape(-1, 2)
        return pairs[rng.permutation(len(pairs))]

    def eval_pairs(self, seed: int = 0) -> np.ndarray:
        """[n, 2] validation pairs (METHOD.md 5): every frame of every video with ≥2 frames is a source once, with one
        uniformly random other frame of its video as target; fixed by `seed`, in example order."""
        rng = _rng(seed, 0, _STREAM_EVAL_PAIRS)
        pairs = []
        for members in self.video_members:
            n = len(members)
            if n < 2:
                continue
            t = rng.integers(n - 1, size=n)
            t = t + (t >= np.arange(n))
            pairs.extend(zip(members, members[t]))
        return np.array(sorted(pairs), np.int64).reshape(-1, 2)

    def num_pairs(self, max_pairs: int = 2) -> int:
        return sum(min(max_pairs, len(m)) for m in self.video_members if len(m) >= 2)

    def iterate_pairs(
        self,
        pairs: np.ndarray,
        batch_size: int,
        process_index: int = 0,
        process_count: int = 1,
        start_step: int = 0,
        drop_remainder: bool = True,
    ) -> Iterator[dict[str, np.ndarray]]:
        """This host's part of each global batch of `pairs` ([n, 2]); `batch_size` is GLOBAL.

        Dict: source_image, target_image [b,S,S,3] float32 [-1,1]; source_latent, target_latent [b,14,512];
        source_index, target_index, video, valid.
        """
        for rows, valid in host_batches(pairs, batch_size, process_index, process_count, start_step, drop_remainder):
            both = self.read(rows.reshape(-1))  # one fetch for sources and targets, interleaved
            yield {
                "source_image": both["image"][0::2],
                "target_image": both["image"][1::2],
                "source_latent": both["latent"][0::2],
                "target_latent": both["latent"][1::2],
                "source_index": rows[:, 0],
                "target_index": rows[:, 1],
                "video": self.video_of_example[rows[:, 0]],
                "valid": valid,
            }

    def paired_epoch(
        self,
        seed: int,
        epoch: int,
        max_pairs: int = 2,
        *,
        batch_size: int,
        process_index: int = 0,
        process_count: int = 1,
        start_step: int = 0,
        drop_remainder: bool = True,
    ) -> Iterator[dict[str, np.ndarray]]:
        """The paired batches of `epoch` (METHOD.md 5 sampling, `epoch_pairs`), sharded per host, from `start_step`."""
        pairs = self.epoch_pairs(seed, epoch, max_pairs)
        yield from self.iterate_pairs(pairs, batch_size, process_index, process_count, start_step, drop_remainder)

    def paired_steps_per_epoch(self, batch_size: int, max_pairs: int = 2, drop_remainder: bool = True) -> int:
        return num_batches(self.num_pairs(max_pairs), batch_size, drop_remainder)

    def pair_batches(
        self,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        max_pairs: int = 2,
        process_index: int = 0,
        process_count: int = 1,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Endless paired training stream; global step t is batch t % steps_per_epoch of epoch t // steps_per_epoch."""
        steps = self.paired_steps_per_epoch(batch_size, max_pairs)
        if steps == 0:
            raise UserError(
                f"the split has {self.num_pairs(max_pairs)} pairs per epoch (videos with ≥2 frames × {max_pairs}), "
                f"fewer than one global batch ({batch_size})"
            )
        epoch, step = divmod(int(start_step), steps)
        while True:
            yield from self.paired_epoch(
                seed,
                epoch,
                max_pairs,
                batch_size=batch_size,
                process_index=process_index,
                process_count=process_count,
                start_step=step,
            )
            epoch, step = epoch + 1, 0


def _text(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)


# ----------------------------------------------------------------------------------------------------------------
# Host-local batches to global arrays


def to_global(batch: Any, mesh=None, sharding=None, batch_axis: str | None = None):
    """Assemble each host's local batch into global `jax.Array`s with `jax.make_array_from_process_local_data`.

    `batch`: a pytree (e.g. dict) of host-local numpy arrays, leading axis = this host's rows (`iterate_*` output).
    `sharding`: a `jax.sharding.Sharding` for every leaf (or a pytree of them matching `batch`); by default
    ``NamedSharding(mesh, P(batch_axis))`` with `batch_axis` "data" if the mesh has it, else its first axis.
    The global leading size is the sum of the hosts' sizes; non-numeric leaves (strings) stay as they are.
    """
    import jax
    from jax.sharding import NamedSharding, PartitionSpec

    if sharding is None:
        if mesh is None:
            raise ValueError("to_global needs a mesh or a sharding")
        axis = batch_axis or ("data" if "data" in mesh.axis_names else mesh.axis_names[0])
        sharding = NamedSharding(mesh, PartitionSpec(axis))

    def convert(x, s):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf":
            return x
        return jax.make_array_from_process_local_data(s, x)

    if isinstance(sharding, jax.sharding.Sharding):
        return jax.tree.map(lambda x: convert(x, sharding), batch)
    return jax.tree.map(convert, batch, sharding)


def prefetch(iterator: Iterator[Any], size: int = 2) -> Iterator[Any]:
    """Run `iterator` in a background thread, `size` items ahead (image decoding overlaps the training step).

    The items and their order are unchanged; an exception in the iterator is re-raised here.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=max(1, size))
    done = object()
    stop = threading.Event()

    def worker():
        try:
            for item in iterator:
                if stop.is_set():
                    return
                q.put(item)
            q.put(done)
        except BaseException as e:  # handed to the consumer
            q.put(e)

    thread = threading.Thread(target=worker, daemon=True)
    thread.start()
    try:
        while True:
            item = q.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
