"""Pose vector p, shift units (METHOD.md 2.4 table), Δp and the 50 % single-attribute GT (4.3), the DECA crop
and the kornia-0.4.1 warp (3.3)."""

from __future__ import annotations

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.common.errors import UserError
from jaxreenact.face.deca_crop import bbox2point, bbox_from_landmarks, crop_matrix, deca_crop, deca_input
from jaxreenact.nn.warp import grid_sample_bilinear, kornia_sample_positions, warp_affine_kornia
from jaxreenact.pose import params as P
from jaxreenact.pose import rotations as rot

DATA = pathlib.Path(__file__).parent / "data"

VOX_A = [39.152752, 3.581121, 4.692040, 13.614507, 6.056692, 3.723382, 4.657507, 5.511897, 4.603068, 5.989007]
VOX_A += [4.535992, 4.819570]
VOX_B = [-1.626697, -2.430069, -1.515132, -2.577999, -4.028432, 1.035693, 0.290712, 0.200821, 1.723834, -0.507745]
VOX_B += [-2.490429, 2.026995]
FFHQ_A = [38.222224, 2.492116, 3.998589, 15.654086, 6.133461, 3.623275, 4.687017, 5.095928, 4.877302, 5.419803]
FFHQ_A += [5.290651, 4.601763, 4.278397]


def test_ranges_coefficients_match_method_table():
    u = P.shift_units(P.load_ranges(DATA / "ranges_voxceleb.npy"), P.VOXCELEB)
    np.testing.assert_allclose(u.a[:3], [0.15, 0.3, 0.3])
    np.testing.assert_allclose(u.a[3:], VOX_A, atol=1e-6)
    np.testing.assert_allclose(u.b[3:], VOX_B, atol=1e-6)
    assert u.is_angle.tolist() == [True] * 3 + [False] * 12
    f = P.shift_units(P.load_ranges(DATA / "ranges_ffhq.npy"), P.FFHQ)
    np.testing.assert_allclose(f.a[:2], [0.15, 0.3])
    np.testing.assert_allclose(f.a[2:], FFHQ_A, atol=1e-6)
    assert abs(f.b[2] - (-3.303580)) < 1e-6
    assert P.FFHQ.jaw == 2 and P.FFHQ.num_expressions == 12 and P.VOXCELEB.num_expressions == 11
    # the packaged copies are the same files
    np.testing.assert_array_equal(
        P.load_ranges(P.default_ranges_path("voxceleb")), np.load(DATA / "ranges_voxceleb.npy")
    )


def test_load_ranges_errors(tmp_path):
    with pytest.raises(UserError, match="not found"):
        P.load_ranges(tmp_path / "nope.npy")
    np.save(tmp_path / "bad.npy", np.zeros((53, 2)))
    with pytest.raises(UserError, match=r"\[54, 2\]"):
        P.load_ranges(tmp_path / "bad.npy")
    np.save(tmp_path / "obj.npy", np.array({"a": 1}, dtype=object), allow_pickle=True)
    with pytest.raises(UserError, match="not a ranges"):
        P.load_ranges(tmp_path / "obj.npy")
    r = np.load(DATA / "ranges_voxceleb.npy").copy()
    r[7] = [1.0, 1.0]
    np.save(tmp_path / "flat.npy", r)
    with pytest.raises(UserError, match="min < max"):
        P.load_ranges(tmp_path / "flat.npy")
    (tmp_path / "txt.npy").write_text("hello")
    with pytest.raises(UserError):
        P.load_ranges(tmp_path / "txt.npy")


@pytest.fixture(scope="module")
def units():
    return P.shift_units(P.load_ranges(DATA / "ranges_voxceleb.npy"), P.VOXCELEB)


def _params(key, b):
    k1, k2 = jax.random.split(key)
    pose = jax.random.normal(k1, (b, 6)) * jnp.array([0.2, 0.3, 0.1, 0.05, 0.01, 0.01])
    pose = pose.at[:, 3].set(jnp.abs(pose[:, 3]))
    exp = jax.random.normal(k2, (b, 50)) * 0.5
    return {"pose": pose, "exp": exp}


