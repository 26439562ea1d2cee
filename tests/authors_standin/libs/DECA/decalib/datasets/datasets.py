"""Stand-in (tests/authors_standin) for DECA's datasets/datasets.py `TestData.get_image_tensor` (METHOD.md 3.1): the
detector's kpt68 box, bbox2point (size x1.1, then int(x1.25)), skimage's similarity to the 224 corners, kornia's
warp_affine, /255."""

import kornia
import numpy as np
import torch
from skimage.transform import estimate_transform

from . import detectors


class TestData:
    def __init__(self, iscrop=True, crop_size=224, scale=1.25):
        self.crop_size, self.scale, self.resolution_inp = crop_size, scale, crop_size
        self.face_detector = detectors.FAN()

    def bbox2point(self, left, right, top, bottom, type="bbox"):
        old_size = (right - left + bottom - top) / 2 * 1.1
        return old_size, np.array([right - (right - left) / 2.0, bottom - (bottom - top) / 2.0])

    def get_image_tensor(self, image):
        bbox, bbox_type = self.face_detector.run(image.clone().permute(1, 2, 0))
        left, top, right, bottom = bbox
        old_size, center = self.bbox2point(left, right, top, bottom, type=bbox_type)
        size = int(old_size * self.scale)
        src = np.array([[center[0] - size / 2, center[1] - size / 2], [center[0] - size / 2, center[1] + size / 2],
                        [center[0] + size / 2, center[1] - size / 2]])  # fmt: skip
        dst = np.array([[0, 0], [0, self.resolution_inp - 1], [self.resolution_inp - 1, 0]])
        theta = torch.tensor(estimate_transform("similarity", src, dst).params, dtype=torch.float32)[None]
        out = kornia.warp_affine(image.clone()[None], theta[:, :2, :], dsize=(224, 224))
        return out.div(255.0)[0], False
