"""The README and the guides as a user copies them: every concrete `python -m ...` command of README.md and docs/*.md
parses from another folder with its shipped inputs and configs found there (the programs' own parsers; nothing heavy
runs); a command that needs real weights, data or torch sits in a block marked `<!-- needs: ... -->` (the convention
of docs/development.md); the weights table and every converter command are the registry's; the two commands of the
README's first screen are the Makefile's, and CI runs them."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import os
import pathlib
import re
import shlex
import subprocess

from jaxreenact.common import cli
from jaxreenact.weights import registry

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README = (ROOT / "README.md").read_text()
PLACEHOLDER = re.compile(r"\b[A-Z][A-Z0-9]*_[A-Z0-9_]+\b|\b(?:INPUT|DIR|SRC|DST)\b")
NEEDS = re.compile(r"<!--\s*needs:\s*(.*?)\s*-->")
NEED_KINDS = {"weights", "data", "torch"}
SHELL_FENCES = ("", "bash", "sh", "shell", "console")
ARGPARSE_PROGRAMS = ("reenact", "edit", "preprocess", "generate", "stats", "invert", "app", "parity")
# programs that read networks: a command of one of them without a `needs:` marker must say --tiny (or :tiny)
WEIGHTED = ("reenact", "edit", "preprocess", "generate", "stats", "invert", "app", "train", "evaluate")
# guides other pieces of work write; linked from the README before they land
PARALLEL_GUIDES = {"webdemo.md", "pods.md", "precision.md", "performance.md", "comparison.md"}


@dataclasses.dataclass(frozen=True)
class Command:
    doc: str
    line: int
    text: str
    needs: frozenset

    def __str__(self):
        return f"{self.doc}:{self.line}: {self.text}"


def _needs(marker: str) -> frozenset:
    return frozenset(k.strip() for k in marker.split(",") if k.strip())


def commands(path: pathlib.Path) -> list[Command]:
    """Every `python -m ...` line of a shell code block (fenced, or indented by 4), continuation lines joined,
    comments cut, with the `needs:` marker of its fenced block."""
    lines, out = path.read_text().splitlines(), []
    fence, pending, needs = None, frozenset(), frozenset()
    i = 0
    while i < len(lines):
        line, s = lines[i], lines[i].strip()
        m = NEEDS.fullmatch(s)
        if m and fence is None:
            pending = _needs(m.group(1))
        elif s.startswith("```"):
            if fence is None:
                fence, needs, pending = s[3:].strip(), pending, frozenset()
            else:
                fence, needs = None, frozenset()
        elif (fence in SHELL_FENCES) or (fence is None and line.startswith("    ")):
            start, cmd = i, s
            while cmd.endswith("\\") and i + 1 < len(lines):
                i += 1
                cmd = cmd[:-1] + " " + lines[i].strip()
            if cmd.startswith("python -m "):
                cmd = cmd.split("  #")[0].split(" # ")[0].strip()
                out.append(Command(path.relative_to(ROOT).as_posix(), start + 1, cmd, needs))
        elif s:
            pending = frozenset() if not s.startswith("<!--") else pending
        i += 1
    return out


def all_commands() -> list[Command]:
    return [c for doc in DOCS for c in commands(doc)]


def test_the_weights_table_is_the_registry():
    for doc in (README, (ROOT / "docs" / "weights.md").read_text()):
        assert registry.table() in doc
    for e in registry.REGISTRY.values():
        assert all(link in README for link in e.links)
    weights_md = (ROOT / "docs" / "weights.md").read_text()
    for link in (registry.DECA_SITE, registry.FLAME_SITE, registry.AUTHORS_URL):
        assert link in README + weights_md


def test_converter_commands_name_the_registry_files():
    conv = [c.text for c in all_commands() if c.text.startswith("python -m converters.")]
    conv = [c for c in conv if not PLACEHOLDER.search(c)]
    assert len(conv) >= 9
    allowed = {e.convert() for e in registry.REGISTRY.values()}
    assert set(conv) <= allowed, set(conv) - allowed
    for c in conv:
        assert hasattr(importlib.import_module(c.split()[2]), "save")


def _check_parses(c: Command) -> str:
    """Parse one command as its program does, from the current folder; return the program's name."""
    prog, *args = shlex.split(c.text)[2:]
    name = prog.split(".", 1)[1]
    for tok in args:  # every shipped path it names is found from here
        part = tok.split("=")[-1]
        if part.startswith(cli.SHIPPED_TOPS):
            assert cli.shipped_path(part.split(":")[0]).exists(), (str(c), part)
    if name in ("train", "evaluate"):
        batch = "train.batch_size" if name == "train" else "eval.batch_size"
        argv = cli.prepare_config_argv(["prog", *args], prog, batch)  # config, variant and overrides checked
        assert any(a.startswith("--config=/") for a in argv), str(c)
    elif name in ARGPARSE_PROGRAMS:
        a = importlib.import_module(prog).parse_args(args)
        for flag in ("source", "driving", "input"):
            value = getattr(a, flag, None)
            example = cli.EXAMPLE_SOURCE if flag == "source" else cli.EXAMPLE_DRIVING
            if value is not None and not str(value).startswith("weights/") and "data" not in c.needs:
                assert pathlib.Path(cli.input_path(value, example)).exists(), (str(c), flag)
    else:
        assert importlib.util.find_spec(prog) is not None, f"a command of no module: {c}"
    return name


