"""Convert DECA's coarse model (`deca_model.tar` → `E_flame`) and FLAME's files to a jaxreenact `DECA` module.

Inputs (the user's own downloads, see README):
* `deca_model.tar`: `{'E_flame': state_dict, 'E_detail': ..., 'D_detail': ...}`. Only `E_flame` is used (strict
  key accounting); `E_detail`/`D_detail` (the detail branch) are never used by this method and are ignored on purpose.
* `generic_model.pkl` (FLAME 2020): a py2-era pickle with chumpy objects and a scipy sparse `J_regressor`. Read by
  `load_flame` with the restricted unpickler of `converters.safe_pickle` (a tampered download cannot run code).
* `landmark_embedding.npy`: a pickled dict inside a `.npy`; its dynamic entries are torch tensors. Read by
  `load_landmark_embedding` with the same restricted unpickler (never `np.load(allow_pickle=True)`); the tensors are
  rebuilt as numpy arrays without torch from their serialized bytes.

CLI: `python -m converters.deca DECA_TAR FLAME_PKL LMK_NPY DST`.
"""

from __future__ import annotations

import argparse
import os
import pathlib
from typing import Any

import numpy as np

from converters.common import (
    check_tree,
    convert_table,
    rule_table,
    run_cli,
    save_converted,
    template_of,
    to_numpy,
    torch_load,
)
from converters.safe_pickle import plain, safe_unpickle
from jaxreenact.common.errors import ConversionError, UserError
from jaxreenact.models.deca import DECA, PARAM_SPLIT, ResnetEncoder

N_SHAPE, N_EXP, EXP_OFFSET = 100, 50, 300
# The detail branch (never used by this method) and what DECA's own trainer adds to its checkpoints.
IGNORED_TOP_LEVEL = {"E_detail", "D_detail", "opt", "global_step", "batch_size"}


def _check_file(path, what: str) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.exists():
        raise UserError(f"{path}: {what} not found")
    if not path.is_file():
        raise UserError(f"{path}: expected the {what} file, found a directory")
    return path


# ----------------------------------------------------------------------------------------------------------------
# FLAME files
# ----------------------------------------------------------------------------------------------------------------
FLAME_KEYS = ("f", "v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table")


def load_flame(path) -> dict[str, Any]:
    """Read a FLAME `generic_model.pkl` safely (no chumpy, no scipy, no foreign code) → dict of numpy arrays.

    Handles the original py2/chumpy file (protocol 2, latin1 strings, `chumpy.ch.Ch`, `scipy.sparse.csc`) and
    modern re-saves (protocol 4, numpy ≥ 2 module paths, real `scipy.sparse` matrices). `J_regressor` comes back
    dense. Raises `UserError` for a refused class, a damaged file or a missing key.
    """
    path = _check_file(path, "FLAME model (generic_model.pkl)")
    with open(path, "rb") as fh:
        obj = safe_unpickle(fh, source=str(path))
    if not isinstance(obj, dict):
        raise UserError(f"{path}: not a FLAME model (the pickle holds a {type(obj).__name__}, not a dict)")
    model = plain(obj)
    missing = [k for k in FLAME_KEYS if k not in model]
    if missing:
        raise UserError(f"{path}: not a FLAME model, missing key(s) {missing}")
    out = {}
    for k, v in model.items():
        out[k] = np.asarray(v) if isinstance(v, np.ndarray | list) else v
    for k in FLAME_KEYS:
        if not isinstance(out[k], np.ndarray) or out[k].dtype == object:
            raise UserError(f"{path}: FLAME key {k!r} is not a numeric array")
    v = out["v_template"].shape[0]
    expect = {
        "v_template": (v, 3),
        "f": (None, 3),
        "weights": (v, None),
        "kintree_table": (2, None),
        "J_regressor": (None, v),
    }
    for k, shp in expect.items():
        s = out[k].shape
        if len(s) != len(shp) or any(e is not None and e != g for e, g in zip(shp, s)):
            raise UserError(f"{path}: FLAME key {k!r} has shape {s}, expected {shp} (None = any)")
    if out["shapedirs"].shape[:2] != (v, 3) or out["shapedirs"].shape[2] < EXP_OFFSET + N_EXP:
        raise UserError(
            f"{path}: FLAME shapedirs has shape {out['shapedirs'].shape}; DECA needs [V, 3, >= 350] "
            "(FLAME 2020 generic_model.pkl has 400 components)"
        )
    return out


