"""Cache directory for locally built models, keyed by a hash of the build config."""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from minimax.runtime import cache_root


def cache_dir() -> Path:
    """``minimax.runtime.cache_root()`` (created if missing); with ``MINIMAX_CACHE=off``, a
    temporary directory of this process, removed when it exits, so nothing is kept."""
    root = cache_root()
    if root is None:
        return _scratch_dir()
    root.mkdir(parents=True, exist_ok=True)
    return root


@functools.cache
def _scratch_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="minimax-cache-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def config_hash(config: dict[str, Any]) -> str:
    """Stable 16-hex-digit hash of a JSON-serialisable config."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
