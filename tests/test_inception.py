"""FID Inception-v3: parity with a pure-PyTorch reference of pytorch-fid's network, and strict conversion.

torchvision does not import beside torch 2.13 here, so the reference below is written from pytorch-fid's
`fid_inception_v3` (torchvision's `Inception3` blocks + the FID patches) in plain torch. Random weights with the
`pt_inception-2015-12-05-6726825d.pth` key layout (including `fc.*`) are saved to a .pth and converted.
"""

import json

import numpy as np
import pytest

from converters.inception import convert_state_dict, load_torch, main
from jaxreenact import weights
from jaxreenact.common.errors import ConversionError

torch = pytest.importorskip("torch", reason="parity tests need PyTorch (pip install torch==2.13.0)")
nn = torch.nn
F = torch.nn.functional

pytestmark = [pytest.mark.torch, pytest.mark.slow]


# ------------------------------------------------------------------ pure-torch reference (pytorch-fid semantics)
class RefBasicConv2d(nn.Module):
    def __init__(self, cin, cout, **kw):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kw)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _tf_pool(x):
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class RefA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = RefBasicConv2d(cin, 64, kernel_size=1)
        self.branch5x5_1 = RefBasicConv2d(cin, 48, kernel_size=1)
        self.branch5x5_2 = RefBasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = RefBasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = RefBasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = RefBasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = RefBasicConv2d(cin, pool_features, kernel_size=1)

    def forward(self, x):
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_pool(x))], 1)


class RefB(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3 = RefBasicConv2d(cin, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = RefBasicConv2d(cin, 64, kernel_size=1)
        self.branch3x3dbl_2 = RefBasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = RefBasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x):
        bd = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), bd, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class RefC(nn.Module):
    def __init__(self, cin, c7):
        super().__init__()
        self.branch1x1 = RefBasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7_1 = RefBasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7_2 = RefBasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = RefBasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = RefBasicConv2d(cin, c7, kernel_size=1)
        self.branch7x7dbl_2 = RefBasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = RefBasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = RefBasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = RefBasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = RefBasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for i in range(1, 6):
            bd = getattr(self, f"branch7x7dbl_{i}")(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_tf_pool(x))], 1)


