"""Stand-in (tests/authors_standin) for the authors' libs/gan/StyleGAN2/model.py: this project's reference generator
(tests/torch_reference/stylegan2.py) behind the authors' call conventions (METHOD.md 1.2): `G([styles], ...)`
returns (image, latent or None), `get_latent`, `mean_latent(n)`; it imports their op package as theirs does."""

import math

import torch
import torch.nn.functional as F

from libs.gan.StyleGAN2.op import upfirdn2d  # noqa: F401  (imported as the authors' model imports it)
from torch_reference import stylegan2 as ref


class Generator(ref.Generator):
    def mean_latent(self, n_latent):
        z = torch.randn(n_latent, self.style_dim, device=self.input.input.device)
        return self.style(z).mean(0, keepdim=True)

    def forward(self, styles, return_latents=False, truncation=1, truncation_latent=None, input_is_latent=False):
        img, latent = super().forward(styles[0], truncation, truncation_latent, input_is_latent, return_latents=True)
        return (img, latent) if return_latents else (img, None)


class ScaledLeakyReLU(torch.nn.Module):
    def __init__(self, negative_slope=0.2):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, negative_slope=self.negative_slope) * math.sqrt(2)