LMK_KEYS = (
    "static_lmk_faces_idx",
    "static_lmk_bary_coords",
    "dynamic_lmk_faces_idx",
    "dynamic_lmk_bary_coords",
    "full_lmk_faces_idx",
    "full_lmk_bary_coords",
)


def load_landmark_embedding(path) -> dict[str, np.ndarray]:
    """Read DECA's `landmark_embedding.npy` (a pickled dict in a .npy) safely; torch tensors become numpy arrays.

    The payload is read with the restricted unpickler instead of `np.load(allow_pickle=True)` (which would run any
    pickle). Torch is not needed.
    """
    path = _check_file(path, "FLAME landmark embedding (landmark_embedding.npy)")
    with open(path, "rb") as fh:
        try:
            version = np.lib.format.read_magic(fh)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
            else:
                raise ValueError(f"unsupported .npy format version {version}")
        except ValueError as e:
            raise UserError(f"{path}: not a .npy file ({e})") from None
        if np.dtype(dtype).kind != "O":
            raise UserError(f"{path}: expected a pickled dict in the .npy (dtype object), found dtype {dtype}")
        arr = safe_unpickle(fh, source=str(path))
    obj = arr[()] if isinstance(arr, np.ndarray) and arr.shape == () else arr
    if not isinstance(obj, dict):
        raise UserError(f"{path}: expected a dict of landmark arrays, found {type(obj).__name__}")
    obj = plain(obj)
    missing = [k for k in LMK_KEYS if k not in obj]
    if missing:
        raise UserError(f"{path}: not DECA's landmark_embedding.npy, missing key(s) {missing}")
    return {k: np.asarray(obj[k]) for k in LMK_KEYS}


def flame_buffers(flame: dict, lmk: dict, source: str = "FLAME") -> dict[str, np.ndarray]:
    """DECA's FLAME buffers from the raw FLAME model and landmark embedding (shapedirs :100 ++ 300:350)."""
    sd = flame["shapedirs"].astype(np.float32)
    shapedirs = np.concatenate([sd[:, :, :N_SHAPE], sd[:, :, EXP_OFFSET : EXP_OFFSET + N_EXP]], axis=2)
    posedirs = flame["posedirs"]
    posedirs = np.reshape(posedirs, [-1, posedirs.shape[-1]]).T.astype(np.float32)
    f = flame["f"].astype(np.int64)
    n_faces = f.shape[0]
    out = {
        "v_template": flame["v_template"].astype(np.float32),
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": np.asarray(flame["J_regressor"]).astype(np.float32),
        "lbs_weights": flame["weights"].astype(np.float32),
        "faces": f.astype(np.int32),
        "lmk_faces_idx": lmk["static_lmk_faces_idx"].astype(np.int64).reshape(-1).astype(np.int32),
        "lmk_bary_coords": lmk["static_lmk_bary_coords"].astype(np.float32).reshape(-1, 3),
        "dynamic_lmk_faces_idx": lmk["dynamic_lmk_faces_idx"].astype(np.int64).astype(np.int32),
        "dynamic_lmk_bary_coords": lmk["dynamic_lmk_bary_coords"].astype(np.float32),
        "full_lmk_faces_idx": lmk["full_lmk_faces_idx"].astype(np.int64).reshape(-1).astype(np.int32),
        "full_lmk_bary_coords": lmk["full_lmk_bary_coords"].astype(np.float32).reshape(-1, 3),
    }
    for k in ("lmk_faces_idx", "dynamic_lmk_faces_idx", "full_lmk_faces_idx"):
        if out[k].size and (out[k].min() < 0 or out[k].max() >= n_faces):
            raise UserError(f"{source}: landmark {k} indexes faces outside [0, {n_faces}): wrong FLAME version?")
    if out["dynamic_lmk_faces_idx"].shape[0] != 79:
        raise UserError(f"{source}: dynamic_lmk_faces_idx has {out['dynamic_lmk_faces_idx'].shape[0]} rows, not 79")
    return out


def flame_parents(flame: dict) -> tuple[int, ...]:
    parents = [int(p) for p in np.asarray(flame["kintree_table"])[0]]
    parents[0] = -1
    return tuple(parents)


