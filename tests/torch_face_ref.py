"""Small pure-PyTorch reference implementations of the face networks (issue 3) and of the authors' FAN crop and
heatmap decoding, written for the parity tests and bench/face_networks.py. They follow the upstream module layout
(so upstream state dicts load with strict=True) but are this project's own code, NCHW, eval mode only.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_STAGES = {50: ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))}


class SE(nn.Module):
    def __init__(self, c, r=16):
        super().__init__()
        self.fc1 = nn.Conv2d(c, c // r, 1, bias=False)
        self.fc2 = nn.Conv2d(c // r, c, 1, bias=False)

    def forward(self, x):
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(s))))


class Unit(nn.Module):
    def __init__(self, cin, depth, stride):
        super().__init__()
        self.stride = stride
        if cin != depth:
            self.shortcut_layer = nn.Sequential(nn.Conv2d(cin, depth, 1, stride, bias=False), nn.BatchNorm2d(depth))
        else:
            self.shortcut_layer = None
        self.res_layer = nn.Sequential(
            nn.BatchNorm2d(cin),
            nn.Conv2d(cin, depth, 3, 1, 1, bias=False),
            nn.PReLU(depth),
            nn.Conv2d(depth, depth, 3, stride, 1, bias=False),
            nn.BatchNorm2d(depth),
            SE(depth),
        )

    def forward(self, x):
        sc = x[:, :, :: self.stride, :: self.stride] if self.shortcut_layer is None else self.shortcut_layer(x)
        return self.res_layer(x) + sc


def _body():
    units = []
    for cin, depth, n in _STAGES[50]:
        units.append(Unit(cin, depth, 2))
        units += [Unit(depth, depth, 1) for _ in range(n - 1)]
    return nn.Sequential(*units)


def _stem():
    return nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))


class ArcFaceRef(nn.Module):
    """IR-SE50 backbone at 112: [B,3,112,112] -> unit-norm [B,512]."""

    def __init__(self):
        super().__init__()
        self.input_layer = _stem()
        self.body = _body()
        self.output_layer = nn.Sequential(
            nn.BatchNorm2d(512), nn.Dropout(0.6), nn.Flatten(), nn.Linear(512 * 49, 512), nn.BatchNorm1d(512)
        )

    def forward(self, x):
        f = self.output_layer(self.body(self.input_layer(x)))
        return f / f.norm(dim=1, keepdim=True)

    def extract(self, img, crop=True):
        if crop:
            img = img[:, :, 35:223, 32:220]
        return self(F.adaptive_avg_pool2d(img, 112))

    def id_loss(self, y_hat, y, crop=True):
        fy = self.extract(y, crop).detach()
        fh = self.extract(y_hat, crop)
        return (1 - F.cosine_similarity(fh, fy, dim=1, eps=1e-6)).mean()


class StyleBlock(nn.Module):
    def __init__(self, spatial, c=512):
        super().__init__()
        layers = []
        for _ in range(int(math.log2(spatial))):
            layers += [nn.Conv2d(c, c, 3, 2, 1), nn.LeakyReLU(0.01)]
        self.convs = nn.Sequential(*layers)
        self.linear = EqLinear(c)

    def forward(self, x):
        return self.linear(self.convs(x).flatten(1))


class EqLinear(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c, c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        return F.linear(x, self.weight / math.sqrt(self.weight.shape[1]), self.bias)


class E4ERef(nn.Module):
    """Encoder4Editing(50, 'ir_se', 256): [B,3,256,256] -> [B,14,512] (no latent_avg)."""

    def __init__(self, n_styles=14):
        super().__init__()
        self.input_layer = _stem()
        self.body = _body()
        self.styles = nn.ModuleList(StyleBlock(16 if i < 3 else 32 if i < 7 else 64) for i in range(n_styles))
        self.latlayer1 = nn.Conv2d(256, 512, 1)
        self.latlayer2 = nn.Conv2d(128, 512, 1)

    @staticmethod
    def _up_add(x, y):
        return F.interpolate(x, size=y.shape[2:], mode="bilinear", align_corners=True) + y

    def forward(self, x):
        x = self.input_layer(x)
        taps = {}
        for i, unit in enumerate(self.body):
            x = unit(x)
            taps[i] = x
        c1, c2, c3 = taps[6], taps[20], taps[23]
        w0 = self.styles[0](c3)
        rows = [w0]
        feat = c3
        for i in range(1, len(self.styles)):
            if i == 3:
                p2 = self._up_add(c3, self.latlayer1(c2))
                feat = p2
            elif i == 7:
                feat = self._up_add(p2, self.latlayer2(c1))
            rows.append(w0 + self.styles[i](feat))
        return torch.stack(rows, 1)


class LPIPSRef(nn.Module):
    """LPIPS-alex v0.1 as the pSp port computes it; forward -> [B] per-pair distances."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, 11, 4, 2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(64, 192, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(3, 2),
            nn.Conv2d(192, 384, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, 3, padding=1),
            nn.ReLU(),
        )
        self.heads = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in (64, 192, 384, 256, 256))
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def taps(self, x):
        x = (x - self.shift) / self.scale
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in (1, 4, 7, 9, 11):
                out.append(x / (torch.sqrt((x * x).sum(1, keepdim=True) + 1e-9) + 1e-10))
        return out

    def forward(self, x, y):
        d = 0
        for fx, fy, head in zip(self.taps(x), self.taps(y), self.heads, strict=True):
            d = d + head((fx - fy) ** 2).mean(dim=(1, 2, 3))
        return d

    def load_weights(self, alex_sd, lin_sd):
        self.features.load_state_dict({k[len("features.") :]: v for k, v in alex_sd.items()}, strict=True)
        for i, h in enumerate(self.heads):
            h.weight.data.copy_(lin_sd[f"lin{i}.model.1.weight"])


