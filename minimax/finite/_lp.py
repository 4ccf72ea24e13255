"""Exact value of a zero-sum matrix game by linear programming (von Neumann's minimax LP).

The defender (rows) picks a mixed strategy x in the simplex and pays the loss x^T A y; the attacker
(columns) picks y and receives it. The defender's LP and its dual are

    primal:  min_{x, v}  v   s.t.  A^T x <= v 1,  1^T x = 1,  x >= 0
    dual:    max_{y, w}  w   s.t.  A y   >= w 1,  1^T y = 1,  y >= 0

and the multipliers of ``A^T x <= v 1`` are the attacker's equilibrium strategy y. Both optima
equal the game value (strong LP duality = von Neumann's minimax theorem).

Solver choice (measured on this 2-core machine, see ``experiments/results/bench_finite.md``):
cvxpy adds a canonicalisation step that costs seconds on a dense 1000 x 1000 game and, left to
itself, HiGHS picks dual simplex, which is 2-4x slower than its interior-point method with
crossover on large dense games. The default ``solver="highs-direct"`` therefore calls HiGHS through
``scipy.optimize.linprog`` without cvxpy, with dual simplex for small games and IPM + crossover
for games with at least ``LPOptions.ipm_min_entries`` payoffs; both return a basic (vertex)
solution.
``solver="HIGHS"`` / ``"CLARABEL"`` go through one cvxpy problem per shape, built once with a
``cp.Parameter`` so that re-solves with the same shape skip most of the canonicalisation (DPP);
the HIGHS path makes the same simplex/IPM choice.

Every back-end solves the game rescaled to payoffs in [0, 1] (``(A - min A) / (max A - min A)``,
an increasing affine map that keeps the equilibria): LP solvers' tolerances are absolute, and at
payoffs near 1e15 cvxpy's HiGHS interface otherwise fails outright. The certificate is then
computed on the original ``A`` with bounds that hold in exact arithmetic (``_certify``).
"""

from __future__ import annotations

import functools
import time
import warnings
from typing import NamedTuple

import numpy as np

from minimax.errors import GameSpecError, SolverError
from minimax.finite._certify import certify
from minimax.finite._validate import as_matrix, as_options, check_tol
from minimax.serial import namedtuple_to_dict

SOLVERS = ("highs-direct", "HIGHS", "CLARABEL")


class LPOptions(NamedTuple):
    """Settings of the exact LP back ends of :func:`zero_sum` (hashable, immutable)."""

    # From about 400 x 400 upwards HiGHS' IPM (+ crossover) beats its dual simplex on dense
    # games (experiments/results/bench_finite.md): games with at least this many payoffs use it.
    ipm_min_entries: int = 160_000
    # A cvxpy "optimal_inaccurate" answer is kept only if its strategies certify the value to
    # this exploitability times max(1, max|A|).
    inaccurate_gap: float = 1e-8


def check_lp_options(options: object) -> LPOptions:
    """``options`` (None, an :class:`LPOptions` or a dict of its fields) checked field by field."""
    o = as_options(options, LPOptions, "LP")
    if isinstance(o.ipm_min_entries, bool) or not isinstance(o.ipm_min_entries, int) \
            or o.ipm_min_entries < 1:
        raise GameSpecError(f"options.ipm_min_entries must be an integer >= 1; got "
                            f"{o.ipm_min_entries!r}.")
    if isinstance(o.inaccurate_gap, bool) or not isinstance(o.inaccurate_gap, int | float) \
            or not (0 <= o.inaccurate_gap < 1):
        raise GameSpecError(f"options.inaccurate_gap must be a number in [0, 1); got "
                            f"{o.inaccurate_gap!r}.")
    return o


