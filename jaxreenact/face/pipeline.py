"""Detect → landmarks → crop for batches of frames: the authors' preprocessing (METHOD.md 7.1), batched and robust.

Per frame (as `utils_inference.preprocess_image`): resize to width 1000 (INTER_AREA, `crop.resize_to_width`) — the
"working image"; S3FD on it (`models.sfd`); among the faces with confidence > 0.99 one is chosen; 2D-FAN gives its
68 landmarks (`models.fan`); the square crop from the landmarks is cut from the working image and resized to
256×256 (`crop.crop_face`). All coordinates in `FrameResult` are in working-image pixels; divide by `scale` for the
original frame.

Which face (`choice`): `"last"` (default, the authors' behaviour: they run FAN on every face with conf > 0.99 in NMS
order, i.e. by descending score, and keep the last one, which is the *lowest-scored* confident face), `"best"`
(highest score) or `"largest"` (largest box area). Frames with several confident faces are flagged
(`n_faces > 1`) so the summary can list them.

A frame without a confident face is never fatal (upstream would crop from uninitialised memory). `on_missing`:
`"skip"` (no crop for that frame; it is reported) or `"hold"` (reuse the last good crop box, so a video keeps one crop
per frame; frames before the first detected face are still skipped). `smooth_box` > 0 smooths the crop box of a video
causally (exponential moving average of centre and half-size with weight `smooth_box` on the past), off (0) by
default for parity with the authors.

Batching: S3FD runs on the whole batch of same-size working images under one jit; FAN runs on the chosen faces of
the batch under one jit; NMS and face choice run on the host in numpy. Fixed shapes (`FaceLocator(batch=...,
height_step=...)`): a call of up to `devices` images runs at `devices` rows (a source photo), any other at `batch`
rows (the last batch of a video padded by repeating its last image), and with `height_step` > 0 the working image
is padded at the bottom with black rows to a multiple of `height_step` (so a few heights serve every aspect ratio).
FAN's crops are exact under that padding (its canvas outside the image is black too); S3FD sees the black rows, so
a detection's score can move slightly (a receptive field reaches the bottom border); the authors' geometry is
kept with `height_step=0`, the default of the class (the programs bucket, `inference.source.build_preprocessor`).
Both networks shard their batch over the local devices (`inference`-side mesh passed as `mesh`). `locate` is injectable (any callable with `FaceLocator`'s signature), which is how the tests feed
known landmarks through the crop path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxreenact.face import crop as crop_lib
from jaxreenact.models import fan as fan_lib
from jaxreenact.models import sfd as sfd_lib

CHOICES = ("last", "best", "largest")
POLICIES = ("skip", "hold")
CONFIDENCE = 0.99


@dataclasses.dataclass
class Located:
    """What the face networks found in one working image."""

    detections: np.ndarray  # [K, 5] all boxes after NMS and the 0.5 filter (x1, y1, x2, y2, score)
    n_confident: int  # how many have score > 0.99
    box: np.ndarray | None  # [5] the chosen face, or None
    landmarks: np.ndarray | None  # [68, 2] of the chosen face, or None


@dataclasses.dataclass
class FrameResult:
    index: int
    status: str  # "ok" | "held" | "no_face"
    scale: float  # working width / original width
    n_faces: int  # confident faces found
    box: np.ndarray | None  # [5] detection box (working pixels)
    landmarks: np.ndarray | None  # [68, 2] (working pixels)
    crop_box: tuple[int, int, int, int] | None  # (x1, y1, x2, y2), exclusive ends (working pixels)
    crop: np.ndarray | None  # [size, size, 3] uint8


def choose_face(dets: np.ndarray, choice: str = "last", confidence: float = CONFIDENCE) -> tuple[int | None, int]:
    """Index of the chosen face among `dets` [K, 5] (NMS order) and the number of confident faces."""
    if choice not in CHOICES:
        raise ValueError(f"unknown face choice {choice!r}; expected one of {CHOICES}")
    idx = [i for i in range(len(dets)) if dets[i, 4] > confidence]
    if not idx:
        return None, 0
    if choice == "last":
        return idx[-1], len(idx)
    if choice == "best":
        return max(idx, key=lambda i: dets[i, 4]), len(idx)
    area = lambda i: (dets[i, 2] - dets[i, 0]) * (dets[i, 3] - dets[i, 1])
    return max(idx, key=area), len(idx)


class FaceLocator:
    """S3FD + 2D-FAN on batches of same-size working images (RGB uint8 [B, H, W, 3]) -> list of `Located`."""

    def __init__(
        self,
        sfd,
        fan,
        convention: str = "authors",
        choice: str = "last",
        confidence: float = CONFIDENCE,
        integer_landmarks: bool = True,
        batch: int | None = None,
        height_step: int = 0,
        mesh=None,
    ):

        if convention not in sfd_lib.CONVENTIONS:
            raise ValueError(f"unknown S3FD input convention {convention!r}; expected one of {sfd_lib.CONVENTIONS}")
        if choice not in CHOICES:
            raise ValueError(f"unknown face choice {choice!r}; expected one of {CHOICES}")
        self.sfd_module, self.sfd_vars = sfd
        self.fan_module, self.fan_vars = fan
        self.convention = convention
        self.choice = choice
        self.confidence = confidence
        self.integer_landmarks = integer_landmarks
        self.batch = batch
        self.height_step = height_step
        self.mesh = mesh
        self._replicated = None

    def _rows(self, n: int) -> int:
        """Device rows of a call of n images: the device count for a few, else the fixed batch (see module doc)."""
        d = self.mesh.size if self.mesh is not None else 1
        if self.batch is None:
            return -(-n // d) * d
        return d if n <= d else -(-max(self.batch, d) // d) * d

    def _put(self, x):
        """A host batch split over the mesh (as it is without one)."""
        if self.mesh is None:
            return x
        return jax.device_put(x, NamedSharding(self.mesh, PartitionSpec(self.mesh.axis_names[0])))

    def _variables(self):
        if self.mesh is None:
            return self.sfd_vars, self.fan_vars
        if self._replicated is None:
            rep = NamedSharding(self.mesh, PartitionSpec())
            self._replicated = jax.device_put((self.sfd_vars, self.fan_vars), rep)
        return self._replicated

    def __call__(self, images: np.ndarray) -> list[Located]:
        images = np.asarray(images)
        rows = self._rows(len(images))
        out = []
        for lo in range(0, len(images), rows):
            out += self._locate(images[lo : lo + rows], rows)
        return out

    def _locate(self, images: np.ndarray, rows: int) -> list[Located]:
        k, h = len(images), images.shape[1]
        if self.height_step > 0 and h % self.height_step:
            pad_h = -(-h // self.height_step) * self.height_step - h
            images = np.pad(images, ((0, 0), (0, pad_h), (0, 0), (0, 0)))
        if k < rows:
            images = np.concatenate([images, np.repeat(images[-1:], rows - k, axis=0)])
        sfd_vars, fan_vars = self._variables()
        x = self._put(images)
        boxes, scores = sfd_lib.dense_detections(self.sfd_module, sfd_vars, x, convention=self.convention)
        dets = sfd_lib.postprocess(boxes, scores)[:k]
        chosen = [choose_face(d, self.choice, self.confidence) for d in dets]
        which = [i for i, (k, _) in enumerate(chosen) if k is not None]
        lms = {}
        if which:
            boxes = np.stack([dets[i][chosen[i][0]] for i in which])
            index = np.asarray(which)
            pad = rows - len(which)  # one FAN compilation per device batch
            if pad > 0:
                boxes = np.concatenate([boxes, np.repeat(boxes[:1], pad, axis=0)])
                index = np.concatenate([index, np.repeat(index[:1], pad)])
            out = fan_lib.landmarks(
                self.fan_module, fan_vars, x, boxes, image_index=index, integer=self.integer_landmarks
            )
            lms = {i: out[j] for j, i in enumerate(which)}
        return [
            Located(
                detections=d,
                n_confident=n,
                box=None if k is None else d[k],
                landmarks=lms.get(i),
            )
            for i, (d, (k, n)) in enumerate(zip(dets, chosen))
        ]


Locate = Callable[[np.ndarray], Sequence[Located]]


class FacePreprocessor:
    """Frames (RGB uint8, any size) -> `FrameResult`s, keeping the state a video needs (held box, smoothing)
    across calls. Call `reset()` between videos."""

    def __init__(
        self,
        locate: Locate,
        width: int = crop_lib.WORK_WIDTH,
        crop_size: int = crop_lib.CROP_SIZE,
        on_missing: str = "skip",
        smooth_box: float = 0.0,
    ):
        if on_missing not in POLICIES:
            raise ValueError(f"unknown missing-face policy {on_missing!r}; expected one of {POLICIES}")
        if not 0.0 <= smooth_box < 1.0:
            raise ValueError(f"smooth_box must be in [0, 1), got {smooth_box}")
        self.locate = locate
        self.width = width
        self.crop_size = crop_size
        self.on_missing = on_missing
        self.smooth_box = smooth_box
        self.reset()

    def reset(self) -> None:
        self._last_box: tuple[int, int, int, int] | None = None
        self._ema: np.ndarray | None = None
        self._count = 0

    def _smooth(self, box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        x1, y1, x2, y2 = box
        state = np.array([(x1 + x2) / 2.0, (y1 + y2) / 2.0, (x2 - x1) / 2.0])
        if self._ema is None:
            self._ema = state
        else:
            self._ema = self.smooth_box * self._ema + (1.0 - self.smooth_box) * state
        cx, cy, half = self._ema
        half = max(1, int(round(half)))
        cx, cy = int(round(cx)), int(round(cy))
        return cx - half, cy - half, cx + half, cy + half

    def __call__(self, frames: Sequence[np.ndarray]) -> list[FrameResult]:
        work, scales = [], []
        for f in frames:
            f = np.asarray(f)
            if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3:
                raise ValueError(f"frames must be RGB uint8 [H, W, 3], got {f.dtype} {f.shape}")
            w, s = crop_lib.resize_to_width(f, self.width)
            work.append(w)
            scales.append(s)
        located: list[Located | None] = [None] * len(work)
        groups: dict[tuple, list[int]] = {}
        for i, w in enumerate(work):
            groups.setdefault(w.shape, []).append(i)
        for idx in groups.values():
            for i, loc in zip(idx, self.locate(np.stack([work[i] for i in idx]))):
                located[i] = loc

        results = []
        for w, s, loc in zip(work, scales, located):
            index = self._count
            self._count += 1
            box = None
            status = "no_face"
            if loc.landmarks is not None and np.all(np.isfinite(loc.landmarks)):
                box = crop_lib.crop_box(loc.landmarks)
                if box[2] - box[0] > 0:
                    status = "ok"
                    if self.smooth_box > 0:
                        box = self._smooth(box)
                    self._last_box = box
                else:
                    box = None
            if box is None and self.on_missing == "hold" and self._last_box is not None:
                box, status = self._last_box, "held"
            crop = crop_lib.crop_face(w, None, self.crop_size, box=box) if box is not None else None
            results.append(
                FrameResult(
                    index=index,
                    status=status,
                    scale=s,
                    n_faces=loc.n_confident,
                    box=loc.box,
                    landmarks=loc.landmarks,
                    crop_box=box,
                    crop=crop,
                )
            )
        return results


def crop_image(preprocessor: FacePreprocessor, image: np.ndarray) -> FrameResult:
    """One image through a (fresh-state) preprocessor; convenience for the source image of reenactment."""
    preprocessor.reset()
    return preprocessor([image])[0]


def blank(image: np.ndarray, flat_std: float = 2.0, dark: float = 16.0) -> bool:
    """An image that cannot hold a face: nearly flat (luminance std < `flat_std` grey levels) or nearly black (its
    99th luminance percentile < `dark`)."""
    g = np.asarray(image)[::4, ::4].astype(np.float32)
    g = g.mean(-1) if g.ndim == 3 else g
    return bool(g.std() < flat_std or np.percentile(g, 99) < dark)


class FixedLocate:
    """A stand-in for S3FD + FAN (tests and demos only): one confident face per frame whose 68 landmarks are a
    fixed point cloud in the middle of the frame. A blank frame (flat or nearly black, `blank`) has no face, as
    has every frame whose call index is in `missing`: so `--tiny` rehearses the no-face paths too."""

    def __init__(self, missing=()):
        self.missing = set(missing)
        self.calls = 0

    def __call__(self, images):
        out = []
        for img in images:
            h, w = img.shape[:2]
            if self.calls in self.missing or blank(img):
                out.append(Located(np.zeros((0, 5), np.float32), 0, None, None))
            else:
                u = np.random.default_rng(0).uniform(0, 1, (68, 2))
                pts = np.stack([w * (0.42 + 0.16 * u[:, 0]), h * (0.35 + 0.3 * u[:, 1])], 1).astype(np.float32)
                box = np.array([w * 0.4, h * 0.32, w * 0.6, h * 0.68, 0.999], np.float32)
                out.append(Located(box[None], 1, box, pts))
            self.calls += 1
        return out
