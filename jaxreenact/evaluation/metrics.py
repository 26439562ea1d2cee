"""The reenactment metrics of the paper's Table 1, each a pure function; one implementation for evaluation and for
the trainer's validation.

Per-sample metrics (jnp, jit-able; leading batch axes are kept, the last axis is the feature axis):
  * `csim(emb_a, emb_b)`: cosine similarity of ArcFace embeddings (CSIM; the embeddings come from
    `jaxreenact.models.arcface`). The authors' validation CSIM is `1 - IDLoss` = this cosine.
    `csim_images(variables, a, b, module=...)` embeds two image batches and applies it (evaluation and validation).
  * `nme(pred, gt)`: mean point-to-point landmark error / sqrt(w * h) of the ground-truth landmarks' min/max box,
    x 10^3 (the paper's NME). `nme_interocular(pred, gt)`: the same error / the distance between the outer eye
    corners (68-point indices 36 and 45), also x 10^3 (a second, conventional column; not in the paper).
  * `pose_error(angles_a, angles_b)`: mean |delta| of (yaw, pitch, roll) in degrees, as the authors' validation:
    (|dyaw| + |dpitch| + |droll|) / 3; `per_axis=True` gives the three |delta|s. Angles are not wrapped.
  * Expression: `expression_params(exp, jaw)` builds p_e = [jaw, exp_0 .. exp_10], the 12 expression-like
    parameters of the VoxCeleb direction layout (jaw = DECA `pose[..., 3]`, radians; exp = DECA `exp[..., :11]`),
    which is the paper's p_e for the released models (METHOD.md 2.3). Then
      - `expression_error(pe_a, pe_b)` ("exp_raw"): the paper's form, mean |delta| of the p_e entries, unnormalised;
      - `expression_error_normalized(pe_a, pe_b, ranges)` ("exp_norm"): the authors' validation form, mean over the
        same 12 entries of |norm(a) - norm(b)|, norm(x) = (x - min) / (max - min) from the ranges file (row 3 jaw,
        rows 4.. exp_0..; `jaxreenact.pose.params.load_ranges`).
    `num_exp=50` in `expression_params` (and `expression_error_normalized`) gives the all-coefficients variant.

Aggregation (numpy): `summarize(values, valid)` averages per-frame values over the frames where a face was found
and reports `n_valid` / `n_excluded`; invalid frames are never scored as zeros. `masked_mean` is its jit-able
counterpart for validation inside a jitted step.

FID (numpy float64, pytorch-fid's numerics): `ActivationStatistics` accumulates mean / covariance of Inception pool3
features batch by batch (Chan's parallel update, so a large evaluation never holds all features);
`frechet_distance(mu1, sigma1, mu2, sigma2)` is pytorch-fid's `calculate_frechet_distance` (scipy `sqrtm`, eps
offset if the product is singular, imaginary-part check); `fid_from_features(feats_a, feats_b)` combines them
(exactly, through the features' cross Gram matrix, when there are fewer samples than dimensions).
LPIPS distances per pair come from `jaxreenact.models.lpips`; aggregate them with `summarize`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pathlib
from typing import Any

import jax.numpy as jnp
import numpy as np
from scipy import linalg

from jaxreenact.common.errors import UserError
from jaxreenact.models import arcface
from jaxreenact.nn.torch_layers import cosine_similarity

log = logging.getLogger(__name__)

NME_SCALE = 1000.0  # the paper reports NME x 10^3
LEFT_EYE_OUTER, RIGHT_EYE_OUTER = 36, 45  # 68-point (iBUG) outer eye corners
NUM_EXP = 11  # exp_0..exp_10: the VoxCeleb layout's expression directions (with jaw, 12 = the authors' p_e)
RANGES_JAW_ROW, RANGES_EXP_ROW = 3, 4  # ranges file rows: 0 yaw, 1 pitch, 2 roll, 3 jaw, 4.. exp_0..exp_49
EXP_RAW, EXP_NORM = "exp_raw", "exp_norm"  # labels of the two expression-error forms
CSIM_EPS = 1e-6  # the eps of the authors' IDLoss cosine (= models.arcface.COS_EPS)


# ------------------------------------------------------------------------------------------ masked aggregation
def masked_mean(values, valid):
    """jit-able mean of `values` [N, ...] over axis 0 where `valid` [N] is True; returns (mean, n_valid).

    The mean is NaN when no entry is valid (never 0).
    """
    values = jnp.asarray(values)
    valid = jnp.asarray(valid, bool)
    w = valid.reshape(valid.shape + (1,) * (values.ndim - valid.ndim))
    n = jnp.sum(valid)
    total = jnp.sum(jnp.where(w, values, 0.0), axis=0)
    return total / n, n


@dataclasses.dataclass(frozen=True)
class Summary:
    """A metric over frames: mean and std over the valid frames, how many were valid / excluded.

    `n_nonfinite` counts frames marked valid whose value was NaN/inf; they are excluded too (and counted in
    `n_excluded`) so one broken frame cannot poison a whole evaluation, but they are reported.
    """

    mean: Any
    std: Any
    n_valid: int
    n_excluded: int
    n_nonfinite: int = 0

    def as_dict(self) -> dict:
        plain = lambda v: v.tolist() if isinstance(v, np.ndarray) else float(v)
        return {
            "mean": plain(self.mean),
            "std": plain(self.std),
            "n_valid": self.n_valid,
            "n_excluded": self.n_excluded,
            "n_nonfinite": self.n_nonfinite,
        }


def summarize(values, valid=None) -> Summary:
    """Mean / std (float64) of per-frame `values` [N, ...] over axis 0, counting only frames with `valid` [N] True
    (a face was found in every image the metric needs). `valid=None` means all frames. With no valid frame the mean
    and std are NaN."""
    v = np.asarray(values, np.float64)
    if v.ndim == 0:
        v = v[None]
    ok = np.ones(v.shape[0], bool) if valid is None else np.asarray(valid, bool).reshape(-1)
    if ok.shape[0] != v.shape[0]:
        raise ValueError(f"summarize: {v.shape[0]} values but a validity mask of {ok.shape[0]} frames")
    finite = np.isfinite(v.reshape(v.shape[0], -1)).all(axis=1)
    nonfinite = int(np.sum(ok & ~finite))
    ok = ok & finite
    n = int(ok.sum())
    if n == 0:
        nan = np.full(v.shape[1:], np.nan) if v.ndim > 1 else np.nan
        return Summary(nan, nan, 0, int(v.shape[0]), nonfinite)
    sel = v[ok]
    return Summary(sel.mean(axis=0), sel.std(axis=0), n, int(v.shape[0]) - n, nonfinite)


# ------------------------------------------------------------------------------------------ CSIM
def csim(emb_a, emb_b):
    """Cosine similarity of identity embeddings [..., D] -> [...] (1 for identical identities), with the eps of the
    authors' `IDLoss` cosine (`torch.nn.CosineSimilarity(eps=1e-6)`)."""
    return cosine_similarity(jnp.asarray(emb_a), jnp.asarray(emb_b), eps=CSIM_EPS)


