"""ArcFace IR-SE50 + identity loss (issue 3): torch autograd parity, converter round trip and errors (the golden
arrays: tests/test_parity.py)."""

from __future__ import annotations

import json
import pathlib
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import goldens as G
from converters import arcface
from converters.common import sha256, to_numpy
from jaxreenact import weights
from jaxreenact.common.errors import ConversionError, UserError
from jaxreenact.models.arcface import csim, identity_loss

NAME = "irse50_arcface"
pytestmark = pytest.mark.torch


def cos_rows(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    pytest.importorskip("torch", reason="the converter reads PyTorch files")
    d = tmp_path_factory.mktemp("arcface")
    path = G.write_checkpoint(NAME, d / "model_ir_se50.pth")
    yield path
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def net(ckpt):

    return arcface.load_torch(ckpt)


@pytest.fixture(scope="module")
def fns(net):
    """Each network compiled once per shape: embed (B=2, 112) and the identity loss + grad at 112 and 256."""

    module, variables = net
    embed = jax.jit(module.apply)

    def loss_fn(crop):
        return jax.jit(jax.value_and_grad(lambda v, x, y: identity_loss(v, x, y, crop=crop, module=module), 1))

    return embed, loss_fn(False), loss_fn(True)


@pytest.fixture(scope="module")
def ref(net):
    """The pure-torch reference with the same (golden) weights."""
    torch = pytest.importorskip("torch")
    from torch_face_ref import ArcFaceRef, load

    torch.manual_seed(0)
    return load(ArcFaceRef(), G.state_dict(NAME, "facenet"))


def test_csim(net):

    _, variables = net
    x = jnp.asarray(G.image_input(G.inputs(NAME)["face_u8"]))
    y = jnp.concatenate([x[1:], x[:1]])
    c = jax.jit(lambda v, a, b: csim(v, a, b, crop=False))(variables, x, y)
    assert c.shape == (2,)
    np.testing.assert_allclose(float(jnp.mean(1 - c)), float(G.expected(NAME)["id_loss_face112"]), atol=1e-5)


def _rand_images(seed, size):
    rng = np.random.default_rng(seed)
    base = rng.uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
    smooth = jax.image.resize(jnp.asarray(base), (2, size, size, 3), "linear")
    return np.asarray(smooth + 0.2 * rng.standard_normal((2, size, size, 3)).astype(np.float32))


@pytest.mark.parametrize("crop,size", [(False, 112), (True, 256)])
def test_torch_autograd(net, fns, ref, crop, size):
    """Embeddings, identity loss and its input gradient on new random inputs vs torch autograd."""
    torch = pytest.importorskip("torch")
    _, variables = net
    embed, loss112, loss256 = fns
    x = _rand_images(10 + size, size)
    y = _rand_images(20 + size, size)
    xt = torch.from_numpy(G.nchw(x).copy()).requires_grad_(True)
    yt = torch.from_numpy(G.nchw(y).copy())
    lt = ref.id_loss(xt, yt, crop=crop)
    lt.backward()
    gt = xt.grad.numpy()
    loss = loss256 if crop else loss112
    lj, gj = loss(variables, jnp.asarray(x), jnp.asarray(y))
    assert abs(float(lj) - float(lt.detach())) <= 1e-5
    # fp32 conditioning: torch fp32 itself is ~1.4e-3 of max|grad| away from a float64 run on noisy 256 inputs,
    # while JAX and torch fp32 agree to ~3e-4; hence 2e-3 of the max, plus a relative L2 bound.
    gj = G.nchw(gj)
    scale = np.abs(gt).max()
    assert np.abs(gj - gt).max() <= 2e-3 * scale, (np.abs(gj - gt).max(), scale)
    assert np.linalg.norm(gj - gt) <= 1e-3 * np.linalg.norm(gt)
    if not crop:
        with torch.no_grad():
            et = ref(torch.from_numpy(G.nchw(x).copy())).numpy()
        ej = np.asarray(embed(variables, jnp.asarray(x)))
        assert np.abs(ej - et).max() <= 1e-4
        assert cos_rows(ej, et).min() >= 0.99999


def test_reference_matches_goldens(ref):
    """The torch reference itself reproduces the upstream goldens (so it is a valid oracle)."""
    torch = pytest.importorskip("torch")
    i, e = G.inputs(NAME), G.expected(NAME)
    face = torch.from_numpy(G.nchw(G.image_input(i["face_u8"])).copy())
    with torch.no_grad():
        assert np.abs(ref(face).numpy() - e["emb_face112"]).max() <= 1e-4


def test_cli_round_trip(ckpt, net, tmp_path, capsys):

    dst = tmp_path / "arcface"
    arcface.main([str(ckpt), str(dst)])
    assert "converted" in capsys.readouterr().out
    module, variables, meta = weights.load(dst, with_metadata=True)
    assert meta["sources"]["model_ir_se50"]["sha256"] == sha256(ckpt)
    assert module == net[0]
    flat_a, flat_b = jax.tree.leaves(variables), jax.tree.leaves(net[1])
    assert jax.tree.structure(variables) == jax.tree.structure(net[1])
    assert all(np.array_equal(a, b) for a, b in zip(flat_a, flat_b, strict=True))
    json.loads((pathlib.Path(dst) / "jaxreenact.json").read_text())


def _sd():

    return to_numpy(G.state_dict(NAME, "facenet"), "golden")


def test_strict_keys_and_errors(tmp_path, ckpt):

    sd = _sd()
    sd["body.0.res_layer.0.num_batches_tracked"] = np.array(0)  # tolerated (newer torch files have them)
    module, _ = arcface.convert_state_dict(sd, "golden")
    assert module.num_layers == 50 and module.input_size == 112

    extra = dict(sd, **{"body.0.res_layer.9.weight": np.zeros(3, np.float32)})
    with pytest.raises(ConversionError, match="unexpected key"):
        arcface.convert_state_dict(extra, "golden")
    missing = dict(sd)
    del missing["body.5.res_layer.2.weight"]
    with pytest.raises(ConversionError, match="missing key 'body.5.res_layer.2.weight'"):
        arcface.convert_state_dict(missing, "golden")
    bad = dict(sd, **{"output_layer.4.bias": np.zeros(7, np.float32)})
    with pytest.raises(ConversionError, match="shape"):
        arcface.convert_state_dict(bad, "golden")

    with pytest.raises(UserError, match="not found"):
        arcface.load_torch(tmp_path / "nope.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a torch file")
    with pytest.raises(ConversionError, match="not a readable PyTorch checkpoint"):
        arcface.load_torch(junk)
    torch = pytest.importorskip("torch")
    heads = tmp_path / "alex.pth"
    torch.save(G.state_dict("lpips_perceptual", "lin"), heads)
    with pytest.raises(ConversionError, match="converters.lpips"):
        arcface.load_torch(heads)
    wrapped = tmp_path / "wrapped.pt"
    torch.save({"e": {"input_layer.0.weight": torch.zeros(64, 3, 3, 3)}}, wrapped)
    with pytest.raises(ConversionError, match="converters.e4e"):
        arcface.load_torch(wrapped)
    with pytest.raises(SystemExit) as ex:
        arcface.main([str(tmp_path / "nope.pth"), str(tmp_path / "out")])
    assert ex.value.code == 2
