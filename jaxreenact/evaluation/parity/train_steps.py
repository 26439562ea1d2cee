"""Parity of the three training stages with the authors' steps: the kinds `train_step_synthetic`,
`train_step_mixed` and `train_step_paired` of the pipeline goldens (../shared/golden/README.md).

    rows = KINDS[spec["kind"]](spec, inputs, expected, networks)  # only={names}: report just those

`networks.get(name)` gives the `(module, variables)` of one of the spec's components (generator, deca, id_loss,
lpips, A), converted from the upstream files with `converters.<name>.load_torch`. Each row is a `report.Row`, one per expected
array, in the spec's order; an expected array no rule computes is a
failing row, so a new array is never skipped silently.

The port runs its training code, fed the recorded draws and boxes, stage by stage as the specs' `comparison` says
(each stage gets the upstream values of the previous one from `expected.npz`, so an error is measured where it is
made): images from the recorded z (or the given frames and W+); DECA's crop matrices from the recorded kpt68 boxes
(`deca_crop.crop_matrix_from_box`) and DECA's codes, angles and crops of those images; Δp and the ground truth from
the *expected* DECA codes and angles and the recorded 50 % draws (`losses.step_targets`); shift = A of the
*expected* Δp, with A as upstream had it at that step (the A component, then the expected `A_*_after`); the
reenacted image, its DECA codes, every loss term, the total and the gradient at A's output from the *expected*
shift and ground truth (`losses.shifted_losses`, the function the training step runs); the landmarks and vertices
from the expected parameters; A's gradient from the expected `grad_shift` and Δp; Adam (`loop.make_optimizer`)
from the expected gradients and the previous expected A. Shapes, batch, steps, ψ and its centre, the loss weights,
the 50 % scheme and the layout come from the spec and its inputs, never from one folder.
"""

from __future__ import annotations

import re
import types

import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.evaluation.parity.report import Row, Rows, box_kind, failed, image_input, nchw, progress
from jaxreenact.evaluation.parity.step_setup import (
    DECA_PARTS,
    TERMS,
    a_params_torch,
    build_encode,
    build_geometry,
    build_losses,
    build_shift,
    build_sources,
    build_targets,
    config_of,
    jitted,
    make_setup,
    samples_of,
    step_of,
    steps_view,
    term_list,
    term_names,
)
from jaxreenact.face import deca_crop
from jaxreenact.latent import directions
from jaxreenact.training import loop

ADAM_RTOL, ADAM_ATOL = 1e-3, 5e-8  # the update A_after − A_before (the specs' `compare`)
FLIP_RMS = 1e-5  # an update may flip where |g + wd·A| is below this fraction of its rms (the specs' cross_checks)


# ----------------------------------------------------------------------------------------------- rows
def _row(name, measure, value, tol, passed, note="") -> Row:
    return Row(name, measure, float(value), float(tol), bool(passed), note)


def update_row(name, before, after, want_after, eff_grad, allowed_flips=None) -> Row:
    """A after an Adam step, as the specs' `compare` says: the update Δ = A_after − A_before within rtol 1e-3 or
    5e-8 abs of upstream's. An entry whose effective gradient |g + wd·A| is below 1e-5 of its rms may step the
    other way (its sign is float noise); at most `allowed_flips` such entries (the spec's cross_checks count).
    Value: the largest error in units of its tolerance among the other entries (≤ 1 passes)."""
    before = np.asarray(before, np.float64)
    d_got = np.asarray(after, np.float32).astype(np.float64) - before
    d_want = np.asarray(want_after, np.float32).astype(np.float64) - before
    if d_got.shape != d_want.shape:
        return failed(name, f"shape {list(d_got.shape)} != expected {list(d_want.shape)}")
    if not np.all(np.isfinite(d_got)):
        return failed(name, "non-finite values in the port's update")
    err = np.abs(d_got - d_want)
    ratio = err / np.maximum(ADAM_ATOL, ADAM_RTOL * np.abs(d_want))
    g = np.abs(np.asarray(eff_grad, np.float64))
    tiny = g < FLIP_RMS * np.sqrt(np.mean(g * g))
    beyond = ratio > 1
    excused = int(np.sum(beyond & tiny))
    v = float(np.max(np.where(tiny, 0.0, ratio), initial=0.0))
    ok = v <= 1 and (allowed_flips is None or excused <= allowed_flips)
    note = f"update max abs err {float(err.max(initial=0)):.3g}; {int(beyond.sum())} of {err.size} beyond tol"
    if excused:
        note += f" ({excused} with |g+wd*A| < {FLIP_RMS:g} rms, allowed {allowed_flips})"
    return _row(name, "update", v, 1.0, ok, note)


