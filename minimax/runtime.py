"""Process-level settings for long-running jobs: the cache root and JAX's compilation cache.

One cache root serves every cache of the package (:func:`cache_root`): ``$MINIMAX_CACHE``, or
``~/.cache/minimax`` when unset or empty; ``MINIMAX_CACHE=off`` (any case) turns caching off.
Compiling a solver for one game shape takes seconds; the persistent compilation cache in
``<root>/jax`` makes every later process (Hydra jobs, sweeps, tests) reuse it. The validation's
locally built models are cached in ``<root>`` too (:mod:`minimax.validate._cache`).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

_DONE = False
CACHE_ENV = "MINIMAX_CACHE"


def cache_root() -> Path | None:
    """The directory every cache of the package lives under, or None when caching is off.

    ``$MINIMAX_CACHE`` if set and not empty, else ``~/.cache/minimax`` (never inside the
    repository); ``MINIMAX_CACHE=off`` (any case) gives None. Nothing is created here.
    """
    root = os.environ.get(CACHE_ENV, "").strip()
    if root.lower() == "off":
        return None
    return Path(root) if root else Path.home() / ".cache" / "minimax"


def enable_compilation_cache() -> str | None:
    """Turn on the persistent compilation cache in ``cache_root()/jax`` (idempotent); returns
    its directory, or None when caching is off (:func:`cache_root`)."""
    global _DONE
    root = cache_root()
    if root is None:
        return None
    path = str(root / "jax")
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
