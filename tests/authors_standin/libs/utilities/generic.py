"""Stand-in (tests/authors_standin) for the authors' libs/utilities/generic.py, written from METHOD.md 1.4."""

import torch


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
