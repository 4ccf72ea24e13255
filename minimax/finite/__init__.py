"""Finite games: payoff matrices over finite strategy sets (docs/solution-concepts.md §2.6-§2.8).

When both players choose from finite menus (defense portfolios x attack classes), the channel game
becomes a matrix game. Row i is a defender pure strategy, column j an attacker pure strategy, and
``A[i, j]`` the defender's loss. Mixed strategies are probability vectors ``x`` (rows) and ``y``
(columns); the expected loss is ``x^T A y``.

Zero-sum (the attacker gains what the defender loses). Von Neumann's minimax theorem says
``min_x max_y x^T A y = max_y min_x x^T A y``; this common number is the game *value*, and one
linear program and its dual compute it together with both equilibrium strategies (von Neumann
1928; Dantzig 1951). A pair (x, y) is certified by its *exploitability*
``max_j (x^T A)_j - min_i (A y)_i >= 0``, which is 0 exactly at an equilibrium: neither player
gains by deviating by more than it. Two solvers:

- :func:`zero_sum` - one game, exactly, by LP (HiGHS directly, or HiGHS/Clarabel via cvxpy);
- :func:`zero_sum_batch` - thousands of games of one shape in one compiled JAX program, by
  Mehrotra's (1992) predictor-corrector interior-point method, each game stopping once its
  computed exploitability is at most ``tol``; the few games it cannot certify are finished by
  the exact LP, so every returned game meets ``tol``.

Every result carries a ``status`` (``"certified"``, or ``"gap_above_tol"`` when a requested
tolerance was missed) and bounds that hold in exact arithmetic, not just in float64.

General-sum, defender leading. If the defender commits publicly to x and the attacker then
best-responds, the defender may do strictly better than at any simultaneous-move (Nash)
equilibrium. The optimal commitment - a strong Stackelberg equilibrium, with ties broken in the
leader's favour - is the best of n LPs, one per attacker pure response (Conitzer & Sandholm
2006): :func:`stackelberg`.

:func:`load_matrix` reads a payoff matrix from CSV or ``.npy``.

References:
  J. von Neumann, "Zur Theorie der Gesellschaftsspiele", Math. Ann. 100:295-320 (1928).
  G. B. Dantzig, "A proof of the equivalence of the programming problem and the game problem"
  (1951). S. Mehrotra, "On the implementation of a primal-dual interior point method",
  SIAM J. Optim. 2(4):575-601 (1992). V. Conitzer and T. Sandholm, "Computing the optimal
  strategy to commit to", EC'06 (2006).
"""

from __future__ import annotations

import minimax._x64  # noqa: F401  (float64 JAX before any array is made)
from minimax.finite._io import load_matrix
from minimax.finite._ipm import (
    BatchSolution,
    IPMOptions,
    IPMState,
    ipm_init,
    ipm_step,
    zero_sum_batch,
)
from minimax.finite._lp import LPOptions, MatrixGameSolution, zero_sum
from minimax.finite._stackelberg import StackelbergSolution, stackelberg

__all__ = [
    "BatchSolution",
    "IPMOptions",
    "IPMState",
    "LPOptions",
    "MatrixGameSolution",
    "StackelbergSolution",
    "ipm_init",
    "ipm_step",
    "load_matrix",
    "stackelberg",
    "zero_sum",
    "zero_sum_batch",
]
