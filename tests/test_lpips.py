"""LPIPS-alex v0.1 (issue 3): gradient parity against torch autograd, converter and errors (the golden arrays:
tests/test_parity.py)."""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import goldens as G
from converters import lpips
from converters.common import sha256
from jaxreenact import weights
from jaxreenact.common.errors import ConversionError, UserError
from jaxreenact.models.lpips import lpips_loss

NAME = "lpips_perceptual"
pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    pytest.importorskip("torch", reason="the converter reads PyTorch files")
    d = tmp_path_factory.mktemp("lpips")
    G.write_checkpoint(NAME, d)
    yield d / "alexnet-owt-7be5be79.pth", d / "alex.pth"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def net(files):

    return lpips.load_torch(*files)


def _xy():
    i = G.inputs(NAME)
    return jnp.asarray(G.image_input(i["x_u8"])), jnp.asarray(G.image_input(i["y_u8"]))


@pytest.mark.parametrize("range_255", [False, True])
def test_torch_autograd_small(net, range_255):
    """Loss and d loss / d x on new small (64x64, batch 3) inputs vs torch autograd of the reference."""
    torch = pytest.importorskip("torch")
    from torch_face_ref import LPIPSRef

    ref = LPIPSRef().eval()
    ref.load_weights(G.state_dict(NAME, "alexnet"), G.state_dict(NAME, "lin"))
    rng = np.random.default_rng(3)
    x = np.clip(rng.standard_normal((3, 64, 64, 3)) * 0.6, -1.2, 1.2).astype(np.float32)
    y = np.clip(x + rng.standard_normal(x.shape) * 0.3, -1.2, 1.2).astype(np.float32)
    xt = torch.from_numpy(G.nchw(x).copy()).requires_grad_(True)
    yt = torch.from_numpy(G.nchw(y).copy())
    if range_255:  # torch_range_1_to_255 as the paired-mode trainer applies it
        a, b = ((t.clamp(-1, 1) + 1) / (2 + 1e-5) * 255.0 for t in (xt, yt))
    else:
        a, b = xt, yt
    per_pair = ref(a, b)
    lt = per_pair.sum() / 3
    lt.backward()
    _, variables = net
    fn = jax.jit(jax.value_and_grad(lambda a, b: lpips_loss(variables, a, b, range_255=range_255)))
    lj, gj = fn(jnp.asarray(x), jnp.asarray(y))
    assert abs(float(lj) - float(lt.detach())) <= 1e-5
    gt = xt.grad.numpy()
    assert np.abs(G.nchw(gj) - gt).max() <= 1e-3 * np.abs(gt).max()


def test_reference_matches_goldens():
    torch = pytest.importorskip("torch")
    from torch_face_ref import LPIPSRef

    ref = LPIPSRef().eval()
    ref.load_weights(G.state_dict(NAME, "alexnet"), G.state_dict(NAME, "lin"))
    x, y = (torch.from_numpy(G.nchw(a).copy()) for a in _xy())
    with torch.no_grad():
        assert np.abs(ref(x, y).numpy() - G.expected(NAME)["per_sample"]).max() <= 1e-5


def test_cli_round_trip(files, net, tmp_path, capsys):

    dst = tmp_path / "lpips"
    lpips.main([str(files[0]), str(files[1]), str(dst)])
    assert "converted" in capsys.readouterr().out
    module, variables, meta = weights.load(dst, with_metadata=True)
    assert meta["sources"]["alexnet"]["sha256"] == sha256(files[0])
    assert meta["sources"]["lin"]["sha256"] == sha256(files[1])
    assert module == net[0]
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(net[1]), strict=True))


def test_layouts_and_errors(files, tmp_path):
    torch = pytest.importorskip("torch")

    alex = G.state_dict(NAME, "alexnet")
    lin = G.state_dict(NAME, "lin")
    full = dict(alex, **{"classifier.1.weight": torch.zeros(4096, 9216), "classifier.1.bias": torch.zeros(4096)})
    psp_heads = {k.replace("lin", "").replace("model.", ""): t for k, t in lin.items()}
    _, v, info = lpips.convert(full, psp_heads, "alexnet.pth", "heads.pth")
    assert info == {"lin_layout": "psp", "ignored_alexnet_keys": 2}
    _, v0, _ = lpips.convert(alex, lin, "a", "l")
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(v), jax.tree.leaves(v0), strict=True))

    with pytest.raises(ConversionError, match="swapped"):
        lpips.convert(lin, alex, "alex.pth", "alexnet.pth")
    with pytest.raises(ConversionError, match="unexpected key"):
        lpips.convert(dict(alex, **{"features.12.weight": torch.zeros(1)}), lin, "a", "l")
    with pytest.raises(ConversionError, match="unexpected key"):
        lpips.convert(alex, dict(lin, **{"lin5.model.1.weight": torch.zeros(1, 8, 1, 1)}), "a", "l")
    with pytest.raises(ConversionError, match="missing key 'lin3.model.1.weight'"):
        lpips.convert(alex, {k: t for k, t in lin.items() if not k.startswith("lin3")}, "a", "l")
    with pytest.raises(ConversionError, match="converters.arcface"):
        lpips.convert({"output_layer.3.weight": torch.zeros(1), "x": torch.zeros(1)}, lin, "a", "l")
    with pytest.raises(UserError, match="not found"):
        lpips.load_torch(tmp_path / "nope.pth", files[1])
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00\x01junk")
    with pytest.raises(ConversionError, match="not a readable PyTorch checkpoint"):
        lpips.load_torch(files[0], junk)
    with pytest.raises(SystemExit) as ex:
        lpips.main([str(files[0]), str(junk), str(tmp_path / "out")])
    assert ex.value.code == 2
