"""Input checks for payoff matrices, done once on the host before any solver runs.

Every failure raises :class:`minimax.errors.GameSpecError` naming the field, the offending value
(or its position), what is allowed and how to fix it.
"""

from __future__ import annotations

import numpy as np

from minimax.errors import GameSpecError


def as_matrix(value: object, field: str) -> np.ndarray:
    """Return ``value`` as a C-contiguous float64 (m, n) array with m, n >= 1 and finite entries."""
    return _as_array(value, field, ndim=2, shape_text="(m, n)")


def as_batch(value: object, field: str) -> np.ndarray:
    """Return ``value`` as a float64 (batch, m, n) array with every size >= 1 and finite entries."""
    return _as_array(value, field, ndim=3, shape_text="(batch, m, n)")


def same_shape(a: np.ndarray, b: np.ndarray, field_a: str, field_b: str) -> None:
    """Raise unless two checked matrices have the same shape."""
    if a.shape != b.shape:
        raise GameSpecError(
            f"{field_a} has shape {a.shape} but {field_b} has shape {b.shape}; both payoff "
            f"matrices must be indexed by the same (defender rows, attacker columns)."
        )


def _as_array(value: object, field: str, *, ndim: int, shape_text: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise GameSpecError(
            f"{field} must be a numeric array of shape {shape_text}; got {type(value).__name__} "
            f"that numpy cannot convert to float64 ({err}). Pass a list of equal-length rows or "
            f"a numpy array."
        ) from err
    if arr.ndim != ndim:
        hint = " Add a leading axis (A[None]) for a batch of one." if ndim == 3 else ""
        raise GameSpecError(
            f"{field} must be {ndim}-D with shape {shape_text}; got a {arr.ndim}-D array of "
            f"shape {arr.shape}.{hint}"
        )
    if arr.size == 0:
        raise GameSpecError(
            f"{field} must have at least one entry along every axis of {shape_text}; got shape "
            f"{arr.shape}. Each player needs at least one pure strategy."
        )
    finite = np.isfinite(arr)
    if not finite.all():
        where = tuple(int(i) for i in np.argwhere(~finite)[0])
        raise GameSpecError(
            f"{field} must contain only finite numbers; {field}[{', '.join(map(str, where))}] = "
            f"{float(arr[where])!r} ({int((~finite).sum())} non-finite entries in total). "
            f"Replace NaN/inf payoffs by finite bounds."
        )
    return np.ascontiguousarray(arr)
