"""Stand-in (tests/authors_standin) for the authors' libs/criteria/lpips/lpips.py: this project's reference LPIPS
(tests/torch_face_ref.py `LPIPSRef`) behind their call conventions (METHOD.md 4.2): `LPIPS(net_type='alex')` takes
AlexNet's `features` from torchvision and the heads from the LPIPS download (`torch.hub.load_state_dict_from_url`,
which the recorder points at pretrained_models/), has the heads as `lin[i]` (Identity, 1x1 conv) and returns the sum
over layers and batch divided by B."""

import torch
from torch import nn
from torchvision import models

from torch_face_ref import LPIPSRef

URL = "https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/alex.pth"


class LPIPS(nn.Module):
    def __init__(self, net_type="alex", version="0.1"):
        super().__init__()
        self.ref = LPIPSRef()
        self.ref.features.load_state_dict(models.alexnet(True).features.state_dict())
        self.lin = nn.ModuleList(nn.Sequential(nn.Identity(), h) for h in self.ref.heads)
        sd = torch.hub.load_state_dict_from_url(URL, map_location="cpu")
        self.lin.load_state_dict({k.replace("lin", "").replace("model.", ""): v for k, v in sd.items()})
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x, y):
        maps = [lin((fx - fy) ** 2) for fx, fy, lin in zip(self.ref.taps(x), self.ref.taps(y), self.lin, strict=True)]
        return torch.sum(torch.cat([m.mean((2, 3), True) for m in maps], 0)) / x.shape[0]
