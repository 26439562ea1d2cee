"""S3FD and 2D-FAN against the face-alignment package's PyTorch modules built with random weights (nothing is
downloaded), the converters' strict key accounting, the authors' FAN crop / heatmap decoding against a small
PyTorch re-statement of their code, and (marked `weights`) a real detection on the shared photo."""

from __future__ import annotations

import os
import pathlib

import fa_fixtures
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxreenact.common.errors import ConversionError
from jaxreenact.models import fan as fan_lib
from jaxreenact.models import sfd as sfd_lib

pytestmark = pytest.mark.torch
EXAMPLES = pathlib.Path(__file__).parents[1] / "jaxreenact" / "resources" / "examples"


def _fa():
    pytest.importorskip("torch", reason="PyTorch is the reference for these parity tests")
    return pytest.importorskip(
        "face_alignment", reason="face-alignment (the reference S3FD/FAN modules) comes with the `test` extra"
    )


@pytest.fixture(scope="module")
def s3fd(tmp_path_factory):
    _fa()
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd as TorchS3FD

    from converters import sfd as conv

    torch.manual_seed(0)
    net = TorchS3FD().eval()
    with torch.no_grad():  # vary the L2Norm scales too
        for name in ("conv3_3_norm", "conv4_3_norm", "conv5_3_norm"):
            getattr(net, name).weight.mul_(torch.empty_like(getattr(net, name).weight).uniform_(0.5, 1.5))
    path = tmp_path_factory.mktemp("sfd") / "s3fd.pth"
    torch.save(net.state_dict(), path)
    module, variables = conv.load_torch(path)
    return net, path, module, variables


@pytest.fixture(scope="module")
def fan(tmp_path_factory):
    _fa()
    import torch

    from converters import fan as conv

    net = fa_fixtures.random_fan(4)
    path = tmp_path_factory.mktemp("fan") / "2DFAN4.pth.tar"
    torch.save(net.state_dict(), path)
    module, variables = conv.load_torch(path)
    return net, path, module, variables


def _nchw(x):
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2)))


def test_s3fd_outputs_match_face_alignment(s3fd):
    import torch

    net, _, module, variables = s3fd
    x = np.random.default_rng(0).uniform(0, 255, (2, 96, 128, 3)).astype(np.float32)
    with torch.no_grad():
        ref = net(_nchw(x))
    got = jax.jit(module.apply)(variables, jnp.asarray(x))
    assert len(got) == 12
    for r, g in zip(ref, got):
        r = r.numpy().transpose(0, 2, 3, 1)
        assert r.shape == g.shape
        np.testing.assert_allclose(np.asarray(g), r, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("convention", ["face_alignment", "authors"])
def test_s3fd_detections_match_face_alignment(s3fd, convention):
    """Boxes after softmax, decoding, score > 0.05, NMS 0.3 and the 0.5 filter, against face-alignment's
    `get_predictions` + `nms` (its own input convention BGR - mean; the authors' one feeds RGB as is)."""
    import torch
    import torch.nn.functional as F
    from face_alignment.detection.sfd.bbox import nms
    from face_alignment.detection.sfd.detect import get_predictions

    net, _, module, variables = s3fd
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (2, 128, 160, 3)).astype(np.uint8)
    x = torch.from_numpy(img.astype(np.float32)).permute(0, 3, 1, 2)
    if convention == "face_alignment":
        x = x.flip(-3) - torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)
    with torch.no_grad():
        olist = net(x)
    olist = [F.softmax(o, dim=1) if i % 2 == 0 else o for i, o in enumerate(olist)]
    ref = get_predictions([o.numpy() for o in olist], 2)
    got = sfd_lib.detect(module, variables, img, convention=convention)
    for b in range(2):
        r = ref[b]
        r = r[r[:, 4] > 0.05]
        keep = nms(r, 0.3)
        r = np.asarray([d for d in r[keep] if d[4] > 0.5]).reshape(-1, 5)
        assert got[b].shape == r.shape
        assert len(r) > 0  # random weights give scores around 0.5: the test exercises NMS and the filter
        np.testing.assert_allclose(got[b][:, 4], r[:, 4], atol=1e-5)
        np.testing.assert_allclose(got[b][:, :4], r[:, :4], atol=1e-3)  # pixels


