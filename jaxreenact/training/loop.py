"""The training loop for A (paper Sec. 3, METHOD.md 4), read top to bottom in `train`.

mesh → frozen networks → state (init, `init_from`, or resume) → jitted step with explicit shardings →
checkpoints, metrics (JSON lines + TensorBoard, one line a step), validation with image grids → loop, stopping
cleanly on SIGTERM / SIGINT. The steady state reads no device value (sync points only; `train`). Randomness is `fold_in(key(seed), step)`, so a resumed run replays exactly the
stream an uninterrupted run would have used.
"""

from __future__ import annotations

import collections
import copy
import json
import logging
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

from jaxreenact.common import checkpoints, distributed, preemption
from jaxreenact.common import images as visualize
from jaxreenact.common.errors import UserError
from jaxreenact.common.files import atomic_write_text
from jaxreenact.common.mesh import make_mesh, put_replicated
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
    """Scalars to `metrics.jsonl` (one JSON object a line, one line a step) and TensorBoard events; images to
    PNG + TensorBoard. Only process 0 writes (`enabled`).

    `resume_step`: the run restarts from that checkpointed step, so the lines of later steps (written after the
    checkpoint by the run that stopped) are dropped, and TensorBoard is told to purge them (`purge_step`), so both
    keep one record per step.
    """

    def __init__(self, workdir: pathlib.Path, enabled: bool = True, resume_step: int | None = None):
        self.enabled = enabled
        self.path = workdir / "metrics.jsonl"
        self.img_dir = workdir / "images"
        self.tb = None
        if not enabled:
            return
        purge = None
        if resume_step is not None:
            purge = resume_step + 1
            if self.path.is_file():
                keep = [line for line in self.path.read_text().splitlines() if _step_of(line) <= resume_step]
                atomic_write_text(self.path, "".join(line + "\n" for line in keep))
        try:
            from tensorboardX import SummaryWriter

            self.tb = SummaryWriter(str(workdir / "tb"), purge_step=purge)
        except ImportError:  # pragma: no cover
            log.warning("tensorboardX not installed: metrics go to metrics.jsonl only")

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled or not values:
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


def _step_of(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62  # a torn last line: dropped


def _replicate(tree, mesh):
    return put_replicated(tree, mesh)


def make_step(loss_fn: Callable, tx: optax.GradientTransformation, root_key, mesh, with_batch: bool):
    """The jitted training step `(state, frozen, batch) -> (state, metrics)`: loss and gradient of A, the optax
    update, metrics (loss, its terms, gradient norm); state and frozen replicated, the batch split over `data` (as the
    stage placed it: each process's rows from the sharding).
    The step's random key is `fold_in(root_key, step)`. `state` is donated."""
    replicated = NamedSharding(mesh, P())

    def step_fn(state: TrainState, frozen, batch):
        key = jax.random.fold_in(root_key, state.step)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, frozen, key, batch)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {"loss": loss, **aux, "grad_norm": jnp.sqrt(sum(jnp.sum(g * g) for g in jax.tree.leaves(grads)))}
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics

    return jax.jit(
        step_fn,
        in_shardings=(replicated, replicated, NamedSharding(mesh, P("data")) if with_batch else None),
        out_shardings=(replicated, replicated),
        donate_argnums=(0,),
    )


