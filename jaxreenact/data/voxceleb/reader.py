"""Readers of a built split (`VoxCelebFrames`), deterministic and sharded over hosts.

Readers (`VoxCelebFrames`): batches are numpy dicts, images float32 in [-1, 1] NHWC (or, with `uint8_images`, the
stored uint8 [0, 255], a quarter of the bytes to move to the devices), latents [B, 14, 512].

Determinism and multi-host contract (the same for frames and pairs):
* all randomness comes from ``numpy.random.SeedSequence([seed, epoch, stream])``; the global order of an epoch is
  a pure function of (seed, epoch) and does not depend on the number of hosts;
* global batch ``s`` of an epoch is ``order[s*B:(s+1)*B]`` (B = global batch size); the last partial global batch
  is dropped (``drop_remainder=True``, for training) or padded with ``valid=False`` rows (for evaluation);
* a process reads the rows of every global batch that its devices hold (`rows`, from the sharding:
  `data.pipeline.process_rows`), in ascending order and not necessarily contiguous; the processes read disjoint
  rows that together cover the global batch, and `data.pipeline.to_global` assembles the global array;
* a global batch may be laid out as ``padded_size`` rows (a multiple of the device count, `common.mesh.Padding`):
  row i >= B repeats row ``i % B`` and is marked ``valid=False``; `rows` then index the padded rows;
* ``start_step`` skips whole batches without reading them, and `frame_batches` / `pair_batches` map a global
  training step to (epoch, step in epoch), so a resumed run continues with exactly the same data order.
"""

from __future__ import annotations

import concurrent.futures
import functools
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from jaxreenact.common.errors import UserError
from jaxreenact.data.voxceleb.builder import _check_split, dataset_dir
from jaxreenact.data.voxceleb.tree import BUILD_COMMAND, INDEX_FILE

# Streams of the per-epoch random generators (fixed forever: changing one changes every run's data order).
_STREAM_FRAMES = 0
_STREAM_PAIRS = 1
_STREAM_EVAL_PAIRS = 2

# ----------------------------------------------------------------------------------------------------------------
# Reading


def _rng(seed: int, epoch: int, stream: int) -> np.random.Generator:
    if int(seed) < 0 or int(epoch) < 0:
        raise UserError(f"seed and epoch must be non-negative integers, got seed={seed}, epoch={epoch}")
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(epoch), stream]))


def num_batches(n: int, batch_size: int, drop_remainder: bool = True) -> int:
    """Global batches of an epoch of `n` items."""
    return n // batch_size if drop_remainder else -(-n // batch_size)