class MatrixGameSolution(NamedTuple):
    """An equilibrium of a zero-sum matrix game with its certificate.

    ``upper`` is what the defender's ``x`` guarantees, ``lower`` what the attacker's ``y``
    guarantees, so ``lower <= value <= upper`` and ``exploitability = upper - lower >= 0`` is
    computed from the returned strategies, never taken from a solver tolerance. The three are
    rounded outwards so that they hold in exact arithmetic for ``x / sum(x)`` and ``y / sum(y)``.
    """

    x: np.ndarray  # (m,) defender's mixed strategy over rows, >= 0, sums to 1
    y: np.ndarray  # (n,) attacker's mixed strategy over columns, >= 0, sums to 1
    value: float  # game value: the LP optimum, clipped into [lower, upper]; units of A
    exploitability: float  # upper - lower >= 0, units of A
    upper: float  # max_j (x^T A)_j: the defender's guaranteed loss with x
    lower: float  # min_i (A y)_i: the loss the attacker's y guarantees
    method: str  # "highs-direct (dual simplex)", "cvxpy+HIGHS", ...
    seconds: float  # wall time of the solve, certificate included
    status: str = "certified"  # "certified", or "gap_above_tol" when tol was given and missed

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict (arrays as lists)."""
        return namedtuple_to_dict(self)


def zero_sum(
    A: object, solver: str = "highs-direct", tol: float | None = None, *,
    options: LPOptions | dict | None = None,
) -> MatrixGameSolution:
    r"""Solve the zero-sum game with loss matrix ``A`` exactly, by linear programming.

    The defender (rows) minimises and the attacker (columns) maximises :math:`x^\top A y`:

    .. math::
        v^* = \min_{x \in \Delta_m} \max_{y \in \Delta_n} x^\top A y
            = \max_{y \in \Delta_n} \min_{x \in \Delta_m} x^\top A y ,

    computed from the LP ``min v s.t. A^T x <= v 1, 1^T x = 1, x >= 0`` whose multipliers are the
    attacker's strategy (von Neumann 1928; Dantzig 1951). The certificate is
    ``exploitability = max_j (x^T A)_j - min_i (A y)_i``, recomputed from the strategies.

    Args:
      A: loss matrix, shape (m, n), finite (any array-like).
      solver: ``"highs-direct"`` (default: HiGHS through ``scipy.optimize.linprog``, no
        modelling layer; dual simplex for small games, IPM + crossover from ~400 x 400; fastest
        measured here), ``"HIGHS"`` or ``"CLARABEL"`` (through cvxpy, one parametrised problem per
        shape reused across calls).
      tol: optional exploitability target (units of ``A``, > 0): ``status`` is ``"certified"``
        if the certified exploitability is at most ``tol``, else ``"gap_above_tol"``. Without
        it the status is ``"certified"`` (the exploitability is a valid bound either way).
      options: :class:`LPOptions` (or a dict of its fields); None for the defaults.

    Returns:
      A :class:`MatrixGameSolution`.

    Raises:
      GameSpecError: ``A`` is not a finite, non-empty, real 2-D array, or ``solver`` or ``tol``
        is invalid.
      SolverError: the LP solver failed or did not report an optimal solution (the message
        names the back-end and the fix).

    References:
      J. von Neumann, "Zur Theorie der Gesellschaftsspiele", Math. Ann. 100 (1928).
      G. B. Dantzig, "A proof of the equivalence of the programming problem and the game
      problem", in Activity Analysis of Production and Allocation (1951).

    Example (matching pennies, value 0, both players uniform):

    >>> sol = zero_sum([[1.0, -1.0], [-1.0, 1.0]])
    >>> print(f"{sol.value:.6f}", sol.x.round(6).tolist(), f"{sol.exploitability:.1e}")
    0.000000 [0.5, 0.5] 0.0e+00
    """
    A = as_matrix(A, "A")
    if solver not in SOLVERS:
        raise GameSpecError(f"solver must be one of {SOLVERS}; got {solver!r}.")
    if tol is not None:
        check_tol(tol)
    opts = check_lp_options(options)
    start = time.perf_counter()
    x, y, value, method = solve_lp(A, solver, opts)
    cert = certify(A[None], x[None], y[None], tol)
    upper, lower, gap = float(cert.upper[0]), float(cert.lower[0]), float(cert.gap[0])
    if not (np.isfinite(upper) and np.isfinite(lower)):
        raise SolverError(
            f"{method}: the certificate of the {A.shape} game is not finite (upper {upper!r}, "
            f"lower {lower!r}); payoffs near the float64 limit overflow. Rescale the payoffs."
        )
    return MatrixGameSolution(
        x=x,
        y=y,
        value=float(np.clip(value, lower, upper)),
        exploitability=gap,
        upper=upper,
        lower=lower,
        method=method,
        seconds=time.perf_counter() - start,
        status="certified" if tol is None or gap <= tol else "gap_above_tol",
    )


def solve_lp(
    A: np.ndarray, solver: str = "highs-direct", options: LPOptions = LPOptions()
) -> tuple[np.ndarray, np.ndarray, float, str]:
    """Equilibrium strategies (on the simplex), the LP's value and the method label for one
    checked game, solved on its rescaled copy with payoffs in [0, 1]."""
    lo, hi = float(A.min()), float(A.max())
    if np.isfinite(hi - lo):
        shift, span = lo, (hi - lo) or 1.0
    else:  # the spread overflows float64 (payoffs near +-1.8e308): scale only
        shift, span = 0.0, float(np.abs(A).max())
    scaled = (A - shift) / span
    if solver == "highs-direct":
        x, y, obj, method = _solve_linprog(scaled, options)
    else:
        x, y, obj, method = _solve_cvxpy(scaled, solver, options)
    x, y = _to_simplex(x, "x", method), _to_simplex(y, "y", method)
    return x, y, float(obj * span + shift), method


def _to_simplex(p: np.ndarray, name: str, method: str) -> np.ndarray:
    """Clip round-off negatives and renormalise; refuse vectors that are not near the simplex."""
    p = np.clip(np.asarray(p, dtype=np.float64), 0.0, None)
    total = p.sum()
    if not np.isfinite(total) or abs(total - 1.0) > 1e-4:
        raise SolverError(
            f"{method} returned a strategy {name} whose entries sum to {total!r}, not 1; the LP "
            f"solution is unusable. Try solver='highs-direct' or rescale the payoffs."
        )
    return p / total


def _solve_linprog(A: np.ndarray, options: LPOptions
                   ) -> tuple[np.ndarray, np.ndarray, float, str]:
    from scipy.optimize import linprog

    m, n = A.shape
    c = np.zeros(m + 1)
    c[-1] = 1.0
    a_ub = np.hstack([A.T, -np.ones((n, 1))])  # (x^T A)_j - v <= 0
    a_eq = np.concatenate([np.ones(m), [0.0]])[None, :]
    bounds = [(0.0, None)] * m + [(None, None)]
    method = "highs-ipm" if A.size >= options.ipm_min_entries else "highs-ds"
    res = linprog(
        c, A_ub=a_ub, b_ub=np.zeros(n), A_eq=a_eq, b_eq=[1.0], bounds=bounds, method=method
    )
    label = f"highs-direct ({'IPM + crossover' if method == 'highs-ipm' else 'dual simplex'})"
    if res.status != 0:
        raise SolverError(
            f"{label} did not solve the game LP: status {res.status} ({res.message}). Check "
            f"the payoff scale or try solver='CLARABEL'."
        )
    # linprog's marginals are d(objective)/d(b_ub) <= 0; the attacker's strategy is their negation.
    return res.x[:m], -res.ineqlin.marginals, float(res.fun), label


@functools.lru_cache(maxsize=8)
def _cvxpy_problem(m: int, n: int):
    """One DPP problem per shape: re-solves only swap the parameter's value."""
    import cvxpy as cp

    A = cp.Parameter((m, n), name="A")
    x = cp.Variable(m, nonneg=True, name="x")
    v = cp.Variable(name="v")
    best_response = A.T @ x <= v
    problem = cp.Problem(cp.Minimize(v), [best_response, cp.sum(x) == 1])
    return problem, A, x, best_response


