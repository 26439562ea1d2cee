"""The training loop for A (paper Sec. 3, METHOD.md 4), read top to bottom in `train`.

mesh → frozen networks → state (init, `init_from`, or resume) → jitted step with explicit shardings →
checkpoints, metrics (JSON lines + TensorBoard), validation with image grids → loop. Randomness is
`fold_in(key(seed), step)`, so a resumed run replays exactly the stream an uninterrupted run would have used.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pathlib
import time
from collections.abc import Callable
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxreenact.common import checkpoints
from jaxreenact.common import images as visualize
from jaxreenact.common.errors import UserError
from jaxreenact.common.mesh import make_mesh
from jaxreenact.training.setup import load_init_params
from jaxreenact.training.stage import Stage

log = logging.getLogger("jaxreenact.train")


class TrainingDiverged(UserError):
    """The loss became non-finite; the last good checkpoint is kept."""


@flax.struct.dataclass
class TrainState:
    step: jax.Array  # int32 scalar
    params: Any  # A's parameters (the only trained module)
    opt_state: Any


def make_optimizer(train_cfg) -> optax.GradientTransformation:
    """Adam as the authors use it: torch.optim.Adam(lr, weight_decay) adds wd·θ to the gradient (coupled L2)."""
    if train_cfg.optimizer == "adam":
        return optax.chain(
            optax.add_decayed_weights(train_cfg.weight_decay),
            optax.scale_by_adam(b1=0.9, b2=0.999, eps=1e-8),
            optax.scale(-train_cfg.lr),
        )
    if train_cfg.optimizer == "adamw":
        return optax.adamw(train_cfg.lr, b1=0.9, b2=0.999, eps=1e-8, weight_decay=train_cfg.weight_decay)
    raise UserError(f"config.train.optimizer={train_cfg.optimizer!r}: use 'adam' or 'adamw'")


class MetricWriter:
    """Scalars to `metrics.jsonl` (one JSON object a line) and TensorBoard events; images to PNG + TensorBoard."""

    def __init__(self, workdir: pathlib.Path, enabled: bool = True):
        self.enabled = enabled
        self.path = workdir / "metrics.jsonl"
        self.img_dir = workdir / "images"
        self.tb = None
        if enabled:
            try:
                from tensorboardX import SummaryWriter

                self.tb = SummaryWriter(str(workdir / "tb"))
            except ImportError:  # pragma: no cover
                log.warning("tensorboardX not installed: metrics go to metrics.jsonl only")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        rec = {"step": step, **{k: float(v) for k, v in values.items()}}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(rec) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(k, float(v), step)

    def image(self, step: int, name: str, grid_u8: np.ndarray) -> pathlib.Path | None:
        if not self.enabled:
            return None
        path = self.img_dir / f"{name}_{step:07d}.png"
        visualize.save_png(path, grid_u8)
        if self.tb is not None:
            self.tb.add_image(name, grid_u8, step, dataformats="HWC")
        return path

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _replicate(tree, mesh):
    return jax.device_put(tree, NamedSharding(mesh, P()))


def train(
    config,
    workdir: str | os.PathLike,
    build_stage: Callable,
    progress: bool = True,
    on_step: Callable[[int, TrainState], None] | None = None,
) -> Any:
    """Train A as `config` says, checkpointing under `workdir`; returns the final TrainState.

    `on_step(done_steps, state)` is called after every step (after its checkpoint, if one was due), e.g. to stop
    early from a notebook by raising.
    """
    workdir = pathlib.Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise UserError(f"--workdir {workdir}: is a file, not a folder")
    is_main = jax.process_index() == 0
    mesh = make_mesh(config.mesh.data)
    stage: Stage = build_stage(config, mesh)  # checks every weight path first
    batch = config.train.batch_size
    if batch % mesh.size:
        raise UserError(f"config.train.batch_size={batch} is not divisible by the {mesh.size} devices of the mesh")
    workdir.mkdir(parents=True, exist_ok=True)  # only once the networks are there: a failed start leaves nothing
    if is_main:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=1))
    tx = make_optimizer(config.train)
    init_key, root_key = jax.random.split(jax.random.key(config.seed))

    def init_state():
        params = stage.init_params(init_key)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    replicated = NamedSharding(mesh, P())
    data_sharding = NamedSharding(mesh, P("data"))
    state = jax.jit(init_state, out_shardings=replicated)()
    mgr = checkpoints.Manager(workdir / "checkpoints", max_to_keep=config.train.max_to_keep)
    start = mgr.latest_step()
    if start is not None:
        state = mgr.restore(start, target=state)
        state = jax.device_put(state, replicated)
        log.info("resumed from %s at step %d", workdir / "checkpoints", start)
    elif config.train.init_from:
        state = state.replace(params=_replicate(load_init_params(config.train.init_from), mesh))
        state = state.replace(opt_state=jax.jit(tx.init, out_shardings=replicated)(state.params))
        log.info("A initialised from %s", config.train.init_from)
    start = int(state.step)
    frozen = _replicate(stage.frozen, mesh)

    def step_fn(state: TrainState, frozen, batch):
        key = jax.random.fold_in(root_key, state.step)
        (loss, aux), grads = jax.value_and_grad(stage.loss, has_aux=True)(state.params, frozen, key, batch)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, **aux, "grad_norm": jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    batch_sharding = data_sharding if stage.batches is not None else None
    train_step = jax.jit(
        step_fn,
        in_shardings=(replicated, replicated, batch_sharding),
        out_shardings=(replicated, replicated),
        donate_argnums=(0,),
    )
    val_step = jax.jit(stage.validate, in_shardings=(replicated, replicated, None))

    writer = MetricWriter(workdir, enabled=is_main)
    total = int(config.train.steps)
    bar = None
    if progress and is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)
    t_last, n_last = time.perf_counter(), start
    try:
        for step in range(start, total):
            if config.train.eval_every and step % config.train.eval_every == 0:
                evaluate(val_step, state, frozen, stage.val_data, writer, step, config)
            data = None
            if stage.batches is not None:
                data = stage.batches(step)
            state, metrics = train_step(state, frozen, data)
            loss = float(metrics["loss"])
            if not math.isfinite(loss):
                last = mgr.latest_step()
                where = f"the last good checkpoint is step {last}" if last is not None else "no checkpoint was saved"
                raise TrainingDiverged(f"non-finite loss ({loss}) at step {step}; stopping ({where} in {workdir})")
            done = step + 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{loss:.4f}")
            if done % config.train.log_every == 0 or done == total:
                now = time.perf_counter()
                rate = (done - n_last) / max(now - t_last, 1e-9)
                t_last, n_last = now, done
                writer.scalars(done, {**{k: float(v) for k, v in metrics.items()}, "steps_per_s": rate})
            if done % config.train.checkpoint_every == 0 or done == total:
                mgr.save(done, state)
            if on_step is not None:
                on_step(done, state)
        if config.train.eval_every and start < total:  # a finished run resumed: nothing new to validate
            evaluate(val_step, state, frozen, stage.val_data, writer, total, config)
    finally:
        if bar is not None:
            bar.close()
        mgr.close()
        writer.close()
    return state


def completed_step(workdir: str | os.PathLike, steps: int) -> int | None:
    """The step of `workdir`'s latest checkpoint when it has reached `steps` (the run is done), else None."""
    ckpt = pathlib.Path(workdir) / "checkpoints"
    if not ckpt.is_dir():
        return None
    mgr = checkpoints.Manager(ckpt)
    try:
        last = mgr.latest_step()
    finally:
        mgr.close()
    return last if last is not None and last >= int(steps) else None


