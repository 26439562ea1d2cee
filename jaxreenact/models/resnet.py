"""torchvision-style ResNet-50 v1.5 (the stride sits on the 3×3 conv), NHWC, as DECA's `models/resnet.py` builds it.

`ResNet50` returns the 2048-d feature after `AvgPool2d(7, stride=1)` (224×224 input → 7×7 → 1×1), without the
ImageNet `fc` layer, exactly like DECA's `load_ResNet50Model()`. BatchNorm is frozen (eps 1e-5, running stats in
`buffers`). Submodules are named after the PyTorch keys: `conv1`, `bn1`, `layer1_0` (`layer1.0`),
`downsample_0` / `downsample_1` (`downsample.0` / `.1`).
"""

from __future__ import annotations

import flax.linen as nn
import jax

from jaxreenact.nn.torch_layers import BatchNorm, Conv2d, avg_pool2d, max_pool2d

RESNET50_LAYERS = (3, 4, 6, 3)


class Bottleneck(nn.Module):
    """torchvision `Bottleneck(inplanes, planes, stride, downsample)`: 1×1 → 3×3 (stride) → 1×1 (×4) + shortcut."""

    planes: int
    stride: int = 1
    downsample: bool = False

    @nn.compact
    def __call__(self, x):
        out = jax.nn.relu(BatchNorm(name="bn1")(Conv2d(self.planes, 1, use_bias=False, name="conv1")(x)))
        out = Conv2d(self.planes, 3, stride=self.stride, padding=1, use_bias=False, name="conv2")(out)
        out = jax.nn.relu(BatchNorm(name="bn2")(out))
        out = BatchNorm(name="bn3")(Conv2d(self.planes * 4, 1, use_bias=False, name="conv3")(out))
        if self.downsample:
            x = Conv2d(self.planes * 4, 1, stride=self.stride, use_bias=False, name="downsample_0")(x)
            x = BatchNorm(name="downsample_1")(x)
        return jax.nn.relu(out + x)


class ResNet50(nn.Module):
    """DECA's ResNet-50 trunk; x: [N, 224, 224, 3] → [N, 32·width] = [N, 2048] (AvgPool2d(7, stride=1), flattened).

    `width` (64) and `layers` ((3, 4, 6, 3)) exist only for small random test networks (`jaxreenact.weights.tiny`).
    """

    layers: tuple[int, ...] = RESNET50_LAYERS
    width: int = 64

    @nn.compact
    def __call__(self, x):
        w = self.width
        x = Conv2d(w, 7, stride=2, padding=3, use_bias=False, name="conv1")(x)
        x = jax.nn.relu(BatchNorm(name="bn1")(x))
        x = max_pool2d(x, 3, stride=2, padding=1)
        inplanes = w
        for stage, (planes, blocks) in enumerate(zip((w, 2 * w, 4 * w, 8 * w), tuple(self.layers)), start=1):
            stride = 1 if stage == 1 else 2
            for i in range(blocks):
                s = stride if i == 0 else 1
                ds = i == 0 and (s != 1 or inplanes != planes * 4)
                x = Bottleneck(planes, s, ds, name=f"layer{stage}_{i}")(x)
                inplanes = planes * 4
        x = avg_pool2d(x, 7, stride=1)
        return x.reshape(x.shape[0], -1)  # [N, 1, 1, 2048] → [N, 2048] (NCHW flatten agrees at 1×1)
