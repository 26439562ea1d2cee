"""The TFDS (array_record) builder of a VoxCeleb-style tree; `python -m jaxreenact.data.build` runs it.

Built dataset (`build_frames_dataset`, CLI `python -m jaxreenact.data.build`): one TFDS dataset per split, stored
as array_record under ``OUT/jaxreenact_voxceleb/<split>/1.0.0/`` with no TensorFlow needed, examples in tree order
(ids, videos, frames sorted by name; TFDS shuffling disabled), each example
``{id, video, frame: text, video_index: int32, image: uint8 [S,S,3] (PNG), latent: float32 [14,512]}``.
Beside it, in the same folder: ``video_index.npz`` (example → video, video names, frame names) and
``build_report.json`` (counts and every skipped file with its reason).
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import json
import os
import pathlib
import re
import shutil
import tempfile

import numpy as np

from jaxreenact.common.errors import UserError
from jaxreenact.data.pipeline import ordered_map
from jaxreenact.data.voxceleb.tree import (
    DATASET_NAME,
    INDEX_FILE,
    LATENT_SHAPE,
    REPORT_FILE,
    VERSION,
    Skip,
    TreeScan,
    load_frame,
    scan_tree,
)  # fmt: skip

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


def _complete(target: pathlib.Path) -> bool:
    """A finished build: TFDS's dataset_info.json and our index and report (written last) are there."""
    return (target / "dataset_info.json").is_file() and (
        (target / INDEX_FILE).is_file() or (target / REPORT_FILE).is_file()
    )


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
    is an error unless `overwrite`. A split is built all or nothing: interrupted (SIGTERM, Ctrl-C), the build
    leaves the splits already built and no part of this one, and the rerun builds it again.
    """
    _check_split(split)
    if int(image_size) < 1:
        raise UserError(f"image size must be positive, got {image_size}")
    scan = scan_tree(root)
    target = dataset_dir(out, split)
    if target.exists() and not _complete(target):
        shutil.rmtree(target)  # what a failed or interrupted build left
    for p in target.parent.glob(f"incomplete.*{VERSION}"):  # TFDS's work folder of an interrupted build
        shutil.rmtree(p, ignore_errors=True)
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
