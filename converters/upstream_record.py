"""Record golden folders with the authors' own code, on the user's checkpoints and images.

    python -m jaxreenact.parity record --authors-repo AUTHORS_REPO --source IMG [--driving IMG] --out OUT [KIND ...]
    python -m jaxreenact.parity OUT/* --weights AUTHORS_REPO        # then compare the port on the same inputs

AUTHORS_REPO is a clone of github.com/StelaBou/stylegan_directions_face_reenactment with its checkpoints in place
(`pretrained_models/`, the layout `converters.all` reads). Their code is imported from that clone and run through
its own entry points; each kind becomes a folder OUT/<kind> in the format of the shipped goldens (spec.json in the
authors' terms, inputs.npz, expected.npz), with every random draw the port needs (the truncation centre of
`mean_latent(4096)`, the seeded z / W+ / Δp) in inputs.npz, and the authors' time for the recorded call.

Kinds recorded here: `stylegan2_vox256` (their `Generator` and `generate_image`, which pools a generator larger than
256² to 256²), `direction_matrix` (their `DirectionMatrix`, `generate_image` with a shift), `generator_tuning`
(their `optimize_g` on the source image), and on the user's two images (source, driving frame): `irse50_arcface`
(their `IDLoss`), `lpips_perceptual` (their `LPIPS`), `e4e_vox256` (their `Encoder4Editing`, source only) and
`deca_coarse` (their `DECA` built by `_create_model`: encoder, `decode`, FLAME, angles, shape losses). The pipeline
kinds run their programs' own entry points: `reenact_frames` (`Inference.run_reenactment` on the source and the
driving frames: their e4e, `DECA_model` with TestData's crop, `make_shift`, A, `generate_image`) and the three
`train_step_*` kinds (`run_trainer.main()`: one step of `Trainer.train` / `train_real` / `train_paired`, two for
the synthetic stage, the real stages on the user's frames and their e4e codes). Replaced there, as the shipped
goldens replace it: model loading (the checked files), the datasets (the given batches, in order), logging and
validation, the landmark cropping of the user's frames (the crops are given).

Stand-ins, each used only when the real thing is missing and named in the spec's `stand_ins`: the StyleGAN2 CUDA
ops without a CUDA build (upfirdn2d: the authors' own `upfirdn2d_native`; fused_leaky_relu: rosinality's CPU
formula, checked against their `ScaledLeakyReLU`), torchvision's AlexNet (`features` in torchvision's layout,
weights from the user's `alexnet-owt-7be5be79.pth`) and ResNet-50 (no tensors: DECA takes all from its file),
`wandb`, matplotlib and imageio (imported, unused by these calls), `.cuda()`, `device='cuda'` and `torch.load` on a
machine without CUDA (the CPU), for DECA yacs, pytorch3d's modules (the renderer, never built) and chumpy
(`Upstream.deca_imports`), kornia 0.4.1's `warp_affine` (`kornia_warp_affine`, bit-equal to kornia 0.4.1 where
both run) and DECA's face detector (face_alignment's FAN, used when its weights are on disk; else a fixed box;
the boxes are recorded either way). The LPIPS heads their code downloads are read from `pretrained_models/alex.pth`
instead: nothing is downloaded. torch is imported inside the
functions, so the parity program imports this module without torch.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import os
import pathlib
import shutil
import sys
import tempfile
import time
import types

import numpy as np
from PIL import Image

from converters.deca import load_flame
from converters.stylegan2 import infer_config
from jaxreenact.common.errors import UserError

KINDS = ("stylegan2_vox256", "direction_matrix", "generator_tuning", "irse50_arcface", "lpips_perceptual", "e4e_vox256",
         "deca_coarse", "reenact_frames", "train_step_synthetic", "train_step_mixed", "train_step_paired")  # fmt: skip
IMAGE_KINDS = ("generator_tuning", "irse50_arcface", "lpips_perceptual", "e4e_vox256", "deca_coarse",
               "reenact_frames", "train_step_mixed", "train_step_paired")  # on your images  # fmt: skip
FILES = {
    "generator": "pretrained_models/stylegan-voxceleb.pt",
    "A": "pretrained_models/A_matrix.pt",
    "alexnet": "pretrained_models/alexnet-owt-7be5be79.pth",
    "lin": "pretrained_models/alex.pth",
    "arcface": "pretrained_models/model_ir_se50.pth",
    "e4e": "pretrained_models/e4e-voxceleb.pt",
    "deca": "libs/DECA/data/deca_model.tar",
    "flame": "libs/DECA/data/generic_model.pkl",
    "landmarks": "libs/DECA/data/landmark_embedding.npy",
}
NEEDS = {"direction_matrix": {"generator", "A"}, "generator_tuning": {"generator", "alexnet", "lin"},
         "stylegan2_vox256": {"generator"}, "irse50_arcface": {"arcface"}, "lpips_perceptual": {"alexnet", "lin"},
         "e4e_vox256": {"e4e"}, "deca_coarse": {"deca", "flame", "landmarks"},
         "reenact_frames": {"generator", "A", "e4e", "deca", "flame", "landmarks"},
         "train_step_synthetic": {"generator", "A", "deca", "flame", "landmarks", "arcface", "alexnet", "lin"},
         "train_step_mixed": {"generator", "A", "e4e", "deca", "flame", "landmarks", "arcface", "alexnet", "lin"},
         "train_step_paired": {"generator", "A", "e4e", "deca", "flame", "landmarks", "arcface", "alexnet", "lin"}}  # fmt: skip
PROGRAMS = {"reenact_frames": "run_inference.py", "train_step_synthetic": "run_trainer.py",
            "train_step_mixed": "run_trainer.py", "train_step_paired": "run_trainer.py"}  # fmt: skip
TUNED_CONVS = (11, 10, 9, 8, 7, 6, 5, 4)  # optimize_g's parameter order (libs/optimization.py)


# ----------------------------------------------------------------------------------------------- environment
def _module(name: str, **attrs) -> types.ModuleType:
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    m.__jaxreenact_stand_in__ = True
    return m


def _alexnet_features(torch, path: pathlib.Path):
    """torchvision's AlexNet `features` (the indices LPIPS taps: 2, 5, 8, 10, 12), weights from the user's file."""
    nn = torch.nn
    feats = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(inplace=True), nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2),
    )  # fmt: skip
    sd = torch.load(path, map_location="cpu")
    feats.load_state_dict({k[len("features.") :]: v for k, v in sd.items() if k.startswith("features.")})
    return feats


def kornia_warp_affine(torch):
    """kornia 0.4.1's `warp_affine(src, M, dsize)` (bilinear, zero padding, align_corners=False), restated: M is a
    pixel homography, normalised with 2 / (size - 1) on both sides, inverted, then sampled with F.affine_grid and
    F.grid_sample at align_corners=False (the mismatch of the two conventions is kornia's, kept)."""
    F = torch.nn.functional

    def pixel_to_norm(h, w, like):
        m = [[2.0 / (w - 1.0), 0.0, -1.0], [0.0, 2.0 / (h - 1.0), -1.0], [0.0, 0.0, 1.0]]
        return torch.tensor(m).to(like)[None]

    def warp_affine(src, M, dsize, flags="bilinear", padding_mode="zeros", align_corners=False):
        b, c, h, w = src.shape
        m3 = F.pad(M, [0, 0, 0, 1], "constant", value=0.0)
        m3[..., -1, -1] += 1.0
        dst_norm = pixel_to_norm(*dsize, M) @ (m3 @ torch.inverse(pixel_to_norm(h, w, M)))
        grid = F.affine_grid(torch.inverse(dst_norm)[:, :2, :], [b, c, dsize[0], dsize[1]], align_corners=align_corners)
        return F.grid_sample(src, grid, align_corners=align_corners, mode=flags, padding_mode=padding_mode)

    return warp_affine


class Upstream:
    """The authors' code imported from `repo`, with the stand-ins this machine needs (context manager: the
    patches and sys.path entries are undone on exit). `stand_ins`: {what: how}, written into every spec."""

    def __init__(self, repo: pathlib.Path, log=print):
        self.repo, self.log, self.stand_ins = repo, log, {}
        self._undo: list = []

    def __enter__(self):
        import torch

        self.torch = torch
        self.cuda = torch.cuda.is_available()
        self.device = "cuda" if self.cuda else "cpu"
        sys.path.insert(0, str(self.repo))
        self._undo.append(lambda: sys.path.remove(str(self.repo)))
        self._saved_modules = set(sys.modules)
        if not self.cuda:
            self._no_cuda()
        self._hub()
        for name in ("wandb", "matplotlib", "matplotlib.pyplot", "imageio"):  # imported by their modules, not called
            self._stand_in_if_missing(name, lambda n: _module(n), "not installed; imported, unused by these calls")
        self._torchvision()
        self._ops()
        if not hasattr(np, "product"):  # DirectionMatrix calls np.product, which numpy 2 removed
            self._patch_missing(np, "product", np.prod)
            self.stand_ins["numpy.product"] = (
                f"numpy {np.__version__} has no np.product (their DirectionMatrix calls it): np.prod"
            )
        return self

    def __exit__(self, *exc):
        for undo in reversed(self._undo):
            undo()
        ours = (
            "libs",
            "wandb",
            "torchvision",
            "yacs",
            "kornia",
            "pytorch3d",
            "chumpy",
            "run_inference",
            "run_trainer",
            "matplotlib",
            "imageio",
        )  # the authors' modules and the stand-ins, imported afresh next time
        for name in set(sys.modules) - self._saved_modules:
            if name.split(".")[0] in ours:
                del sys.modules[name]

    def _patch(self, obj, attr, value):
        old = getattr(obj, attr)
        setattr(obj, attr, value)
        self._undo.append(lambda: setattr(obj, attr, old))

    def _patch_missing(self, obj, attr, value):
        setattr(obj, attr, value)
        self._undo.append(lambda: delattr(obj, attr))

    def _no_cuda(self):
        t = self.torch
        to_t, to_m = t.Tensor.to, t.nn.Module.to

        def cpu(a):
            return "cpu" if (isinstance(a, str) and a.startswith("cuda")) else a

        self._patch(t.Tensor, "cuda", lambda self, *a, **k: self)
        self._patch(t.nn.Module, "cuda", lambda self, *a, **k: self)
        self._patch(t.Tensor, "to", lambda self, *a, **k: to_t(self, *map(cpu, a), **k))
        self._patch(t.nn.Module, "to", lambda self, *a, **k: to_m(self, *map(cpu, a), **k))
        load = t.load

        def load_cpu(f, map_location=None, **k):  # their loaders (IDLoss) call torch.load(path) with no map_location
            return load(f, map_location=cpu(map_location) if map_location is not None else "cpu", **k)

        self._patch(t, "load", load_cpu)
        self.stand_ins["cuda"] = ("no CUDA device: .cuda() / .to('cuda') in the authors' code run on the CPU, and "
                                  "torch.load maps to the CPU")  # fmt: skip

    def _hub(self):
        t, repo = self.torch, self.repo

        def from_url(url, *a, map_location=None, **k):
            name = url.rsplit("/", 1)[-1]
            p = repo / FILES["lin"] if name == "alex.pth" else repo / "pretrained_models" / name
            if not p.is_file() and name.startswith("resnet50-"):  # DECA's ResnetEncoder starts from ImageNet
                self.stand_ins["resnet50 ImageNet weights"] = (
                    f"{name} not in pretrained_models/: none read (their DECA overwrites every encoder tensor "
                    "from deca_model.tar, checked)"
                )
                return {}
            if not p.is_file():
                raise UserError(f"{p}: missing; the authors' code would download {url} (nothing is downloaded here: "
                                "put the file there)")  # fmt: skip
            return t.load(p, map_location="cpu")

        self._patch(t.hub, "load_state_dict_from_url", from_url)

    def _stand_in_if_missing(self, name, make, why):
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = make(name)
            if "." in name:
                parent, leaf = name.rsplit(".", 1)
                setattr(sys.modules[parent], leaf, sys.modules[name])
            else:
                self.stand_ins[name] = f"stand-in ({why})"

    def _torchvision(self):
        try:
            importlib.import_module("torchvision")  # the authors' dependency, not ours: probed, not declared
        except (ImportError, RuntimeError, AttributeError):  # missing, or built for another torch
            t, path = self.torch, self.repo / FILES["alexnet"]

            def alexnet(pretrained=False, **k):
                if not path.is_file():
                    raise UserError(f"{path}: missing (torchvision's AlexNet weights, which LPIPS loads)")
                return types.SimpleNamespace(features=_alexnet_features(t, path))

            def resnet50(pretrained=False, **k):  # DECA's encoder copies these, then deca_model.tar's over them
                return types.SimpleNamespace(state_dict=dict)

            models = _module("torchvision.models", alexnet=alexnet, resnet50=resnet50)
            tv = _module("torchvision", models=models,
                         transforms=_module("torchvision.transforms"), utils=_module("torchvision.utils"))  # fmt: skip
            for n in ("torchvision", "torchvision.models", "torchvision.transforms", "torchvision.utils"):
                sys.modules[n] = tv if n == "torchvision" else getattr(tv, n.split(".")[1])
            self.stand_ins["torchvision"] = (
                "does not import here: models.alexnet(True).features built in torchvision's layout from "
                f"{FILES['alexnet']}; models.resnet50(True) holds no tensors (DECA's encoder takes every tensor "
                "from deca_model.tar, checked); transforms/utils empty (unused by these calls)"
            )

    def _ops(self):
        """The authors' StyleGAN2 ops build a CUDA extension at import; without one, their CPU path stands in."""
        if self.cuda:
            try:
                __import__("libs.gan.StyleGAN2.op")
                return
            except Exception as e:  # noqa: BLE001  (a failed CUDA build raises many kinds)
                self.log(f"record: the authors' CUDA ops do not build here ({str(e).splitlines()[0][:100]}); "
                         "using their CPU path")  # fmt: skip
                for n in [n for n in sys.modules if n.startswith("libs.gan.StyleGAN2.op")]:
                    del sys.modules[n]
        t = self.torch
        from torch.utils import cpp_extension

        self._patch(cpp_extension, "load", lambda *a, **k: None)  # their module then imports without building
        up = __import__("libs.gan.StyleGAN2.op.upfirdn2d", fromlist=["upfirdn2d_native"])
        native = up.upfirdn2d_native

        def upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
            u = tuple(up) if isinstance(up, (tuple, list)) else (up, up)
            d = tuple(down) if isinstance(down, (tuple, list)) else (down, down)
            p = tuple(pad) if len(pad) == 4 else (pad[0], pad[1], pad[0], pad[1])
            return native(x, kernel, *u, *d, *p)

        def fused_leaky_relu(x, bias, negative_slope=0.2, scale=2**0.5):
            shape = [1, -1] + [1] * (x.ndim - 2)
            return t.nn.functional.leaky_relu(x + bias.view(shape), negative_slope) * scale

        class FusedLeakyReLU(t.nn.Module):
            def __init__(self, channel, negative_slope=0.2, scale=2**0.5):
                super().__init__()
                self.bias = t.nn.Parameter(t.zeros(channel))
                self.negative_slope, self.scale = negative_slope, scale

            def forward(self, x):
                return fused_leaky_relu(x, self.bias, self.negative_slope, self.scale)

        # checked at run time against the authors' own CPU functions: the wrapper's argument handling against their
        # dispatcher (which runs upfirdn2d_native on a CPU tensor); fused_leaky_relu in `check_fused_act`
        g = t.Generator().manual_seed(0)
        x, k = t.randn(2, 3, 9, 9, generator=g), t.randn(4, 4, generator=g)
        err = float((upfirdn2d(x, k, up=2, pad=(2, 1)) - up.upfirdn2d(x, k, up=2, pad=(2, 1))).abs().max())
        op = _module("libs.gan.StyleGAN2.op", FusedLeakyReLU=FusedLeakyReLU, fused_leaky_relu=fused_leaky_relu,
                     upfirdn2d=upfirdn2d)  # fmt: skip
        sys.modules["libs.gan.StyleGAN2.op"] = op
        self.op_stand_in = op
        self.stand_ins["libs/gan/StyleGAN2/op"] = (
            f"no CUDA build: upfirdn2d = the authors' upfirdn2d_native (vs their upfirdn2d on a CPU tensor: max abs "
            f"{err:.3g}); fused_leaky_relu = leaky_relu(x + bias, 0.2) * sqrt(2) (rosinality's CPU formula; their "
            "tree has only the CUDA kernel for it)"
        )

    def deca_imports(self) -> None:
        """What their DECA package imports and this machine may lack, each stood in only when its import fails:
        yacs (their config's CfgNode: a dict with attribute access), kornia and the pytorch3d renderer modules
        (imported by modules the coarse path does not run: calling them raises), chumpy (the FLAME pickle's
        `chumpy.ch.Ch` arrays: their state's `x`, checked against converters.deca.load_flame in `record_deca`)."""

        def unused(name):
            def call(*a, **k):
                raise RuntimeError(f"{name}: a stand-in (the real package is not installed); the recorded DECA path "
                                   "does not call it")  # fmt: skip

            return call

        class CfgNode(dict):  # yacs.config.CfgNode as their config.py uses it: CN(), attributes, clone(), get()
            def __getattr__(self, k):
                try:
                    return self[k]
                except KeyError:
                    raise AttributeError(k) from None

            def __setattr__(self, k, v):
                self[k] = v

            def clone(self):
                return copy.deepcopy(self)

        class Ch:  # chumpy.ch.Ch as pickled in FLAME's generic_model.pkl: an array in its state's `x`
            def __setstate__(self, state):
                self.__dict__.update(state)

            def __array__(self, dtype=None, copy=None):
                return np.asarray(self.__dict__["x"], dtype)

        mods = {
            "yacs": ({"yacs.config": {"CfgNode": CfgNode}}, "their config's CfgNode: a dict with attribute access, "
                     "clone() (a deep copy) and get()"),
            "kornia": ({}, "their TestData crop calls kornia.warp_affine: a torch re-statement of kornia 0.4.1's "
                       "(pixel homography normalised by (size - 1), inverted, F.affine_grid and F.grid_sample with "
                       "align_corners=False); their tree has no reference for it, tests/test_record.py checks it "
                       "against the port's DECA crop"),
            "pytorch3d": ({"pytorch3d.structures": {"Meshes": unused("pytorch3d.structures.Meshes")},
                           "pytorch3d.io": {"load_obj": unused("pytorch3d.io.load_obj")},
                           "pytorch3d.renderer": {}, "pytorch3d.renderer.mesh": {
                               "rasterize_meshes": unused("pytorch3d.renderer.mesh.rasterize_meshes")}},
                          "imported by their renderer.py; DECA is built without its renderer (_create_model only, "
                          "the coarse path), so none of it runs"),
            "chumpy": ({"chumpy.ch": {"Ch": Ch}}, "FLAME's generic_model.pkl pickles chumpy.ch.Ch arrays: read as "
                       "their state's x"),
        }  # fmt: skip
        for top, (subs, why) in mods.items():
            try:
                __import__(top)
                continue
            except ImportError:
                pass
            root = _module(top, warp_affine=kornia_warp_affine(self.torch)) if top == "kornia" else _module(top)
            sys.modules[top] = root
            for name, attrs in subs.items():
                sys.modules[name] = _module(name, **attrs)
                parent, leaf = name.rsplit(".", 1)
                setattr(sys.modules[parent], leaf, sys.modules[name])
            self.stand_ins[top] = f"not installed here: stand-in ({why})"

    def need(self, *names: str) -> None:
        """The authors' requirements that have no stand-in here: a missing one is said in one line."""
        module = {"scikit-image": "skimage", "opencv-python": "cv2"}
        missing = [n for n in names if _try_import(module.get(n, n)) is None]
        if missing:
            raise UserError(f"the authors' code needs {', '.join(missing)} (their requirements.txt): pip install "
                            f"{' '.join(missing)}")  # fmt: skip

    def check_fused_act(self, model) -> None:
        """The fused_leaky_relu stand-in against their model.py's ScaledLeakyReLU (the same activation, on CPU)."""
        op = getattr(self, "op_stand_in", None)
        if op is None or not hasattr(model, "ScaledLeakyReLU") or "fused_leaky_relu vs" in str(self.stand_ins):
            return
        t, g = self.torch, self.torch.Generator().manual_seed(1)
        x, b = t.randn(2, 5, 4, 4, generator=g), t.randn(5, generator=g)
        err = float((op.fused_leaky_relu(x, b) - model.ScaledLeakyReLU(0.2)(x + b.view(1, -1, 1, 1))).abs().max())
        self.stand_ins["libs/gan/StyleGAN2/op"] += (
            f"; fused_leaky_relu vs their ScaledLeakyReLU(0.2)(x + b): max abs {err:.3g}"
        )

    def imp(self, module: str):
        """One of the authors' modules; one that does not import (a partial clone, a requirement of theirs not
        installed) is said in one line."""
        try:
            return __import__(module, fromlist=["_"])
        except ImportError as e:
            what = (
                f"needs {e.name}, which is not installed (their requirements.txt)"
                if e.name and not e.name.startswith(("libs", "run_"))
                else f"is not in the clone ({e})"
            )
            raise UserError(f"--authors-repo {self.repo}: their {module} does not import: it {what}") from None

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def timed(self, fn, repeat: int = 2):
        """(result of the last call, seconds of the last call): the first call warms up (cuDNN, allocator), as the
        port's time is that of its second run."""
        for _ in range(repeat):
            self.sync()
            t0 = time.perf_counter()
            out = fn()
            self.sync()
            dt = time.perf_counter() - t0
        return out, dt

    def device_name(self) -> str:
        t = self.torch
        return (
            f"cuda: {t.cuda.get_device_name(0)}"
            if self.cuda
            else f"cpu ({os.cpu_count()} cores), torch {t.__version__}"
        )


# ----------------------------------------------------------------------------------------------- networks
def delta_stats(d) -> np.ndarray:
    """[sum, sum |.|, L2, max |.|] of a tuned tensor's change (the goldens' `tuned_delta_stats` row)."""
    d = np.asarray(d, np.float64).ravel()
    return np.array([d.sum(), np.abs(d).sum(), np.sqrt((d * d).sum()), np.abs(d).max(initial=0.0)])


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float32) if hasattr(x, "detach") else np.asarray(x, np.float32)


