"""Stage 2, mixed real and synthetic sources (`real_synthetic`; paper Sec. 3.2, METHOD.md 4.5 item 2), and the
authors' `real` mode (every source real).

Each global batch is B/2 real frames with their e4e latents (from a dataset built by `python -m
jaxreenact.data.build`) followed by B/2 synthetic sources (`real`: B real frames); targets are B synthetic faces.
DECA reads the *real frame* (not its inversion); identity and perceptual losses compare with it. As upstream, the
50% single-attribute scheme then gives the first half of the batch (the real half in `real_synthetic`) full Δp and
the second half single-attribute shifts.

Validation, as the authors' `evaluate_model_reenactment` on `CustomDataset_testset_real`: e4e latents of frames of
the validation split (`config.data.val_split`, "test"), rendered G(trunc(w)) as the source image (DECA and CSIM read
that image), against fixed synthetic targets (`jaxreenact.training.real.val_frames`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxreenact.common.errors import UserError
from jaxreenact.pose import params as pose
from jaxreenact.training import real
from jaxreenact.training.losses import reenactment_losses_from
from jaxreenact.training.setup import (
    Setup,
    init_params_fn,
    render,
    sample_z,
    synthetic_sources,
    synthetic_sources_from_z,
)
from jaxreenact.training.stage import Stage
from jaxreenact.training.validation import validation_metrics


def mixed_losses_from(s: Setup, params, frozen, image_real, w_real, z_syn, z_t, draws=None, thetas=None):
    """The pure core of a mixed step: sources = the real frames [n_real, 256, 256, 3] with their e4e W+ followed by
    the synthetic G(z_syn, ψ) (z_syn [B − n_real, 512], W repeated, untruncated; None in the `real` mode); targets
    G(z_t, ψ) (z_t [B, 512]); the 50 % draws and the DECA crops as `reenactment_losses_from` takes them."""
    _, img_t = synthetic_sources_from_z(s, frozen, z_t)
    w_s, img_s = w_real, image_real
    if z_syn is not None and z_syn.shape[0]:
        w_syn, img_syn = synthetic_sources_from_z(s, frozen, z_syn)
        w_s = jnp.concatenate([w_real, w_syn], axis=0)
        img_s = jnp.concatenate([image_real, img_syn], axis=0)
    return reenactment_losses_from(s, params, frozen, w_s, img_s, img_t, id_ref=img_s, draws=draws, thetas=thetas)


def mixed_loss(s: Setup, batch: int, n_real: int | None = None):
    """The loss of a batch of `n_real` real sources (default B/2) followed by B − n_real synthetic ones."""
    n_real = batch // 2 if n_real is None else n_real

    def loss(params, frozen, key, data):
        k_s, k_t, k_attr = jax.random.split(key, 3)
        draws = pose.draw_single_attribute(k_attr, batch // 2, s.layout) if s.disentanglement_50 else None
        z_syn = sample_z(k_s, batch - n_real) if n_real < batch else None
        z_t = sample_z(k_t, batch)
        return mixed_losses_from(s, params, frozen, data["image"], data["latent"], z_syn, z_t, draws)

    return loss


def real_validate(s: Setup, batch: int):
    def validate(params, frozen, val):
        w_s = val["latent"]
        img_s = render(s, frozen, w_s)
        _, img_t = synthetic_sources(s, frozen, val["key_t"], batch)
        return validation_metrics(s, params, frozen, w_s, img_s, img_t, csim_ref=img_s)

    return validate


def build(config, mesh, s: Setup, frozen, n_real: int | None = None) -> Stage:
    """`real_synthetic` (B/2 real sources), or with `n_real` = B the `real` mode."""
    b = config.train.batch_size
    pidx, pcount = jax.process_index(), jax.process_count()
    if n_real is None:
        if b % 2:
            raise UserError(f"config.train.batch_size={b} must be even (half real, half synthetic)")
        n_real = b // 2
    elif config.loss.disentanglement_50 and b % 2:
        raise UserError(f"config.train.batch_size={b} must be even (50% scheme)")
    if n_real % mesh.size:
        raise UserError(f"the {n_real} real rows of the batch must be divisible by the {mesh.size} devices")
    ds = real.open_dataset(config)
    batches = real.stream(
        lambda start: ds.frame_batches(n_real, config.seed, start, pidx, pcount), ("image", "latent"), mesh
    )
    return Stage(
        init_params=init_params_fn(s.a),
        loss=mixed_loss(s, b, n_real),
        validate=real_validate(s, config.eval.batch_size),
        frozen=frozen,
        batches=batches,
        val_data=real.val_frames(config),
    )


def build_real(config, mesh, s: Setup, frozen) -> Stage:
    """The authors' `real` training mode: all B sources are real frames."""
    return build(config, mesh, s, frozen, n_real=config.train.batch_size)
