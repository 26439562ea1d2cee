"""StyleGAN2 primitives (jaxreenact.nn.stylegan) against the PyTorch ops they mirror (tests/torch_reference)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.nn import stylegan as sg

torch = pytest.importorskip("torch", reason="parity tests need torch (pip install torch==2.13.0)")
ref = pytest.importorskip("torch_reference.stylegan2")
pytestmark = pytest.mark.torch


def close(got, want, rtol=1e-5):
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=rtol * float(np.abs(want).max()))


def nhwc(t):
    return t.detach().permute(0, 2, 3, 1).numpy()


def nchw_t(a):
    return torch.from_numpy(np.ascontiguousarray(np.transpose(a, (0, 3, 1, 2))))


def rand(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("impl", ["taps", "conv"])
@pytest.mark.parametrize(
    "kernel,up,down,pad",
    [
        ((1, 3, 3, 1), 1, 1, (1, 1)),  # Blur of the upsampling conv
        ((1, 3, 3, 1), 2, 1, (2, 1)),  # ToRGB Upsample
        ((1, 3, 3, 1), 1, 2, (1, 1)),  # Downsample (discriminator)
        ((1, 3, 3, 1), 2, 1, (-1, 0)),  # negative pad crops
        ((1, 2, 4, 1, 3), 1, 1, (2, 2)),  # odd, asymmetric separable kernel: the flip matters
    ],
)
def test_upfirdn2d(kernel, up, down, pad, impl):
    k = ref.fir_kernel(kernel, gain=up**2)
    if len(kernel) == 5:  # a non-separable 2-D kernel as well
        k = k + 0.01 * torch.arange(25, dtype=torch.float32).reshape(5, 5)
    x = rand(2, 9, 7, 3)
    want = ref.upfirdn2d_ref(nchw_t(x), k, up=up, down=down, pad=pad)
    got = sg.upfirdn2d(jnp.asarray(x), k.numpy(), up=up, down=down, pad=pad, impl=impl)
    close(got, nhwc(want))


def test_blur_and_upsample_modules():
    x = rand(2, 8, 8, 5)
    close(sg.blur(x, pad=(1, 1), upsample_factor=2), nhwc(ref.Blur((1, 3, 3, 1), (1, 1), gain=4.0)(nchw_t(x))))
    close(sg.upsample(x), nhwc(ref.Upsample((1, 3, 3, 1))(nchw_t(x))))
    assert sg.upsample(x).shape == (2, 16, 16, 5)


def test_fused_leaky_relu_and_pixel_norm():
    x, b = rand(3, 4, 4, 6), rand(6, seed=1)
    close(sg.fused_leaky_relu(x, b), nhwc(ref.fused_lrelu_ref(nchw_t(x), torch.from_numpy(b))))
    z = rand(4, 512) * 3
    close(sg.pixel_norm(z), ref.PixelNorm()(torch.from_numpy(z)).numpy())


def _equal_linear_params(m):
    return {"weight": m.weight.detach().numpy().T, "bias": m.bias.detach().numpy()}


def test_equal_linear_mapping_layer():
    torch.manual_seed(0)
    m = ref.EqualLinear(64, 32, lr_mul=0.01, activation="fused_lrelu")
    with torch.no_grad():
        m.bias.normal_(0, 10)
    x = rand(5, 64)
    got = sg.EqualLinear(32, lr_mul=0.01, activation="fused_lrelu").apply({"params": _equal_linear_params(m)}, x)
    close(got, m(torch.from_numpy(x)).detach().numpy())


def _modconv_params(m):
    return {
        "weight": m.weight.detach()[0].permute(2, 3, 1, 0).numpy(),
        "modulation": _equal_linear_params(m.modulation),
    }


@pytest.mark.parametrize(
    "k,demod,up,impl",
    [
        (3, True, False, "auto"),
        (3, False, False, "auto"),
        (1, False, False, "auto"),
        (3, True, True, "polyphase"),
        (3, False, True, "polyphase"),
        (3, True, True, "dilated"),
        (3, False, True, "dilated"),
    ],
)
def test_modulated_conv(k, demod, up, impl):
    torch.manual_seed(1)
    cin, cout, sdim = 6, 5, 16
    m = ref.ModulatedConv2d(cin, cout, k, sdim, demodulate=demod, upsample=up)
    with torch.no_grad():
        m.modulation.bias.add_(0.3 * torch.randn(cin))
    x, s = rand(3, 8, 8, cin), rand(3, sdim, seed=2)
    want = nhwc(m(nchw_t(x), torch.from_numpy(s)))
    got = sg.ModulatedConv2d(cout, k, demod, up, upsample_impl=impl).apply({"params": _modconv_params(m)}, x, s)
    assert got.shape == ((3, 16, 16, cout) if up else (3, 8, 8, cout))
    close(got, want)
    # The reference's non-fused form (used by bench/generator.py) is the same function.
    ref.ModulatedConv2d.fused = False
    try:
        close(nhwc(m(nchw_t(x), torch.from_numpy(s))), want)
    finally:
        ref.ModulatedConv2d.fused = True


def test_styled_conv_and_to_rgb():
    torch.manual_seed(2)
    sc, rgb = ref.StyledConv(4, 6, 3, 8, upsample=True), ref.ToRGB(6, 8)
    with torch.no_grad():
        sc.noise.weight.fill_(0.3)
        sc.activate.bias.normal_()
        rgb.bias.normal_()
    x, s, noise, skip = rand(2, 4, 4, 4), rand(2, 8, seed=1), rand(1, 8, 8, 1, seed=2), rand(2, 4, 4, 3, seed=3)
    want = sc(nchw_t(x), torch.from_numpy(s), nchw_t(noise))
    p = {"conv": _modconv_params(sc.conv), "noise": {"weight": np.full((1,), 0.3, np.float32)}}
    p["activate"] = {"bias": sc.activate.bias.detach().numpy()}
    got = sg.StyledConv(6, upsample=True).apply({"params": p}, x, s, noise)
    close(got, nhwc(want))
    want_rgb = rgb(want, torch.from_numpy(s), nchw_t(skip))
    p_rgb = {"conv": _modconv_params(rgb.conv), "bias": rgb.bias.detach().numpy().reshape(3)}
    close(sg.ToRGB().apply({"params": p_rgb}, got, s, skip), nhwc(want_rgb))


def test_upsample_impl_is_chosen_by_the_backend():
    """Each backend's default is one of the two options the tests above run on the CPU."""
    assert sg.default_upsample_impl("cpu") == "polyphase"
    assert sg.default_upsample_impl("gpu") == sg.default_upsample_impl("tpu") == "dilated"
    assert sg.resolve_upsample_impl("auto") == sg.default_upsample_impl(jax.default_backend())
    with pytest.raises(ValueError, match="upsample_impl"):
        sg.resolve_upsample_impl("fft")


