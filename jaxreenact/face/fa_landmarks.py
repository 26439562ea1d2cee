"""The face-alignment package (1.5.0) as DECA's detector calls it, batched and under jit.

The authors' DECA (`decalib/datasets/detectors.py: FAN.run`) builds `face_alignment.FaceAlignment(2D,
flip_input=False)` (S3FD detector, 2D-FAN-4) and runs `get_landmarks(image)[0]` on every image DECA reads; `image` is
the HWC float32 tensor in [0, 255] that `TestData.get_image_tensor` permutes out of the generator output
(`torch_range_1_to_255`, METHOD.md 3.3). What 1.5.0 does with it, and what this module does the same way:

1. `get_image` turns the tensor into a float32 numpy HWC array. S3FD (`sfd/detect.py: batch_detect`) gets it as
   float32 NCHW, flips RGB to BGR and subtracts (104, 117, 123) (`models.sfd.prepare_input(.., "face_alignment")`);
   softmax per head; every anchor (strides 4 ... 128, side 4·stride) is decoded with variances (0.1, 0.2)
   (`models.sfd.decode_outputs`). Upstream decodes in float64, here float32.
2. Candidates: face score > 0.05 (`get_predictions`), NMS at IoU 0.3 with `+1` pixel areas in descending score order,
   then score > 0.5 (`SFDDetector._filter_bboxes`). `nms` does this with fixed shapes: the `max_faces` top-scored
   anchors, a greedy pass over them, the survivors compacted in order. The greedy result for a box depends only on
   boxes scored above it, so the list holds exactly the package's detections that score at least as high as the
   `max_faces`-th anchor: all of them when no more than `max_faces` anchors score above 0.5. Face [0] is the
   top-scoring anchor whenever it scores above 0.5 (`max_faces=1` is enough for it).
   Exactly equal top scores (a saturated softmax) are ordered by numpy's unstable `argsort` upstream, which is not
   reproducible; here the earlier anchor (head by head, row-major) comes first.
3. FAN crop (`api.get_landmarks_from_image`, `utils.crop`): centre = box centre with y moved up by 0.12·(y2 − y1),
   scale = (w + h)/195; the corners are `utils.transform([1, 1])` and `transform([256, 256])` inverted in float32
   torch (the matrix entries rounded to float32, `inverse` giving 1/a and −b·(1/a), `.int()` truncating): `crop_corners`.
   The crop [ul, br) is copied into a *uint8* zero canvas (the float image is truncated to integers there) and
   resized to 256² by `cv2.resize(INTER_LINEAR)` on uint8, i.e. OpenCV's fixed-point bilinear: 11-bit weights
   ((2d+1)·n − 256)/512 per axis, the horizontal pass exact in integers, the vertical pass as its SIMD kernel
   (((r0 >> 4)·b0 >> 16) + ((r1 >> 4)·b1 >> 16) + 2) >> 2, taps clipped to the crop, the vertical weights kept at the
   borders (`cv2_resize_taps`, `fan_crop`; bit-exact against OpenCV 5.0's `cv2.resize` for every size tried, including
   2x up and down). Then /255 into FAN.
4. Decoding (`utils.get_preds_fromhm`): first argmax, ±0.25 toward the larger neighbour inside (0, 63), −0.5
   (`models.fan.decode_heatmaps`), then `transform_np(..., invert=True)` (float64 `pinv` upstream, float32 here)
   and `.astype(int32)`: integer landmarks (x = p·h/64 + c − h/2, truncated toward zero).

Where the port cannot follow: the networks agree with PyTorch to ~1e-6 relative and the box decoding is float32,
so boxes agree to ~1e-4 px; the integer steps (crop corners, landmark truncation) then agree unless an exact value
lies within ~1e-4 of an integer, and a heatmap whose two best values differ by ~1e-7 relative may pick the other
one (on random-weight networks: one landmark coordinate in a couple of thousand). A box that misses the image in
one axis makes the package's `crop` raise; here its crop is zeros.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxreenact.models import fan as fan_lib
from jaxreenact.models import sfd as sfd_lib

SCORE_MIN = 0.05  # sfd/detect.py get_predictions: candidates
NMS_IOU = 0.3  # SFDDetector._filter_bboxes
FILTER_SCORE = 0.5  # SFDDetector(filter_threshold=0.5)
REFERENCE_SCALE = 195.0
CENTER_Y_OFFSET = 0.12
SCALE_FACTOR = 200.0
CROP = 256  # utils.CROP_RESOLUTION
HEATMAP = 64
MAX_FACES = 32


class Faces(NamedTuple):
    """Fixed-shape detections: dets [B, K, 5] (x1, y1, x2, y2, score) in the package's order (zeros past the
    last), valid [B, K], and the top-scoring anchor top [B, 5] (= dets[:, 0] wherever valid[:, 0])."""

    dets: jax.Array
    valid: jax.Array
    top: jax.Array


class Located(NamedTuple):
    """The package's face [0] per image: landmarks [B, 68, 2] (integer-valued float32 pixels), its box [B, 5],
    found [B] (the package returned landmarks), FAN's centre [B, 2], scale [B] and crop corners ul, br [B, 2]."""

    landmarks: jax.Array
    box: jax.Array
    found: jax.Array
    center: jax.Array
    scale: jax.Array
    ul: jax.Array
    br: jax.Array