def evaluate(val_step, state, frozen, val_data, writer: MetricWriter, step: int, config) -> dict[str, float]:
    """Validation on the fixed seeded pairs (a list of batches), every sample scored: the mean of each per-sample
    metric, and a source | target | reenacted grid of the first batch."""
    scores: dict[str, list] = {}
    images = None
    for vb in val_data:
        per_sample, imgs = val_step(state.params, frozen, vb)
        images = imgs if images is None else images
        valid = np.asarray(vb["valid"]) if isinstance(vb, dict) and "valid" in vb else None
        for k, v in per_sample.items():
            v = np.asarray(v)
            scores.setdefault(k, []).append(v if valid is None else v[valid])
    means = {f"val/{k}": float(np.mean(np.concatenate(v))) for k, v in scores.items()}
    writer.scalars(step, means)
    n = config.eval.grid_pairs
    rows = [np.asarray(images[k][:n]) for k in ("source", "target", "reenacted")]
    grid = visualize.labelled_grid(np.stack(rows, 1).reshape(-1, *rows[0].shape[1:]), nrow=3,
                                   col_labels=("source", "target", "reenacted"))  # fmt: skip
    writer.image(step, "reenactment", grid)
    log.info("step %d validation: %s", step, ", ".join(f"{k}={v:.4f}" for k, v in means.items()))
    return means
