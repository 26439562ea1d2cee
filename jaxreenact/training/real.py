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
from jaxreenact.data import fake, pipeline
from jaxreenact.data.voxceleb import VoxCelebFrames, dataset_dir, host_batches


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


def val_frames(config):
    """The real/mixed stages' validation set, as the authors' `CustomDataset_testset_real`: e4e latents of frames of
    the validation split in a fixed seeded random order (the first `eval.num_pairs`), each with a fixed synthetic
    target (`key_t` per batch). A list of batches {latent, key_t, valid}."""
    ds = open_dataset(config, config.data.val_split)
    order = ds.epoch_order(config.eval.seed, 0)[: _num_val(config, ds.num_examples)]
    val_key = jax.random.key(config.eval.seed)
    out = []
    for i, (idx, valid) in enumerate(host_batches(order, config.eval.batch_size, drop_remainder=False)):
        latent = ds.read(idx)["latent"]
        out.append({"latent": jnp.asarray(latent), "key_t": jax.random.fold_in(val_key, 2 * i + 1), "valid": valid})
    ds.close()
    return out


def val_pairs(config, keys):
    """The paired stage's validation set, as the authors' `CustomDataset_paired_validation` (+ `Subset(randperm)`):
    every frame of every video of the validation split with ≥ 2 frames is a source once, with a fixed random other
    frame of its video as target; shuffled by `eval.seed`, the first `eval.num_pairs`. A list of batches."""
    ds = open_dataset(config, config.data.val_split)
    pairs = ds.eval_pairs(config.eval.seed)
    if len(pairs) == 0:
        raise UserError(f"config.data.val_split={config.data.val_split!r}: no video with 2 or more frames to pair")
    pairs = pairs[np.random.default_rng(config.eval.seed).permutation(len(pairs))][: _num_val(config, len(pairs))]
    out = [
        {k: jnp.asarray(v) for k, v in batch.items() if k in (*keys, "valid")}
        for batch in ds.iterate_pairs(pairs, config.eval.batch_size, drop_remainder=False)
    ]
    ds.close()
    return out


def stream(make_iter, keys, mesh):
    """step -> this step's global batch; the iterator is (re)started at the first step asked for."""
    state = {"next": None, "it": None}

    def batches(step: int):
        if state["it"] is None or state["next"] != step:
            state["it"] = pipeline.prefetch(make_iter(step))
        b = next(state["it"])
        state["next"] = step + 1
        return pipeline.to_global({k: b[k] for k in keys}, mesh)

    return batches
