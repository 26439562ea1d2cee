"""Access to the golden test vectors copied from ../shared/golden (see tests/golden/README.md).

`regen.py` (the harness's own script, copied verbatim) rebuilds the random-weight checkpoints in the upstream
file layouts from `spec.json`; nothing is downloaded and no upstream code is needed.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib
import shutil

import numpy as np

GOLDEN = pathlib.Path(__file__).parent / "golden"


def _regen():
    spec = importlib.util.spec_from_file_location("_golden_regen", GOLDEN / "regen.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def spec(name: str) -> dict:
    return json.loads((GOLDEN / name / "spec.json").read_text())


def inputs(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / name / "inputs.npz") as f:
        return {k: f[k] for k in f.files}


def expected(name: str) -> dict[str, np.ndarray]:
    with np.load(GOLDEN / name / "expected.npz") as f:
        return {k: f[k] for k in f.files}


def image_input(u8: np.ndarray, deca: bool = False) -> np.ndarray:
    """uint8 NCHW golden image -> float32 NHWC in [-1, 1] (or [0, 1] for DECA), as the goldens define it."""
    x = u8.astype(np.float32) / (255.0 if deca else 127.5)
    if not deca:
        x = x - 1.0
    return np.transpose(x, (0, 2, 3, 1))


def nchw(x) -> np.ndarray:
    return np.transpose(np.asarray(x), (0, 3, 1, 2))


def write_checkpoint(name: str, out: pathlib.Path, file: str | None = None) -> pathlib.Path:
    """Write the golden checkpoint file(s) of `name` to `out` (a file if one, else a directory)."""
    regen = _regen()
    s = spec(name)
    files = [e for e in s["files"] if file is None or e["file"] == file]
    need_t = any(e["format"] == "torch" for e in files)
    tensors = regen.tensors(s["weights"]) if need_t else None
    out = pathlib.Path(out)
    if len(files) == 1:
        out.parent.mkdir(parents=True, exist_ok=True)
        regen.write(s, files[0], str(out), tensors)
        return out
    out.mkdir(parents=True, exist_ok=True)
    for e in files:
        regen.write(s, e, str(out / e["file"]), tensors)
    return out


def state_dict(name: str, group: str, prefix: str = "") -> dict:
    """The golden weights of one group as {prefix + key: torch tensor}, without writing a file."""
    s = spec(name)
    return {prefix + k: t for (g, k), t in _regen().tensors(s["weights"]).items() if g == group}


def _load_component(name: str, files: dict[str, pathlib.Path]):
    """(module, variables) of a pipeline component from its upstream files, through `converters.<name>`."""
    if name == "generator":
        from converters import stylegan2

        return stylegan2.load_torch(files["stylegan2-voxceleb.pt"])
    if name == "deca":
        from converters import deca

        flame = next(p for f, p in files.items() if f.endswith(".pkl"))
        return deca.load_torch(files["deca_model.tar"], flame, files["landmark_embedding.npy"])
    if name == "id_loss":
        from converters import arcface

        return arcface.load_torch(files["model_ir_se50.pth"])
    if name == "lpips":
        from converters import lpips

        return lpips.load_torch(files["alexnet-owt-7be5be79.pth"], files["alex.pth"])
    if name == "A":
        from converters import direction_matrix

        return direction_matrix.load_torch(files["A_matrix.pt"])
    raise KeyError(name)


class ComponentNetworks:
    """`get(name)` -> (module, variables) of a pipeline golden's component (generator, deca, id_loss, lpips, A):
    its files regenerated with regen.py into `tmp` on first use, converted with `converters.<name>.load_torch`,
    then deleted (a few hundred MB). Components with the same weight block are regenerated once."""

    def __init__(self, spec: dict, tmp: pathlib.Path):
        self.blocks, self.tmp, self.cache = spec["components"], pathlib.Path(tmp), {}

    def same_weights(self, spec: dict) -> bool:
        """Whether another pipeline spec's components are these (then these networks serve it too)."""
        return all(json.dumps(self.blocks.get(k), sort_keys=True) == json.dumps(b, sort_keys=True)
                   for k, b in spec["components"].items())  # fmt: skip

    def get(self, name: str):
        if name not in self.cache:
            block = self.blocks[name]
            regen = _regen()
            out = self.tmp / name
            out.mkdir(parents=True, exist_ok=True)
            need_t = any(e["format"] == "torch" for e in block["files"])
            tensors = regen.tensors(block["weights"]) if need_t else None
            files = {}
            for e in block["files"]:
                files[e["file"]] = out / e["file"]
                regen.write(block, e, str(files[e["file"]]), tensors)
            del tensors
            self.cache[name] = _load_component(name, files)
            for p in files.values():
                p.unlink()
        return self.cache[name]


