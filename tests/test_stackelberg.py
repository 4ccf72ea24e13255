"""Strong Stackelberg equilibrium (defender leads) against independent references."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pytest

from minimax.errors import GameSpecError
from minimax.finite import StackelbergSolution, stackelberg, zero_sum


def reference_two_rows(L: np.ndarray, U: np.ndarray) -> float:
    """Exact SSE loss of a 2-row game by enumerating the breakpoints of the attacker's response.

    With x = (t, 1 - t) every payoff is linear in t. Between consecutive breakpoints (t = 0, 1 and
    every t where two attacker columns tie) the best response is fixed, so the leader's loss is
    linear there and its infimum is attained at a breakpoint, where the best-response set contains
    both neighbouring responses and ties go to the leader. No LP is involved.
    """
    candidates = [0.0, 1.0]
    for k, l in itertools.combinations(range(U.shape[1]), 2):
        slope = (U[0, k] - U[1, k]) - (U[0, l] - U[1, l])
        if abs(slope) > 1e-14:
            t = (U[1, l] - U[1, k]) / slope
            if 0.0 <= t <= 1.0:
                candidates.append(t)
    best = np.inf
    for t in candidates:
        x = np.array([t, 1.0 - t])
        utility, loss = x @ U, x @ L
        responses = utility >= utility.max() - 1e-12
        best = min(best, loss[responses].min())
    return float(best)


def reference_multiple_lp(L: np.ndarray, U: np.ndarray) -> float:
    """Conitzer-Sandholm written independently with cvxpy + Clarabel (not HiGHS)."""
    m, n = L.shape
    best = np.inf
    for j in range(n):
        x = cp.Variable(m, nonneg=True)
        constraints = [cp.sum(x) == 1] + [U[:, j] @ x >= U[:, k] @ x for k in range(n) if k != j]
        problem = cp.Problem(cp.Minimize(L[:, j] @ x), constraints)
        problem.solve(solver="CLARABEL")
        if problem.status == cp.OPTIMAL:
            best = min(best, problem.value)
    return float(best)


def induced_loss(L: np.ndarray, U: np.ndarray, x: np.ndarray) -> float:
    """The defender's loss when committing to x; attacker ties broken for the defender."""
    utility = x @ U
    return float((x @ L)[utility >= utility.max() - 1e-12].min())


def test_hand_computed_2x2() -> None:
    # Conitzer & Sandholm's example as losses. Defender loss L (= minus its utility
    # [[2, 4], [1, 3]]) and attacker utility U = [[1, 0], [0, 1]].
    # With x = (p, 1 - p) the attacker gets p from column 0 and 1 - p from column 1, so it plays
    # column 1 iff p <= 1/2 (ties to the defender). Defender loss: column 0 -> -2p - (1 - p) =
    # -1 - p; column 1 -> -4p - 3(1 - p) = -3 - p. Best: p = 1/2 with column 1, loss -3.5, and
    # the attacker then gets 1 - p = 0.5.
    L = np.array([[-2.0, -4.0], [-1.0, -3.0]])
    U = np.array([[1.0, 0.0], [0.0, 1.0]])
    sol = stackelberg(L, U)
    assert isinstance(sol, StackelbergSolution)
    np.testing.assert_allclose(sol.x, [0.5, 0.5], atol=1e-9)
    assert sol.response == 1
    assert sol.value == pytest.approx(-3.5, abs=1e-9)
    assert sol.attacker_value == pytest.approx(0.5, abs=1e-9)
    assert sol.feasible.tolist() == [True, True]
    assert sol.value == pytest.approx(reference_two_rows(L, U), abs=1e-12)


def test_commitment_beats_simultaneous_play_and_zero_sum_strategy() -> None:
    L = np.array([[-2.0, -4.0], [-1.0, -3.0]])
    U = np.array([[1.0, 0.0], [0.0, 1.0]])
    sol = stackelberg(L, U)
    # Simultaneous moves: row 0 strictly dominates row 1 for the defender (-2 < -1, -4 < -3), so
    # the unique Nash equilibrium has the defender on row 0 and the attacker's best reply column 0
    # (1 > 0): the defender's Nash loss is -2.
    nash_loss = -2.0
    assert sol.value < nash_loss - 1.0
    # Zero-sum-ised game (the attacker assumed to maximise the defender's loss): its minimax
    # strategy is row 0; against the real attacker that commitment also yields -2.
    minimax = zero_sum(L)
    np.testing.assert_allclose(minimax.x, [1.0, 0.0], atol=1e-9)
    assert induced_loss(L, U, minimax.x) == pytest.approx(nash_loss)
    assert sol.value < induced_loss(L, U, minimax.x) - 1.0


@pytest.mark.parametrize("seed", range(8))
def test_random_two_row_games_match_breakpoint_enumeration(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 7))
    L, U = rng.standard_normal((2, n)), rng.standard_normal((2, n))
    sol = stackelberg(L, U)
    assert sol.value == pytest.approx(reference_two_rows(L, U), abs=1e-9)


