"""Cache directory for locally built models, keyed by a hash of the build config."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """``$MINIMAX_CACHE`` if set, else ``~/.cache/minimax`` (never inside the repository)."""
    root = os.environ.get("MINIMAX_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "minimax"
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_hash(config: dict[str, Any]) -> str:
    """Stable 16-hex-digit hash of a JSON-serialisable config."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
