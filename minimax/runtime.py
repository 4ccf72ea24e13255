"""Process-level settings for long-running jobs: the cache root and JAX's compilation cache.

One cache root serves every cache of the package (:func:`cache_root`): ``$MINIMAX_CACHE``, or
``~/.cache/minimax`` when unset or empty; ``MINIMAX_CACHE=off`` (any case) turns caching off.
Compiling a solver for one game shape takes seconds; the persistent compilation cache in
``<root>/jax-lru`` makes every later process (Hydra jobs, sweeps, tests) reuse it. Every read and
write of that cache holds a file lock, so processes running side by side (sweep workers, parallel
test runs) never read an entry another process is still writing. The validation's
locally built models are cached in ``<root>`` too (:mod:`minimax.validate._cache`).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

_DONE = False
CACHE_ENV = "MINIMAX_CACHE"
CACHE_MAX_BYTES = 4 * 2**30


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
    """Turn on the persistent compilation cache in ``cache_root()/jax-lru`` (idempotent); returns
    its directory, or None when caching is off (:func:`cache_root`).

    The cache is bounded (``CACHE_MAX_BYTES``, least recently used entries go first). A bound
    is what makes JAX guard every read and write with a file lock; unbounded, an entry is
    written in place without one, and a process reading it mid-write can crash (a segmentation
    fault in deserialisation, seen with two processes compiling the same solver at once).
    """
    global _DONE
    root = cache_root()
    if root is None:
        return None
    path = str(root / "jax-lru")
    if not _DONE:
        Path(path).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
        jax.config.update("jax_compilation_cache_max_size", CACHE_MAX_BYTES)
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