@pytest.mark.parametrize("shape", [(3, 3), (4, 6), (6, 4), (5, 5)])
def test_random_games_match_independent_multiple_lp(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(shape[0] * 10 + shape[1])
    L, U = rng.standard_normal(shape), rng.standard_normal(shape)
    sol = stackelberg(L, U)
    assert sol.value == pytest.approx(reference_multiple_lp(L, U), abs=1e-7)
    # The response is a best response to the commitment (to LP tolerance) and values are consistent.
    assert 0.0 <= sol.incentive_gap <= 1e-8
    assert sol.value == pytest.approx(float(sol.x @ L[:, sol.response]), abs=1e-12)
    assert sol.attacker_value == pytest.approx(float(sol.x @ U[:, sol.response]), abs=1e-12)
    # No sampled commitment does better (an independent upper bound on the optimum).
    samples = rng.dirichlet(np.ones(shape[0]), size=2000)
    assert sol.value <= min(induced_loss(L, U, x) for x in samples) + 1e-9


def test_zero_sum_special_case_equals_minimax_value() -> None:
    rng = np.random.default_rng(42)
    A = rng.standard_normal((5, 7))
    # If the attacker's utility is the defender's loss, committing first cannot help or hurt.
    assert stackelberg(A, A).value == pytest.approx(zero_sum(A).value, abs=1e-9)


def test_degenerate_games() -> None:
    rng = np.random.default_rng(0)
    # One defender row: nothing to commit to; the attacker's argmax, ties to the defender.
    L, U = np.array([[3.0, 1.0, 2.0]]), np.array([[5.0, 5.0, 4.0]])
    sol = stackelberg(L, U)
    assert sol.response == 1 and sol.value == 1.0 and sol.attacker_value == 5.0
    # One attacker column: the defender takes its smallest loss.
    L = rng.standard_normal((4, 1))
    sol = stackelberg(L, rng.standard_normal((4, 1)))
    assert sol.value == pytest.approx(L.min()) and sol.x[np.argmin(L)] == pytest.approx(1.0)
    # An indifferent attacker: every outcome is a tie, so the defender gets its best entry.
    L = rng.standard_normal((3, 4))
    sol = stackelberg(L, np.zeros((3, 4)))
    assert sol.value == pytest.approx(L.min(), abs=1e-12)
    assert sol.feasible.all()
    # A strictly dominated attacker column can never be induced.
    U = np.array([[1.0, 0.0], [2.0, 1.0]])
    sol = stackelberg(rng.standard_normal((2, 2)), U)
    assert sol.feasible.tolist() == [True, False] and sol.response == 0


@pytest.mark.parametrize(
    ("L", "U", "match"),
    [
        (np.ones((2, 3)), np.ones((3, 2)), r"U_att has shape \(3, 2\)"),
        (np.array([[np.nan, 1.0]]), np.ones((1, 2)), r"L_def\[0, 0\] = nan"),
        (np.ones((2, 2)), np.array([[1.0, -np.inf], [0.0, 0.0]]), r"U_att\[0, 1\] = -inf"),
        (np.ones(3), np.ones(3), "L_def must be 2-D"),
        (np.ones((2, 0)), np.ones((2, 0)), "at least one entry"),
        (np.ones((2, 2)), np.array([[1.0, 1j], [0.0, 0.0]]), r"U_att must be real.*U_att\[0, 1\]"),
        (np.ones((2, 2)) + 0j, np.ones((2, 2)), "L_def must be real"),
    ],
)
def test_bad_input(L: np.ndarray, U: np.ndarray, match: str) -> None:
    with pytest.raises(GameSpecError, match=match):
        stackelberg(L, U)


def test_status_and_payoff_scale() -> None:
    """The answer does not depend on the payoff units (the LPs see [0, 1] payoffs), and the
    status says whether the response is a best response to within tol."""
    rng = np.random.default_rng(3)
    L, U = rng.standard_normal((5, 6)), rng.standard_normal((5, 6))
    unit = stackelberg(L, U)
    assert unit.status == "certified" and unit.to_dict()["status"] == "certified"
    for scale in (1e-9, 1e12):
        big = stackelberg(scale * L + 3.0 * scale, scale * U - 7.0 * scale)
        assert big.response == unit.response and big.status == "certified"
        assert big.value == pytest.approx(scale * (unit.value + 3.0), rel=1e-9)
        assert big.incentive_gap <= 1e-6 * scale * np.ptp(U)
    utilities = unit.x @ U
    assert unit.incentive_gap == pytest.approx(utilities.max() - utilities[unit.response], abs=0)
    with pytest.raises(GameSpecError, match="tol must be a finite number > 0"):
        stackelberg(L, U, tol=-1.0)
