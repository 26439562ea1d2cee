"""FLAME files and FLAME itself: the restricted unpickler (refuses foreign classes without running them), both
FLAME pickle variants, the torch-free landmark embedding, and FLAME on extreme poses against a torch reference."""

from __future__ import annotations

import os
import pickle
import subprocess

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from converters import deca as conv
from converters import safe_pickle
from jaxreenact.common.errors import UserError
from jaxreenact.models.flame import flame_forward
from jaxreenact.pose import rotations as rot


class _Evil:
    """Pickles as a call to `fn(*args)`; executing it would create the marker file."""

    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def _payloads(marker):
    cmd = f"touch {marker}"
    return {
        "os.system": pickle.dumps({"f": _Evil(os.system, (cmd,))}, protocol=2),
        "subprocess.call": pickle.dumps([_Evil(subprocess.call, (["touch", str(marker)],))], protocol=4),
        "builtins.eval": pickle.dumps(_Evil(eval, (f"open({str(marker)!r}, 'w')",)), protocol=0),
    }


@pytest.mark.parametrize("kind", ["os.system", "subprocess.call", "builtins.eval"])
def test_forbidden_class_refused_without_running(tmp_path, kind):
    marker = tmp_path / "PWNED"
    data = _payloads(marker)[kind]
    # the payload is live: plain pickle would run it (checked on a throw-away copy of the marker path)
    pkl = tmp_path / "generic_model.pkl"
    pkl.write_bytes(data)
    with pytest.raises(UserError, match="refusing to unpickle"):
        conv.load_flame(pkl)
    assert not marker.exists()
    with pytest.raises(UserError, match="refusing"):
        safe_pickle.safe_unpickle(data)
    assert not marker.exists()


def test_forbidden_class_in_npy_refused(tmp_path):
    marker = tmp_path / "PWNED"
    npy = tmp_path / "landmark_embedding.npy"
    np.save(npy, np.array({"static_lmk_faces_idx": _Evil(os.system, (f"touch {marker}",))}, dtype=object))
    with pytest.raises(UserError, match="posix.system|os.system|nt.system"):
        conv.load_landmark_embedding(npy)
    assert not marker.exists()


def test_payload_is_live_control(tmp_path):
    """Control: the same bytes through plain pickle do create the marker (so the refusal test means something)."""
    marker = tmp_path / "PWNED"
    pickle.loads(_payloads(marker)["os.system"])
    assert marker.exists()


def test_torch_tensors_rebuilt_without_torch():
    torch = pytest.importorskip("torch")
    t = {
        "a": torch.arange(12, dtype=torch.float32).reshape(3, 4).t(),  # non-contiguous strides
        "b": torch.arange(5, dtype=torch.int64)[1:],  # storage offset
        "c": torch.tensor(3.5, dtype=torch.float64),
    }
    got = safe_pickle.safe_unpickle(pickle.dumps(t))
    for k, v in t.items():
        np.testing.assert_array_equal(got[k], v.numpy(), err_msg=k)
        assert got[k].dtype == v.numpy().dtype


def test_tensor_outside_its_storage_refused():
    torch = pytest.importorskip("torch")
    from collections import OrderedDict

    st = torch.arange(4, dtype=torch.float32).__reduce_ex__(2)[1][0]  # the storage a tensor pickles with
    bad = _Evil(torch._utils._rebuild_tensor_v2, (st, 0, (10,), (1000,), False, OrderedDict()))
    with pytest.raises(UserError, match="outside its storage"):
        safe_pickle.safe_unpickle(pickle.dumps(bad))


