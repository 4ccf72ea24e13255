"""The one result type every solver returns, carrying its certificate and its status.

Every answer is checked before it is returned (:func:`check_certificate`): finite numbers,
``lower <= value = upper``, ``gap = upper - lower >= 0``, a feasible defense
(``x >= 0``, disabled levers at 0, ``sum cost . x <= P_D``) and a feasible attack
(``0 <= a <= cap``, ``sum a <= P_A``), each up to a relative rounding allowance of
``FEASIBILITY_RTOL``. The outcome is the result's ``status``:

* ``"certified"`` -- every check holds and the gap is within the requested tolerance (if any);
* ``"gap_above_tol"`` -- every check holds but the gap is above the requested tolerance;
* ``"failed"`` -- a check failed. :func:`minimax.solve` raises
  :class:`~minimax.errors.CertificateError` instead of returning such a result;
  :func:`minimax.solve_batch` returns the row with NaN numbers, ``status="failed"`` and the
  violated check in ``reason``, so one bad game never discards the others.

Beside the certificate's status, a result says how the solver that produced it ended, its
``termination`` (one of ``TERMINATIONS``):

* ``"converged"`` -- the solver stopped on its own convergence test (the descent's trust
  regions collapsed, the cutting planes' bracket closed to ``tol``, the double oracle's gap
  closed to ``tol``);
* ``"stalled"`` -- it stopped without converging and without using its budget (no oracle
  found a new strategy; the conic solver of the cutting planes failed mid-run);
* ``"budget_exhausted"`` -- it used its whole iteration budget (``steps``, ``max_iter``);
* ``""`` -- not reported (a ``failed`` row, or a result built by hand).

The two are independent: a run that exhausted its budget can still be certified to the
requested gap, and a converged descent on a non-convex game can leave a gap above it.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from minimax.errors import CertificateError
from minimax.game import LEVERS, Defense, Game

STATUSES = ("certified", "gap_above_tol", "failed")
TERMINATIONS = ("converged", "stalled", "budget_exhausted")
FEASIBILITY_RTOL = 1e-9  # relative slack on budgets and caps (rounding of the projections)


class Solution(NamedTuple):
    """A defense with its certificate.

    ``value`` is the defender's guaranteed loss with the returned defense against an adaptive
    attacker, ``phi(defense)``, which is also ``upper``; ``lower`` is a certified lower bound on
    the minimax value V, so ``lower <= V <= upper`` and ``gap = upper - lower``.
    """

    value: float  # phi(defense) = max_a L(defense, a), weighted bits per query
    upper: float  # certified upper bound on V (= value)
    lower: float  # certified lower bound on V
    gap: float  # upper - lower (computed, never assumed)
    defense: Defense  # (K,) arrays n, s, b in budget units
    attack: np.ndarray  # (K,) the attacker's best response to ``defense``, power units
    method: str  # the solver that produced the defense
    iterations: int  # iterations of that solver
    seconds: float  # wall time including the certificate
    reason: str = ""  # why ``auto`` chose this method, solver notes, or why it failed
    status: str = "certified"  # one of STATUSES (see the module docstring)
    termination: str = ""  # one of TERMINATIONS, or "" when not reported (module docstring)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable); :meth:`from_dict` inverts it."""
        return {
            "status": self.status,
            "termination": self.termination,
            "value": float(self.value),
            "upper": float(self.upper),
            "lower": float(self.lower),
            "gap": float(self.gap),
            "defense": self.defense.to_dict(),
            "attack": np.asarray(self.attack, dtype=float).tolist(),
            "method": self.method,
            "iterations": int(self.iterations),
            "seconds": float(self.seconds),
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Solution:
        """The :class:`Solution` of a :meth:`to_dict` dict (arrays as float64 numpy arrays)."""
        defense = Defense(*(np.asarray(d["defense"][lv], dtype=float) for lv in LEVERS))
        return cls(value=d["value"], upper=d["upper"], lower=d["lower"], gap=d["gap"],
                   defense=defense, attack=np.asarray(d["attack"], dtype=float),
                   method=d["method"], iterations=d["iterations"], seconds=d["seconds"],
                   reason=d["reason"], status=d["status"], termination=d.get("termination", ""))


def certificate_violations(game: Game, value: float, lower: float, gap: float,
                           defense: Defense, attack: Any) -> list[str]:
    """The invariants of a certified answer that do not hold (empty when all hold)."""
    bad: list[str] = []
    for name, v in (("value", value), ("lower", lower), ("gap", gap)):
        if not math.isfinite(v):
            bad.append(f"{name} = {v!r} is not finite")
    if bad:
        return bad
    if lower > value:
        bad.append(f"lower = {lower!r} > upper = {value!r}")
    if gap < 0:
        bad.append(f"gap = {gap!r} < 0")
    scale = max(abs(value), abs(lower), 1.0)
    if abs(gap - (value - lower)) > 1e-9 * scale:
        bad.append(f"gap = {gap!r} differs from upper - lower = {value - lower!r}")
    x = {lv: np.asarray(getattr(defense, lv), dtype=float) for lv in LEVERS}
    for lv, v in x.items():
        if not np.all(np.isfinite(v)) or np.any(v < 0):
            bad.append(f"defense lever {lv} = {v.tolist()} is not finite and >= 0")
        elif lv not in game.levers and np.any(v != 0):
            bad.append(f"defense invests {v.tolist()} in the disabled lever {lv}")
    if not bad:
        cost = float(sum(np.sum(np.asarray(getattr(game, f"cost_{lv}")) * x[lv])
                         for lv in LEVERS))
        budget = float(game.defender_budget)
        if cost > budget * (1 + FEASIBILITY_RTOL) + 1e-300:
            bad.append(f"defense costs {cost!r} > defender_budget {budget!r}")
    a = np.asarray(attack, dtype=float)
    cap = np.asarray(game.cap, dtype=float)
    p_a = float(game.attacker_budget)
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        bad.append(f"attack {a.tolist()} is not finite and >= 0")
    else:
        if np.any(a > cap * (1 + FEASIBILITY_RTOL)):
            bad.append(f"attack {a.tolist()} exceeds the caps {cap.tolist()}")
        if float(np.sum(a)) > p_a * (1 + FEASIBILITY_RTOL):
            bad.append(f"attack spends {float(np.sum(a))!r} > attacker_budget {p_a!r}")
    return bad


def status_of(gap: float, gap_tol: float | None) -> str:
    """``certified`` or ``gap_above_tol`` for an answer whose invariants hold."""
    return "certified" if gap_tol is None or gap <= gap_tol else "gap_above_tol"


def check_certificate(game: Game, sol: Solution, gap_tol: float | None = None) -> Solution:
    """``sol`` with its status set, or :class:`CertificateError` naming the broken invariant."""
    bad = certificate_violations(game, sol.value, sol.lower, sol.gap, sol.defense, sol.attack)
    if bad:
        raise CertificateError(
            f"{sol.method} on game {game.name!r}: the certificate does not hold ("
            + "; ".join(bad) + "). Nothing is reported as certified. Check that the game is "
            "inside the supported ranges (docs/supported-ranges.md); if it is, this is a bug: "
            "please report the game (Game.to_dict())."
        )
    return sol._replace(status=status_of(sol.gap, gap_tol))


def failed_solution(game: Game, method: str, reason: str) -> Solution:
    """A ``status="failed"`` row (NaN numbers) for batch results."""
    k = game.num_channels
    nan = np.full(k, np.nan)
    return Solution(value=math.nan, upper=math.nan, lower=math.nan, gap=math.nan,
                    defense=Defense(nan, nan, nan), attack=nan, method=method, iterations=0,
                    seconds=0.0, reason=reason, status="failed")
