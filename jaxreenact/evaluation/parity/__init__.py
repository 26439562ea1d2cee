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

import contextlib
import dataclasses
import pathlib
import shutil
import tempfile
import time

import jax
from jax.experimental.compilation_cache import compilation_cache

from jaxreenact.common.errors import UserError
from jaxreenact.evaluation.parity import networks as _networks  # noqa: F401  (registers the network kinds)
from jaxreenact.evaluation.parity import pipelines as _pipelines  # noqa: F401  (registers the pipeline kinds)
from jaxreenact.evaluation.parity.registry import KINDS, NotYet, register
from jaxreenact.evaluation.parity.report import Row, compare, format_rows, progress, progress_to
from jaxreenact.evaluation.parity.spec import Checkpoints, Folder, components, read_folder

__all__ = ["KINDS", "FolderResult", "Row", "check_folder", "check_folders", "compare", "golden_paths", "read_folder",
           "register"]  # fmt: skip


@dataclasses.dataclass
class FolderResult:
    folder: Folder
    rows: list[Row]
    not_checked: str = ""  # why the folder's kind could not be checked (a kind without a runner yet)
    port_s: tuple[float, float] | None = None  # the port's (first, second) run of the kind, for a timed folder

    @property
    def ok(self) -> bool:
        return not self.not_checked and all(r.ok for r in self.rows)

    def format(self) -> str:
        title = f"{self.folder.path} ({self.folder.kind})"
        if self.not_checked:
            return f"{title}\n  NOT CHECKED: {self.not_checked}"
        return format_rows(title, self.rows) + self.format_times()

    def format_times(self) -> str:
        """Beside the authors' recorded time (a folder written by `parity record`), the port's on these inputs."""
        t = self.folder.spec.get("timing")
        if not isinstance(t, dict) or self.port_s is None:
            return ""
        first, second = self.port_s
        dev = jax.devices()[0]
        return (f"\n  time: authors' code {t.get('authors_s', float('nan')):.3f} s ({t.get('what', 'the recorded call')}; "
                f"{t.get('device', 'device not recorded')}); port {second:.3f} s on {dev.platform}:{dev.device_kind} "
                f"(its second run, programs compiled; the first, converting and compiling, {first:.3f} s)")  # fmt: skip


def check_folder(folder: Folder, weights_dir=None, tmp_root=None, shared=None) -> FolderResult:
    """One folder's rows. `shared`: a dict of conversions reused across folders (see `networks.Networks`)."""
    run = KINDS[folder.kind]
    timed = isinstance(folder.spec.get("timing"), dict)
    with Checkpoints(weights_dir, tmp_root) as ckpt, jax.default_matmul_precision("highest"):
        nets = _networks.Networks(components(folder), ckpt, shared)
        try:
            t0 = time.perf_counter()
            rows = run(folder.spec, folder.inputs, folder.expected, nets)
            first = time.perf_counter() - t0
            if timed:  # again, for the port's time: networks converted, XLA programs from the compilation cache
                progress("timing a second run")
                t0 = time.perf_counter()
                jax.block_until_ready(run(folder.spec, folder.inputs, folder.expected, nets))
                return FolderResult(folder, rows, port_s=(first, time.perf_counter() - t0))
        except NotYet as e:
            return FolderResult(folder, [], str(e))
    return FolderResult(folder, rows)


def golden_paths(paths, note=None) -> list[pathlib.Path]:
    """The folders among `paths`. An existing file (tests/golden/README.md and regen.py, which a shell glob such as
    `tests/golden/*` brings in) is skipped with `note(text)`; a path that does not exist stays, for `read_folder`
    to report. No folder at all is a `UserError`."""
    out, skipped = [], []
    for p in map(pathlib.Path, paths):
        (skipped if p.is_file() else out).append(p)
    if skipped and note is not None:
        note(f"skipping {', '.join(map(str, skipped))}: file(s), not golden folders")
    if not out:
        raise UserError(f"{', '.join(map(str, paths))}: no golden folder given (a folder holds spec.json, inputs.npz, "
                        "expected.npz)")  # fmt: skip
    return out


@contextlib.contextmanager
def _compilation_cache(tmp_root):
    """A persistent XLA compilation cache for the block (unless one is set), so that a timed folder's second run
    measures running the port, not compiling it again (its runners re-trace their jitted functions). Undone on
    exit: the settings restored, the cache folder deleted."""
    if jax.config.jax_compilation_cache_dir:
        yield
        return
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")  # fmt: skip
    old = {k: getattr(jax.config, k) for k in keys}
    tmp = tempfile.mkdtemp(prefix="jaxreenact_parity_xla_", dir=tmp_root)
    for k, v in zip(keys, (tmp, 0.0, 0), strict=True):
        jax.config.update(k, v)
    try:
        yield
    finally:
        for k, v in old.items():
            jax.config.update(k, v)
        compilation_cache.reset_cache()
        shutil.rmtree(tmp, ignore_errors=True)


def check_folders(paths, weights_dir=None, tmp_root=None, echo=None, note=None) -> list[FolderResult]:
    """Check every folder (all read first); `echo(text)` gets each folder's table as it finishes, `note(line)` the
    progress lines while a folder runs (None: no progress)."""
    folders = [read_folder(p, KINDS) for p in golden_paths(paths, note)]
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
    timed = any(isinstance(f.spec.get("timing"), dict) for f in folders)
    out, shared = [], {}
    with _compilation_cache(tmp_root) if timed else contextlib.nullcontext():
        for i, f in enumerate(folders):
            with progress_to(note, f"{i + 1}/{len(folders)} {f.name}"):
                progress(f"{f.kind}, {len(f.expected)} arrays")
                r = check_folder(f, weights_dir, tmp_root, shared)
            if echo is not None:
                echo(r.format())
            out.append(r)
    return out
