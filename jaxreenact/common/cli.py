"""The one flag convention of the programs, and what every program does before its work.

Flags, everywhere: `--out` (a folder or file the program writes) or `--workdir` (a training/evaluation folder that
resumes), `--batch-size`, `--seed`, `--no-progress`, `--tiny`, `--verbose`. Old spellings (`--batch`,
`--no_progress`, `--batch_size`) still work as hidden aliases. Errors are one line and exit 2
(`jaxreenact.common.errors.cli_main`, `run_config_program`).

* `setup_logging`: absl, Orbax and JAX INFO logging off unless `--verbose`; the library's own `jaxreenact` loggers
  print their INFO lines (e.g. the one line when networks start loading) as plain lines on stderr.
* `shipped_path` / `input_path`: a relative path under `jaxreenact/` or `configs/` that is not found in the
  current folder is taken from the installed package, so the README's commands run from any folder; the word
  `example` names the shipped example inputs (`EXAMPLE_SOURCE`, `EXAMPLE_DRIVING`).
* `run_config_program`: the absl + ml_collections programs (train, evaluate): `--config=configs/x.py[:variant]`
  resolved as above, the variant and every `--config.a.b=V` override checked against the loaded config (with a
  suggestion for a misspelled field), `--tiny`, `--seed`, `--batch-size` mapped onto the config, and every
  mistake in one line before anything is created.
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import logging
import pathlib
import sys

from absl import app, flags
from absl import logging as absl_logging
from tqdm import tqdm

import jaxreenact
from jaxreenact.common import compile_cache, precision, preemption
from jaxreenact.common.errors import UserError, program_name

PACKAGE = pathlib.Path(jaxreenact.__file__).resolve().parent
ROOT = PACKAGE.parent  # the folder holding jaxreenact/ and configs/ (the repository, or site-packages)
SHIPPED_TOPS = ("jaxreenact", "configs")
EXAMPLES = PACKAGE / "resources" / "examples"
EXAMPLE_SOURCE = EXAMPLES / "source_0002775.png"
EXAMPLE_DRIVING = EXAMPLES / "driving_lWOTF8SdzJw_2614-2801.mp4"
EXAMPLE_WORD = "example"

TINY_HELP = (
    "TESTS AND DEMOS ONLY: small random-weight networks (and a fake face locator) instead of the converted weights; "
    "needs no files, the pictures mean nothing"
)
QUIET_LOGGERS = ("jax", "jax._src", "absl", "orbax", "tensorflow", "tensorboardX", "etils", "matplotlib")


# --------------------------------------------------------------------------------------------------- logging
class _TqdmHandler(logging.Handler):
    """Plain lines on stderr, written around any progress bar (`tqdm.write`) so the bar is not broken."""

    def emit(self, record):
        try:
            tqdm.write(self.format(record), file=sys.stderr)
        except Exception:  # pragma: no cover - logging must never raise
            self.handleError(record)


def setup_logging(verbose: bool = False) -> None:
    """Quiet third-party INFO logging unless `verbose`; `jaxreenact.*` INFO lines go to stderr as plain lines."""
    level = logging.INFO if verbose else logging.WARNING
    absl_logging.set_verbosity(absl_logging.INFO if verbose else absl_logging.WARNING)
    logging.getLogger().setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(level)
    ours = logging.getLogger("jaxreenact")
    ours.setLevel(logging.INFO)
    if not any(getattr(h, "_jaxreenact", False) for h in ours.handlers):
        h = _TqdmHandler()
        h.setFormatter(logging.Formatter("%(message)s"))
        h._jaxreenact = True
        ours.addHandler(h)
    ours.propagate = bool(verbose)  # with --verbose the root handlers (absl's) show them with their prefixes
    if verbose:
        ours.handlers = [h for h in ours.handlers if not getattr(h, "_jaxreenact", False)]


# ------------------------------------------------------------------------------------------------------ paths
def shipped_path(path) -> pathlib.Path:
    """`path` as given when it exists; else, for a relative path under jaxreenact/ or configs/, the same path in
    the installed package (so `jaxreenact/resources/examples/...` and `configs/mixed.py` work from any folder)."""
    p = pathlib.Path(path).expanduser()
    if p.exists() or p.is_absolute() or not p.parts or p.parts[0] not in SHIPPED_TOPS:
        return p
    q = ROOT / p
    return q if q.exists() else p


def input_path(value, example: pathlib.Path) -> str:
    """A user's input path: `example` names the shipped example, a shipped relative path resolves from anywhere."""
    if value is None:
        return None
    if str(value) == EXAMPLE_WORD:
        return str(example)
    return str(shipped_path(value))