# ----------------------------------------------------------------------------------------------------------------
# E_flame
# ----------------------------------------------------------------------------------------------------------------
def convert_e_flame(state_dict: dict, source: str, template=None) -> tuple[dict, dict]:
    """E_flame state dict → (params, buffers) of `ResnetEncoder` (strict: every key used, none missing).

    Key table: `converters.common.rule_table`, as the Flax names are DECA's with `_<n>` for `.<n>`
    (`params/encoder/layer3_2/bn2/weight` <- `encoder.layer3.2.bn2.weight`, `params/layers_2/weight` <- `layers.2.weight`);
    written out it would repeat the ResNet-50 of `jaxreenact.models.resnet`. `template`: the E_flame part of DECA's
    variable tree (default: `ResnetEncoder()`'s own).
    """
    if template is None:
        template = template_of(ResnetEncoder(), np.zeros((1, 224, 224, 3), np.float32))
    variables = convert_table(template, state_dict, source, rule_table(template))
    return variables["params"], variables["buffers"]


def load_torch(deca_model_tar, flame_pkl, landmark_embedding_npy, return_info: bool = False):
    """Read DECA's `deca_model.tar` (E_flame, strict) and FLAME's files → `(DECA module, variables)`."""
    ckpt = torch_load(_check_file(deca_model_tar, "DECA model (deca_model.tar)"), "DECA model (deca_model.tar)")
    if not isinstance(ckpt, dict) or "E_flame" not in ckpt:
        keys = list(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise ConversionError(f"{deca_model_tar}: not DECA's deca_model.tar (no 'E_flame' entry; found {keys})")
    unknown = sorted(set(ckpt) - {"E_flame"} - IGNORED_TOP_LEVEL)
    if unknown:
        raise ConversionError(f"{deca_model_tar}: unexpected top-level key(s) {unknown}")
    ignored = sorted(set(ckpt) & IGNORED_TOP_LEVEL)
    flame = load_flame(flame_pkl)
    lmk = load_landmark_embedding(landmark_embedding_npy)
    fb = flame_buffers(flame, lmk, str(flame_pkl))
    module = DECA(
        n_vertices=int(fb["v_template"].shape[0]), n_faces=int(fb["faces"].shape[0]), parents=flame_parents(flame)
    )
    template = template_of(module, np.zeros((1, 224, 224, 3), np.float32))
    e_flame = {c: template[c]["E_flame"] for c in ("params", "buffers")}
    sd = to_numpy(ckpt["E_flame"], str(deca_model_tar))
    params, buffers = convert_e_flame(sd, f"{deca_model_tar}['E_flame']", e_flame)
    variables = {"params": {"E_flame": params}, "buffers": {"E_flame": buffers, "flame": fb}}
    check_tree(template, variables, f"{deca_model_tar} + {flame_pkl}")
    info = {
        "ignored": ignored,
        "param_split": dict(PARAM_SPLIT),
        "flame_vertices": int(fb["v_template"].shape[0]),
        "flame_bs_style": str(flame.get("bs_style", "")),
    }
    return (module, variables, info) if return_info else (module, variables)


def save(srcs, dst) -> list[str]:
    """Convert `srcs` = (deca_model.tar, generic_model.pkl, landmark_embedding.npy) and write the checkpoint folder
    `dst`; returns what was done."""
    deca_tar, flame_pkl, lmk_npy = srcs
    module, variables, info = load_torch(deca_tar, flame_pkl, lmk_npy, return_info=True)
    save_converted(
        dst,
        module,
        variables,
        converter="deca",
        sources={"deca_model": deca_tar, "flame_model": flame_pkl, "landmark_embedding": lmk_npy},
        extra={"ignored": info["ignored"]},
    )
    lines = []
    if info["ignored"]:
        lines.append(f"ignored {', '.join(info['ignored'])} (DECA's detail branch; this method uses E_flame only)")
    return lines + [f"converted DECA E_flame + FLAME ({info['flame_vertices']} vertices)", f"wrote {os.fspath(dst)}"]


def main(argv=None):

    def add(p: argparse.ArgumentParser):
        p.add_argument("deca_tar", help="DECA's deca_model.tar (E_flame is used; E_detail/D_detail are ignored)")
        p.add_argument("flame_pkl", help="FLAME 2020 generic_model.pkl (read without chumpy, restricted unpickler)")
        p.add_argument("lmk_npy", help="DECA's landmark_embedding.npy")
        p.add_argument("dst", help="output directory (an Orbax checkpoint for jaxreenact.weights.load)")

    def convert(a):
        for line in save([a.deca_tar, a.flame_pkl, a.lmk_npy], a.dst):
            print(line)

    run_cli("deca", "Convert DECA's coarse encoder and FLAME to a jaxreenact checkpoint.", add, convert, argv)


if __name__ == "__main__":
    main()
