"""The one formatter and the linter, run as part of the test suite so CI enforces them."""

import pathlib
import shutil
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _ruff(*args):
    exe = shutil.which("ruff") or pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    return subprocess.run([exe, *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_format():
    r = _ruff("format", "--check", ".")
    assert r.returncode == 0, f"run `ruff format .`:\n{r.stdout}{r.stderr}"


def test_ruff_check():
    r = _ruff("check", ".")
    assert r.returncode == 0, f"run `ruff check --fix .`:\n{r.stdout}{r.stderr}"


def test_python_version():
    assert sys.version_info >= (3, 11)
