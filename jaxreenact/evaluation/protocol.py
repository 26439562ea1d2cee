"""The paper's Table 1 protocol: self and cross reenactment over a VoxCeleb-style test tree, scored with
`jaxreenact.evaluation.metrics` (the functions the trainer's validation uses). Library of
`python -m jaxreenact.evaluate`.

Reenactment is the method's (and `python -m jaxreenact.reenact`'s) absolute mode: the source frame is inverted with
e4e (+ generator tuning when `eval.tune_steps` > 0), Δp = units(p_driving) − units(p_source), then
G(trunc(w + A·Δp)). Every image a metric reads (driving frame, reenacted frame) goes through S3FD + 2D-FAN on its
256² crop; its 68 landmarks give NME and DECA's crop box (as the authors' DECA `TestData`).

* Self: each test video's first (kept) frame is the source, its frames drive it; every metric compares the
  reenacted frame with the driving frame: CSIM, LPIPS, FID (reenacted vs driving sets), NME, pose error,
  expression error (raw and range-normalised).
* Cross: each listed (source video, driving video) pair; the source is the first frame of the source video; CSIM is
  against that source frame, pose and expression errors against the driving frame.
* A frame is scored only when a face is found in both its driving and its reenacted image; the others are counted
  (`no_face_driving`, `no_face_reenacted`) and excluded from every metric (FID included), never scored as zeros.
  A video whose source frame has no face is skipped and listed.
* Means are over frames (all frames of all videos pooled), as FID is; per-video means are in the per-video CSVs.

Each video (pair) is cached in `workdir/cache/<fingerprint>/` when done (the fingerprint hashes the tree, the
weights and the frame/tuning settings), so an interrupted run continues where it stopped and a changed config
recomputes.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from jaxreenact.common import checkpoints
from jaxreenact.common.errors import UserError
from jaxreenact.common.files import atomic_write_bytes
from jaxreenact.common.images import from_uint8
from jaxreenact.data import fake, voxceleb
from jaxreenact.evaluation import metrics, pairs, report
from jaxreenact.face import deca_crop
from jaxreenact.face.pipeline import FaceLocator, FixedLocate
from jaxreenact.inference import frames
from jaxreenact.inference.inversion import read_frame
from jaxreenact.inference.source import fixed_shapes, invert_source
from jaxreenact.pose import motion as motion_lib
from jaxreenact.pose import params as pose
from jaxreenact.pose.deca import fixed_deca_theta
from jaxreenact.weights import Networks, check_paths, load_A, load_bundle

SELF_METRICS = ("csim", "lpips", "nme", "nme_interocular", "pose", metrics.EXP_RAW, metrics.EXP_NORM)
CROSS_METRICS = ("csim", "pose", metrics.EXP_RAW, metrics.EXP_NORM)
WEIGHT_NAMES = ("generator", "e4e", "deca", "A", "lpips", "arcface", "inception", "sfd", "fan")


# ----------------------------------------------------------------------------------------------- networks
@dataclasses.dataclass
class Evaluator:
    """The networks of an evaluation (one bundle), the pose space and the face locator that scores images."""

    nets: Networks
    variables: dict
    space: pose.PoseSpace
    locate: object  # images uint8 [N, 256, 256, 3] -> list[Located]


def needed_weights(config) -> dict[str, str]:
    return {n: getattr(config.weights, n) for n in WEIGHT_NAMES}


def load(config, locate=None) -> Evaluator:
    """The evaluation's networks: converted checkpoints, or random tiny ones with `config.tiny`."""
    if config.tiny:
        nets, variables = load_bundle(WEIGHT_NAMES, tiny_seed=config.seed)
        return Evaluator(nets, variables, pose.pose_space("voxceleb"), locate or FixedLocate())
    nets, variables = load_bundle(WEIGHT_NAMES, needed_weights(config), how="config",
                                  hint="or use configs/eval.py:tiny, which needs none")  # fmt: skip
    locate = locate or fixed_shapes(
        FaceLocator((nets.sfd, variables["sfd"]), (nets.fan, variables["fan"])), config.eval.batch_size
    )
    space = pose.pose_space("voxceleb", shift_scale=nets.A.shift_scale)  # the units A was trained in
    return Evaluator(nets, variables, space, locate)


def tree_sha256(tree) -> str:
    """sha256 of a pytree's leaves (paths, dtypes, shapes and bytes), e.g. A's parameters from a training workdir."""
    h = hashlib.sha256()
    for path, leaf in sorted(jax.tree_util.tree_leaves_with_path(tree), key=lambda kv: jax.tree_util.keystr(kv[0])):
        x = np.ascontiguousarray(np.asarray(leaf))
        h.update(f"{jax.tree_util.keystr(path)}|{x.dtype}|{x.shape}|".encode())
        h.update(x.tobytes())
    return h.hexdigest()


