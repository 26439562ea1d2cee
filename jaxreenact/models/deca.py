"""DECA's coarse path in Flax: the E_flame encoder (ResNet-50 + MLP → 236), the parameter split, FLAME decoding and
the orthographic camera (METHOD.md 3.2-3.4).

    variables = {"params": {"E_flame": ...}, "buffers": {"E_flame": BN stats, "flame": FLAME arrays}}
    codes = deca.apply(variables, images_224)                      # [B,224,224,3] RGB in [0,1] (no normalisation)
    geom = deca.apply(variables, codes, method="decode")            # uses codes["cam"]
    geom = deca.apply(variables, codes, fixed_cam=True, method="decode")   # cam = [8, 0, 0], as the losses use it

`decode` returns dict(vertices [B,V,3] (metres, FLAME frame), landmarks2d [B,68,2], landmarks3d [B,68,3],
trans_verts [B,V,3]) with DECA's camera: `s·(X_xy + t)`, z scaled by s too, y (and z) negated, then ×112 + 112.
"""

from __future__ import annotations

from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.models.flame import FLAME
from jaxreenact.models.resnet import RESNET50_LAYERS, ResNet50
from jaxreenact.nn.torch_layers import Linear

PARAM_SPLIT = (("shape", 100), ("tex", 50), ("exp", 50), ("pose", 6), ("cam", 3), ("light", 27))
FIXED_CAM = (8.0, 0.0, 0.0)  # the camera the trainer forces for its shape/eye/mouth losses
# Constructor arguments of a small random encoder for CPU tests and `:tiny` configs (never for real weights).
TINY_ENCODER = {"encoder_width": 8, "encoder_layers": (1, 1, 1, 1), "encoder_hidden": 64}


class ResnetEncoder(nn.Module):
    """DECA `ResnetEncoder(outsize)`: ResNet-50 → Linear(2048, 1024) → ReLU → Linear(1024, outsize), no last_op."""

    outsize: int = 236
    width: int = 64
    layers: tuple[int, ...] = RESNET50_LAYERS
    hidden: int = 1024

    @nn.compact
    def __call__(self, x):
        f = ResNet50(tuple(self.layers), self.width, name="encoder")(x)
        h = jax.nn.relu(Linear(self.hidden, name="layers_0")(f))
        return Linear(self.outsize, name="layers_2")(h)


def decompose_code(params) -> dict:
    """[B,236] → dict(shape 100, tex 50, exp 50, pose 6, cam 3, light [B,9,3]) in DECA's order."""
    out, start = {}, 0
    for key, n in PARAM_SPLIT:
        out[key] = params[:, start : start + n]
        start += n
    out["light"] = out["light"].reshape(params.shape[0], 9, 3)
    return out


def batch_orth_proj(x, cam):
    """DECA `util.batch_orth_proj`: s·(X_xy + t) and s·z. x [B,N,3], cam [B,3] = (s, tx, ty)."""
    cam = cam.reshape(-1, 1, 3)
    xy = x[:, :, :2] + cam[:, :, 1:]
    return cam[:, :, 0:1] * jnp.concatenate([xy, x[:, :, 2:]], axis=2)


def to_image_space(x, cam, image_size: int = 224):
    """`batch_orth_proj`, y and z negated, then ×size/2 + size/2 (DECA.decode). Returns [B,N,3]."""
    p = batch_orth_proj(x, cam)
    p = p * jnp.array([1.0, -1.0, -1.0], p.dtype)
    half = image_size / 2
    return p * half + half


class DECA(nn.Module):
    """DECA coarse model: `__call__(images)` → codes; `decode(codes)` → geometry; `flame_forward(...)` → raw FLAME."""

    n_vertices: int = 5023
    n_faces: int = 9976
    parents: tuple[int, ...] = (-1, 0, 1, 1, 1)
    image_size: int = 224
    encoder_width: int = 64
    encoder_layers: tuple[int, ...] = RESNET50_LAYERS
    encoder_hidden: int = 1024
    dtype: str = "float32"  # compute dtype of the encoder (float32 | bfloat16); codes and FLAME stay float32

    @classmethod
    def from_config(cls, config: Mapping) -> DECA:
        cfg = dict(config)
        for k in ("parents", "encoder_layers"):
            if k in cfg:
                cfg[k] = tuple(int(p) for p in cfg[k])
        return cls(**cfg)

    def setup(self):
        self.E_flame = ResnetEncoder(
            sum(n for _, n in PARAM_SPLIT), self.encoder_width, tuple(self.encoder_layers), self.encoder_hidden
        )
        self.flame = FLAME(self.n_vertices, self.n_faces, tuple(self.parents))

    def encode(self, images):
        """images [B,224,224,3] RGB in [0,1] → the 236 raw parameters [B,236]."""
        return self.E_flame(images.astype(self.dtype)).astype(jnp.float32)

    def __call__(self, images):
        codes = decompose_code(self.encode(images))
        if self.is_initializing():  # create the FLAME buffers too, so `init` gives the full variable tree
            self.decode(codes)
        return codes

    def flame_forward(self, shape, exp, pose, eye_pose=None, neck_pose=None):
        """Raw FLAME outputs: dict(vertices, landmarks2d [B,68,3], landmarks3d, dyn_lmk_faces_idx)."""
        return self.flame(shape, exp, pose, eye_pose, neck_pose)

    def decode(self, codes: Mapping, fixed_cam: bool = False, cam=None, eye_pose=None, neck_pose=None):
        """DECA.decode on dict(shape, exp, pose[, cam]); `fixed_cam=True` forces cam = [8, 0, 0] (the losses)."""
        out = self.flame(codes["shape"], codes["exp"], codes["pose"], eye_pose, neck_pose)
        b = codes["shape"].shape[0]
        if fixed_cam:
            cam = jnp.broadcast_to(jnp.asarray(FIXED_CAM, codes["shape"].dtype), (b, 3))
        elif cam is None:
            cam = codes["cam"]
        return {
            "vertices": out["vertices"],
            "landmarks2d": to_image_space(out["landmarks2d"], cam, self.image_size)[:, :, :2],
            "landmarks3d": to_image_space(out["landmarks3d"], cam, self.image_size),
            "trans_verts": to_image_space(out["vertices"], cam, self.image_size),
        }
