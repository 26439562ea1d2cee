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
from jaxreenact.common.mesh import batch_padding, batch_sharded
from jaxreenact.data import pipeline
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


def mixed_losses_from(s: Setup, params, frozen, image_real, w_real, z_syn, z_t, draws=None, thetas=None, mesh=None):
    """The pure core of a mixed step: sources = the real frames [n_real, 256, 256, 3] with their e4e W+ followed by
    the synthetic G(z_syn, ψ) (z_syn [B − n_real, 512], W repeated, untruncated; None in the `real` mode); targets
    G(z_t, ψ) (z_t [B, 512]); the 50 % draws and the DECA crops as `reenactment_losses_from` takes them.

    With a `mesh`: data-parallel over its `data` axis on the batch padded to a multiple of its devices
    (`common.mesh.Padding`: the numbers of one device); the real rows then come laid out as the padded real batch
    (the reader's `padded_size`), their first n_real rows being the real ones."""
    b = z_t.shape[0]
    n_syn = 0 if z_syn is None else z_syn.shape[0]
    devices = 1 if mesh is None else mesh.size
    pad, pad_syn = batch_padding(b, devices), batch_padding(max(n_syn, 1), devices)
    if mesh is not None:
        z_t = pad.place(z_t, mesh)
        image_real, w_real = image_real[: b - n_syn], w_real[: b - n_syn]
    _, img_t = synthetic_sources_from_z(s, frozen, z_t)
    w_s, img_s = w_real, image_real
    if n_syn:
        if mesh is not None:
            z_syn = pad_syn.place(z_syn, mesh)
        w_syn, img_syn = synthetic_sources_from_z(s, frozen, z_syn)
        if mesh is not None:
            w_syn, img_syn = pad_syn.real((w_syn, img_syn))
        w_s = jnp.concatenate([w_real, w_syn], axis=0)
        img_s = jnp.concatenate([image_real, img_syn], axis=0)
    if mesh is None:
        return reenactment_losses_from(s, params, frozen, w_s, img_s, img_t, id_ref=img_s, draws=draws, thetas=thetas)
    w_s, img_s = pad.place((w_s, img_s), mesh)
    return reenactment_losses_from(
        s, params, frozen, w_s, img_s, img_t, id_ref=img_s, draws=draws, thetas=thetas, pad=pad
    )


def mixed_loss(s: Setup, batch: int, n_real: int | None = None, mesh=None):
    """The loss of a batch of `n_real` real sources (default B/2) followed by B − n_real synthetic ones (`mesh`:
    see `mixed_losses_from`)."""
    n_real = batch // 2 if n_real is None else n_real

    def loss(params, frozen, key, data):
        k_s, k_t, k_attr = jax.random.split(key, 3)
        draws = pose.draw_single_attribute(k_attr, batch // 2, s.layout) if s.disentanglement_50 else None
        z_syn = sample_z(k_s, batch - n_real) if n_real < batch else None
        z_t = sample_z(k_t, batch)
        image = real.float_images(data["image"])  # read as uint8 (a quarter of the bytes to the devices)
        return mixed_losses_from(s, params, frozen, image, data["latent"], z_syn, z_t, draws, mesh=mesh)

    return loss


def real_validate(s: Setup, batch: int, mesh=None):
    """Validation of a batch of `batch` pairs; with a `mesh`, `val["latent"]` is laid out as its padded batch and
    split over `data` (`real.val_frames`), the synthetic targets are padded alike, and the outputs have the padded
    rows (the loop keeps the `valid` ones)."""
    pad = batch_padding(batch, 1 if mesh is None else mesh.size)

    def validate(params, frozen, val):
        w_s = val["latent"]
        img_s = render(s, frozen, w_s)
        _, img_t = synthetic_sources(s, frozen, val["key_t"], batch)
        if mesh is not None:
            img_t = pad.place(img_t, mesh)
        return validation_metrics(s, params, frozen, w_s, img_s, img_t, csim_ref=img_s)

    return validate


def build(config, mesh, s: Setup, frozen, n_real: int | None = None) -> Stage:
    """`real_synthetic` (B/2 real sources), or with `n_real` = B the `real` mode."""
    b = config.train.batch_size
    if n_real is None:
        if b % 2:
            raise UserError(f"config.train.batch_size={b} must be even (half real, half synthetic)")
        n_real = b // 2
    elif config.loss.disentanglement_50 and b % 2:
        raise UserError(f"config.train.batch_size={b} must be even (50% scheme)")
    ds = real.open_dataset(config)
    padded = batch_padding(n_real, mesh.size).padded  # the real rows laid out as a padded batch of the mesh
    rows = pipeline.process_rows(batch_sharded(mesh), padded)  # those this process's devices hold
    batches = real.stream(
        lambda start: ds.frame_batches(n_real, config.seed, start, rows, padded, uint8_images=True),
        ("image", "latent"), mesh, rows, padded,
    )  # fmt: skip
    return Stage(
        init_params=init_params_fn(s.a),
        loss=mixed_loss(s, b, n_real, mesh),
        validate=real_validate(s, config.eval.batch_size, mesh),
        frozen=frozen,
        batches=batches,
        val_data=real.val_frames(config, mesh),
    )


def build_real(config, mesh, s: Setup, frozen) -> Stage:
    """The authors' `real` training mode: all B sources are real frames."""
    return build(config, mesh, s, frozen, n_real=config.train.batch_size)
