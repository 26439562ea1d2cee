"""Convert every checkpoint found in the authors' layout, in one command.

    python -m converters.all AUTHORS_REPO [--out weights] [--search DIR ...] [--overwrite]

AUTHORS_REPO is a folder laid out as the authors' repository (github.com/StelaBou/stylegan_directions_face_reenactment):
`pretrained_models/` (their README's downloads: stylegan-voxceleb.pt, e4e-voxceleb.pt, A_matrix.pt, model_ir_se50.pth,
s3fd-619a316812.pth, ...) and DECA's extracted `libs/DECA/data/` (deca_model.tar, generic_model.pkl,
landmark_embedding.npy). Each upstream file of `jaxreenact.weights.registry` is looked for at its path in that
layout, then at shorter tails of it (`DECA/data/x`, `data/x`, `x`), so a DECA `data/` folder or a flat folder of
files works too; `--search DIR` adds folders looked in the same way (e.g. `~/.cache/torch/hub/checkpoints`, where
torch put the AlexNet, LPIPS and FAN files the authors' code downloads). Every network whose files are all found is
converted by its own converter (`converters.<name>.save`, the code its CLI runs) into `OUT/<name>` (the default path
the programs read); the command prints what it converted and, for each missing file, where to get it. A folder
already converted is kept unless `--overwrite`. Exit status 1 when a conversion failed, else 0.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib

from jaxreenact.common import checkpoints
from jaxreenact.common.errors import UserError, cli_main
from jaxreenact.weights import registry


def candidates(root: pathlib.Path, upstream: str) -> list[pathlib.Path]:
    """Where an upstream file may be under `root`: its full layout path, then ever shorter tails of it."""
    parts = pathlib.PurePosixPath(upstream).parts
    return [root.joinpath(*parts[k:]) for k in range(len(parts))]


def find(roots: list[pathlib.Path], upstream: str) -> pathlib.Path | None:
    for root in roots:
        for c in candidates(root, upstream):
            if c.is_file():
                return c
    return None


def convert_all(root, out="weights", search=(), overwrite: bool = False, names=registry.NAMES, log=print) -> dict:
    """Convert what is found (see the module doc). Returns {"converted": [...], "kept": [...], "missing": {name:
    [files]}, "failed": {name: message}}; `log` receives every line."""
    root = pathlib.Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"{root}: not a folder; give the folder holding pretrained_models/ (and libs/DECA/data/)")
    roots = [root] + [pathlib.Path(s).expanduser() for s in search]
    for s in roots[1:]:
        if not s.is_dir():
            raise UserError(f"--search {s}: not a folder")
    out = pathlib.Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out}: is a file, not a folder")
    result = {"converted": [], "kept": [], "missing": {}, "failed": {}, "names": list(names)}
    for name in names:
        e = registry.entry(name)
        dst = out / registry.DEFAULT_DIRS[name]
        found = [find(roots, f) for f in e.upstream]
        if None in found:
            result["missing"][name] = [f for f, p in zip(e.upstream, found) if p is None]
            continue
        if (dst / checkpoints.META_FILE).is_file() and not overwrite:
            log(f"{name}: {dst} is already converted; kept (--overwrite converts it again)")
            result["kept"].append(name)
            continue
        log(f"{name}: converting {', '.join(map(str, found))} -> {dst}")
        try:
            lines = importlib.import_module(e.converter).save([str(p) for p in found], str(dst))
        except UserError as err:
            log(f"{name}: FAILED: {err}")
            result["failed"][name] = str(err)
            continue
        for line in lines:
            log(f"  {line}")
        result["converted"].append(name)
    return result


def report(result: dict, root, out) -> str:
    lines = []
    done = result["converted"] + result["kept"]
    lines.append(f"converted {len(result['converted'])}, kept {len(result['kept'])}, missing "
                 f"{len(result['missing'])}, failed {len(result['failed'])} of {len(result['names'])} networks"
                 f"{' into ' + os.fspath(out) if done else ''}")  # fmt: skip
    if result["missing"]:
        lines.append(f"missing in {root} (put each at the path shown, then run this command again):")
        for name, files in result["missing"].items():
            e = registry.entry(name)
            where = " or ".join(e.links) if e.links else e.source
            lines.append(f"  {name} ({e.what}): {', '.join(files)}")
            lines.append(f"      get it from {e.source}: {where}")
    return "\n".join(lines)


def main(argv=None):
    @cli_main
    def run():
        p = argparse.ArgumentParser(prog="python -m converters.all", description=__doc__.split("\n\n")[0])
        p.add_argument("root", metavar="AUTHORS_REPO",
                       help="folder with the authors' layout: pretrained_models/ and libs/DECA/data/ (or data/)")  # fmt: skip
        p.add_argument("--out", default="weights", help="where the converted folders go (default weights/)")
        p.add_argument("--search", action="append", default=[], metavar="DIR",
                       help="another folder to look in (repeatable), e.g. ~/.cache/torch/hub/checkpoints")  # fmt: skip
        p.add_argument("--only", nargs="+", choices=registry.NAMES, metavar="NAME",
                       help=f"convert only these networks ({', '.join(registry.NAMES)})")  # fmt: skip
        p.add_argument("--overwrite", action="store_true", help="convert again what is already converted")
        a = p.parse_args(argv)
        result = convert_all(a.root, a.out, a.search, a.overwrite, tuple(a.only or registry.NAMES))
        print(report(result, a.root, a.out))
        if result["failed"]:
            raise SystemExit(1)
        return result

    return run()


if __name__ == "__main__":
    main()