def csim_images(arcface_variables, images_a, images_b, *, module=None, crop: bool = True):
    """CSIM [B] of two batches of 256² images in [-1, 1]: ArcFace embeddings of both (`IDLoss.extract_feats`: the
    identity crop, pooled to 112) in one batch, then `csim`. The CSIM of the evaluation and of the trainer's
    validation (the authors' `1 - IDLoss`)."""

    module = module or arcface.ArcFace()
    b = images_a.shape[0]
    both = jnp.concatenate([images_a, images_b], axis=0)
    emb = module.apply(arcface_variables, both, crop, method=arcface.ArcFace.extract_feats)
    return csim(emb[:b], emb[b:])


# ------------------------------------------------------------------------------------------ NME
def landmark_box_size(gt):
    """sqrt(w * h) of the min/max box of ground-truth landmarks [..., P, 2] -> [...]."""
    gt = jnp.asarray(gt)
    wh = jnp.max(gt, axis=-2) - jnp.min(gt, axis=-2)
    return jnp.sqrt(wh[..., 0] * wh[..., 1])


def _point_error(pred, gt):
    pred, gt = jnp.asarray(pred), jnp.asarray(gt)
    if pred.shape != gt.shape or pred.shape[-1] != 2:
        raise ValueError(f"landmarks must both be [..., P, 2], got {pred.shape} and {gt.shape}")
    return jnp.mean(jnp.linalg.norm(pred - gt, axis=-1), axis=-1)


def nme(pred, gt, scale: float = NME_SCALE):
    """The paper's NME: mean_i ||pred_i - gt_i|| / sqrt(w_gt * h_gt) * 10^3, per sample ([..., P, 2] -> [...])."""
    return _point_error(pred, gt) / landmark_box_size(gt) * scale


def nme_interocular(pred, gt, scale: float = NME_SCALE):
    """NME normalised by the ground-truth outer-eye-corner distance (68-point indices 36, 45), x 10^3."""
    gt = jnp.asarray(gt)
    if gt.shape[-2] != 68:
        raise ValueError(f"inter-ocular NME needs 68-point landmarks, got {gt.shape[-2]} points")
    iod = jnp.linalg.norm(gt[..., LEFT_EYE_OUTER, :] - gt[..., RIGHT_EYE_OUTER, :], axis=-1)
    return _point_error(pred, gt) / iod * scale