def load(module: nn.Module, sd: dict) -> nn.Module:
    """Load an upstream state dict (every key used; `num_batches_tracked` may be absent), eval mode."""
    missing, unexpected = module.load_state_dict(sd, strict=False)
    bad = [k for k in missing if not k.endswith("num_batches_tracked")] + list(unexpected)
    if bad:
        raise KeyError(f"state dict mismatch: {bad[:5]}")
    return module.eval().float()


# ---- the authors' FAN crop and heatmap decoding (landmarks_estimation.py / utils.py), re-stated ----


def fan_transform(point, center, scale, resolution):
    pt = torch.ones(3)
    pt[0], pt[1] = float(point[0]), float(point[1])
    h = 200.0 * float(scale)
    t = torch.eye(3)
    t[0, 0] = resolution / h
    t[1, 1] = resolution / h
    t[0, 2] = resolution * (-float(center[0]) / h + 0.5)
    t[1, 2] = resolution * (-float(center[1]) / h + 0.5)
    return torch.matmul(torch.inverse(t), pt)[0:2]


def fan_crop(image, center, scale, res=256):
    """crop_torch: zero canvas [ul, br) + (old torchvision tensor) Resize = bilinear, no antialias."""
    l1 = fan_transform([1, 1], center, scale, res).int()
    l2 = fan_transform([res, res], center, scale, res).int()
    img = torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1)[None]
    new = torch.zeros((1, 3, int(l2[1] - l1[1]), int(l2[0] - l1[0])))
    hgt, wid = img.shape[2], img.shape[3]
    nx = (max(1, -l1[0] + 1), min(l2[0], wid) - l1[0])
    ny = (max(1, -l1[1] + 1), min(l2[1], hgt) - l1[1])
    ox = (max(1, l1[0] + 1), min(l2[0], wid))
    oy = (max(1, l1[1] + 1), min(l2[1], hgt))
    new[:, :, int(ny[0]) - 1 : int(ny[1]), int(nx[0]) - 1 : int(nx[1])] = img[
        :, :, int(oy[0]) - 1 : int(oy[1]), int(ox[0]) - 1 : int(ox[1])
    ]
    return F.interpolate(new, size=(res, res), mode="bilinear", align_corners=False)


def fan_preds(hm, center, scale, integer=True):
    """get_preds_fromhm (the local one, with floor) + transform(..., invert=True)[.int()]."""
    b, c, h, w = hm.shape
    _, idx = torch.max(hm.view(b, c, h * w), 2)
    idx = idx + 1
    preds = idx.view(b, c, 1).repeat(1, 1, 2).float()
    preds[..., 0] = (preds[..., 0] - 1) % w + 1
    preds[..., 1] = torch.floor((preds[..., 1] - 1) / h) + 1
    for i in range(b):
        for j in range(c):
            hm_ = hm[i, j]
            px, py = int(preds[i, j, 0]) - 1, int(preds[i, j, 1]) - 1
            if 0 < px < 63 and 0 < py < 63:
                diff = torch.tensor([hm_[py, px + 1] - hm_[py, px - 1], hm_[py + 1, px] - hm_[py - 1, px]])
                preds[i, j] += diff.sign() * 0.25
    preds -= 0.5
    out = torch.zeros_like(preds)
    for i in range(b):
        for j in range(c):
            p = fan_transform(preds[i, j], center[i], scale[i], h)
            out[i, j] = p.int().float() if integer else p
    return preds, out
