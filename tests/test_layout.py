"""The package's import graph, read from the source (imports inside functions included): no cycles, programs import
no program, each layer imports only the layers before it (docs/LAYOUT.md), first-party imports at module top."""

from __future__ import annotations

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]
FIRST_PARTY = ("jaxreenact", "converters")

# Layer order: a module may import its own layer and the layers before it. training and inference share a rank but
# may not import each other.
LAYERS = [
    ("jaxreenact", "jaxreenact.common"),
    ("jaxreenact.nn",),
    ("jaxreenact.models",),
    ("jaxreenact.face",),
    ("jaxreenact.pose",),
    ("jaxreenact.latent",),
    ("jaxreenact.weights",),
    ("converters",),
    ("jaxreenact.data",),
    ("jaxreenact.evaluation.metrics",),
    ("jaxreenact.training", "jaxreenact.inference"),
    ("jaxreenact.evaluation", "jaxreenact.webapp"),
]
PROGRAM_RANK = len(LAYERS)
EXTRA_PROGRAMS = {"jaxreenact.data.build"}


def module_files():
    files = sorted((ROOT / "jaxreenact").rglob("*.py")) + sorted((ROOT / "converters").glob("*.py"))
    for p in files:
        parts = p.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, p


def is_program(name: str) -> bool:
    parts = name.split(".")
    return (len(parts) == 2 and parts[0] == "jaxreenact" and parts[1] not in ("__init__",)
            and not (ROOT / "jaxreenact" / parts[1]).is_dir()) or name in EXTRA_PROGRAMS  # fmt: skip


def rank(name: str) -> tuple[int, str]:
    if is_program(name):
        return PROGRAM_RANK, "programs"
    best = (-1, "")
    for i, prefixes in enumerate(LAYERS):
        for pre in prefixes:
            if (name == pre or name.startswith(pre + ".")) and len(pre) > len(best[1]):
                best = (i, pre)
    assert best[0] >= 0, f"{name} is in no layer"
    return best


def imports_of(name: str, path: pathlib.Path, modules: set[str]):
    """[(imported first-party module, line, at module top)]"""
    tree = ast.parse(path.read_text())
    pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(pkg.split(".")[: len(pkg.split(".")) - node.level + 1] + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        for t in targets:
            if t.split(".")[0] not in FIRST_PARTY:
                continue
            while t not in modules and "." in t:
                t = t.rpartition(".")[0]
            if t in modules and t != name:
                out.append((t, node.lineno, id(node) in top))
    return out


def graph():
    files = dict(module_files())
    modules = set(files)
    return {n: imports_of(n, p, modules) for n, p in files.items()}


def test_no_cycles():
    g = {n: {t for t, _, _ in e} for n, e in graph().items()}
    state, stack, cycles = {}, [], []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(g[n]):
            if state.get(m) == 1:
                cycles.append(" -> ".join(stack[stack.index(m) :] + [m]))
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(g):
        if n not in state:
            visit(n)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_layers_and_programs():
    bad = []
    for name, edges in graph().items():
        r, layer = rank(name)
        for t, line, _ in edges:
            rt, tlayer = rank(t)
            if r == PROGRAM_RANK and rt == PROGRAM_RANK:
                bad.append(f"{name}:{line} program imports program {t}")
            elif rt > r:
                bad.append(f"{name}:{line} ({layer}) imports higher layer {t} ({tlayer})")
            elif rt == r and layer != tlayer and r != 0:
                bad.append(f"{name}:{line} ({layer}) imports its sibling layer {t} ({tlayer})")
    assert not bad, "\n".join(bad)


def test_first_party_imports_at_module_top():
    inner = [f"{n}:{line} imports {t} inside a function" for n, e in graph().items() for t, line, top in e if not top]
    assert not inner, "\n".join(inner)


def test_the_checker_sees_violations(tmp_path):
    """The rules above can fail: a synthetic graph with a cycle, an upward import and a program pair is caught."""
    assert rank("jaxreenact.train") == (PROGRAM_RANK, "programs")
    assert rank("jaxreenact.training.loop")[1] == "jaxreenact.training"
    assert (
        rank("jaxreenact.evaluation.metrics")
        < rank("jaxreenact.training.loop")
        < rank("jaxreenact.evaluation.protocol")
    )
    p = tmp_path / "m.py"
    p.write_text("import os\n\ndef f():\n    from jaxreenact.training import loop\n")
    (edge,) = imports_of("jaxreenact.models.x", p, {"jaxreenact.training.loop", "jaxreenact.models.x"})
    assert edge[0] == "jaxreenact.training.loop" and not edge[2]
