"""DECA's crop box from face-alignment's landmarks under jit (`model.deca_box="landmarks"`), against the
face-alignment package (1.5.0) itself: its `FaceAlignment.get_landmarks` on random-weight S3FD / FAN (nothing is
downloaded), its `utils.crop` (uint8 canvas + cv2 bilinear), its NMS, and the authors' box -> theta arithmetic."""

import pathlib
import warnings

import fa_fixtures
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from configs import synthetic
from jaxreenact.common.errors import UserError
from jaxreenact.face import deca_box, deca_crop
from jaxreenact.face import fa_landmarks as fa
from jaxreenact.pose.deca import fixed_deca_theta
from jaxreenact.training import setup, stages
from jaxreenact.weights import Networks, load_bundle

PHOTO = pathlib.Path(__file__).parents[1] / "jaxreenact" / "resources" / "examples" / "source_0002775.png"
SIZE = 128  # the package takes any size; 128² keeps the networks cheap (training images are 256²)


def _package():
    pytest.importorskip("torch", reason="PyTorch runs the face-alignment reference")
    return pytest.importorskip("face_alignment", reason="face-alignment is the reference (the `test` extra)")


def _images():
    """[-1, 1] generator-range images: flat grey, noise, the photo dimmed, the photo."""
    im = Image.open(PHOTO).convert("RGB")
    w, h = im.size
    s = min(w, h)
    face = im.crop(((w - s) // 2, (h - s) // 2, (w + s) // 2, (h + s) // 2)).resize((SIZE, SIZE))
    face = np.asarray(face, np.float32) / 127.5 - 1.0
    noise = np.random.default_rng(0).uniform(-1, 1, face.shape).astype(np.float32)
    return np.stack([np.zeros_like(face), noise, 0.3 * face, face])


def _range_255(x):
    """The authors' `torch_range_1_to_255` in float32 numpy (bit-identical to torch's)."""
    return ((np.clip(x, -1, 1) + 1) / (2 + 1e-5) * 255).astype(np.float32)


@pytest.mark.torch
def test_fan_crop_and_corners_match_face_alignment():
    """`utils.transform` corners and `utils.crop` (float image into a uint8 canvas, `cv2.resize` INTER_LINEAR),
    bit for bit, for crops that are smaller, larger, exactly half and twice 256 and that leave the image."""
    _package()
    from face_alignment.utils import crop, transform

    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (96, 160, 3)).astype(np.float32)
    center = rng.uniform(-30, 170, (40, 2)).astype(np.float32)
    scale = rng.uniform(0.15, 2.8, 40).astype(np.float32)
    scale[:3] = (0.64, 1.28, 2.56)  # crops of exactly 128, 256 and 512 px
    ul, br = (np.asarray(a) for a in jax.jit(fa.crop_corners)(jnp.asarray(center), jnp.asarray(scale)))
    fan_crop = jax.jit(fa.fan_crop)
    tested = 0
    for c, s, u, b in zip(center.astype(np.float64), scale.astype(np.float64), ul, br):
        ref_u = transform([1, 1], c, s, 256.0, True).numpy()
        ref_b = transform([256, 256], c, s, 256.0, True).numpy()
        np.testing.assert_array_equal(u, ref_u)
        np.testing.assert_array_equal(b, ref_b)
        if not (u[0] < image.shape[1] and u[1] < image.shape[0] and b[0] > 0 and b[1] > 0):
            continue  # the package's own crop raises when the box misses the image in one axis
        ref = crop(image, c, s)
        got = np.asarray(fan_crop(jnp.asarray(image), jnp.asarray(u), jnp.asarray(b)))
        np.testing.assert_array_equal(got, ref.astype(np.float32))
        tested += 1
    assert tested >= 30 and (br - ul).min() < 200 and (br - ul).max() > 520


def test_cv2_resize_taps_match_opencv():
    cv2 = pytest.importorskip("cv2", reason="OpenCV is the reference for the FAN crop's resize")
    rng = np.random.default_rng(1)
    for h, w in [(1, 3), (97, 256), (128, 128), (255, 300), (512, 512), (700, 131)]:
        src = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ref = cv2.resize(src, (256, 256), interpolation=cv2.INTER_LINEAR)
        got = fa.fan_crop(jnp.asarray(src, jnp.float32), jnp.array([0, 0]), jnp.array([w, h]))
        np.testing.assert_array_equal(np.asarray(got), ref.astype(np.float32))


@pytest.mark.torch
def test_nms_matches_face_alignment():
    """Fixed-shape NMS = the package's `nms(dets, 0.3)` then score > 0.5, in its order; a short list is a prefix."""
    _package()
    from face_alignment.detection.sfd.bbox import nms as ref_nms

    rng = np.random.default_rng(2)
    n = 150
    centers = rng.uniform(0, 200, (6, 2))[rng.integers(0, 6, n)] + rng.normal(0, 12, (n, 2))
    sides = rng.uniform(20, 90, (n, 2))
    boxes = np.concatenate([centers - sides / 2, centers + sides / 2], 1).astype(np.float32)
    scores = rng.uniform(0, 1, n).astype(np.float32)
    b, s = jnp.asarray(boxes[None]), jnp.asarray(scores[None])
    sel = scores > fa.SCORE_MIN
    dets = np.concatenate([boxes[sel], scores[sel, None]], 1).astype(np.float64)
    ref = dets[ref_nms(dets, 0.3)]
    ref = ref[ref[:, 4] > 0.5]
    assert len(ref) >= 20
    full = fa.nms(b, s, max_faces=n)  # every anchor: the package's whole list
    k = int(full.valid[0].sum())
    assert k == len(ref) and not bool(full.valid[0, k:].any())
    np.testing.assert_allclose(np.asarray(full.dets[0, :k]), ref, rtol=0, atol=1e-4)
    # The top 32 anchors only: exactly the package's detections scored at least as high as the 32nd anchor.
    short = fa.nms(b, s, max_faces=32)
    prefix = ref[ref[:, 4] >= np.sort(scores)[-32]]
    m = int(short.valid[0].sum())
    assert 0 < m == len(prefix) < k
    np.testing.assert_allclose(np.asarray(short.dets[0, :m]), prefix, rtol=0, atol=1e-4)
    np.testing.assert_allclose(np.asarray(short.top[0]), ref[0], rtol=0, atol=1e-4)


def _authors_theta(kpt):
    """`TestData.get_image_tensor` on face-alignment's landmarks [68, 2]: kpt68 box, bbox2point, int(·1.25),
    skimage's similarity (float64), as a float32 tensor."""
    from skimage.transform import estimate_transform

    left, right = np.min(kpt[:, 0]), np.max(kpt[:, 0])
    top, bottom = np.min(kpt[:, 1]), np.max(kpt[:, 1])
    old = (right - left + bottom - top) / 2 * 1.1
    c = np.array([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0])
    size = int(old * 1.25)
    src = np.array(
        [[c[0] - size / 2, c[1] - size / 2], [c[0] - size / 2, c[1] + size / 2], [c[0] + size / 2, c[1] - size / 2]]
    )
    dst = np.array([[0, 0], [0, 223], [223, 0]])
    return estimate_transform("similarity", src, dst).params.astype(np.float32)


@pytest.fixture(scope="module")
def face_alignment_pair(tmp_path_factory):
    """face-alignment's S3FD (full) and FAN (one stack: the pipeline code does not depend on the depth) with random
    weights, the package's `FaceAlignment` built on them offline, and our converted JAX networks.

    The trunk is He-initialised so its features depend on the image; only the fc7 head scores faces (the other
    heads are silenced), its face bias set between the images' best logits so that two images of the batch have
    faces (score > 0.5) and two do not; the box regressions are scaled down to stay near their anchors."""
    _package()
    pytest.importorskip("skimage", reason="the authors' similarity transform (face-alignment depends on it)")
    import face_alignment
    import torch
    from face_alignment import api
    from face_alignment import utils as fa_utils
    from face_alignment.detection.sfd import sfd_detector
    from face_alignment.models.fan import FAN as TorchFAN

    from converters import fan as conv_fan
    from converters import sfd as conv_sfd

    images = _images()
    x255 = _range_255(images)
    net, face_logit = fa_fixtures.face_s3fd(loc_scale=0.02, conf_scale=0.05)
    with torch.no_grad():
        x = torch.from_numpy(x255).permute(0, 3, 1, 2).flip(-3) - torch.tensor([104.0, 117.0, 123.0]).view(1, 3, 1, 1)
        best = np.sort(face_logit(x).max(1).values.numpy())
        assert best[2] - best[1] > 0.1, best  # a clear split between the images without and with a face
        net.fc7_mbox_conf.bias[1] = -float(best[1] + 0.7 * (best[2] - best[1]))
    root = tmp_path_factory.mktemp("fa")
    torch.save(net.state_dict(), root / "s3fd.pth")

    fnet = fa_fixtures.random_fan(1)
    torch.save(fnet.state_dict(), root / "fan.pth")

    def no_download(*a, **k):
        raise AssertionError("the test must not download anything")

    with pytest.MonkeyPatch.context() as mp:  # the package's own loaders, pointed at our files
        mp.setattr(sfd_detector, "load_state_dict_from_url", no_download)
        mp.setattr(fa_utils, "download_url_to_file", no_download)
        mp.setattr(api, "load_file_from_url", lambda url, **k: str(root / "fan.pth"))
        mp.setattr(api, "FAN", lambda network_size: TorchFAN(1))
        model = face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D, flip_input=False, device="cpu", compile=False,
            face_detector_kwargs={"path_to_detector": str(root / "s3fd.pth")},
        )  # fmt: skip
    return model, conv_sfd.load_torch(root / "s3fd.pth"), conv_fan.load_torch(root / "fan.pth"), images, x255


