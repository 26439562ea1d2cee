"""The one table of the method's networks: per network its config key, default path, converter command, the
upstream file(s) it is converted from and where a user gets them.

Programs name networks by `name` (`config.weights.<name>`, `--<name>`); the loaded bundle holds each under `key`.
"""

from __future__ import annotations

import dataclasses
import pathlib

from jaxreenact.common.errors import UserError

AUTHORS = "github.com/StelaBou/stylegan_directions_face_reenactment"


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str  # config.weights.<name>, --<name>
    key: str  # field of weights.Networks and key of the variables dict
    what: str  # one line for help texts and the README table
    upstream: tuple[str, ...]  # the upstream file(s), as the authors' layout names them
    command: str  # the converter command; {dst} is the output folder, {src...} the upstream files
    source: str  # where a user gets the upstream file(s)
    module: str  # "package.module:Class" of the converted network (checked at load)

    @property
    def default(self) -> str:
        return f"weights/{DEFAULT_DIRS[self.name]}"

    def convert(self, dst: str | None = None) -> str:
        return self.command.format(*self.upstream, dst=dst or self.default)


DEFAULT_DIRS = {
    "generator": "stylegan2-voxceleb",
    "e4e": "e4e-voxceleb",
    "deca": "deca",
    "A": "A",
    "arcface": "arcface",
    "lpips": "lpips",
    "sfd": "sfd",
    "fan": "fan",
    "inception": "inception",
}

_ENTRIES = (
    Entry("generator", "g", "StyleGAN2 generator, VoxCeleb1 256² (rosinality layout)",
          ("pretrained_models/stylegan-voxceleb.pt",), "python -m converters.stylegan2 {0} {dst}",
          f"the authors' README, 'StyleGAN2-VoxCeleb1' ({AUTHORS})", "jaxreenact.models.stylegan2:Generator"),
    Entry("e4e", "e4e", "e4e encoder, VoxCeleb1 (real images into W+)",
          ("pretrained_models/e4e-voxceleb.pt",), "python -m converters.e4e {0} {dst}",
          f"the authors' README, 'e4e-VoxCeleb1' ({AUTHORS})", "jaxreenact.models.e4e:Encoder4Editing"),
    Entry("deca", "deca", "DECA coarse encoder + FLAME 2020 (pose and expression, shape losses)",
          ("libs/DECA/data/deca_model.tar", "libs/DECA/data/generic_model.pkl",
           "libs/DECA/data/landmark_embedding.npy"),
          "python -m converters.deca {0} {1} {2} {dst}",
          "the authors' README 'DECA model' (data.tar.gz, extract under libs/DECA/), or DECA's and FLAME's sites "
          "(deca.is.tue.mpg.de, flame.is.tue.mpg.de; registration, non-commercial licences)",
          "jaxreenact.models.deca:DECA"),
    Entry("A", "A", "the learned direction matrix A (Δw = A·Δp)",
          ("pretrained_models/A_matrix.pt",), "python -m converters.direction_matrix {0} {dst}",
          f"the authors' README, 'A-matrix' ({AUTHORS}); or a training workdir of ours",
          "jaxreenact.latent.directions:DirectionMatrix"),
    Entry("arcface", "arcface", "ArcFace IR-SE50 (identity loss, CSIM)",
          ("pretrained_models/model_ir_se50.pth",), "python -m converters.arcface {0} {dst}",
          f"the authors' README, 'IR-SE50 Model' ({AUTHORS})", "jaxreenact.models.arcface:ArcFace"),
    Entry("lpips", "lpips", "LPIPS-alex v0.1 (perceptual loss, generator tuning)",
          ("pretrained_models/alexnet-owt-7be5be79.pth", "pretrained_models/alex.pth"),
          "python -m converters.lpips {0} {1} {dst}",
          "torchvision's AlexNet release file and lpips/weights/v0.1/alex.pth of the `lpips` package",
          "jaxreenact.models.lpips:LPIPS"),
    Entry("sfd", "sfd", "S3FD face detector (face-alignment)",
          ("pretrained_models/s3fd-619a316812.pth",), "python -m converters.sfd {0} {dst}",
          f"the authors' README 'face-detector', or the face-alignment package's release ({AUTHORS})",
          "jaxreenact.models.sfd:S3FD"),
    Entry("fan", "fan", "2D-FAN 68-landmark network (face-alignment)",
          ("pretrained_models/2DFAN4-11f355bf06.pth.tar",), "python -m converters.fan {0} {dst}",
          "the face-alignment package's release (2DFAN4)", "jaxreenact.models.fan:FAN"),
    Entry("inception", "inception", "FID Inception-v3 (pytorch-fid's port of the TF graph)",
          ("pretrained_models/pt_inception-2015-12-05-6726825d.pth",), "python -m converters.inception {0} {dst}",
          "the pytorch-fid release (FID weights)", "jaxreenact.models.inception:FIDInceptionV3"),
)  # fmt: skip
REGISTRY: dict[str, Entry] = {e.name: e for e in _ENTRIES}
NAMES = tuple(REGISTRY)


def entry(name: str) -> Entry:
    if name not in REGISTRY:
        raise UserError(f"unknown network {name!r}; the networks are: {', '.join(NAMES)}")
    return REGISTRY[name]


def default_paths(names=NAMES) -> dict[str, str]:
    return {n: entry(n).default for n in names}


def check_paths(paths: dict[str, str], how: str = "flag", hint: str = "") -> None:
    """One `UserError` listing every missing converted checkpoint of `paths` ({name: path}) with its command.
    `how`: "flag" names them `--name PATH`, "config" `config.weights.name = PATH`."""
    missing = []
    for name, path in paths.items():
        if path and pathlib.Path(path).exists():
            continue
        e = entry(name)
        where = f"--{name} {path}" if how == "flag" else f"config.weights.{name} = {path!r}"
        missing.append(f"  {where}: make it with `{e.convert(path or e.default)}` ({e.source})")
    if missing:
        raise UserError("missing converted weights" + (f" ({hint})" if hint else "") + ":\n" + "\n".join(missing))


def add_weight_flags(parser, names) -> None:
    """`--<name> PATH` for each registry network `names`, defaulting to the registry's path."""
    for n in names:
        e = entry(n)
        also = " or a training workdir of ours (its latest checkpoint)" if n == "A" else ""
        parser.add_argument(f"--{n}", default=e.default, metavar="DIR",
                            help=f"converted {e.what} (`{e.convert('DIR')}`){also}; default {e.default}")  # fmt: skip
