"""ArcFace IR-SE50 (`model_irse.Backbone(112, 50, 'ir_se', drop_ratio=0.6, affine=True)`) and the identity loss.

`ArcFace().apply(variables, faces_112)` -> [B, 512] L2-normalised embeddings of NHWC faces in [-1, 1].
The identity loss view of a 256x256 generator image is `id_crop` (rows 35:223, cols 32:220, then PyTorch's
AdaptiveAvgPool2d(112) with its uneven bins), as `IDLoss.extract_feats` does it.

Flatten: PyTorch flattens the [B, 512, 7, 7] NCHW map C-major before Linear(512*7*7, 512). This module transposes
the NHWC map to NCHW before flattening, so `output_layer_3/weight` is the PyTorch weight transposed, nothing more.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.common.mesh import masked_mean
from jaxreenact.models.irse import ir_se_backbone
from jaxreenact.nn.torch_layers import BatchNorm, Linear, adaptive_avg_pool2d, cosine_similarity, l2_normalize

ID_CROP = (35, 223, 32, 220)  # rows, cols of the 256x256 image kept by the identity loss
COS_EPS = 1e-6  # nn.CosineSimilarity(dim=1, eps=1e-6) of IDLoss


class ArcFace(nn.Module):
    """IR-SE ArcFace backbone; x: [B, 112, 112, 3] in [-1, 1] -> [B, 512] unit-norm embeddings (eval mode)."""

    num_layers: int = 50
    input_size: int = 112
    affine: bool = True  # BatchNorm1d(512, affine=affine) of the output layer
    width: int = 64  # channels of the first stage (64 upstream; smaller only for tests and `:tiny` configs)
    dtype: str = "float32"  # compute dtype (float32 | bfloat16); parameters and outputs stay float32

    @nn.compact
    def __call__(self, x):
        if x.shape[1:] != (self.input_size, self.input_size, 3):
            raise ValueError(f"ArcFace expects [B,{self.input_size},{self.input_size},3] NHWC, got {x.shape}")
        x, _ = ir_se_backbone(x.astype(self.dtype), self.num_layers, width=self.width)
        x = BatchNorm(name="output_layer_0")(x)  # output_layer.1 is Dropout(0.6): identity in eval mode
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # Flatten over NCHW (C-major)
        x = Linear(512, name="output_layer_3")(x)
        x = BatchNorm(affine=self.affine, name="output_layer_4")(x)
        return l2_normalize(x.astype(jnp.float32))  # helpers.l2_norm: x / ||x||, no eps

    def extract_feats(self, images, crop: bool = True):
        """`IDLoss.extract_feats`: crop + pool a 256x256 image (or pool any image to 112 when crop=False), embed."""
        return self(id_crop(images) if crop else adaptive_avg_pool2d(images, self.input_size))


TINY = {"num_layers": 4, "width": 16}  # a small ArcFace of the same kind (`jaxreenact.weights.tiny`)


def id_crop(images_256, size: int = 112):
    """`AdaptiveAvgPool2d(112)(img[:, :, 35:223, 32:220])` in NHWC: [B,256,256,C] -> [B,112,112,C]."""
    r0, r1, c0, c1 = ID_CROP
    return adaptive_avg_pool2d(images_256[:, r0:r1, c0:c1], size)


def _feats(module, variables, y_hat, y, crop):
    """Embeddings of y_hat and of y (gradient stopped, as upstream detaches y's features), in one batch."""
    b = y_hat.shape[0]
    both = jnp.concatenate([y_hat, jax.lax.stop_gradient(y)], axis=0)
    f = module.apply(variables, both, crop, method=ArcFace.extract_feats)
    return f[:b], jax.lax.stop_gradient(f[b:])


def csim(variables, y_hat, y, *, crop: bool = True, module: ArcFace | None = None):
    """Per-sample cosine similarity [B] of the identity embeddings (cosine eps 1e-6), as the identity loss uses it.

    crop=True: 256x256 images through `id_crop`; crop=False: images pooled to 112 (identity for 112 faces).
    """
    fh, fy = _feats(module or ArcFace(), variables, y_hat, y, crop)
    return cosine_similarity(fh, fy, eps=COS_EPS)


def identity_loss(variables, y_hat, y, *, crop: bool = True, module: ArcFace | None = None, weight=None):
    """`IDLoss(y_hat, y, crop)`: mean_b(1 - cos(f(y_hat), stop_gradient(f(y)))), a scalar; `weight` [B]: the
    masked batch mean of `common.mesh.masked_mean` (0 for padded rows)."""
    return masked_mean(1.0 - csim(variables, y_hat, y, crop=crop, module=module), weight)