def test_p_vector_and_delta_p(units):
    src, tgt = _params(jax.random.key(1), 4), _params(jax.random.key(2), 4)
    ps, pt = P.params_to_p(src), P.params_to_p(tgt)
    assert ps.shape == (4, 15)
    ang = rot.axis_to_euler_deg(src["pose"][:, :3])
    np.testing.assert_allclose(ps[:, :3], ang)
    np.testing.assert_allclose(ps[:, 3], src["pose"][:, 3])
    np.testing.assert_allclose(ps[:, 4:], src["exp"][:, :11])
    dp = np.asarray(P.delta_p(ps, pt, units))
    want = np.concatenate(
        [(pt[:, :3] - ps[:, :3]) * np.array([0.15, 0.3, 0.3]), (pt[:, 3:] - ps[:, 3:]) * units.a[3:]], 1
    )
    np.testing.assert_allclose(dp, want, rtol=1e-4, atol=1e-5)
    u = P.to_units(ps, units)
    np.testing.assert_allclose(P.from_units(u, units), ps, rtol=1e-5, atol=1e-5)
    pf = P.params_to_p(src, P.FFHQ)
    assert pf.shape == (4, 15)
    np.testing.assert_allclose(pf[:, 2], src["pose"][:, 3])
    np.testing.assert_allclose(pf[:, 3:], src["exp"][:, :12])


def test_single_attribute_sampling_and_gt(units):
    b = 64
    src, tgt = _params(jax.random.key(3), b), _params(jax.random.key(4), b)
    ps, pt = P.params_to_p(src), P.params_to_p(tgt)
    angles = rot.axis_to_euler_deg(src["pose"][:, :3])

    @jax.jit
    def step(key, ps, pt, src, tgt, angles):
        dp, idx = P.delta_p_50(key, ps, pt, units)
        return dp, idx, P.gt_params_50(src, tgt, angles, dp, idx, units)

    dp, idx, gt = step(jax.random.key(5), ps, pt, src, tgt, angles)
    dp, idx = np.asarray(dp), np.asarray(idx)
    h = b // 2
    np.testing.assert_allclose(dp[:h], np.asarray(P.delta_p(ps[:h], pt[:h], units)), atol=1e-6)
    assert np.all(idx[:h] == -1) and np.all((idx[h:] >= 0) & (idx[h:] < 15))
    assert len(set(idx[h:].tolist())) > 5
    nz = dp[h:] != 0
    assert np.all(nz.sum(1) == 1) and np.all(np.argmax(nz, 1) == idx[h:])
    # the target lands in [-6, 6] shift units
    start = np.take_along_axis(np.asarray(P.to_units(ps[h:], units)), idx[h:, None], 1)[:, 0]
    tgt_units = start + dp[h:][np.arange(h), idx[h:]]
    assert np.all(tgt_units >= -6 - 1e-4) and np.all(tgt_units <= 6 + 1e-4)
    # GT: first half = target; second half = source with only that attribute moved
    np.testing.assert_array_equal(np.asarray(gt["pose"][:h]), np.asarray(tgt["pose"][:h]))
    np.testing.assert_array_equal(np.asarray(gt["exp"][:h]), np.asarray(tgt["exp"][:h]))
    gp, ge = np.asarray(gt["pose"][h:]), np.asarray(gt["exp"][h:])
    sp, se = np.asarray(src["pose"][h:]), np.asarray(src["exp"][h:])
    for i, d in enumerate(idx[h:]):
        if d >= 4:
            e = d - 4
            np.testing.assert_allclose(units.a[d] * ge[i, e] + units.b[d], tgt_units[i], atol=1e-4)
            np.testing.assert_array_equal(np.delete(ge[i], e), np.delete(se[i], e))
            np.testing.assert_array_equal(gp[i], sp[i])
        elif d == 3:
            np.testing.assert_allclose(units.a[3] * gp[i, 3] + units.b[3], tgt_units[i], atol=1e-4)
            np.testing.assert_array_equal(np.delete(gp[i], 3), np.delete(sp[i], 3))
            np.testing.assert_array_equal(ge[i], se[i])
        else:
            np.testing.assert_array_equal(gp[i, 3:], sp[i, 3:])
            np.testing.assert_array_equal(ge[i], se[i])
            # angle GT through the authors' euler→axis (quaternion) route and the [aa1, −aa0, aa2] swap
            a = np.asarray(angles[h + i]).copy()
            a[d] = tgt_units[i] * (40.0 if d == 0 else 20.0) / 6.0
            aa = np.asarray(rot.euler_to_axis(rot.deg2rad(jnp.asarray(a[None], jnp.float32))))[0]
            np.testing.assert_allclose(gp[i, :3], [aa[1], -aa[0], aa[2]], atol=1e-5)
    with pytest.raises(UserError, match="even"):
        P.delta_p_50(jax.random.key(0), ps[:3], pt[:3], units)