# ---------------------------------------------------------------------------------------------- argparse side
def add_run_flags(p: argparse.ArgumentParser, tiny: bool = True, seed_help: str | None = None) -> None:
    """--seed, --no-progress, --verbose (and --tiny): what every program on the networks takes."""
    p.add_argument("--seed", type=int, default=0, help=seed_help or "random seed (of the --tiny networks, of sampling)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--no_progress", action="store_true", dest="no_progress", help=argparse.SUPPRESS)
    p.add_argument("--verbose", action="store_true", help="show the JAX/absl/Orbax INFO logging")
    p.add_argument("--compile-cache", metavar="DIR|off", help=compile_cache.FLAG_HELP)
    if tiny:
        p.add_argument("--tiny", action="store_true", help=TINY_HELP)
    stated = precision.program_default(p.prog)
    p.add_argument("--precision", choices=precision.POLICIES, default=None,
                   help=f"matmul precision of the networks (default {stated}; docs/precision.md)")  # fmt: skip


def add_batch_flag(p: argparse.ArgumentParser, default: int, help: str) -> None:
    """--batch-size N (hidden aliases --batch, --batch_size)."""
    p.add_argument("--batch-size", type=int, default=default, metavar="N", help=f"{help} (default {default})")
    for alias in ("--batch", "--batch_size"):
        p.add_argument(alias, type=int, dest="batch_size", help=argparse.SUPPRESS)


TUNE_STEPS = 200  # the authors' generator tuning steps


def add_tune_flags(p: argparse.ArgumentParser, what: str = "the source", default_on: bool = True) -> None:
    """--no-tune (tuning on by default) or --tune (off by default), and --tune-steps; read them with `tuning`."""
    if default_on:
        p.add_argument("--no-tune", action="store_true", help=f"skip generator tuning of {what} (on by default)")
        also = ""
    else:
        p.add_argument("--tune", action="store_true", help=f"tune the generator on {what} first (off by default)")
        also = "; given alone, it turns tuning on"
    p.add_argument("--tune-steps", type=int, default=None, metavar="N",
                   help=f"generator tuning steps (default {TUNE_STEPS}, the authors'){also}")  # fmt: skip


def tuning(a: argparse.Namespace) -> tuple[bool, int]:
    """(tune, steps) of the flags of `add_tune_flags`. `--tune-steps N` never does nothing silently: where tuning is
    off by default it turns it on, and with `--no-tune` it is an error."""
    steps = TUNE_STEPS if a.tune_steps is None else a.tune_steps
    if a.tune_steps is not None and a.tune_steps < 0:
        raise UserError(f"--tune-steps {a.tune_steps}: must be 0 or more")
    if hasattr(a, "no_tune"):
        if a.no_tune and a.tune_steps is not None:
            raise UserError(f"--no-tune and --tune-steps {a.tune_steps}: tuning is off, so its steps do nothing; "
                            "drop one of them")  # fmt: skip
        return not a.no_tune, steps
    return bool(a.tune or a.tune_steps is not None), steps


