"""The persistent compilation cache every program turns on where it starts (`common.cli.parse`,
`common.cli.config_program_inputs`): XLA executables are kept on disk, so a second run of a program with the same
shapes loads them instead of compiling again.

Where (first match wins):
1. `--compile-cache DIR|off` on the command line;
2. the environment variable `JAXREENACT_COMPILE_CACHE` (a folder, or `off`);
3. a cache folder JAX was already given (`JAX_COMPILATION_CACHE_DIR`, or `jax.config` set by the caller, as the
   test suite does): left as it is;
4. the user's cache folder: `$XDG_CACHE_HOME/jaxreenact/jax`, else `~/.cache/jaxreenact/jax`.

Every compilation is kept (no minimum compile time), since a run compiles dozens of small functions whose times add
up. JAX reads the setting at its first compilation, so the setup runs before any network is built.
"""

from __future__ import annotations

import os
import pathlib

import jax

from jaxreenact.common.errors import UserError

ENV = "JAXREENACT_COMPILE_CACHE"
OFF = ("off", "none", "0", "false", "no")


def default_dir() -> pathlib.Path:
    """The user's cache folder for JAX executables."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return pathlib.Path(base) / "jaxreenact" / "jax"


def resolve(flag: str | None) -> pathlib.Path | None:
    """The folder the cache goes to (None: off, or left to a folder JAX was already given; see the module doc)."""
    value = flag if flag not in (None, "") else os.environ.get(ENV)
    if value not in (None, ""):
        return None if value.strip().lower() in OFF else pathlib.Path(value).expanduser()
    if jax.config.jax_compilation_cache_dir:
        return None
    return default_dir()


def setup(flag: str | None = None) -> pathlib.Path | None:
    """Turn the cache on (or off) for this process; returns the folder in use, or None when off. A folder that
    cannot be created is a one-line `UserError`."""
    value = flag if flag not in (None, "") else os.environ.get(ENV)
    off = value is not None and value.strip().lower() in OFF
    folder = resolve(flag)
    if off:
        jax.config.update("jax_enable_compilation_cache", False)
        return None
    if folder is None:  # a folder given to JAX directly is kept
        return pathlib.Path(jax.config.jax_compilation_cache_dir) if jax.config.jax_compilation_cache_dir else None
    source = "--compile-cache" if flag else ENV if os.environ.get(ENV) else "the compile cache"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"{source} {folder}: cannot create the folder ({e.strerror}); give another folder or "
                        "'off'") from None  # fmt: skip
    if not os.access(folder, os.W_OK):
        raise UserError(f"{source} {folder}: not writable; give another folder or 'off'")
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    return folder


FLAG_HELP = (
    f"folder of the persistent compilation cache, or 'off' (default: ${ENV}, else ~/.cache/jaxreenact/jax or "
    "$XDG_CACHE_HOME/jaxreenact/jax); a second run with the same shapes skips compiling"
)