def host_batches(
    order: np.ndarray,
    batch_size: int,
    rows: np.ndarray | None = None,
    start_step: int = 0,
    drop_remainder: bool = True,
    padded_size: int | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """This process's (items of `order`, valid mask) for each global batch from `start_step` (the sharding contract):
    `rows` (default: all) are the rows of the (padded) global batch to read, e.g. `data.pipeline.process_rows`.

    `order` may be 1-D (example indices) or 2-D (one row per item, e.g. [source, target]). Without
    `drop_remainder` the last global batch is padded with copies of the epoch's first items, marked invalid.
    `padded_size` (>= `batch_size`): each global batch laid out as that many rows, row i >= `batch_size` a copy
    of row ``i % batch_size`` marked invalid (`common.mesh.Padding`).
    """
    padded = int(batch_size if padded_size is None else padded_size)
    if padded < batch_size:
        raise ValueError(f"padded_size {padded} is smaller than the batch ({batch_size})")
    rows = np.arange(padded) if rows is None else np.asarray(rows, np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= padded):
        raise ValueError(f"rows {rows.tolist()} are not rows of a global batch of {padded}")
    layout = (np.arange(padded) % batch_size)[rows]  # the global batch row each of this host's rows holds
    real = (np.arange(padded) < batch_size)[rows]
    order = np.asarray(order)
    n = len(order)
    for step in range(int(start_step), num_batches(n, batch_size, drop_remainder)):
        idx = step * batch_size + layout
        valid = (idx < n) & real
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

    def read(self, indices: np.ndarray, uint8_images: bool = False) -> dict[str, np.ndarray]:
        """Examples at `indices`: image float32 [b,S,S,3] in [-1,1] (`uint8_images`: as stored, uint8 [0, 255]),
        latent float32 [b,14,512], index, video."""
        indices = np.asarray(indices, np.int64)
        examples = self._fetch(indices)
        images = np.stack([ex["image"] for ex in examples])
        return {
            "image": images if uint8_images else images.astype(np.float32) / 127.5 - 1.0,
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
        rows: np.ndarray | None = None,
        start_step: int = 0,
        drop_remainder: bool = True,
        padded_size: int | None = None,
        uint8_images: bool = False,
    ) -> Iterator[dict[str, np.ndarray]]:
        """This process's `rows` (default all) of each global batch of `epoch` (`batch_size` is GLOBAL), from
        `start_step` (`host_batches`).

        Dict: image [b,S,S,3] float32 [-1,1] (`uint8_images`: uint8), latent [b,14,512], index (example), video,
        valid (bool), with b = len(rows).
        """
        order = self.epoch_order(seed, epoch)
        for idx, valid in host_batches(order, batch_size, rows, start_step, drop_remainder, padded_size):
            batch = self.read(idx, uint8_images)
            batch["valid"] = valid
            yield batch

    def frame_batches(
        self,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        rows: np.ndarray | None = None,
        padded_size: int | None = None,
        uint8_images: bool = False,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Endless training stream: global step t reads batch t % steps_per_epoch of epoch t // steps_per_epoch
        (each laid out as `padded_size` rows when given, of which this process reads `rows`, `host_batches`)."""
        steps = self.steps_per_epoch(batch_size)
        if steps == 0:
            raise UserError(f"the split has {self.num_examples} frames, fewer than one global batch ({batch_size})")
        yield from _endless(
            steps,
            start_step,
            lambda e, s: self.iterate_frames(
                batch_size, seed, e, rows, s, padded_size=padded_size, uint8_images=uint8_images
            ),
        )

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
        rows: np.ndarray | None = None,
        start_step: int = 0,
        drop_remainder: bool = True,
        padded_size: int | None = None,
        uint8_images: bool = False,
    ) -> Iterator[dict[str, np.ndarray]]:
        """This process's `rows` (default all) of each global batch of `pairs` ([n, 2]); `batch_size` is GLOBAL
        (`padded_size`: `host_batches`).

        Dict: source_image, target_image [b,S,S,3] float32 [-1,1] (`uint8_images`: uint8); source_latent,
        target_latent [b,14,512]; source_index, target_index, video, valid.
        """
        for items, valid in host_batches(pairs, batch_size, rows, start_step, drop_remainder, padded_size):
            both = self.read(items.reshape(-1), uint8_images)  # one fetch for sources and targets, interleaved
            yield {
                "source_image": both["image"][0::2],
                "target_image": both["image"][1::2],
                "source_latent": both["latent"][0::2],
                "target_latent": both["latent"][1::2],
                "source_index": items[:, 0],
                "target_index": items[:, 1],
                "video": self.video_of_example[items[:, 0]],
                "valid": valid,
            }

    def paired_epoch(
        self,
        seed: int,
        epoch: int,
        max_pairs: int = 2,
        *,
        batch_size: int,
        rows: np.ndarray | None = None,
        start_step: int = 0,
        drop_remainder: bool = True,
        padded_size: int | None = None,
        uint8_images: bool = False,
    ) -> Iterator[dict[str, np.ndarray]]:
        """The paired batches of `epoch` (METHOD.md 5 sampling, `epoch_pairs`), this process's `rows`, from
        `start_step`."""
        pairs = self.epoch_pairs(seed, epoch, max_pairs)
        yield from self.iterate_pairs(pairs, batch_size, rows, start_step, drop_remainder, padded_size, uint8_images)

    def paired_steps_per_epoch(self, batch_size: int, max_pairs: int = 2, drop_remainder: bool = True) -> int:
        return num_batches(self.num_pairs(max_pairs), batch_size, drop_remainder)

    def pair_batches(
        self,
        batch_size: int,
        seed: int,
        start_step: int = 0,
        max_pairs: int = 2,
        rows: np.ndarray | None = None,
        padded_size: int | None = None,
        uint8_images: bool = False,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Endless paired training stream; global step t is batch t % steps_per_epoch of epoch t // steps_per_epoch
        (each laid out as `padded_size` rows when given, of which this process reads `rows`, `host_batches`)."""
        steps = self.paired_steps_per_epoch(batch_size, max_pairs)
        if steps == 0:
            raise UserError(
                f"the split has {self.num_pairs(max_pairs)} pairs per epoch (videos with ≥2 frames × {max_pairs}), "
                f"fewer than one global batch ({batch_size})"
            )
        pairs_of = functools.partial(self.paired_epoch, seed, max_pairs=max_pairs, batch_size=batch_size,
                                     rows=rows, padded_size=padded_size, uint8_images=uint8_images)  # fmt: skip
        yield from _endless(steps, start_step, lambda e, s: pairs_of(e, start_step=s))


def _endless(steps: int, start_step: int, epoch_batches) -> Iterator[dict[str, np.ndarray]]:
    """Global step t is batch t % steps of epoch t // steps, forever; `epoch_batches(epoch, first_step)`."""
    epoch, step = divmod(int(start_step), steps)
    while True:
        yield from epoch_batches(epoch, step)
        epoch, step = epoch + 1, 0


def _text(x: Any) -> str:
    return x.decode("utf-8") if isinstance(x, bytes) else str(x)