class Replay:
    """One spec's step, stage by stage, and the rows it produces. Only the stages whose rows are expected (or
    whose outputs a later expected stage needs and the golden lacks) run."""

    def __init__(self, spec, inputs, expected, networks, paired: bool, only=None):
        self.spec, self.inputs, self.expected, self.paired = spec, inputs, expected, paired
        self.rows = Rows(spec, expected, only)
        self.s, self.frozen, self.a_vars, self.cfg = make_setup(spec, inputs, networks)
        self.kind = box_kind(spec)
        self.names = term_names(paired)
        s = self.s
        self._sources = jitted(s, paired, "sources", build_sources)
        self._encode = jitted(s, paired, "encode", build_encode)
        self._targets = jitted(s, paired, "targets", build_targets)
        self._shift = jitted(s, paired, "shift", build_shift)
        self._geometry = jitted(s, paired, "geometry", build_geometry)
        self._losses = jitted(s, paired, "losses", build_losses)
        self.lam = {k: jnp.float32(v) for k, v in s.lam.items()}
        self.per_step: dict[str, list] = {}
        self.need = self._plan()

    def _plan(self) -> dict[str, bool]:
        e, want = self.expected, {n for n in self.expected if self.rows.want(n)}

        def w(*prefixes):
            return any(n.startswith(p) for n in want for p in prefixes)

        def missing(*names):
            return any(n not in e for n in names)

        parts = [f"deca_{r}_{p}" for r in ("source", "target") for p in ("pose", "exp", "shape", "angles")]
        grad_a = w("grad_A_")
        geo_r = w("reen_")
        loss = (w("loss", "grad_shift", "imgs_shifted", "deca_shifted") or (grad_a and missing("grad_shift"))
                or (geo_r and missing(*(f"deca_shifted_{p}" for p in ("pose", "exp", "shape")))))  # fmt: skip
        shift = "shift" in want or ((loss or "shifted_latents" in want) and missing("shift"))
        gt_missing = missing("gt_pose", "gt_exp", "gt_shape")
        targets = (w("shift_vector", "gt_") or ((shift or grad_a) and missing("shift_vector"))
                   or ((loss or w("gt_landmarks2d", "gt_trans_verts")) and gt_missing))  # fmt: skip
        deca_st = w("deca_source", "deca_target") or (targets and missing(*parts))
        images = loss or deca_st or w("imgs_source", "imgs_target") or "shifted_latents" in want
        return {"images": images, "deca_st": deca_st, "targets": targets, "shift": shift, "loss": loss,
                "grads": w("grad_shift") or (grad_a and missing("grad_shift")),
                "geometry": w("gt_landmarks2d", "gt_trans_verts", "reen_"), "shifted_latents": "shifted_latents" in want,
                "grad_a": grad_a}  # fmt: skip

    def keep(self, name: str, value) -> None:
        self.per_step.setdefault(name, []).append(np.asarray(value))

    def last(self, name: str):
        return self.per_step[name][-1]

    def exp(self, name: str, k: int, fallback=None):
        """The upstream value of step k when the golden has it (stage by stage), else the port's own."""
        if name in self.expected:
            return self.expected[name][k]
        return fallback() if callable(fallback) else fallback

    def theta(self, role: str, k: int) -> np.ndarray:
        return deca_crop.crop_matrix_from_box(np.asarray(self.inputs[f"boxes_{role}"][k], np.float64), self.kind)

    def deca(self, role: str, k: int, images) -> None:
        """DECA of a role's images with the crops of its recorded boxes; the rows' per-step values."""
        theta = self.theta(role, k)
        crop, codes, angles = self._encode(self.frozen, images, jnp.asarray(theta))
        self.keep(f"deca_{role}_theta", theta)
        self.keep(f"deca_{role}_angles", angles)
        for part, key in DECA_PARTS.items():
            self.keep(f"deca_{role}_{part}", codes[key])
        self.keep(f"deca_{role}_crop", nchw(crop))

    def images(self, role: str, images) -> None:
        self.keep(f"imgs_{role}", nchw(images))

    def codes(self, role: str, k: int) -> tuple[dict, jax.Array]:
        """A role's DECA codes and angles of step k: upstream's when the golden has them, else the port's."""
        codes = {key: jnp.asarray(self.exp(f"deca_{role}_{part}", k, lambda p=part: self.last(f"deca_{role}_{p}")))
                 for part, key in DECA_PARTS.items() if part != "cam"}  # fmt: skip
        return codes, jnp.asarray(self.exp(f"deca_{role}_angles", k, lambda: self.last(f"deca_{role}_angles")))

    def step(self, k: int, w_s, img_s_deca, img_t, id_ref, pixel_ref, a_k) -> None:
        """Everything of step k after the source and target images (None where the plan needs no images)."""
        need, inp = self.need, self.inputs
        if need["deca_st"]:
            self.deca("source", k, img_s_deca)
            self.deca("target", k, img_t)
        # Δp and ground truth from the expected DECA values and the recorded draws.
        if need["targets"]:
            (cs, a_s), (ct, a_t) = self.codes("source", k), self.codes("target", k)
            draws = None
            if self.s.disentanglement_50 and not self.paired:
                draws = {"target_indices": inp["target_indices"][k].astype(np.int32), "rand_u": inp["rand_u"][k]}
            dp, gt = self._targets(cs, ct, a_s, a_t, draws)
            self.keep("shift_vector", dp)
            for part in ("pose", "exp", "shape"):
                self.keep(f"gt_{part}", gt[part])
        sv = self.exp("shift_vector", k, lambda: self.last("shift_vector"))
        # A, as upstream had it at this step, of the expected Δp.
        if need["shift"] and a_k is None:
            self.rows.add("shift", row=failed("shift", f"step {k} needs the expected A_*_after of step {k - 1}"))
        elif need["shift"]:
            self.keep("shift", self._shift(a_k, jnp.asarray(sv)))
        if need["shifted_latents"] or need["loss"]:
            shift = jnp.asarray(self.exp("shift", k, lambda: self.last("shift")))
            mean = self.frozen["g"]["buffers"]["mean_latent"]
            self.keep(
                "shifted_latents", directions.truncate(directions.shift_wplus(w_s, shift), mean, self.s.truncation)
            )
        gt_e = None
        if need["loss"] or need["geometry"]:
            gt_e = {
                p: jnp.asarray(self.exp(f"gt_{p}", k, lambda p=p: self.last(f"gt_{p}")))
                for p in ("pose", "exp", "shape")
            }
        # The losses and gradients at A's output from the expected shift and ground truth.
        if need["loss"]:
            self._loss_stage(k, shift, w_s, gt_e, id_ref, pixel_ref)
        # Geometry of the expected parameters (ground truth, and the reenacted image's DECA codes).
        if need["geometry"]:
            g_gt = self._geometry(self.frozen, gt_e["shape"], gt_e["exp"], gt_e["pose"])
            rc = {p: jnp.asarray(self.exp(f"deca_shifted_{p}", k, lambda p=p: self.last(f"deca_shifted_{p}")))
                  for p in ("pose", "exp", "shape")}  # fmt: skip
            g_r = self._geometry(self.frozen, rc["shape"], rc["exp"], rc["pose"])
            for prefix, geom in (("gt", g_gt), ("reen", g_r)):
                self.keep(f"{prefix}_landmarks2d", geom["landmarks2d"])
                self.keep(f"{prefix}_trans_verts", geom["trans_verts"])
        # A's gradient from the expected grad_shift and Δp.
        if need["grad_a"]:
            gs = jnp.asarray(self.exp("grad_shift", k, lambda: self.last("grad_shift")))
            (ga,) = jax.vjp(lambda p: self.s.a.apply(p, jnp.asarray(sv)), self.a_vars)[1](gs)  # A is linear
            self.keep("grad_A_weight", np.asarray(ga["params"]["linear"]["weight"]).T)
            self.keep("grad_A_bias", ga["params"]["linear"]["bias"])

    def _loss_stage(self, k, shift, w_s, gt, id_ref, pixel_ref) -> None:
        entry = self.spec["expected"].get("grad_shift_per_term")
        per_term = self.rows.want("grad_shift_per_term") and step_of(entry) == k
        t = len(self.names)
        cot = np.eye(t, dtype=np.float32) if per_term else np.ones((t, t), np.float32)
        n = t if per_term else int(self.need["grads"])
        theta_r = jnp.asarray(self.theta("shifted", k))
        total, vec, img_r, grads = self._losses(self.frozen, self.lam, shift, w_s, gt, id_ref, pixel_ref, theta_r,
                                                cot, n)  # fmt: skip
        grads = np.asarray(grads)
        self.keep("loss", total)
        for name, term in TERMS.items():
            if term in self.names:
                self.keep(name, vec[self.names.index(term)])
        self.keep("grad_shift", grads.sum(0) if per_term else grads[0])
        if per_term:
            order = term_list(entry) or [n_ for n_, t_ in TERMS.items() if t_ in self.names]
            unknown = [n_ for n_ in order if TERMS.get(n_) not in self.names]
            if unknown:
                self.rows.add("grad_shift_per_term", row=failed("grad_shift_per_term", f"unknown terms {unknown}"))
            else:
                samples = samples_of(entry, (0, grads.shape[1] // 2))
                self.rows.add("grad_shift_per_term", np.stack([grads[self.names.index(TERMS[n_])][samples]
                                                                for n_ in order]))  # fmt: skip
        self.images("shifted", img_r)
        self.deca("shifted", k, img_r)

    def adam(self) -> None:
        """A after each step: Adam (the training loop's optimizer) from the expected gradients and the previous
        expected A (step 0: the A component)."""
        exp = self.expected
        if not (self.rows.want("A_weight_after") or self.rows.want("A_bias_after")):
            return
        if not all(k in exp for k in ("grad_A_weight", "grad_A_bias", "A_weight_after", "A_bias_after")):
            for name in ("A_weight_after", "A_bias_after"):
                self.rows.add(name, row=failed(name, "needs the expected grad_A_* and A_*_after of every step"))
            return
        lr = float(self.cfg.get("lr", 1e-4))
        m = re.search(r"weight_decay=([0-9.eE+-]+)", str(self.cfg.get("optimizer", "")))
        wd = float(m.group(1)) if m else 5e-4
        tx = loop.make_optimizer(types.SimpleNamespace(optimizer="adam", lr=lr, weight_decay=wd))
        before = self.a_vars
        opt = tx.init(before)
        cc = self.spec.get("cross_checks") or {}
        flips = cc.get(f"adam_entries_with_abs_effective_grad_below_{FLIP_RMS:g}_rms_per_step")
        leaves = {leaf: {"before": [], "after": [], "eff": []} for leaf in ("weight", "bias")}
        steps = len(exp["grad_A_weight"])
        for k in range(steps):
            grads = a_params_torch(exp["grad_A_weight"][k], exp["grad_A_bias"][k])
            updates, opt = tx.update(grads, opt, before)
            after = jax.tree.map(lambda p, u: p + u, before, updates)
            for leaf, acc in leaves.items():
                torch_layout = (lambda x: np.asarray(x).T) if leaf == "weight" else np.asarray
                b_leaf = np.asarray(before["params"]["linear"][leaf])
                acc["before"].append(torch_layout(b_leaf))
                acc["after"].append(torch_layout(after["params"]["linear"][leaf]))
                acc["eff"].append(torch_layout(np.asarray(grads["params"]["linear"][leaf]) + np.float32(wd) * b_leaf))
            before = a_params_torch(exp["A_weight_after"][k], exp["A_bias_after"][k])
        allowed = None if flips is None else int(sum(flips[:steps]))
        for leaf, acc in leaves.items():
            name = f"A_{leaf}_after"
            st = {k: np.stack(v) for k, v in acc.items()}
            self.rows.add(name, row=update_row(name, st["before"], st["after"], exp[name], st["eff"], allowed))

    def finish(self) -> list[dict]:
        """Rows of everything kept per step (matched to each expected array's form), then the rest."""
        st = {k: np.stack(v) for k, v in self.per_step.items()}
        for name, want in self.expected.items():
            if not self.rows.want(name):
                continue
            m = re.fullmatch(r"(imgs_\w+?|deca_\w+?_crop)_sub(\d+)", name)
            if m and m.group(1) in st:
                k = int(m.group(2))
                self.rows.add(name, steps_view(st[m.group(1)][..., ::k, ::k], want))
                continue
            m = re.fullmatch(r"(imgs_\w+)_mean_std", name)
            if m and m.group(1) in st:
                x = st[m.group(1)].astype(np.float64)
                x = x.reshape(*x.shape[:2], -1)
                self.rows.add(name, np.stack([x.mean(-1), x.std(-1, ddof=1)], -1))  # torch .std(): unbiased
                continue
            if name == "imgs_shifted_full" and "imgs_shifted" in st:
                b = st["imgs_shifted"].shape[1]
                self.rows.add(name, st["imgs_shifted"][0][samples_of(self.spec["expected"].get(name), (0, b // 2))])
                continue
            m = re.fullmatch(r"(\w+)_sub(\d+)", name)
            if m and m.group(1) in st:  # every k-th vertex (gt/reen_trans_verts_sub50)
                self.rows.add(name, steps_view(st[m.group(1)][:, :, :: int(m.group(2))], want))
                continue
            if name in st:
                self.rows.add(name, steps_view(st[name], want))
        return self.rows.finish()


def _run(spec, inputs, expected, networks, paired, steps, only) -> list[dict]:
    why = _unsupported(spec)
    if why:
        return [failed(k, why) for k in expected if only is None or k in only]
    with jax.default_matmul_precision("highest"):
        r = Replay(spec, inputs, expected, networks, paired, only)
        for k in range(steps):
            a_k = r.a_vars  # A as upstream had it at step k: the component, then the expected A after step k − 1
            if k:
                have = "A_weight_after" in expected and "A_bias_after" in expected
                a_k = (
                    a_params_torch(expected["A_weight_after"][k - 1], expected["A_bias_after"][k - 1]) if have else None
                )
            progress(f"replaying step {k + 1}/{steps}")
            _step(r, spec["kind"], inputs, k, a_k)
        progress("Adam's update of A")
        r.adam()
        return r.finish()


def _step(r: Replay, kind: str, inputs, k: int, a_k) -> None:
    """The sources, targets and references of step k for the kind, then `Replay.step`."""
    if not r.need["images"]:
        r.step(k, None, None, None, None, None, a_k)
        return
    if kind == "train_step_paired":
        img_s = jnp.asarray(image_input(inputs["source_img_u8"][k]))
        img_t = jnp.asarray(image_input(inputs["target_img_u8"][k]))
        r.step(k, jnp.asarray(inputs["source_w"][k]), img_s, img_t, img_t, img_t, a_k)
        return
    fz = r.frozen
    _, img_t = r._sources(fz, jnp.asarray(inputs["z_target"][k]))
    r.images("target", img_t)
    if kind == "train_step_mixed":
        w_syn, img_syn = r._sources(fz, jnp.asarray(inputs["z_source_syn"][k]))
        r.images("source_syn", img_syn)
        w_s = jnp.concatenate([jnp.asarray(inputs["w_real"][k]), w_syn], 0)
        img_s = jnp.concatenate([jnp.asarray(image_input(inputs["real_img_u8"][k])), img_syn], 0)
    else:
        w_s, img_s = r._sources(fz, jnp.asarray(inputs["z_source"][k]))
        r.images("source", img_s)
    r.step(k, w_s, img_s, img_t, img_s, None, a_k)


def _unsupported(spec) -> str:
    cfg = config_of(spec)
    if float(cfg.get("lambda_w_reg", 0.0)) != 0.0:
        return "lambda_w_reg != 0: the port's step has no W regulariser term yet"
    if cfg.get("w_plus", True) is not True or int(cfg.get("num_layers_shift", 8)) != 8:
        return "only the W+ direction matrix on 8 layers (the paper's) is replayed"
    return ""


def train_step_synthetic(spec, inputs, expected, networks, only=None) -> list[dict]:
    """`Trainer.train` (synthetic): sources G(z_source), targets G(z_target), the 50 % scheme (or full Δp)."""
    return _run(spec, inputs, expected, networks, False, inputs["z_source"].shape[0], only)


def train_step_mixed(spec, inputs, expected, networks, only=None) -> list[dict]:
    """`Trainer.train_real` (real_synthetic): real frames + W+ ⊕ G(z_source_syn), targets G(z_target)."""
    return _run(spec, inputs, expected, networks, False, inputs["z_target"].shape[0], only)


def train_step_paired(spec, inputs, expected, networks, only=None) -> list[dict]:
    """`Trainer.train_paired`: two frames of one video, full Δp, losses against the target ([0, 255] quirk)."""
    return _run(spec, inputs, expected, networks, True, inputs["source_img_u8"].shape[0], only)


KINDS = {
    "train_step_synthetic": train_step_synthetic,
    "train_step_mixed": train_step_mixed,
    "train_step_paired": train_step_paired,
}