def generator(up: Upstream):
    """The authors' Generator built as their loaders build it (size and channel multiplier from the checkpoint)."""
    t, path = up.torch, up.repo / FILES["generator"]
    if not path.is_file():
        raise UserError(f"{path}: missing (the generator checkpoint, {{'g_ema': ...}})")
    ck = t.load(path, map_location="cpu")
    cfg = infer_config({k: np.asarray(v) for k, v in ck["g_ema"].items()}, "g_ema")
    model = up.imp("libs.gan.StyleGAN2.model")
    up.check_fused_act(model)
    cls = model.Generator
    g = cls(cfg["size"], 512, 8, channel_multiplier=cfg["channel_multiplier"])
    g.load_state_dict(ck["g_ema"], strict=cfg["size"] != 256)  # as libs/trainer.py / run_inference.py load it
    return g.to(up.device).eval(), cfg


def mean_latent(up: Upstream, g, seed: int):
    """Their `G.mean_latent(4096)` (an unseeded torch draw upstream), seeded here and recorded."""
    up.torch.manual_seed(seed)
    with up.torch.no_grad():
        return g.mean_latent(4096).detach().clone()


def source_u8(path: pathlib.Path, flag: str = "--source") -> tuple[np.ndarray, str]:
    """The user's image as uint8 NCHW [1, 3, 256, 256] (resized with PIL bicubic when not 256²)."""
    try:
        im = Image.open(path).convert("RGB")
    except (OSError, ValueError) as e:
        raise UserError(f"{flag} {path}: not a readable image ({e})") from None
    note = "used as is (256x256)"
    if im.size != (256, 256):
        note = f"resized from {im.size[0]}x{im.size[1]} to 256x256 (PIL bicubic); give an aligned crop"
        im = im.resize((256, 256), Image.BICUBIC)
    return np.asarray(im, np.uint8).transpose(2, 0, 1)[None].copy(), note


def _entry(upstream: str, tol: float, rel: bool = False, **extra) -> dict:
    e = {"upstream": upstream, "tol_max_abs": tol, **extra}
    if rel:
        e["tol_rel"] = tol
    return e


def record_stylegan2(up: Upstream, seed: int, batch: int):
    t = up.torch
    g, cfg = generator(up)
    trunc = mean_latent(up, g, seed)
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((batch, 512)).astype(np.float32)
    wplus = rng.standard_normal((batch, g.n_latent, 512)).astype(np.float32)
    gen = up.imp("libs.utilities.generic").generate_image
    zt, wt = t.from_numpy(z).to(up.device), t.from_numpy(wplus).to(up.device)

    def compute():
        exp = {"w_from_z": g.get_latent(zt), "img_from_wplus": g([wt], input_is_latent=True)[0]}
        exp["img_from_z_trunc"], exp["latent_from_z_trunc"] = g([zt], truncation=0.7, truncation_latent=trunc,
                                                                return_latents=True)  # fmt: skip
        exp["latent_from_wplus_trunc"] = g([wt], input_is_latent=True, truncation=0.7, truncation_latent=trunc,
                                           return_latents=True)[1]  # fmt: skip
        exp["generate_image_from_wplus_trunc"] = gen(g, wt, 0.7, trunc, input_is_latent=True)
        return exp

    with t.no_grad():
        exp, dt = up.timed(compute)
    exp = {k: _np(v) for k, v in exp.items()}
    inputs = {"z": z, "wplus": wplus, "truncation": np.float32(0.7), "truncation_latent": _np(trunc)}
    size = cfg["size"]
    entries = {
        "w_from_z": _entry("G.get_latent(z)", 1e-4),
        "img_from_wplus": _entry("G([wplus], input_is_latent=True)[0]", 1e-4),
        "img_from_z_trunc": _entry("G([z], truncation=0.7, truncation_latent=trunc, return_latents=True)[0]", 1e-4),
        "latent_from_z_trunc": _entry("...[1]", 1e-5),
        "latent_from_wplus_trunc": _entry("G([wplus], input_is_latent=True, truncation=0.7, trunc)[1]", 1e-5),
        "generate_image_from_wplus_trunc": _entry(
            "libs/utilities/generic.py generate_image(G, wplus, 0.7, trunc, input_is_latent=True)"
            + (f": the {size}² image pooled to 256² (AdaptiveAvgPool2d)" if size > 256 else ""), 1e-4),
    }  # fmt: skip
    spec = {
        "kind": "stylegan2_vox256",
        "upstream": {
            "module": "libs/gan/StyleGAN2/model.py: Generator; libs/utilities/generic.py: generate_image",
            "constructor": {
                "size": size,
                "style_dim": 512,
                "n_mlp": 8,
                "channel_multiplier": cfg["channel_multiplier"],
            },
        },  # fmt: skip
        "inputs_note": f"z then wplus ~ N(0,1) from np.random.default_rng({seed}); truncation_latent = "
        f"G.mean_latent(4096) after torch.manual_seed({seed}) (upstream: an unseeded draw)",
        "random_draws": ["truncation_latent: torch.randn(4096, 512) in Generator.mean_latent"],
        "files": [{"file": FILES["generator"], "format": "torch"}],
        "timing": {"authors_s": dt, "what": f"every expected array, batch {batch}, second run"},
    }
    return spec, inputs, exp, entries