def weights_sha256(config) -> dict:
    """{name: sha256 of the source checkpoint recorded at conversion (or of the converted metadata file)}; for A
    read from a training workdir, the sha256 of the parameters of its latest checkpoint."""
    if config.tiny:
        return {"tiny": f"random tiny networks, seed {config.seed}"}
    out = {}
    for n, p in needed_weights(config).items():
        meta_file = pathlib.Path(p) / checkpoints.META_FILE
        if meta_file.is_file():
            meta = json.loads(meta_file.read_text())
            src = {k: v.get("sha256") for k, v in meta.get("sources", {}).items()}
            out[n] = src or hashlib.sha256(meta_file.read_bytes()).hexdigest()
        elif n == "A" and (pathlib.Path(p) / "checkpoints").is_dir():
            out[n] = {"training workdir (latest checkpoint) params": tree_sha256(load_A(p)[1])}
        else:
            out[n] = None
    return out


CACHE_FIELDS = ("frame_stride", "max_frames", "tune_steps", "grid_frames")


def fingerprint(config, sha: dict) -> str:
    """Short hash of everything a cached video's result depends on: the tree, the networks, the frame selection
    and the tuning. The cache lives under `cache/<fingerprint>/`, so a changed config never reuses stale videos."""
    key = {"root": str(pathlib.Path(config.root).resolve()), "tiny": config.tiny, "seed": config.seed,
           "weights": sha, "paths": needed_weights(config) if not config.tiny else None,
           "eval": {f: config.eval[f] for f in CACHE_FIELDS}}  # fmt: skip
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------------- per image
@dataclasses.dataclass
class Analysis:
    """What the face networks read from a set of 256² images."""

    valid: np.ndarray  # [N] a face was found
    landmarks: np.ndarray  # [N, 68, 2] (NaN where no face)
    p: np.ndarray  # [N, D] raw p (meaningless where no face)


def analyze(ev: Evaluator, images_u8: np.ndarray, batch: int) -> Analysis:
    n = len(images_u8)
    lmk = np.full((n, 68, 2), np.nan, np.float32)
    valid = np.zeros(n, bool)
    for lo in range(0, n, batch):
        for i, r in enumerate(ev.locate(images_u8[lo : lo + batch]), lo):
            if r.landmarks is not None:
                lmk[i], valid[i] = r.landmarks, True
    theta = np.repeat(fixed_deca_theta(1), n, 0).astype(np.float32)
    if valid.any():
        theta[valid] = deca_crop.crop_matrix(lmk[valid].astype(np.float64))
    p = frames.p_of_crops(ev.nets, ev.variables, ev.space.layout, images_u8, theta, batch)
    return Analysis(valid, lmk, p)


@functools.partial(jax.jit, static_argnames=("module",))
def _id_csim(module, variables, a, b):
    return metrics.csim_images(variables, a, b, module=module)


@functools.partial(jax.jit, static_argnames=("module",))
def _lpips(module, variables, a, b):
    return module.apply(variables, a, b).reshape(a.shape[0])


@functools.partial(jax.jit, static_argnames=("module",))
def _inception(module, variables, images_u8):
    return module.apply(variables, images_u8.astype(jnp.float32) / 255.0)


def _batched(fn, batch: int, *arrays):
    """fn over rows of equally long uint8 arrays in batches (the last padded: one compilation), each batch split
    over the local devices."""
    return frames.map_sharded(lambda *xs: fn(*[from_uint8(x) if x.dtype == np.uint8 else x for x in xs]), arrays, batch)


def inception_features(ev: Evaluator, images_u8: np.ndarray, batch: int) -> np.ndarray:
    m, v = ev.nets.inception, frames.replicate(ev.variables["inception"])
    if len(images_u8) == 0:
        return np.zeros((0, 2048), np.float64)
    return _batched(lambda x: _inception(m, v, jnp.asarray(x)), batch, images_u8.astype(np.float32)).astype(np.float64)


