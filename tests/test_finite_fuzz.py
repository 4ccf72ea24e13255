"""Fuzz of the finite solvers: matrices over the whole accepted range (payoffs from 1e-300 to
1e300, ties, constant rows, dominant entries, pure saddles). Every call returns a result whose
certificate holds in exact rational arithmetic, or raises a named error; nothing else.

CI runs a fixed-seed profile of 40 examples per test; ``MINIMAX_FUZZ_EXAMPLES=600`` (or more)
runs a longer one locally.
"""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np
import pytest

pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from minimax.errors import GameSpecError, SolverError  # noqa: E402
from minimax.finite import stackelberg, zero_sum, zero_sum_batch  # noqa: E402
from tests.test_finite import exact_exploitability  # noqa: E402

# Fixed seed and a bounded number of examples in CI; MINIMAX_FUZZ_EXAMPLES=2000 for a long run.
FUZZ = settings(
    derandomize=True,
    deadline=None,
    max_examples=int(os.environ.get("MINIMAX_FUZZ_EXAMPLES", "40")),
    suppress_health_check=[HealthCheck.too_slow],
)


@st.composite
def matrices(draw, shape=None):
    """Loss matrices of any scale from 1e-300 to 1e300: Gaussian, integer ties, constant rows,
    a dominant entry, or entries of +-1.7e308 (the float64 limit)."""
    m, n = shape or (draw(st.integers(1, 6)), draw(st.integers(1, 6)))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["normal", "ties", "spike", "constant_rows", "limit"]))
    scale = 10.0 ** draw(st.integers(-300, 300))
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n))
    if kind == "ties":
        A = rng.integers(-2, 3, (m, n)).astype(float)
    elif kind == "spike":
        A[rng.integers(m), rng.integers(n)] = 1e6
    elif kind == "constant_rows":
        A[:] = A[:, :1]
    elif kind == "limit":  # entries of +-1.7e308: every float64 sum of two of them overflows
        return np.where(A > 0, 1.7e308, -1.7e308)
    return A * scale


def _named_or_sound(fn):
    """Run fn; a named error is fine, anything else must be returned, not raised."""
    try:
        return fn()
    except (GameSpecError, SolverError):
        return None


@FUZZ
@given(A=matrices())
def test_fuzz_zero_sum_is_sound_or_a_named_error(A: np.ndarray) -> None:
    sol = _named_or_sound(lambda: zero_sum(A))
    if sol is None:
        return
    assert sol.status == "certified"
    assert np.isfinite([sol.value, sol.upper, sol.lower, sol.exploitability]).all()
    assert sol.lower <= sol.value <= sol.upper
    assert exact_exploitability(A, sol.x, sol.y) <= Fraction(sol.exploitability)


@FUZZ
@given(A=matrices(shape=(4, 3)), k=st.integers(1, 5), tol_exp=st.integers(-12, 2))
def test_fuzz_zero_sum_batch_never_claims_what_it_did_not_reach(
    A: np.ndarray, k: int, tol_exp: int
) -> None:
    # One game shape, so one compiled program for every batch size drawn here.
    As = np.stack([A / (i + 1) for i in range(k)])
    tol = 10.0**tol_exp
    sol = zero_sum_batch(As, tol=tol, strict=False)
    for i in range(k):
        exact = exact_exploitability(As[i], sol.x[i], sol.y[i])
        assert exact <= Fraction(float(sol.exploitability[i]))
        assert sol.lower[i] <= sol.value[i] <= sol.upper[i]
        assert (sol.status[i] == "certified") == (sol.exploitability[i] <= tol)
    if not sol.converged.all():
        with pytest.raises(SolverError, match="cannot be certified"):
            zero_sum_batch(As, tol=tol)


@FUZZ
@given(L=matrices(shape=(3, 4)), U=matrices(shape=(3, 4)))
def test_fuzz_stackelberg_is_consistent_or_a_named_error(L: np.ndarray, U: np.ndarray) -> None:
    sol = _named_or_sound(lambda: stackelberg(L, U))
    if sol is None:
        return
    assert sol.value == pytest.approx(float(sol.x @ L[:, sol.response]), rel=1e-12, abs=0)
    utilities = sol.x @ U
    assert sol.incentive_gap == max(utilities.max() - utilities[sol.response], 0.0)
    assert sol.feasible[sol.response]
