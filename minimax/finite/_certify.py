"""Sound exploitability: bounds that hold in exact arithmetic, not just in float64.

A returned pair of float64 vectors (x, y) stands for the mixed strategies ``x / sum(x)`` and
``y / sum(y)`` (exactly normalised). Their exploitability in a loss matrix A is

    e = max_j (x^T A)_j / sum(x) - min_i (A y)_i / sum(y)  >= 0 .

Computed naively in float64, each entry of ``x^T A`` carries a round-off of up to
``gamma_m |x|^T |A|`` with ``gamma_m = m u / (1 - m u)``, ``u = 2^-53`` (Higham, *Accuracy and
Stability of Numerical Algorithms*, 2nd ed., SIAM 2002, eq. 3.5), plus the error of the sum of
``x``: at payoffs of 1e12 that is ~1e-3, far above a tolerance of 1e-6, and a float64 gap of 0
can hide an exact gap of 1e-6. So each game gets:

1. a float64 enclosure ``[s_j - err_j, s_j + err_j]`` of ``(x^T A)_j / sum(x)`` (and likewise for
   ``A y``) from that error bound, widened by a safety factor; ``upper`` is the enclosure's
   top, ``lower`` the bottom of the attacker's, and the gap bound is their difference rounded
   up. If that bound is at most ``tol``, the game is certified without further work;
2. for the few games whose bound straddles ``tol`` (certified in float64 but not provably), an
   exact re-check: every float is an integer times a power of two, so ``x^T A`` is computed in
   Python integers without any rounding, and the gap is one exact fraction, rounded up.

The bounds returned are always valid: ``upper >= max_j (x^T A)_j / sum(x)``,
``lower <= min_i (A y)_i / sum(y)`` and ``gap >= e``, exactly.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

import numpy as np

_U = 2.0**-53  # unit round-off of float64
_TINY = 1e-300  # absorbs underflow in the error bound's own products


class Certificate(NamedTuple):
    """Exact-arithmetic bounds for a batch of games (all shapes (batch,))."""

    upper: np.ndarray  # >= max_j (x^T A)_j / sum(x), units of A
    lower: np.ndarray  # <= min_i (A y)_i / sum(y), units of A
    gap: np.ndarray  # >= the exact exploitability, >= 0, units of A
    slack: np.ndarray  # float64 estimate of the gap minus its round-off bound (may be < gap)
    exact: np.ndarray  # bool: the bounds come from the exact re-check


def _gamma(k: int) -> float:
    return k * _U / (1.0 - k * _U)


def _enclosure(As: np.ndarray, p: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 ``(A^T p)/sum(p)`` (axis=1) or ``(A p)/sum(p)`` (axis=2) and a bound on its error."""
    k = p.shape[1]
    total = p.sum(axis=1, keepdims=True)
    if axis == 1:
        s = np.einsum("bm,bmn->bn", p, As)
        a = np.einsum("bm,bmn->bn", p, np.abs(As))
    else:
        s = np.einsum("bmn,bn->bm", As, p)
        a = np.einsum("bmn,bn->bm", np.abs(As), p)
    g = _gamma(k + 2)
    # |sum(p) - 1| in exact arithmetic: the float64 deviation plus the sum's own round-off.
    d = np.abs(total - 1.0) + g * total
    # |S/sum - s| <= (gamma a + |s| d) / (1 - d) with |s| <= a (1 + gamma); then a factor 2 of
    # headroom for the rounding of this very formula.
    err = 2.0 * a * (g + d * (1.0 + g)) / np.maximum(1.0 - d, 0.5) + _TINY
    return s, err


def certify(As: np.ndarray, x: np.ndarray, y: np.ndarray, tol: float | None = None) -> Certificate:
    """Exact-arithmetic bounds on ``upper``, ``lower`` and the exploitability of each game.

    ``As`` is (batch, m, n), ``x`` (batch, m) and ``y`` (batch, n), non-negative with positive
    sums. Games whose float64 bound exceeds ``tol`` while the float64 estimate itself is at most
    ``tol`` + its error bound are re-checked exactly (with ``tol=None``, none are), and so are
    games whose float64 bound overflowed.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # overflow is handled exactly below
        s, es = _enclosure(As, x, axis=1)
        t, et = _enclosure(As, y, axis=2)
        upper = np.nextafter((s + es).max(axis=1), np.inf)
        lower = np.nextafter((t - et).min(axis=1), -np.inf)
        gap = np.maximum(np.nextafter(upper - lower, np.inf), 0.0)
        slack = (s - es).max(axis=1) - (t + et).min(axis=1)
    # Exact re-check: games near tol, and games whose float64 products overflowed (payoffs
    # near the float64 limit: the bound is then inf or NaN, whatever tol is).
    near = (gap > tol) & ~(slack > tol) if tol is not None else np.zeros(len(As), dtype=bool)
    overflow = ~np.isfinite(gap) & np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    exact = near | overflow
    for k in np.flatnonzero(exact):
        upper[k], lower[k], gap[k] = exact_bounds(As[k], x[k], y[k])
    return Certificate(upper=upper, lower=lower, gap=gap, slack=slack, exact=exact)


def _integers(v: np.ndarray) -> tuple[np.ndarray, int]:
    """``v`` as an object array of Python ints ``N`` and one denominator ``D`` with v = N / D."""
    ratios = [float(e).as_integer_ratio() for e in v.ravel()]
    den = max(d for _, d in ratios)  # every denominator is a power of two
    nums = np.array([n * (den // d) for n, d in ratios], dtype=object).reshape(v.shape)
    return nums, den


def exact_bounds(A: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """``(upper, lower, gap)`` of one game from exact rational arithmetic, rounded outwards."""
    # With x = X / Dx, A = N / Da: (x^T A)_j / sum(x) = (X^T N)_j / (Da sum(X)); Dx cancels.
    a, da = _integers(A)
    xi, _ = _integers(x)
    yi, _ = _integers(y)
    sx, sy = int(xi.sum()), int(yi.sum())
    up = Fraction(int((xi @ a).max()), da * sx)
    lo = Fraction(int((a @ yi).min()), da * sy)
    return _round(up, math.inf), _round(lo, -math.inf), max(_round(up - lo, math.inf), 0.0)


def _round(q: Fraction, direction: float) -> float:
    """The float nearest ``q``, moved a step towards ``direction`` if it fell on the wrong side."""
    try:
        f = float(q)
    except OverflowError:  # beyond the float64 range
        return math.inf if q > 0 else -math.inf
    if (direction > 0 and Fraction(f) < q) or (direction < 0 and Fraction(f) > q):
        f = math.nextafter(f, direction)
    return f
