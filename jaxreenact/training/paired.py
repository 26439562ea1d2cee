"""Stage 3, paired video fine-tuning (paper Sec. 3.3, METHOD.md 4.5 item 3, 5).

Source and target are two frames of one video (METHOD.md 5 sampling); full Δp; the shape ground truth is the
target's own DECA parameters; identity, perceptual (on [0, 255] images, an upstream quirk kept) and pixel L1
compare with the target frame.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxreenact.common.mesh import batch_padding, shard_rows
from jaxreenact.training import real
from jaxreenact.training.losses import reenactment_losses
from jaxreenact.training.setup import Setup, init_params_fn
from jaxreenact.training.stage import Stage
from jaxreenact.training.validation import validation_metrics

KEYS = ("source_image", "target_image", "source_latent", "target_latent")


def paired_loss(s: Setup, batch: int | None = None, mesh=None):
    """The stage's loss; with a `mesh`, `data` is the global batch of `batch` pairs laid out as the padded batch
    of that mesh (`common.mesh.Padding`)."""
    pad = batch_padding(batch, mesh.size) if mesh is not None else None

    def loss(params, frozen, key, data):
        data = shard_rows({k: data[k] for k in KEYS}, mesh)
        img_t = data["target_image"]
        return reenactment_losses(
            s, params, frozen, key, data["source_latent"], data["source_image"], img_t, id_ref=img_t,
            pixel_ref=img_t, paired=True, pad=pad,
        )  # fmt: skip

    return loss


def paired_validate(s: Setup):
    def validate(params, frozen, val):
        img_t = val["target_image"]
        return validation_metrics(s, params, frozen, val["source_latent"], val["source_image"], img_t, csim_ref=img_t)

    return validate


def build(config, mesh, s: Setup, frozen) -> Stage:
    ds = real.open_dataset(config)
    b = config.train.batch_size
    pidx, pcount = jax.process_index(), jax.process_count()
    padded = batch_padding(b, mesh.size).padded  # each host reads its part of the padded batch
    batches = real.stream(
        lambda start: ds.pair_batches(b, config.seed, start, config.data.max_pairs, pidx, pcount, padded), KEYS, mesh
    )
    vb = config.eval.batch_size
    pairs = ds.eval_pairs(config.eval.seed)[: max(vb, config.eval.num_pairs // vb * vb)]
    val = [
        {k: jnp.asarray(v) for k, v in batch.items() if k in (*KEYS, "valid")}
        for batch in ds.iterate_pairs(pairs, vb, drop_remainder=False)
    ]
    return Stage(
        init_params=init_params_fn(s.a),
        loss=paired_loss(s, b, mesh),
        validate=paired_validate(s),
        frozen=frozen,
        batches=batches,
        val_data=val,
    )
