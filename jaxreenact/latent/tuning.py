"""Generator tuning on a real source (the authors' PTI-like `optimize_g`, METHOD.md 6.2).

What is tuned, as upstream: the StyledConvs at 32²-256² only, i.e. `convs_4` … `convs_11` of the 256 generator
(each: conv weight, modulation weight/bias, noise strength, activation bias). The mapping network, the constant
input, `conv1`, `convs_0..3`, the to-RGB layers and the stored noise/mean-latent buffers stay frozen. The e4e code
w stays fixed. Loss: `100·MSE(G(w, ψ=0.7), x) + 1·LPIPS_alex(G(w, ψ=0.7), x)` (torch MSE = mean over every
element), Adam(lr 3e-3, β = (0.9, 0.999), ε = 1e-8), 200 steps, one source image per generator. The authors' unused
locality regulariser is not implemented (`use_ball_holder=False` upstream).

Differences from upstream, on purpose:
* The input variables are never mutated: new generator variables are returned (upstream tunes the caller's G in
  place, so several images in one editing run accumulate their tunings, METHOD.md Appendix A.10).
* Several sources are tuned at once, each with its own copy of the tuned layers, with `jax.vmap` (the frozen part
  of G is shared, not copied): `max_batch` sources per vmapped call.

The optimizer is `optax.multi_transform` over the labels of `param_labels` (Adam on "tune", `set_to_zero` on
"freeze"), applied to the *partition* of the parameter tree that holds the tuned leaves only: the frozen leaves are
closed over and shared by every vmapped source rather than carried (and copied per source) through the optimizer,
which is the same update (a frozen leaf never moves) at a fraction of the memory.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import traverse_util

from jaxreenact.common import constants
from jaxreenact.common.errors import UserError
from jaxreenact.latent.render import to_256
from jaxreenact.models import lpips as lpips_lib

STEPS = constants.TUNE_STEPS
LR = 3e-3
L2_LAMBDA = 100.0
LPIPS_LAMBDA = 1.0
TRUNCATION = constants.TRUNCATION
FIRST_TUNED_CONV = 4  # convs_4 = the first StyledConv at 32² (METHOD.md 6.2: generator.convs[4..11])
LAST_TUNED_CONV = 11  # convs_11 = the last StyledConv at 256²


def is_tuned(path: tuple[str, ...]) -> bool:
    """Whether a parameter (flattened path in `variables["params"]`) is tuned: anything under convs_4..convs_11."""
    top = path[0]
    if not top.startswith("convs_"):
        return False
    k = int(top.split("_", 1)[1])
    return FIRST_TUNED_CONV <= k <= LAST_TUNED_CONV


def param_labels(params) -> dict:
    """The generator's parameter tree with each leaf replaced by "tune" or "freeze"."""
    flat = traverse_util.flatten_dict(params)
    return traverse_util.unflatten_dict({k: ("tune" if is_tuned(k) else "freeze") for k in flat})


def trainable_mask(params) -> dict:
    """The generator's parameter tree with True on the tuned leaves (for `optax.masked` and the tests)."""
    return jax.tree.map(lambda s: s == "tune", param_labels(params))


def make_optimizer(labels, lr: float = LR) -> optax.GradientTransformation:
    """Adam (torch defaults) on the "tune" leaves, nothing on the "freeze" ones."""
    return optax.multi_transform(
        {"tune": optax.adam(lr, b1=0.9, b2=0.999, eps=1e-8), "freeze": optax.set_to_zero()}, labels
    )


def split_params(params):
    """(tuned, frozen): two flat dicts {path tuple: leaf} partitioning `params`."""
    flat = traverse_util.flatten_dict(params)
    tuned = {k: v for k, v in flat.items() if is_tuned(k)}
    frozen = {k: v for k, v in flat.items() if not is_tuned(k)}
    if not tuned:
        raise UserError("the generator has no convs_4..convs_11 to tune (is it a 256 StyleGAN2 generator?)")
    return tuned, frozen


def merge_params(tuned, frozen):
    return traverse_util.unflatten_dict({**frozen, **tuned})


@dataclasses.dataclass
class TuneResult:
    variables: list  # one new generator variables dict per source
    losses: np.ndarray  # [B, steps] the loss before each step
    final_loss: np.ndarray  # [B] the loss after the last step


def _loss_fn(g_module, lpips_module, truncation, l2_lambda, lpips_lambda, size):
    """loss(tuned, frozen params, buffers, lpips vars, w [n, 512], x [H, W, 3], centre) -> (loss, (mse, lpips, img)).
    `centre` is the truncation centre [1, 512] (None: the generator's stored mean latent)."""

    def loss(tuned, frozen_params, buffers, lpips_vars, w, x, centre=None):
        variables = {"params": merge_params(tuned, frozen_params), "buffers": buffers}
        img = g_module.apply(variables, w[None], truncation=truncation, truncation_latent=centre, input_is_latent=True)
        img = to_256(img) if size else img
        mse = jnp.mean((img - x[None]) ** 2)
        lp = lpips_lib.lpips_loss(lpips_vars, img, x[None], module=lpips_module)
        return l2_lambda * mse + lpips_lambda * lp, (mse, lp, img[0])

    return loss