def record_direction_matrix(up: Upstream, seed: int, batch: int):
    t = up.torch
    g, _ = generator(up)
    trunc = mean_latent(up, g, seed)
    A, ck = direction_matrix(up)
    A = A.eval()
    rng = np.random.default_rng(seed + 1)
    dp = rng.uniform(-6, 6, (batch, int(ck["learned_directions"]))).astype(np.float32)
    wplus = rng.standard_normal((batch, g.n_latent, 512)).astype(np.float32)
    generic = up.imp("libs.utilities.generic")
    dpt, wt = t.from_numpy(dp).to(up.device), t.from_numpy(wplus).to(up.device)

    def compute():
        shift = A(dpt)
        shifted = generic.get_shifted_latent_code(g, wt, shift, input_is_latent=True, w_plus=True,
                                                  num_layers=ck["num_layers_shift"])  # fmt: skip
        img, lat = generic.generate_image(g, wt, 0.7, trunc, w_plus=True, num_layers_shift=ck["num_layers_shift"],
                                          shift_code=shift, input_is_latent=True, return_latents=True)  # fmt: skip
        return {"shift": shift, "shifted_latent": shifted, "image": img, "image_latent": lat}

    with t.no_grad():
        exp, dt = up.timed(compute)
    exp = {k: _np(v) for k, v in exp.items()}
    entries = {
        "shift": _entry("DirectionMatrix(dp)", 1e-5, rel=True),
        "shifted_latent": _entry("get_shifted_latent_code(G, wplus, shift, input_is_latent=True, w_plus=True)", 1e-5),
        "image": _entry("generate_image(G, wplus, 0.7, trunc, shift_code=A(dp), input_is_latent=True)[0]", 1e-4),
        "image_latent": _entry("...[1]", 1e-5),
    }
    spec = {
        "kind": "direction_matrix",
        "upstream": {"module": "libs/models/direction_matrix.py: DirectionMatrix; libs/utilities/generic.py"},
        "inputs_note": f"dp ~ U(-6, 6) then wplus ~ N(0,1) from np.random.default_rng({seed + 1}); truncation_latent "
        f"= G.mean_latent(4096) after torch.manual_seed({seed})",
        "random_draws": ["truncation_latent: torch.randn(4096, 512) in Generator.mean_latent"],
        "files": [{"file": FILES["A"], "format": "torch"}],
        "generator_weights": {"spec": "../stylegan2_vox256/spec.json", "truncation": 0.7},
        "timing": {"authors_s": dt, "what": f"A, the shifted code and generate_image, batch {batch}, second run"},
    }
    inputs = {"dp": dp, "wplus": wplus, "truncation": np.float32(0.7), "truncation_latent": _np(trunc)}
    return spec, inputs, exp, entries


def record_generator_tuning(up: Upstream, seed: int, source: np.ndarray, steps: int):
    """Their `optimize_g(G, w, img, opt_steps=steps)`; the per-step losses and images and the step-0 gradients are
    read where their code computes them (`calc_loss`'s arguments and results, Adam's first `step`)."""
    t = up.torch
    g, _ = generator(up)
    opt_mod = up.imp("libs.optimization")
    rng = np.random.default_rng(seed + 2)
    wplus = rng.standard_normal((1, g.n_latent, 512)).astype(np.float32)
    real = t.from_numpy(np.ascontiguousarray(source, np.float32) / 255.0 * 2 - 1).to(up.device)  # run_inference:118
    w = t.from_numpy(wplus).to(up.device)
    rec = {"loss": [], "l2_loss": [], "lpips_loss": [], "imgs": [], "trunc": None, "grads0": None}
    names = {id(p): n for n, p in g.named_parameters()}
    tuned = [names[id(p)] for i in TUNED_CONVS for p in g.convs[i].parameters()]
    before = {n: p.detach().clone() for n, p in g.named_parameters()}
    calc_loss, mean_lat, adam = opt_mod.calc_loss, g.mean_latent, t.optim.Adam

    def calc_loss_rec(generated, real_imgs, *a, **k):
        out = calc_loss(generated, real_imgs, *a, **k)
        rec["imgs"].append(generated.detach().double().cpu())
        for key, v in zip(("loss", "l2_loss", "lpips_loss"), out[:3], strict=True):
            rec[key].append(float(v.detach()))
        return out

    def mean_latent_rec(n):
        t.manual_seed(seed)
        rec["trunc"] = mean_lat(n)
        return rec["trunc"]

    class AdamRec(adam):
        def step(self, *a, **k):
            if rec["grads0"] is None:
                rec["grads0"] = {names[id(p)]: p.grad.detach().cpu().numpy().copy()
                                 for grp in self.param_groups for p in grp["params"]}  # fmt: skip
            return super().step(*a, **k)

    with contextlib.ExitStack() as stack:
        for obj, attr, val in ((opt_mod, "calc_loss", calc_loss_rec), (g, "mean_latent", mean_latent_rec),
                               (t.optim, "Adam", AdamRec)):  # fmt: skip
            stack.callback(setattr, obj, attr, getattr(obj, attr))
            setattr(obj, attr, val)
        up.sync()
        t0 = time.perf_counter()
        g = opt_mod.optimize_g(g, w, real, opt_steps=steps)
        trunc = rec["trunc"].detach()
        with t.no_grad():
            img_tuned = g([w], input_is_latent=True, truncation=0.7, truncation_latent=trunc)[0]
        up.sync()
        dt = time.perf_counter() - t0
    after = dict(g.named_parameters())
    deltas = {n: (after[n].detach() - before[n]).double().cpu().numpy() for n in tuned}
    shapes = [[n, list(before[n].shape)] for n in tuned]
    imgs = [x.reshape(-1) for x in rec["imgs"]]
    exp = {
        "loss": np.asarray(rec["loss"], np.float32), "l2_loss": np.asarray(rec["l2_loss"], np.float32),
        "lpips_loss": np.asarray(rec["lpips_loss"], np.float32), "img_step0": _np(rec["imgs"][0]),
        "img_tuned": _np(img_tuned),
        "img_per_step_mean_std": np.asarray([[float(x.mean()), float(x.std())] for x in imgs], np.float32),
        "tuned_delta_stats": np.stack([delta_stats(deltas[n]) for n in tuned]).astype(np.float32),
        "tuned_delta_convs11_conv_weight": deltas["convs.11.conv.weight"].astype(np.float32),
        "grad_step0_convs11_conv_weight": rec["grads0"]["convs.11.conv.weight"],
        "grad_step0_noise_weights": np.concatenate([rec["grads0"][f"convs.{i}.noise.weight"] for i in TUNED_CONVS]),
    }  # fmt: skip
    rec["grads0_noise"] = exp["grad_step0_noise_weights"]
    note = ("graded as the shipped golden: the exact (float64) replay of optimize_g is within these of a float32 run; "
            "a wrong learning rate, parameter set, loss weight or Adam rule moves them by >= 1e-3")  # fmt: skip
    entries = {
        "loss": _entry("calc_loss(...)[0] per step", 1e-4, rel=True),
        "l2_loss": {"upstream": "calc_loss(...)[1] per step", "tol_rel": 1e-4, "tol_max_abs": 1e-5},
        "lpips_loss": {"upstream": "calc_loss(...)[2] per step", "tol_rel": 1e-4, "tol_max_abs": 1e-5},
        "img_step0": _entry("G([w], input_is_latent=True, truncation=0.7, trunc)[0] at step 0", 1e-4),
        "img_tuned": _entry("the tuned G on w", 1e-3),
        "img_per_step_mean_std": _entry("mean and std of each step's image", 1e-4),
        "tuned_delta_stats": {
            "upstream": "[sum, sum|.|, L2, max|.|] of each tuned tensor's change",
            "compare": "columns 1-3 rtol 1e-3; column 0 atol 1e-3 * column 1; or within tol_max_abs",
            "tol_max_abs": 1e-4,
            "tolerance_note": "1e-4 absolute as the tensors' own delta rows: a one-entry tensor (a noise weight) whose "
            "update is small would otherwise be graded tighter than its own row, below the float floor",
        },
        "tuned_delta_convs11_conv_weight": _entry("convs.11.conv.weight after - before", 1e-3, tolerance_note=note),
        "grad_step0_convs11_conv_weight": {
            "upstream": "its gradient at step 0",
            "tol_rel_l2": 1e-3,
            "tol_max_abs": 1e-5,
        },  # fmt: skip
        "grad_step0_noise_weights": {
            "upstream": "the noise weights' gradients at step 0",
            "tol_rel": 1e-3,
            "tol_max_abs": float(1e-3 * np.abs(rec["grads0_noise"]).max(initial=0.0)),
            "tolerance_note": "each is a sum over every pixel of noise x gradient, which cancels: float32 rounding "
            "moves a small one by up to ~2e-4 of the largest (measured: their float32 run vs float64, 8.4e-4 on a "
            "0.17 entry of a set whose largest is 4.3), so 1e-3 relative or 1e-3 of the largest, the goldens' "
            "gradient rule",
        },
    }
    for n in tuned:
        if before[n].numel() <= 4096:  # the small tensors' full deltas (biases, noise weights)
            k = "tuned_delta_" + n.replace(".", "_")
            exp[k] = deltas[n].astype(np.float32)
            entries[k] = _entry(f"{n} after - before", 1e-4, tolerance_note=note)
    spec = {
        "kind": "generator_tuning",
        "upstream": {
            "module": "libs/optimization.py optimize_g",
            "call": f"optimize_g(G, w, img, opt_steps={steps})",
            "config": {"lr": 0.003, "pt_l2_lambda": 100, "pt_lpips_lambda": 1, "truncation": 0.7},
        },  # fmt: skip
        "inputs_note": f"source_u8: the user's image; wplus ~ N(0,1) from np.random.default_rng({seed + 2}); "
        f"truncation_latent: optimize_g's own G.mean_latent(4096), after torch.manual_seed({seed})",
        "random_draws": ["truncation_latent: torch.randn(4096, 512) in Generator.mean_latent, inside optimize_g"],
        "tuned_parameters": shapes,
        "components": {
            "generator": {"files": [{"file": FILES["generator"], "format": "torch"}]},
            "lpips": {
                "files": [{"file": FILES["alexnet"], "format": "torch"}, {"file": FILES["lin"], "format": "torch"}]
            },
        },  # fmt: skip
        "timing": {
            "authors_s": dt,
            "what": f"optimize_g ({steps} steps; it builds LPIPS inside) and the tuned image, first run",
        },
    }
    inputs = {"source_u8": source, "wplus": wplus, "truncation": np.float32(0.7), "truncation_latent": _np(trunc)}
    return spec, inputs, exp, entries


def _image(up: Upstream, u8: np.ndarray):
    """uint8 NCHW -> their [-1, 1] tensor (float32(u8) / 127.5 - 1, the bits the port's replay computes)."""
    return up.torch.from_numpy(u8.astype(np.float32) / np.float32(127.5) - np.float32(1.0)).to(up.device)


def _grad_entry(upstream: str, grad: np.ndarray) -> dict:
    """A gradient's row: 1e-3 of its largest entry (the shipped goldens' rule), as its scale depends on the weights."""
    tol = float(max(1e-3 * float(np.abs(grad).max(initial=0.0)), 1e-12))
    return _entry(upstream, tol, tolerance_note="1e-3 of max |grad| of this recording")


HEADERS = {".npy": (b"\x93NUMPY",)}  # others: a torch zip file or a pickle (legacy torch.save, FLAME's .pkl)


def _check_header(path: pathlib.Path) -> None:
    """A checkpoint file that cannot be one (empty, or neither a zip nor a pickle) is said before any code runs."""
    if not path.is_file():
        return
    with open(path, "rb") as f:
        head = f.read(8)
    if not head:
        raise UserError(f"{path}: an empty file (an interrupted download or copy?); put the checkpoint there again")
    if not head.startswith(HEADERS.get(path.suffix, (b"PK\x03\x04", b"\x80"))):
        what = "not NumPy's .npy" if path.suffix == ".npy" else "neither PyTorch's zip nor a pickle"
        raise UserError(f"{path}: not a checkpoint file ({what}); put the authors' file there")