class RefD(nn.Module):
    def __init__(self, cin):
        super().__init__()
        self.branch3x3_1 = RefBasicConv2d(cin, 192, kernel_size=1)
        self.branch3x3_2 = RefBasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = RefBasicConv2d(cin, 192, kernel_size=1)
        self.branch7x7x3_2 = RefBasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = RefBasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = RefBasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x):
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = x
        for i in range(1, 5):
            b7 = getattr(self, f"branch7x7x3_{i}")(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class RefE(nn.Module):
    def __init__(self, cin, max_pool):
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = RefBasicConv2d(cin, 320, kernel_size=1)
        self.branch3x3_1 = RefBasicConv2d(cin, 384, kernel_size=1)
        self.branch3x3_2a = RefBasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = RefBasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = RefBasicConv2d(cin, 448, kernel_size=1)
        self.branch3x3dbl_2 = RefBasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = RefBasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = RefBasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = RefBasicConv2d(cin, 192, kernel_size=1)

    def forward(self, x):
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_pool(x)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class RefFIDInception(nn.Module):
    """pytorch-fid `InceptionV3([3])` on the FID Inception: [N,3,H,W] in [0,1] -> [N, 2048]."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = RefBasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = RefBasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = RefBasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = RefBasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = RefBasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = RefA(192, 32)
        self.Mixed_5c = RefA(256, 64)
        self.Mixed_5d = RefA(288, 64)
        self.Mixed_6a = RefB(288)
        self.Mixed_6b = RefC(768, 128)
        self.Mixed_6c = RefC(768, 160)
        self.Mixed_6d = RefC(768, 160)
        self.Mixed_6e = RefC(768, 192)
        self.Mixed_7a = RefD(768)
        self.Mixed_7b = RefE(1280, max_pool=False)
        self.Mixed_7c = RefE(2048, max_pool=True)
        self.fc = nn.Linear(2048, 1008)

    def forward(self, x):
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)
        return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)


def random_reference(seed=0):
    """The reference with random weights scaled so activations stay O(1) through the ~95 layers."""
    torch.manual_seed(seed)
    ref = RefFIDInception().eval()
    with torch.no_grad():
        for m in ref.modules():
            if isinstance(m, nn.Conv2d):
                fan_in = m.weight[0].numel()
                m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5)
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.uniform_(0.8, 1.2)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return ref


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(reference, pth path, module, variables) converted through the file path, as a user would."""

    ref = random_reference()
    path = tmp_path_factory.mktemp("inception") / "pt_inception-random.pth"
    torch.save(ref.state_dict(), path)
    module, variables = load_torch(path)
    return ref, path, module, variables


@pytest.fixture(scope="module")
def features_jax(converted):
    import jax

    _, _, module, variables = converted
    return jax.jit(lambda v, x: module.apply(v, x))


def test_parity_pool3_features(converted, features_jax):
    ref, _, _, variables = converted
    rng = np.random.default_rng(0)
    x = rng.uniform(0.0, 1.0, size=(2, 3, 64, 80)).astype(np.float32)  # resized to 299 inside, as pytorch-fid
    with torch.no_grad():
        want = ref(torch.from_numpy(x)).numpy()
    got = np.asarray(features_jax(variables, x.transpose(0, 2, 3, 1)))
    assert got.shape == (2, 2048)
    assert np.std(want) > 1e-2, "degenerate random reference"
    err = np.max(np.abs(got - want))
    print(f"FID Inception pool3 max abs err {err:.3g} (feature scale {np.max(np.abs(want)):.3g})")
    assert err <= 1e-4


def test_converter_keys_and_layout(converted):

    ref, path, _, variables = converted
    sd = {k: v.numpy() for k, v in ref.state_dict().items()}
    assert any(k.endswith("num_batches_tracked") for k in sd) and "fc.weight" in sd
    # Conv kernels OIHW -> HWIO; BN running stats in `buffers`.
    w = np.asarray(variables["params"]["Mixed_6b"]["branch7x7dbl_2"]["conv"]["weight"])
    np.testing.assert_array_equal(w, sd["Mixed_6b.branch7x7dbl_2.conv.weight"].transpose(2, 3, 1, 0))
    rv = np.asarray(variables["buffers"]["Mixed_7c"]["branch_pool"]["bn"]["running_var"])
    np.testing.assert_array_equal(rv, sd["Mixed_7c.branch_pool.bn.running_var"])
    # Without the optional num_batches_tracked keys (older torch) it still converts.
    convert_state_dict({k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}, "nbt")
    # Strict: a missing key, an unknown key, a wrong shape, the fc keys, all named.
    with pytest.raises(ConversionError, match="missing key 'Mixed_5b.branch1x1.bn.running_mean'"):
        convert_state_dict({k: v for k, v in sd.items() if k != "Mixed_5b.branch1x1.bn.running_mean"}, "m")
    with pytest.raises(ConversionError, match="unexpected key"):
        convert_state_dict({**sd, "Mixed_5b.extra.weight": np.zeros(3, np.float32)}, "x")
    with pytest.raises(ConversionError, match="missing key 'fc.bias'"):
        convert_state_dict({k: v for k, v in sd.items() if k != "fc.bias"}, "f")
    bad = dict(sd, **{"Mixed_7b.branch1x1.conv.weight": np.zeros((320, 1280, 3, 3), np.float32)})
    with pytest.raises(ConversionError, match="has shape"):
        convert_state_dict(bad, "s")
    # torchvision's ImageNet Inception is refused with a pointer to the right file.
    tv = {**sd, "fc.weight": np.zeros((1000, 2048), np.float32), "fc.bias": np.zeros(1000, np.float32)}
    with pytest.raises(ConversionError, match="torchvision's ImageNet Inception"):
        convert_state_dict(tv, "tv")
    with pytest.raises(ConversionError, match="not the FID Inception"):
        convert_state_dict({"features.0.weight": np.zeros((64, 3, 11, 11), np.float32)}, "alex")


def test_cli_roundtrip(converted, tmp_path, capsys):
    import jax

    _, path, _, variables = converted
    dst = tmp_path / "inception"
    main([str(path), str(dst)])
    assert "converted" in capsys.readouterr().out
    module, loaded, meta = weights.load(dst, with_metadata=True)
    assert type(module).__name__ == "FIDInceptionV3" and module.resize_input and module.normalize_input
    assert meta["converter"] == "converters.inception"
    json.dumps(meta)
    for a, b in zip(jax.tree.leaves(loaded), jax.tree.leaves(variables)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "missing.pth"), str(tmp_path / "out")])
    assert e.value.code == 2
    assert "not found" in capsys.readouterr().err
