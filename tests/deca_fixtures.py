"""Shared, cached setup of the DECA tests: the golden's synthetic files (written once per test session with the
harness's regen.py into a temporary folder, deleted at exit) and the converted (module, variables)."""

from __future__ import annotations

import atexit
import functools
import pathlib
import shutil
import tempfile

import goldens
from converters.deca import load_torch


@functools.cache
def deca_files() -> pathlib.Path:
    tmp = pathlib.Path(tempfile.mkdtemp(prefix="jaxreenact_deca_"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    return goldens.write_checkpoint("deca_coarse", tmp / "files")


@functools.cache
def deca_model():

    d = deca_files()
    return load_torch(d / "deca_model.tar", d / "generic_model.pkl", d / "landmark_embedding.npy", return_info=True)