def _try_import(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _quiet(fn):
    """Their constructors print progress; the recorder's stdout carries its one summary line, so they go to stderr."""
    with contextlib.redirect_stdout(sys.stderr):
        return fn()


def face112(images: np.ndarray) -> np.ndarray:
    """An aligned 112² face of each 256² image: their id-loss crop [35:223, 32:220] resized with PIL bicubic."""
    out = [np.asarray(Image.fromarray(im.transpose(1, 2, 0)).crop((32, 35, 220, 223)).resize((112, 112), Image.BICUBIC))
           for im in images]  # fmt: skip
    return np.stack(out).transpose(0, 3, 1, 2).copy()


def record_irse50(up: Upstream, images: np.ndarray):
    """Their `IDLoss` (ArcFace IR-SE50 from model_ir_se50.pth) on the user's two images and their 112² faces."""
    t, path = up.torch, up.repo / FILES["arcface"]
    id_mod = up.imp("libs.criteria.id_loss")
    idl = _quiet(lambda: id_mod.IDLoss(pretrained_model_path=str(path)).to(up.device).eval())  # IDLoss().cuda()
    face_u8 = face112(images)
    x, face = _image(up, images), _image(up, face_u8)
    pooled = []
    hook = idl.face_pool.register_forward_hook(lambda m, a, o: pooled.append(o.detach()))  # read where they pool

    def compute():
        pooled.clear()
        with t.no_grad():
            exp = {"emb_face112": idl.facenet(face), "emb_from256": idl.extract_feats(x)}
            exp["pooled_crop112"] = pooled[0]
            exp["id_loss_256"] = idl(x, x[[1, 0]])
        f = face.clone().requires_grad_(True)
        loss = idl(f, f[[1, 0]], crop=False)
        loss.backward()
        exp["id_loss_face112"], exp["grad_id_loss_face112"] = loss.detach(), f.grad
        return exp

    try:
        exp, dt = up.timed(compute)
    finally:
        hook.remove()
    exp = {k: _np(v) for k, v in exp.items()}
    entries = {
        "emb_face112": _entry("IDLoss.facenet(face): Backbone(112, 50, 'ir_se') then l2_norm", 1e-4),
        "pooled_crop112": _entry("IDLoss.face_pool(img[:, :, 35:223, 32:220]) (AdaptiveAvgPool2d((112, 112)))", 1e-6),
        "emb_from256": _entry("IDLoss.extract_feats(img) (crop=True): crop, pool, Backbone", 1e-4),
        "id_loss_256": _entry("IDLoss.forward(y_hat=img, y=img[[1, 0]]): mean(1 - cos)", 1e-5),
        "id_loss_face112": _entry("IDLoss.forward(y_hat=face, y=face[[1, 0]], crop=False)", 1e-5),
        "grad_id_loss_face112": _grad_entry(
            "d id_loss_face112 / d face (autograd; their y side detached)", exp["grad_id_loss_face112"]
        ),  # fmt: skip
    }
    spec = {
        "kind": "irse50_arcface",
        "upstream": {
            "module": "libs/criteria/id_loss.py: IDLoss (libs/criteria/model_irse.py: Backbone)",
            "constructor": {"input_size": 112, "num_layers": 50, "mode": "ir_se", "drop_ratio": 0.6, "affine": True},
            "built_as": "IDLoss(pretrained_model_path=model_ir_se50.pth).eval(), as libs/utilities/utils_train.py",
        },  # fmt: skip
        "inputs_note": "img_u8: the user's two images (see `images`); face_u8: their id-loss crop [35:223, 32:220] "
        "of each, resized to 112x112 (PIL bicubic); network inputs float32(u8) / 127.5 - 1",
        "files": [{"file": FILES["arcface"], "format": "torch", "layout": {"": {"group": "facenet"}}}],
        "timing": {"authors_s": dt, "what": "every expected array (the face gradient included), batch 2, second run"},
    }
    return spec, {"face_u8": face_u8, "img_u8": images}, exp, entries


def record_lpips(up: Upstream, images: np.ndarray):
    """Their `LPIPS(net_type='alex')` (libs/criteria/lpips, the pixel2style2pixel port) on the user's images, each
    against the other one mirrored; the per-layer maps are read from their `lin` layers."""
    t = up.torch
    lp_mod, iu = up.imp("libs.criteria.lpips.lpips"), up.imp("libs.utilities.image_utils")
    lp = _quiet(lambda: lp_mod.LPIPS(net_type="alex").to(up.device).eval())  # LPIPS(...).cuda().eval()
    y_u8 = images[[1, 0]][..., ::-1].copy()
    x, y = _image(up, images), _image(up, y_u8)
    maps: list = []
    hooks = [layer.register_forward_hook(lambda m, a, o: maps.append(o.detach())) for layer in lp.lin]
    b = images.shape[0]

    def compute():
        exp = {}
        with t.no_grad():
            maps.clear()
            exp["lpips"] = lp(x, y)
            for i, m in enumerate(maps):
                exp[f"lin{i}_map"] = m
            exp["per_layer"] = t.stack([m.mean((2, 3))[:, 0] for m in maps])
            exp["per_sample"] = t.stack([lp(x[i : i + 1], y[i : i + 1]) for i in range(b)])
            exp["lpips_255"] = lp(iu.torch_range_1_to_255(x), iu.torch_range_1_to_255(y))
        xg = x.clone().requires_grad_(True)
        lp(xg, y).backward()
        exp["grad_x"] = xg.grad
        return exp

    try:
        exp, dt = up.timed(compute)
    finally:
        for h in hooks:
            h.remove()
    exp = {k: _np(v) for k, v in exp.items()}
    entries = {"lpips": _entry("LPIPS(net_type='alex')(x, y): sum over layers and batch / B", 1e-5)}
    for i in range(len(lp.lin)):
        entries[f"lin{i}_map"] = _entry(f"output of LPIPS.lin[{i}] during the lpips call, [B, 1, h, w]", 1e-5)
    entries |= {
        "per_layer": _entry("[layers, B]: spatial means of the lin maps", 1e-6),
        "per_sample": _entry("[B]: LPIPS(x[i:i+1], y[i:i+1])", 1e-5),
        "lpips_255": _entry(
            "LPIPS(torch_range_1_to_255(x), torch_range_1_to_255(y)) (libs/utilities/"
            "image_utils.py; the paired-mode call of utils_train)",
            1e-5,
        ),  # fmt: skip
        "grad_x": _grad_entry("d lpips / d x (autograd)", exp["grad_x"]),
    }
    spec = {
        "kind": "lpips_perceptual",
        "upstream": {
            "module": "libs/criteria/lpips/lpips.py: LPIPS (networks.py: AlexNet, LinLayers)",
            "constructor": {"net_type": "alex", "version": "0.1"},
            "used_as": "LPIPS(net_type='alex').eval() in libs/utilities/utils_train.py and libs/optimization.py",
        },
        "inputs_note": "x_u8: the user's two images (see `images`); y_u8: x_u8[[1, 0]] mirrored left-right (each "
        "image against a mirror of the other); inputs float32(u8) / 127.5 - 1",
        "files": [
            {"file": FILES["alexnet"], "format": "torch", "layout": {"": {"group": "alexnet"}}},
            {"file": FILES["lin"], "format": "torch", "layout": {"": {"group": "lin"}}},
        ],  # fmt: skip
        "timing": {"authors_s": dt, "what": "every expected array (the gradient included), batch 2, second run"},
    }
    return spec, {"x_u8": images, "y_u8": y_u8}, exp, entries


def e4e_encoder(up: Upstream, size: int | None = None):
    """(their `Encoder4Editing(50, 'ir_se', size)` loaded from the e4e file as run_inference.py loads it, size): the
    size from the file's style count when not given."""
    path = up.repo / FILES["e4e"]
    ck = up.torch.load(path, map_location="cpu")
    if not isinstance(ck, dict) or not isinstance(ck.get("e"), dict):
        raise UserError(f"{path}: not the authors' e4e file (a dict with the encoder's state dict under 'e')")
    if size is None:
        n_styles = len({k.split(".")[1] for k in ck["e"] if k.startswith("styles.")})
        size = 2 ** ((n_styles + 2) // 2)  # their style_count = 2 log2(resolution) - 2
    enc = up.imp("libs.gan.encoder4editing.psp_encoders").Encoder4Editing(50, "ir_se", size)
    enc.load_state_dict(ck["e"])
    return enc.to(up.device).eval(), size


def record_e4e(up: Upstream, source: np.ndarray):
    """Their `Encoder4Editing(50, 'ir_se', resolution)` as run_inference.py builds and calls it (`invert_image`:
    `encoder(image)`, no latent_avg added) on the user's source image."""
    t = up.torch
    up.check_fused_act(up.imp("libs.gan.StyleGAN2.model"))
    enc, size = e4e_encoder(up)
    x = _image(up, source)
    with t.no_grad():
        codes, dt = up.timed(lambda: enc(x))
    exp = {"codes": _np(codes)}
    entries = {"codes": _entry(f"Encoder4Editing(50, 'ir_se', {size}).eval()(x) (invert_image: no latent_avg added)",
                               1e-4)}  # fmt: skip
    spec = {
        "kind": "e4e_vox256",
        "upstream": {
            "module": "libs/gan/encoder4editing/psp_encoders.py: Encoder4Editing",
            "constructor": {"num_layers": 50, "mode": "ir_se", "image_resolution": size},
            "built_as": "Encoder4Editing(50, 'ir_se', image_resolution).load_state_dict(torch.load(f)['e']), as "
            "run_inference.py; called as invert_image in libs/utilities/utils_inference.py",
        },
        "inputs_note": "x_u8: the user's source image; network input float32(u8) / 127.5 - 1",
        "files": [{"file": FILES["e4e"], "format": "torch", "layout": {"e": {"group": "enc"}}}],
        "timing": {"authors_s": dt, "what": "encoder(source), batch 1, second run"},
    }
    return spec, {"x_u8": source}, exp, entries


def deca_model(up: Upstream):
    """Their DECA as libs/DECA/estimate_DECA.py configures it (use_tex False), built as the shipped golden built
    it: `DECA._create_model(cfg.model)` (E_flame, E_detail, D_detail from deca_model.tar via util.copy_state_dict;
    FLAME from the pickles) without `_setup_renderer`, which the coarse path does not use."""
    up.deca_imports()
    cfg = up.imp("libs.DECA.decalib.utils.config").get_cfg_defaults()
    cfg.model.use_tex = False
    # their config points at libs/DECA/data beside itself; the files checked here are those
    cfg.pretrained_modelpath = str(up.repo / FILES["deca"])
    cfg.model.flame_model_path = str(up.repo / FILES["flame"])
    cfg.model.flame_lmk_embedding_path = str(up.repo / FILES["landmarks"])
    cls = up.imp("libs.DECA.decalib.deca").DECA
    deca = cls.__new__(cls)
    deca.cfg, deca.device = cfg, up.device
    deca.image_size, deca.uv_size = cfg.dataset.image_size, cfg.model.uv_size
    _quiet(lambda: deca._create_model(cfg.model))
    # util.copy_state_dict copies what both hold: every encoder tensor must come from the file
    own, got = set(deca.E_flame.state_dict()), set(deca.checkpoint.get("E_flame") or {})
    if not own <= got:
        raise UserError(f"{up.repo / FILES['deca']}: its E_flame lacks {len(own - got)} of the encoder's {len(own)} "
                        f"tensors (e.g. {sorted(own - got)[0]}); not DECA's deca_model.tar")  # fmt: skip
    if "chumpy" in up.stand_ins and "vs converters" not in up.stand_ins["chumpy"]:
        ref = load_flame(up.repo / FILES["flame"])["shapedirs"]
        n = cfg.model.n_shape
        got = deca.flame.shapedirs.cpu().numpy()
        err = max(float(np.abs(got[:, :, :n] - ref[:, :, :n]).max()),
                  float(np.abs(got[:, :, n:] - ref[:, :, 300 : 300 + cfg.model.n_exp]).max()))  # fmt: skip
        up.stand_ins["chumpy"] += f"; their FLAME's shapedirs vs converters.deca.load_flame: max abs {err:.3g}"
    return deca


def record_deca(up: Upstream, images: np.ndarray):
    """Their DECA coarse path on the user's images resized to 224² (E_flame, decompose_code, decode, the Euler
    angles as estimate_DECA.py takes them, their shape losses); FLAME and the projection again on the encoder's
    recorded codes (inputs), so the port's replay checks each stage on the same parameters."""
    t = up.torch
    deca = deca_model(up)
    util = up.imp("libs.DECA.decalib.utils.util")
    rot = up.imp("libs.DECA.decalib.utils.rotation_converter")
    losses = up.imp("libs.criteria.losses").Losses()
    image_u8 = np.stack([np.asarray(Image.fromarray(im.transpose(1, 2, 0)).resize((224, 224), Image.BICUBIC))
                         for im in images]).transpose(0, 3, 1, 2).copy()  # fmt: skip
    x = t.from_numpy(image_u8.astype(np.float32) / np.float32(255.0)).to(up.device)

    def euler(pose):  # estimate_DECA.py: one image at a time
        return t.cat([rot.rad2deg(rot.batch_axis2euler(pose[i : i + 1, :3])) for i in range(pose.shape[0])])

    def compute():
        params = deca.E_flame(x)
        code = deca.decompose_code(params, deca.param_dict)
        exp = {"params": params, **{f"code_{k}": v for k, v in code.items()}}
        for k, v in zip(("landmarks2d", "landmarks3d", "trans_verts"), deca.decode(code), strict=True):
            exp[f"enc_decode_{k}"] = v
        exp["enc_euler_deg"] = euler(code["pose"])
        # the later stages on the recorded codes (the replay's inputs)
        rec = {k: code[k].detach().clone() for k in ("shape", "exp", "pose", "cam")}
        s, e, p, cam = rec.values()
        verts, l2, l3 = deca.flame(shape_params=s, expression_params=e, pose_params=p)
        exp |= {"flame_vertices": verts, "flame_landmarks2d": l2, "flame_landmarks3d": l3}
        exp["orth_proj_landmarks2d"] = util.batch_orth_proj(l2, cam)
        exp["orth_proj_landmarks3d"] = util.batch_orth_proj(l3, cam)
        for k, v in zip(("landmarks2d", "landmarks3d", "trans_verts"), deca.decode(dict(rec)), strict=True):
            exp[f"decode_{k}"] = v
        exp["euler_deg"] = euler(p)
        cam8 = t.zeros_like(cam)
        cam8[:, 0] = 8  # utils_train.py: cam zeroed, then scale 8
        g1 = deca.decode({"shape": s, "exp": e, "pose": p, "cam": cam8})
        g2 = deca.decode({"shape": s[[1, 0]], "exp": e[[1, 0]], "pose": p[[1, 0]], "cam": cam8})
        exp["loss_shape_cam8"] = losses.calculate_shape_loss(g1[2], g2[2], normalize=False)
        exp["loss_eye_cam8"] = losses.calculate_eye_loss(g1[0], g2[0])
        exp["loss_mouth_cam8"] = losses.calculate_mouth_loss(g1[0], g2[0])
        return exp, rec

    with t.no_grad():
        (exp, codes), dt = up.timed(compute)
    exp = {k: _np(v) for k, v in exp.items()}
    lmk = "FLAME landmarks -> batch_orth_proj(., cam), y negated, * 112 + 112 (224-px units)"
    note = "1e-5 m (the shipped golden grades its synthetic FLAME at 1e-6); real FLAME and codes give larger values"
    entries = {
        "params": _entry("DECA.E_flame(image): ResNet-50 encoder -> 236 parameters", 1e-4),
        **{f"code_{k}": _entry(f"DECA.decompose_code(params, param_dict)[{k!r}]", 1e-4)
           for k in ("shape", "tex", "exp", "pose", "cam", "light")},
        "enc_decode_landmarks2d": _entry(f"DECA.decode(the encoder's codes)[0]: {lmk}", 1e-3),
        "enc_decode_landmarks3d": _entry("DECA.decode(...)[1]", 1e-3),
        "enc_decode_trans_verts": _entry("DECA.decode(...)[2]: projected vertices (224-px units)", 1e-3),
        "enc_euler_deg": _entry("rad2deg(batch_axis2euler(pose[i:i+1, :3])) per sample, as estimate_DECA.py", 1e-3),
        "flame_vertices": _entry("DECA.flame(shape, exp, pose) on the recorded codes: vertices", 1e-5,
                                 tolerance_note=note),
        "flame_landmarks2d": _entry("... landmarks2d (17 dynamic contour + 51 static)", 1e-5, tolerance_note=note),
        "flame_landmarks3d": _entry("... landmarks3d (68)", 1e-5, tolerance_note=note),
        "orth_proj_landmarks2d": _entry("util.batch_orth_proj(flame_landmarks2d, cam)", 1e-5),
        "orth_proj_landmarks3d": _entry("util.batch_orth_proj(flame_landmarks3d, cam)", 1e-5),
        "decode_landmarks2d": _entry("DECA.decode({shape, exp, pose, cam} recorded)[0]", 1e-3),
        "decode_landmarks3d": _entry("DECA.decode(...)[1]", 1e-3),
        "decode_trans_verts": _entry("DECA.decode(...)[2]", 1e-3),
        "euler_deg": _entry("rad2deg(batch_axis2euler(pose[i:i+1, :3])) per sample, recorded pose", 1e-3),
        "loss_shape_cam8": _entry("Losses().calculate_shape_loss(decode(p)[2], decode(p[[1, 0]])[2]) with cam "
                                  "[8, 0, 0] as utils_train.py", 1e-4),
        "loss_eye_cam8": _entry("Losses().calculate_eye_loss on decode landmarks2d of the same pair", 1e-4),
        "loss_mouth_cam8": _entry("Losses().calculate_mouth_loss on the same pair", 1e-4),
    }  # fmt: skip
    spec = {
        "kind": "deca_coarse",
        "upstream": {
            "module": "libs/DECA/decalib/deca.py: DECA (E_flame, decompose_code, decode); models/FLAME.py; "
            "utils/util.py: batch_orth_proj; utils/rotation_converter.py; libs/criteria/losses.py: Losses",
            "constructor": {
                "ResnetEncoder": {"outsize": 236},
                "FLAME": {"n_shape": 100, "n_exp": 50},
                "param_list": ["shape", "tex", "exp", "pose", "cam", "light"],
                "image_size": 224,
            },
            "built_as": "DECA._create_model(cfg.model) with their config (use_tex False, as estimate_DECA.py) on a "
            "DECA object without renderer",
        },  # fmt: skip
        "inputs_note": "image_u8: the user's two images (see `images`) resized to 224x224 (PIL bicubic; upstream "
        "their TestData crops around FAN's landmarks); encoder input float32(u8) / 255. shape, exp, pose, cam: "
        "the encoder's codes of these images, as recorded (FLAME, decode, the angles and losses run on them)",
        "files": [
            {"file": FILES["deca"], "format": "torch", "layout": {"E_flame": {"group": "E_flame"}}},
            {"file": FILES["flame"], "format": "flame_pkl"},
            {"file": FILES["landmarks"], "format": "flame_landmarks"},
        ],
        "timing": {"authors_s": dt, "what": "every expected array, batch 2, second run"},
    }
    inputs = {"image_u8": image_u8, **{k: _np(v) for k, v in codes.items()}}
    return spec, inputs, exp, entries


# ----------------------------------------------------------------------------------------------- pipelines
FAN_BOX = (48.0, 76.0, 208.0, 228.0)  # the stand-in detector's kpt68 box: where an aligned 256² crop has its face


class Detector:
    """DECA's face detector (their datasets/detectors.py `FAN`, pip face_alignment), used only when its weights are
    already on disk (nothing is downloaded); otherwise a stand-in returning the fixed kpt68 box `FAN_BOX`. Either
    way every box it returns is recorded, in call order, for the port to replay."""

    def __init__(self, up: Upstream):
        self.boxes: list[list[float]] = []
        self.real = None
        t = up.torch
        hub = t.hub.download_url_to_file

        def refuse(url, *a, **k):
            raise FileNotFoundError(f"{url} (not on disk; nothing is downloaded)")

        fa_utils = sys.modules.get("face_alignment.utils") or _try_import("face_alignment.utils")
        fa_dl = getattr(fa_utils, "download_url_to_file", None)
        try:
            t.hub.download_url_to_file = refuse
            if fa_dl is not None:
                fa_utils.download_url_to_file = refuse
            self.real = up.imp("libs.DECA.decalib.datasets.detectors").FAN()
            up.stand_ins.pop("FAN (DECA's face detector)", None)
        except Exception as e:  # noqa: BLE001  (face_alignment missing, or its weights not on disk)
            up.stand_ins["FAN (DECA's face detector)"] = (
                f"face_alignment's FAN does not load here ({type(e).__name__}: {str(e).splitlines()[0][:120]}): a stand-in returns the "
                f"kpt68 box {list(FAN_BOX)} [left, top, right, bottom] of every image (an aligned 256x256 crop's "
                "face); the boxes are inputs (boxes_*), so the port replays the same crops"
            )
        finally:
            t.hub.download_url_to_file = hub
            if fa_dl is not None:
                fa_utils.download_url_to_file = fa_dl

    def __call__(self):  # detectors.FAN() as TestData builds it
        return self

    def run(self, image):
        if self.real is not None:
            bbox, kind = self.real.run(image)
            if kind == "error":
                raise UserError("DECA's face detector found no face in a frame: give aligned face crops")
        else:
            bbox, kind = list(FAN_BOX), "kpt68"
        self.boxes.append([float(v) for v in bbox])
        return [float(np.float32(v)) for v in bbox], kind


def deca_wrapper(up: Upstream, detector: Detector):
    """Their `DECA_model` (libs/DECA/estimate_DECA.py: `extract_DECA_params` one image at a time through TestData's
    crop), holding the DECA that `deca_model` builds (no renderer) and a TestData whose detector is `detector`."""
    est = up.imp("libs.DECA.estimate_DECA")
    datasets = up.imp("libs.DECA.decalib.datasets.datasets")
    w = est.DECA_model.__new__(est.DECA_model)
    w.deca = deca_model(up)
    with contextlib.ExitStack() as stack:
        stack.callback(setattr, datasets.detectors, "FAN", datasets.detectors.FAN)
        datasets.detectors.FAN = detector
        w.data = datasets.TestData()
    return w


class CropRecorder:
    """Records what TestData.get_image_tensor computes: the similarity `theta` handed to kornia's warp_affine and
    the 224² crop it returns (/255), per DECA image, in call order."""

    def __init__(self, up: Upstream, wrapper):
        self.thetas, self.crops = [], []
        datasets = up.imp("libs.DECA.decalib.datasets.datasets")
        kornia, get = datasets.kornia, wrapper.data.get_image_tensor
        warp = kornia.warp_affine

        def warp_rec(src, M, *a, **k):
            self.thetas.append(np.concatenate([_np(M)[0], [[0, 0, 1]]]).astype(np.float32))
            return warp(src, M, *a, **k)

        def get_rec(image):
            out, err = get(image)
            self.crops.append(_np(out))
            return out, err

        self._undo = [
            lambda: setattr(kornia, "warp_affine", warp),
            lambda: setattr(wrapper.data, "get_image_tensor", get),
        ]
        kornia.warp_affine, wrapper.data.get_image_tensor = warp_rec, get_rec

    def close(self):
        for u in self._undo:
            u()


def direction_matrix(up: Upstream):
    """Their DirectionMatrix as run_inference.py builds it from A_matrix.pt; returns (A, checkpoint)."""
    ck = up.torch.load(up.repo / FILES["A"], map_location="cpu")
    A = up.imp("libs.models.direction_matrix").DirectionMatrix(
        shift_dim=ck["shift_dim"], input_dim=ck["learned_directions"], out_dim=None, w_plus=ck["w_plus"], bias=True,
        num_layers=ck["num_layers_shift"])  # fmt: skip
    A.load_state_dict(ck["A_matrix"])
    return A.to(up.device), ck


def component_files(*names) -> dict:
    """The spec's `components` block for the recorded pipeline kinds: each network's files as its own kind names them."""
    files = {
        "generator": [{"file": FILES["generator"], "format": "torch"}],
        "A": [{"file": FILES["A"], "format": "torch"}],
        "deca": [{"file": FILES["deca"], "format": "torch", "layout": {"E_flame": {"group": "E_flame"}}},
                 {"file": FILES["flame"], "format": "flame_pkl"},
                 {"file": FILES["landmarks"], "format": "flame_landmarks"}],
        "id_loss": [{"file": FILES["arcface"], "format": "torch", "layout": {"": {"group": "facenet"}}}],
        "lpips": [{"file": FILES["alexnet"], "format": "torch", "layout": {"": {"group": "alexnet"}}},
                  {"file": FILES["lin"], "format": "torch", "layout": {"": {"group": "lin"}}}],
    }  # fmt: skip
    return {n: {"files": files[n]} for n in names}


def directions_block(count_pose, num_expressions, jaw, directions_exp) -> dict:
    return {"count_pose": int(count_pose), "num_expressions": int(num_expressions), "a_jaw": float(jaw["a"]),
            "b_jaw": float(jaw["b"]), "a_exp": [float(d["a"]) for d in directions_exp],
            "b_exp": [float(d["b"]) for d in directions_exp],
            "exp_component": [int(d["exp_component"]) for d in directions_exp]}  # fmt: skip


BOX_CONVENTION = {
    "detector": "libs/DECA/decalib/datasets/detectors.py FAN.run returns [left, top, right, bottom] and the type "
    '"kpt68" (see stand_ins when face_alignment\'s weights are not on disk); recorded per DECA image in boxes_*',
    "crop": "everything after the detector is the authors' TestData.get_image_tensor (bbox2point, int(old_size * "
    "1.25), skimage's similarity, kornia's warp_affine to 224x224, / 255)",
}


def record_reenact_frames(up: Upstream, seed: int, source: np.ndarray, driving: np.ndarray):
    """Their `Inference.run_reenactment` (run_inference.py) on the user's source crop and driving frames: their
    e4e inverts the source (`load_source_data`, generator tuning off as `--optimize_generator` leaves it), DECA
    reads the source and every frame, `make_shift`, A, `generate_image`. Replaced: `load_models` (the checkpoints
    in pretrained_models/, no landmark model) and `preprocess_image` (the crops are given: identity)."""
    up.need("scikit-image", "opencv-python")
    up.deca_imports()
    ri = up.imp("run_inference")
    det = Detector(up)
    g, _ = generator(up)
    enc, _ = e4e_encoder(up, g.size)
    A, ck = direction_matrix(up)
    shape_model = deca_wrapper(up, det)
    crops = CropRecorder(up, shape_model)
    trunc = mean_latent(up, g, seed)
    inf = ri.Inference.__new__(ri.Inference)
    work = pathlib.Path(tempfile.mkdtemp(prefix="jaxreenact_record_"))
    (work / "driving").mkdir()
    for i, im in enumerate(driving):  # their load_target_data reads a folder of frames (sorted)
        Image.fromarray(im.transpose(1, 2, 0)).save(work / "driving" / f"{i:06d}.png")
    Image.fromarray(source[0].transpose(1, 2, 0)).save(work / "source.png")
    inf.args, inf.device = {}, up.device
    inf.source_path, inf.target_path, inf.output_path = str(work / "source.png"), str(work / "driving"), str(work)
    inf.dataset_type, inf.image_resolution = "voxceleb", g.size
    inf.save_grid = inf.save_images = inf.save_video = inf.optimize_generator = False

    def load_models():  # their load_models, with the files checked here and the recorded truncation centre
        inf.shape_model, inf.landmarks_est = shape_model, None
        inf.truncation, inf.generator, inf.trunc = 0.7, g, trunc
        inf.learned_directions, inf.shift_scale = ck["learned_directions"], ck["shift_scale"]
        inf.w_plus, inf.num_layers_shift = ck["w_plus"], ck["num_layers_shift"]
        inf.A_matrix, inf.encoder = A.eval(), enc
        A.zero_grad()
        (inf.count_pose, inf.num_expressions, inf.directions_exp, jaw, inf.angle_scales,
         inf.angle_directions) = ri.initialize_directions(inf.dataset_type, inf.learned_directions, inf.shift_scale)  # fmt: skip
        inf.a_jaw, inf.b_jaw, inf.max_jaw, inf.min_jaw = jaw["a"], jaw["b"], jaw["max"], jaw["min"]
        rec["directions"] = directions_block(inf.count_pose, inf.num_expressions, jaw, inf.directions_exp)

    def given_crop(image, landmarks_est, save_filename=None):  # the user's crops are the preprocessed frames
        return np.asarray(Image.open(image).convert("RGB")) if isinstance(image, str) else image

    rec = {"deca": [], "shift_vector": [], "shift": [], "reenacted": [], "latents": [], "wplus": None}
    shapemodel, gen_image, invert = ri.calculate_shapemodel, ri.generate_image, ri.invert_image
    make_shift = inf.make_shift

    def shapemodel_rec(*a, **k):
        params, angles = shapemodel(*a, **k)
        rec["deca"].append({**{k: _np(v) for k, v in params.items()}, "angles": _np(angles)})
        return params, angles

    def gen_rec(*a, **k):
        out = gen_image(*a, **k)
        if k.get("shift_code") is not None:
            rec["reenacted"].append(_np(out[0]))
            rec["latents"].append(_np(out[1]))
        return out

    def shift_rec(*a, **k):
        out = make_shift(*a, **k)
        rec["shift_vector"].append(_np(out))
        return out

    def invert_rec(image, encoder, *a, **k):
        out = invert(image, encoder, *a, **k)
        rec["wplus"] = _np(out[1])
        return out

    hook = A.register_forward_hook(lambda m, a, o: rec["shift"].append(_np(o)))
    try:
        with contextlib.ExitStack() as stack, contextlib.chdir(up.repo):  # their config paths are ./libs/...
            for obj, attr, val in ((ri, "calculate_shapemodel", shapemodel_rec), (ri, "generate_image", gen_rec),
                                   (ri, "preprocess_image", given_crop), (ri, "invert_image", invert_rec),
                                   (inf, "make_shift", shift_rec), (inf, "load_models", load_models)):  # fmt: skip
                stack.callback(setattr, obj, attr, getattr(obj, attr))
                setattr(obj, attr, val)
            up.sync()
            t0 = time.perf_counter()
            _quiet(inf.run_reenactment)
            up.sync()
            dt = time.perf_counter() - t0
    finally:
        hook.remove()
        crops.close()
        shutil.rmtree(work, ignore_errors=True)
    n = len(driving)
    if len(rec["deca"]) != n + 1 or len(det.boxes) != n + 1 or len(rec["reenacted"]) != n:
        raise RuntimeError(f"record reenact_frames: their run made {len(rec['deca'])} DECA calls and "
                           f"{len(rec['reenacted'])} reenacted frames for {n} driving frames")  # fmt: skip
    keys = {"pose": "pose", "exp": "alpha_exp", "shape": "alpha_shp", "cam": "cam", "angles": "angles"}
    exp = {}
    for role, sl in (("source", slice(0, 1)), ("driving", slice(1, None))):
        for k, src in keys.items():
            exp[f"deca_{role}_{k}"] = np.concatenate([d[src] for d in rec["deca"][sl]])
        exp[f"deca_{role}_theta"] = np.stack(crops.thetas[sl])
        exp[f"deca_{role}_crop_sub4"] = np.stack(crops.crops[sl])[..., ::4, ::4]
    exp["shift_vector"] = np.concatenate(rec["shift_vector"])
    exp["shift"] = np.concatenate(rec["shift"])
    exp["reenacted"] = np.concatenate(rec["reenacted"])
    exp["reenacted_latents"] = np.concatenate(rec["latents"])
    ranges = np.load(up.repo / "libs/configs/ranges_voxceleb.npy")
    inputs = {"source_u8": source, "driving_u8": driving, "wplus": rec["wplus"],
              "boxes_source": np.asarray(det.boxes[:1], np.float32), "boxes_driving": np.asarray(det.boxes[1:], np.float32),
              "truncation": np.float32(0.7), "truncation_latent": _np(trunc), "ranges_voxceleb": ranges}  # fmt: skip
    shapemodel_s = "calculate_shapemodel(shape_model, {}) (DECA_model.extract_DECA_params)"
    entries = {}
    for role, what in (("source", "source_img"), ("driving", "each target_image")):
        for k, src in keys.items():
            if k == "angles":
                entries[f"deca_{role}_angles"] = _entry(f"angles (degrees) of {shapemodel_s.format(what)}", 1e-3)
            else:
                entries[f"deca_{role}_{k}"] = _entry(f"params[{src!r}] of {shapemodel_s.format(what)}", 1e-4)
        entries[f"deca_{role}_theta"] = _entry("TestData.get_image_tensor: the similarity handed to kornia's "
                                               "warp_affine (skimage params as float32)", 1e-4, rel=True)  # fmt: skip
        entries[f"deca_{role}_crop_sub4"] = _entry("TestData.get_image_tensor output (224x224 crop / 255), every "
                                                   "4th pixel", 1e-4)  # fmt: skip
    entries |= {
        "shift_vector": _entry("Inference.make_shift(angles_source, angles_target, params_source, params_target) "
                               "per frame", 1e-4),
        "shift": _entry("A_matrix(shift_vector) per frame", 1e-5, rel=True),
        "reenacted": _entry("generate_image(G_source, source_code, 0.7, trunc, shift_code=shift, "
                            "input_is_latent=True, return_latents=True)[0] per frame", 1e-4),
        "reenacted_latents": _entry("...[1]", 1e-5),
    }  # fmt: skip
    spec = {
        "kind": "reenact_frames",
        "upstream": {
            "module": "run_inference.py Inference.run_reenactment / make_shift; libs/utilities/generic.py "
            "calculate_shapemodel, generate_image, initialize_directions; libs/DECA/estimate_DECA.py DECA_model",
            "replaced": "load_models (the checkpoints in pretrained_models/; no landmark model; the truncation "
            "centre seeded), preprocess_image (the given crops: identity), optimize_generator off (generator_tuning "
            "is its own kind)",
        },
        "inputs_note": f"source_u8, driving_u8: your crops; wplus: their e4e inversion of the source "
        f"(invert_image in load_source_data); boxes_*: the detector's box of each DECA image, in call order; "
        f"truncation_latent: G.mean_latent(4096) after torch.manual_seed({seed})",
        "random_draws": ["truncation_latent: torch.randn(4096, 512) in Generator.mean_latent"],
        "components": component_files("generator", "deca", "A"),
        "direction_coefficients": rec["directions"],
        "box_convention": BOX_CONVENTION,
        "timing": {"authors_s": dt, "what": f"Inference.run_reenactment after load_models: e4e on the source, DECA, "
                   f"A and G on {n} driving frames, one frame at a time (their loop), first run"},
    }  # fmt: skip
    return spec, inputs, exp, entries


TRAIN = {  # kind: (their --training_method, Trainer method, batch, steps)
    "train_step_synthetic": ("synthetic", "train", 4, 2),
    "train_step_mixed": ("real_synthetic", "train_real", 4, 1),
    "train_step_paired": ("paired", "train_paired", 2, 1),
}
TERM_KEYS = ("loss_shape", "loss_eye", "loss_mouth", "loss_identity", "loss_perceptual", "loss_pixel_wise", "loss")


def invert_frames(up: Upstream, frames: np.ndarray, size: int) -> np.ndarray:
    """Their e4e codes of the user's frames (what their datasets store as each frame's `w`), [N, n_latent, 512]."""
    t = up.torch
    enc, _ = e4e_encoder(up, size)
    with t.no_grad():
        return np.concatenate([_np(enc(_image(up, frames[i : i + 1]))) for i in range(len(frames))])


class Batches:
    """Their DataLoader / dataset for the recorded step: the given batches in order (upstream shuffles), and the
    lengths their trainer prints."""

    def __init__(self, batches: list[dict]):
        self.batches = batches

    def __call__(self, *a, **k):  # DataLoader(dataset, ...) and CustomDataset_paired(path, ...)
        return self

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)

    def get_length(self):
        n = sum(len(next(iter(b.values()))) for b in self.batches)
        return n, 1, 1


def _frames_tensor(up: Upstream, u8: np.ndarray):
    """ToTensor + Normalize(0.5, 0.5) of uint8 frames, as their datasets load them."""
    return (up.torch.from_numpy(u8.astype(np.float32)) / 255.0 - 0.5) / 0.5


def record_train_step(up: Upstream, kind: str, seed: int, pool: np.ndarray):
    """One step (two for the synthetic stage) of their `Trainer` through `run_trainer.main()`. Replaced as the shipped
    goldens replace it: `load_models` (the checkpoints in pretrained_models/; A starts from A_matrix.pt; the
    truncation centre seeded), the datasets and DataLoader (the given batches, in order) and `Utilities_train.log`
    (logging and validation). Every random draw, DECA box and intermediate value is recorded where their code makes
    it. `pool`: the user's frames (uint8 NCHW), the mixed stage's real frames and the paired stage's pairs."""
    t = up.torch
    up.need("scikit-image", "opencv-python")
    up.deca_imports()
    method, call, batch, steps = TRAIN[kind]
    half = batch // 2
    rt, tr = up.imp("run_trainer"), up.imp("libs.trainer")
    ut = up.imp("libs.utilities.utils_train")
    det = Detector(up)
    g, _ = generator(up)
    A, ck = direction_matrix(up)
    shape_model = deca_wrapper(up, det)
    crops = CropRecorder(up, shape_model)
    trunc = mean_latent(up, g, seed)
    inputs: dict = {}
    batches = []
    if kind != "train_step_synthetic":
        n = len(pool)
        if kind == "train_step_mixed":
            idx = [[(steps * s + i) % n for i in range(half)] for s in range(steps)]
            real = np.stack([pool[i] for i in idx])
            w = invert_frames(up, pool, g.size)
            inputs |= {"real_img_u8": real, "w_real": np.stack([w[i] for i in idx])}
            for s in range(steps):
                x = _frames_tensor(up, real[s])
                batches.append({"w": t.from_numpy(inputs["w_real"][s]), "real_img": x, "inv_img": x.clone()})
        else:
            src = np.stack([[pool[(2 * (batch * s + i)) % n] for i in range(batch)] for s in range(steps)])
            tgt = np.stack([[pool[(2 * (batch * s + i) + 1) % n] for i in range(batch)] for s in range(steps)])
            w = invert_frames(up, pool, g.size)
            ws = np.stack([[w[(2 * (batch * s + i)) % n] for i in range(batch)] for s in range(steps)])
            wt = np.stack([[w[(2 * (batch * s + i) + 1) % n] for i in range(batch)] for s in range(steps)])
            inputs |= {"source_img_u8": src, "target_img_u8": tgt, "source_w": ws, "target_w": wt}
            for s in range(steps):
                batches.append({"source_latent_code": t.from_numpy(ws[s]), "source_img": _frames_tensor(up, src[s]),
                                "target_latent_code": t.from_numpy(wt[s]), "target_img": _frames_tensor(up, tgt[s])})  # fmt: skip
    data = Batches(batches)
    rec: dict = {k: [] for k in ("noise", "images", "latents", "deca", "theta", "crop", "boxes", "shift_vector",
                                 "indices", "rand_u", "choice", "shift", "shape", "losses", "grads", "after")}  # fmt: skip
    rec["directions"] = None
    live: dict = {}

    def load_models(self):  # their load_models on the checked files
        self.deca, self.dim_z = shape_model, 512
        self.A_matrix = A
        self.G, self.truncation, self.trunc = g, 0.7, trunc

    def noise_rec(*a, **k):
        z = make_noise(*a, **k)
        rec["noise"].append(_np(z))
        return z

    def gen_rec(*a, **k):
        out = gen_image(*a, **k)
        img = out[0] if isinstance(out, tuple) else out
        rec["images"].append(("shifted" if k.get("shift_code") is not None else "plain", _np(img)))
        if k.get("shift_code") is not None:
            rec["latents"].append(_np(out[1]))
        return out

    def shapemodel_rec(*a, **k):
        n0, b0 = len(crops.thetas), len(det.boxes)
        params, angles = shapemodel(*a, **k)
        rec["deca"].append({**{k2: _np(v) for k2, v in params.items()}, "angles": _np(angles),
                            "theta": np.stack(crops.thetas[n0:]), "crop": np.stack(crops.crops[n0:]),
                            "boxes": np.asarray(det.boxes[b0:], np.float32)})  # fmt: skip
        return params, angles

    def shift50_rec(self, *a, **k):
        live["in_shift"] = True
        try:
            sv, ind = shift50(self, *a, **k)
        finally:
            live["in_shift"] = False
        rec["shift_vector"].append(_np(sv))
        rec["indices"].append(np.asarray(rec["choice"][-1], np.int64))
        rec["directions"] = directions_block(self.count_pose, self.num_expressions,
                                             {"a": self.a_jaw, "b": self.b_jaw}, self.directions_exp)  # fmt: skip
        return sv, ind

    def shift_rec(self, *a, **k):
        sv = shift_full(self, *a, **k)
        rec["shift_vector"].append(_np(sv))
        rec["directions"] = directions_block(self.count_pose, self.num_expressions,
                                             {"a": self.a_jaw, "b": self.b_jaw}, self.directions_exp)  # fmt: skip
        return sv

    def choice_rec(*a, **k):
        out = choice(*a, **k)
        if live.get("in_shift"):
            rec["choice"].append(np.asarray(out))
        return out

    def rand_rec(*a, **k):
        if not up.cuda and str(k.get("device", "")).startswith("cuda"):  # their torch.rand(1, device='cuda')
            k["device"] = "cpu"
        out = rand(*a, **k)
        if live.get("in_shift"):
            rec["rand_u"].append(float(out.reshape(-1)[0]))
        return out

    def shape_rec(self, coefficients, *a, **k):
        coef = {k2: _np(v) for k2, v in coefficients.items()}
        out = calc_shape(self, coefficients, *a, **k)
        rec["shape"].append({**coef, "landmarks2d": _np(out[0]), "trans_verts": _np(out[2])})
        return out

    def losses_rec(self, *a, **k):
        loss, d = losses_of[call](self, *a, **k)
        rec["losses"].append(dict(d))
        return loss, d

    def a_hook(m, a, o):
        o.retain_grad()
        live["shift"] = o
        rec["shift"].append(_np(o))

    names = dict(A.named_parameters())
    adam = t.optim.Adam

    class AdamRec(adam):
        def step(self, *a, **k):
            rec["grads"].append({n: _np(p.grad) for n, p in names.items()} | {"shift": _np(live["shift"].grad)})
            out = super().step(*a, **k)
            rec["after"].append({n: _np(p) for n, p in names.items()})
            up.sync()
            live["t1"] = time.perf_counter()  # the step's end; the copies above are the recorder's, a few ms
            return out

    def resume_rec(self, A_matrix, path):  # called right before their loop: the step's time starts here
        out = resume(self, A_matrix, path)
        up.sync()
        live["t0"] = time.perf_counter()
        return out

    make_noise, gen_image, shapemodel = tr.make_noise, tr.generate_image, tr.calculate_shapemodel
    shift50, shift_full = ut.Utilities_train.make_shift_vector_50, ut.Utilities_train.make_shift_vector
    losses_of = {"train": ut.Utilities_train.calculate_losses, "train_real": ut.Utilities_train.calculate_losses,
                 "train_paired": ut.Utilities_train.calculate_losses_paired}  # fmt: skip
    calc_shape, choice, rand = type(shape_model).calculate_shape, np.random.choice, t.rand
    resume = ut.Utilities_train.start_from_checkpoint
    work = pathlib.Path(tempfile.mkdtemp(prefix="jaxreenact_record_"))
    argv = ["run_trainer.py", "--experiment_path", str(work / "experiment"), "--training_method", method,
            "--batch_size", str(batch), "--max_iter", str(steps if call == "train" else 1)]  # fmt: skip
    if call != "train":
        argv += ["--train_dataset_path", "given", "--test_dataset_path", "given"]
    hook = A.register_forward_hook(a_hook)
    losses_name = "calculate_losses_paired" if call == "train_paired" else "calculate_losses"
    patches = ((tr.Trainer, "load_models", load_models), (tr, "make_noise", noise_rec), (tr, "generate_image", gen_rec),
               (tr, "calculate_shapemodel", shapemodel_rec), (tr, "DataLoader", data), (tr, "CustomDataset_paired", data),
               (ut.Utilities_train, "configure_dataset", lambda self: (data, data)),
               (ut.Utilities_train, "log", lambda self, *a, **k: None),
               (ut.Utilities_train, "start_from_checkpoint", resume_rec),
               (ut.Utilities_train, "make_shift_vector_50", shift50_rec),
               (ut.Utilities_train, "make_shift_vector", shift_rec),
               (ut.Utilities_train, losses_name, losses_rec), (type(shape_model), "calculate_shape", shape_rec),
               (np.random, "choice", choice_rec), (t, "rand", rand_rec), (t.optim, "Adam", AdamRec),
               (sys, "argv", argv))  # fmt: skip
    try:
        with contextlib.ExitStack() as stack, contextlib.chdir(up.repo):  # their config paths are ./...
            for obj, attr, val in patches:
                stack.callback(setattr, obj, attr, getattr(obj, attr))
                setattr(obj, attr, val)
            t.manual_seed(seed)
            np.random.seed(seed)  # noqa: NPY002  (their code draws from the global numpy state)
            _quiet(rt.main)
            dt = live["t1"] - live["t0"]
    finally:
        hook.remove()
        crops.close()
        shutil.rmtree(work, ignore_errors=True)
    if len(rec["grads"]) != steps:
        raise RuntimeError(f"record {kind}: their trainer ran {len(rec['grads'])} steps, not {steps}")
    return _train_folder(kind, seed, batch, steps, inputs, rec, trunc, dt, up)


def _train_folder(kind, seed, batch, steps, inputs, rec, trunc, dt, up):
    """The recorded values as the shipped training-step goldens name them."""
    paired, mixed = kind == "train_step_paired", kind == "train_step_mixed"
    roles = ["source", "target", "shifted"]
    per_role = {r: [rec["deca"][3 * s + i] for s in range(steps)] for i, r in enumerate(roles)}
    exp: dict = {}
    for role, calls in per_role.items():
        for part, key in (("pose", "pose"), ("exp", "alpha_exp"), ("shape", "alpha_shp"), ("cam", "cam"),
                          ("angles", "angles"), ("theta", "theta")):  # fmt: skip
            exp[f"deca_{role}_{part}"] = np.stack([c[key] for c in calls])
        exp[f"deca_{role}_crop_sub8"] = calls[0]["crop"][..., ::8, ::8]
        inputs[f"boxes_{role}"] = np.stack([c["boxes"] for c in calls])
    plain = [img for what, img in rec["images"] if what == "plain"]
    shifted = np.stack([img for what, img in rec["images"] if what == "shifted"])
    exp["imgs_shifted_full"] = shifted[0][[0, batch // 2]]
    exp["imgs_shifted_sub4"] = shifted[..., ::4, ::4]
    gen_roles = [] if paired else (["source_syn", "target"] if mixed else ["source", "target"])
    for i, role in enumerate(gen_roles):
        imgs = np.stack(plain[i :: len(gen_roles)])
        exp[f"imgs_{role}_sub4"] = imgs[0][..., ::4, ::4]
        exp[f"imgs_{role}_mean_std"] = _mean_std(imgs)
    exp["imgs_shifted_mean_std"] = _mean_std(shifted)
    exp["shifted_latents"] = rec["latents"][0]
    exp["shift_vector"] = np.stack(rec["shift_vector"])
    exp["shift"] = np.stack(rec["shift"])
    gt, reen = rec["shape"][0::2], rec["shape"][1::2]
    for p in ("pose", "exp", "shape"):
        exp[f"gt_{p}"] = np.stack([c[p] for c in gt])
    for prefix, calls in (("gt", gt), ("reen", reen)):
        exp[f"{prefix}_landmarks2d"] = np.stack([c["landmarks2d"] for c in calls])
        exp[f"{prefix}_trans_verts_sub50"] = np.stack([c["trans_verts"][:, ::50] for c in calls])
    for name in TERM_KEYS:
        if name in rec["losses"][0]:
            exp[name] = np.asarray([d[name] for d in rec["losses"]], np.float32)
    exp["grad_shift"] = np.stack([gr["shift"] for gr in rec["grads"]])
    exp["grad_A_weight"] = np.stack([gr["linear.weight"] for gr in rec["grads"]])
    exp["grad_A_bias"] = np.stack([gr["linear.bias"] for gr in rec["grads"]])
    exp["A_weight_after"] = np.stack([a["linear.weight"] for a in rec["after"]])
    exp["A_bias_after"] = np.stack([a["linear.bias"] for a in rec["after"]])
    draws = []
    if not paired:
        noise = rec["noise"]
        names = ["z_source_syn", "z_target"] if mixed else ["z_source", "z_target"]
        for i, name in enumerate(names):
            inputs[name] = np.stack(noise[i :: len(names)])
        inputs["target_indices"] = np.stack(rec["indices"]).astype(np.int64)
        inputs["rand_u"] = np.asarray(rec["rand_u"], np.float32).reshape(steps, -1)
        draws = [f"torch.randn in make_noise (libs/utils.py) for {', '.join(names)}, in that order per step",
                 "np.random.choice(15, B/2) in make_shift_vector_50 -> target_indices[step]",
                 "one torch.rand(1) per second-half sample in make_shift_vector_50 -> rand_u[step]"]  # fmt: skip
    inputs |= {"truncation": np.float32(0.7), "truncation_latent": _np(trunc),
               "ranges_voxceleb": np.load(up.repo / "libs/configs/ranges_voxceleb.npy")}  # fmt: skip
    return _train_spec(kind, seed, batch, steps, exp, draws, rec, dt), inputs, exp, _train_entries(exp, batch)


def _mean_std(imgs: np.ndarray) -> np.ndarray:
    """[step, b, 2]: mean and unbiased std (torch's .std()) over C, H, W of each image."""
    x = imgs.astype(np.float64).reshape(*imgs.shape[:2], -1)
    return np.stack([x.mean(-1), x.std(-1, ddof=1)], -1).astype(np.float32)


def _train_entries(exp: dict, batch: int) -> dict:
    deca = "calculate_shapemodel(deca, images) in the trainer"
    e = {
        "imgs_shifted_full": _entry(f"imgs_shifted of step 0, samples [0, {batch // 2}]: generate_image(G, source, "
                                    "0.7, trunc, shift_code=shift)", 1e-4),
        "imgs_shifted_sub4": _entry("[step, b, 3, 64, 64]: imgs_shifted[..., ::4, ::4]", 1e-4),
        "shifted_latents": _entry("[b, 14, 512], step 0: the latents generate_image returns for imgs_shifted", 1e-5),
        "shift_vector": _entry("[step, b, 15]: make_shift_vector_50 (or make_shift_vector)", 1e-5),
        "shift": _entry("[step, b, 8, 512]: A(shift_vector), A as it is at that step", 1e-5),
        "grad_shift": {"upstream": "[step, b, 8, 512]: d loss / d shift in loss.backward()", "tol_rel_l2": 1e-3},
        "grad_A_weight": {"upstream": "[step, 4096, 15]: A.linear.weight.grad", "tol_rel_l2": 1e-3},
        "grad_A_bias": {"upstream": "[step, 4096]: A.linear.bias.grad", "tol_rel_l2": 1e-3},
        "A_weight_after": _entry("[step, 4096, 15]: A.linear.weight after optimizer.step()", 5e-8,
                                 compare="the update A_after - A_before: rtol 1e-3 or max abs 5e-8"),
        "A_bias_after": _entry("[step, 4096]: A.linear.bias after optimizer.step()", 5e-8, compare="as A_weight_after"),
    }  # fmt: skip
    for name in exp:
        if name.startswith("imgs_") and name.endswith("_sub4") and name not in e:
            e[name] = _entry(f"[b, 3, 64, 64], step 0: {name[5:-5]} images, [..., ::4, ::4]", 1e-4)
        elif name.endswith("_mean_std"):
            e[name] = _entry(f"[step, b, 2]: mean and std over (C,H,W) of each {name[:-9]} image", 1e-5)
        elif name.startswith("deca_"):
            role, part = name[5:].split("_", 1)
            if part == "angles":
                e[name] = _entry(f"[step, b, 3]: angles (degrees) of {deca} on the {role} images", 1e-3)
            elif part == "theta":
                e[name] = _entry(f"[step, b, 3, 3]: the similarity of each {role} crop", 1e-4, rel=True)
            elif part == "crop_sub8":
                e[name] = _entry(f"[b, 3, 28, 28], step 0: the 224x224 DECA input of each {role} image", 5e-5)
            else:
                e[name] = _entry(f"[step, b, ...]: params[{part!r}] of {deca} on the {role} images", 1e-4)
        elif name.startswith("gt_") and name[3:] in ("pose", "exp", "shape"):
            e[name] = _entry(
                f"[step, b, ...]: coefficients_gt[{name[3:]!r}] handed to DECA_model.calculate_shape", 1e-4
            )
        elif name.startswith(("gt_", "reen_")):
            e[name] = _entry(f"[step, b, ...]: DECA_model.calculate_shape(coefficients_{name.split('_')[0]}) "
                             f"{'[0]' if 'landmarks' in name else '[2][:, ::50]'} (cam [8, 0, 0])", 1e-3)  # fmt: skip
        elif name in TERM_KEYS:
            e[name] = _entry(f"[step]: loss_dict[{name!r}] of the step's calculate_losses", 1e-4, rel=True)
    return e


def _train_spec(kind, seed, batch, steps, exp, draws, rec, dt) -> dict:
    method, call, _, _ = TRAIN[kind]
    comps = ["generator", "deca", "id_loss", "lpips", "A"]
    return {
        "kind": kind,
        "upstream": {
            "entry": f"run_trainer.py main() with --training_method {method} --batch_size {batch} (Trainer.{call})",
            "module": "libs/trainer.py Trainer; libs/utilities/utils_train.py Utilities_train; libs/utilities/"
            "generic.py; libs/DECA/estimate_DECA.py DECA_model",
            "replaced": "Trainer.load_models (the checkpoints in pretrained_models/; A starts from A_matrix.pt; the "
            "truncation centre seeded), the datasets and DataLoader (the given batches, in order; upstream shuffles), "
            "Utilities_train.log (logging, validation)",
            "config": {"dataset_type": "voxceleb", "lr": 0.0001, "batch_size": batch, "disentanglement_50": True,
                       "shift_scale": 6.0, "learned_directions": 15, "num_layers_shift": 8, "w_plus": True,
                       "lambda_identity": 10.0, "lambda_perceptual": 10.0, "lambda_shape": 1.0,
                       "lambda_mouth_shape": 1.0, "lambda_eye_shape": 1.0, "lambda_pixel_wise": 1.0,
                       "lambda_w_reg": 0.0, "truncation": 0.7,
                       "optimizer": "torch.optim.Adam(A.parameters(), lr=1e-4, weight_decay=5e-4)"},
        },  # fmt: skip
        "seed": seed,
        "inputs_note": f"torch.manual_seed({seed}) and np.random.seed({seed}) before run_trainer.main(); the draws "
        "(z, target_indices, rand_u), the detector's boxes (boxes_<role>[step, b]) and, for the real stages, your "
        "frames and their e4e codes are the contract; truncation_latent: G.mean_latent(4096) after the seed",
        "random_draws": ["truncation_latent: torch.randn(4096, 512) in Generator.mean_latent", *draws],
        "components": component_files(*comps),
        "direction_coefficients": rec["directions"],
        "box_convention": BOX_CONVENTION,
        "timing": {"authors_s": dt, "what": f"Trainer.{call}: its loop of {steps} step(s) of batch {batch} (from "
                   "start_from_checkpoint to the last optimizer.step; models loaded before), first run"},
    }  # fmt: skip


def user_images(source: pathlib.Path, driving: pathlib.Path | None) -> tuple[np.ndarray, dict]:
    """The two images the loss kinds compare, uint8 NCHW [2, 3, 256, 256]: the source and the driving frame, or
    without one, a second view of the source (its central 224² resized to 256², PIL bicubic)."""
    src, src_note = source_u8(source)
    if driving is not None:
        drv, drv_note = source_u8(driving, "--driving")
        return np.concatenate([src, drv]), {"0": f"{source}: {src_note}", "1": f"{driving}: {drv_note}"}
    im = Image.fromarray(src[0].transpose(1, 2, 0)).crop((16, 16, 240, 240)).resize((256, 256), Image.BICUBIC)
    zoom = np.asarray(im, np.uint8).transpose(2, 0, 1)[None]
    return np.concatenate([src, zoom]), {"0": f"{source}: {src_note}", "1": "no --driving: the source's central "
                                         "224x224 resized to 256x256 (PIL bicubic)"}  # fmt: skip


# ----------------------------------------------------------------------------------------------- folders
def write_folder(out: pathlib.Path, spec: dict, inputs: dict, expected: dict, entries: dict) -> None:
    """spec.json, inputs.npz, expected.npz, written into a temporary folder then renamed (atomic)."""
    spec = dict(spec, name=out.name, expected={})
    spec["inputs"] = {k: {"shape": list(np.shape(v)), "dtype": str(np.asarray(v).dtype)} for k, v in inputs.items()}
    for k, v in expected.items():
        v = np.asarray(v)
        spec["expected"][k] = {**entries.get(k, {}), "shape": list(v.shape), "dtype": str(v.dtype)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}_", dir=out.parent))
    try:
        (tmp / "spec.json").write_text(json.dumps(spec, indent=1, default=float))
        np.savez(tmp / "inputs.npz", **{k: np.asarray(v) for k, v in inputs.items()})
        np.savez(tmp / "expected.npz", **{k: np.asarray(v) for k, v in expected.items()})
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


def _is_video(path: pathlib.Path) -> bool:
    return not path.is_dir() and path.suffix.lower() not in IMAGE_SUFFIXES


def driving_frames(source: pathlib.Path, driving: pathlib.Path | None, frames: int, read_video=None):
    """(uint8 NCHW [F, 3, 256, 256], a note): the driving frames of `reenact_frames`, the first `frames` of an
    image, a folder of images (sorted, as their load_target_data) or a video (`read_video(path, max_frames=)`, RGB
    [F, H, W, 3]: the program passes its video reader, converters do not decode video); without --driving, two
    views of the source (its central 224² and its mirror image: a zoom and a turn)."""
    if driving is None:
        both, _ = user_images(source, None)
        note = "no --driving: the source's central 224x224 resized to 256x256, then the source mirrored left-right"
        return np.concatenate([both[1:], both[:1, :, :, ::-1]]), note
    if driving.is_dir():
        paths = sorted([*driving.glob("*.png"), *driving.glob("*.jpg")])[:frames]
        if not paths:
            raise UserError(f"--driving {driving}: a folder without .png or .jpg frames")
        return np.concatenate([source_u8(q, "--driving")[0] for q in paths]), f"{driving}: {len(paths)} frame(s)"
    if not _is_video(driving):
        return source_u8(driving, "--driving")[0], f"{driving}: one frame"
    if read_video is None:
        raise UserError(f"--driving {driving}: give a face crop ({', '.join(IMAGE_SUFFIXES)}) or a folder of them")
    clip = read_video(driving, max_frames=frames)
    out = np.stack([np.asarray(Image.fromarray(f).resize((256, 256), Image.BICUBIC)) for f in clip])
    return out.transpose(0, 3, 1, 2).copy(), f"{driving}: the first {len(out)} frame(s), resized to 256x256"


def record(repo, source, out, kinds=KINDS, seed=0, batch=2, tune_steps=3, log=print, driving=None, frames=3,
           read_video=None) -> list:  # fmt: skip
    """Record `kinds` into OUT/<kind>; returns the folders written. Inputs are checked before the authors' code
    is imported. `driving`: the second image of the loss kinds (default: a second view of the source), and the
    driving frames of reenact_frames (`frames` of them: an image, a folder or a video)."""
    repo, out = pathlib.Path(repo).expanduser(), pathlib.Path(out)
    kinds = list(dict.fromkeys(kinds or KINDS))
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise UserError(f"cannot record {', '.join(bad)} (unknown kind); kinds recorded: {', '.join(KINDS)}")
    if not (repo / "libs" / "gan" / "StyleGAN2" / "model.py").is_file():
        raise UserError(
            f"--authors-repo {repo}: not a clone of the authors' repository (no libs/gan/StyleGAN2/model.py)"
        )
    programs = sorted({PROGRAMS[k] for k in kinds if k in PROGRAMS and not (repo / PROGRAMS[k]).is_file()})
    if programs:
        raise UserError(f"--authors-repo {repo}: no {', '.join(programs)} (the reenactment and training kinds run "
                        "the authors' programs: a full clone of their repository)")  # fmt: skip
    on_images = [k for k in kinds if k in IMAGE_KINDS]
    if on_images and source is None:
        raise UserError(f"{', '.join(on_images)} run on your image: give --source IMG (a 256x256 face crop)")
    if "direction_matrix" in kinds and "stylegan2_vox256" not in kinds and not (out / "stylegan2_vox256").is_dir():
        kinds.insert(0, "stylegan2_vox256")  # its spec names the generator's folder
    need = set().union(*(NEEDS[k] for k in kinds))
    missing = [FILES[n] for n in sorted(need) if not (repo / FILES[n]).is_file()]
    if missing:
        raise UserError(f"--authors-repo {repo}: missing {', '.join(missing)} (the authors' checkpoints, placed as "
                        "converters.all reads them)")  # fmt: skip
    for n in sorted(need):
        _check_header(repo / FILES[n])
    src = src_note = images = images_note = drive = drive_note = None
    if set(kinds) & {"generator_tuning", "e4e_vox256"}:
        src, src_note = source_u8(pathlib.Path(source))
    if set(kinds) & {"irse50_arcface", "lpips_perceptual", "deca_coarse"}:
        drv = None if driving is None else pathlib.Path(driving)
        if drv is not None and (drv.is_dir() or _is_video(drv)):
            drv_img = driving_frames(pathlib.Path(source), drv, 1, read_video)[0]
            images, images_note = user_images(pathlib.Path(source), None)
            images[1:], images_note["1"] = drv_img, f"{drv}: its first frame"
        else:
            images, images_note = user_images(pathlib.Path(source), drv)
    if set(kinds) & {"reenact_frames", "train_step_mixed", "train_step_paired"}:
        src, src_note = source_u8(pathlib.Path(source))
        drive, drive_note = driving_frames(pathlib.Path(source), None if driving is None else pathlib.Path(driving),
                                           frames, read_video)  # fmt: skip
    written = []
    with Upstream(repo, log) as up:
        for kind in kinds:
            log(f"record: {kind} with the authors' code from {repo} on {up.device}")
            if kind == "stylegan2_vox256":
                spec, inputs, exp, entries = record_stylegan2(up, seed, batch)
            elif kind == "direction_matrix":
                spec, inputs, exp, entries = record_direction_matrix(up, seed, batch)
            elif kind == "generator_tuning":
                spec, inputs, exp, entries = record_generator_tuning(up, seed, src, tune_steps)
                spec["source"] = {"path": str(source), "note": src_note}
            elif kind == "e4e_vox256":
                spec, inputs, exp, entries = record_e4e(up, src)
                spec["source"] = {"path": str(source), "note": src_note}
            elif kind == "irse50_arcface":
                spec, inputs, exp, entries = record_irse50(up, images)
            elif kind == "lpips_perceptual":
                spec, inputs, exp, entries = record_lpips(up, images)
            elif kind == "reenact_frames":
                spec, inputs, exp, entries = record_reenact_frames(up, seed, src, drive)
                spec["source"] = {"path": str(source), "note": src_note}
                spec["driving"] = drive_note
            elif kind in TRAIN:
                pool = None if drive is None else np.concatenate([src, drive])
                spec, inputs, exp, entries = record_train_step(up, kind, seed, pool)
                if pool is not None:
                    spec["frames"] = {"pool": f"the source ({source}), then the driving frames ({drive_note})",
                                      "use": "mixed: real frames pool[s*B/2 + i]; paired: sources pool[2j], targets "
                                      "pool[2j + 1] (cyclic)"}  # fmt: skip
            else:
                spec, inputs, exp, entries = record_deca(up, images)
            if kind in ("irse50_arcface", "lpips_perceptual", "deca_coarse"):
                spec["images"] = images_note
            spec["upstream"]["repo"] = str(repo)
            spec["recorded_by"] = "python -m jaxreenact.parity record (converters/upstream_record.py)"
            spec["stand_ins"] = dict(up.stand_ins)
            spec["timing"]["device"] = up.device_name()
            write_folder(out / kind, spec, inputs, exp, entries)
            log(f"record: wrote {out / kind} ({len(exp)} arrays; the authors' code took "
                f"{spec['timing']['authors_s']:.3f} s)")  # fmt: skip
            written.append(out / kind)
    return written
