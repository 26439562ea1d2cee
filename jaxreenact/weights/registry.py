"""The one table of the method's networks: per network its config key, default path, converter command, the
upstream file(s) it is converted from and where a user gets them.

Programs name networks by `name` (`config.weights.<name>`, `--<name>`); the loaded bundle holds each under `key`.
"""

from __future__ import annotations

import dataclasses
import pathlib

from jaxreenact.common.errors import UserError

AUTHORS = "github.com/StelaBou/stylegan_directions_face_reenactment"
AUTHORS_URL = "https://" + AUTHORS
DRIVE = "https://drive.google.com/file/d/{}/view"
DECA_SITE = "https://deca.is.tue.mpg.de"
FLAME_SITE = "https://flame.is.tue.mpg.de"
ALL_COMMAND = "python -m converters.all AUTHORS_REPO"  # converts every file it finds (converters/all.py)


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str  # config.weights.<name>, --<name>
    key: str  # field of weights.Networks and key of the variables dict
    what: str  # one line for help texts and the README table
    upstream: tuple[str, ...]  # the upstream file(s), as the authors' layout names them
    command: str  # the converter command; {dst} is the output folder, {src...} the upstream files
    source: str  # where a user gets the upstream file(s)
    module: str  # "package.module:Class" of the converted network (checked at load)
    links: tuple[str, ...] = ()  # download pages (the authors' README links first)
    licence: str = ""  # the licence note of the upstream file(s)

    @property
    def default(self) -> str:
        return f"weights/{DEFAULT_DIRS[self.name]}"

    @property
    def converter(self) -> str:
        """The converter module, e.g. `converters.stylegan2`."""
        return self.command.split()[2]

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

_NO_LICENCE = "no licence stated in the authors' repository (BMVC 2022 research release)"
_ENTRIES = (
    Entry("generator", "g", "StyleGAN2 generator, VoxCeleb1 256² (rosinality layout)",
          ("pretrained_models/stylegan-voxceleb.pt",), "python -m converters.stylegan2 {0} {dst}",
          f"the authors' README, 'StyleGAN2-VoxCeleb1' ({AUTHORS})", "jaxreenact.models.stylegan2:Generator",
          (DRIVE.format("1cBwIFwq6cYIA5iR8tEvj6BIL7Ji7azIH"),), _NO_LICENCE),
    Entry("e4e", "e4e", "e4e encoder, VoxCeleb1 (real images into W+)",
          ("pretrained_models/e4e-voxceleb.pt",), "python -m converters.e4e {0} {dst}",
          f"the authors' README, 'e4e-VoxCeleb1' ({AUTHORS})", "jaxreenact.models.e4e:Encoder4Editing",
          (DRIVE.format("1TRATaREBi4VCMITUZV0ZO2XFU3YZKGlQ"),), _NO_LICENCE),
    Entry("deca", "deca", "DECA coarse encoder + FLAME 2020 (pose and expression, shape losses)",
          ("libs/DECA/data/deca_model.tar", "libs/DECA/data/generic_model.pkl",
           "libs/DECA/data/landmark_embedding.npy"),
          "python -m converters.deca {0} {1} {2} {dst}",
          "the authors' README 'DECA model' (data.tar.gz, extract under libs/DECA/), or DECA's and FLAME's sites "
          "(deca.is.tue.mpg.de, flame.is.tue.mpg.de; registration, non-commercial licences)",
          "jaxreenact.models.deca:DECA",
          (DRIVE.format("1BHVJAEXscaXMj_p2rOsHYF_vaRRRHQbA"), DECA_SITE, FLAME_SITE),
          "DECA and FLAME licences: non-commercial scientific research only, after registering on their sites; "
          "not redistributable"),
    Entry("A", "A", "the learned direction matrix A (Δw = A·Δp)",
          ("pretrained_models/A_matrix.pt",), "python -m converters.direction_matrix {0} {dst}",
          f"the authors' README, 'A-matrix' ({AUTHORS}); or a training workdir of ours",
          "jaxreenact.latent.directions:DirectionMatrix",
          (DRIVE.format("11aNalhBnPREFQT9i9wmQE0-fkQac4SzQ"),), _NO_LICENCE),
    Entry("arcface", "arcface", "ArcFace IR-SE50 (identity loss, CSIM)",
          ("pretrained_models/model_ir_se50.pth",), "python -m converters.arcface {0} {dst}",
          f"the authors' README, 'IR-SE50 Model' ({AUTHORS}; from TreB1eN's InsightFace_Pytorch)",
          "jaxreenact.models.arcface:ArcFace",
          (DRIVE.format("1s5pWag4AwqQyhue6HH-M_f2WDV4IVZEl"),),
          "InsightFace_Pytorch (TreB1eN): MIT (the weights were trained on MS-Celeb-1M)"),
    Entry("lpips", "lpips", "LPIPS-alex v0.1 (perceptual loss, generator tuning)",
          ("pretrained_models/alexnet-owt-7be5be79.pth", "pretrained_models/alex.pth"),
          "python -m converters.lpips {0} {1} {dst}",
          "torchvision's AlexNet release file and lpips/weights/v0.1/alex.pth of the `lpips` package (the authors' "
          "code downloads both at run time, into the torch hub cache)",
          "jaxreenact.models.lpips:LPIPS",
          ("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
           "https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth"),
          "torchvision: BSD-3-Clause; LPIPS (richzhang/PerceptualSimilarity): BSD-2-Clause"),
    Entry("sfd", "sfd", "S3FD face detector (face-alignment)",
          ("pretrained_models/s3fd-619a316812.pth",), "python -m converters.sfd {0} {dst}",
          f"the authors' README 'face-detector', or the face-alignment package's release ({AUTHORS})",
          "jaxreenact.models.sfd:S3FD",
          (DRIVE.format("1IWqJUTAZCelAZrUzfU38zK_ZM25fK32S"),
           "https://www.adrianbulat.com/downloads/python-fan/s3fd-619a316812.pth"),
          "face-alignment (1adrianb): BSD-3-Clause"),
    Entry("fan", "fan", "2D-FAN 68-landmark network (face-alignment)",
          ("pretrained_models/2DFAN4-11f355bf06.pth.tar",), "python -m converters.fan {0} {dst}",
          "the face-alignment package's release (2DFAN4; the authors' code downloads it at run time)",
          "jaxreenact.models.fan:FAN",
          ("https://www.adrianbulat.com/downloads/python-fan/2DFAN4-11f355bf06.pth.tar",),
          "face-alignment (1adrianb): BSD-3-Clause"),
    Entry("inception", "inception", "FID Inception-v3 (pytorch-fid's port of the TF graph)",
          ("pretrained_models/pt_inception-2015-12-05-6726825d.pth",), "python -m converters.inception {0} {dst}",
          "the pytorch-fid release (FID weights)", "jaxreenact.models.inception:FIDInceptionV3",
          ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
           "pt_inception-2015-12-05-6726825d.pth",),
          "pytorch-fid: Apache-2.0 (weights ported from TensorFlow's Inception, Apache-2.0)"),
)  # fmt: skip
REGISTRY: dict[str, Entry] = {e.name: e for e in _ENTRIES}
NAMES = tuple(REGISTRY)


