"""The real-data training stages (paper Sec. 3.2-3.3, METHOD.md 4.5 items 2 and 3).

* `real_synthetic` (mixed): each global batch is B/2 real frames with their e4e latents (from a dataset built by
  `python -m jaxreenact.data.build`) followed by B/2 synthetic sources; targets are B synthetic faces. DECA reads
  the *real frame* (not its inversion); identity and perceptual losses compare with it. As upstream, the 50%
  single-attribute scheme then gives the real half full Δp and the synthetic half single-attribute shifts.
* `paired`: source and target are two frames of one video (METHOD.md 5 sampling); full Δp; shape GT is the
  target's own DECA parameters; identity, perceptual (on [0, 255] images, an upstream quirk kept) and pixel L1
  compare with the target frame.

`config.train.steps` counts optimizer steps in every mode (upstream counts epochs for these two modes); the data
stream runs epoch after epoch, each epoch a pure function of (seed, epoch), so a resumed run reads the same data.
"""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp

from jaxreenact import method
from jaxreenact.errors import UserError


def open_dataset(config):
    """The built VoxCeleb-style dataset of `config.data` (a made-up one for `:tiny` configs)."""
    from jaxreenact.data import voxceleb

    root = config.data.tfds_dir
    if config.tiny and not root:
        import tempfile

        from jaxreenact.data import fake

        folder = config.data.fake_dir or pathlib.Path(tempfile.gettempdir()) / "jaxreenact_fake_voxceleb"
        root = fake.make_fake_dataset(folder, image_size=256)
    if not root:
        raise UserError(
            "config.data.tfds_dir is empty: build your dataset with "
            "`python -m jaxreenact.data.build --root DATASET_ROOT --out TFDS_DIR` and pass --config.data.tfds_dir=TFDS_DIR"
        )
    return voxceleb.VoxCelebFrames(root, config.data.split)


def _stream(make_iter, keys, mesh):
    """step -> this step's global batch; the iterator is (re)started at the first step asked for."""
    from jaxreenact.data import voxceleb

    state = {"next": None, "it": None}

    def batches(step: int):
        if state["it"] is None or state["next"] != step:
            state["it"] = voxceleb.prefetch(make_iter(step))
        b = next(state["it"])
        state["next"] = step + 1
        return voxceleb.to_global({k: b[k] for k in keys}, mesh)

    return batches


def mixed_loss(s: method.Setup, batch: int):
    half = batch // 2

    def loss(params, frozen, key, data):
        k_s, k_t, k_attr = jax.random.split(key, 3)
        w_syn, img_syn = method.synthetic_sources(s, frozen, k_s, batch - half)
        _, img_t = method.synthetic_sources(s, frozen, k_t, batch)
        w_s = jnp.concatenate([data["latent"], w_syn], axis=0)
        img_s = jnp.concatenate([data["image"], img_syn], axis=0)
        return method.reenactment_losses(s, params, frozen, k_attr, w_s, img_s, img_t, id_ref=img_s)

    return loss


def paired_loss(s: method.Setup):
    def loss(params, frozen, key, data):
        img_t = data["target_image"]
        return method.reenactment_losses(
            s, params, frozen, key, data["source_latent"], data["source_image"], img_t, id_ref=img_t,
            pixel_ref=img_t, paired=True,
        )  # fmt: skip

    return loss


def paired_validate(s: method.Setup):
    def validate(params, frozen, val):
        img_t = val["target_image"]
        return method.validation_metrics(
            s, params, frozen, val["source_latent"], val["source_image"], img_t, csim_ref=img_t
        )

    return validate


def build(config, mesh, s: method.Setup, frozen):
    from jaxreenact.trainer import Stage

    ds = open_dataset(config)
    b = config.train.batch_size
    pidx, pcount = jax.process_index(), jax.process_count()
    if config.mode == "real_synthetic":
        if b % 2:
            raise UserError(f"config.train.batch_size={b} must be even (half real, half synthetic)")
        half = b // 2
        if half % mesh.size:
            raise UserError(f"the real half of the batch ({half}) must be divisible by the {mesh.size} devices")
        batches = _stream(
            lambda start: ds.frame_batches(half, config.seed, start, pidx, pcount), ("image", "latent"), mesh
        )
        validate, val = method.synthetic_validation(config, s)
        return Stage(
            init_params=method.init_params_fn(s.a),
            loss=mixed_loss(s, b),
            validate=validate,
            frozen=frozen,
            batches=batches,
            val_data=val,
        )
    keys = ("source_image", "target_image", "source_latent", "target_latent")
    batches = _stream(
        lambda start: ds.pair_batches(b, config.seed, start, config.data.max_pairs, pidx, pcount), keys, mesh
    )
    vb = config.eval.batch_size
    pairs = ds.eval_pairs(config.eval.seed)[: max(vb, config.eval.num_pairs // vb * vb)]
    val = [
        {k: jnp.asarray(v) for k, v in batch.items() if k in (*keys, "valid")}
        for batch in ds.iterate_pairs(pairs, vb, drop_remainder=False)
    ]
    return Stage(
        init_params=method.init_params_fn(s.a),
        loss=paired_loss(s),
        validate=paired_validate(s),
        frozen=frozen,
        batches=batches,
        val_data=val,
    )