# ------------------------------------------------------------------------------------------ pose
def pose_error(angles_a, angles_b, per_axis: bool = False):
    """|delta| of DECA (yaw, pitch, roll) in degrees [..., 3]: their mean -> [...] or, `per_axis`, [..., 3]."""
    a, b = jnp.asarray(angles_a), jnp.asarray(angles_b)
    if a.shape != b.shape or a.shape[-1] != 3:
        raise ValueError(f"angles must both be [..., 3] (yaw, pitch, roll), got {a.shape} and {b.shape}")
    d = jnp.abs(a - b)
    return d if per_axis else jnp.mean(d, axis=-1)


# ------------------------------------------------------------------------------------------ expression
def expression_params(exp, jaw, num_exp: int = NUM_EXP):
    """p_e = [jaw, exp_0 .. exp_{num_exp-1}] -> [..., 1 + num_exp], the direction layout's order.

    exp: DECA expression coefficients [..., 50]; jaw: DECA `pose[..., 3]` [...] (jaw opening, radians).
    """
    exp, jaw = jnp.asarray(exp), jnp.asarray(jaw)
    if not 1 <= num_exp <= exp.shape[-1]:
        raise ValueError(f"num_exp must be in 1..{exp.shape[-1]}, got {num_exp}")
    return jnp.concatenate([jaw[..., None], exp[..., :num_exp]], axis=-1)


def expression_error(pe_a, pe_b):
    """The paper's expression error ("exp_raw"): mean |delta| of the p_e entries [..., K] -> [...]."""
    a, b = jnp.asarray(pe_a), jnp.asarray(pe_b)
    if a.shape != b.shape:
        raise ValueError(f"expression parameters differ in shape: {a.shape} vs {b.shape}")
    return jnp.mean(jnp.abs(a - b), axis=-1)


def expression_ranges(ranges, k: int):
    """(min, max) [k] of p_e = [jaw, exp_0 .. exp_{k-2}] from a ranges array [54, 2] (rows 3, 4, ...)."""
    r = jnp.asarray(ranges)
    if r.ndim != 2 or r.shape[1] != 2 or r.shape[0] < RANGES_JAW_ROW + k:
        raise ValueError(f"ranges must be [54, 2] (min, max per parameter), got {r.shape}")
    sel = r[RANGES_JAW_ROW : RANGES_JAW_ROW + k]
    return sel[:, 0], sel[:, 1]


def expression_error_normalized(pe_a, pe_b, ranges):
    """The authors' validation expression error ("exp_norm"): mean over the p_e entries of
    |norm(a) - norm(b)|, norm(x) = (x - min) / (max - min) with the ranges file's jaw / exp rows. [..., K] -> [...]."""
    a, b = jnp.asarray(pe_a), jnp.asarray(pe_b)
    if a.shape != b.shape:
        raise ValueError(f"expression parameters differ in shape: {a.shape} vs {b.shape}")
    lo, hi = expression_ranges(ranges, a.shape[-1])
    span = hi - lo
    return jnp.mean(jnp.abs((a - lo) / span - (b - lo) / span), axis=-1)


def expression_errors(pe_a, pe_b, ranges) -> dict:
    """Both labelled forms: {"exp_raw": paper's raw mean |delta|, "exp_norm": authors' range-normalised}."""
    return {EXP_RAW: expression_error(pe_a, pe_b), EXP_NORM: expression_error_normalized(pe_a, pe_b, ranges)}