def _solve_cvxpy(A: np.ndarray, solver: str, options: LPOptions
                 ) -> tuple[np.ndarray, np.ndarray, float, str]:
    import cvxpy as cp

    problem, param, x, best_response = _cvxpy_problem(*A.shape)
    param.value = A
    label = f"cvxpy+{solver}"
    settings = {}
    if solver == "HIGHS" and A.size >= options.ipm_min_entries:  # same choice as highs-direct
        settings = {"highs_options": {"solver": "ipm"}}
        label += " (IPM + crossover)"
    try:
        with warnings.catch_warnings():
            # cvxpy warns on inaccurate solutions; we raise on every non-optimal status instead.
            warnings.filterwarnings("ignore", message="Solution may be inaccurate")
            problem.solve(solver=solver, **settings)
    except (cp.error.SolverError, ValueError, ArithmeticError) as err:
        # e.g. cvxpy's "Cannot unpack invalid solution" when HiGHS gives up on the problem
        raise SolverError(
            f"{label} failed on the {A.shape} game LP: {type(err).__name__}: {err}. Use "
            f"solver='highs-direct' (HiGHS without cvxpy), or solver='CLARABEL'."
        ) from err
    status = problem.status
    if status == cp.OPTIMAL_INACCURATE and x.value is not None:
        # Clarabel often stops here on dense games. The strategies carry their own certificate:
        # keep them only if their computed exploitability is tight, else raise.
        xs, ys = np.clip(x.value, 0, None), np.clip(best_response.dual_value, 0, None)
        if xs.sum() > 0 and ys.sum() > 0:
            gap = np.max((xs / xs.sum()) @ A) - np.min(A @ (ys / ys.sum()))
            if gap <= options.inaccurate_gap * max(1.0, float(np.abs(A).max())):
                return x.value, best_response.dual_value, float(problem.value), label
            status = f"{status} (exploitability {gap:.1e})"
    if problem.status != cp.OPTIMAL:
        raise SolverError(
            f"{label} returned status {status!r} on the {A.shape} game LP (need 'optimal', or "
            f"'optimal_inaccurate' with exploitability <= {options.inaccurate_gap:g} x max|A|). "
            f"Try solver='highs-direct', or rescale the payoffs to about unit size."
        )
    return x.value, best_response.dual_value, float(problem.value), label
