"""Stand-in (tests/authors_standin) for the authors' libs/utilities/image_utils.py: the [-1, 1] -> [0, 255] map their
paired mode feeds LPIPS (METHOD.md 4.2)."""


def torch_range_1_to_255(image):
    return image.clamp(-1, 1).add(1).div(2 + 1e-5).mul(255.0)