@pytest.mark.parametrize("k", [3, 4])
def test_the_two_transposed_convolutions_agree(k):
    """`conv_transpose_2x` (CPU) and `conv_transpose_dilated` (GPU/TPU) against torch's conv_transpose2d."""
    x, w = rand(2, 5, 6, 4), rand(k, k, 4, 3, seed=1)
    want = torch.nn.functional.conv_transpose2d(nchw_t(x), torch.from_numpy(w).permute(2, 3, 0, 1), stride=2)
    close(sg.conv_transpose_2x(x, w), nhwc(want))
    close(sg.conv_transpose_dilated(x, w), nhwc(want))


def test_modulated_conv_shards_over_batch_without_collectives():
    """The non-fused form keeps the weight shared: batch-sharded in, batch-sharded out, no communication."""
    mesh = jax.make_mesh((len(jax.devices()),), ("data",))
    batch = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
    m = sg.ModulatedConv2d(8, 3, True, True)
    n = len(jax.devices())
    x, s = jnp.zeros((n, 4, 4, 8)), jnp.zeros((n, 16))
    v = m.init(jax.random.key(0), x, s)
    f = jax.jit(lambda v, x, s: m.apply(v, x, s), in_shardings=(None, batch, batch), out_shardings=batch)
    hlo = f.lower(v, x, s).compile().as_text()
    for op in ("all-reduce", "all-gather", "all-to-all", "collective-permute"):
        assert op not in hlo, op
