"""Stand-in (tests/authors_standin) for DECA's rotation_converter.py: axis-angle -> quaternion -> matrix -> the
authors' Euler angles (METHOD.md 2.3: yaw = asin(R20), pitch = atan2(R21/c, R22/c), roll = atan2(R10/c, R00/c)),
and the float32-pi degree conversions."""

import torch

PI = torch.tensor([3.14159265358979323846])


def rad2deg(x):
    return 180.0 * x / PI.to(x.device).to(x.dtype)


def batch_axis2euler(aa):
    theta2 = (aa * aa).sum(-1, keepdim=True)
    theta = torch.sqrt(theta2)
    k = torch.where(
        theta2 > 0, torch.sin(theta * 0.5) / torch.where(theta2 > 0, theta, 1.0), torch.full_like(theta, 0.5)
    )
    q = torch.cat([torch.where(theta2 > 0, torch.cos(theta * 0.5), torch.ones_like(theta)), aa * k], -1)
    w, x, y, z = (q / q.norm(dim=1, keepdim=True)).unbind(1)
    r20, r21, r22 = 2 * x * z - 2 * w * y, 2 * w * x + 2 * y * z, w * w - x * x - y * y + z * z
    r10, r00 = 2 * w * z + 2 * x * y, w * w + x * x - y * y - z * z
    yaw = torch.asin(r20)
    c = torch.cos(yaw)
    return torch.stack([yaw, torch.atan2(r21 / c, r22 / c), torch.atan2(r10 / c, r00 / c)], 1)
