"""Process-level settings for long-running jobs: JAX's persistent compilation cache.

Compiling a solver for one game shape takes seconds; the cache makes every later process
(Hydra jobs, sweeps, tests) reuse it. Location: ``$MINIMAX_CACHE/jax`` (default
``~/.cache/minimax/jax``); set ``MINIMAX_CACHE=off`` to disable. Called once per process.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

_DONE = False


def enable_compilation_cache() -> str | None:
    """Turn on the persistent compilation cache (idempotent); returns its directory or None."""
    global _DONE
    root = os.environ.get("MINIMAX_CACHE", str(Path.home() / ".cache" / "minimax"))
    if root.lower() == "off":
        return None
    path = str(Path(root) / "jax")
    if not _DONE:
        Path(path).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        _DONE = True
    return path


def conf_dir() -> Path:
    """The ``conf/`` directory of a source checkout (the package is installed editable)."""
    here = Path(__file__).resolve().parent
    for candidate in (here.parent / "conf", here / "conf"):
        if (candidate / "config.yaml").is_file():
            return candidate
    raise FileNotFoundError(
        f"minimax: no conf/ directory found next to {here}; install from a source checkout "
        f"with `pip install -e .` so that the Hydra configs in conf/ are found"
    )