def test_s3fd_input_conventions():
    img = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    np.testing.assert_array_equal(np.asarray(sfd_lib.prepare_input(img, "authors")), img.astype(np.float32))
    fa = np.asarray(sfd_lib.prepare_input(img, "face_alignment"))
    np.testing.assert_array_equal(fa, img[..., ::-1].astype(np.float32) - np.array([104.0, 117.0, 123.0]))
    with pytest.raises(ValueError):
        sfd_lib.prepare_input(img, "bgr")


def test_fan_outputs_match_face_alignment(fan):
    import torch

    net, _, module, variables = fan
    assert module.num_modules == 4
    x = np.random.default_rng(3).uniform(0, 1, (2, 256, 256, 3)).astype(np.float32)
    with torch.no_grad():
        ref = net(_nchw(x))
    got = fan_lib.fan_forward(module, variables, jnp.asarray(x))  # same jit as `landmarks` for 2 faces
    assert len(got) == 4
    for r, g in zip(ref, got):
        r = r.numpy().transpose(0, 2, 3, 1)
        scale = max(1.0, float(np.abs(r).max()))
        err = float(np.abs(np.asarray(g) - r).max())
        print(f"FAN stack max abs err {err:.2e} (max |out| {scale:.2f})")
        assert err <= 1e-4 * scale


def test_fan_crop_matches_authors():
    pytest.importorskip("torch", reason="PyTorch states the authors' crop")
    import torch_face_ref as tfr

    rng = np.random.default_rng(4)
    image = rng.integers(0, 256, (120, 200, 3)).astype(np.uint8)
    boxes = np.array(
        [[50.3, 20.7, 120.9, 100.2, 0.999], [-30.0, -10.0, 60.0, 90.0, 0.995], [150.0, 60.0, 230.0, 150.0, 0.999]],
        np.float32,
    )
    center, scale = fan_lib.center_scale(boxes)
    ul, br = fan_lib.crop_corners(center, scale)
    got = np.asarray(fan_lib.crop_for_fan(image[None], np.zeros(3, np.int32), ul.astype(np.int32), br.astype(np.int32)))
    for k in range(3):
        ref = tfr.fan_crop(image, center[k], scale[k])[0].permute(1, 2, 0).numpy()
        np.testing.assert_allclose(got[k], ref, atol=1e-3)


def test_heatmap_decoding_matches_authors():
    import torch

    import torch_face_ref as tfr

    rng = np.random.default_rng(5)
    hm = rng.normal(size=(3, 68, 64, 64)).astype(np.float32)
    # peaks on the border (no sub-pixel step) and in corners
    hm[0, 0, 0, 10] = hm[0, 1, 63, 63] = hm[0, 2, 30, 0] = hm[1, 3, 5, 63] = 50.0
    center = np.array([[100.5, 80.25], [40.0, 300.0], [512.3, 20.1]], np.float32)
    scale = np.array([1.3, 0.7, 2.9], np.float32)
    preds = np.asarray(fan_lib.decode_heatmaps(jnp.asarray(hm.transpose(0, 2, 3, 1))))
    ref_preds, ref_img = tfr.fan_preds(torch.from_numpy(hm), center, scale)
    np.testing.assert_allclose(preds, ref_preds.numpy(), atol=1e-6)
    img = fan_lib.heatmap_to_image(preds, center, scale)
    assert float(np.abs(img - ref_img.numpy()).max()) <= 1e-3
    _, ref_f = tfr.fan_preds(torch.from_numpy(hm), center, scale, integer=False)
    assert float(np.abs(fan_lib.heatmap_to_image(preds, center, scale, integer=False) - ref_f.numpy()).max()) <= 1e-3


