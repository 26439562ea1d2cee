"""Stage 2, mixed real and synthetic sources (`real_synthetic`; paper Sec. 3.2, METHOD.md 4.5 item 2).

Each global batch is B/2 real frames with their e4e latents (from a dataset built by `python -m
jaxreenact.data.build`) followed by B/2 synthetic sources; targets are B synthetic faces. DECA reads the *real
frame* (not its inversion); identity and perceptual losses compare with it. As upstream, the 50% single-attribute
scheme then gives the real half full Δp and the synthetic half single-attribute shifts.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxreenact.common.errors import UserError
from jaxreenact.common.mesh import batch_padding, shard_rows
from jaxreenact.training import real
from jaxreenact.training.losses import reenactment_losses
from jaxreenact.training.setup import Setup, init_params_fn, synthetic_sources
from jaxreenact.training.stage import Stage
from jaxreenact.training.synthetic import synthetic_validation


def mixed_loss(s: Setup, batch: int, mesh=None):
    """The stage's loss; `data` holds the real half (B/2 rows, laid out as the padded batch of `mesh` when given:
    `common.mesh.Padding`), the synthetic half and the targets are drawn here."""
    half = batch // 2
    devices = 1 if mesh is None else mesh.size
    pad, pad_real, pad_syn = (batch_padding(n, devices) for n in (batch, half, batch - half))

    def loss(params, frozen, key, data):
        k_s, k_t, k_attr = jax.random.split(key, 3)
        w_syn, img_syn = synthetic_sources(s, frozen, k_s, batch - half, mesh)
        _, img_t = synthetic_sources(s, frozen, k_t, batch, mesh)
        real = pad_real.real({"latent": data["latent"], "image": data["image"]})
        w_s = jnp.concatenate([real["latent"], pad_syn.real(w_syn)], axis=0)
        img_s = jnp.concatenate([real["image"], pad_syn.real(img_syn)], axis=0)
        w_s, img_s = shard_rows(pad.pad((w_s, img_s)), mesh)
        return reenactment_losses(s, params, frozen, k_attr, w_s, img_s, img_t, id_ref=img_s, pad=pad)

    return loss


def build(config, mesh, s: Setup, frozen) -> Stage:
    ds = real.open_dataset(config)
    b = config.train.batch_size
    pidx, pcount = jax.process_index(), jax.process_count()
    if b % 2:
        raise UserError(f"config.train.batch_size={b} must be even (half real, half synthetic)")
    half = b // 2
    padded = batch_padding(half, mesh.size).padded  # each host reads its part of the padded real half
    batches = real.stream(
        lambda start: ds.frame_batches(half, config.seed, start, pidx, pcount, padded_size=padded),
        ("image", "latent"),
        mesh,
    )
    validate, val = synthetic_validation(config, s)
    return Stage(
        init_params=init_params_fn(s.a),
        loss=mixed_loss(s, b, mesh),
        validate=validate,
        frozen=frozen,
        batches=batches,
        val_data=val,
    )
