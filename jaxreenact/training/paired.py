"""Stage 3, paired video fine-tuning (paper Sec. 3.3, METHOD.md 4.5 item 3, 5).

Source and target are two frames of one video (METHOD.md 5 sampling); full Δp; the shape ground truth is the
target's own DECA parameters; identity, perceptual (on [0, 255] images, an upstream quirk kept) and pixel L1
compare with the target frame; the W regulariser (`loss.w_reg`, 0 as upstream) compares latents. Validation: fixed
same-video pairs of the validation split (`config.data.val_split`, `jaxreenact.training.real.val_pairs`).
"""

from __future__ import annotations

from jaxreenact.common.mesh import Padding, batch_padding, batch_sharded, shard_rows
from jaxreenact.data import pipeline
from jaxreenact.training import real
from jaxreenact.training.losses import reenactment_losses_from
from jaxreenact.training.setup import Setup, init_params_fn
from jaxreenact.training.stage import Stage
from jaxreenact.training.validation import validation_metrics

KEYS = ("source_image", "target_image", "source_latent", "target_latent")


def paired_losses_from(s: Setup, params, frozen, source_image, source_latent, target_image, thetas=None,
                       w_ref=None, pad: Padding | None = None):  # fmt: skip
    """The pure core of a paired step (it draws nothing): full Δp from the two frames' DECA codes, the shifted
    source W+, losses against the target frame (`w_ref`: the target's e4e W+, for the W regulariser); DECA crops
    as `reenactment_losses_from` takes them; `pad`: the inputs are that padded batch (`common.mesh.Padding`)."""
    return reenactment_losses_from(
        s, params, frozen, source_latent, source_image, target_image, id_ref=target_image, thetas=thetas,
        pixel_ref=target_image, paired=True, w_ref=w_ref, pad=pad,
    )  # fmt: skip


def paired_loss(s: Setup, batch: int | None = None, mesh=None):
    """The loss the loop differentiates; with a `mesh`, `data` is the global batch of `batch` pairs laid out as the
    padded batch of that mesh (the reader's `padded_size`), split over its `data` axis."""
    pad = batch_padding(batch, mesh.size) if mesh is not None else None

    def loss(params, frozen, key, data):
        del key
        data = shard_rows({k: data[k] for k in KEYS}, mesh)
        data = {**data, **{k: real.float_images(data[k]) for k in ("source_image", "target_image")}}  # uint8 read
        return paired_losses_from(s, params, frozen, data["source_image"], data["source_latent"], data["target_image"],
                                  w_ref=data["target_latent"], pad=pad)  # fmt: skip

    return loss


def paired_validate(s: Setup):
    """Validation of a batch of pairs (with a mesh, laid out as its padded batch and split over `data` by
    `real.val_pairs`: per-sample work, so the padded rows need nothing here; the loop keeps the `valid` ones)."""

    def validate(params, frozen, val):
        img_t = val["target_image"]
        return validation_metrics(s, params, frozen, val["source_latent"], val["source_image"], img_t, csim_ref=img_t)

    return validate


def build(config, mesh, s: Setup, frozen) -> Stage:
    ds = real.open_dataset(config)
    b = config.train.batch_size
    padded = batch_padding(b, mesh.size).padded  # the batch laid out as a padded batch of the mesh
    rows = pipeline.process_rows(batch_sharded(mesh), padded)  # those this process's devices hold
    batches = real.stream(
        lambda start: ds.pair_batches(b, config.seed, start, config.data.max_pairs, rows, padded, uint8_images=True),
        KEYS, mesh, rows, padded,
    )  # fmt: skip
    return Stage(
        init_params=init_params_fn(s.a),
        loss=paired_loss(s, b, mesh),
        validate=paired_validate(s),
        frozen=frozen,
        batches=batches,
        val_data=real.val_pairs(config, KEYS, mesh),
    )