def range_1_to_255(images):
    """Generator images in [-1, 1] -> [0, 255] as the authors' `torch_range_1_to_255`: clamp, (x+1)/(2+1e-5), ·255,
    bit for bit. XLA turns a division by a (broadcast) constant into a multiplication by its reciprocal, which
    rounds differently and would move the uint8 truncation of the FAN crop; the divisor is therefore a full array
    behind an optimization barrier, so the division stays an IEEE division."""
    num = jnp.clip(jnp.asarray(images, jnp.float32), -1.0, 1.0) + 1.0
    den = jax.lax.optimization_barrier(num * 0.0 + (2.0 + 1e-5))
    return num / den * 255.0


def candidates(sfd_module, sfd_vars, images_255):
    """S3FD on RGB images [B, H, W, 3] in [0, 255] with the package's input convention: every anchor's box
    [B, A, 4] and face score [B, A] (anchors head by head, row-major, the package's candidate order)."""
    outs = sfd_module.apply(sfd_vars, sfd_lib.prepare_input(images_255, "face_alignment"))
    return sfd_lib.decode_outputs(outs)


def _nms_one(boxes, scores, max_faces, score_min, iou, keep):
    s, idx = jax.lax.top_k(scores, max_faces)  # descending; equal scores: lower index first
    b = boxes[idx]
    x1, y1, x2, y2 = b[:, 0], b[:, 1], b[:, 2], b[:, 3]
    areas = (x2 - x1 + 1.0) * (y2 - y1 + 1.0)
    w = jnp.maximum(0.0, jnp.minimum(x2[:, None], x2[None]) - jnp.maximum(x1[:, None], x1[None]) + 1.0)
    h = jnp.maximum(0.0, jnp.minimum(y2[:, None], y2[None]) - jnp.maximum(y1[:, None], y1[None]) + 1.0)
    inter = w * h
    over = inter / (areas[:, None] + areas[None] - inter) > iou  # [kept i, later j] suppressed when IoU > 0.3
    rank = jnp.arange(max_faces)

    def step(i, kept):
        suppressed = jnp.any(kept & over[:, i] & (rank < i))
        return kept.at[i].set((s[i] > score_min) & ~suppressed)

    kept = jax.lax.fori_loop(0, max_faces, step, jnp.zeros(max_faces, bool))
    final = kept & (s > keep)
    order = jnp.argsort(~final, stable=True)  # survivors first, in score order
    dets = jnp.concatenate([b, s[:, None]], axis=1)[order]
    valid = final[order]
    return jnp.where(valid[:, None], dets, 0.0), valid, jnp.concatenate([b[0], s[:1]])


def nms(boxes, scores, max_faces: int = MAX_FACES, score_min=SCORE_MIN, iou=NMS_IOU, keep=FILTER_SCORE) -> Faces:
    """`detect_from_image`'s filtering of the dense outputs, fixed-shape: [B, max_faces] detections."""
    k = min(max_faces, scores.shape[1])
    return Faces(*jax.vmap(lambda b, s: _nms_one(b, s, k, score_min, iou, keep))(boxes, scores))


def detect(sfd_module, sfd_vars, images_255, max_faces: int = MAX_FACES) -> Faces:
    """`SFDDetector.detect_from_image` for a batch of RGB images in [0, 255]."""
    return nms(*candidates(sfd_module, sfd_vars, images_255), max_faces=max_faces)


def center_scale(box):
    """FAN's centre [.., 2] and scale [..] of boxes [.., >=4] as `get_landmarks_from_image` (float32)."""
    b = jnp.asarray(box, jnp.float32)
    x1, y1, x2, y2 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    cx = x2 - (x2 - x1) / 2.0
    cy = (y2 - (y2 - y1) / 2.0) - (y2 - y1) * CENTER_Y_OFFSET
    return jnp.stack([cx, cy], axis=-1), (x2 - x1 + y2 - y1) / REFERENCE_SCALE


