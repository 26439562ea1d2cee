"""A small pure-PyTorch reference of DECA's coarse path for the gradient and extreme-pose tests (written for these
tests from METHOD.md 3.2-3.4 / 9.3; not upstream code). It is itself checked against the deca_coarse golden."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

BLOCKS = (3, 4, 6, 3)


def _bn(sd, k, x):
    return F.batch_norm(
        x, sd[k + ".running_mean"], sd[k + ".running_var"], sd[k + ".weight"], sd[k + ".bias"], False, 0.0, 1e-5
    )


def e_flame(sd, x):
    """x NCHW [0,1] → [B,236] with the E_flame state dict `sd` (ResNet-50 v1.5 + MLP)."""
    x = F.relu(_bn(sd, "encoder.bn1", F.conv2d(x, sd["encoder.conv1.weight"], stride=2, padding=3)))
    x = F.max_pool2d(x, 3, 2, 1)
    for s, n in enumerate(BLOCKS, start=1):
        for i in range(n):
            p = f"encoder.layer{s}.{i}"
            st = 2 if (i == 0 and s > 1) else 1
            o = F.relu(_bn(sd, p + ".bn1", F.conv2d(x, sd[p + ".conv1.weight"])))
            o = F.relu(_bn(sd, p + ".bn2", F.conv2d(o, sd[p + ".conv2.weight"], stride=st, padding=1)))
            o = _bn(sd, p + ".bn3", F.conv2d(o, sd[p + ".conv3.weight"]))
            if i == 0:
                x = _bn(sd, p + ".downsample.1", F.conv2d(x, sd[p + ".downsample.0.weight"], stride=st))
            x = F.relu(o + x)
    x = F.avg_pool2d(x, 7, 1).flatten(1)
    x = F.relu(F.linear(x, sd["layers.0.weight"], sd["layers.0.bias"]))
    return F.linear(x, sd["layers.2.weight"], sd["layers.2.bias"])


def rodrigues(r):
    angle = torch.norm(r + 1e-8, dim=1, keepdim=True)
    d = r / angle
    cos, sin = torch.cos(angle)[:, :, None], torch.sin(angle)[:, :, None]
    z = torch.zeros_like(d[:, 0])
    k = torch.stack([z, -d[:, 2], d[:, 1], d[:, 2], z, -d[:, 0], -d[:, 1], d[:, 0], z], 1).view(-1, 3, 3)
    return torch.eye(3)[None] + sin * k + (1 - cos) * torch.bmm(k, k)


class Flame:
    """FLAME + LBS with DECA's choices, from the buffers dict of `converters.deca.flame_buffers` (numpy)."""

    def __init__(self, buffers: dict, parents):
        self.b = {k: torch.from_numpy(np.asarray(v)) for k, v in buffers.items()}
        for k in ("faces", "lmk_faces_idx", "dynamic_lmk_faces_idx", "full_lmk_faces_idx"):
            self.b[k] = self.b[k].long()
        self.parents = list(parents)

    def __call__(self, shape, exp, pose, eye_pose=None, neck_pose=None):
        b = self.b
        n = shape.shape[0]
        eye_pose = torch.zeros(n, 6) if eye_pose is None else eye_pose
        neck_pose = torch.zeros(n, 3) if neck_pose is None else neck_pose.expand(n, 3)
        betas = torch.cat([shape, exp], 1)
        full = torch.cat([pose[:, :3], neck_pose, pose[:, 3:], eye_pose], 1)
        v_shaped = b["v_template"][None] + torch.einsum("bl,mkl->bmk", betas, b["shapedirs"])
        joints = torch.einsum("bik,ji->bjk", v_shaped, b["J_regressor"])
        rot = rodrigues(full.view(-1, 3)).view(n, -1, 3, 3)
        feat = (rot[:, 1:] - torch.eye(3)).view(n, -1)
        v_posed = v_shaped + (feat @ b["posedirs"]).view(n, -1, 3)
        nj = len(self.parents)
        rel = joints.clone()
        rel[:, 1:] = joints[:, 1:] - joints[:, self.parents[1:]]
        tm = torch.zeros(n, nj, 4, 4)
        tm[:, :, :3, :3] = rot
        tm[:, :, :3, 3] = rel
        tm[:, :, 3, 3] = 1
        chain = [tm[:, 0]]
        for i in range(1, nj):
            chain.append(chain[self.parents[i]] @ tm[:, i])
        tr = torch.stack(chain, 1)
        jh = torch.cat([joints, torch.zeros(n, nj, 1)], 2)[..., None]
        a = tr.clone()
        a[:, :, :, 3:] = tr[:, :, :, 3:] - tr @ jh
        t = (b["lbs_weights"][None] @ a.view(n, nj, 16)).view(n, -1, 4, 4)
        vh = torch.cat([v_posed, torch.ones(n, v_posed.shape[1], 1)], 2)[..., None]
        verts = (t @ vh)[:, :, :3, 0]
        # dynamic contour: neck chain (neck, then global), y rotation without the minus sign
        rel_r = rot[:, 0] @ rot[:, 1]
        y = torch.atan2(-rel_r[:, 2, 0], torch.sqrt(rel_r[:, 0, 0] ** 2 + rel_r[:, 1, 0] ** 2))
        y = torch.round(torch.clamp(y * 180.0 / np.pi, max=39)).long()
        y = torch.where(y < 0, torch.where(y < -39, torch.full_like(y, 78), 39 - y), y)
        idx = torch.cat([b["dynamic_lmk_faces_idx"][y], b["lmk_faces_idx"][None].expand(n, -1)], 1)
        bary = torch.cat([b["dynamic_lmk_bary_coords"][y], b["lmk_bary_coords"][None].expand(n, -1, -1)], 1)

        def lmk(i, w):
            fv = b["faces"][i]  # [B,L,3]
            pts = torch.stack([verts[k][fv[k]] for k in range(n)])  # [B,L,3,3]
            return torch.einsum("blfi,blf->bli", pts, w)

        l2 = lmk(idx, bary)
        l3 = lmk(b["full_lmk_faces_idx"][None].expand(n, -1), b["full_lmk_bary_coords"][None].expand(n, -1, -1))
        return verts, l2, l3, idx[:, :17]


def image_space(x, cam):
    cam = cam.view(-1, 1, 3)
    p = cam[:, :, 0:1] * torch.cat([x[:, :, :2] + cam[:, :, 1:], x[:, :, 2:]], 2)
    p = p * torch.tensor([1.0, -1.0, -1.0])
    return p * 112 + 112


def pair_loss(gt, r, pairs):
    loss = 0
    for i, j in pairs:
        loss = loss + F.l1_loss((gt[:, i] - gt[:, j]).abs(), (r[:, i] - r[:, j]).abs())
    return loss / len(pairs)
