"""Golden folders (`spec.json`, `inputs.npz`, `expected.npz`) and the checkpoint files their specs name.

A folder's checkpoints are either regenerated from its spec with the harness's own `regen.py` (found in the folder
or its parent, as in `../shared/golden` and `tests/golden`) into a temporary directory, or, with `--weights DIR`,
the user's own upstream files found in DIR by the spec's file names. Nothing is downloaded.

Components: a network spec is one component (its own `weights`, `files`, `flame`); `direction_matrix` also names
its generator's spec (`generator_weights.spec`, a path relative to the folder); a pipeline spec lists its
`components` (generator, deca, id_loss, lpips, A), each a block like a network spec.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import pathlib
import shutil
import tempfile
import zipfile

import numpy as np

from jaxreenact.common.errors import UserError
from jaxreenact.evaluation.parity.report import progress

FILES = ("spec.json", "inputs.npz", "expected.npz")
# The component each network kind is (a network spec is its own component block).
NETWORK_COMPONENT = {
    "stylegan2_vox256": "generator",
    "e4e_vox256": "e4e",
    "irse50_arcface": "id_loss",
    "deca_coarse": "deca",
    "lpips_perceptual": "lpips",
    "direction_matrix": "A",
}


@dataclasses.dataclass
class Folder:
    path: pathlib.Path
    spec: dict
    inputs: dict
    expected: dict

    @property
    def kind(self) -> str:
        return self.spec["kind"]

    @property
    def name(self) -> str:
        return str(self.spec.get("name", self.path.name))


def _npz(path: pathlib.Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"{path}: not a readable .npz file ({str(e).splitlines()[0][:120]})") from None


def read_folder(path, known_kinds=None) -> Folder:
    """Read a golden folder; a missing file, bad JSON, an unknown kind or inconsistent arrays is a `UserError`."""
    path = pathlib.Path(path)
    if not path.is_dir():
        raise UserError(f"{path}: not a golden folder (no such directory)")
    missing = [f for f in FILES if not (path / f).is_file()]
    if missing:
        raise UserError(f"{path}: not a golden folder: missing {', '.join(missing)}")
    try:
        spec = json.loads((path / "spec.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise UserError(f"{path / 'spec.json'}: not valid JSON ({e})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("kind"), str):
        raise UserError(f"{path / 'spec.json'}: no 'kind' (a golden spec names its kind, e.g. 'stylegan2_vox256')")
    if known_kinds is not None and spec["kind"] not in known_kinds:
        raise UserError(f"{path / 'spec.json'}: unknown kind {spec['kind']!r}; known: {', '.join(sorted(known_kinds))}")
    if not isinstance(spec.get("expected"), dict) or not isinstance(spec.get("inputs", {}), dict):
        raise UserError(f"{path / 'spec.json'}: 'expected' must map array names to their entries")
    inputs, expected = _npz(path / "inputs.npz"), _npz(path / "expected.npz")
    absent = [k for k in spec["expected"] if k not in expected]
    if absent:
        raise UserError(f"{path / 'expected.npz'}: lacks {', '.join(absent[:5])} named in spec.json")
    absent = [k for k in spec.get("inputs", {}) if k not in inputs]
    if absent:
        raise UserError(f"{path / 'inputs.npz'}: lacks {', '.join(absent[:5])} named in spec.json")
    return Folder(path, spec, inputs, expected)


@dataclasses.dataclass
class Component:
    """One network's weights as a spec names them: `block` has `files` (and `weights`, `flame` to regenerate)."""

    name: str
    block: dict
    spec_path: pathlib.Path  # the spec.json the block comes from (its folder locates regen.py)

    def entries(self) -> list[dict]:
        return list(self.block.get("files", []))


