"""S3FD face detector (the `face-alignment` package's `s3fd`, checkpoint `s3fd-619a316812.pth`) and the detection
post-processing the authors run (METHOD.md 7.1).

Network: VGG16 trunk + fc6/fc7 (as convs) + conv6/conv7 extras, three L2Norm layers, six prediction heads
(`conv3_3_norm_mbox_conf` ... `conv7_2_mbox_loc`); the first head's 4 confidence channels are maxed out into
(background, face). Submodule names are the PyTorch ones, parameters `weight`/`bias`, conv kernels HWIO.

Post-processing (as `sfd/detect.py:batch_detect` + `sfd_detector.py:detect_from_batch`):
softmax per head; an anchor at stride s = 4, 8, ..., 128 sits at (s/2 + j·s, s/2 + i·s) with side 4·s; the
regression is decoded with variances (0.1, 0.2); anchors with face score > 0.05 are kept, then NMS at IoU 0.3
(`+1` pixel areas, as upstream), then boxes with score > 0.5 remain, in NMS (descending score) order.

What runs where: the network, the softmax and the decoding of every anchor run batched under `jax.jit`
(`dense_detections`); the score threshold and the greedy NMS run per image in numpy on the host (`postprocess`),
because their output size depends on the data. Upstream selects anchor positions over the whole batch
(`np.where(ocls[:, 1] > 0.05)`); selecting per image gives the same final boxes (a box of another image's position
has score <= 0.05 here, cannot suppress a higher-scored box in NMS and is dropped by the 0.5 filter).

Input convention (`convention=`): the authors feed the RGB float [0, 255] tensor as is (`"authors"`, our default,
METHOD.md 7.1); the face-alignment package itself (>= 1.3) flips RGB to BGR and subtracts (104, 117, 123)
(`"face_alignment"`), which is how the network was trained.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.nn.torch_layers import Conv2d, max_pool2d

CONVENTIONS = ("authors", "face_alignment")
BGR_MEAN = (104.0, 117.0, 123.0)
VARIANCES = (0.1, 0.2)
HEADS = ("conv3_3_norm", "conv4_3_norm", "conv5_3_norm", "fc7", "conv6_2", "conv7_2")


class L2Norm(nn.Module):
    """x / (||x||_channels + 1e-10) · weight (per channel, init `scale`)."""

    scale: float = 1.0

    @nn.compact
    def __call__(self, x):
        w = self.param("weight", nn.initializers.constant(self.scale), (x.shape[-1],))
        xf = x.astype(jnp.float32)  # a sum over channels: float32
        norm = jnp.sqrt(jnp.sum(xf * xf, axis=-1, keepdims=True)) + 1e-10
        return (xf / norm * w).astype(x.dtype)


class S3FD(nn.Module):
    """The detector network. x: [N, H, W, 3] float (already in the chosen input convention) -> list of 12 maps
    [cls1, reg1, ..., cls6, reg6], each NHWC: cls with 2 channels (background, face) as logits, reg with 4."""

    dtype: str = "float32"  # compute dtype (float32 | bfloat16); parameters and outputs stay float32

    @nn.compact
    def __call__(self, x):
        relu = jax.nn.relu

        def conv(name, c, k=3, s=1, p=1):
            return Conv2d(c, k, s, p, name=name)

        h = x.astype(self.dtype)
        feats = {}
        for block, (chans, n) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
            for i in range(1, n + 1):
                h = relu(conv(f"conv{block}_{i}", chans)(h))
            if block >= 3:
                feats[f"conv{block}_3"] = h
            h = max_pool2d(h, 2, 2)
        h = relu(conv("fc6", 1024, 3, 1, 3)(h))
        h = relu(conv("fc7", 1024, 1, 1, 0)(h))
        feats["fc7"] = h
        h = relu(conv("conv6_1", 256, 1, 1, 0)(h))
        h = relu(conv("conv6_2", 512, 3, 2, 1)(h))
        feats["conv6_2"] = h
        h = relu(conv("conv7_1", 128, 1, 1, 0)(h))
        h = relu(conv("conv7_2", 256, 3, 2, 1)(h))
        feats["conv7_2"] = h

        for name, scale in (("conv3_3", 10.0), ("conv4_3", 8.0), ("conv5_3", 5.0)):
            feats[f"{name}_norm"] = L2Norm(scale, name=f"{name}_norm")(feats.pop(name))

        outs = []
        for head in HEADS:
            f = feats[head]
            cls = conv(f"{head}_mbox_conf", 4 if head == "conv3_3_norm" else 2)(f)
            reg = conv(f"{head}_mbox_loc", 4)(f)
            if head == "conv3_3_norm":  # max-out background label
                bmax = jnp.maximum(jnp.maximum(cls[..., 0:1], cls[..., 1:2]), cls[..., 2:3])
                cls = jnp.concatenate([bmax, cls[..., 3:4]], axis=-1)
            outs += [cls.astype(jnp.float32), reg.astype(jnp.float32)]
        return outs


def prepare_input(images, convention: str = "authors"):
    """uint8/float RGB [N, H, W, 3] in [0, 255] -> the network input of `convention` (float32)."""
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown S3FD input convention {convention!r}; expected one of {CONVENTIONS}")
    x = jnp.asarray(images).astype(jnp.float32)
    if convention == "face_alignment":
        x = x[..., ::-1] - jnp.asarray(BGR_MEAN, jnp.float32)
    return x


def decode_outputs(outs):
    """Softmax + anchor decoding of every position of every head.

    Returns `boxes` [N, A, 4] (x1, y1, x2, y2 in input pixels) and `scores` [N, A], anchors ordered head by head,
    then row-major over the head's map (upstream's `np.where` order)."""
    all_boxes, all_scores = [], []
    for i in range(len(outs) // 2):
        cls, reg = outs[2 * i], outs[2 * i + 1]
        n, fh, fw, _ = cls.shape
        stride = 2 ** (i + 2)
        score = jax.nn.softmax(cls, axis=-1)[..., 1]
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        acx = jnp.asarray(stride / 2 + xs * stride, jnp.float32)
        acy = jnp.asarray(stride / 2 + ys * stride, jnp.float32)
        side = float(stride * 4)
        cx = acx + reg[..., 0] * VARIANCES[0] * side
        cy = acy + reg[..., 1] * VARIANCES[0] * side
        w = side * jnp.exp(reg[..., 2] * VARIANCES[1])
        h = side * jnp.exp(reg[..., 3] * VARIANCES[1])
        x1, y1 = cx - w / 2, cy - h / 2
        box = jnp.stack([x1, y1, x1 + w, y1 + h], axis=-1)
        all_boxes.append(box.reshape(n, fh * fw, 4))
        all_scores.append(score.reshape(n, fh * fw))
    return jnp.concatenate(all_boxes, axis=1), jnp.concatenate(all_scores, axis=1)


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("convention",))
def dense_detections(module: S3FD, variables, images, convention: str = "authors"):
    """Network + softmax + decoding for a batch under jit: ([N, A, 4] boxes, [N, A] face scores)."""
    return decode_outputs(module.apply(variables, prepare_input(images, convention)))


def nms(dets: np.ndarray, thresh: float) -> list[int]:
    """Greedy NMS of [K, 5] (x1, y1, x2, y2, score) as upstream `bbox.nms` (areas with +1, IoU > thresh dropped)."""
    if len(dets) == 0:
        return []
    x1, y1, x2, y2, scores = dets[:, 0], dets[:, 1], dets[:, 2], dets[:, 3], dets[:, 4]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep = []
    while order.size > 0:
        i = order[0]
        keep.append(int(i))
        xx1, yy1 = np.maximum(x1[i], x1[order[1:]]), np.maximum(y1[i], y1[order[1:]])
        xx2, yy2 = np.minimum(x2[i], x2[order[1:]]), np.minimum(y2[i], y2[order[1:]])
        w, h = np.maximum(0.0, xx2 - xx1 + 1), np.maximum(0.0, yy2 - yy1 + 1)
        ovr = w * h / (areas[i] + areas[order[1:]] - w * h)
        order = order[np.where(ovr <= thresh)[0] + 1]
    return keep


def postprocess(
    boxes, scores, score_threshold: float = 0.05, nms_threshold: float = 0.3, keep_threshold: float = 0.5
) -> list[np.ndarray]:
    """Host side, per image: score > 0.05, NMS 0.3, score > 0.5. Returns a list of [K, 5] float32 arrays
    (x1, y1, x2, y2, score), in NMS order (descending score)."""
    boxes, scores = np.asarray(boxes), np.asarray(scores)
    out = []
    for b, s in zip(boxes, scores):
        sel = np.where(s > score_threshold)[0]
        dets = np.concatenate([b[sel], s[sel, None]], axis=1).astype(np.float32)
        keep = nms(dets, nms_threshold)
        dets = dets[keep]
        out.append(dets[dets[:, 4] > keep_threshold] if len(dets) else np.zeros((0, 5), np.float32))
    return out


def detect(module: S3FD, variables, images, convention: str = "authors") -> list[np.ndarray]:
    """Detect faces in a batch of same-size RGB images [N, H, W, 3] (uint8 or float in [0, 255]):
    a list of N arrays [K, 5] (x1, y1, x2, y2, score) in the images' pixel coordinates."""
    boxes, scores = dense_detections(module, variables, images, convention=convention)
    return postprocess(boxes, scores)
