"""DECA's crop box as the authors' training computes it, under jit (`model.deca_box="landmarks"`).

On every image DECA reads (sources, targets and the reenacted image inside the gradient step) the authors'
`TestData.get_image_tensor` runs face-alignment's `get_landmarks(image)[0]` (S3FD + 2D-FAN, METHOD.md 3.3) on the
generator output in [0, 255], takes the 68 landmarks' box (left = min x, top = min y, right = max x, bottom = max y,
type `kpt68`), and DECA's `bbox2point` + int(old_size·1.25) + similarity to 224² gives `theta`.

`landmark_theta` does the same, batched and without a host round trip: `range_1_to_255`, then
`fa_landmarks.locate` (face-alignment 1.5.0's own conventions: BGR − mean into S3FD, score > 0.05, NMS 0.3,
score > 0.5, face [0], its uint8 crop with OpenCV's bilinear, FAN, the ¼-pixel decoding, integer landmarks), then
`deca_crop.crop_matrix`. Everything is under `stop_gradient`: upstream computes the box on detached numpy.

No face (face-alignment returns None): the authors' `FAN.run` answers 'error', `get_image_tensor` returns the
uncropped image with the error flag, and `extract_DECA_params` leaves that image's pose, shape, expression and
camera at zero and writes its angles as (−180, −180, −180); nothing masks it downstream (METHOD.md appendix A.8).
The port gives that image the fallback theta (the fixed box of `config.model.deca_box_size/center`) instead and
returns `found = False` for it.

Precision: the box is integers (argmax over FAN's heatmaps, truncated corners, int(old_size·1.25)) derived from
every S3FD and FAN convolution, so one rounding of a bfloat16 pass can move it by a pixel. `landmark_theta` runs
at "highest" whatever the program's policy (`jaxreenact.common.precision.scope`), also inside a step whose other
networks run faster.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxreenact.common import precision
from jaxreenact.face import deca_crop
from jaxreenact.face import fa_landmarks as fa


def landmark_theta(sfd, fan, images, fallback_theta):
    """DECA crop matrices from face-alignment's landmarks for generator images [B, H, W, 3] in [-1, 1] (256² in
    training). sfd, fan: (module, variables) pairs. fallback_theta: [B or 1, 3, 3], used where no face is found.
    Returns (theta [B, 3, 3], landmarks [B, 68, 2] (integer-valued pixels), found [B]), all without gradient."""
    with precision.scope(precision.HIGHEST):
        x = jax.lax.stop_gradient(fa.range_1_to_255(images.astype(jnp.float32)))
        loc = fa.locate(sfd, fan, x, max_faces=1)  # only face [0] is used: the top anchor, if it scores above 0.5
        theta = deca_crop.crop_matrix(loc.landmarks)
        fallback = jnp.broadcast_to(jnp.asarray(fallback_theta, jnp.float32), theta.shape)
        theta = jnp.where(loc.found[:, None, None], theta, fallback)
    return jax.lax.stop_gradient(theta), jax.lax.stop_gradient(loc.landmarks), loc.found
