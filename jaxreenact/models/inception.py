"""The FID Inception-v3 (pytorch-fid's `fid_inception_v3`, weights `pt_inception-2015-12-05-6726825d.pth`), NHWC.

This is the network behind the standard FID numbers: TensorFlow's 2015-12-05 Inception graph ported to PyTorch by
pytorch-fid. It is torchvision's `Inception3` layout (no AuxLogits) with the FID patches:
  * `Mixed_5b..5d` (A), `Mixed_6b..6e` (C) and `Mixed_7b` (E_1) pool with `avg_pool2d(3, 1, 1,
    count_include_pad=False)` (TensorFlow does not count the padded zeros);
  * `Mixed_7c` (E_2) pools with `max_pool2d(3, 1, 1)` (a quirk of the TF graph);
  * `Mixed_6a` (B) and `Mixed_7a` (D) are torchvision's, with `max_pool2d(3, 2)`.
`BasicConv2d` = Conv2d (no bias) -> frozen BatchNorm (eps 0.001) -> ReLU.

Input: [N, H, W, 3] RGB in [0, 1]. As pytorch-fid's `InceptionV3(resize_input=True, normalize_input=True)`, it is
resized to 299x299 (bilinear, align_corners=False) and mapped to [-1, 1] (`2x - 1`). Output: the 2048-d pool3
features [N, 2048] (global average of `Mixed_7c`), the activations FID is computed on.

Submodules carry the PyTorch attribute names (`Conv2d_1a_3x3/conv`, `Mixed_6b/branch7x7dbl_3/bn`, ...), so the
PyTorch key of a leaf is its Flax path joined with dots. The classifier `fc` (2048 -> 1008) is not part of the
module: FID does not use it (the converter accounts for its keys).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxreenact.nn.torch_layers import BatchNorm, Conv2d, avg_pool2d, interpolate_bilinear, max_pool2d

FID_INPUT_SIZE = 299
FEATURE_DIM = 2048


class BasicConv2d(nn.Module):
    """torchvision's `BasicConv2d(in, out, kernel_size, stride, padding)`: conv (no bias) -> BN(eps 1e-3) -> ReLU."""

    out_channels: int
    kernel_size: int | Sequence[int] = 1
    stride: int = 1
    padding: int | Sequence[int] = 0

    @nn.compact
    def __call__(self, x):
        x = Conv2d(self.out_channels, self.kernel_size, self.stride, self.padding, use_bias=False, name="conv")(x)
        x = BatchNorm(eps=0.001, name="bn")(x)
        return jax.nn.relu(x)