def test_landmarks_end_to_end_match_authors(fan):
    """Box -> crop -> FAN -> decode -> image pixels, JAX vs face-alignment's FAN with the authors' glue."""
    import torch

    import torch_face_ref as tfr

    net, _, module, variables = fan
    rng = np.random.default_rng(6)
    images = rng.integers(0, 256, (2, 150, 220, 3)).astype(np.uint8)
    boxes = np.array([[40.2, 30.1, 130.7, 140.3, 0.999], [100.0, -5.0, 230.0, 120.0, 0.998]], np.float32)
    got = fan_lib.landmarks(module, variables, images, boxes, image_index=np.array([0, 1]))
    center, scale = fan_lib.center_scale(boxes)
    for k in range(2):
        inp = tfr.fan_crop(images[k], center[k], scale[k]) / 255.0
        with torch.no_grad():
            hm = net(inp)[-1]
        _, ref = tfr.fan_preds(hm, center[k : k + 1], scale[k : k + 1])
        assert got[k].shape == (68, 2)
        assert float(np.abs(got[k] - ref[0].numpy()).max()) <= 1e-3


def test_converters_are_strict(s3fd, fan, tmp_path):
    import torch

    from converters import fan as conv_fan
    from converters import sfd as conv_sfd

    _, sfd_path, _, _ = s3fd
    _, fan_path, _, _ = fan
    sd = torch.load(sfd_path, weights_only=True)
    extra = dict(sd, **{"extra.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(ConversionError, match="unexpected key"):
        conv_sfd.load_torch(tmp_path / "extra.pth")
    missing = {k: v for k, v in sd.items() if k != "fc7.bias"}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ConversionError, match="fc7.bias"):
        conv_sfd.load_torch(tmp_path / "missing.pth")
    fsd = torch.load(fan_path, weights_only=True)
    with pytest.raises(ConversionError, match="not an S3FD"):
        conv_sfd.load_torch(fan_path)
    with pytest.raises(ConversionError, match="not a FAN"):
        conv_fan.load_torch(sfd_path)
    bad = dict(fsd)
    bad["conv1.weight"] = torch.zeros(64, 3, 5, 5)
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ConversionError, match="conv1.weight"):
        conv_fan.load_torch(tmp_path / "bad.pth")
    # a DataParallel prefix and a {'state_dict': ...} wrapper are accepted
    torch.save({"state_dict": {f"module.{k}": v for k, v in fsd.items()}}, tmp_path / "wrapped.pth")
    module, _ = conv_fan.load_torch(tmp_path / "wrapped.pth")
    assert module.num_modules == 4


def test_converter_cli_roundtrip(s3fd, tmp_path):
    from converters import sfd as conv_sfd
    from jaxreenact import weights

    _, path, module, variables = s3fd
    conv_sfd.main([str(path), str(tmp_path / "sfd")])
    m2, v2 = weights.load(tmp_path / "sfd")
    assert isinstance(m2, sfd_lib.S3FD)
    a = jax.tree.leaves(variables)
    b = jax.tree.leaves(v2)
    assert all(np.array_equal(np.asarray(x), np.asarray(y)) for x, y in zip(a, b))


@pytest.mark.weights
def test_real_weights_find_the_face_in_the_shared_photo():
    """With the user's converted S3FD and FAN ($JAXREENACT_WEIGHTS/sfd, $JAXREENACT_WEIGHTS/fan)."""
    from jaxreenact import weights
    from jaxreenact.data.images import read_image
    from jaxreenact.face.pipeline import FaceLocator, FacePreprocessor

    root = pathlib.Path(os.environ["JAXREENACT_WEIGHTS"])
    if not (root / "sfd").exists() or not (root / "fan").exists():
        pytest.skip(f"converted S3FD/FAN not found as {root}/sfd and {root}/fan")
    pre = FacePreprocessor(FaceLocator(weights.load(root / "sfd"), weights.load(root / "fan")))
    r = pre([read_image(EXAMPLES / "source_0002775.png")])[0]
    assert r.status == "ok" and r.n_faces >= 1
    x1, y1, x2, y2, score = r.box
    assert score > 0.99 and 0 <= x1 < x2 <= 1000 and 0 <= y1 < y2 <= 562
    assert (x2 - x1) > 40  # a face, not a speck
    lm = r.landmarks
    assert np.all((lm[:, 0] >= x1 - 0.3 * (x2 - x1)) & (lm[:, 0] <= x2 + 0.3 * (x2 - x1)))
    assert r.crop.shape == (256, 256, 3)
