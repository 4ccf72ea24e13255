"""The status of a sweep point, read from its result rather than guessed from NaNs.

Every row of a sweep or multirun table carries one of

* ``"certified"``: finite bounds with ``lower <= value <= upper`` and the gap within the
  requested tolerance (if any);
* ``"gap_above_tol"``: the same checks hold, but the gap is larger than the tolerance;
* ``"failed"``: no valid answer (invalid point, solver error, violated invariant, killed job);
  the row's ``error`` column says why.

The status comes from the solver's result (its ``status`` and ``reason``). Results that carry no
status (older solvers, older ``result.json`` files) fall back to the rule that finite
``value``/``upper``/``lower``/``gap`` mean certified; rows written before statuses existed
(``"ok"``/``"error"``) are read as ``"certified"``/``"failed"`` by the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

CERTIFIED, GAP_ABOVE_TOL, FAILED = "certified", "gap_above_tol", "failed"
STATUSES = (CERTIFIED, GAP_ABOVE_TOL, FAILED)
ANSWERED = (CERTIFIED, GAP_ABOVE_TOL)  # rows with numbers worth drawing
_NUMBERS = ("value", "upper", "lower", "gap")


def _finite(values: Mapping[str, Any]) -> bool:
    try:
        return all(math.isfinite(float(values[k])) for k in _NUMBERS)
    except (KeyError, TypeError, ValueError):
        return False


def result_status(result: Mapping[str, Any], status: Any = None,
                  reason: Any = None) -> tuple[str, str | None]:
    """``(status, error)`` of one result given as a dict of its numbers.

    ``status``/``reason`` are what the solver reported (None if it reports none). A reported
    answer with non-finite numbers is a failure whatever its label.
    """
    finite = _finite(result)
    if status == FAILED:
        return FAILED, str(reason or "the solver reported status 'failed'")
    if status in ANSWERED or status is None or status == "ok":
        if finite:
            return (status if status in ANSWERED else CERTIFIED), None
        label = f"status {status!r} but " if status in ANSWERED else ""
        return FAILED, f"SolverError: {label}non-finite value or bound in the certificate"
    if status == "error":
        return FAILED, str(reason) if reason else "error"
    return FAILED, f"unknown status {status!r}" + (f": {reason}" if reason else "")


def of_solution(sol: Any, numbers: Mapping[str, Any]) -> tuple[str, str | None]:
    """``(status, error)`` of a solver result object (``Solution``, ``MixedSolution``, ...)."""
    return result_status(numbers, getattr(sol, "status", None), getattr(sol, "reason", None))


def normalise_row_status(status: Any, row: Mapping[str, Any]) -> str:
    """A stored row's status in today's vocabulary (rows written before statuses existed)."""
    if status in STATUSES:
        return status
    if status == "ok":
        return CERTIFIED if _finite(row) else FAILED
    return FAILED
