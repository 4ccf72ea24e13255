"""Reading payoff matrices from disk (CSV or NumPy ``.npy``)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from minimax.errors import GameSpecError
from minimax.finite._validate import as_matrix

SUFFIXES = (".csv", ".npy")


def load_matrix(path: str | os.PathLike[str]) -> np.ndarray:
    """Read a payoff matrix from a ``.csv`` (comma-separated, no header; ``#`` comments allowed)
    or ``.npy`` file into a finite float64 (m, n) array.

    A single CSV row or column is read as a 1 x n or m x 1 matrix.

    Raises:
      GameSpecError: ``path`` is not a path, the file is missing, has another suffix, cannot be
        parsed, or does not hold a finite, non-empty, real 2-D numeric matrix (complex ``.npy``
        arrays are refused, not truncated). The message names the path.

    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "rps.csv"
    >>> _ = p.write_text("0,1,-1\\n-1,0,1\\n1,-1,0\\n")
    >>> load_matrix(p).shape
    (3, 3)
    """
    if not isinstance(path, str | os.PathLike):
        raise GameSpecError(
            f"path must be a file name (str or os.PathLike) ending in one of {SUFFIXES}; got "
            f"{path!r} of type {type(path).__name__}."
        )
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix not in SUFFIXES:
        raise GameSpecError(
            f"path must end in one of {SUFFIXES}; got {str(p)!r} (suffix {suffix!r}). Save the "
            f"matrix with numpy.save or as comma-separated rows."
        )
    if not p.is_file():
        raise GameSpecError(f"path {str(p)!r} does not exist or is not a file.")
    try:
        if suffix == ".npy":
            raw = np.load(p, allow_pickle=False)
        else:
            raw = np.loadtxt(p, delimiter=",", dtype=np.float64, ndmin=2, comments="#")
    except (OSError, ValueError, TypeError) as err:
        raise GameSpecError(
            f"could not read a numeric matrix from {str(p)!r}: {err}. CSV files need the same "
            f"number of comma-separated numbers on every row and no header."
        ) from err
    return as_matrix(raw, f"matrix in {str(p)!r}")
