"""Stage 1, synthetic pairs (paper Sec. 3.1, METHOD.md 4.5 item 1): sources and targets are G(z) of random z.

`synthetic_losses_from` is the step's pure core (z, the 50 % draws and the DECA crops given); the loss the loop
differentiates draws them from the step's key.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxreenact.common.errors import UserError
from jaxreenact.common.mesh import batch_padding, put_replicated
from jaxreenact.pose import params as pose
from jaxreenact.training.losses import reenactment_losses_from
from jaxreenact.training.setup import Setup, init_params_fn, sample_z, synthetic_sources_from_z
from jaxreenact.training.stage import Stage
from jaxreenact.training.validation import validation_metrics


def synthetic_losses_from(s: Setup, params, frozen, z_s, z_t, draws=None, thetas=None, mesh=None):
    """The pure core of a synthetic step: sources G(z_s, ψ) and targets G(z_t, ψ) from the given z [B, 512]; the
    50 % scheme's draws and the DECA crops as `reenactment_losses_from` takes them. With a `mesh`: data-parallel
    over its `data` axis, the batch padded to a multiple of its devices (`common.mesh.Padding`, padded rows weigh
    0: the numbers of one device; `thetas`, when given, for the padded rows)."""
    pad = None
    if mesh is not None:
        pad = batch_padding(z_s.shape[0], mesh.size)
        z_s, z_t = pad.place(z_s, mesh), pad.place(z_t, mesh)
    w_s, img_s = synthetic_sources_from_z(s, frozen, z_s)
    _, img_t = synthetic_sources_from_z(s, frozen, z_t)
    return reenactment_losses_from(
        s, params, frozen, w_s, img_s, img_t, id_ref=img_s, draws=draws, thetas=thetas, pad=pad
    )


def synthetic_loss(s: Setup, batch: int, mesh=None):
    """The loss the loop differentiates (its draws from the step's key); `mesh`: see `synthetic_losses_from`."""

    def loss(params, frozen, key, data):
        del data
        k_s, k_t, k_attr = jax.random.split(key, 3)
        draws = pose.draw_single_attribute(k_attr, batch // 2, s.layout) if s.disentanglement_50 else None
        return synthetic_losses_from(s, params, frozen, sample_z(k_s, batch), sample_z(k_t, batch), draws, mesh=mesh)

    return loss


def synthetic_validate(s: Setup, batch: int, mesh=None):
    """Validation of `batch` pairs drawn from the batch's keys; with a `mesh`, z laid out as its padded batch and
    split over `data` (the outputs have the padded rows; the loop keeps the `valid` ones)."""
    pad = batch_padding(batch, 1 if mesh is None else mesh.size)

    def validate(params, frozen, val):
        z_s, z_t = sample_z(val["key_s"], batch), sample_z(val["key_t"], batch)
        if mesh is not None:
            z_s, z_t = pad.place(z_s, mesh), pad.place(z_t, mesh)
        w_s, img_s = synthetic_sources_from_z(s, frozen, z_s)
        _, img_t = synthetic_sources_from_z(s, frozen, z_t)
        return validation_metrics(s, params, frozen, w_s, img_s, img_t, csim_ref=img_s)

    return validate


def synthetic_validation(config, s: Setup, mesh=None):
    """The validation function and its fixed seeded pairs (keys of z_s, z_t per batch of `config.eval`, replicated
    over `mesh`, with `valid` marking the real rows of the padded batch)."""
    val_key = jax.random.key(config.eval.seed)
    vb = config.eval.batch_size
    pad = batch_padding(vb, 1 if mesh is None else mesh.size)
    val = []
    for i in range(max(1, config.eval.num_pairs // vb)):
        keys = {"key_s": jax.random.fold_in(val_key, 2 * i), "key_t": jax.random.fold_in(val_key, 2 * i + 1)}
        val.append({**(keys if mesh is None else put_replicated(keys, mesh)), "valid": np.arange(pad.padded) < vb})
    return synthetic_validate(s, vb, mesh), val


def build(config, mesh, s: Setup, frozen) -> Stage:
    if config.loss.disentanglement_50 and config.train.batch_size % 2:
        raise UserError(f"config.train.batch_size={config.train.batch_size} must be even (50% scheme)")
    validate, val = synthetic_validation(config, s, mesh)
    return Stage(
        init_params=init_params_fn(s.a),
        loss=synthetic_loss(s, config.train.batch_size, mesh),
        validate=validate,
        frozen=frozen,
        val_data=val,
    )
