"""Source preparation (METHOD.md 6, 7.2): read the photo (or a video's first frame), crop the face, DECA p, e4e
W+, then generator tuning (PTI as the authors' `run_inference.py` uses it).

DECA's crop box: the authors' DECA `TestData` runs FAN again on the 256² crop and boxes its 68 landmarks. We reuse
the FAN landmarks the preprocessor already found on the working frame, mapped into the 256² crop (the same network
on the same face, so the same box up to FAN's resampling, at half the face-network cost).
"""

from __future__ import annotations

import dataclasses
import pathlib

import numpy as np

from jaxreenact.common.errors import UserError
from jaxreenact.data import images as images_lib
from jaxreenact.data import preprocessing
from jaxreenact.data import video as video_lib
from jaxreenact.face import deca_crop
from jaxreenact.face.pipeline import FaceLocator, FixedLocate
from jaxreenact.inference import frames
from jaxreenact.latent import tuning
from jaxreenact.latent.render import IMAGE_SIZE
from jaxreenact.weights import Networks

HEIGHT_STEP = 64  # working-image heights bucketed to multiples of this (`face.pipeline` module doc)


def build_preprocessor(paths: dict[str, str], tiny: bool = False, locate=None, batch: int = 8):
    """The shared face preprocessor (S3FD + FAN + crop) on the converted checkpoints, or an injected `locate`
    (`FixedLocate` with --tiny). S3FD and FAN run at fixed shapes (`batch` frames, heights bucketed to
    `HEIGHT_STEP`) over the local devices."""
    if locate is None and tiny:
        locate = FixedLocate()
    pre = preprocessing.build_preprocessor(paths.get("sfd"), paths.get("fan"), on_missing="skip", locate=locate)
    fixed_shapes(pre.locate, batch)
    return pre


def fixed_shapes(locate, batch: int, height_step: int = HEIGHT_STEP):
    """A `FaceLocator` set to fixed batches over the current mesh and bucketed heights (any other `locate` as it
    is); returns it."""
    if isinstance(locate, FaceLocator):
        locate.batch, locate.height_step, locate.mesh = batch, height_step, frames.current_mesh()
    return locate


def crop_landmarks(result) -> np.ndarray:
    """A `FrameResult`'s landmarks (working-image pixels) mapped into its 256² crop (pixel centres kept)."""
    x1, y1, x2, y2 = result.crop_box
    s = IMAGE_SIZE / float(x2 - x1)
    return (np.asarray(result.landmarks, np.float64) - [x1, y1] + 0.5) * s - 0.5


@dataclasses.dataclass
class Source:
    path: str
    crop: np.ndarray  # uint8 [256, 256, 3]
    theta: np.ndarray  # [3, 3] DECA crop matrix in crop pixels
    p: np.ndarray  # raw p [D]
    w: np.ndarray  # e4e W+ [1, n_latent, 512]
    g_vars: dict  # the (tuned) generator's variables
    tune_losses: np.ndarray | None = None
    frame: np.ndarray | None = None  # the full source frame (uint8, its own resolution), for pasting back
    box: tuple | None = None  # the crop box in working-image pixels (`FrameResult.crop_box`)
    work_width: int = 1000  # the working width the box refers to
    kind: str = "image"  # "image" | "video" (the source's first frame)


def read_source_frame(path) -> np.ndarray:
    """The source image: a photo, or the first frame of a video (as the authors)."""
    if pathlib.Path(path).is_dir():
        raise UserError(f"{path}: is a folder; the source must be one photo, or a video (its first frame is used)")
    spec = preprocessing.inspect_input(path)
    if spec.kind == "image":
        return images_lib.read_image(spec.path)
    if spec.kind == "video":
        return next(iter(video_lib.iter_frames(spec.path, max_frames=1)))
    raise UserError(f"{path}: the source must be one image or a video (its first frame is used), not a folder")


def crop_source(path, preprocessor, frame: np.ndarray | None = None):
    """(crop uint8 [256,256,3], theta [3,3], frame, FrameResult) of the source's face; `UserError` when there is
    none. `frame`: the source frame when the caller has read it already."""
    frame = read_source_frame(path) if frame is None else frame
    preprocessor.reset()
    r = preprocessor([frame])[0]
    if r.crop is None:
        raise UserError(
            f"{path}: no face found in the source image (no detection with confidence > 0.99); "
            "use a photo with one clearly visible face"
        )
    return r.crop, deca_crop.crop_matrix(crop_landmarks(r)), frame, r


def invert_source(nets: Networks, variables, crop: np.ndarray, tune: bool = True, steps: int = tuning.STEPS,
                  progress: bool = True) -> tuple[np.ndarray, dict, np.ndarray | None]:  # fmt: skip
    """e4e → W+ [1, n, 512], then (optionally) generator tuning. Returns (w, generator variables, tune losses).
    The tuned generator is a new set of variables; the loaded one is left as it is."""
    w = frames.e4e_codes(nets.e4e, variables["e4e"], crop[None])
    if not tune or steps == 0:
        return np.asarray(w), variables["g"], None
    x = np.asarray(crop[None], np.float32) / 127.5 - 1.0
    r = tuning.tune_generator(nets.g, variables["g"], nets.lpips, variables["lpips"], w, x, steps=steps,
                              progress=progress)  # fmt: skip
    return np.asarray(w), r.variables[0], r.losses[0]


def prepare_source(nets: Networks, variables, layout, preprocessor, path, tune=True, steps=tuning.STEPS,
                   progress=True, frame: np.ndarray | None = None) -> Source:  # fmt: skip
    crop, theta, frame, r = crop_source(path, preprocessor, frame)
    p = frames.p_of_crops(nets, variables, layout, crop[None], theta[None])[0]
    w, g_vars, losses = invert_source(nets, variables, crop, tune, steps, progress)
    kind = "video" if video_lib.is_video_path(path) else "image"
    return Source(str(path), crop, theta, p, w, g_vars, losses, frame, r.crop_box, preprocessor.width, kind)
