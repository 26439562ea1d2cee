"""Parity of the PyTorch-semantics layers in jaxreenact.nn.torch_layers against the torch ops they mirror."""

import numpy as np
import pytest

from jaxreenact.nn import torch_layers as tl

torch = pytest.importorskip("torch", reason="parity tests need torch (pip install torch==2.13.0)")
F = torch.nn.functional
pytestmark = pytest.mark.torch


def t(x):  # NHWC numpy -> NCHW torch
    return torch.from_numpy(np.ascontiguousarray(np.transpose(x, (0, 3, 1, 2))))


def n(x):  # NCHW torch -> NHWC numpy
    return np.transpose(x.detach().numpy(), (0, 2, 3, 1))


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("stride,padding,groups,dilation", [(1, 1, 1, 1), (2, 1, 1, 1), (2, 3, 2, 1), (1, 2, 1, 2)])
def test_conv2d(rng, stride, padding, groups, dilation):
    x = rng.standard_normal((2, 13, 11, 4)).astype(np.float32)
    w = rng.standard_normal((6, 4 // groups, 3, 3)).astype(np.float32)
    b = rng.standard_normal(6).astype(np.float32)
    ref = F.conv2d(t(x), torch.from_numpy(w), torch.from_numpy(b), stride, padding, dilation, groups)
    got = tl.conv2d(x, np.transpose(w, (2, 3, 1, 0)), b, stride, padding, dilation, groups)
    np.testing.assert_allclose(got, n(ref), rtol=1e-5, atol=1e-5)


def test_conv2d_module_and_linear_params(rng):
    m = tl.Conv2d(5, kernel_size=3, stride=2, padding=1, use_bias=False)
    v = m.init(__import__("jax").random.key(0), np.zeros((1, 8, 8, 3), np.float32))
    assert set(v["params"]) == {"weight"} and v["params"]["weight"].shape == (3, 3, 3, 5)
    lin = tl.Linear(7)
    v = lin.init(__import__("jax").random.key(0), np.zeros((2, 4), np.float32))
    assert v["params"]["weight"].shape == (4, 7) and v["params"]["bias"].shape == (7,)


def test_batchnorm_frozen(rng):
    x = rng.standard_normal((2, 5, 5, 8)).astype(np.float32)
    bn = torch.nn.BatchNorm2d(8).eval()
    with torch.no_grad():
        for p in (bn.weight, bn.bias, bn.running_mean):
            p.copy_(torch.from_numpy(rng.standard_normal(8).astype(np.float32)))
        bn.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 1.5, 8).astype(np.float32)))
    variables = {
        "params": {"weight": bn.weight.detach().numpy(), "bias": bn.bias.detach().numpy()},
        "buffers": {"running_mean": bn.running_mean.numpy(), "running_var": bn.running_var.numpy()},
    }
    got = tl.BatchNorm().apply(variables, x)
    np.testing.assert_allclose(got, n(bn(t(x))), rtol=1e-5, atol=1e-5)


def test_prelu(rng):
    x = rng.standard_normal((2, 4, 4, 6)).astype(np.float32)
    a = rng.uniform(0, 0.5, 6).astype(np.float32)
    got = tl.PReLU().apply({"params": {"weight": a}}, x)
    np.testing.assert_allclose(got, n(F.prelu(t(x), torch.from_numpy(a))), rtol=1e-6)


@pytest.mark.parametrize(
    "k,s,p,ceil", [(3, 2, 0, False), (3, 2, 1, False), (3, 2, 0, True), (2, 2, 0, True), (1, 2, 0, False)]
)
def test_max_pool(rng, k, s, p, ceil):
    x = rng.standard_normal((2, 11, 12, 3)).astype(np.float32)
    ref = F.max_pool2d(t(x), k, s, p, ceil_mode=ceil)
    np.testing.assert_array_equal(tl.max_pool2d(x, k, s, p, ceil), n(ref))


@pytest.mark.parametrize("k,s,p,ceil,cip", [(7, 7, 0, False, True), (3, 2, 1, True, True), (3, 2, 1, False, False)])
def test_avg_pool(rng, k, s, p, ceil, cip):
    x = rng.standard_normal((2, 14, 11, 3)).astype(np.float32)
    ref = F.avg_pool2d(t(x), k, s, p, ceil_mode=ceil, count_include_pad=cip)
    np.testing.assert_allclose(tl.avg_pool2d(x, k, s, p, ceil, cip), n(ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size_in,size_out", [(188, 112), (7, 3), (10, 10), (5, 7)])
def test_adaptive_avg_pool(rng, size_in, size_out):
    x = rng.standard_normal((2, size_in, size_in, 3)).astype(np.float32)
    ref = F.adaptive_avg_pool2d(t(x), size_out)
    np.testing.assert_allclose(tl.adaptive_avg_pool2d(x, size_out), n(ref), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("align", [True, False])
@pytest.mark.parametrize("size", [(32, 32), (7, 9), (3, 2)])
def test_bilinear(rng, align, size):
    x = rng.standard_normal((2, 16, 8, 3)).astype(np.float32)
    ref = F.interpolate(t(x), size=size, mode="bilinear", align_corners=align)
    np.testing.assert_allclose(tl.interpolate_bilinear(x, size, align), n(ref), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size", [(16, 16), (9, 5)])
def test_nearest(rng, size):
    x = rng.standard_normal((1, 8, 6, 2)).astype(np.float32)
    ref = F.interpolate(t(x), size=size, mode="nearest")
    np.testing.assert_array_equal(tl.interpolate_nearest(x, size), n(ref))


def test_cosine_similarity(rng):
    a = rng.standard_normal((4, 16)).astype(np.float32)
    b = rng.standard_normal((4, 16)).astype(np.float32)
    ref = F.cosine_similarity(torch.from_numpy(a), torch.from_numpy(b), eps=1e-6).numpy()
    np.testing.assert_allclose(tl.cosine_similarity(a, b, 1e-6), ref, rtol=1e-6)