def _adam_step(loss, opt, tuned, opt_state, frozen_params, buffers, lpips_vars, w, x, centre):
    """One tuning step: (new tuned, new state, loss before the step, (mse, lpips, image), gradients)."""
    (val, aux), grads = jax.value_and_grad(loss, has_aux=True)(tuned, frozen_params, buffers, lpips_vars, w, x, centre)
    updates, opt_state = opt.update(grads, opt_state, tuned)
    return optax.apply_updates(tuned, updates), opt_state, val, aux, grads


@functools.partial(
    jax.jit, static_argnames=("g_module", "lpips_module", "n_steps", "truncation", "l2_lambda", "lpips_lambda", "lr")
)
def _run_steps(
    tuned, opt_state, frozen_params, buffers, lpips_vars, w, x, centre, active, *, g_module, lpips_module, n_steps,
    truncation, l2_lambda, lpips_lambda, lr,
):  # fmt: skip
    """`n_steps` Adam steps for a batch of sources (vmapped: tuned/opt_state/w/x carry a leading source axis), of
    which the first `active` (a traced int) update the state: a remainder runs in the same compiled chunk, its
    extra steps computed and discarded."""
    loss = _loss_fn(g_module, lpips_module, truncation, l2_lambda, lpips_lambda, True)
    labels = {k: "tune" for k in tuned}
    opt = make_optimizer(labels, lr)

    def one(tuned, opt_state, w, x):
        def body(carry, i):
            t, s, val, _, _ = _adam_step(loss, opt, *carry, frozen_params, buffers, lpips_vars, w, x, centre)
            keep = i < active
            carry = jax.tree.map(lambda new, old: jnp.where(keep, new, old), (t, s), carry)
            return carry, val

        (tuned, opt_state), vals = jax.lax.scan(body, (tuned, opt_state), jnp.arange(n_steps))
        return tuned, opt_state, vals

    return jax.vmap(one)(tuned, opt_state, w, x)


@functools.partial(jax.jit, static_argnames=("g_module", "lpips_module", "truncation", "l2_lambda", "lpips_lambda"))
def _eval_loss(tuned, frozen_params, buffers, lpips_vars, w, x, centre, *, g_module, lpips_module, truncation,
               l2_lambda, lpips_lambda):  # fmt: skip
    loss = _loss_fn(g_module, lpips_module, truncation, l2_lambda, lpips_lambda, True)
    return jax.vmap(lambda t, w, x: loss(t, frozen_params, buffers, lpips_vars, w, x, centre)[0])(tuned, w, x)


@dataclasses.dataclass
class TuneTrace:
    """What one source's tuning did, step by step (`tune_trace`)."""

    variables: dict  # the tuned generator variables
    loss: np.ndarray  # [steps] loss before each step
    l2_loss: np.ndarray  # [steps] MSE term (before the lambda)
    lpips_loss: np.ndarray  # [steps] LPIPS term (before the lambda)
    images: np.ndarray  # [steps, 256, 256, 3] the image each step's loss was computed on
    grads0: dict  # {param path tuple: gradient} of the tuned leaves at step 0


def tune_trace(
    g_module, g_variables, lpips_module, lpips_variables, w_plus, image, steps: int = STEPS, lr: float = LR,
    truncation: float = TRUNCATION, truncation_latent=None, l2_lambda: float = L2_LAMBDA,
    lpips_lambda: float = LPIPS_LAMBDA,
) -> TuneTrace:  # fmt: skip
    """The tuning of one source, one jitted step at a time, recording every step (the same loss, optimizer and
    step as `tune_generator`). w_plus [1, n, 512], image [1, 256, 256, 3] in [-1, 1]; `truncation_latent` [1, 512]
    is the truncation centre (None: the stored mean latent; upstream's `optimize_g` draws its own)."""
    tuned, frozen_params = split_params(g_variables["params"])
    buffers = g_variables.get("buffers", {})
    loss = _loss_fn(g_module, lpips_module, float(truncation), float(l2_lambda), float(lpips_lambda), True)
    opt = make_optimizer({k: "tune" for k in tuned}, float(lr))
    opt_state = opt.init(tuned)
    centre = None if truncation_latent is None else jnp.asarray(truncation_latent, jnp.float32)
    step = jax.jit(functools.partial(_adam_step, loss, opt))
    w, x = jnp.asarray(w_plus, jnp.float32)[0], jnp.asarray(image, jnp.float32)[0]
    rec, grads0 = [], None
    for _ in range(steps):
        tuned, opt_state, val, (mse, lp, img), grads = step(tuned, opt_state, frozen_params, buffers,
                                                             lpips_variables, w, x, centre)  # fmt: skip
        grads0 = grads if grads0 is None else grads0
        rec.append((float(val), float(mse), float(lp), np.asarray(img)))
    params = merge_params(tuned, frozen_params)
    out = {**{c: v for c, v in g_variables.items() if c != "params"}, "params": params}
    col = lambda i: np.asarray([r[i] for r in rec], np.float32)  # noqa: E731
    images = np.stack([r[3] for r in rec]) if rec else np.zeros((0, *x.shape), np.float32)
    return TuneTrace(out, col(0), col(1), col(2), images, {k: np.asarray(v) for k, v in (grads0 or {}).items()})