def train(
    config,
    workdir: str | os.PathLike,
    build_stage: Callable,
    progress: bool = True,
    on_step: Callable[[int, TrainState], None] | None = None,
) -> Any:
    """Train A as `config` says, checkpointing under `workdir`; returns the final TrainState.

    Any device count runs the numbers of one device: the stages pad the global batch to a multiple of the mesh
    (`common.mesh.Padding`, padded rows weigh 0), each process reading the rows its devices hold. The global batch
    is `config.train.batch_size`, or `config.train.per_device_batch_size` × devices when that is > 0.

    The steady state reads nothing from the devices: the host dispatches step after step (at most `AHEAD` steps
    ahead of the devices), the stage's batches already on the devices. At a sync point (every `log_every` steps,
    each validation and checkpoint, the last step): the metrics line, the finiteness check (a non-finite loss
    anywhere since the last sync point stops the run naming its step, the last good checkpoint kept), and the
    agreement on a stop request. SIGTERM / SIGINT on any process (`common.preemption.StopRequest`): every process
    checkpoints the same step, the next sync point (every step with one process), and `Interrupted` is raised
    (exit status 143 / 130 in the program); the rerun resumes bit-identical. `on_step(done_steps, state)` is called
    after every step (after its checkpoint, if one was due), e.g. to stop early from a notebook.
    """
    workdir = pathlib.Path(workdir)
    if workdir.exists() and not workdir.is_dir():
        raise UserError(f"--workdir {workdir}: is a file, not a folder")
    is_main = jax.process_index() == 0
    mesh = make_mesh(config.mesh.data, order=config.mesh.get("device_order", ""))
    config = with_global_batch(config, mesh.size)
    stage: Stage = build_stage(config, mesh)  # checks every weight path first
    log.info("mesh: %d devices on the data axis, of processes %s", mesh.size,
             ",".join(str(d.process_index) for d in mesh.devices.flat))  # fmt: skip
    workdir.mkdir(parents=True, exist_ok=True)  # only once the networks are there: a failed start leaves nothing
    if is_main:
        (workdir / "config.json").write_text(config.to_json_best_effort(indent=1))
    tx = make_optimizer(config.train)
    init_key, root_key = jax.random.split(jax.random.key(config.seed))

    def init_state():
        params = stage.init_params(init_key)
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    replicated = NamedSharding(mesh, P())
    state = jax.jit(init_state, out_shardings=replicated)()
    mgr = checkpoints.Manager(workdir / "checkpoints", max_to_keep=config.train.max_to_keep)
    start = distributed.decided_once("resume step", mgr.latest_step)  # one answer for every process
    resumed = start is not None
    if resumed:
        state = mgr.restore(start, target=state)
        state = jax.device_put(state, replicated)
        log.info("resumed from %s at step %d", workdir / "checkpoints", start)
    elif config.train.init_from:
        state = state.replace(params=_replicate(load_init_params(config.train.init_from), mesh))
        state = state.replace(opt_state=jax.jit(tx.init, out_shardings=replicated)(state.params))
        log.info("A initialised from %s", config.train.init_from)
    start = int(state.step)
    frozen = _replicate(stage.frozen, mesh)

    train_step = make_step(stage.loss, tx, root_key, mesh, with_batch=stage.batches is not None)
    # Validation data-parallel: the stage lays its per-sample inputs out over `data` (padded like training).
    val_step = jax.jit(stage.validate, out_shardings=replicated)
    watch = jax.jit(_first_non_finite, out_shardings=replicated)
    # Several processes: each step's first run waits until every process has compiled it (gloo's 30 s).
    train_step = distributed.compiled_together(train_step, "train step")
    val_step = distributed.compiled_together(val_step, "validation step")
    val_data = stage.val_data

    writer = MetricWriter(workdir, enabled=is_main, resume_step=start if resumed else None)
    total = int(config.train.steps)
    eval_every, log_every, ckpt_every = (int(config.train[k]) for k in ("eval_every", "log_every", "checkpoint_every"))
    bar = None
    if progress and is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)
    t_last, n_last = time.perf_counter(), start
    saved = start if resumed else None
    bad = put_replicated(np.int32(-1), mesh)  # the first step whose loss was not finite (-1: none), on the devices
    in_flight: collections.deque = collections.deque()
    checked = start  # steps up to here are known finite

    def check_finite(done: int) -> None:
        first = int(bad)
        if first >= 0:
            last = mgr.latest_step()
            where = f"the last good checkpoint is step {last}" if last is not None else "no checkpoint was saved"
            raise TrainingDiverged(f"non-finite loss at step {first} (steps {checked}..{done - 1} ran since the last "
                                   f"check); stopping ({where} in {workdir})")  # fmt: skip

    try:
        with preemption.StopRequest() as stop:
            if eval_every and start == 0:
                writer.scalars(0, evaluate(val_step, state, frozen, val_data, writer, 0, config))
            for step in range(start, total):
                data = None
                if stage.batches is not None:
                    data = stage.batches(step)  # on the devices already (the stage's prefetch)
                state, metrics = train_step(state, frozen, data)
                bad = watch(bad, metrics["loss"], state.step)
                # Back-pressure without a read: wait for the step AHEAD steps back to finish, so the host queues at
                # most AHEAD steps (and their batches) on the devices.
                in_flight.append(bad)
                if len(in_flight) > AHEAD:
                    in_flight.popleft().block_until_ready()
                done = step + 1
                if bar is not None:
                    bar.update(1)
                log_due = done % log_every == 0 or done == total
                eval_due = bool(eval_every) and (done % eval_every == 0 or done == total)
                ckpt_due = done % ckpt_every == 0 or done == total
                if log_due or eval_due or ckpt_due:  # a sync point: the only place the loop reads device values
                    check_finite(done)
                    checked = done
                    row = {}
                    if log_due:
                        values = jax.device_get(metrics)
                        now = time.perf_counter()
                        rate = (done - n_last) / max(now - t_last, 1e-9)
                        t_last, n_last = now, done
                        row.update({**{k: float(v) for k, v in values.items()}, "steps_per_s": rate})
                        if bar is not None:
                            bar.set_postfix(loss=f"{float(values['loss']):.4f}")
                    if eval_due:
                        row.update(evaluate(val_step, state, frozen, val_data, writer, done, config))
                    writer.scalars(done, row)
                    if ckpt_due:
                        mgr.save(done, state)
                        saved = done
                # With several processes the agreement waits for every process: at sync points only (free with one).
                sync = log_due or eval_due or ckpt_due or jax.process_count() == 1
                signum = distributed.agreed_max("stop request", stop.signum) if sync else 0
                if signum:
                    if saved != done:
                        check_finite(done)  # never checkpoint a diverged state
                        mgr.save(done, state, force=True)
                    mgr.wait()
                    raise preemption.Interrupted(
                        signum,
                        f"interrupted by {preemption.signal_name(signum)} after step {done}: checkpoint {done} "
                        f"saved in {workdir / 'checkpoints'}; run the same command again to resume",
                    )
                if on_step is not None:
                    on_step(done, state)
    finally:
        if bar is not None:
            bar.close()
        mgr.close()
        writer.close()
    return state


