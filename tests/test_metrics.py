"""Metric functions on constructed inputs with known answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.common.errors import UserError
from jaxreenact.evaluation import metrics as M
from jaxreenact.pose import params as pose

# ranges_voxceleb.npy rows 3 (jaw) and 4 (exp00), as printed in METHOD.md 2.5
JAW_MIN, JAW_MAX = -0.11169847846031189, 0.19479338824748993
EXP0_MIN, EXP0_MAX = -0.9968752861022949, 2.3540308475494385
EXP10_MIN, EXP10_MAX = -1.6655000448226929, 0.8243483901023865


# ------------------------------------------------------------------ CSIM
def test_csim_known_values():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(4, 512)).astype(np.float32)
    e /= np.linalg.norm(e, axis=-1, keepdims=True)
    np.testing.assert_allclose(M.csim(e, e), np.ones(4), atol=1e-6)
    np.testing.assert_allclose(M.csim(e, -e), -np.ones(4), atol=1e-6)
    a = np.zeros((1, 512), np.float32)
    b = np.zeros((1, 512), np.float32)
    a[0, 0], b[0, 1] = 1.0, 1.0
    np.testing.assert_allclose(M.csim(a, b), [0.0], atol=1e-7)
    # Unnormalised inputs: still the cosine (scale-invariant), and jit gives the same.
    np.testing.assert_allclose(jax.jit(M.csim)(3.0 * e, e), np.ones(4), atol=1e-6)


# ------------------------------------------------------------------ NME
def _square_landmarks(side, n=68, seed=0):
    """68 points inside [10, 10 + side]^2 whose min/max box is exactly side x side."""
    pts = np.random.default_rng(seed).uniform(10.0, 10.0 + side, size=(n, 2))
    pts[0] = (10.0, 10.0)
    pts[1] = (10.0 + side, 10.0 + side)
    return pts


def test_nme_shift_on_square_box():
    s, d = 200.0, 3.0
    gt = _square_landmarks(s)
    pred = gt + np.array([d, 0.0])  # every point off by d pixels
    np.testing.assert_allclose(M.nme(pred, gt), d / s * 1000.0, rtol=1e-6)  # 15.0
    pred_diag = gt + d / np.sqrt(2.0)  # off by d along the diagonal
    np.testing.assert_allclose(M.nme(pred_diag, gt), d / s * 1000.0, rtol=1e-6)
    np.testing.assert_allclose(M.nme(gt, gt), 0.0, atol=0)


def test_nme_rectangle_batch_and_interocular():
    gt = _square_landmarks(100.0)
    gt = gt * np.array([2.0, 0.5])  # box 200 x 50 -> sqrt(area) 100
    gt[M.LEFT_EYE_OUTER] = (40.0, 20.0)
    gt[M.RIGHT_EYE_OUTER] = (120.0, 20.0)  # inter-ocular distance 80, inside the box
    pred = gt + np.array([0.0, 2.0])
    batch_gt = np.stack([gt, gt])
    batch_pred = np.stack([pred, gt])
    np.testing.assert_allclose(M.nme(batch_pred, batch_gt), [20.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(M.nme_interocular(batch_pred, batch_gt), [25.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(jax.jit(M.nme)(batch_pred, batch_gt), [20.0, 0.0], rtol=1e-6)
    with pytest.raises(ValueError, match="68-point"):
        M.nme_interocular(pred[:5], gt[:5])


# ------------------------------------------------------------------ pose and expression
def test_pose_error_hand_values():
    a = np.array([[10.0, -5.0, 3.0], [0.0, 0.0, 0.0]])
    b = np.array([[7.0, -1.0, 3.0], [-1.0, 2.0, 3.0]])
    np.testing.assert_allclose(M.pose_error(a, b), [7.0 / 3.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(M.pose_error(a, b, per_axis=True), [[3, 4, 0], [1, 2, 3]], rtol=1e-6)
    np.testing.assert_allclose(jax.jit(M.pose_error)(a, b), [7.0 / 3.0, 2.0], rtol=1e-6)


def test_expression_params_layout():
    exp = np.arange(50, dtype=np.float32)[None] + 1.0
    jaw = np.array([0.5], np.float32)
    pe = np.asarray(M.expression_params(exp, jaw))
    assert pe.shape == (1, 12)
    np.testing.assert_array_equal(pe[0], [0.5, *range(1, 12)])
    assert M.expression_params(exp, jaw, num_exp=50).shape == (1, 51)


def test_expression_errors_raw_and_range_normalised():
    ranges = pose.load_ranges(pose.default_ranges_path("voxceleb"))
    exp_a, exp_b = np.zeros((1, 50)), np.zeros((1, 50))
    exp_b[0, 0], exp_b[0, 10], exp_b[0, 11] = 1.0, -0.5, 9.0  # exp_11 is outside p_e: ignored
    jaw_a, jaw_b = np.array([0.0]), np.array([0.1])
    pe_a, pe_b = M.expression_params(exp_a, jaw_a), M.expression_params(exp_b, jaw_b)
    raw = (0.1 + 1.0 + 0.5) / 12.0
    norm = (0.1 / (JAW_MAX - JAW_MIN) + 1.0 / (EXP0_MAX - EXP0_MIN) + 0.5 / (EXP10_MAX - EXP10_MIN)) / 12.0
    np.testing.assert_allclose(M.expression_error(pe_a, pe_b), [raw], rtol=1e-6)
    np.testing.assert_allclose(M.expression_error_normalized(pe_a, pe_b, ranges), [norm], rtol=1e-5)
    both = jax.jit(M.expression_errors)(pe_a, pe_b, jnp.asarray(ranges, jnp.float32))
    np.testing.assert_allclose(both[M.EXP_RAW], [raw], rtol=1e-6)
    np.testing.assert_allclose(both[M.EXP_NORM], [norm], rtol=1e-5)
    # The authors' form normalises each side before the difference; an offset common to both cancels.
    np.testing.assert_allclose(M.expression_error_normalized(pe_a + 0.3, pe_b + 0.3, ranges), [norm], rtol=1e-5)
    np.testing.assert_allclose(M.expression_error(pe_a, pe_a), [0.0], atol=0)


# ------------------------------------------------------------------ masked aggregation
def test_summarize_excludes_invalid_frames():
    values = np.array([1.0, 2.0, 100.0, 4.0])  # frame 2: no face found (its value is garbage)
    valid = np.array([True, True, False, True])
    s = M.summarize(values, valid)
    assert (s.n_valid, s.n_excluded, s.n_nonfinite) == (3, 1, 0)
    np.testing.assert_allclose(s.mean, 7.0 / 3.0)
    np.testing.assert_allclose(s.std, np.std([1.0, 2.0, 4.0]))
    # A NaN in a frame marked valid is excluded and reported, not averaged (nor zeroed).
    s = M.summarize(np.array([1.0, np.nan, 3.0]))
    assert (s.n_valid, s.n_excluded, s.n_nonfinite) == (2, 1, 1) and s.mean == 2.0
    # No valid frame: NaN, never 0.
    s = M.summarize(np.array([0.0, 0.0]), np.array([False, False]))
    assert np.isnan(s.mean) and s.n_valid == 0 and s.n_excluded == 2
    assert M.summarize(values, valid).as_dict()["n_excluded"] == 1
    # Per-axis values [N, 3]: column means over the valid rows.
    s = M.summarize(np.array([[1.0, 2.0, 3.0], [9.0, 9.0, 9.0], [3.0, 4.0, 5.0]]), [True, False, True])
    np.testing.assert_allclose(s.mean, [2.0, 3.0, 4.0])
    assert s.as_dict()["mean"] == [2.0, 3.0, 4.0]
    with pytest.raises(ValueError, match="mask"):
        M.summarize(values, valid[:2])


def test_masked_mean_jit_matches_summarize():
    values = jnp.array([1.0, 2.0, 100.0, 4.0])
    valid = jnp.array([True, True, False, True])
    mean, n = jax.jit(M.masked_mean)(values, valid)
    np.testing.assert_allclose(mean, 7.0 / 3.0, rtol=1e-6)
    assert int(n) == 3
    mean, n = M.masked_mean(jnp.ones((2, 3)), jnp.array([False, False]))
    assert np.isnan(np.asarray(mean)).all() and int(n) == 0
    mean, _ = M.masked_mean(jnp.array([[1.0, 2.0], [5.0, 5.0], [3.0, 4.0]]), jnp.array([True, False, True]))
    np.testing.assert_allclose(mean, [2.0, 3.0])


# ------------------------------------------------------------------ FID
def _closed_form(mu1, s1, mu2, s2):
    """||mu1-mu2||^2 + Tr(S1) + Tr(S2) - 2 Tr((S1^1/2 S2 S1^1/2)^1/2), by symmetric eigendecompositions."""
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r1 @ s2 @ r1
    tr = np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)))
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr)


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    d = 8
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    v1, v2 = rng.uniform(0.5, 2.0, size=d), rng.uniform(0.5, 2.0, size=d)
    # Diagonal Gaussians: ||mu1 - mu2||^2 + sum (sqrt(v1) - sqrt(v2))^2.
    want = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(v1) - np.sqrt(v2)) ** 2)
    np.testing.assert_allclose(M.frechet_distance(mu1, np.diag(v1), mu2, np.diag(v2)), want, rtol=1e-10)
    # Full covariances.
    a, b = rng.normal(size=(d, d)), rng.normal(size=(d, d))
    s1, s2 = a @ a.T + 0.1 * np.eye(d), b @ b.T + 0.1 * np.eye(d)
    np.testing.assert_allclose(M.frechet_distance(mu1, s1, mu2, s2), _closed_form(mu1, s1, mu2, s2), rtol=1e-8)
    np.testing.assert_allclose(M.frechet_distance(mu1, s1, mu1, s1), 0.0, atol=1e-9)
    with pytest.raises(ValueError, match="differ"):
        M.frechet_distance(mu1, s1, mu2[:3], s2)


def test_fid_from_features_self_and_shifted():
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(400, 16)) @ rng.normal(size=(16, 16))
    assert abs(M.fid_from_features(feats, feats)) < 1e-8
    shift = rng.normal(size=16)
    fid = M.fid_from_features(feats, feats + shift)  # same covariance: FID = ||shift||^2
    assert fid > 0
    np.testing.assert_allclose(fid, np.sum(shift**2), rtol=1e-7)
    # A scaled set: same mean, covariance c^2 S -> (1 - c)^2 Tr(S).
    c = 1.5
    s = np.cov(feats, rowvar=False)
    scaled = c * (feats - feats.mean(0)) + feats.mean(0)
    np.testing.assert_allclose(M.fid_from_features(feats, scaled), (1 - c) ** 2 * np.trace(s), rtol=1e-7)


def test_fid_from_features_fewer_samples_than_dims_is_exact():
    """N < D: singular covariances; the cross-Gram form gives the closed form (and ~0 for a set against itself)."""
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(10, 64)), 0.5 + 2.0 * rng.normal(size=(7, 64))
    want = _closed_form(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    # (the eigh closed form carries ~1e-8 relative error from sqrt of the ~1e-14 null-space eigenvalues)
    np.testing.assert_allclose(M.fid_from_features(a, b), want, rtol=1e-7)
    np.testing.assert_allclose(M.fid_from_features(b, a), M.fid_from_features(a, b), rtol=1e-12)
    assert abs(M.fid_from_features(a, a)) < 1e-9 and M.fid_from_features(a, a + 0.3) > 0
    np.testing.assert_allclose(M.fid_from_features(a, a + 0.3), 64 * 0.09, rtol=1e-9)


def test_frechet_distance_singular_fallback_and_imaginary_check(monkeypatch):
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 6))
    s1, s2 = a @ a.T + np.eye(6), np.eye(6)
    mu = np.zeros(6)
    real_sqrtm = M.linalg.sqrtm
    calls = []

    def nan_first(x):
        calls.append(x)
        return np.full_like(x, np.nan) if len(calls) == 1 else real_sqrtm(x)

    monkeypatch.setattr(M.linalg, "sqrtm", nan_first)
    got = M.frechet_distance(mu, s1, mu, s2, eps=1e-3)
    off = 1e-3 * np.eye(6)
    np.testing.assert_allclose(calls[1], (s1 + off) @ (s2 + off))  # the eps-offset retry
    want = np.trace(s1) + np.trace(s2) - 2 * np.trace(real_sqrtm((s1 + off) @ (s2 + off)).real)
    np.testing.assert_allclose(got, want, rtol=1e-10)
    monkeypatch.setattr(M.linalg, "sqrtm", lambda x: real_sqrtm(x) + 1e-6j)  # tiny imaginary part: dropped
    np.testing.assert_allclose(M.frechet_distance(mu, s1, mu, s1), 0.0, atol=1e-8)
    monkeypatch.setattr(M.linalg, "sqrtm", lambda x: real_sqrtm(x) + 0.5j)
    with pytest.raises(ValueError, match="imaginary component"):
        M.frechet_distance(mu, s1, mu, s2)


def test_streaming_statistics_match_numpy(tmp_path):
    rng = np.random.default_rng(3)
    feats = 1e3 + rng.normal(size=(103, 12)).astype(np.float32)  # large offset: checks the centred update
    valid = rng.uniform(size=103) > 0.2
    acc = M.ActivationStatistics(12)
    for lo, hi in [(0, 1), (1, 40), (40, 41), (41, 103)]:  # uneven batches, one of a single row
        acc.update(feats[lo:hi], valid[lo:hi])
    mu, sigma = M.activation_statistics(feats[valid])
    assert acc.n == int(valid.sum())
    np.testing.assert_allclose(acc.mean, mu, rtol=1e-12)
    np.testing.assert_allclose(acc.cov, sigma, rtol=1e-9, atol=1e-12)
    # Merging two accumulators equals one over everything; FID of streamed vs in-memory agree.
    a, b = M.ActivationStatistics(12).update(feats[:50]), M.ActivationStatistics(12).update(feats[50:])
    a.merge(b)
    whole = M.activation_statistics(feats)
    np.testing.assert_allclose(a.cov, whole[1], rtol=1e-9, atol=1e-12)
    shifted = M.ActivationStatistics(12).update(feats + 0.5)
    np.testing.assert_allclose(M.fid_from_statistics(a, shifted), M.fid_from_features(feats, feats + 0.5), rtol=1e-6)
    with pytest.raises(ValueError, match=r"\[B, 12\]"):
        acc.update(feats[:, :5])
    with pytest.raises(ValueError, match="at least 2"):
        _ = M.ActivationStatistics(12).update(feats[:1]).cov
    # Statistics files (pytorch-fid's .npz keys).
    M.save_statistics(tmp_path / "s.npz", mu, sigma)
    mu2, sigma2 = M.load_statistics(tmp_path / "s.npz")
    np.testing.assert_array_equal(mu2, mu)
    np.testing.assert_array_equal(sigma2, sigma)
    np.savez(tmp_path / "bad.npz", m=mu)
    with pytest.raises(UserError, match="'mu' and 'sigma'"):
        M.load_statistics(tmp_path / "bad.npz")
