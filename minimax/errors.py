"""Domain exceptions. Every message names the field, the value, what is allowed and the fix."""

from __future__ import annotations


class MinimaxError(Exception):
    """Base class of every error this package raises on purpose."""


class GameSpecError(MinimaxError, ValueError):
    """A game description (dict, YAML, arrays) is malformed or out of range."""


class SolverError(MinimaxError, RuntimeError):
    """A solver cannot handle the game it was given, or failed to produce a certified answer."""


class CertificateError(SolverError):
    """A computed answer broke an invariant of its certificate (a non-finite number,
    ``lower > upper``, a negative gap, an infeasible defense or attack). It is raised instead of
    returning the numbers: a certificate that does not hold is never reported."""
