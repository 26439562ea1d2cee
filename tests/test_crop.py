"""The authors' geometry: width-1000 INTER_AREA resize (against OpenCV, a test-only reference) and the square crop
from 68 landmarks with FFHQ-style padding (against an OpenCV re-statement of their `pad_img_to_fit_bbox`)."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
import scipy.ndimage
from PIL import Image

from jaxreenact.data.images import read_image
from jaxreenact.face import crop

EXAMPLES = pathlib.Path(__file__).parents[1] / "jaxreenact" / "resources" / "examples"


def _cv2():
    return pytest.importorskip("cv2", reason="opencv-python is the test-only reference for INTER_AREA / BORDER_REFLECT")


@pytest.mark.parametrize(
    "src,dst",
    [((100, 80), (37, 29)), ((64, 64), (32, 32)), ((60, 90), (20, 30)), ((33, 47), (33, 20)), ((40, 30), (97, 71))],
)
def test_resize_area_matches_opencv(src, dst):
    cv2 = _cv2()
    x = np.random.default_rng(0).integers(0, 256, (*src, 3), dtype=np.uint8)
    ref = cv2.resize(x, (dst[1], dst[0]), interpolation=cv2.INTER_AREA)
    got = crop.resize_area(x, dst[1], dst[0])
    d = np.abs(got.astype(int) - ref)
    assert got.shape == ref.shape and d.max() <= 1 and d.mean() < 0.1


def test_resize_to_width_on_the_real_photo():
    cv2 = _cv2()
    img = read_image(EXAMPLES / "source_0002775.png")
    assert img.shape == (720, 1280, 3)
    got, scale = crop.resize_to_width(img)
    assert got.shape == (562, 1000, 3) and scale == 1000 / 1280
    d = np.abs(got.astype(int) - cv2.resize(img, (1000, 562), interpolation=cv2.INTER_AREA))
    assert d.max() <= 1 and d.mean() < 0.02


def test_crop_box_follows_the_authors_rounding():
    lms = np.array([[100.0, 200.0], [181.0, 260.0], [150.0, 300.5]])
    # centre = round((100+181)/2, (200+300.5)/2) = (140, 250) (140.5 -> 140, half to even); size = int(100.5) = 100;
    # centre_y -= 100 // 6 = 16
    assert crop.crop_box(lms) == (40, 134, 240, 334)
    with pytest.raises(ValueError):
        crop.crop_box(np.full((68, 2), np.nan))


def _ref_crop(image, box):
    """The authors' crop_from_bbox with cv2.copyMakeBorder(BORDER_REFLECT), then PIL BICUBIC to 256."""
    cv2 = _cv2()
    x1, y1, x2, y2 = box
    img = image
    if x1 < 0 or y1 < 0 or x2 > img.shape[1] or y2 > img.shape[0]:
        h0, w0 = img.shape[:2]
        img = cv2.copyMakeBorder(img, -min(0, y1), max(y2 - h0, 0), -min(0, x1), max(x2 - w0, 0), cv2.BORDER_REFLECT)
        y2 += -min(0, y1)
        y1 += -min(0, y1)
        x2 += -min(0, x1)
        x1 += -min(0, x1)
        pad = np.array((max(-box[0], 0), max(-box[1], 0), max(box[2] - w0, 0), max(box[3] - h0, 0)), np.float32)
        h, w, _ = img.shape
        y, x, _ = np.ogrid[:h, :w, :1]
        pad[pad == 0] = 1e-10
        mask = np.maximum(
            1.0 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
            1.0 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]),
        )
        img = np.array(img, dtype=np.float32)
        img += (scipy.ndimage.gaussian_filter(img, [5.0, 5.0, 0]) - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
        img += (np.median(img, axis=(0, 1)) - img) * np.clip(mask, 0.0, 1.0)
    sq = img[y1:y2, x1:x2].astype(np.uint8)
    return np.asarray(Image.fromarray(sq).resize((256, 256), Image.BICUBIC))


@pytest.mark.parametrize("box", [(300, 100, 500, 300), (-60, -40, 140, 160), (900, 400, 1100, 600), (-5, 500, 95, 600)])
def test_crop_face_matches_the_authors(box):
    img, _ = crop.resize_to_width(read_image(EXAMPLES / "source_0002775.png"))
    got = crop.crop_face(img, None, box=box)
    assert got.shape == (256, 256, 3) and got.dtype == np.uint8
    np.testing.assert_array_equal(got, _ref_crop(img, box))


def test_crop_face_from_landmarks_shape():
    img = np.random.default_rng(1).integers(0, 256, (562, 1000, 3), dtype=np.uint8)
    lms = np.random.default_rng(2).uniform([400, 200], [560, 380], (68, 2))
    out = crop.crop_face(img, lms)
    assert out.shape == (256, 256, 3) and out.dtype == np.uint8


# ------------------------------------------------------------------------------------------- paste-back
def _smooth_frame(h, w, seed=0):
    f = scipy.ndimage.gaussian_filter(np.random.default_rng(seed).uniform(0, 255, (h, w, 3)), (12, 12, 0))
    return ((f - f.min()) / (f.max() - f.min()) * 255).astype(np.uint8)


def _coverage(h, w, box):
    """The mask as pasted into an (h, w) frame: where the paste writes fully, partly, or not at all."""
    white = np.full((crop.CROP_SIZE, crop.CROP_SIZE, 3), 255, np.uint8)
    return crop.paste_face(np.zeros((h, w, 3), np.uint8), white, box)[..., 0].astype(int)


@pytest.mark.parametrize(
    "h,w,box",
    [(720, 1280, (300, 100, 700, 500)), (480, 640, (-100, -50, 500, 550)), (721, 1283, (600, 20, 990, 410))],
)
def test_a_crop_pasted_back_over_its_own_frame_reproduces_it_inside_the_mask(h, w, box):
    """The paste is the inverse of the crop: frame → width-1000 working image → crop box → 256² and back lands every
    pixel where it came from (within the resampling's rounding on a smooth image); outside the mask nothing moves.
    The boxes include one leaving the frame (padded crop, clipped paste) and odd frame sizes."""
    frame = _smooth_frame(h, w)
    work, _ = crop.resize_to_width(frame)
    face = crop.crop_face(work, None, box=box)
    pasted = crop.paste_face(frame, face, box)
    cover = _coverage(h, w, box)
    inside, outside = cover >= 254, cover == 0
    d = np.abs(pasted.astype(int) - frame.astype(int))
    assert inside.sum() > 20000 and d[inside].max() <= 3 and d[inside].mean() < 0.5
    np.testing.assert_array_equal(pasted[outside], frame[outside])
    # the check can fail: the same crop pasted 8 working pixels off is visibly wrong
    shifted = crop.paste_face(frame, face, tuple(v + 8 for v in box))
    assert np.abs(shifted.astype(int) - frame.astype(int))[inside].max() > 10


def test_face_mask_and_colour_transfer():
    m = crop.face_mask()
    assert m.shape == (256, 256) and m.max() == 1.0 and m[128, 128] == 1.0
    assert m[0].max() == 0 and m[-1].max() == 0 and m[:, 0].max() == 0 and m[:, -1].max() == 0  # 0 at the border
    assert 0 < m[128, 40] < 1 or 0 < m[128, 30] < 1  # a soft edge
    rng = np.random.default_rng(1)
    ref = rng.uniform(60, 200, (256, 256, 3)).astype(np.float32)
    rendered = ref * 0.5 + 20.0  # the generator's colour is off by a known affine map
    gain, offset = crop.colour_transfer(ref, rendered, m)
    np.testing.assert_allclose(gain, 2.0, rtol=1e-4)
    np.testing.assert_allclose(offset, -40.0, atol=1e-2)
    same = crop.colour_transfer(ref, ref, m)
    np.testing.assert_allclose(same[0], 1.0, rtol=1e-5)
    np.testing.assert_allclose(same[1], 0.0, atol=1e-3)
