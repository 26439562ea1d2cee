"""Stand-in (tests/authors_standin) for the authors' libs/utilities/utils_inference.py: e4e inversion rendered
with truncation (the landmark cropping is replaced by the recorder: the crops are given)."""

import torch


def preprocess_image(image_path, landmarks_est, save_filename=None):
    raise RuntimeError("stand-in tree: no landmark cropping (the recorder gives the crops)")


def invert_image(image, encoder, generator, truncation, trunc, save_path=None, save_name=None):
    with torch.no_grad():
        codes = encoder(image)
        img, _ = generator([codes], input_is_latent=True, truncation=truncation, truncation_latent=trunc)
    return img, codes
