"""Packaging (issue 16): every third-party import is declared in pyproject.toml, and the package works installed from
a wheel (not only as the editable checkout): every module imports, the package data is there, a program runs."""

import ast
import importlib.metadata
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIRST_PARTY = {"jaxreenact", "converters", "configs", "goldens", "conftest", "torch_reference"}


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _declared() -> tuple[set[str], dict[str, set[str]]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(reqs):
        return {_norm(re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0]) for r in reqs}

    return names(project["dependencies"]), {k: names(v) for k, v in project["optional-dependencies"].items()}


def _imports(files) -> dict[str, str]:
    """top-level module -> one file importing it, for the third-party imports of `files`."""
    local = {p.stem for p in (ROOT / "tests").glob("*.py")} | FIRST_PARTY
    out = {}
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                mods = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                mods = [node.module]
            else:
                continue
            for m in mods:
                top = m.split(".")[0]
                if top not in sys.stdlib_module_names and top not in local:
                    out.setdefault(top, str(f.relative_to(ROOT)))
    return out


def test_every_third_party_import_is_declared():
    deps, extras = _declared()
    dist_of = importlib.metadata.packages_distributions()
    package = sorted((ROOT / "jaxreenact").rglob("*.py")) + sorted((ROOT / "converters").rglob("*.py"))
    optional = extras["torch"] | {"tensorflow-datasets"}  # imported inside functions only (tests/test_layout.py)
    problems = []
    for top, where in _imports(package).items():
        dists = {_norm(d) for d in dist_of.get(top, [top])}
        if not dists & (deps | optional):
            problems.append(f"{where} imports {top} ({', '.join(sorted(dists))}): not in [project] dependencies")
    everything = deps | set().union(*extras.values())
    for top, where in _imports(sorted((ROOT / "tests").glob("*.py"))).items():
        dists = {_norm(d) for d in dist_of.get(top, [top])}
        if not dists & everything:
            problems.append(f"{where} imports {top} ({', '.join(sorted(dists))}): in no dependency list")
    assert not problems, "\n".join(problems)


PROGRAM = r"""
import importlib, pathlib, pkgutil, sys
import jaxreenact, converters
site = pathlib.Path(sys.argv[1])
assert pathlib.Path(jaxreenact.__file__).is_relative_to(site), jaxreenact.__file__
for m in pkgutil.walk_packages(jaxreenact.__path__, "jaxreenact."):
    if m.ispkg or m.name.count(".") > 1:  # the library (the programs define absl flags: one is run below)
        importlib.import_module(m.name)
importlib.import_module("converters.common")
from jaxreenact.pose import params
assert params.load_ranges(params.default_ranges_path("voxceleb")).shape[0] > 0
"""
TREE = "from jaxreenact.data import fake; fake.make_fake_tree('tree', n_ids=1, n_videos=1, n_frames=2, image_size=16)"


def test_the_wheel_installs_and_runs(tmp_path):
    src = tmp_path / "src"  # build from a copy: nothing (build/, *.egg-info) is written into the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    for pkg in ("jaxreenact", "converters"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    r = subprocess.run([*pip, "-w", str(wheels), str(src)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    (wheel,) = wheels.glob("jaxreenact-*.whl")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:  # a pure-Python wheel: installing it is unpacking it
        z.extractall(site)
        names = z.namelist()
    assert "jaxreenact/resources/ranges_voxceleb.npy" in names and not any(n.startswith("tests/") for n in names)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
    env.update(PYTHONPATH=str(site), JAX_PLATFORMS="cpu")
    run = tmp_path / "run"  # not the checkout: nothing of it is on sys.path
    run.mkdir()

    def py(*args):
        r = subprocess.run([sys.executable, *args], cwd=run, env=env, capture_output=True, text=True)
        assert r.returncode == 0, (args, r.stderr[-3000:])
        return r

    py("-c", PROGRAM, str(site))
    py("-c", TREE)
    r = py("-m", "jaxreenact.data.build", "--root", "tree", "--out", "out", "--image-size", "16", "--no-progress")
    assert "built split 'train': 2 frames of 1 videos" in r.stdout
