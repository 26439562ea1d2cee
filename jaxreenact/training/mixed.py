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
from jaxreenact.pose import params as pose
from jaxreenact.training import real
from jaxreenact.training.losses import reenactment_losses_from
from jaxreenact.training.setup import Setup, init_params_fn, sample_z, synthetic_sources_from_z
from jaxreenact.training.stage import Stage
from jaxreenact.training.synthetic import synthetic_validation


def mixed_losses_from(s: Setup, params, frozen, image_real, w_real, z_syn, z_t, draws=None, thetas=None):
    """The pure core of a mixed step: sources = the real frames [B/2, 256, 256, 3] with their e4e W+ followed by
    the synthetic G(z_syn, ψ) (z_syn [B − B/2, 512], W repeated, untruncated); targets G(z_t, ψ) (z_t [B, 512]);
    the 50 % draws and the DECA crops as `reenactment_losses_from` takes them."""
    w_syn, img_syn = synthetic_sources_from_z(s, frozen, z_syn)
    _, img_t = synthetic_sources_from_z(s, frozen, z_t)
    w_s = jnp.concatenate([w_real, w_syn], axis=0)
    img_s = jnp.concatenate([image_real, img_syn], axis=0)
    return reenactment_losses_from(s, params, frozen, w_s, img_s, img_t, id_ref=img_s, draws=draws, thetas=thetas)


def mixed_loss(s: Setup, batch: int):
    half = batch // 2

    def loss(params, frozen, key, data):
        k_s, k_t, k_attr = jax.random.split(key, 3)
        draws = pose.draw_single_attribute(k_attr, batch // 2, s.layout) if s.disentanglement_50 else None
        z_syn, z_t = sample_z(k_s, batch - half), sample_z(k_t, batch)
        return mixed_losses_from(s, params, frozen, data["image"], data["latent"], z_syn, z_t, draws)

    return loss


def build(config, mesh, s: Setup, frozen) -> Stage:
    ds = real.open_dataset(config)
    b = config.train.batch_size
    pidx, pcount = jax.process_index(), jax.process_count()
    if b % 2:
        raise UserError(f"config.train.batch_size={b} must be even (half real, half synthetic)")
    half = b // 2
    if half % mesh.size:
        raise UserError(f"the real half of the batch ({half}) must be divisible by the {mesh.size} devices")
    batches = real.stream(
        lambda start: ds.frame_batches(half, config.seed, start, pidx, pcount), ("image", "latent"), mesh
    )
    validate, val = synthetic_validation(config, s)
    return Stage(
        init_params=init_params_fn(s.a),
        loss=mixed_loss(s, b),
        validate=validate,
        frozen=frozen,
        batches=batches,
        val_data=val,
    )