def unknown_flags(p: argparse.ArgumentParser, argv: list[str]) -> list[str]:
    """One message per `--flag` of `argv` that `p` does not know (nor abbreviates), with the closest known flag.
    Checked before argparse parses: it would first complain about the required flag the typo was meant to be."""
    known = sorted({s for a in p._actions if a.help != argparse.SUPPRESS for s in a.option_strings if s[:2] == "--"})
    every = {s for a in p._actions for s in a.option_strings}
    out = []
    for tok in argv:
        if tok == "--":
            break
        name = tok.split("=", 1)[0]
        if not name.startswith("--") or name in every or any(k.startswith(name) for k in every):
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        out.append(f"unknown flag {name}" + (f": did you mean {close[0]}?" if close else " (see --help)"))
    return out


def parse(p: argparse.ArgumentParser, argv=None) -> argparse.Namespace:
    """Parse the flags (an unknown or mistyped flag is an error with a suggestion), set up logging (`--verbose`),
    the compilation cache (`--compile-cache`) and the matmul precision (`--precision`)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    bad = unknown_flags(p, argv)
    if bad:
        p.error("; ".join(bad))
    a = p.parse_args(argv)
    setup_logging(getattr(a, "verbose", False))
    compile_cache.setup(getattr(a, "compile_cache", None))
    if hasattr(a, "precision"):  # stated, never the backend's (or a caller's) default
        a.precision = precision.set_default(a.precision or precision.program_default(p.prog))
    return a


def folder_entries(path) -> str:
    """`PATH/: a, b/, c`: what a program's own folder (a training or evaluation workdir) holds, for its last line."""
    p = pathlib.Path(path)
    names = sorted(e.name + ("/" if e.is_dir() else "") for e in p.iterdir()) if p.is_dir() else []
    return f"{p}/: {', '.join(names)}"


def check_out_dir(path, flag: str = "--out") -> pathlib.Path:
    """An output folder that may not exist yet: not a file, and no file where one of its parents should be."""
    p = pathlib.Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"{flag} {p}: is a file, not a folder; give a new or an existing folder")
    for parent in p.absolute().parents:
        if parent.exists():
            if not parent.is_dir():
                raise UserError(f"{flag} {p}: {parent} is a file, so the folder cannot be made there")
            break
    return p


def check_out_file(path, flag: str = "--out") -> pathlib.Path:
    p = pathlib.Path(path)
    if p.is_dir():
        raise UserError(f"{flag} {p}: is a folder; give a file name")
    check_out_dir(p.parent, flag)
    return p


# --------------------------------------------------------------------------------- absl + ml_collections side
def _config_fields(c, prefix: str = "") -> list[str]:
    out = []
    for k in c.keys():
        v = c[k]
        name = f"{prefix}{k}"
        out.append(name)
        if hasattr(v, "keys") and hasattr(v, "lock"):
            out += _config_fields(v, name + ".")
    return out


def _has_field(c, dotted: str) -> bool:
    obj = c
    for part in dotted.split("."):
        if not hasattr(obj, "keys") or part not in obj.keys():
            return False
        obj = obj[part]
    return True