# Arrays of a training-step golden with one entry per sample of the batch's halves (B/2 rows), not per sample.
_HALF_BATCH = ("target_indices", "rand_u", "real_img_u8", "w_real", "z_source_syn", "imgs_source_syn_")


def doubled_batch(name: str) -> tuple[dict, dict, dict]:
    """A `train_step_*` golden at twice its batch, with every expected value derived by hand from the golden's: each
    sample appears twice, in the order that keeps the 50 % scheme's halves (first half: samples 0..B/2-1 twice, then
    the second half's twice; in paired mode the batch twice). Every loss term is a batch mean, so the losses, A's
    gradient and A after Adam are the golden's, and each sample's gradient at A's output is half the golden's.
    Returns (spec, inputs, expected) for the parity runner: a golden of a batch size the port has never seen."""
    s, inp, exp = spec(name), inputs(name), expected(name)
    b = s["upstream"]["config"]["batch_size"]
    h = b // 2
    paired = s["kind"] == "train_step_paired"
    full = (
        np.r_[np.arange(b), np.arange(b)]
        if paired
        else np.r_[np.arange(h), np.arange(h), np.arange(h, b), np.arange(h, b)]
    )
    half = np.r_[np.arange(h), np.arange(h)]

    def double(key, a):
        if a.ndim == 0 or key in ("truncation_latent", "ranges_voxceleb", "imgs_shifted_full"):
            return a
        if key == "grad_shift_per_term":
            return a / 2  # the two samples it names, each with half its gradient
        if key.startswith(("loss", "grad_A_", "A_")):
            return a  # batch means and A: the golden's
        # [step, b, ...], but [b, ...] for the step-0 arrays (subsampled images and crops, the shifted latents)
        per_step = not (key.endswith(("_sub4", "crop_sub8")) and a.ndim == 4) and key != "shifted_latents"
        out = np.take(a, half if key.startswith(_HALF_BATCH) else full, axis=1 if per_step else 0)
        return out / 2 if key == "grad_shift" else out  # d mean / d sample halves with twice the samples

    inp = {k: double(k, v) for k, v in inp.items()}
    exp = {k: double(k, v) for k, v in exp.items()}
    s = json.loads(json.dumps(s))
    s["upstream"]["config"]["batch_size"] = 2 * b
    for group, arrays in (("inputs", inp), ("expected", exp)):
        for k, entry in s[group].items():
            a = np.asarray(arrays[k], np.float64)
            entry["shape"] = list(a.shape)
            if "stats" in entry:  # the spec's summary of the array, of the doubled one now
                entry["stats"] = {k_: float(getattr(a, k_)()) for k_ in ("mean", "std", "min", "max")}
            if not paired:  # the samples [0, B/2] some entries name are samples [0, B] now
                entry["upstream"] = entry.get("upstream", "").replace(f"samples [0, {h}]", f"samples [0, {b}]")
    return s, inp, exp


def write_folder(spec_: dict, inputs_: dict, expected_: dict, out: pathlib.Path, base: pathlib.Path) -> None:
    """A golden folder the parity program reads: spec.json, inputs.npz, expected.npz, and the regen.py of `base` (the
    folder or its parent), with which the program rebuilds the weights."""
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "inputs.npz", **inputs_)
    np.savez(out / "expected.npz", **expected_)
    (out / "spec.json").write_text(json.dumps(spec_, indent=1))
    regen = next((d / "regen.py" for d in (base, base.parent) if (d / "regen.py").is_file()), None)
    if regen is not None:
        shutil.copy(regen, out / "regen.py")