def test_bad_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        conv.load_flame(tmp_path / "missing.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"not a pickle at all")
    with pytest.raises(UserError, match="not a readable pickle"):
        conv.load_flame(tmp_path / "junk.pkl")
    (tmp_path / "list.pkl").write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(UserError, match="not a FLAME model"):
        conv.load_flame(tmp_path / "list.pkl")
    (tmp_path / "dict.pkl").write_bytes(pickle.dumps({"f": np.zeros((3, 3))}))
    with pytest.raises(UserError, match="missing key"):
        conv.load_flame(tmp_path / "dict.pkl")
    np.save(tmp_path / "plain.npy", np.zeros(3))
    with pytest.raises(UserError, match="dtype"):
        conv.load_landmark_embedding(tmp_path / "plain.npy")


def test_sparse_stand_in_matches_scipy():
    sp = pytest.importorskip("scipy.sparse")
    rng = np.random.default_rng(0)
    dense = rng.normal(size=(5, 40)) * (rng.uniform(size=(5, 40)) < 0.2)
    for m in (sp.csc_matrix(dense), sp.csr_matrix(dense)):
        got = safe_pickle.plain(safe_pickle.safe_unpickle(pickle.dumps({"J": m}, protocol=4)))["J"]
        np.testing.assert_array_equal(got, dense)


# ---------------------------------------------------------------------------------------------------------------
# FLAME on the synthetic model: both pickle variants, and extreme poses against the torch reference
# ---------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def flame_setup():
    pytest.importorskip("torch", reason="the synthetic FLAME files are written by regen.py, which needs torch")
    from deca_fixtures import deca_files

    d = deca_files()
    a = conv.load_flame(d / "generic_model.pkl")
    b = conv.load_flame(d / "generic_model_chumpy.pkl")
    lmk = conv.load_landmark_embedding(d / "landmark_embedding.npy")
    return a, b, lmk


@pytest.mark.torch
def test_both_flame_variants_load_equal(flame_setup):
    a, b, lmk = flame_setup
    assert set(a) == set(b)
    for k in a:
        if isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            assert a[k] == b[k], k
    assert a["J_regressor"].shape == (5, 5023) and a["shapedirs"].shape == (5023, 3, 400)
    assert lmk["dynamic_lmk_faces_idx"].dtype == np.int64 and lmk["dynamic_lmk_bary_coords"].dtype == np.float32


@pytest.mark.torch
def test_flame_extreme_poses_match_torch_reference(flame_setup):
    torch = pytest.importorskip("torch")
    import deca_torch_ref as ref

    a, _, lmk = flame_setup
    fb = conv.flame_buffers(a, lmk)
    parents = conv.flame_parents(a)
    rng = np.random.default_rng(7)
    d = np.deg2rad
    pose = np.array(
        [
            [0, d(85), 0, 0.6, 0, 0],  # large yaw, wide-open jaw
            [0, -d(85), 0, 0.4, 0.1, 0],
            [0, d(120), 0, 0, 0, 0],  # beyond the LUT clamp
            [d(40), d(60), d(30), 0.8, 0, 0.2],
            [0, -d(39.5), 0, 0, 0, 0],  # rounding at the LUT edge
            [0, d(38.5), 0, 0, 0, 0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],  # exact zero (rodrigues' 1e-8)
            [np.pi * 0.99, 0, 0, 0, 0, 0],
        ],
        np.float32,
    )
    pose = np.concatenate([pose, rng.normal(0, 0.5, (4, 6)).astype(np.float32)])
    n = len(pose)
    shape = rng.normal(0, 1.5, (n, 100)).astype(np.float32)
    exp = rng.normal(0, 1.5, (n, 50)).astype(np.float32)
    out = jax.jit(lambda *x: flame_forward(fb, parents, *x))(shape, exp, pose)
    v, l2, l3, dyn = ref.Flame(fb, parents)(*(torch.from_numpy(x) for x in (shape, exp, pose)))
    np.testing.assert_allclose(np.asarray(out["vertices"]), v.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.asarray(out["landmarks2d"]), l2.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_allclose(np.asarray(out["landmarks3d"]), l3.numpy(), atol=1e-6, rtol=0)
    np.testing.assert_array_equal(np.asarray(out["dyn_lmk_faces_idx"]), dyn.numpy())
    assert np.all(np.isfinite(np.asarray(out["vertices"])))


def test_euler_gimbal_case_documented_and_finite():
    """|yaw| > 86.4° (|R20| > 0.998): upstream crashes (NameError); we return yaw ±90°, roll 0 and a finite pitch."""
    d = np.deg2rad
    aa = jnp.asarray(
        [[0, d(89.0), 0], [0, -d(89.0), 0], [0, d(90), 0], [0, d(86.0), 0], [d(20), d(88), 0]], jnp.float32
    )
    e = np.asarray(jax.jit(rot.axis_to_euler_deg)(aa))
    assert np.all(np.isfinite(e))
    # y-axis rotation by +θ gives yaw = −θ in this convention
    np.testing.assert_allclose(e[:3, 0], [-90.0, 90.0, -90.0], atol=1e-4)
    np.testing.assert_allclose(e[:3, 2], 0.0, atol=1e-6)
    np.testing.assert_allclose(e[3], [-86.0, 0.0, 0.0], atol=2e-3)  # still the regular branch
    # angles are never differentiated in training (computed without gradient); the regular branch still is finite
    g = jax.jit(jax.grad(lambda a: rot.axis_to_euler_deg(a).sum()))(aa[3:4])
    assert np.all(np.isfinite(np.asarray(g)))


def test_euler_conventions_and_quaternion_routes():
    e = np.asarray(jax.jit(rot.axis_to_euler_deg)(jnp.asarray([[0, 0.3, 0], [0.3, 0, 0], [0, 0, 0.3]], jnp.float32)))
    np.testing.assert_allclose(np.diag(e), [-17.188734, 17.188734, 17.188734], atol=1e-4)
    # quaternion route agrees with rodrigues away from zero
    r = jax.random.normal(jax.random.key(0), (64, 3)) * 0.8
    np.testing.assert_allclose(
        np.asarray(jax.jit(rot.axis_to_matrix)(r)), np.asarray(jax.jit(rot.batch_rodrigues)(r)), atol=2e-6
    )
    np.testing.assert_allclose(np.asarray(rot.euler_to_axis(jnp.zeros((2, 3)))), 0.0)
    np.testing.assert_allclose(np.asarray(rot.axis_to_matrix(jnp.zeros((1, 3))))[0], np.eye(3), atol=0)

    # euler→axis→euler through the authors' [aa1, −aa0, aa2] swap is exact at roll 0, approximate otherwise
    @jax.jit
    def roundtrip(ang):
        aa = rot.euler_to_axis(rot.deg2rad(ang))
        return rot.axis_to_euler_deg(jnp.stack([aa[:, 1], -aa[:, 0], aa[:, 2]], 1))

    got = np.asarray(roundtrip(jnp.asarray([[25.0, -10.0, 0.0], [30.0, 0.0, 10.0]], jnp.float32)))
    np.testing.assert_allclose(got[0], [25.0, -10.0, 0.0], atol=1e-4)
    np.testing.assert_allclose(got[1], [29.5, -5.73, 11.51], atol=0.01)
