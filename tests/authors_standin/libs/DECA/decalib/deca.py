"""Stand-in (tests/authors_standin) for DECA's decalib/deca.py, coarse path only: `_create_model` reads E_flame from
deca_model.tar and FLAME's shape basis with this project's reader; `encode` runs the PyTorch reference encoder
(tests/deca_torch_ref.py) and splits the 236 parameters in DECA's order (METHOD.md 3.2)."""

import numpy as np
import torch
from deca_torch_ref import e_flame

from converters.deca import load_flame


class _Encoder(torch.nn.Module):
    def __init__(self, sd):
        super().__init__()
        self.sd = {k: v.float() for k, v in sd.items()}

    def state_dict(self, *a, **k):
        return dict(self.sd)

    def forward(self, x):
        return e_flame(self.sd, x)


class _Flame:
    def __init__(self, model_cfg):
        d = load_flame(model_cfg.flame_model_path)["shapedirs"]
        basis = np.concatenate([d[:, :, : model_cfg.n_shape], d[:, :, 300 : 300 + model_cfg.n_exp]], 2)
        self.shapedirs = torch.from_numpy(basis.astype(np.float32))


class DECA:
    def __init__(self, config=None, device="cuda"):
        self.cfg, self.device = config, device
        self.image_size, self.uv_size = config.dataset.image_size, config.model.uv_size
        self._create_model(config.model)

    def _create_model(self, model_cfg):
        self.param_dict = {k: getattr(model_cfg, "n_" + k) for k in model_cfg.param_list}
        self.checkpoint = torch.load(self.cfg.pretrained_modelpath, map_location="cpu")
        self.E_flame = _Encoder(self.checkpoint["E_flame"])
        self.flame = _Flame(model_cfg)

    def decompose_code(self, code, num_dict):
        out, start = {}, 0
        for key, n in num_dict.items():
            out[key] = code[:, start : start + n]
            start += n
        out["light"] = out["light"].reshape(code.shape[0], 9, 3)
        return out

    def encode(self, images):
        return {**self.decompose_code(self.E_flame(images), self.param_dict), "images": images}