def score(ev: Evaluator, ref_u8, drv: Analysis, drv_u8, rec: Analysis, rec_u8, batch: int, cross: bool) -> dict:
    """Per-frame metrics [N] of reenacted frames (`rec`) against the driving frames (and `ref_u8`, the CSIM
    reference: the driving frames for self, the source frame for cross)."""
    layout = ev.space.layout
    ang = list(layout.angle_dirs)
    out = {
        "valid_driving": drv.valid,
        "valid_reenacted": rec.valid,
        "pose": np.asarray(metrics.pose_error(rec.p[:, ang], drv.p[:, ang])),
    }
    pe_r, pe_d = rec.p[:, layout.jaw :], drv.p[:, layout.jaw :]  # [jaw, exp0..exp10]: the paper's p_e
    out.update({k: np.asarray(v) for k, v in metrics.expression_errors(pe_r, pe_d, ev.space.ranges).items()})
    am, av = ev.nets.arcface, frames.replicate(ev.variables["arcface"])
    out["csim"] = _batched(lambda a, b: _id_csim(am, av, a, b), batch, rec_u8, ref_u8)
    if not cross:
        lm, lv = ev.nets.lpips, frames.replicate(ev.variables["lpips"])
        out["lpips"] = _batched(lambda a, b: _lpips(lm, lv, a, b), batch, rec_u8, drv_u8)
        ok = drv.valid & rec.valid
        nme = np.full(len(ok), np.nan, np.float32)
        nme_io = nme.copy()
        if ok.any():
            nme[ok] = np.asarray(metrics.nme(rec.landmarks[ok], drv.landmarks[ok]))
            nme_io[ok] = np.asarray(metrics.nme_interocular(rec.landmarks[ok], drv.landmarks[ok]))
        out["nme"], out["nme_interocular"] = nme, nme_io
    return {k: np.asarray(v) for k, v in out.items()}


# ----------------------------------------------------------------------------------------------- per video
def read_frames(root: pathlib.Path, video: str, stride: int, max_frames: int) -> tuple[list[str], np.ndarray]:
    """(names, uint8 [N, 256, 256, 3]) of a test video's kept frames; unreadable frames are skipped (reported)."""
    folder = root / video / voxceleb.FRAMES_DIR
    skipped: list = []
    files = voxceleb.files_by_stem(folder, voxceleb.IMAGE_EXTENSIONS, skipped)
    names = sorted(files)[::stride]
    if max_frames > 0:
        names = names[:max_frames]
    keep, images = [], []
    for n in names:
        try:
            images.append(read_frame(files[n]))
            keep.append(n)
        except UserError as e:
            print(f"skipped unreadable frame {files[n]}: {e}")
    if not images:
        return [], np.zeros((0, 256, 256, 3), np.uint8)
    return keep, np.stack(images)


@dataclasses.dataclass
class Item:
    kind: str  # "self" | "cross"
    source: str  # <id>/<video>
    driving: str  # <id>/<video> (= source for self)

    @property
    def key(self) -> str:
        s = self.source.replace("/", "_")
        return s if self.kind == "self" else f"{s}__{self.driving.replace('/', '_')}"


def prepare_source(ev: Evaluator, config, video: str, last: dict):
    """(first frame uint8 [1, 256, 256, 3], its Analysis, W+, tuned generator variables) of a source video, or a
    status string. The last one is kept in `last`, so a video's self item and its cross pairs (run one after the
    other, `evaluate` orders them so) invert and tune it once."""
    if last.get("video") == video:
        return last["source"]
    src_u8 = read_frames(pathlib.Path(config.root), video, 1, 1)[1]
    if len(src_u8) == 0:
        out = "no readable frames"
    else:
        src = analyze(ev, src_u8, 1)
        if not src.valid[0]:
            out = "no face in the source frame"
        else:
            c = config.eval
            w, g_vars, _ = invert_source(
                ev.nets, ev.variables, src_u8[0], c.tune_steps > 0, c.tune_steps, progress=False
            )
            out = (src_u8, src, w, g_vars)
    last.update(video=video, source=out)
    return out


def run_item(ev: Evaluator, config, item: Item, last: dict | None = None) -> dict:
    """Reenact one video (pair) and score every frame. Returns a dict of arrays + `status` and display frames."""
    c = config.eval
    drv_names, drv_u8 = read_frames(pathlib.Path(config.root), item.driving, c.frame_stride, c.max_frames)
    if len(drv_u8) == 0:
        return {"status": "no readable frames"}
    prepared = prepare_source(ev, config, item.source, {} if last is None else last)
    if isinstance(prepared, str):
        return {"status": prepared}
    src_u8, src, w, g_vars = prepared
    drv = analyze(ev, drv_u8, c.batch_size)
    opts = motion_lib.MotionOptions("absolute", smooth=0.0)
    dp = motion_lib.motion_delta(src.p[0], drv.p, ev.space.units, ev.space.layout, opts)
    rec_u8 = frames.render_dp(ev.nets, ev.variables, g_vars, w, dp, c.batch_size)
    rec = analyze(ev, rec_u8, c.batch_size)
    ref = drv_u8 if item.kind == "self" else np.repeat(src_u8, len(drv_u8), 0)
    out = score(ev, ref, drv, drv_u8, rec, rec_u8, c.batch_size, cross=item.kind == "cross")
    out["frames"] = np.asarray(drv_names)
    if item.kind == "self":
        ok = drv.valid & rec.valid
        out["feats_reenacted"] = inception_features(ev, rec_u8[ok], c.batch_size)
        out["feats_driving"] = inception_features(ev, drv_u8[ok], c.batch_size)
    show = np.linspace(0, len(drv_u8) - 1, min(c.grid_frames, len(drv_u8))).round().astype(int)
    out["grid"] = np.stack([np.concatenate([src_u8[0], drv_u8[i], rec_u8[i]], axis=1) for i in show])
    out["grid_names"] = np.asarray(drv_names)[show]
    out["status"] = "ok"
    return out