def _load_config(path: pathlib.Path, variant: str | None, shown: str):
    """Import a config file and call its `get_config` as ml_collections does; errors -> UserError."""
    if path.parent.name == "configs" and (path.parent / "__init__.py").is_file():
        spec = importlib.util.find_spec("configs") if "configs" not in sys.modules else sys.modules["configs"].__spec__
        here = {str(pathlib.Path(s).resolve()) for s in (spec.submodule_search_locations or [])} if spec else set()
        if str(path.parent.resolve()) not in here:  # make `from configs import common` find this file's package
            sys.path.insert(0, str(path.parent.parent))
            sys.modules.pop("configs", None)
    spec = importlib.util.spec_from_file_location(f"_jaxreenact_config_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except Exception as e:
        raise UserError(f"--config={shown}: the config file fails to load ({type(e).__name__}: {e})") from None
    if not hasattr(mod, "get_config"):
        raise UserError(f"--config={shown}: not a config file (no get_config function)")
    try:
        return mod.get_config(variant) if variant is not None else mod.get_config()
    except ValueError as e:
        raise UserError(f"--config={shown}: {e}") from None
    except Exception as e:
        raise UserError(f"--config={shown}: get_config failed ({type(e).__name__}: {e})") from None


def _take_value(argv: list[str], i: int, name: str) -> tuple[str | None, int]:
    """The value of `--name=V` or `--name V` at argv[i]; (None, i) when argv[i] is not that flag."""
    a = argv[i]
    if a == f"--{name}":
        if i + 1 >= len(argv):
            raise UserError(f"--{name}: needs a value")
        return argv[i + 1], i + 2
    if a.startswith(f"--{name}="):
        return a.split("=", 1)[1], i + 1
    return None, i


def prepare_config_argv(argv: list[str], prog: str, batch_field: str) -> list[str]:
    """Check and rewrite the argv of a config program (see the module doc); `UserError` on any mistake."""
    argv = list(argv)
    out, i = [argv[0]], 1
    config_val = None
    tiny = False
    mapped: list[str] = []
    overrides: list[str] = []
    while i < len(argv):
        a = argv[i]
        if a == "--":
            out += argv[i:]
            break
        if a in ("--no_progress", "--nono_progress"):
            out.append(a.replace("no_progress", "no-progress"))
            i += 1
            continue
        if a in ("--tiny", "--tiny=true", "--tiny=True"):
            tiny = True
            i += 1
            continue
        v, j = _take_value(argv, i, "config")
        if v is not None:
            config_val, i = v, j
            continue
        v, j = _take_value(argv, i, "precision")
        if v is not None:
            mapped.append(f"--config.precision={precision.check(v)}")
            i = j
            continue
        for name, field in (("batch-size", batch_field), ("batch_size", batch_field), ("seed", "seed")):
            v, j = _take_value(argv, i, name)
            if v is not None:
                try:
                    int(v)
                except ValueError:
                    raise UserError(f"--{name}={v}: not an integer") from None
                mapped.append(f"--config.{field}={v}")
                i = j
                break
        else:
            if a.startswith("--config."):
                overrides.append(a[len("--config.") :].split("=", 1)[0])
            out.append(a)
            i += 1
    if config_val is None:
        return out + mapped + (["--tiny"] if tiny else [])
    path_s, sep, variant = config_val.partition(":")
    variant = variant if sep else None
    if tiny:
        if variant not in (None, "", "tiny"):
            raise UserError(f"--tiny and --config={config_val}: two variants; use one")
        variant = "tiny"
    path = shipped_path(path_s)
    shown = path_s + (f":{variant}" if variant is not None else "")
    if not path.is_file():
        shipped = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "configs").glob("*.py")
                         if p.name not in ("__init__.py", "common.py"))  # fmt: skip
        close = difflib.get_close_matches(pathlib.Path(path_s).as_posix(), shipped, n=1, cutoff=0.6)
        hint = f"did you mean --config={close[0]}{sep}{variant or ''}? " if close else ""
        what = "is a folder, not a config file" if path.is_dir() else "no such config file"
        raise UserError(f"--config={path_s}: {what}; {hint}the shipped configs are {', '.join(shipped)}")
    config = _load_config(path, variant, shown)
    fields = _config_fields(config)
    for name in overrides + [m[len("--config.") :].split("=", 1)[0] for m in mapped]:
        if not _has_field(config, name):
            close = difflib.get_close_matches(name, fields, n=1, cutoff=0.6)
            hint = f"did you mean --config.{close[0]}?" if close else f"see the fields of {path_s}"
            raise UserError(f"--config.{name}: no such config field in {shown}; {hint}")
    value = str(path) + (f":{variant}" if variant is not None else "")
    return out[:1] + [f"--config={value}"] + out[1:] + mapped + (["--tiny"] if tiny else [])


