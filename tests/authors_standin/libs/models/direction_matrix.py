"""Stand-in (tests/authors_standin) for the authors' DirectionMatrix (METHOD.md 2.1): Linear(input_dim ->
shift_dim * num_layers), reshaped to [B, num_layers, shift_dim]."""

from torch import nn


class DirectionMatrix(nn.Module):
    def __init__(self, shift_dim, input_dim=None, out_dim=None, inner_dim=512, bias=True, w_plus=False,
                 num_layers=14, initialization="normal"):  # fmt: skip
        super().__init__()
        self.shift_dim, self.num_layers = shift_dim, num_layers
        self.linear = nn.Linear(input_dim, shift_dim * num_layers, bias=bias)

    def forward(self, x):
        return self.linear(x).view(x.shape[0], self.num_layers, self.shift_dim)
