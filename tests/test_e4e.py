"""e4e encoder (issue 3): both checkpoint layouts (their golden codes: tests/test_parity.py), torch parity,
converter round trip and errors.

The golden e4e files are 0.84 GB each: they are written once (module fixture) into a temporary folder and deleted
after this module.
"""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import goldens as G
from converters import e4e
from converters.common import sha256
from jaxreenact import weights
from jaxreenact.common.errors import ConversionError, UserError
from jaxreenact.models.e4e import Encoder4Editing

NAME = "e4e_vox256"
pytestmark = pytest.mark.torch


@pytest.fixture(scope="module")
def e4e_files(tmp_path_factory):
    pytest.importorskip("torch", reason="the converter reads PyTorch files")
    d = tmp_path_factory.mktemp("e4e")
    G.write_checkpoint(NAME, d)  # both layouts, tensors drawn once
    yield d / "e4e_official.pt", d / "e4e_psp_layout.pt"
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def official(e4e_files):

    return e4e.load_torch(e4e_files[0], return_info=True)


@pytest.fixture(scope="module")
def enc_sd():
    """The golden encoder weights as torch tensors (drawn once per module)."""
    pytest.importorskip("torch")
    return dict(G.state_dict(NAME, "enc"))


@pytest.fixture(scope="module")
def encode():
    """One compiled forward per (batch shape, add_latent_avg)."""

    return jax.jit(
        lambda v, x, add: Encoder4Editing(has_latent_avg="latent_avg" in v["buffers"]).apply(v, x, add),
        static_argnums=2,
    )


def test_official_layout(official):
    """The official layout converts to an encoder without latent_avg (its golden codes: tests/test_parity.py)."""
    module, variables, info = official
    assert info["source_layout"] == "official"
    assert module.image_resolution == 256 and not module.has_latent_avg and "latent_avg" not in variables["buffers"]


def test_psp_layout(e4e_files, official):
    module, variables, info = e4e.load_torch(e4e_files[1], return_info=True)
    assert info["source_layout"] == "psp" and module.has_latent_avg
    assert variables["buffers"]["latent_avg"].shape == (14, 512)
    # same encoder weights as the official layout
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), variables["params"], official[1]["params"])
    assert all(jax.tree.leaves(same))


def test_torch_reference_random_input(official, encode, enc_sd):
    """A new input (batch 1) against the pure-torch reference with the same weights."""
    torch = pytest.importorskip("torch")
    from torch_face_ref import E4ERef, load

    torch.manual_seed(0)
    ref = load(E4ERef(), enc_sd)
    rng = np.random.default_rng(7)
    x = np.tanh(rng.standard_normal((1, 256, 256, 3))).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.from_numpy(G.nchw(x).copy())).numpy()
        golden_in = torch.from_numpy(G.nchw(G.image_input(G.inputs(NAME)["x_u8"])).copy())
        assert np.abs(ref(golden_in).numpy() - G.expected(NAME)["codes"]).max() <= 1e-4  # the oracle is valid
    got = np.asarray(encode(official[1], jnp.asarray(x), False))
    assert np.abs(got - want).max() <= 1e-4


@pytest.mark.parametrize("chunked", [True, False])
def test_golden_codes_chunked_or_not(official, chunked):
    """Both paths of `common.mesh.cpu_chunks` (one image at a time, as a 1-device CPU runs by default, and the whole
    batch, as accelerators do) give the golden codes at the network tolerance."""
    from jaxreenact.common.mesh import cpu_chunks

    module, variables, _ = official
    x = jnp.asarray(G.image_input(G.inputs(NAME)["x_u8"]))
    f = jax.jit(lambda v, x: cpu_chunks(lambda a: module.apply(v, a), x, rows=1, chunked=chunked))
    assert ("while" in f.lower(variables, x).as_text()) == chunked  # lax.map lowers to a loop
    assert np.abs(np.asarray(f(variables, x)) - G.expected(NAME)["codes"]).max() <= 1e-4


def test_cli_round_trip(e4e_files, official, tmp_path, capsys):

    dst = tmp_path / "e4e"
    e4e.main([str(e4e_files[0]), str(dst)])
    out = capsys.readouterr().out
    assert "'official' layout" in out
    module, variables, meta = weights.load(dst, with_metadata=True)
    assert meta["source_layout"] == "official"
    assert meta["sources"]["e4e"]["sha256"] == sha256(e4e_files[0])
    assert module == official[0]
    assert jax.tree.structure(variables) == jax.tree.structure(official[1])
    assert all(
        np.array_equal(a, b) for a, b in zip(jax.tree.leaves(variables), jax.tree.leaves(official[1]), strict=True)
    )


def test_layouts_and_strict_keys(enc_sd):
    torch = pytest.importorskip("torch")

    sd = enc_sd
    psp = {"state_dict": {"encoder." + k: v for k, v in sd.items()}, "latent_avg": torch.zeros(512), "opts": {}}
    psp["state_dict"]["decoder.style.1.weight"] = torch.zeros(4)  # real pSp files carry the generator
    m, v, info = e4e.convert(psp, "psp.pt")
    assert info["source_layout"] == "psp" and "decoder" in info["notes"][0]
    assert v["buffers"]["latent_avg"].shape == (14, 512)  # [512] broadcast to every row

    bad = dict(psp, state_dict=dict(psp["state_dict"], **{"discriminator.w": torch.zeros(1)}))
    with pytest.raises(ConversionError, match="neither 'encoder"):
        e4e.convert(bad, "psp.pt")
    extra = {"e": dict(sd, **{"styles.0.extra.weight": torch.zeros(1)})}
    with pytest.raises(ConversionError, match="unexpected key"):
        e4e.convert(extra, "e.pt")
    missing = {"e": {k: t for k, t in sd.items() if k != "latlayer2.bias"}}
    with pytest.raises(ConversionError, match="missing key 'latlayer2.bias'"):
        e4e.convert(missing, "e.pt")
    with pytest.raises(ConversionError, match="converters.stylegan2"):
        e4e.convert({"g_ema": {}, "latent_avg": torch.zeros(512)}, "g.pt")
    with pytest.raises(ConversionError, match="not an e4e checkpoint"):
        e4e.convert(dict(G.state_dict("irse50_arcface", "facenet")), "arc.pth")


def test_file_errors(tmp_path):

    with pytest.raises(UserError, match="not found"):
        e4e.load_torch(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not torch")
    with pytest.raises(ConversionError, match="not a readable PyTorch checkpoint"):
        e4e.load_torch(junk)
    with pytest.raises(SystemExit) as ex:
        e4e.main([str(junk), str(tmp_path / "out")])
    assert ex.value.code == 2
