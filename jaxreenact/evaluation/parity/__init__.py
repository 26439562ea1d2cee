"""Parity of the port against golden folders (upstream PyTorch outputs on fixed inputs with random weights).

    results = check_folders(["../shared/golden/stylegan2_vox256"], weights_dir=None)

For each folder: read `spec.json`, `inputs.npz`, `expected.npz` (`spec.read_folder`); build the port's networks
from the checkpoints the spec names (regenerated with the harness's `regen.py` into a temporary folder, or found
in `weights_dir` by the spec's file names; converted with `converters.<name>.load_torch`); run the kind's runner
(`registry.KINDS`: `kind -> run(spec, inputs, expected, networks) -> rows`) on the inputs; one `Row` per expected
array (`report`). Every folder is read before any is run, so a broken folder fails fast. Computation runs at
float32 with the highest matmul precision, as the tolerances assume.
"""

from __future__ import annotations

import dataclasses
import pathlib
import textwrap

import jax

from jaxreenact.common.errors import UserError
from jaxreenact.evaluation.parity import networks as _networks  # noqa: F401  (registers the network kinds)
from jaxreenact.evaluation.parity import pipelines as _pipelines  # noqa: F401  (registers the pipeline kinds)
from jaxreenact.evaluation.parity.registry import HINTS, KINDS, NotYet, register
from jaxreenact.evaluation.parity.report import Row, compare, format_rows
from jaxreenact.evaluation.parity.spec import Checkpoints, Folder, components, read_folder

__all__ = ["KINDS", "FolderResult", "Row", "check_folder", "check_folders", "compare", "read_folder", "register"]


@dataclasses.dataclass
class FolderResult:
    folder: Folder
    rows: list[Row]
    not_checked: str = ""  # why the folder's kind could not be checked (a kind without a runner yet)
    hint: str = ""  # the kind's reading of its failures (registry.HINTS), printed under the table

    @property
    def ok(self) -> bool:
        return not self.not_checked and all(r.ok for r in self.rows)

    def format(self) -> str:
        title = f"{self.folder.path} ({self.folder.kind})"
        if self.not_checked:
            return f"{title}\n  NOT CHECKED: {self.not_checked}"
        table = format_rows(title, self.rows)
        return table + (
            "\n" + textwrap.fill(self.hint, 118, initial_indent="  note: ", subsequent_indent=" " * 8)
            if self.hint
            else ""
        )


def check_folder(folder: Folder, weights_dir=None, tmp_root=None, shared=None) -> FolderResult:
    """One folder's rows. `shared`: a dict of conversions reused across folders (see `networks.Networks`)."""
    run = KINDS[folder.kind]
    with Checkpoints(weights_dir, tmp_root) as ckpt, jax.default_matmul_precision("highest"):
        nets = _networks.Networks(components(folder), ckpt, shared)
        try:
            rows = run(folder.spec, folder.inputs, folder.expected, nets)
        except NotYet as e:
            return FolderResult(folder, [], str(e))
    hint = HINTS.get(folder.kind)
    return FolderResult(folder, rows, hint=hint(rows) if hint else "")


def check_folders(paths, weights_dir=None, tmp_root=None, echo=None) -> list[FolderResult]:
    """Check every folder (all read first); `echo(text)` gets each folder's table as it finishes."""
    folders = [read_folder(p, KINDS) for p in paths]
    if weights_dir is not None and not pathlib.Path(weights_dir).is_dir():
        raise UserError(f"--weights {weights_dir}: no such directory")
    missing = []
    for f in folders:
        comps = components(f)  # a missing sibling spec (direction_matrix's generator) fails before any work
        if weights_dir is not None:
            missing += [f"{e['file']} ({c.name} of {f.name})" for c, e in _networks.required_files(comps)
                        if not (pathlib.Path(weights_dir) / e["file"]).is_file()]  # fmt: skip
    if missing:
        raise UserError(f"--weights {weights_dir}: missing {', '.join(dict.fromkeys(missing))}")
    out, shared = [], {}
    for f in folders:
        r = check_folder(f, weights_dir, tmp_root, shared)
        if echo is not None:
            echo(r.format())
        out.append(r)
    return out
