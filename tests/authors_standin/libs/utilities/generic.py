"""Stand-in (tests/authors_standin) for the authors' libs/utilities/generic.py, written from METHOD.md 1.4 and 2.4:
the shifted code and image, DECA's parameters of generator images, and the direction lines fitted to the ranges."""

import numpy as np
import torch

from libs.utilities.image_utils import torch_range_1_to_255

ANGLE_SCALES = (40.0, 20.0, 20.0)  # yaw, pitch, roll degrees per shift_scale (VoxCeleb)


def get_shifted_latent_code(G, z, shift, input_is_latent=False, truncation=1, truncation_latent=None, w_plus=False,
                            num_layers=None):  # fmt: skip
    latent = z.clone() if input_is_latent else G.get_latent(z)[:, None].repeat(1, G.n_latent, 1)
    latent[:, : shift.shape[1], :] += shift  # w_plus: shift [B, num_layers, 512] on the first rows
    return latent


def generate_image(G, latent_code, truncation, trunc, w_plus=True, num_layers_shift=8, shift_code=None,
                   input_is_latent=False, return_latents=False):  # fmt: skip
    if shift_code is not None:
        latent_code = get_shifted_latent_code(G, latent_code, shift_code, input_is_latent, w_plus=w_plus)
        input_is_latent = True
    image, latent = G([latent_code], return_latents=True, truncation=truncation, truncation_latent=trunc,
                      input_is_latent=input_is_latent)  # fmt: skip
    if image.shape[2] > 256:
        image = torch.nn.AdaptiveAvgPool2d((256, 256))(image)
    return (image, latent) if return_latents else image


def calculate_shapemodel(deca_model, images, image_space="gan"):
    x = torch_range_1_to_255(images.clone()) if image_space == "gan" else images.clone()
    pose, shape, exp, angles, cam = deca_model.extract_DECA_params(x)
    return {"pose": pose, "alpha_exp": exp, "alpha_shp": shape, "cam": cam}, angles


def _line(lo, hi, scale):
    a = 2 * scale / (hi - lo)  # the line through (lo, -scale) and (hi, scale)
    return a, -scale - a * lo


def initialize_directions(dataset_type, learned_directions, shift_scale):
    ranges = np.load("./libs/configs/ranges_voxceleb.npy")
    count_pose = 4  # yaw, pitch, roll, jaw
    exps = []
    for i in range(learned_directions - count_pose):
        a, b = _line(ranges[4 + i][0], ranges[4 + i][1], shift_scale)
        exps.append({"exp_component": i, "A_direction": i + count_pose, "a": a, "b": b,
                     "min_shift": ranges[4 + i][0], "max_shift": ranges[4 + i][1]})  # fmt: skip
    a, b = _line(ranges[3][0], ranges[3][1], 6)
    jaw = {"a": a, "b": b, "max": ranges[3][1], "min": ranges[3][0]}
    return count_pose, learned_directions - count_pose, exps, jaw, np.array(ANGLE_SCALES), np.array([0.0, 1, 2])
