"""Stand-in (tests/authors_standin) for the authors' e4e `Encoder4Editing`: a small encoder with the same call
(image [B, 3, H, W] in [-1, 1] -> W+ [B, n_latent, 512]); the reenactment records its codes as an input."""

import math

import torch


class Encoder4Editing(torch.nn.Module):
    def __init__(self, num_layers, mode="ir", size=256):
        super().__init__()
        self.n_latent = int(math.log2(size)) * 2 - 2
        self.pool = torch.nn.AdaptiveAvgPool2d(4)
        self.linear = torch.nn.Linear(48, self.n_latent * 512)

    def forward(self, x):
        return self.linear(self.pool(x).flatten(1)).view(x.shape[0], self.n_latent, 512)
