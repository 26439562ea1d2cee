"""Stand-in (tests/authors_standin) for the authors' libs/utilities/image_utils.py: the [-1, 1] -> [0, 255] map their
paired mode feeds LPIPS (METHOD.md 4.2)."""


def torch_range_1_to_255(image):
    return image.clamp(-1, 1).add(1).div(2 + 1e-5).mul(255.0)


def image_to_tensor(image):
    """HWC uint8 -> CHW float in [-1, 1]: u8 / 255 * 2 - 1."""
    import numpy as np
    import torch

    return torch.tensor(np.transpose(image, (2, 0, 1))).float().div(255.0) * 2 - 1
