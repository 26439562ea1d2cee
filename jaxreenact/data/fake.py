"""Made-up VoxCeleb-style trees for tests and the tiny training configs (no real faces, no downloads)."""

from __future__ import annotations

import os
import pathlib
import zlib

import numpy as np

from jaxreenact.data.voxceleb import FRAMES_DIR, LATENT_SHAPE, LATENTS_DIR, build_frames_dataset, dataset_dir


def make_fake_tree(
    root: str | os.PathLike,
    n_ids: int = 2,
    n_videos: int = 2,
    n_frames: int = 4,
    seed: int = 0,
    image_size: int = 256,
    leading_latent_axis: bool = False,
) -> pathlib.Path:
    """Write ``root/id0000i/vid_0000j/frames_cropped/00000k.png`` and ``.../inversion/latent_codes/00000k.npy``.

    Frames are smooth random colour gradients plus a little noise (each video has its own colours, so frames of
    one video look alike); latents are N(0, 1) float32 [14, 512] ([1, 14, 512] with `leading_latent_axis`, as
    some inversion scripts save them). Deterministic in `seed`. Returns the root.
    """
    import PIL.Image

    root = pathlib.Path(root)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:image_size, 0:image_size].astype(np.float32) / max(image_size - 1, 1)
    for i in range(n_ids):
        for v in range(n_videos):
            video_dir = root / f"id{i:05d}" / f"vid_{v:04d}"
            frames_dir = video_dir / FRAMES_DIR
            latents_dir = video_dir / LATENTS_DIR
            frames_dir.mkdir(parents=True, exist_ok=True)
            latents_dir.mkdir(parents=True, exist_ok=True)
            base = rng.uniform(0, 255, size=(3, 3))  # per-channel offset, x slope, y slope
            for f in range(n_frames):
                jitter = rng.normal(0, 8, size=(3, 1, 1))
                img = base[:, 0, None, None] * 0.5 + base[:, 1, None, None] * xx * 0.5 + base[:, 2, None, None] * yy
                img = img * 0.6 + jitter + rng.normal(0, 4, size=(3, image_size, image_size))
                img = np.clip(img, 0, 255).astype(np.uint8).transpose(1, 2, 0)
                PIL.Image.fromarray(img).save(frames_dir / f"{f:06d}.png")
                latent = rng.standard_normal(LATENT_SHAPE).astype(np.float32)
                np.save(latents_dir / f"{f:06d}.npy", latent[None] if leading_latent_axis else latent)
    return root


def make_fake_dataset(
    folder: str | os.PathLike, split: str = "train", image_size: int = 256, **tree_kwargs
) -> pathlib.Path:
    """A made-up tree under ``folder/tree`` (``folder/tree_<split>`` for another split, from another seed) built as
    `split` under ``folder/tfds`` (reused when already built).

    Returns the TFDS folder to open with ``VoxCelebFrames(path, split)``. For the tiny training configs.
    """

    folder = pathlib.Path(folder)
    out = folder / "tfds"
    if not (dataset_dir(out, split) / "dataset_info.json").is_file():
        # Each split has its own made-up tree (other people, other frames): "train" the seed's, others seed + 1 + k.
        if split != "train":
            tree_kwargs["seed"] = tree_kwargs.get("seed", 0) + 1 + zlib.crc32(split.encode()) % 1000
        name = "tree" if split == "train" else f"tree_{split}"
        tree = make_fake_tree(folder / name, image_size=image_size, **tree_kwargs)
        build_frames_dataset(tree, out, split=split, image_size=image_size, overwrite=True, progress=False)
    return out