@pytest.mark.torch
def test_landmark_theta_matches_face_alignment(face_alignment_pair, monkeypatch):
    import torch
    from face_alignment import utils as fa_utils

    model, sfd, fan, images, x255 = face_alignment_pair
    for name in ("_get_preds_fromhm", "transform_np"):  # numba's compile takes longer than the test: same source
        monkeypatch.setattr(fa_utils, name, getattr(getattr(fa_utils, name), "py_func", getattr(fa_utils, name)))
    fallback = fixed_deca_theta(1)

    @jax.jit
    def run(x):
        return (
            deca_box.landmark_theta(sfd, fan, x, fallback),
            fa.detect(*sfd, fa.range_1_to_255(x)),
            fa.range_1_to_255(x),
        )

    (theta, lmk, found), faces, got255 = jax.tree.map(np.asarray, run(jnp.asarray(images)))
    np.testing.assert_array_equal(got255, x255)  # the uint8 truncation of the crop sees torch's values

    found_ref = []
    for b in range(len(images)):
        # What DECA's FAN.run does: get_landmarks on the HWC float tensor in [0, 255] (return_bboxes to compare).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "No faces were detected."
            pts, _, dets = model.get_landmarks(torch.from_numpy(x255[b]), return_bboxes=True)
        found_ref.append(pts is not None)
        if pts is None:
            assert not faces.valid[b].any()
            np.testing.assert_array_equal(theta[b], fallback[0])
            continue
        dets = np.asarray(dets)
        k = int(faces.valid[b].sum())
        assert k == len(dets)
        np.testing.assert_allclose(faces.dets[b, :k], dets, rtol=0, atol=1e-3)  # boxes (px) and scores
        # Integer landmarks of face [0]: identical here. A coordinate may legitimately move where the exact value sits
        # within ~1e-4 px of an integer or two heatmap maxima tie to ~1e-7 (float differences between backends).
        assert (lmk[b] != pts[0]).sum() <= 1, np.argwhere(lmk[b] != pts[0])
        np.testing.assert_allclose(theta[b], _authors_theta(lmk[b]), rtol=1e-6, atol=1e-5)
    np.testing.assert_array_equal(found, found_ref)
    assert found_ref == [False, True, False, True]
    assert faces.valid[1:2].sum() + faces.valid[3:].sum() >= 3  # several faces in one image: NMS order matters