def components(folder: Folder) -> dict[str, Component]:
    """{component name: Component} of a folder's spec."""
    spec, sp = folder.spec, folder.path / "spec.json"
    if "components" in spec:
        return {k: Component(k, b, sp) for k, b in spec["components"].items()}
    name = NETWORK_COMPONENT.get(folder.kind)
    if name is None:
        return {}
    out = {name: Component(name, spec, sp)}
    gen = spec.get("generator_weights")
    if isinstance(gen, dict) and gen.get("spec"):
        gp = (folder.path / gen["spec"]).resolve()
        if not gp.is_file():
            raise UserError(f"{sp}: its generator spec {gen['spec']} ({gp}) is missing; keep the golden folders "
                            "side by side")  # fmt: skip
        try:
            out["generator"] = Component("generator", json.loads(gp.read_text()), gp)
        except json.JSONDecodeError as e:
            raise UserError(f"{gp}: not valid JSON ({e})") from None
    return out


def _load_regen(spec_path: pathlib.Path):
    for d in (spec_path.parent, spec_path.parent.parent):
        p = d / "regen.py"
        if p.is_file():
            break
    else:
        raise UserError(
            f"{spec_path.parent}: no regen.py in the folder or its parent (the golden harness's script, shipped beside "
            "the golden folders); pass --weights DIR with the checkpoint files instead"
        )
    try:
        import torch  # noqa: F401
    except ImportError:
        raise UserError("regenerating the golden checkpoints needs torch: pip install torch==2.13.0") from None
    mod_spec = importlib.util.spec_from_file_location(f"_golden_regen_{abs(hash(str(p)))}", p)
    mod = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(mod)
    except ImportError as e:
        raise UserError(f"{p}: cannot run it ({e}); it needs numpy, torch and scipy") from None
    return mod


class Checkpoints:
    """The upstream checkpoint files of a folder's components: regenerated on first use into a temporary directory
    (deleted by `close`), or found in `weights_dir`. `paths(component, entries)` -> {file name: path}."""

    def __init__(self, weights_dir=None, tmp_root=None):
        self.weights_dir = None if weights_dir is None else pathlib.Path(weights_dir)
        if self.weights_dir is not None and not self.weights_dir.is_dir():
            raise UserError(f"--weights {self.weights_dir}: no such directory")
        self._tmp_root = tmp_root
        self._tmp = None
        self._done: dict[tuple[str, str, str], pathlib.Path] = {}
        self._count = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None
        self._done.clear()

    def paths(self, comp: Component, entries: list[dict]) -> dict[str, pathlib.Path]:
        names = [e["file"] for e in entries]
        if self.weights_dir is not None:
            found = {n: self.weights_dir / n for n in names}
            missing = [n for n, p in found.items() if not p.is_file()]
            if missing:
                raise UserError(f"--weights {self.weights_dir}: missing {', '.join(missing)} (the {comp.name} files "
                                f"named in {comp.spec_path})")  # fmt: skip
            return found
        key = (str(comp.spec_path), comp.name)
        todo = [e for e in entries if (*key, e["file"]) not in self._done]
        if todo:
            self._regenerate(comp, todo)
        return {n: self._done[(*key, n)] for n in names}

    def _regenerate(self, comp: Component, entries: list[dict]) -> None:
        progress(f"regenerating the {comp.name} checkpoints ({', '.join(e['file'] for e in entries)})")
        if "weights" not in comp.block:
            raise UserError(f"{comp.spec_path}: recorded on your own checkpoints (no random-weight spec to rebuild "
                            "them from); pass --weights AUTHORS_REPO")  # fmt: skip
        regen = _load_regen(comp.spec_path)
        if self._tmp is None:
            self._tmp = pathlib.Path(tempfile.mkdtemp(prefix="jaxreenact_parity_", dir=self._tmp_root))
        self._count += 1
        out = self._tmp / f"{self._count}_{comp.name}"
        out.mkdir(parents=True, exist_ok=True)
        torch_files = [e for e in entries if e.get("format") == "torch"]
        tensors = regen.tensors(comp.block["weights"]) if torch_files else None
        for e in entries:
            p = out / e["file"]
            regen.write(comp.block, e, str(p), tensors)
            self._done[(str(comp.spec_path), comp.name, e["file"])] = p
        del tensors