def _one_line(e: Exception) -> str:
    """An absl / ml_collections flag error as one line (no traceback text, no help hint)."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    skip = ("Traceback", "File ", "^", "Pass --help", "raise ", "return ")
    useful = [ln for ln in lines if not ln.startswith(skip)] or [type(e).__name__]
    return " ".join(useful)[:400]


def define_config_flags(config_help: str, workdir_help: str, batch_field: str):
    """The flags of a config program; returns (config, workdir, no_progress, verbose) flag holders."""
    from ml_collections import config_flags

    config = config_flags.DEFINE_config_file("config", None, config_help)
    workdir = flags.DEFINE_string("workdir", None, workdir_help)
    flags.DEFINE_integer("batch-size", None, f"the batch size (= --config.{batch_field})")
    flags.DEFINE_integer("seed", None, "the random seed (= --config.seed)")
    flags.DEFINE_enum("precision", None, precision.POLICIES, "matmul precision (= --config.precision)")
    flags.DEFINE_bool("tiny", False, "the :tiny variant of the config. " + TINY_HELP)
    no_progress = flags.DEFINE_bool("no-progress", False, "no progress bar")
    verbose = flags.DEFINE_bool("verbose", False, "show the JAX/absl/Orbax INFO logging")
    flags.DEFINE_string("compile-cache", None, compile_cache.FLAG_HELP)
    return config, workdir, no_progress, verbose


def workdir_path(value, usage: str) -> pathlib.Path:
    """--workdir: given, not a file, creatable."""
    if not value:
        raise UserError(f"--workdir is missing; usage: {usage}")
    return check_out_dir(value, "--workdir")


def config_program_inputs(usage: str, config_flag, workdir_flag, verbose_flag):
    """(config, workdir) of a config program's flags, after setting up its logging; one line for a missing one."""
    setup_logging(verbose_flag.value)
    compile_cache.setup(flags.FLAGS["compile-cache"].value)
    if config_flag.value is None:
        raise UserError(f"--config is missing; usage: {usage}")
    config = config_flag.value
    # The config states the policy (configs/common.py, configs/eval.py); the program's stated one if it does not.
    precision.set_default(precision.check(config.get("precision", None) or precision.program_default(usage.split()[2]),
                                          "--config.precision"))  # fmt: skip
    return config, workdir_path(workdir_flag.value, usage)


def run_config_program(main, batch_field: str, argv=None) -> None:
    """`absl.app.run(main)` with the config program's checks: every mistake of the command line is one line on
    stderr and exit status 2, before `main` (and so before anything is created)."""
    prog = program_name(main)

    def fail(msg: str):
        print(f"error ({prog}): {msg}", file=sys.stderr)
        raise SystemExit(2)

    def parser(args):
        try:
            args = prepare_config_argv(args, prog, batch_field)
            sys.argv = list(args)  # ml_collections finds the --config.* overrides to define in sys.argv
            return flags.FLAGS(args)
        except UserError as e:
            fail(str(e))
        except flags.UnrecognizedFlagError as e:  # absl's own wording names no dashes; say it as the others do
            names = [n for n in flags.FLAGS if "." not in n]
            close = difflib.get_close_matches(e.flagname, names, n=1, cutoff=0.6)
            fail(f"unknown flag --{e.flagname}: " + (f"did you mean --{close[0]}?" if close else
                 f"see python -m {prog} --help"))  # fmt: skip
        except flags.Error as e:
            fail(_one_line(e))

    def guarded(args):
        try:
            with preemption.raise_on_sigterm():  # SIGTERM, like Ctrl-C, ends in one line (143 / 130)
                return main(args)
        except UserError as e:
            fail(str(e))
        except KeyboardInterrupt as e:
            print(f"{prog}: {preemption.message(e)}", file=sys.stderr)
            raise SystemExit(preemption.exit_code(e)) from None

    app.run(guarded, argv=argv, flags_parser=parser)
