"""Stage 1, synthetic pairs (paper Sec. 3.1, METHOD.md 4.5 item 1): sources and targets are G(z) of random z."""

from __future__ import annotations

import jax

from jaxreenact.common.errors import UserError
from jaxreenact.common.mesh import batch_padding
from jaxreenact.training.losses import reenactment_losses
from jaxreenact.training.setup import Setup, init_params_fn, synthetic_sources
from jaxreenact.training.stage import Stage
from jaxreenact.training.validation import validation_metrics


def synthetic_loss(s: Setup, batch: int, mesh=None):
    """The stage's loss of a global batch of `batch` pairs; with a `mesh`, data-parallel over its `data` axis on
    the batch padded to a multiple of its devices (`common.mesh.Padding`: the numbers of one device)."""
    pad = batch_padding(batch, mesh.size) if mesh is not None else None

    def loss(params, frozen, key, data):
        del data
        k_s, k_t, k_attr = jax.random.split(key, 3)
        w_s, img_s = synthetic_sources(s, frozen, k_s, batch, mesh)
        _, img_t = synthetic_sources(s, frozen, k_t, batch, mesh)
        return reenactment_losses(s, params, frozen, k_attr, w_s, img_s, img_t, id_ref=img_s, pad=pad)

    return loss


def synthetic_validate(s: Setup, batch: int):
    def validate(params, frozen, val):
        w_s, img_s = synthetic_sources(s, frozen, val["key_s"], batch)
        _, img_t = synthetic_sources(s, frozen, val["key_t"], batch)
        return validation_metrics(s, params, frozen, w_s, img_s, img_t, csim_ref=img_s)

    return validate


def synthetic_validation(config, s: Setup):
    """The validation function and its fixed seeded pairs (keys of z_s, z_t per batch of `config.eval`)."""
    val_key = jax.random.key(config.eval.seed)
    vb = config.eval.batch_size
    val = [
        {"key_s": jax.random.fold_in(val_key, 2 * i), "key_t": jax.random.fold_in(val_key, 2 * i + 1)}
        for i in range(max(1, config.eval.num_pairs // vb))
    ]
    return synthetic_validate(s, vb), val


def build(config, mesh, s: Setup, frozen) -> Stage:
    if config.loss.disentanglement_50 and config.train.batch_size % 2:
        raise UserError(f"config.train.batch_size={config.train.batch_size} must be even (50% scheme)")
    validate, val = synthetic_validation(config, s)
    return Stage(
        init_params=init_params_fn(s.a),
        loss=synthetic_loss(s, config.train.batch_size, mesh),
        validate=validate,
        frozen=frozen,
        val_data=val,
    )
