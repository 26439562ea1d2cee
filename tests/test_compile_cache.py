"""The persistent compilation cache every program sets up in `common.cli.parse` (issue 24): on by default in the
user's cache folder, moved by `--compile-cache DIR` or `JAXREENACT_COMPILE_CACHE`, off with `off`; a second
process loads what the first compiled. Each case is a fresh process (JAX reads the setting once)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).parents[1]
PROGRAM = """
import argparse, sys, jax, jax.numpy as jnp
from jaxreenact.common import cli
p = argparse.ArgumentParser()
cli.add_run_flags(p)
cli.parse(p, sys.argv[1:])
hits = []
jax.monitoring.register_event_listener(lambda name, **kw: hits.append(name) if "cache_hits" in name else None)
jax.jit(lambda x: jnp.tanh(x @ x.T).sum())(jnp.ones((64, 64))).block_until_ready()
print("hits", len(hits))
"""


def run(args, tmp_path, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("JAX_COMPILATION_CACHE_DIR", "JAXREENACT_COMPILE_CACHE")}
    e.update(XDG_CACHE_HOME=str(tmp_path / "xdg"), PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu", **env)
    r = subprocess.run([sys.executable, "-c", PROGRAM, *args], capture_output=True, text=True, env=e, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return int(r.stdout.split()[-1]), r


def files(folder: pathlib.Path) -> int:
    return sum(1 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def test_default_folder_then_a_hit(tmp_path):
    default = tmp_path / "xdg" / "jaxreenact" / "jax"
    hits, _ = run([], tmp_path)
    assert hits == 0 and files(default) > 0
    hits, _ = run([], tmp_path)
    assert hits >= 1  # the second process loaded the executable


def test_flag_and_environment_move_or_disable_it(tmp_path):
    run(["--compile-cache", str(tmp_path / "flag")], tmp_path, JAXREENACT_COMPILE_CACHE=str(tmp_path / "env"))
    assert files(tmp_path / "flag") > 0 and files(tmp_path / "env") == 0  # the flag wins
    run([], tmp_path, JAXREENACT_COMPILE_CACHE=str(tmp_path / "env"))
    assert files(tmp_path / "env") > 0
    hits, _ = run(["--compile-cache", "off"], tmp_path, JAXREENACT_COMPILE_CACHE=str(tmp_path / "env"))
    assert hits == 0
    run([], tmp_path, JAXREENACT_COMPILE_CACHE="off")
    assert files(tmp_path / "xdg") == 0  # nothing written anywhere


def test_an_unusable_folder_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    e = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    e.update(PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "-m", "jaxreenact.stats", "--tiny", "--out", str(tmp_path / "r.npy"),
                        "--compile-cache", str(blocker / "sub")], capture_output=True, text=True, env=e,
                       timeout=120)  # fmt: skip
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--compile-cache" in lines[0] and "cannot create" in lines[0], r.stderr


@pytest.mark.parametrize("value", ["OFF", "none"])
def test_off_spellings(tmp_path, value):
    hits, _ = run(["--compile-cache", value], tmp_path)
    assert hits == 0 and files(tmp_path / "xdg") == 0
