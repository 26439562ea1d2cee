"""Stand-in (tests/authors_standin) for the authors' libs/DECA/estimate_DECA.py `DECA_model`: DECA one image at a
time through TestData's crop; the Euler angles of each global pose (METHOD.md 2.3)."""

import torch

from .decalib.datasets import datasets
from .decalib.deca import DECA
from .decalib.utils.config import cfg as deca_cfg
from .decalib.utils.rotation_converter import batch_axis2euler, rad2deg


class DECA_model:  # noqa: N801  (the authors' name)
    def __init__(self, device):
        deca_cfg.model.use_tex = False
        self.deca = DECA(config=deca_cfg, device=device)
        self.data = datasets.TestData()

    def extract_DECA_params(self, images):
        n = images.shape[0]
        pose, shape, exp, angles, cam = (torch.zeros(n, k) for k in (6, 100, 50, 3, 3))
        for b in range(n):
            crop, _ = self.data.get_image_tensor(images[b].clone())
            code = self.deca.encode(crop[None])
            pose[b], shape[b], exp[b], cam[b] = code["pose"][0], code["shape"][0], code["exp"][0], code["cam"][0]
            angles[b] = rad2deg(batch_axis2euler(code["pose"][:, :3]))[0]
        return pose, shape, exp, angles, cam
