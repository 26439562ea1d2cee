"""DECA coarse path: Euler angles against the deca_coarse golden (its other arrays: tests/test_parity.py), the
converter, and gradients of the shape/eye/mouth losses w.r.t. the input image against a PyTorch reference."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from deca_fixtures import deca_files, deca_model

import goldens
from converters import deca as conv
from converters.deca import convert_e_flame
from jaxreenact import weights
from jaxreenact.common.errors import ConversionError
from jaxreenact.pose.deca import geometry as deca_geometry
from jaxreenact.pose.rotations import axis_to_euler_deg, euler_batch_call_quirk
from jaxreenact.training import losses

pytestmark = pytest.mark.torch
NAME = "deca_coarse"


@pytest.fixture(scope="module")
def gold():
    return goldens.inputs(NAME), goldens.expected(NAME), goldens.spec(NAME)["expected"]


@pytest.fixture(scope="module")
def deca():
    pytest.importorskip("torch", reason="the golden DECA checkpoint is written with torch")
    module, variables, info = deca_model()
    return module, variables, info


def _close(got, exp, spec, key, name=None):
    tol = spec[key]["tol_max_abs"]
    err = float(np.max(np.abs(np.asarray(got, np.float64) - exp)))
    assert err <= tol, f"{name or key}: max abs err {err:.3g} > {tol}"
    return err


def test_euler_angles(gold):
    inp, exp, spec = gold
    aa = jnp.asarray(inp["pose"][:, :3])
    err = _close(axis_to_euler_deg(aa), exp["euler_deg"], spec, "euler_deg")
    assert err <= 1e-4  # the goal, tighter than the golden's tolerance
    _close(euler_batch_call_quirk(aa), exp["euler_deg_batch_call_quirk"], spec, "euler_deg_batch_call_quirk")


def test_converter_info_chumpy_variant_and_roundtrip(deca, tmp_path):

    module, variables, info = deca
    assert info["ignored"] == ["D_detail", "E_detail"]
    d = deca_files()
    # the py2/chumpy FLAME pickle gives the same buffers
    flame = conv.load_flame(d / "generic_model_chumpy.pkl")
    fb = conv.flame_buffers(flame, conv.load_landmark_embedding(d / "landmark_embedding.npy"))
    for k, v in fb.items():
        np.testing.assert_array_equal(v, np.asarray(variables["buffers"]["flame"][k]), err_msg=k)
    # CLI → Orbax → weights.load
    dst = tmp_path / "deca"
    conv.main([str(d / "deca_model.tar"), str(d / "generic_model.pkl"), str(d / "landmark_embedding.npy"), str(dst)])
    m2, v2 = weights.load(dst)
    assert m2 == module
    flat1 = jax.tree_util.tree_leaves_with_path(variables)
    flat2 = dict(jax.tree_util.tree_leaves_with_path(v2))
    for path, leaf in flat1:
        np.testing.assert_array_equal(np.asarray(leaf), np.asarray(flat2[path]), err_msg=str(path))


def test_e_flame_strict_keys(deca):

    sd = {k: v.numpy() for k, v in goldens.state_dict(NAME, "E_flame").items()}
    convert_e_flame(sd, "ok")
    missing = dict(sd)
    missing.pop("encoder.layer3.2.bn2.running_var")
    with pytest.raises(ConversionError, match="layer3.2.bn2.running_var"):
        convert_e_flame(missing, "missing")
    extra = dict(sd, **{"encoder.fc.weight": np.zeros((1000, 2048), np.float32)})
    with pytest.raises(ConversionError, match="encoder.fc.weight"):
        convert_e_flame(extra, "extra")


def test_loss_gradients_wrt_image_match_torch(deca, gold):
    """jax.grad of shape + eye + mouth losses w.r.t. the DECA input image vs torch autograd (pure-torch reference)."""
    torch = pytest.importorskip("torch")
    import deca_torch_ref as ref

    module, variables, _ = deca
    inp, exp, _ = gold
    x = goldens.image_input(inp["image_u8"], deca=True)
    # GT geometry: golden FLAME parameters of two samples (fixed), camera [8, 0, 0]
    gt_s, gt_e, gt_p = (jnp.asarray(inp[k][[2, 3]]) for k in ("shape", "exp", "pose"))
    gt = deca_geometry(module, variables, gt_s, gt_e, gt_p)

    def total(img):
        codes = module.apply(variables, img)
        g = deca_geometry(module, variables, codes["shape"], codes["exp"], codes["pose"])
        out = losses.shape_losses(gt, g)
        return jnp.stack([out["shape"], out["eye"], out["mouth"]])

    grads_jax = np.asarray(jax.jit(jax.jacrev(total))(jnp.asarray(x)))  # [3, B, H, W, C]

    fb = {k: np.asarray(v) for k, v in variables["buffers"]["flame"].items()}
    flame_t = ref.Flame(fb, module.parents)
    sd = {k: t.float() for k, t in goldens.state_dict(NAME, "E_flame").items()}
    cam8 = torch.tensor([[8.0, 0.0, 0.0]]).expand(2, 3)
    with torch.no_grad():
        gv, gl, _, _ = flame_t(*(torch.from_numpy(np.array(a)) for a in (gt_s, gt_e, gt_p)))
        gt_tv, gt_l2 = ref.image_space(gv, cam8), ref.image_space(gl, cam8)[:, :, :2]
    xt = torch.from_numpy(np.transpose(x, (0, 3, 1, 2)).copy()).requires_grad_(True)
    prm = ref.e_flame(sd, xt)
    v, l2, _, _ = flame_t(prm[:, :100], prm[:, 150:200], prm[:, 200:206])
    tv, l2 = ref.image_space(v, cam8), ref.image_space(l2, cam8)[:, :, :2]
    torch_losses = {
        "shape": torch.nn.functional.l1_loss(gt_tv, tv),
        "eye": ref.pair_loss(gt_l2, l2, losses.EYE_PAIRS),
        "mouth": ref.pair_loss(gt_l2, l2, losses.MOUTH_PAIRS),
    }
    for i, which in enumerate(("shape", "eye", "mouth")):
        (g,) = torch.autograd.grad(torch_losses[which], xt, retain_graph=True)
        gt_grad = np.transpose(g.numpy(), (0, 2, 3, 1))
        # Relative L2 error. A few isolated pixels differ more (ReLU gates of activations within fp32 noise of zero
        # switch differently): torch fp32 itself is 3.3e-4 from a float64 torch run here, JAX fp32 2.9e-4.
        assert np.abs(gt_grad).max() > 0
        err = np.linalg.norm(grads_jax[i] - gt_grad) / np.linalg.norm(gt_grad)
        assert err < 1e-3, f"{which}: grad relative L2 error {err:.3g}"


def test_torch_reference_matches_the_golden(deca, gold):
    """The pure-PyTorch reference the gradient and extreme-pose tests trust (deca_torch_ref) reproduces the golden
    itself: E_flame's parameters, FLAME (also with neck and eye joints), the decode projections and the losses."""
    torch = pytest.importorskip("torch")
    import deca_torch_ref as ref

    module, variables, _ = deca
    inp, exp, spec = gold
    x = goldens.image_input(inp["image_u8"], deca=True)
    sd = {k: t.float() for k, t in goldens.state_dict(NAME, "E_flame").items()}
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    fb = {k: np.asarray(v) for k, v in variables["buffers"]["flame"].items()}
    flame_t = ref.Flame(fb, module.parents)
    s, e, p, cam = (t(inp[k]) for k in ("shape", "exp", "pose", "cam"))
    with torch.no_grad():
        prm = ref.e_flame(sd, t(np.transpose(x, (0, 3, 1, 2))))
        v, l2, l3, dyn = flame_t(s, e, p)
        nv, nl2, nl3, _ = flame_t(s, e, p, eye_pose=t(inp["eye_pose"]), neck_pose=t(inp["neck_pose"]))
        cam8 = torch.tensor([[8.0, 0.0, 0.0]]).expand(len(s), 3)
        tv8, l28 = ref.image_space(v, cam8), ref.image_space(l2, cam8)[:, :, :2]
    _close(prm.numpy(), exp["params"], spec, "params", "reference E_flame")
    for k, got in (("flame_vertices", v), ("flame_landmarks2d", l2), ("flame_landmarks3d", l3),
                   ("neck_eye_vertices", nv), ("neck_eye_landmarks2d", nl2), ("neck_eye_landmarks3d", nl3),
                   ("decode_landmarks2d", ref.image_space(l2, cam)[:, :, :2]),
                   ("decode_landmarks3d", ref.image_space(l3, cam)),
                   ("decode_trans_verts", ref.image_space(v, cam))):  # fmt: skip
        _close(got.numpy(), exp[k], spec, k, f"reference {k}")
    np.testing.assert_array_equal(dyn.numpy(), exp["dyn_lmk_faces_idx"])
    perm = [1, 2, 3, 4, 5, 0]
    got = {
        "shape": torch.nn.functional.l1_loss(tv8, tv8[perm]),
        "eye": ref.pair_loss(l28, l28[perm], losses.EYE_PAIRS),
        "mouth": ref.pair_loss(l28, l28[perm], losses.MOUTH_PAIRS),
    }
    for k, val in got.items():
        _close(val.numpy(), exp[f"loss_{k}_cam8"], spec, f"loss_{k}_cam8", f"reference loss_{k}_cam8")


def test_cli_errors_are_one_line(tmp_path, capsys):

    d = deca_files()
    with pytest.raises(SystemExit) as ex:
        conv.main([str(tmp_path / "nope.tar"), str(d / "generic_model.pkl"), str(d / "landmark_embedding.npy"), "x"])
    assert ex.value.code == 2
    assert "nope.tar" in capsys.readouterr().err
