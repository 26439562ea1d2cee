"""Validation during training: per-sample metrics of full-Δp reenactments, as the authors define them (METHOD.md 8)."""

from __future__ import annotations

from jaxreenact.evaluation import metrics
from jaxreenact.pose import deca as deca_lib
from jaxreenact.training.setup import Setup, deca_codes, reenact_from_codes


def validation_metrics(s: Setup, params, frozen, w_s, img_s, img_t, csim_ref):
    """On the whole batch: CSIM to `csim_ref`, pose error (degrees) and range-normalised expression error vs the
    target. Returns (per-sample dict, images dict of source/target/reenacted)."""
    codes_s, codes_t = deca_codes(s, frozen, img_s), deca_codes(s, frozen, img_t)
    img_r = reenact_from_codes(s, params, frozen, w_s, codes_s, codes_t)
    codes_r = deca_codes(s, frozen, img_r)
    n_exp = s.layout.num_expressions
    pe_r = metrics.expression_params(codes_r["exp"], codes_r["pose"][:, 3], n_exp)
    pe_t = metrics.expression_params(codes_t["exp"], codes_t["pose"][:, 3], n_exp)
    per_sample = {
        "csim": metrics.csim_images(frozen["arcface"], img_r, csim_ref, module=s.nets.arcface),
        "pose_error_deg": metrics.pose_error(deca_lib.angles_of(codes_r), deca_lib.angles_of(codes_t)),
        "exp_error_norm": metrics.expression_error_normalized(pe_r, pe_t, s.ranges),
    }
    return per_sample, {"source": img_s, "target": img_t, "reenacted": img_r}
