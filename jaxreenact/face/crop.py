"""The authors' image geometry around the face networks (METHOD.md 7.1), in numpy/PIL/scipy and OpenCV's resize.

* `resize_to_width`: step 2, "resize to width 1000 keeping aspect with `cv2.INTER_AREA`" (`image_utils.image_resize`):
  the new height is `int(h · 1000 / w)`, resized by `cv2.resize(..., INTER_AREA)` itself (~2 ms a 720p frame; it
  runs in OpenCV's threads and forks nothing). `resize_area` is our own statement of the same rule (kept as the
  reference the tests hold OpenCV to): downscaling is area resampling (each output pixel the overlap-weighted mean
  of the input pixels its footprint covers, `computeResizeAreaTab`), computed separably in float64 and rounded half
  to even; upscaling (width < 1000) follows OpenCV's INTER_AREA-as-linear rule. The two agree within 1 grey level
  (OpenCV's upscaling uses fixed-point weights); the float64 products cost ~60 ms a 720p frame on the host, which is
  why the pipeline calls OpenCV.
* `crop_box` / `crop_face`: step 4, `ffhq_cropping.crop_using_landmarks`: centre = round((min + max) / 2) of the 68
  landmarks (numpy rounding, half to even), size = int(max(landmark box width, height)), centre_y −= size // 6, box
  [c − size, c + size) (side 2·size). A box leaving the frame is filled FFHQ-style: the image is padded with
  `BORDER_REFLECT` (numpy `symmetric`), then blended toward a Gaussian blur (σ = 5, scipy) and toward the per-channel
  median with masks that grow with the distance into the padding, and cast back with `astype(uint8)`
  (truncation, as upstream). The square is resized to 256×256 with PIL BICUBIC.
* `deca_box`: not here (DECA's own crop lives with the DECA port).

This is not FFHQ alignment: no rotation, no eye/mouth quad.
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import scipy.ndimage
from PIL import Image

WORK_WIDTH = 1000
CROP_SIZE = 256


def _area_matrix(src: int, dst: int) -> np.ndarray:
    """[dst, src] weights of OpenCV's INTER_AREA along one axis (area for downscale, its linear rule for upscale)."""
    m = np.zeros((dst, src), np.float64)
    scale = src / dst
    if scale >= 1.0:
        for dx in range(dst):
            fsx1 = dx * scale
            fsx2 = fsx1 + scale
            cell = min(scale, src - fsx1)
            sx1 = math.ceil(fsx1)
            sx2 = min(math.floor(fsx2), src - 1)
            sx1 = min(sx1, sx2)
            if sx1 - fsx1 > 1e-3:
                m[dx, sx1 - 1] += (sx1 - fsx1) / cell
            for sx in range(sx1, sx2):
                m[dx, sx] += 1.0 / cell
            if fsx2 - sx2 > 1e-3:
                m[dx, sx2] += min(min(fsx2 - sx2, 1.0), cell) / cell
    else:  # OpenCV: INTER_AREA upscaling is bilinear with fx = frac((dx+1) - (sx+1)/scale) clipped at 0
        inv = dst / src
        for dx in range(dst):
            sx = math.floor(dx * scale)
            fx = (dx + 1) - (sx + 1) * inv
            fx = 0.0 if fx <= 0 else fx - math.floor(fx)
            if sx < 0:
                sx, fx = 0, 0.0
            if sx >= src - 1:
                sx, fx = src - 1, 0.0
            m[dx, sx] += 1.0 - fx
            if fx > 0:
                m[dx, sx + 1] += fx
    return m