def crop_corners(center, scale, resolution: int = CROP):
    """`utils.crop`'s ul = transform([1, 1]) and br = transform([res, res]) (invert=True, `.int()`), int32 [.., 2].
    Float32 as torch: t = [[r/h, 0, r(0.5 − cx/h)], ...], inverse (1/a, −b·(1/a)), then ·point + offset."""
    h = SCALE_FACTOR * scale
    a = resolution / h
    inv_a = 1.0 / a
    b = resolution * (-center / h[..., None] + 0.5)
    off = -(b * inv_a[..., None])
    ul = jnp.trunc(inv_a[..., None] * 1.0 + off)
    br = jnp.trunc(inv_a[..., None] * float(resolution) + off)
    return ul.astype(jnp.int32), br.astype(jnp.int32)


def cv2_resize_taps(n, size: int = CROP):
    """OpenCV INTER_LINEAR taps of one axis from n (traced int) source pixels to `size`: indices i0, i1 [size]
    (clipped to [0, n-1]) and 11-bit weights w0, w1 (int32, w0 + w1 = 2048). OpenCV rounds float weights; for a
    power-of-two `size` up to 1024 (256 here) they are exact multiples of 1/2048 and this integer form equals it."""
    n = jnp.maximum(jnp.asarray(n, jnp.int32), 1)
    t = (2 * jnp.arange(size, dtype=jnp.int32) + 1) * n - size  # source position · 2·size, exact
    s = jnp.floor_divide(t, 2 * size)
    w1 = (t - 2 * size * s) * 2048 // (2 * size)
    return jnp.clip(s, 0, n - 1), jnp.clip(s + 1, 0, n - 1), 2048 - w1, w1


def fan_crop(image_255, ul, br, size: int = CROP):
    """`utils.crop` of one image [H, W, 3] in [0, 255]: the uint8 zero-padded crop [ul, br) resized to size² with
    `cv2.resize(INTER_LINEAR)` -> float32 [size, size, 3] holding the uint8 values."""
    hgt, wid = image_255.shape[0], image_255.shape[1]
    u8 = jnp.floor(jnp.clip(image_255, 0.0, 255.0)).astype(jnp.int32)  # float -> uint8 canvas: truncation
    x0, x1, ax0, ax1 = cv2_resize_taps(br[0] - ul[0], size)
    y0, y1, ay0, ay1 = cv2_resize_taps(br[1] - ul[1], size)

    def rows(y):
        gy = y + ul[1]
        ok = (gy >= 0) & (gy < hgt)
        return jnp.where(ok[:, None, None], u8[jnp.clip(gy, 0, hgt - 1)], 0)

    def cols(r, x):
        gx = x + ul[0]
        ok = (gx >= 0) & (gx < wid)
        return jnp.where(ok[None, :, None], r[:, jnp.clip(gx, 0, wid - 1)], 0)

    def hpass(r):
        return cols(r, x0) * ax0[None, :, None] + cols(r, x1) * ax1[None, :, None]

    r0, r1 = hpass(rows(y0)), hpass(rows(y1))
    v = ((r0 >> 4) * ay0[:, None, None] >> 16) + ((r1 >> 4) * ay1[:, None, None] >> 16)
    return jnp.clip((v + 2) >> 2, 0, 255).astype(jnp.float32)


def heatmaps_to_image(hm, center, scale):
    """`get_preds_fromhm` with centre/scale: heatmaps [B, 64, 64, 68] -> integer landmarks [B, 68, 2] (float32)."""
    preds = fan_lib.decode_heatmaps(hm)
    h = SCALE_FACTOR * scale
    pts = preds * (h / HEATMAP)[:, None, None] + (center - h[:, None] / 2.0)[:, None, :]
    return jnp.trunc(pts)


def locate(sfd, fan, images_255, max_faces: int = MAX_FACES) -> Located:
    """`FaceAlignment(2D, flip_input=False).get_landmarks(image)[0]` for every image of a batch [B, H, W, 3] in
    [0, 255] (RGB, float), with its box and a `found` mask; where nothing is found the landmarks are those of the
    top anchor's box and meaningless (the package returns None there)."""
    (sfd_module, sfd_vars), (fan_module, fan_vars) = sfd, fan
    images_255 = jnp.asarray(images_255, jnp.float32)
    faces = detect(sfd_module, sfd_vars, images_255, max_faces)
    found = faces.valid[:, 0]
    box = jnp.where(found[:, None], faces.dets[:, 0], faces.top)  # no face: any sane box keeps the crop finite
    center, scale = center_scale(box)
    ul, br = crop_corners(center, scale)
    crops = jax.vmap(fan_crop)(images_255, ul, br)
    hm = fan_module.apply(fan_vars, crops / 255.0)[-1]
    return Located(heatmaps_to_image(hm, center, scale), box, found, center, scale, ul, br)