AHEAD = 2  # steps the host may dispatch ahead of the devices


def _first_non_finite(bad, loss, next_step):
    """The first step (`next_step` − 1) whose loss is not finite, kept on the devices (-1: none yet)."""
    return jnp.where((bad < 0) & ~jnp.isfinite(loss), next_step - 1, bad).astype(jnp.int32)


def with_global_batch(config, devices: int):
    """`config` with `train.batch_size` the global batch: `train.per_device_batch_size` × `devices` when that is
    > 0 (fill every device whatever their count; docs/pods.md), else unchanged (the authors' global 12)."""
    per_device = int(config.train.get("per_device_batch_size", 0))
    if per_device < 0:
        raise UserError(f"config.train.per_device_batch_size={per_device}: use 0 (off) or a positive number")
    if per_device == 0:
        return config
    config = copy.deepcopy(config)
    with config.unlocked():
        config.train.batch_size = per_device * int(devices)
    log.info("global batch %d = %d per device x %d devices", config.train.batch_size, per_device, devices)
    return config


def completed_step(workdir: str | os.PathLike, steps: int) -> int | None:
    """The step of `workdir`'s latest checkpoint when it has reached `steps` (the run is done), else None. What the
    folder holds is decided on process 0 and handed to every process (`distributed.decided_once`)."""
    ckpt = pathlib.Path(workdir) / "checkpoints"
    if not distributed.decided_once("checkpoints folder", ckpt.is_dir):
        return None
    mgr = checkpoints.Manager(ckpt)  # on every process: Orbax's manager is collective
    try:
        last = distributed.decided_once("completed step", mgr.latest_step)
    finally:
        mgr.close()
    return last if last is not None and last >= int(steps) else None


def evaluate(val_step, state, frozen, val_data, writer: MetricWriter, step: int, config) -> dict[str, float]:
    """Validation on the fixed seeded pairs (a list of batches), every sample scored: the mean of each per-sample
    metric (returned, for the step's metrics line), and a source | target | reenacted grid of the first batch."""
    scores: dict[str, list] = {}
    images = None
    for vb in val_data:
        valid = None
        if isinstance(vb, dict) and "valid" in vb:  # host-side: which rows of the padded batch are real
            vb, valid = {k: v for k, v in vb.items() if k != "valid"}, np.asarray(vb["valid"])
        per_sample, imgs = val_step(state.params, frozen, vb)
        images = imgs if images is None else images
        for k, v in per_sample.items():
            v = np.asarray(v)
            scores.setdefault(k, []).append(v if valid is None else v[valid])
    means = {f"val/{k}": float(np.mean(np.concatenate(v))) for k, v in scores.items()}
    n = config.eval.grid_pairs
    rows = [np.asarray(images[k][:n]) for k in ("source", "target", "reenacted")]
    grid = visualize.labelled_grid(np.stack(rows, 1).reshape(-1, *rows[0].shape[1:]), nrow=3,
                                   col_labels=("source", "target", "reenacted"))  # fmt: skip
    writer.image(step, "reenactment", grid)
    log.info("step %d validation: %s", step, ", ".join(f"{k}={v:.4f}" for k, v in means.items()))
    return means