def test_grid_sample_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    img = rng.normal(size=(2, 37, 41, 3)).astype(np.float32)
    grid = rng.uniform(-1.2, 1.2, (2, 20, 30, 2)).astype(np.float32)
    for ac in (False, True):
        got = np.asarray(grid_sample_bilinear(jnp.asarray(img), jnp.asarray(grid), ac))
        ref = torch.nn.functional.grid_sample(
            torch.from_numpy(img).permute(0, 3, 1, 2), torch.from_numpy(grid), align_corners=ac
        )
        np.testing.assert_allclose(got, ref.permute(0, 2, 3, 1).numpy(), atol=1e-5)


def test_kornia_warp_follows_method_formula():
    rng = np.random.default_rng(1)
    lmk = rng.uniform(60, 200, (2, 68, 2))
    theta = crop_matrix(lmk)
    ix, iy = kornia_sample_positions(jnp.asarray(theta[:, :2]), (256, 256), (224, 224))
    for b in range(2):
        mi = np.linalg.inv(theta[b].astype(np.float64))
        j = np.arange(224)
        xd = ((2 * j + 1) / 224 - 1 + 1) * 223 / 2
        gx, gy = np.meshgrid(xd, xd)
        src = np.stack([gx, gy, np.ones_like(gx)], -1) @ mi.T
        fx = ((2 * src[..., 0] / 255 - 1 + 1) * 256 - 1) / 2
        fy = ((2 * src[..., 1] / 255 - 1 + 1) * 256 - 1) / 2
        np.testing.assert_allclose(np.asarray(ix[b]), fx, atol=2e-4)
        np.testing.assert_allclose(np.asarray(iy[b]), fy, atol=2e-4)
    # the warp samples the image at exactly those positions (a linear ramp image reads back x)
    ramp = jnp.broadcast_to(jnp.arange(256, dtype=jnp.float32)[None, None, :, None], (2, 256, 256, 1))
    out = np.asarray(warp_affine_kornia(ramp, jnp.asarray(theta), (224, 224)))[..., 0]
    inside = (np.asarray(ix) > 0) & (np.asarray(ix) < 255) & (np.asarray(iy) > 0) & (np.asarray(iy) < 255)
    np.testing.assert_allclose(out[inside], np.asarray(ix)[inside], atol=1e-3)


def test_crop_matrix_matches_skimage_similarity():
    skt = pytest.importorskip("skimage.transform")
    rng = np.random.default_rng(2)
    lmk = rng.uniform(40, 220, (3, 68, 2))
    th = crop_matrix(lmk)
    for b in range(3):
        l, t, r, bt = bbox_from_landmarks(lmk[b])
        old, c = bbox2point(l, r, t, bt)
        s = int(old * 1.25)
        src = np.array([[c[0] - s / 2, c[1] - s / 2], [c[0] - s / 2, c[1] + s / 2], [c[0] + s / 2, c[1] - s / 2]])
        ref = skt.estimate_transform("similarity", src, np.array([[0, 0], [0, 223], [223, 0]])).params
        np.testing.assert_allclose(th[b], ref.astype(np.float32), atol=1e-5)
    np.testing.assert_allclose(crop_matrix(lmk[0]), th[0])


def test_deca_input_is_differentiable():
    rng = np.random.default_rng(3)
    img = jnp.asarray(rng.uniform(-1, 1, (1, 256, 256, 3)).astype(np.float32))
    theta = crop_matrix(rng.uniform(60, 200, (1, 68, 2)))
    x = deca_input(img, theta)
    assert x.shape == (1, 224, 224, 3) and float(x.min()) >= 0 and float(x.max()) <= 1.0
    np.testing.assert_allclose(
        np.asarray(deca_crop((jnp.clip(img, -1, 1) + 1) / (2 + 1e-5) * 255, theta)) / 255, np.asarray(x), atol=1e-6
    )
    g = jax.grad(lambda im: deca_input(im, theta).sum())(img)
    assert np.all(np.isfinite(np.asarray(g))) and float(jnp.abs(g).sum()) > 0
