"""Strong Stackelberg equilibrium of a bimatrix game, defender leading (Conitzer & Sandholm 2006).

The defender commits to a mixed strategy x over rows; the attacker observes x and best-responds
with a pure column. For each column j, one LP finds the defender's best commitment among those
that make j a best response:

    LP_j:  min_x  x^T L[:, j]   s.t.  x^T U[:, j] >= x^T U[:, k]  for all k,   x in simplex.

The leader's optimum is the best LP_j over the feasible j. Because LP_j only asks j to be *a* best
response (ties allowed), the attacker is assumed to break ties in the defender's favour: this is
the *strong* Stackelberg equilibrium, which always exists (the weak one may not).

The LPs see ``L`` and ``U`` rescaled to [0, 1] (increasing affine maps: the leader's ranking of
commitments and the follower's best responses are unchanged), so HiGHS' absolute tolerances
mean the same thing at every payoff scale; values are reported in the original units.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from minimax.errors import SolverError
from minimax.finite._validate import as_matrix, check_tol, same_shape
from minimax.serial import namedtuple_to_dict

# Default incentive-gap tolerance, relative to the spread of U: HiGHS' primal feasibility
# tolerance is 1e-7 on the rescaled constraints, so a gap up to ~1e-7 x spread is expected.
_REL_TOL = 1e-6


class StackelbergSolution(NamedTuple):
    """A strong Stackelberg equilibrium with the defender as leader."""

    x: np.ndarray  # (m,) defender's mixed commitment over rows, sums to 1
    response: int  # the attacker's pure best response (column index), ties broken for the leader
    value: float  # defender's expected loss x^T L[:, response], units of L_def
    attacker_value: float  # attacker's expected utility x^T U[:, response], units of U_att
    incentive_gap: float  # max_k x^T U[:, k] - attacker_value >= 0, units of U_att
    feasible: np.ndarray  # (n,) bool: columns the defender can induce as a best response
    status: str = "certified"  # "certified": incentive_gap <= tol; else "gap_above_tol"

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (arrays as lists)."""
        return namedtuple_to_dict(self)


def stackelberg(
    L_def: object, U_att: object, tol: float | None = None
) -> StackelbergSolution:
    r"""Strong Stackelberg equilibrium: the defender commits first, the attacker best-responds.

    With defender loss matrix :math:`L` and attacker utility matrix :math:`U` (both m x n,
    defender = rows), the leader's problem is

    .. math::
        \min_{x \in \Delta_m} \; \min_{j \in \mathrm{BR}(x)} x^\top L e_j, \qquad
        \mathrm{BR}(x) = \arg\max_k x^\top U e_k ,

    solved exactly as n LPs, one per attacker pure response j (``x^T U e_j >= x^T U e_k`` for all
    k), each with HiGHS through ``scipy.optimize.linprog``; the best feasible one wins (lowest
    column index on exact ties). When ``U = L`` (zero-sum) the value equals the minimax value.

    Args:
      L_def: defender's loss, shape (m, n), finite.
      U_att: attacker's utility, shape (m, n), finite.
      tol: largest incentive gap (units of ``U_att``, > 0) for ``status="certified"``; default
        1e-6 times the spread ``max U - min U`` (at least 1e-300).

    Returns:
      A :class:`StackelbergSolution`.

    Raises:
      GameSpecError: a matrix is not a finite, non-empty, real 2-D array, the shapes differ, or
        ``tol`` is not a finite number > 0.
      SolverError: HiGHS failed on one of the LPs for a reason other than infeasibility.

    References:
      V. Conitzer and T. Sandholm, "Computing the optimal strategy to commit to", Proc. 7th ACM
      Conference on Electronic Commerce (EC'06), 82-90 (2006).

    Example (committing to a mix beats the dominant pure row, whose loss is -2):

    >>> sol = stackelberg([[-2.0, -4.0], [-1.0, -3.0]], [[1.0, 0.0], [0.0, 1.0]])
    >>> sol.x.round(6).tolist(), sol.response, round(sol.value, 6)
    ([0.5, 0.5], 1, -3.5)
    """
    from scipy.optimize import linprog

    L = as_matrix(L_def, "L_def")
    U = as_matrix(U_att, "U_att")
    same_shape(L, U, "L_def", "U_att")
    if tol is not None:
        tol = check_tol(tol)
    m, n = L.shape
    Ls, Us = _unit(L), _unit(U)
    best: tuple[float, int, np.ndarray] | None = None
    feasible = np.zeros(n, dtype=bool)
    for j in range(n):
        # x^T (U[:, k] - U[:, j]) <= 0 for every k != j.
        others = np.delete(np.arange(n), j)
        a_ub = (Us[:, others] - Us[:, [j]]).T if n > 1 else None
        b_ub = np.zeros(n - 1) if n > 1 else None
        res = linprog(
            Ls[:, j],
            A_ub=a_ub,
            b_ub=b_ub,
            A_eq=np.ones((1, m)),
            b_eq=[1.0],
            bounds=(0.0, None),
            method="highs",
        )
        if res.status == 2:  # column j is never a best response
            continue
        if res.status != 0:
            raise SolverError(
                f"HiGHS failed on the Stackelberg LP for attacker response {j}: status "
                f"{res.status} ({res.message}). Check the payoff scale."
            )
        feasible[j] = True
        x = np.clip(res.x, 0.0, None)
        x /= x.sum()
        loss = float(x @ L[:, j])
        if best is None or loss < best[0] - 1e-12 * max(1.0, abs(best[0])):
            best = (loss, j, x)
    if best is None:  # impossible in exact arithmetic: some column is always a best response
        raise SolverError(
            "every Stackelberg LP was reported infeasible; at least one attacker response must be "
            "a best response to some commitment. Rescale the payoffs to about unit size."
        )
    loss, j, x = best
    utilities = x @ U
    gap = max(float(utilities.max()) - float(utilities[j]), 0.0)  # (Python floats: no warning)
    if tol is None:  # the spread, halved first so that it cannot overflow
        tol = max(_REL_TOL * 2.0 * (float(U.max()) / 2 - float(U.min()) / 2), 1e-300)
    return StackelbergSolution(
        x=x,
        response=j,
        value=loss,
        attacker_value=float(utilities[j]),
        incentive_gap=gap,
        feasible=feasible,
        status="certified" if gap <= tol else "gap_above_tol",
    )


def _unit(M: np.ndarray) -> np.ndarray:
    """``M`` mapped increasingly and affinely onto [0, 1] (all zeros if constant)."""
    lo, hi = float(M.min()), float(M.max())
    if not np.isfinite(hi - lo):  # the spread overflows float64: halve first
        M, lo, hi = M / 2, lo / 2, hi / 2
    return (M - lo) / (hi - lo) if hi > lo else np.zeros_like(M)