def resize_area(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)` for uint8 HWC/HW images (see module doc)."""
    img = np.asarray(image)
    if img.shape[1] == width and img.shape[0] == height:
        return img.copy()
    mh = _area_matrix(img.shape[0], height)
    mw = _area_matrix(img.shape[1], width)
    x = img.astype(np.float64)
    y = np.tensordot(mh, x, axes=(1, 0))  # [height, W, C]
    y = np.moveaxis(np.tensordot(mw, y, axes=(1, 1)), 0, 1)  # [height, width, C]
    h, w = img.shape[:2]
    if h % height == 0 and w % width == 0:  # OpenCV's integer-ratio fast path rounds halves up
        return np.clip(np.floor(y + 0.5), 0, 255).astype(np.uint8)
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def resize_to_width(image: np.ndarray, width: int = WORK_WIDTH) -> tuple[np.ndarray, float]:
    """The authors' `image_resize(image, width=1000)` (always, up or down): (resized uint8 image, scale = width / w)."""
    h, w = image.shape[:2]
    r = width / float(w)
    height = int(h * r)
    img = np.ascontiguousarray(image)
    if img.shape[:2] == (height, width):
        return img.copy(), r
    return cv2.resize(img, (width, height), interpolation=cv2.INTER_AREA), r


def crop_box(landmarks: np.ndarray) -> tuple[int, int, int, int]:
    """Square crop box (x1, y1, x2, y2), exclusive ends, of the authors' `crop_using_landmarks` from [68, 2] points."""
    lms = np.asarray(landmarks, np.float64)
    if lms.ndim != 2 or lms.shape[1] != 2 or not np.all(np.isfinite(lms)):
        raise ValueError(f"landmarks must be a finite [N, 2] array, got shape {lms.shape}")
    center = ((lms.min(0) + lms.max(0)) / 2).round().astype(int)
    size = int(max(lms[:, 0].max() - lms[:, 0].min(), lms[:, 1].max() - lms[:, 1].min()))
    center[1] -= size // 6
    return int(center[0] - size), int(center[1] - size), int(center[0] + size), int(center[1] + size)


def _pad_to_fit(img: np.ndarray, x1: int, x2: int, y1: int, y2: int, box) -> tuple[np.ndarray, int, int, int, int]:
    """Upstream `pad_img_to_fit_bbox`: reflect padding, blur and median blend into the padded border (float32)."""
    h0, w0 = img.shape[:2]
    top, bottom = -min(0, y1), max(y2 - h0, 0)
    left, right = -min(0, x1), max(x2 - w0, 0)
    img = np.pad(img, ((top, bottom), (left, right), (0, 0)), mode="symmetric")  # == cv2.BORDER_REFLECT
    y2 += top
    y1 += top
    x2 += left
    x1 += left
    pad = np.array(
        (max(-box[0], 0), max(-box[1], 0), max(box[2] - w0, 0), max(box[3] - h0, 0)),
        dtype=np.float32,
    )
    h, w = img.shape[:2]
    y, x, _ = np.ogrid[:h, :w, :1]
    pad[pad == 0] = 1e-10
    mask = np.maximum(
        1.0 - np.minimum(np.float32(x) / pad[0], np.float32(w - 1 - x) / pad[2]),
        1.0 - np.minimum(np.float32(y) / pad[1], np.float32(h - 1 - y) / pad[3]),
    )
    img = np.array(img, dtype=np.float32)
    blur = 5.0
    img += (scipy.ndimage.gaussian_filter(img, [blur, blur, 0]) - img) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    img += (np.median(img, axis=(0, 1)) - img) * np.clip(mask, 0.0, 1.0)
    return img, x1, x2, y1, y2


def crop_from_box(image: np.ndarray, box) -> np.ndarray:
    """The square region `box` of an RGB uint8 image, padded FFHQ-style where it leaves the frame (uint8)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    img = np.asarray(image)
    if x1 < 0 or y1 < 0 or x2 > img.shape[1] or y2 > img.shape[0]:
        img, x1, x2, y1, y2 = _pad_to_fit(img, x1, x2, y1, y2, (x1, y1, x2, y2))
    return img[y1:y2, x1:x2].astype(np.uint8)


def crop_face(image: np.ndarray, landmarks: np.ndarray, size: int = CROP_SIZE, box=None) -> np.ndarray:
    """The method's face crop: `crop_box(landmarks)` (or the given `box`) cut from `image` and resized to size×size
    with PIL BICUBIC. `image` is the RGB uint8 image the landmarks refer to (the width-1000 one upstream)."""
    if box is None:
        box = crop_box(landmarks)
    if box[2] - box[0] <= 0 or box[3] - box[1] <= 0:
        raise ValueError(f"empty crop box {tuple(box)}")
    square = crop_from_box(image, box)
    return np.asarray(Image.fromarray(square).resize((size, size), Image.BICUBIC))


# ------------------------------------------------------------------------------------ the inverse: paste back
def work_size(height: int, width: int, work_width: int = WORK_WIDTH) -> tuple[int, int]:
    """(height, width) of the working image `resize_to_width` makes from a frame of this size."""
    return int(height * (work_width / float(width))), work_width


def face_mask(size: int = CROP_SIZE, center=(0.5, 0.55), radii=(0.36, 0.42), feather: float = 0.25) -> np.ndarray:
    """A soft elliptical mask [size, size] in [0, 1] over the face and head of the authors' crop framing: 1 inside,
    a smooth (smoothstep) fall-off over the outer `feather` of the ellipse's radius, 0 before the crop's border."""
    c = (np.arange(size, dtype=np.float64) + 0.5) / size
    y, x = np.meshgrid(c, c, indexing="ij")
    r = np.sqrt(((x - center[0]) / radii[0]) ** 2 + ((y - center[1]) / radii[1]) ** 2)
    t = np.clip((1.0 - r) / feather, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def colour_transfer(reference: np.ndarray, rendered: np.ndarray, mask: np.ndarray):
    """Per-channel gain and offset (mean and std inside `mask`) that take `rendered` (the generator's picture of
    the source) to `reference` (the source's own crop): apply as `face * gain + offset` to every reenacted face,
    so the pasted face keeps the photo's colour."""
    m = np.asarray(mask, np.float64)[..., None]
    wsum = max(float(m.sum()), 1e-8)
    ref, ren = np.asarray(reference, np.float64), np.asarray(rendered, np.float64)
    mu_r, mu_g = (ref * m).sum((0, 1)) / wsum, (ren * m).sum((0, 1)) / wsum
    sd_r = np.sqrt((((ref - mu_r) ** 2) * m).sum((0, 1)) / wsum)
    sd_g = np.sqrt((((ren - mu_g) ** 2) * m).sum((0, 1)) / wsum)
    gain = np.where(sd_g > 1e-6, sd_r / np.maximum(sd_g, 1e-6), 1.0)
    return gain.astype(np.float32), (mu_r - gain * mu_g).astype(np.float32)


def paste_face(frame: np.ndarray, face: np.ndarray, box, work_width: int = WORK_WIDTH, mask: np.ndarray | None = None,
               colour=None) -> np.ndarray:  # fmt: skip
    """The inverse of the crop: `face` (a [S, S, 3] crop, e.g. a reenacted face) composited into the full `frame`
    (RGB uint8 [H, W, 3], the original resolution) where `crop_face` cut it, through `mask` (`face_mask` by
    default; 0 = keep the frame). `box` is the crop box in working-image pixels (width `work_width`), as
    `FacePreprocessor` reports it. Every frame pixel the box covers is mapped back through the working-image
    resize and the crop's resize (pixel centres kept, the two scales of the aspect-keeping resize apart) into the
    crop and sampled bilinearly. `colour` = (gain, offset) from `colour_transfer`. Returns a new uint8 frame."""
    frame = np.asarray(frame)
    face = np.asarray(face)
    h, w = frame.shape[:2]
    n = face.shape[0]
    if face.shape[:2] != (n, n):
        raise ValueError(f"the face must be square, got {face.shape}")
    hw, ww = work_size(h, w, work_width)
    sx, sy = ww / float(w), hw / float(h)
    x1, y1, x2, y2 = (float(v) for v in box)
    side = x2 - x1
    # frame pixels whose working coordinate falls inside the box: x_w = (u + 0.5) * sx - 0.5 in [x1 - 0.5, x2 - 0.5]
    u0, u1 = max(0, math.floor(x1 / sx - 0.5)), min(w, math.ceil(x2 / sx - 0.5) + 1)
    v0, v1 = max(0, math.floor(y1 / sy - 0.5)), min(h, math.ceil(y2 / sy - 0.5) + 1)
    out = frame.copy()
    if u1 <= u0 or v1 <= v0:
        return out
    u = np.arange(u0, u1, dtype=np.float64)
    v = np.arange(v0, v1, dtype=np.float64)
    j = ((u + 0.5) * sx - 0.5 - x1 + 0.5) * (n / side) - 0.5  # crop column of each frame column
    i = ((v + 0.5) * sy - 0.5 - y1 + 0.5) * (n / side) - 0.5
    ii, jj = np.meshgrid(i, j, indexing="ij")
    m = face_mask(n) if mask is None else np.asarray(mask, np.float32)
    alpha = scipy.ndimage.map_coordinates(m, [ii, jj], order=1, mode="constant", cval=0.0)
    src = face.astype(np.float32)
    if colour is not None:
        src = src * np.asarray(colour[0], np.float32) + np.asarray(colour[1], np.float32)
    rgb = np.stack(
        [scipy.ndimage.map_coordinates(src[..., k], [ii, jj], order=1, mode="nearest") for k in range(face.shape[2])],
        axis=-1,
    )
    a = np.clip(alpha, 0.0, 1.0)[..., None]
    region = out[v0:v1, u0:u1].astype(np.float32)
    out[v0:v1, u0:u1] = np.clip(np.rint(region * (1.0 - a) + rgb * a), 0, 255).astype(np.uint8)
    return out
