"""The IR-SE body (TreB1eN InsightFace `model_irse.py` / pSp `helpers.py`) shared by ArcFace and e4e, NHWC.

A unit `bottleneck_IR_SE(in, depth, stride)`:
  res      = BN -> Conv3x3 s1 (no bias) -> PReLU(depth) -> Conv3x3 stride s (no bias) -> BN -> SE(reduction 16)
  shortcut = MaxPool2d(1, stride) (pure subsampling) when in == depth, else Conv1x1 stride s (no bias) -> BN
  out      = res + shortcut
BatchNorm is frozen (eps 1e-5, running stats in `buffers`). Submodules are named after the PyTorch keys
(`input_layer_0` for `input_layer.0`, `body_3` for `body.3`, `res_layer_5` ...), so converters map keys 1:1.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxreenact.nn.torch_layers import BatchNorm, Conv2d, PReLU

# get_blocks(num_layers): per stage (in_channel, depth, num_units); the first unit of each stage has stride 2.
_STAGES = {
    50: ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3)),
    100: ((64, 64, 3), (64, 128, 13), (128, 256, 30), (256, 512, 3)),
    152: ((64, 64, 3), (64, 128, 8), (128, 256, 36), (256, 512, 3)),
    4: ((64, 64, 1), (64, 128, 1), (128, 256, 1), (256, 512, 1)),  # tiny: tests and `:tiny` configs only
}


def unit_specs(num_layers: int = 50, width: int = 64) -> list[tuple[int, int, int]]:
    """[(in_channel, depth, stride)] of every body unit, in `body.<i>` order; channels scaled by width/64."""
    if num_layers not in _STAGES:
        raise ValueError(f"IR-SE num_layers must be one of {sorted(_STAGES)}, got {num_layers}")
    out = []
    for cin, depth, n in _STAGES[num_layers]:
        cin, depth = cin * width // 64, depth * width // 64
        out.append((cin, depth, 2))
        out += [(depth, depth, 1)] * (n - 1)
    return out


def stage_ends(num_layers: int = 50) -> tuple[int, ...]:
    """Index of the last body unit of each stage (e4e's FPN taps are those of stages 2-4: 6, 20, 23 for 50)."""
    return tuple(int(i) - 1 for i in np.cumsum([n for _, _, n in _STAGES[num_layers]]))


class SEModule(nn.Module):
    """Squeeze-excitation: x * sigmoid(fc2(relu(fc1(mean_hw(x))))), fc = 1x1 convs without bias."""

    reduction: int = 16

    @nn.compact
    def __call__(self, x):
        c = x.shape[-1]
        s = jnp.mean(x, axis=(1, 2), keepdims=True)
        s = Conv2d(c // self.reduction, 1, use_bias=False, name="fc1")(s)
        s = jax.nn.relu(s)
        s = Conv2d(c, 1, use_bias=False, name="fc2")(s)
        return x * jax.nn.sigmoid(s)


class BottleneckIRSE(nn.Module):
    """`bottleneck_IR_SE(in_channel, depth, stride)`; x: [N,H,W,in] -> [N,ceil(H/s),ceil(W/s),depth]."""

    depth: int
    stride: int

    @nn.compact
    def __call__(self, x):
        s = self.stride
        if x.shape[-1] == self.depth:
            shortcut = x[:, ::s, ::s]  # MaxPool2d(kernel 1, stride s): plain subsampling
        else:
            shortcut = Conv2d(self.depth, 1, s, use_bias=False, name="shortcut_layer_0")(x)
            shortcut = BatchNorm(name="shortcut_layer_1")(shortcut)
        r = BatchNorm(name="res_layer_0")(x)
        r = Conv2d(self.depth, 3, 1, 1, use_bias=False, name="res_layer_1")(r)
        r = PReLU(name="res_layer_2")(r)
        r = Conv2d(self.depth, 3, s, 1, use_bias=False, name="res_layer_3")(r)
        r = BatchNorm(name="res_layer_4")(r)
        r = SEModule(16, name="res_layer_5")(r)
        return r + shortcut


def ir_se_backbone(x, num_layers: int = 50, taps: tuple[int, ...] = (), width: int = 64):
    """Run `input_layer` and `body` inside the calling module's `@nn.compact` method (names land at its top level).

    x: [N,H,W,3]. Returns (body output [N,H/16,W/16,512], {i: output of body unit i for i in taps}).
    """
    x = Conv2d(width, 3, 1, 1, use_bias=False, name="input_layer_0")(x)
    x = BatchNorm(name="input_layer_1")(x)
    x = PReLU(name="input_layer_2")(x)
    feats = {}
    for i, (_, depth, stride) in enumerate(unit_specs(num_layers, width)):
        x = BottleneckIRSE(depth, stride, name=f"body_{i}")(x)
        if i in taps:
            feats[i] = x
    return x, feats