def entry(name: str) -> Entry:
    if name not in REGISTRY:
        raise UserError(f"unknown network {name!r}; the networks are: {', '.join(NAMES)}")
    return REGISTRY[name]


def default_paths(names=NAMES) -> dict[str, str]:
    return {n: entry(n).default for n in names}


TINY_NOTE = "small random networks of the same kinds; the pictures mean nothing"


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
        raise UserError("missing converted weights" + (f" ({hint})" if hint else "") + ":\n" + "\n".join(missing)
                        + f"\n  or convert every file of the authors' layout at once: `{ALL_COMMAND}`"
                        + f"\n  or, to try the programs without weights, add --tiny ({TINY_NOTE})")  # fmt: skip


def table() -> str:
    """The README's weights table (Markdown), one row per network, from this registry."""
    rows = ["| network | what it is for | upstream file(s) | where to get it | licence |", "|---|---|---|---|---|"]
    for e in _ENTRIES:
        files = "<br>".join(f"`{f}`" for f in e.upstream)
        links = " · ".join(f"[{_link_name(u)}]({u})" for u in e.links)
        rows.append(f"| `{e.name}` → `{e.default}` | {e.what} | {files} | {links} | {e.licence} |")
    return "\n".join(rows)


def _link_name(url: str) -> str:
    if url.startswith("https://drive.google.com"):
        return "Google Drive (the authors' README)"
    return url.split("//", 1)[1].split("/", 1)[0] if url.count("/") <= 3 else url.rsplit("/", 1)[1]


def add_weight_flags(parser, names) -> None:
    """`--<name> PATH` for each registry network `names`, defaulting to the registry's path."""
    for n in names:
        e = entry(n)
        also = " or a training workdir of ours (its latest checkpoint)" if n == "A" else ""
        parser.add_argument(f"--{n}", default=e.default, metavar="DIR",
                            help=f"converted {e.what} (`{e.convert('DIR')}`){also}; default {e.default}")  # fmt: skip
