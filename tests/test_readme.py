"""The README as a user copies it: its weights table is the registry's, every converter command is the registry's
(one file name per checkpoint), and every concrete `python -m jaxreenact...` command parses from another folder
with its shipped inputs and configs found there (the programs' own parsers; nothing heavy runs)."""

from __future__ import annotations

import importlib
import pathlib
import re
import shlex

import pytest

from jaxreenact.common import cli
from jaxreenact.weights import registry

ROOT = pathlib.Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|\b(?:INPUT|DIR|SRC|DST)\b")
ARGPARSE_PROGRAMS = ("reenact", "edit", "preprocess", "generate", "stats", "invert", "app", "parity")


def commands() -> list[str]:
    """Every `python -m ...` line of the README's code (fenced or indented), continuation lines joined, comments cut."""
    lines, out, code = README.splitlines(), [], False
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            code = not code
        elif code or line.startswith("    "):
            cmd = line.strip()
            while cmd.endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd[:-1] + " " + lines[i].strip()
            if cmd.startswith("python -m "):
                out.append(cmd.split("  #")[0].split(" # ")[0].strip())
        i += 1
    return out


def test_the_weights_table_is_the_registry():
    assert registry.table() in README
    for e in registry.REGISTRY.values():
        assert all(link in README for link in e.links)
    for link in (registry.DECA_SITE, registry.FLAME_SITE, registry.AUTHORS_URL):
        assert link in README


def test_converter_commands_name_the_registry_files():
    conv = [c for c in commands() if c.startswith("python -m converters.") and not PLACEHOLDER.search(c)]
    assert len(conv) >= 9
    allowed = {e.convert() for e in registry.REGISTRY.values()}
    assert set(conv) <= allowed, set(conv) - allowed
    for c in conv:
        assert hasattr(importlib.import_module(c.split()[2]), "save")


def test_every_program_command_parses_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checked = []
    for c in commands():
        if PLACEHOLDER.search(c) or not c.startswith("python -m jaxreenact."):
            continue
        prog, *args = shlex.split(c)[2:]
        name = prog.split(".", 1)[1]
        for tok in args:  # every shipped path it names is found from here
            for part in tok.split("=")[-1:]:
                if part.startswith(cli.SHIPPED_TOPS):
                    assert cli.shipped_path(part.split(":")[0]).exists(), (c, part)
        if name in ("train", "evaluate"):
            batch = "train.batch_size" if name == "train" else "eval.batch_size"
            argv = cli.prepare_config_argv(["prog", *args], prog, batch)  # config, variant and overrides checked
            assert any(a.startswith("--config=/") for a in argv), c
        elif name in ARGPARSE_PROGRAMS:
            a = importlib.import_module(prog).parse_args(args)
            for flag in ("source", "driving", "input"):
                value = getattr(a, flag, None)
                example = cli.EXAMPLE_SOURCE if flag == "source" else cli.EXAMPLE_DRIVING
                if value is not None and not str(value).startswith("weights/"):
                    assert pathlib.Path(cli.input_path(value, example)).exists(), (c, flag)
        else:
            pytest.fail(f"README command of an unknown program: {c}")
        checked.append(name)
    assert {"train", "evaluate", "reenact", "edit", "preprocess", "generate", "stats"} <= set(checked), checked
    assert len(checked) >= 14
