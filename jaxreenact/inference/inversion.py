"""e4e inversion of every frame of a VoxCeleb-style tree: the library behind `python -m jaxreenact.invert`.

For every ``ROOT/<id>/<video>/frames_cropped/<name>.png`` it writes (METHOD.md 5, the authors' layout)::

    ROOT/<id>/<video>/inversion/latent_codes/<name>.npy   e4e W+ float32 [14, 512] (no latent_avg, as the authors)
    ROOT/<id>/<video>/inversion/frames/<name>.png         G(trunc(w)) uint8 256x256 (with `save_images`)

* Batched under jit, the batch sharded over the local devices on a 1-D 'data' mesh; the last batch is padded to the
  fixed batch size (one compilation) and the padding dropped.
* Resumable: a frame whose latent (and, with `save_images`, whose inverted frame) exists is skipped, so an
  interrupted run continues where it stopped. Every file is written through a temporary file and a rename, so an
  interrupt never leaves a half-written latent that a later run would take as done.
* A frame that cannot be read is reported (file and reason) and skipped; the run goes on.
* Several processes (`jaxreenact.common.distributed`: launch/local_multiprocess.sh, Slurm) split the frames still
  to do between them by a hash of each frame's path (the split does not depend on what was done before), each on
  its own devices, no collective; an interrupted process loses only its current batch.
* The inverted frames are rendered with truncation ψ = 0.7 toward the mean latent, as the authors'
  `invert_images.py` saves them (and as every reenacted frame is rendered); `truncation=1` shows the latent as it is.
  The latents themselves are never truncated.
"""

from __future__ import annotations

import dataclasses
import functools
import io
import os
import pathlib
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxreenact.common.constants import TRUNCATION
from jaxreenact.common.errors import UserError
from jaxreenact.common.files import atomic_write_bytes
from jaxreenact.common.images import from_uint8, to_uint8_jax
from jaxreenact.common.mesh import batch_sharded, cpu_chunks, local_mesh, pad_rows, round_up
from jaxreenact.data import voxceleb
from jaxreenact.data.images import encode_png
from jaxreenact.data.pipeline import ordered_map
from jaxreenact.inference.writer import Writer, each
from jaxreenact.latent.render import render
from jaxreenact.weights import Networks

IMAGES_DIR = os.path.join("inversion", "frames")
SIZE = 256


@dataclasses.dataclass
class Report:
    """What a run did: counts and every frame it could not use, with the reason."""

    videos: int = 0
    frames: int = 0
    inverted: int = 0
    done_before: int = 0
    failed: list[voxceleb.Skip] = dataclasses.field(default_factory=list)

    def format(self, root) -> str:
        lines = [
            f"inversion of {root}: {self.videos} videos, {self.frames} frames: {self.inverted} inverted, "
            f"{self.done_before} already done (skipped), {len(self.failed)} failed"
        ]
        lines += [f"  skipped {s.path}: {s.reason}" for s in self.failed]
        return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Job:
    frame: pathlib.Path
    latent: pathlib.Path
    image: pathlib.Path | None


def plan(root, save_images: bool = False, overwrite: bool = False) -> tuple[list[Job], Report]:
    """The frames still to invert (tree order) and a report counting the videos, frames and those already done."""
    report = Report()
    jobs = []
    for _, _, video_dir in voxceleb.find_video_dirs(root):
        report.videos += 1
        frames = voxceleb.files_by_stem(video_dir / voxceleb.FRAMES_DIR, voxceleb.IMAGE_EXTENSIONS, report.failed)
        for stem in sorted(frames):
            report.frames += 1
            job = Job(
                frames[stem],
                video_dir / voxceleb.LATENTS_DIR / f"{stem}.npy",
                video_dir / IMAGES_DIR / f"{stem}.png" if save_images else None,
            )
            if not overwrite and job.latent.exists() and (job.image is None or job.image.exists()):
                report.done_before += 1
            else:
                jobs.append(job)
    if report.frames == 0:
        raise UserError(
            f"dataset root {root} has no frames: expected {root}/<id>/<video>/{voxceleb.FRAMES_DIR}/*.png "
            "(make them with `python -m jaxreenact.preprocess`)"
        )
    return jobs, report


def check_truncation(truncation: float) -> None:
    if not 0 < float(truncation) <= 1:
        raise UserError(f"--truncation {truncation}: use a value in (0, 1] (0.7 as the authors, 1 = none)")


