"""What the real-data stages (real, mixed, paired) share: opening the built dataset, the step -> batch stream, and
the validation sets drawn from the test split.

`config.train.steps` counts optimizer steps in every mode (upstream counts epochs for the real-data modes); the
data stream runs epoch after epoch, each epoch a pure function of (seed, epoch), so a resumed run reads the same
data.

Validation reads `config.data.val_split` ("test") of the same TFDS folder, as the authors validate on their test set
(`--test_dataset_path`): never training frames.
"""

from __future__ import annotations

import pathlib
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.common.errors import UserError
from jaxreenact.common.images import from_uint8
from jaxreenact.common.mesh import batch_padding, batch_sharded, put_replicated
from jaxreenact.data import fake, pipeline
from jaxreenact.data.voxceleb import VoxCelebFrames, dataset_dir, host_batches


def float_images(images):
    """Images as the step reads them, float32 [-1, 1]: batches come as uint8 (`common.images.from_uint8`, the
    reader's own float conversion)."""
    return from_uint8(images) if images.dtype == jnp.uint8 else images


def open_dataset(config, split: str | None = None):
    """The built VoxCeleb-style dataset of `config.data` (a made-up one for `:tiny` configs): the training split, or
    `split` (e.g. `config.data.val_split`)."""
    root = config.data.tfds_dir
    split = split or config.data.split
    if config.tiny and not root:
        folder = config.data.fake_dir or pathlib.Path(tempfile.gettempdir()) / "jaxreenact_fake_voxceleb"
        root = fake.make_fake_dataset(folder, split=split, image_size=256)
    if not root:
        raise UserError(
            "config.data.tfds_dir is empty: build your dataset with "
            "`python -m jaxreenact.data.build --root DATASET_ROOT --out TFDS_DIR` and pass --config.data.tfds_dir=TFDS_DIR"
        )
    if split != config.data.split and not (dataset_dir(root, split) / "dataset_info.json").is_file():
        raise UserError(
            f"config.data.val_split={split!r}: {root} has no such split; the real-data stages validate on test "
            f"frames, as the authors: `python -m jaxreenact.data.build --root TEST_ROOT --out {root} --split {split}`"
        )
    return VoxCelebFrames(root, split)


def _num_val(config, n: int) -> int:
    """How many validation samples: `eval.num_pairs` in whole batches of `eval.batch_size` (at least one batch),
    at most the split's `n`."""
    vb = config.eval.batch_size
    return min(n, max(vb, config.eval.num_pairs // vb * vb))


def val_frames(config, mesh):
    """The real/mixed stages' validation set, as the authors' `CustomDataset_testset_real`: e4e latents of frames of
    the validation split in a fixed seeded random order (the first `eval.num_pairs`), each with a fixed synthetic
    target (`key_t` per batch). A list of batches {latent, key_t, valid}: each batch laid out as the padded batch
    of `mesh` (`common.mesh.Padding`) and split over its `data` axis, this process reading the rows its devices
    hold; `valid` (numpy, every row) marks the real ones."""
    ds = open_dataset(config, config.data.val_split)
    order = ds.epoch_order(config.eval.seed, 0)[: _num_val(config, ds.num_examples)]
    val_key = jax.random.key(config.eval.seed)
    vb = config.eval.batch_size
    sharding, padded = batch_sharded(mesh), batch_padding(vb, mesh.size).padded
    rows = pipeline.process_rows(sharding, padded)
    out = []
    for i, (idx, _) in enumerate(host_batches(order, vb, rows, drop_remainder=False, padded_size=padded)):
        local = {"latent": ds.read(idx)["latent"]}
        key_t = put_replicated(jax.random.fold_in(val_key, 2 * i + 1), mesh)
        out.append(
            {**pipeline.to_global(local, sharding, rows, padded), "key_t": key_t, "valid": _valid(order, vb, i, padded)}
        )
    ds.close()
    return out


def _valid(order, batch: int, i: int, padded: int) -> np.ndarray:
    """bool [padded]: the real rows of global validation batch `i` (every process computes the whole mask)."""
    (_, valid), *_ = host_batches(order, batch, None, i, drop_remainder=False, padded_size=padded)
    return valid


def val_pairs(config, keys, mesh):
    """The paired stage's validation set, as the authors' `CustomDataset_paired_validation` (+ `Subset(randperm)`):
    every frame of every video of the validation split with ≥ 2 frames is a source once, with a fixed random other
    frame of its video as target; shuffled by `eval.seed`, the first `eval.num_pairs`. A list of batches, laid out
    and split over `mesh` as `val_frames`."""
    ds = open_dataset(config, config.data.val_split)
    pairs = ds.eval_pairs(config.eval.seed)
    if len(pairs) == 0:
        raise UserError(f"config.data.val_split={config.data.val_split!r}: no video with 2 or more frames to pair")
    pairs = pairs[np.random.default_rng(config.eval.seed).permutation(len(pairs))][: _num_val(config, len(pairs))]
    vb = config.eval.batch_size
    sharding, padded = batch_sharded(mesh), batch_padding(vb, mesh.size).padded
    rows = pipeline.process_rows(sharding, padded)
    out = []
    for i, batch in enumerate(ds.iterate_pairs(pairs, vb, rows, drop_remainder=False, padded_size=padded)):
        local = {k: v for k, v in batch.items() if k in keys}
        out.append({**pipeline.to_global(local, sharding, rows, padded), "valid": _valid(pairs, vb, i, padded)})
    ds.close()
    return out


def stream(make_iter, keys, mesh, rows, size: int, ahead: int = 2):
    """step -> this step's global batch of `size` rows (this process reading `rows`, `data.pipeline.process_rows`);
    the iterator is (re)started at the first step asked for. A background thread reads, decodes and puts the
    batches on the devices `ahead` steps early, so a step never waits for its input's transfer."""
    state = {"next": None, "it": None}
    sharding = batch_sharded(mesh)

    def on_device(it):
        for b in it:
            yield pipeline.to_global({k: b[k] for k in keys}, sharding, rows, size)

    def batches(step: int):
        if state["it"] is None or state["next"] != step:
            state["it"] = pipeline.prefetch(on_device(make_iter(step)), size=ahead)
        b = next(state["it"])
        state["next"] = step + 1
        return b

    return batches
