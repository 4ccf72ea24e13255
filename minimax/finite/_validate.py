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


def check_tol(tol: object, field: str = "tol") -> float:
    """Return ``tol`` as a float if it is a finite real number > 0, else raise."""
    ok = isinstance(tol, int | float | np.integer | np.floating) and not isinstance(tol, bool)
    if not (ok and np.isfinite(tol) and tol > 0):
        raise GameSpecError(
            f"{field} must be a finite number > 0 (an exploitability in the units of the payoffs); "
            f"got {tol!r}."
        )
    return float(tol)


def same_shape(a: np.ndarray, b: np.ndarray, field_a: str, field_b: str) -> None:
    """Raise unless two checked matrices have the same shape."""
    if a.shape != b.shape:
        raise GameSpecError(
            f"{field_a} has shape {a.shape} but {field_b} has shape {b.shape}; both payoff "
            f"matrices must be indexed by the same (defender rows, attacker columns)."
        )


def _as_array(value: object, field: str, *, ndim: int, shape_text: str) -> np.ndarray:
    _refuse_complex(value, field)
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


def _refuse_complex(value: object, field: str) -> None:
    """Raise on complex input instead of letting numpy drop the imaginary parts with a warning."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError):
        return  # not array-like: the float64 conversion below raises the named error
    if raw.dtype.kind == "O":  # lists mixing Python complex numbers with other objects
        bad = [v for v in raw.ravel() if isinstance(v, complex | np.complexfloating)]
        if not bad:
            return
        raw = np.asarray(bad)
    if raw.dtype.kind != "c":
        return
    imag = np.imag(raw)
    where = tuple(int(i) for i in np.argwhere(imag != 0)[0]) if np.any(imag != 0) else None
    at = (f"; {field}[{', '.join(map(str, where))}] = {complex(raw[where])!r}"
          if where is not None and raw.ndim else "")
    raise GameSpecError(
        f"{field} must be real (payoffs are real numbers); got a complex array of dtype "
        f"{raw.dtype}{at}. Pass the real part explicitly (np.real(A)) if that is what you mean."
    )


def as_options(options: object, record: type, label: str):
    """``options`` as a ``record`` (a NamedTuple of settings): None gives the defaults, a dict
    its fields (unknown keys are a named error naming the allowed ones)."""
    if options is None:
        return record()
    if isinstance(options, dict):
        unknown = set(options) - set(record._fields)
        if unknown:
            raise GameSpecError(f"options: unknown {label} option(s) {sorted(unknown)}; allowed "
                                f"are {list(record._fields)}.")
        options = record(**options)
    if not isinstance(options, record):
        raise GameSpecError(f"options must be None, an {record.__name__} or a dict; got "
                            f"{type(options).__name__}.")
    return options