def _tf_avg_pool(x):
    """The FID blocks' pool: 3x3, stride 1, pad 1, padded zeros not counted."""
    return avg_pool2d(x, 3, 1, 1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1 = BasicConv2d(64, 1, name="branch1x1")(x)
        b5 = BasicConv2d(48, 1, name="branch5x5_1")(x)
        b5 = BasicConv2d(64, 5, padding=2, name="branch5x5_2")(b5)
        b3 = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
        b3 = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(b3)
        b3 = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_3")(b3)
        bp = BasicConv2d(self.pool_features, 1, name="branch_pool")(_tf_avg_pool(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv2d(384, 3, stride=2, name="branch3x3")(x)
        bd = BasicConv2d(64, 1, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(96, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = BasicConv2d(96, 3, stride=2, name="branch3x3dbl_3")(bd)
        bp = max_pool2d(x, 3, 2)
        return jnp.concatenate([b3, bd, bp], axis=-1)


class FIDInceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        b1 = BasicConv2d(192, 1, name="branch1x1")(x)
        b7 = BasicConv2d(c7, 1, name="branch7x7_1")(x)
        b7 = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = BasicConv2d(c7, 1, name="branch7x7dbl_1")(x)
        bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = BasicConv2d(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = BasicConv2d(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = BasicConv2d(192, 1, name="branch_pool")(_tf_avg_pool(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = BasicConv2d(192, 1, name="branch3x3_1")(x)
        b3 = BasicConv2d(320, 3, stride=2, name="branch3x3_2")(b3)
        b7 = BasicConv2d(192, 1, name="branch7x7x3_1")(x)
        b7 = BasicConv2d(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = BasicConv2d(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = BasicConv2d(192, 3, stride=2, name="branch7x7x3_4")(b7)
        bp = max_pool2d(x, 3, 2)
        return jnp.concatenate([b3, b7, bp], axis=-1)


class FIDInceptionE(nn.Module):
    """`FIDInceptionE_1` (`max_pool=False`: TF average pool) or `FIDInceptionE_2` (`max_pool=True`)."""

    max_pool: bool = False

    @nn.compact
    def __call__(self, x):
        b1 = BasicConv2d(320, 1, name="branch1x1")(x)
        b3 = BasicConv2d(384, 1, name="branch3x3_1")(x)
        b3 = jnp.concatenate(
            [
                BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
                BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3),
            ],
            axis=-1,
        )
        bd = BasicConv2d(448, 1, name="branch3x3dbl_1")(x)
        bd = BasicConv2d(384, 3, padding=1, name="branch3x3dbl_2")(bd)
        bd = jnp.concatenate(
            [
                BasicConv2d(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
                BasicConv2d(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd),
            ],
            axis=-1,
        )
        pooled = max_pool2d(x, 3, 1, 1) if self.max_pool else _tf_avg_pool(x)
        bp = BasicConv2d(192, 1, name="branch_pool")(pooled)
        return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
    """pytorch-fid's `InceptionV3([3])` with the FID weights: [N, H, W, 3] in [0, 1] -> pool3 features [N, 2048].

    `resize_input`: bilinear resize (align_corners=False) to 299x299 first, as pytorch-fid does by default.
    `normalize_input`: map [0, 1] to [-1, 1]. Both True reproduce the standard FID activations.
    """

    resize_input: bool = True
    normalize_input: bool = True

    @nn.compact
    def __call__(self, x):
        if x.ndim != 4 or x.shape[-1] != 3:
            raise ValueError(f"FIDInceptionV3 expects NHWC RGB images [N, H, W, 3], got shape {x.shape}")
        x = x.astype(jnp.float32)
        if self.resize_input:
            x = interpolate_bilinear(x, (FID_INPUT_SIZE, FID_INPUT_SIZE), align_corners=False)
        if self.normalize_input:
            x = 2.0 * x - 1.0
        # Block 0
        x = BasicConv2d(32, 3, stride=2, name="Conv2d_1a_3x3")(x)
        x = BasicConv2d(32, 3, name="Conv2d_2a_3x3")(x)
        x = BasicConv2d(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
        x = max_pool2d(x, 3, 2)
        # Block 1
        x = BasicConv2d(80, 1, name="Conv2d_3b_1x1")(x)
        x = BasicConv2d(192, 3, name="Conv2d_4a_3x3")(x)
        x = max_pool2d(x, 3, 2)
        # Block 2
        x = FIDInceptionA(32, name="Mixed_5b")(x)
        x = FIDInceptionA(64, name="Mixed_5c")(x)
        x = FIDInceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        x = FIDInceptionC(128, name="Mixed_6b")(x)
        x = FIDInceptionC(160, name="Mixed_6c")(x)
        x = FIDInceptionC(160, name="Mixed_6d")(x)
        x = FIDInceptionC(192, name="Mixed_6e")(x)
        # Block 3
        x = InceptionD(name="Mixed_7a")(x)
        x = FIDInceptionE(max_pool=False, name="Mixed_7b")(x)
        x = FIDInceptionE(max_pool=True, name="Mixed_7c")(x)
        return jnp.mean(x, axis=(1, 2))  # AdaptiveAvgPool2d((1, 1)) + flatten