def test_every_program_command_parses_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    checked = []
    for c in all_commands():
        if PLACEHOLDER.search(c.text) or not c.text.startswith("python -m jaxreenact."):
            continue
        checked.append(_check_parses(c))
    assert {"train", "evaluate", "reenact", "edit", "preprocess", "generate", "stats", "app"} <= set(checked), checked
    assert len(checked) >= 20


def test_a_command_that_needs_weights_is_marked():
    """Unmarked commands run as copied on a fresh set-up: a program that reads networks says --tiny there."""
    unmarked = []
    for c in all_commands():
        name = c.text.split()[2].split(".", 1)[-1]
        if not c.text.startswith("python -m jaxreenact.") or name not in WEIGHTED or PLACEHOLDER.search(c.text):
            continue
        tiny = "--tiny" in c.text.split() or re.search(r"--config=\S+:tiny\b", c.text)
        if not tiny and not c.needs & {"weights", "data"}:
            unmarked.append(str(c))
    assert not unmarked, "commands that need weights without a <!-- needs: weights --> marker:\n" + "\n".join(unmarked)


def test_needs_markers_are_known_and_precede_a_code_block():
    for doc in DOCS:
        lines, fenced = doc.read_text().splitlines(), False
        for i, line in enumerate(lines):
            fenced ^= line.strip().startswith("```")
            m = NEEDS.fullmatch(line.strip())
            if m and not fenced:
                assert _needs(m.group(1)) and _needs(m.group(1)) <= NEED_KINDS, f"{doc.name}:{i + 1}: {line}"
                nxt = next((s.strip() for s in lines[i + 1 :] if s.strip()), "")
                assert nxt.startswith("```"), f"{doc.name}:{i + 1}: a needs marker not followed by a code block"


def test_relative_links_resolve():
    missing = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target or target.startswith("mailto:") or not re.search(r"[./]", target):  # math, not links
                continue
            path = (doc.parent / target).resolve()
            if not path.exists() and not (path.name in PARALLEL_GUIDES and path.parent == ROOT / "docs"):
                missing.append(f"{doc.name}: {target}")
    assert not missing, missing


def test_the_first_screen_gives_the_two_commands_and_they_are_the_makefiles():
    first = "\n".join(README.splitlines()[:40])
    assert re.search(r"```bash\nmake demo\b.*\nmake test\b", first), "make demo / make test in the first screen"
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^demo:.*\n((?:\t.*\n)+)", makefile, re.M).group(1)
    run = next(ln.strip() for ln in recipe.splitlines() if "-m jaxreenact." in ln)
    # the demo is the README's main job: the tiny reenactment of the shipped examples
    text = "python " + run.split("/bin/python ", 1)[1].replace("$(DEMO_ARGS)", "").replace("$(OUT)", "runs/demo")
    assert (
        text.split() == "python -m jaxreenact.reenact --source example --driving example --out runs/demo --tiny".split()
    )
    assert f"`{text.strip()}`" in README
    _check_parses(Command("Makefile", 0, text.strip(), frozenset()))
    assert re.search(r"^test:.*\n\t.*pytest \$\(PYTEST_ARGS\)", makefile, re.M)


def test_ci_runs_the_two_commands():
    run = (ROOT / ".ci" / "run").read_text()
    lines = [ln.strip() for ln in run.splitlines() if ln.strip() and not ln.strip().startswith("#")]
    assert any(ln.startswith("export CI=") for ln in lines)
    assert any(ln.startswith("make demo") for ln in lines) and any(ln.startswith("make test") for ln in lines)
    assert not any("pip install" in ln or "pytest" in ln for ln in lines), "CI installs and tests through make only"


def test_setup_is_skipped_when_done(tmp_path):
    """A stamp keyed on pyproject.toml and the script: the second run installs nothing and creates nothing."""
    key = hashlib.sha256((ROOT / "pyproject.toml").read_bytes() + (ROOT / ".ci" / "setup.sh").read_bytes())
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / f".jaxreenact-setup-test-{key.hexdigest()[:16]}").touch()
    env = {**os.environ, "VENV": str(venv), "PYTHON": "python3"}
    for what in ("demo", "test"):
        r = subprocess.run(["bash", str(ROOT / ".ci" / "setup.sh"), what], env=env, capture_output=True, text=True,
                           timeout=60)  # fmt: skip
        assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr
    assert sorted(p.name for p in venv.iterdir()) == [f".jaxreenact-setup-test-{key.hexdigest()[:16]}"]