def _save_npz(path: pathlib.Path, d: dict) -> None:
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in d.items()})
    atomic_write_bytes(path, buf.getvalue())


def _load_npz(path: pathlib.Path) -> dict:
    with np.load(path, allow_pickle=False) as z:
        d = {k: z[k] for k in z.files}
    d["status"] = str(d["status"])
    return d


def items_of(config) -> list[Item]:
    """The self videos and cross pairs of the config, checked to exist under the test root."""
    root = pathlib.Path(config.root)
    if not config.root or not root.is_dir():
        raise UserError(f"config.root = {config.root!r}: not a folder (the test tree <id>/<video>/frames_cropped)")
    out = []
    if config.eval.self:
        videos = pairs.read_videos(config.self_list) if config.self_list else pairs.list_videos(root)
        if not videos:
            raise UserError(f"config.root = {config.root!r}: holds no <id>/<video>/frames_cropped/ folders")
        pairs.check_videos_exist(root, videos, f"self list {config.self_list or '(all videos of the root)'}")
        out += [Item("self", v, v) for v in videos]
    if config.eval.cross:
        if not config.cross_pairs:
            raise UserError("config.cross_pairs is empty: freeze a pair list once with `python -m "
                            "jaxreenact.evaluation.pairs --root TEST_ROOT --n 200 --seed 0 --out cross_pairs.txt` "
                            "and pass --config.cross_pairs=cross_pairs.txt (or --config.eval.cross=False)")  # fmt: skip
        prs = pairs.read_pairs(config.cross_pairs)
        pairs.check_videos_exist(root, sorted({v for p in prs for v in p}), f"cross pairs {config.cross_pairs}")
        out += [Item("cross", a, b) for a, b in prs]
    if not out:
        raise UserError("nothing to evaluate: config.eval.self and config.eval.cross are both off")
    return out


def evaluate(config, workdir, progress: bool = True, locate=None) -> dict:
    """Run the protocol (see the module doc); write the reports into `workdir`; return the results dict. A tiny
    config without a root evaluates a made-up tree written into the workdir."""
    workdir = pathlib.Path(workdir)
    if config.tiny and not config.root:
        t = config.tiny_tree
        root = workdir / "tiny_tree"
        if not root.is_dir():
            fake.make_fake_tree(root, n_ids=t.n_ids, n_videos=t.n_videos, n_frames=t.n_frames, seed=config.seed)
        config.root = str(root)
    items = items_of(config)  # the tree and the lists are checked before any network loads
    if not config.tiny:
        check_paths(needed_weights(config), how="config", hint="or use configs/eval.py:tiny, which needs none")
    sha = weights_sha256(config)
    cache = workdir / "cache" / fingerprint(config, sha)
    nets = None  # loaded at the first video not in the cache (a finished run re-reports without networks)
    per_item: dict[str, tuple[Item, dict]] = {}
    last: dict = {}  # the last inverted source: a video's self item and its cross pairs run back to back
    items = sorted(items, key=lambda it: (it.source, it.kind != "self", it.driving))
    for item in tqdm(items, desc="evaluate", unit="video", disable=not progress):
        path = cache / item.kind / f"{item.key}.npz"
        if path.is_file():
            res = _load_npz(path)
            if res["status"] == "ok" and not report.item_written(workdir, item):
                report.write_item(workdir, item, res)
        else:
            nets = nets or load(config, locate)
            res = run_item(nets, config, item, last)
            if res["status"] == "ok":
                report.write_item(workdir, item, res)
            _save_npz(path, res)  # last: a cached video has its reports
        per_item[f"{item.kind}/{item.key}"] = (item, res)
    results = report.aggregate(config, per_item, sha)
    results["cache"] = str(cache.relative_to(workdir))
    report.write_all(workdir, results)
    return results
