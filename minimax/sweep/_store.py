"""On-disk layout of a batched sweep, written so that a crash never loses finished work.

``OUT/chunks/*.jsonl`` hold one JSON row per solved (or failed) point. Each file is written
to a temporary name in the same directory and renamed into place (``os.replace`` is atomic on
POSIX), so a file either exists complete or not at all: an interrupted sweep loses only the
chunks in flight. Finished files are never rewritten; a re-run reads the point ids already
present and solves only the others.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

CHUNKS = "chunks"
_TMP = ".tmp-"


def chunk_dir(out_dir: str | Path) -> Path:
    return Path(out_dir) / CHUNKS


def write_rows_atomic(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Write ``rows`` as JSON lines to ``path`` via a temporary file and an atomic rename.

    Refuses to replace an existing file (finished results are never overwritten).
    """
    if path.exists():
        raise FileExistsError(f"sweep: {path} already exists; finished chunks are never rewritten")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{_TMP}{os.getpid()}-{path.name}")
    with open(tmp, "w") as fh:
        for row in rows:
            fh.write(json.dumps(row) + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path


def chunk_files(out_dir: str | Path) -> list[Path]:
    """Finished chunk files of a sweep directory (temporary files of a crashed run excluded)."""
    d = chunk_dir(out_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.glob("*.jsonl") if not p.name.startswith(_TMP))


def remove_stale_temporaries(out_dir: str | Path) -> int:
    """Delete temporary files left by a killed run (never a finished chunk); returns how many."""
    d = chunk_dir(out_dir)
    stale = list(d.glob(f"{_TMP}*")) if d.is_dir() else []
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)


def read_rows(paths: Iterable[Path]) -> list[dict[str, Any]]:
    """All rows of the given chunk files, in file order."""
    rows = []
    for p in paths:
        with open(p) as fh:
            rows.extend(json.loads(line) for line in fh if line.strip())
    return rows


def done_ids(out_dir: str | Path) -> set[str]:
    """Ids of the points that already have a row (solved or failed) in ``out_dir``."""
    return {row["point_id"] for row in read_rows(chunk_files(out_dir))}
