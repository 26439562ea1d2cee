"""Driving: every frame of a driving video or folder through the face preprocessor and DECA → p(t); the frames
are decoded in a thread (`data.pipeline.prefetch`) two batches ahead of the networks."""

from __future__ import annotations

import pathlib

import numpy as np
from PIL import Image
from tqdm import tqdm

from jaxreenact.data import preprocessing
from jaxreenact.data.pipeline import prefetch
from jaxreenact.face import deca_crop
from jaxreenact.inference.frames import p_of_crops
from jaxreenact.inference.source import crop_landmarks
from jaxreenact.latent.render import IMAGE_SIZE as SIZE


def letterbox(frame: np.ndarray, size: int = SIZE) -> np.ndarray:
    """A whole frame fitted into size² (black bars): what the grid shows for a driving frame without a face."""
    h, w = frame.shape[:2]
    s = size / max(h, w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    img = np.asarray(Image.fromarray(frame).resize((nw, nh), Image.BILINEAR))
    out = np.zeros((size, size, 3), np.uint8)
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y : y + nh, x : x + nw] = img
    return out


def open_store(path: pathlib.Path, n: int):
    """A uint8 [n, 256, 256, 3] frame array on disk (videos longer than memory allows)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(max(n, 1), SIZE, SIZE, 3))


def drive(nets, variables, layout, preprocessor, spec, store, batch: int, max_frames=None, progress=True):
    """Preprocess every driving frame, run DECA on the crops. Returns (names, p [T, D] raw (NaN without a face),
    valid [T], statuses, multiple-face names); the displayed driving frames go to `store`."""
    preprocessor.reset()
    names, ps, valid, multi = [], [], [], []
    bar = tqdm(total=spec.num_frames, unit="frame", desc="driving: faces + DECA", disable=not progress)
    try:
        decoded = prefetch(preprocessing.iter_input(spec, max_frames), 2 * batch)  # decoding beside the networks
        for chunk in preprocessing.batches(decoded, batch):
            results = preprocessor([f for _, f in chunk])
            ok = [k for k, r in enumerate(results) if r.crop is not None]
            p = np.full((len(chunk), layout.num_directions), np.nan, np.float32)
            if ok:
                crops = np.stack([results[k].crop for k in ok])
                theta = np.stack([deca_crop.crop_matrix(crop_landmarks(results[k])) for k in ok])
                p[ok] = p_of_crops(nets, variables, layout, crops, theta, batch)
            for (name, frame), r in zip(chunk, results):
                i = len(names)
                if i < len(store):
                    store[i] = r.crop if r.crop is not None else letterbox(frame)
                names.append(name)
                valid.append(r.crop is not None)
                if r.n_faces > 1:
                    multi.append(name)
            ps.append(p)
            bar.update(len(chunk))
    finally:
        bar.close()
    return names, np.concatenate(ps, 0), np.asarray(valid, bool), multi
