"""On-disk layout of a batched sweep, written so that a crash never loses finished work.

``OUT/chunks/*.jsonl`` hold one JSON row per solved (or failed) point. Each file is written
to a temporary name in the same directory and renamed into place (``os.replace`` is atomic on
POSIX), so a file either exists complete or not at all: an interrupted sweep loses only the
chunks in flight. Finished files are never rewritten; a re-run reads the point ids already
present and solves only the others.

Two runs on one directory are serialised by an exclusive lock on ``OUT/.sweep.lock``
(``fcntl.flock``, released by the kernel when its holder exits, even on ``kill -9``): the
second waits for the first and then resumes, so it solves only what the first left undone
(whatever its ``chunk_size``), never a point twice.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger("minimax.sweep")

CHUNKS = "chunks"
LOCK = ".sweep.lock"
_TMP = ".tmp-"


@contextlib.contextmanager
def locked(out_dir: str | Path) -> Iterator[Path]:
    """Hold the exclusive lock of a sweep directory; wait (logging who holds it) if taken."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock, say so once
        log.warning("sweep: no fcntl on this platform; do not run two sweeps on one directory")
        yield Path(out_dir)
        return
    path = Path(out_dir) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            log.warning("sweep: %s is in use by another run (%s); waiting for it to finish, "
                        "then resuming", out_dir, holder)
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError as err:  # e.g. a file system without locks (some NFS mounts)
            log.warning("sweep: cannot lock %s (%s); do not run two sweeps on it at once",
                        path, err)
            yield path
            return
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {socket.gethostname()} since "
                 f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        try:
            yield path
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


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
    """All rows of the given chunk files, in file order (a point may appear twice only in
    directories written before runs were locked; readers keep its first row)."""
    rows = []
    for p in paths:
        with open(p) as fh:
            rows.extend(json.loads(line) for line in fh if line.strip())
    return rows


def done_ids(out_dir: str | Path) -> set[str]:
    """Ids of the points that already have a row (solved or failed) in ``out_dir``."""
    return {row["point_id"] for row in read_rows(chunk_files(out_dir))}