# ------------------------------------------------------------------------------------------ FID
class ActivationStatistics:
    """Streaming mean and covariance (float64, ddof=1 as `np.cov`) of feature batches [B, D].

    Batches are merged with Chan et al.'s parallel update (per-batch centred sums), which is as accurate as the
    two-pass `np.cov` pytorch-fid uses while holding only D + D*D numbers.
    """

    def __init__(self, dim: int = 2048):
        self.dim = dim
        self.n = 0
        self._mean = np.zeros(dim, np.float64)
        self._m2 = np.zeros((dim, dim), np.float64)

    def update(self, feats, valid=None) -> ActivationStatistics:
        x = np.asarray(feats, np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"features must be [B, {self.dim}], got {x.shape}")
        if valid is not None:
            x = x[np.asarray(valid, bool).reshape(-1)]
        if x.shape[0] == 0:
            return self
        mean_b = x.mean(axis=0)
        xc = x - mean_b
        self._merge(x.shape[0], mean_b, xc.T @ xc)
        return self

    def merge(self, other: ActivationStatistics) -> ActivationStatistics:
        if other.dim != self.dim:
            raise ValueError(f"cannot merge statistics of dimension {other.dim} into {self.dim}")
        if other.n:
            self._merge(other.n, other._mean, other._m2)
        return self

    def _merge(self, nb, mean_b, m2_b):
        na, n = self.n, self.n + nb
        delta = mean_b - self._mean
        self._mean = self._mean + delta * (nb / n)
        self._m2 = self._m2 + m2_b + np.outer(delta, delta) * (na * nb / n)
        self.n = n

    @property
    def mean(self) -> np.ndarray:
        return self._mean.copy()

    @property
    def cov(self) -> np.ndarray:
        if self.n < 2:
            raise ValueError(f"a covariance needs at least 2 samples, got {self.n}")
        return self._m2 / (self.n - 1)

    def statistics(self) -> tuple[np.ndarray, np.ndarray]:
        """(mu, sigma) as pytorch-fid's `calculate_activation_statistics`."""
        return self.mean, self.cov


def activation_statistics(feats) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of features [N, D]: `np.mean(axis=0)`, `np.cov(rowvar=False)` in float64 (pytorch-fid)."""
    x = np.asarray(feats, np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"features must be [N >= 2, D], got {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 sqrt(sigma1 sigma2)), as pytorch-fid computes it.

    If `sqrtm` of the product is not finite (singular product), `eps` is added to both diagonals and it is
    recomputed; a complex result whose diagonal imaginary part exceeds 1e-3 raises `ValueError`.
    """
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors differ in length: {mu1.shape} vs {mu2.shape}")
    if sigma1.shape != sigma2.shape:
        raise ValueError(f"covariances differ in shape: {sigma1.shape} vs {sigma2.shape}")
    diff = mu1 - mu2
    covmean = linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        log.warning("fid calculation produces singular product; adding %s to diagonal of cov estimates", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"FID: imaginary component {np.max(np.abs(covmean.imag))} in sqrtm(sigma1 sigma2)")
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def fid_from_features(feats_a, feats_b) -> float:
    """FID between two sets of Inception pool3 features [N, D] and [M, D] (float64, pytorch-fid's numerics).

    With fewer samples than dimensions (min(N, M) < D, e.g. a short evaluation: the covariances are singular, and
    scipy's `sqrtm` of the 2048² product is slow and inaccurate there) the trace term is computed exactly from the
    centred features instead: with sigma_a = AᵀA, sigma_b = BᵀB (A = (X_a - mu_a) / sqrt(N - 1), likewise B),
    the nonzero eigenvalues of sigma_a sigma_b are the squared singular values of A Bᵀ [N, M], so
    Tr sqrt(sigma_a sigma_b) = the sum of the singular values of A Bᵀ.
    """
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    (mu_a, sigma_a), (mu_b, sigma_b) = activation_statistics(a), activation_statistics(b)
    if sigma_a.shape != sigma_b.shape or min(len(a), len(b)) >= a.shape[1]:
        return frechet_distance(mu_a, sigma_a, mu_b, sigma_b)
    ca, cb = (a - mu_a) / np.sqrt(len(a) - 1), (b - mu_b) / np.sqrt(len(b) - 1)
    tr_covmean = np.linalg.svd(ca @ cb.T, compute_uv=False).sum()
    diff = mu_a - mu_b
    return float(diff.dot(diff) + np.trace(sigma_a) + np.trace(sigma_b) - 2 * tr_covmean)


def fid_from_statistics(stats_a: ActivationStatistics, stats_b: ActivationStatistics) -> float:
    """FID between two streamed `ActivationStatistics`."""
    return frechet_distance(*stats_a.statistics(), *stats_b.statistics())


def save_statistics(path: str | os.PathLike, mu, sigma) -> None:
    """Write (mu, sigma) as an .npz with keys `mu`, `sigma` (pytorch-fid's `--save-stats` format)."""
    np.savez(path, mu=np.asarray(mu, np.float64), sigma=np.asarray(sigma, np.float64))


def load_statistics(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read an .npz of `mu`, `sigma` (ours or pytorch-fid's precomputed statistics)."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise UserError(f"{path}: FID statistics file not found")
    with np.load(path, allow_pickle=False) as f:
        if "mu" not in f or "sigma" not in f:
            raise UserError(f"{path}: not FID statistics (needs arrays 'mu' and 'sigma', has {sorted(f.files)})")
        return f["mu"].astype(np.float64), f["sigma"].astype(np.float64)
