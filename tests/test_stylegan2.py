"""StyleGAN2 generator: the converted golden checkpoint (stylegan2_vox256; its golden arrays are checked by
tests/test_parity.py), a PyTorch reference at other sizes / channel multipliers / truncations, converter
strictness, the CLI round trip and `python -m jaxreenact.generate`."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import goldens
from converters import stylegan2
from converters.common import sha256
from converters.stylegan2 import convert_state_dict
from jaxreenact import generate, weights
from jaxreenact.common.errors import ConversionError, UserError
from jaxreenact.common.images import to_uint8
from jaxreenact.models.stylegan2 import mean_latent_z

torch = pytest.importorskip("torch", reason="converter tests need torch (pip install torch==2.13.0)")
# Our own helper, not an optional package: if it cannot be imported that is an error, never a skip of every test.
from torch_reference import stylegan2 as ref  # noqa: E402

pytestmark = pytest.mark.torch

NAME = "stylegan2_vox256"


def maxabs(a, b):
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="session")
def golden_file(tmp_path_factory):
    return goldens.write_checkpoint(NAME, tmp_path_factory.mktemp("sg2") / "stylegan2-voxceleb.pt")


@pytest.fixture(scope="session")
def golden_model(golden_file):

    return stylegan2.load_torch(golden_file)


def test_config_inferred(golden_model):
    module, variables = golden_model
    assert (module.size, module.channel_multiplier, module.n_mlp, module.style_dim) == (256, 1, 8, 512)
    assert module.n_latent == 14 and module.num_layers == 13 and module.resolution == 256
    assert variables["buffers"]["noise_12"].shape == (1, 256, 256, 1)
    avg = goldens.state_dict(NAME, "avg")["latent_avg"].numpy()
    np.testing.assert_array_equal(variables["buffers"]["latent_avg"], avg)


def test_public_call_forms(golden_model):
    """The plain contract calls: synthesis method, __call__ with python psi, default truncation centre."""
    module, variables = golden_model
    inp = goldens.inputs(NAME)
    w = module.apply(variables, inp["z"], method=module.mapping)
    lat = module.apply(variables, w, 0.7, inp["truncation_latent"], method=module.truncate)
    np.testing.assert_allclose(
        np.repeat(lat[:, None], 14, 1), goldens.expected(NAME)["latent_from_z_trunc"], atol=1e-5, rtol=0
    )
    np.testing.assert_array_equal(module.apply(variables, inp["wplus"], 1.0, method=module.truncate), inp["wplus"])
    # No truncation_latent -> buffers/mean_latent.
    mean = variables["buffers"]["mean_latent"]
    got = module.apply(variables, w, 0.5, None, method=module.truncate)
    np.testing.assert_allclose(got, mean + 0.5 * (w - mean), atol=1e-6, rtol=0)


@pytest.mark.parametrize("impl", ["dilated"])
def test_golden_with_each_upsampling(golden_model, impl):
    """The transposed-convolution implementation GPUs and TPUs run by default reproduces the golden's W+ image and
    its first upsampled ToRGB at the network tolerance (1e-4). The CPU's ("polyphase", "auto" here) is the one
    tests/test_parity.py checks on every golden array."""
    module, variables = golden_model
    m = module.clone(upsample_impl=impl)
    inp, exp = goldens.inputs(NAME), goldens.expected(NAME)

    def run(v, w):
        img, st = m.apply(v, w, method=m.synthesis, mutable=["intermediates"])
        return img, st["intermediates"]["to_rgbs_0_out"][0]

    img, rgb0 = jax.jit(run)(variables, inp["wplus"])
    assert maxabs(img, exp["img_from_wplus"].transpose(0, 2, 3, 1)) <= 1e-4
    assert maxabs(rgb0, exp["wplus_to_rgbs0_out"].transpose(0, 2, 3, 1)) <= 1e-4


def test_mean_latent_is_seeded_mean_of_mapping(golden_model):

    module, variables = golden_model
    g = ref.Generator(256, channel_multiplier=1)
    g.load_state_dict(goldens.state_dict(NAME, "g"))
    with torch.no_grad():
        want = g.get_latent(torch.from_numpy(mean_latent_z())).mean(0, keepdim=True).numpy()
    assert variables["buffers"]["mean_latent"].shape == (1, 512)
    assert maxabs(variables["buffers"]["mean_latent"], want) <= 1e-5


def test_reference_generator_matches_the_golden():
    """The PyTorch reference the other-sizes tests trust reproduces the golden itself, at its tolerances."""
    spec = goldens.spec(NAME)["expected"]
    inp, exp = goldens.inputs(NAME), goldens.expected(NAME)
    g = ref.Generator(256, channel_multiplier=1).eval()
    g.load_state_dict(goldens.state_dict(NAME, "g"))
    z, wplus = torch.from_numpy(inp["z"]), torch.from_numpy(inp["wplus"])
    psi, avg = float(inp["truncation"]), torch.from_numpy(inp["truncation_latent"])
    with torch.no_grad():
        got = {"w_from_z": g.get_latent(z)}
        got["img_from_wplus"], _ = g(wplus, input_is_latent=True, return_latents=True)
        got.update({f"wplus_{k}_out": g.features[k].clone() for k in ("conv1", "to_rgb1")})
        got["wplus_to_rgbs0_out"] = g.features["to_rgbs_0"].clone()
        got["img_from_z_trunc"], got["latent_from_z_trunc"] = g(z, psi, avg, return_latents=True)
        got["z_trunc_conv1_out"] = g.features["conv1"].clone()
        _, got["latent_from_wplus_trunc"] = g(wplus, psi, avg, input_is_latent=True, return_latents=True)
    assert set(got) == set(exp)
    for k, v in got.items():
        assert maxabs(v.numpy(), exp[k]) <= spec[k]["tol_max_abs"], k


def test_cli_round_trip(golden_file, golden_model, tmp_path, capsys):

    stylegan2.main([str(golden_file), str(tmp_path / "G")])
    assert "256px" in capsys.readouterr().out
    module, variables, meta = weights.load(tmp_path / "G", with_metadata=True)
    assert module == golden_model[0]
    assert meta["sources"]["generator"]["sha256"] == sha256(golden_file)
    assert (meta["size"], meta["channel_multiplier"], meta["n_latent"]) == (256, 1, 14)
    assert meta["entries_used"] == ["g_ema", "latent_avg"]
    flat_a = jax.tree_util.tree_leaves_with_path(variables)
    flat_b = dict(jax.tree_util.tree_leaves_with_path(golden_model[1]))
    assert len(flat_a) == len(flat_b)
    for path, leaf in flat_a:
        np.testing.assert_array_equal(leaf, flat_b[path])


# ---- other sizes, channel multipliers, batch sizes and truncations: the PyTorch reference generator ----


def _save(tmp_path, name, obj):
    p = tmp_path / name
    torch.save(obj, p)
    return p


@pytest.fixture(scope="module")
def small_ref():
    return ref.random_generator(64, channel_multiplier=2, seed=3)


@pytest.fixture(scope="module")
def small_file(small_ref, tmp_path_factory):
    d = tmp_path_factory.mktemp("sg2small")
    extra = {"g": {"x": torch.zeros(1)}, "d": {}, "args": {"size": 64}}  # ignored entries, as train.py saves
    return _save(d, "g64.pt", {"g_ema": small_ref.state_dict(), **extra})


def test_reference_generator_cm2_batch3_trunc05(small_ref, small_file):
    """64 px, channel multiplier 2, batch 3, psi 0.5 toward the stored mean latent (no truncation_latent)."""

    module, variables, info = stylegan2.load_torch(small_file, return_info=True)
    assert (module.size, module.channel_multiplier, module.n_latent) == (64, 2, 10)
    assert info["entries_ignored"] == ["args", "d", "g"] and not module.has_latent_avg
    rng = np.random.default_rng(7)
    z, wplus = rng.standard_normal((3, 512), dtype=np.float32), rng.standard_normal((3, 10, 512), dtype=np.float32)
    mean = np.array(variables["buffers"]["mean_latent"])

    def run(v, z):
        (img, lat), state = module.apply(v, z, truncation=0.5, return_latents=True, mutable=["intermediates"])
        return img, lat, {k: t[0] for k, t in state["intermediates"].items()}

    img, lat, feats = jax.jit(run)(variables, z)
    with torch.no_grad():
        want_img, want_lat = small_ref(torch.from_numpy(z), 0.5, torch.from_numpy(mean), return_latents=True)
    assert maxabs(lat, want_lat) <= 1e-5
    assert maxabs(img, nhwc(want_img)) <= 1e-4
    for k in ("conv1", "to_rgb1", "to_rgbs_0", "to_rgbs_3"):
        assert maxabs(feats[f"{k}_out"], nhwc(small_ref.features[k])) <= 1e-4
    # W+ inputs are truncated too (row-wise toward the same centre).
    lat_w = module.apply(variables, wplus, 0.5, method=module.truncate)
    np.testing.assert_allclose(lat_w, mean[:, None] + 0.5 * (wplus - mean[:, None]), atol=1e-6, rtol=0)


def test_bfloat16_compute_is_close(tiny_sd):

    m32, v = convert_state_dict({k: t.numpy() for k, t in tiny_sd.items()}, "tiny")
    m16 = m32.clone(dtype="bfloat16")
    w = np.random.default_rng(0).standard_normal((2, m32.n_latent, 512), dtype=np.float32)
    a, b = jax.jit(lambda v, w: (m32.apply(v, w, method=m32.synthesis), m16.apply(v, w, method=m16.synthesis)))(v, w)
    assert b.dtype == jnp.float32
    assert maxabs(a, b) < 0.1 * float(np.abs(a).max())


def test_size_1024_cm2_converts():
    """Key layout, shapes and n_latent of the FFHQ-1024 configuration (no forward pass: too slow for CI)."""

    g = ref.Generator(1024, channel_multiplier=2)
    sd = {k: v.numpy() for k, v in g.state_dict().items()}
    module, variables = convert_state_dict(sd, "ffhq1024")
    assert (module.size, module.channel_multiplier, module.n_latent, module.num_layers) == (1024, 2, 18, 17)
    assert variables["params"]["to_rgbs_7"]["conv"]["weight"].shape == (1, 1, 32, 3)
    assert variables["params"]["convs_15"]["conv"]["weight"].shape == (3, 3, 32, 32)
    out = jax.eval_shape(lambda v, x: module.apply(v, x, method=module.synthesis), variables, jnp.zeros((3, 18, 512)))
    assert out.shape == (3, 1024, 1024, 3)


# ---- strictness ----


@pytest.fixture(scope="module")
def tiny_sd():
    return ref.random_generator(16, channel_multiplier=1, seed=1).state_dict()


def test_strict_keys(tiny_sd, tmp_path):

    cases = {
        "extra": ({**tiny_sd, "convs.1.conv.extra": torch.zeros(3)}, "convs.1.conv.extra"),
        "missing": ({k: v for k, v in tiny_sd.items() if k != "convs.1.noise.weight"}, "convs.1.noise.weight"),
        "shape": ({**tiny_sd, "to_rgb1.bias": torch.zeros(1, 4, 1, 1)}, "to_rgb1.bias"),
        "noise": ({**tiny_sd, "noises.noise_3": torch.zeros(1, 1, 8, 8)}, "noises.noise_3"),
        "blur": ({**tiny_sd, "convs.0.conv.blur.kernel": torch.ones(4, 4)}, "convs.0.conv.blur.kernel"),
        "nostyle": ({k: v for k, v in tiny_sd.items() if k != "style.8.weight"}, "style.8.weight"),
        "norgb": ({k: v for k, v in tiny_sd.items() if k != "to_rgbs.1.conv.weight"}, "to_rgbs.1.conv.weight"),
    }
    for name, (sd, key) in cases.items():
        with pytest.raises(ConversionError, match=key.replace(".", r"\.")):
            stylegan2.load_torch(_save(tmp_path, f"{name}.pt", {"g_ema": sd}))
    with pytest.raises(ConversionError, match="latent_avg"):
        stylegan2.load_torch(_save(tmp_path, "avg.pt", {"g_ema": tiny_sd, "latent_avg": torch.zeros(7)}))
    with pytest.raises(ConversionError, match="not a StyleGAN2 generator.*g_ema"):
        stylegan2.load_torch(_save(tmp_path, "enc.pt", {"e": {"w": torch.zeros(1)}}))
    with pytest.raises(ConversionError, match="not a StyleGAN2 generator"):
        stylegan2.load_torch(_save(tmp_path, "bare.pt", dict(tiny_sd)))
    with pytest.raises(UserError, match="not found"):
        stylegan2.load_torch(tmp_path / "nope.pt")


def test_strict_keys_via_cli(tiny_sd, tmp_path, capsys):

    src = _save(tmp_path, "extra.pt", {"g_ema": {**tiny_sd, "bogus.key": torch.zeros(1)}})
    with pytest.raises(SystemExit) as e:
        stylegan2.main([str(src), str(tmp_path / "out")])
    assert e.value.code == 2 and "bogus.key" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


# ---- python -m jaxreenact.generate ----


def test_generate_cli(tiny_sd, tmp_path, capsys):
    from PIL import Image

    src = _save(tmp_path, "g16.pt", {"g_ema": tiny_sd})
    stylegan2.main([str(src), str(tmp_path / "G")])
    out = tmp_path / "samples.png"
    generate.main(
        ["--generator", str(tmp_path / "G"), "--num", "5", "--seed", "0", "--truncation", "0.7"]
        + [
            "--out",
            str(out),
            "--batch",
            "2",
        ]
    )
    im = np.asarray(Image.open(out))
    assert im.shape == (2 * 18 + 2, 3 * 18 + 2, 3) and im.dtype == np.uint8  # 3 per row, 16 px + 2 px padding
    assert im[2:18, 2:18].std() > 0
    # same seed -> same pixels; the images are the generator's own output
    module, variables = weights.load(tmp_path / "G")
    z = np.random.default_rng(0).standard_normal((5, 512), dtype=np.float32)
    direct = jax.jit(lambda v, z: module.apply(v, z, truncation=0.7))(variables, z)

    np.testing.assert_allclose(im[2:18, 2:18].astype(int), to_uint8(direct[0]).astype(int), atol=1)
    with pytest.raises(SystemExit) as e:
        generate.main(["--generator", str(tmp_path / "missing"), "--out", str(tmp_path / "x.png")])
    assert e.value.code == 2 and "converters.stylegan2" in capsys.readouterr().err
    assert json.loads((tmp_path / "G" / "jaxreenact.json").read_text())["size"] == 16


def test_generate_tiny_needs_no_files(tmp_path, capsys):
    out = tmp_path / "tiny.png"
    generate.main(["--tiny", "--num", "2", "--out", str(out), "--batch-size", "2", "--no-progress"])
    assert out.is_file() and "--tiny random generator" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        generate.main(["--tiny", "--num", "2", "--out", str(tmp_path)])  # a folder where the PNG should go
    assert e.value.code == 2 and "is a folder; give a file name" in capsys.readouterr().err