def test_crop_matrix_same_in_numpy_and_jax():
    lmk = np.random.default_rng(0).uniform(40, 210, (3, 68, 2))
    np.testing.assert_allclose(np.asarray(jax.jit(deca_crop.crop_matrix)(jnp.asarray(lmk, jnp.float32))),
                               deca_crop.crop_matrix(lmk), rtol=1e-5, atol=1e-3)  # fmt: skip


def test_training_config_selects_the_landmark_box(tmp_path):

    c = synthetic.get_config("tiny")
    with c.unlocked():
        c.model.deca_box = "landmarks"
    nets, frozen = load_bundle(setup.weight_names(c), tiny_seed=c.seed)
    assert nets.sfd is not None and nets.fan is not None and {"sfd", "fan"} <= set(frozen)
    assert setup.make_setup(c, nets).deca_box == "landmarks"
    with pytest.raises(UserError, match="needs the S3FD and FAN"):
        setup.make_setup(c, Networks(nets.g, nets.deca, nets.arcface, nets.lpips))
    real = synthetic.get_config()
    with real.unlocked():
        real.model.deca_box = "landmarks"
        for n in ("generator", "deca", "arcface", "lpips", "sfd", "fan"):
            setattr(real.weights, n, str(tmp_path / n))
    with pytest.raises(UserError) as e:
        stages.build_stage(real, None)
    assert "converters.sfd" in str(e.value) and "converters.fan" in str(e.value)
    with real.unlocked():
        real.model.deca_box = "boxes"
    with pytest.raises(UserError, match="fixed, landmarks"):
        setup.make_setup(real, nets)
