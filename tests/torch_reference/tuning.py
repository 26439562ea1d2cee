"""The authors' generator tuning (`libs/optimization.py` `optimize_g`, optimize_all=False) re-stated in PyTorch on the
reference generator and LPIPS of tests/, in float32 or float64, producing the arrays a `generator_tuning` golden
holds (its spec's `expected` names).

Why: a golden's small tuned tensors (biases, noise weights after a few Adam steps) sit at the float32 floor, where
Adam's m/sqrt(v) turns rounding in nearly cancelling gradients into visible steps. A float64 replay of the same
steps is the exact answer the golden approximates; how far the golden itself is from it says which of its
tolerances any float32 implementation that is not bit-identical to the harness can meet (`tests/tuning_floor.py`).

Written from the spec's `formulas` (loop, adam) and METHOD.md 7.2, not copied: every step renders
G([w], input_is_latent, truncation ψ to the tuner's centre) with the stored noise, loss = l2_lambda · MSE + LPIPS
([-1, 1] inputs), Adam (torch defaults) over convs[11], convs[10], ..., convs[4] in that order.
"""

from __future__ import annotations

import numpy as np
import torch

from converters.stylegan2 import infer_config
from jaxreenact.evaluation.parity.pipelines import delta_stats
from torch_face_ref import LPIPSRef
from torch_reference.stylegan2 import Generator

TUNED_CONVS = (11, 10, 9, 8, 7, 6, 5, 4)


def generator(g_sd: dict, dtype=torch.float32) -> Generator:
    """The reference generator of a `g_ema` state dict (every key used)."""
    cfg = infer_config({k: np.asarray(v) for k, v in g_sd.items()}, "g_ema")
    g = Generator(cfg["size"], cfg["style_dim"], cfg["n_mlp"], cfg["channel_multiplier"])
    g.load_state_dict(g_sd, strict=True)
    return g.to(dtype)


def lpips(alex_sd: dict, lin_sd: dict, dtype=torch.float32) -> LPIPSRef:
    lp = LPIPSRef()
    lp.load_weights(alex_sd, lin_sd)
    for p in lp.parameters():
        p.requires_grad_(False)
    return lp.eval().to(dtype)


def delta_key(torch_name: str) -> str:
    """'convs.11.conv.modulation.bias' -> 'tuned_delta_convs_11_conv_modulation_bias' (the goldens' names)."""
    return "tuned_delta_" + torch_name.replace(".", "_")


def replay(g: Generator, lp: LPIPSRef, source_u8, wplus, truncation_latent, steps: int, lr: float = 3e-3,
           truncation: float = 0.7, l2_lambda: float = 100.0, lpips_lambda: float = 1.0) -> dict[str, np.ndarray]:  # fmt: skip
    """Tune `g` in place for `steps` Adam steps; the golden's arrays, in the modules' dtype. source_u8 [1, 3, H, W]
    uint8, wplus [1, n_latent, 512], truncation_latent [1, 512]."""
    dt = next(g.parameters()).dtype
    # run_inference.py:118; contiguous, as a loaded image is (the layout decides the order of the sums)
    real = torch.from_numpy(np.ascontiguousarray(source_u8, np.float32) / 255.0 * 2 - 1).to(dt)
    w = torch.from_numpy(np.asarray(wplus)).to(dt)
    centre = torch.from_numpy(np.asarray(truncation_latent)).to(dt)
    names = {id(p): n for n, p in g.named_parameters()}
    params = [p for i in TUNED_CONVS for p in g.convs[i].parameters()]
    tuned = [names[id(p)] for p in params]
    initial = [p.detach().clone() for p in params]
    opt = torch.optim.Adam(params, lr=lr)
    out = {"loss": [], "l2_loss": [], "lpips_loss": [], "img_per_step_mean_std": []}
    for step in range(steps):
        img = g(w, truncation=truncation, truncation_latent=centre, input_is_latent=True)
        l2 = torch.nn.functional.mse_loss(img, real)
        lpips_loss = torch.squeeze(lp(img, real))
        loss = l2 * l2_lambda + lpips_loss * lpips_lambda
        for k, v in (("loss", loss), ("l2_loss", l2), ("lpips_loss", lpips_loss)):
            out[k].append(v.item())
        x = img.detach().double()
        out["img_per_step_mean_std"].append([x.mean().item(), x.std().item()])
        if step == 0:
            out["img_step0"] = img.detach().numpy().copy()
        opt.zero_grad()
        loss.backward()
        if step == 0:
            grads0 = {n: p.grad.detach().numpy().copy() for n, p in zip(tuned, params, strict=True)}
        opt.step()
    with torch.no_grad():
        out["img_tuned"] = g(w, truncation=truncation, truncation_latent=centre, input_is_latent=True).numpy()
    deltas = {n: (p.detach() - p0).numpy() for n, p, p0 in zip(tuned, params, initial, strict=True)}
    res = {k: np.asarray(v) for k, v in out.items()}
    res["tuned_delta_stats"] = np.stack([delta_stats(deltas[n]) for n in tuned])  # the golden's summary, as graded
    res["tuned_delta_convs11_conv_weight"] = deltas["convs.11.conv.weight"]
    if steps:
        res["grad_step0_convs11_conv_weight"] = grads0["convs.11.conv.weight"]
        res["grad_step0_noise_weights"] = np.concatenate([grads0[f"convs.{i}.noise.weight"] for i in TUNED_CONVS])
    for n in tuned:
        res[delta_key(n)] = deltas[n]
    return res