def read_frame(path: pathlib.Path) -> np.ndarray:
    """A frame as uint8 [256, 256, 3] (resized with PIL bilinear if needed, as the dataset reader); `UserError`."""
    import PIL.Image

    im = voxceleb.load_image(path, SIZE)
    if isinstance(im, bytes):
        with PIL.Image.open(io.BytesIO(im)) as f:
            return np.asarray(f.convert("RGB"))
    return np.asarray(im)


@functools.partial(jax.jit, static_argnames=("nets", "render_images", "truncation"))
def _invert(nets: Networks, e4e_vars, g_vars, images_u8, render_images: bool, truncation: float):
    w = cpu_chunks(lambda x: nets.e4e.apply(e4e_vars, from_uint8(x)), images_u8)
    if not render_images:
        return w, None
    return w, to_uint8_jax(render(nets.g, g_vars, w, truncation))


def invert_batch(
    nets, frozen, images_u8: np.ndarray, sharding=None, render: bool = False, truncation: float = TRUNCATION
):
    """(W+ float32 [B, 14, 512], G(trunc_ψ(w)) uint8 [B, 256, 256, 3] or None) of uint8 frames [B, 256, 256, 3]."""
    x = jnp.asarray(images_u8) if sharding is None else jax.device_put(images_u8, sharding)
    w, img = _invert(nets, frozen["e4e"], frozen["g"] if render else None, x, render, float(truncation))
    return np.asarray(w, np.float32), None if img is None else np.asarray(img)


def _npy_bytes(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def _load(job: Job):
    try:
        return read_frame(job.frame)
    except UserError as e:
        return voxceleb.Skip(str(job.frame), "unreadable_frame", str(e))


def invert_tree(
    root,
    nets: Networks,
    frozen: dict,
    batch_size: int = 32,
    save_images: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    num_threads: int = 8,
    truncation: float = TRUNCATION,
    process_index: int | None = None,
    process_count: int | None = None,
) -> Report:
    """Invert every frame of the tree at `root` that is not done yet (see the module docstring). `frozen` holds
    the "e4e" variables (and "g" with `save_images`, whose frames are rendered at ψ = `truncation`). With several
    processes (default: JAX's), this one takes its share of the frames (module docstring). Returns the report
    (`inverted`: this process's)."""
    check_truncation(truncation)
    jobs, report = plan(root, save_images, overwrite)
    i = jax.process_index() if process_index is None else process_index
    n = jax.process_count() if process_count is None else process_count
    if n > 1:  # by a hash of the frame's path: the same split whatever each process found done when it started
        jobs = [j for j in jobs if zlib.crc32(str(j.frame.relative_to(root)).encode()) % n == i]
    sharding = batch_sharded(local_mesh())
    batch = round_up(batch_size, sharding.mesh.size)  # a multiple of the device count
    bar = tqdm(total=len(jobs), desc="invert", unit="frame", disable=not progress)
    pending: list[tuple[Job, np.ndarray]] = []

    def flush():
        if not pending:
            return
        x = np.stack([img for _, img in pending])
        k = len(x)
        x = pad_rows(x, batch)
        w, img = invert_batch(nets, frozen, x, sharding, render=save_images, truncation=truncation)
        for i, (job, _) in enumerate(pending):  # written in the writer thread while the next batch runs
            writer.put((job, w[i], None if job.image is None else img[i]))
        report.inverted += k
        bar.update(k)
        pending.clear()

    writer = Writer(each(_write), depth=4 * batch, name="invert-writer")
    try:
        for job, loaded in zip(jobs, ordered_map(_load, jobs, num_threads)):
            if isinstance(loaded, voxceleb.Skip):
                report.failed.append(loaded)
                bar.update(1)
                continue
            pending.append((job, loaded))
            if len(pending) == batch:
                flush()
        flush()
    except BaseException:
        writer.abort()  # what was computed is still written (resumable), then the error goes on
        raise
    finally:
        bar.close()
    writer.close()
    return report


def _write(item) -> None:
    """One frame's files, each through a temporary file and a rename."""
    job, w, img = item
    atomic_write_bytes(job.latent, _npy_bytes(w))
    if img is not None:
        atomic_write_bytes(job.image, encode_png(img))