def tune_generator(
    g_module,
    g_variables,
    lpips_module,
    lpips_variables,
    w_plus,
    images,
    steps: int = STEPS,
    lr: float = LR,
    truncation: float = TRUNCATION,
    l2_lambda: float = L2_LAMBDA,
    lpips_lambda: float = LPIPS_LAMBDA,
    max_batch: int = 4,
    chunk: int = 10,
    progress: bool = True,
    truncation_latent=None,
) -> TuneResult:
    """Tune one generator per source. w_plus [B, n_latent, 512] (e4e codes, untruncated), images [B, 256, 256, 3] in
    [-1, 1]. Returns a `TuneResult` whose `variables[i]` are new generator variables for source i (the frozen leaves
    are the input's own arrays; `g_variables` itself is not touched). `max_batch` sources share one vmapped call
    (a short last group padded to the first group's size: one compilation); `chunk` steps run per jitted call (one
    progress-bar tick; a remainder runs as a full chunk whose extra steps are discarded: one compilation). `truncation_latent` [1, 512]: the truncation centre
    (None: the generator's stored mean latent)."""
    from tqdm import tqdm

    w_plus = jnp.asarray(w_plus, jnp.float32)
    images = jnp.asarray(images, jnp.float32)
    if w_plus.ndim != 3 or images.ndim != 4 or w_plus.shape[0] != images.shape[0]:
        raise ValueError(f"expected w_plus [B, n, 512] and images [B, H, W, 3], got {w_plus.shape} and {images.shape}")
    if steps < 0:
        raise UserError(f"tuning steps must be >= 0, got {steps}")
    tuned0, frozen_params = split_params(g_variables["params"])
    buffers = g_variables.get("buffers", {})
    centre = None if truncation_latent is None else jnp.asarray(truncation_latent, jnp.float32)
    n = w_plus.shape[0]
    labels = {k: "tune" for k in tuned0}
    opt = make_optimizer(labels, lr)
    static = dict(
        g_module=g_module, lpips_module=lpips_module, truncation=float(truncation), l2_lambda=float(l2_lambda),
        lpips_lambda=float(lpips_lambda),
    )  # fmt: skip
    out_vars, all_losses, finals = [], [], []
    bar = tqdm(total=n * steps, unit="step", desc="tune generator", disable=not progress)
    try:
        group = min(n, max_batch)
        for lo in range(0, n, group):
            w, x = w_plus[lo : lo + group], images[lo : lo + group]
            real = w.shape[0]
            if real < group:  # the last group padded by its last source
                w = jnp.concatenate([w, jnp.repeat(w[-1:], group - real, 0)])
                x = jnp.concatenate([x, jnp.repeat(x[-1:], group - real, 0)])
            b = group
            tuned = jax.tree.map(lambda a, b=b: jnp.broadcast_to(a, (b, *a.shape)), tuned0)
            opt_state = jax.vmap(opt.init)(tuned)
            losses, done = [], 0
            while done < steps:
                k = min(chunk, steps - done)
                tuned, opt_state, vals = _run_steps(
                    tuned,
                    opt_state,
                    frozen_params,
                    buffers,
                    lpips_variables,
                    w,
                    x,
                    centre,
                    jnp.asarray(k, jnp.int32),
                    n_steps=min(chunk, steps),
                    lr=float(lr),
                    **static,
                )
                losses.append(np.asarray(vals)[:real, :k])
                done += k
                bar.update(k * real)
                bar.set_postfix(loss=f"{float(np.mean(losses[-1][:, -1])):.4f}")
            finals.append(
                np.asarray(_eval_loss(tuned, frozen_params, buffers, lpips_variables, w, x, centre, **static))[:real]
            )
            all_losses.append(np.concatenate(losses, 1) if losses else np.zeros((real, 0), np.float32))
            for i in range(real):
                params = merge_params({k: v[i] for k, v in tuned.items()}, frozen_params)
                out_vars.append({**{c: v for c, v in g_variables.items() if c != "params"}, "params": params})
    finally:
        bar.close()
    return TuneResult(out_vars, np.concatenate(all_losses, 0), np.concatenate(finals, 0))
