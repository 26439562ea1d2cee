"""DECA's crop box from landmarks, under jit: what the authors' training does on every image DECA reads
(METHOD.md 3.3: face-alignment's S3FD + 2D-FAN on the 256² generated image, the 68 landmarks' box, `kpt68`).

`landmark_theta` runs, batched and inside the training step (no host round trip):
1. S3FD on the image in [0, 255] (`torch_range_1_to_255`, as the authors feed face-alignment) and the decoding of
   every anchor (`sfd.decode_outputs`); the face is the top-scoring anchor. The host pipeline keeps the boxes that
   survive score > 0.05, NMS and score > 0.5 and then picks one; NMS keeps the top-scoring box first, so for the one
   face of a generated image the two agree (they differ only for images with several confident faces).
2. FAN's crop of that box with the host pipeline's own integer crop (`fan.center_scale`, corners truncated like
   `.int()`, `fan._crop_one`), FAN, `fan.decode_heatmaps` (¼-pixel shift), back to image pixels with the integer
   cast of upstream. The corners are computed in float32 here (float64 on the host): a corner can move by one pixel
   where the float64 value sits on an integer boundary.
3. `deca_crop.crop_matrix` on the landmarks (`kpt68` box, ×1.1, int(·1.25), similarity to 224²).
The whole path is under `stop_gradient`: the box is not differentiated, as upstream (it is computed on detached
numpy there). An image whose top score is below `confidence` (0.99, the host pipeline's) gets the fallback theta
(the fixed box) and `valid = False`; upstream would have crashed or used zeros there.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxreenact.face import deca_crop
from jaxreenact.face.pipeline import CONFIDENCE
from jaxreenact.models import fan as fan_lib
from jaxreenact.models import sfd as sfd_lib


def top_face_box(sfd_module, sfd_vars, images_255, convention: str = "authors"):
    """(boxes [B, 4] x1, y1, x2, y2, scores [B]) of the top-scoring S3FD anchor of each image in [0, 255]."""
    boxes, scores = sfd_lib.decode_outputs(sfd_module.apply(sfd_vars, sfd_lib.prepare_input(images_255, convention)))
    k = jnp.argmax(scores, axis=1)
    box = jnp.take_along_axis(boxes, k[:, None, None], axis=1)[:, 0]
    return box, jnp.take_along_axis(scores, k[:, None], axis=1)[:, 0]


def fan_landmarks(fan_module, fan_vars, images_255, boxes):
    """68 landmarks [B, 68, 2] (image pixels, integer-valued as upstream's `.int()`) of one box per image."""
    center, scale = fan_lib.center_scale(boxes)
    ul = jnp.trunc(fan_lib._inverse(jnp.ones(2), center, scale, fan_lib.INPUT_SIZE)).astype(jnp.int32)
    br = jnp.trunc(fan_lib._inverse(jnp.full(2, float(fan_lib.INPUT_SIZE)), center, scale, fan_lib.INPUT_SIZE))
    crops = jax.vmap(lambda im, u, b: fan_lib._crop_one(im, u, b, fan_lib.INPUT_SIZE))(
        images_255.astype(jnp.float32), ul, br.astype(jnp.int32)
    )
    heat = fan_module.apply(fan_vars, crops / 255.0)[-1]
    pts = fan_lib._inverse(fan_lib.decode_heatmaps(heat), center[:, None, :], scale[:, None], fan_lib.HEATMAP_SIZE)
    return jnp.trunc(pts)


def landmark_theta(sfd, fan, images, fallback_theta, confidence: float = CONFIDENCE, convention: str = "authors"):
    """DECA crop matrices from landmarks for generator images [B, 256, 256, 3] in [-1, 1].

    sfd, fan: (module, variables) pairs. fallback_theta: [B or 1, 3, 3] used where no confident face is found.
    Returns (theta [B, 3, 3], landmarks [B, 68, 2], valid [B]), all without gradient."""
    x = jax.lax.stop_gradient((jnp.clip(images, -1.0, 1.0) + 1.0) / (2.0 + 1e-5) * 255.0)
    box, score = top_face_box(*sfd, x, convention)
    lmk = fan_landmarks(*fan, x, box)
    valid = score > confidence
    theta = deca_crop.crop_matrix(lmk)
    fallback = jnp.broadcast_to(jnp.asarray(fallback_theta, jnp.float32), theta.shape)
    theta = jnp.where(valid[:, None, None], theta, fallback)
    return jax.lax.stop_gradient(theta), lmk, valid
