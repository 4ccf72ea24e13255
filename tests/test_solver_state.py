"""Solvers as options + init/step/run: the IPM's options are passed (never patched), the double
oracle can be driven one round at a time, the certificate's constants live in BoundConfig, one
projected line search over pytrees, and every result says how its solver ended."""

from __future__ import annotations

import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from scipy.optimize import linprog

import minimax
from minimax.certificate import BoundConfig, check_bound_config
from minimax.double_oracle import (
    double_oracle_init,
    double_oracle_result,
    double_oracle_run,
    double_oracle_step,
    solve_mixed,
)
from minimax.errors import SolverError
from minimax.finite import IPMOptions, LPOptions, ipm_init, ipm_step, zero_sum, zero_sum_batch
from minimax.game import Defense
from minimax.gradient import gradient_termination
from minimax.linesearch import projected_line_search
from minimax.projection import project_budget, project_defense
from minimax.solution import TERMINATIONS
from minimax.testing import numpy_loss, random_game

CONF = Path(__file__).resolve().parents[1] / "conf" / "game"


def _lp_value(M: np.ndarray) -> float:
    """Value of the loss matrix M (rows minimise), from the LP written here from scratch:
    min v s.t. sum_i x_i M[i, j] <= v for every column j, x in the simplex."""
    m, n = M.shape
    res = linprog(np.r_[np.zeros(m), 1.0], A_ub=np.c_[M.T, -np.ones(n)], b_ub=np.zeros(n),
                  A_eq=np.r_[np.ones(m), 0.0][None], b_eq=[1.0],
                  bounds=[(0, None)] * m + [(None, None)], method="highs")
    assert res.status == 0
    return float(res.fun)


# ------------------------------------------------------------------------------------- IPM
def test_ipm_iteration_cap_is_flagged_and_default_converges():
    As = np.random.default_rng(0).standard_normal((40, 8, 8))
    capped = zero_sum_batch(As, tol=1e-6, max_iter=1)
    # one iteration certifies none of these games: the IPM says so, the exact LP finishes them
    assert capped.iterations.max() == 1
    assert set(capped.termination.tolist()) == {"budget_exhausted"}
    assert capped.finished_exactly.all() and (capped.status == "certified").all()
    full = zero_sum_batch(As, tol=1e-6)
    assert set(full.termination.tolist()) == {"converged"}
    assert not full.finished_exactly.any() and (full.exploitability <= 1e-6).all()
    # both end at the value of the LP written here
    for k in range(0, 40, 13):
        assert full.value[k] == pytest.approx(_lp_value(As[k]), abs=1e-6)
        assert capped.value[k] == pytest.approx(_lp_value(As[k]), abs=1e-6)


def test_ipm_options_are_passed_and_change_the_iterations():
    """The starting point and the step rule are options (experiments/ipm_tuning.py): the fixed
    start with a constant step fraction needs more iterations than the defaults, on the same
    games, and both certify."""
    As = np.random.default_rng(1).standard_normal((200, 10, 10))
    default = zero_sum_batch(As, tol=1e-6)
    plain = zero_sum_batch(As, tol=1e-6, options=IPMOptions(start="fixed", adaptive_step=False))
    assert plain.iterations.mean() > default.iterations.mean() + 1.0
    np.testing.assert_allclose(plain.value, default.value, atol=1e-6)


@pytest.mark.slow
def test_ipm_driven_one_iteration_at_a_time_matches_the_batch():
    A = np.random.default_rng(2).standard_normal((7, 5))  # m >= n: not transposed in the batch
    state, gaps = ipm_init(A, tol=1e-8), []
    while not bool(state.done) and int(state.iterations) < 60:
        state = ipm_step(A, state, tol=1e-8)
        gaps.append(float(state.gap))
    batch = zero_sum_batch(A[None], tol=1e-8)
    assert int(state.iterations) == int(batch.iterations[0]) == len(gaps)
    assert gaps[-1] <= 1e-8 and all(b <= a for a, b in zip(gaps, gaps[1:], strict=False))
    np.testing.assert_allclose(np.asarray(state.x), batch.x[0], atol=1e-12)
    assert float(np.max(np.asarray(state.x) @ A)) == pytest.approx(_lp_value(A), abs=1e-7)
    assert int(ipm_step(A, state, tol=1e-8).iterations) == int(state.iterations)  # finished


def test_lp_options_are_passed():
    A = np.random.default_rng(3).standard_normal((30, 20))
    simplex = zero_sum(A)
    ipm = zero_sum(A, options=LPOptions(ipm_min_entries=1))
    assert "dual simplex" in simplex.method and "IPM" in ipm.method
    assert ipm.value == pytest.approx(simplex.value, abs=1e-9)
    with pytest.raises(minimax.GameSpecError, match="ipm_min_entries"):
        zero_sum(A, options={"ipm_min_entries": 0})
    with pytest.raises(minimax.GameSpecError, match="unknown LP option"):
        zero_sum(A, options={"ipm_threshold": 5})


# ------------------------------------------------------------------------------ BoundConfig
@pytest.mark.slow
def test_bound_config_holds_the_certificate_constants():
    """grid, margin and jamming_widen are fields of BoundConfig: margin 0 removes only the
    rounding margin, a coarser grid or a narrower jamming start gives a looser valid bound;
    solve and solve_batch pass them through (solve_batch combines the bounds apart)."""
    certify = jax.jit(minimax.certify, static_argnames=("cfg",))
    # unlabelled, as solve certifies it: the default BoundConfig's program is compiled once
    game = random_game(np.random.default_rng(1), 3, mode="jamming", utility_price=0.5).view()
    sol = minimax.solve(game, starts=2, steps=30)
    base = float(certify(game, sol.defense, cfg=BoundConfig()).lower)
    assert base == pytest.approx(sol.lower, rel=1e-13, abs=1e-13) and base <= sol.value
    bare = minimax.solve(game, margin=0.0, starts=2, steps=30)
    assert 0 < bare.lower - base < 1e-9
    rows = minimax.solve_batch([game], margin=0.0, starts=2, steps=30)
    # the batch's own iterates may differ from solve's by rounding (vmapped reductions), so
    # its margin is checked against the batch with the default margin
    with_margin = minimax.solve_batch([game], starts=2, steps=30)
    assert rows[0].value == with_margin[0].value
    assert 0 < rows[0].lower - with_margin[0].lower < 1e-9
    assert rows[0].lower == pytest.approx(bare.lower, rel=1e-9)
    for coarse in (BoundConfig(bisect_s=7, refine_bisect=4, search_bisect=4),
                   BoundConfig(jamming_widen=1)):
        assert float(certify(game, sol.defense, cfg=coarse).lower) < base - 1e-5


def test_bound_config_is_checked():
    for bad, field in ((BoundConfig(grid=2), "grid"), (BoundConfig(margin=-1.0), "margin"),
                       (BoundConfig(jamming_widen=0), "jamming_widen"),
                       (BoundConfig(refine_bisect=0), "refine_bisect"),
                       (BoundConfig(margin=math.nan), "margin")):
        with pytest.raises(SolverError, match=field):
            check_bound_config(bad)


# ------------------------------------------------------------------ projection, line search
def _qp_projection(y, cost, budget):
    """Euclidean projection onto {x >= 0, cost . x <= budget} by cvxpy (an independent QP)."""
    import cvxpy as cp

    x = cp.Variable(y.size, nonneg=True)
    cp.Problem(cp.Minimize(cp.sum_squares(x - y.ravel())),
               [cost.ravel() @ x <= budget]).solve(solver="CLARABEL")
    return x.value.reshape(y.shape)


def test_projection_is_generic_over_the_defense_tree():
    game = random_game(np.random.default_rng(4), 4)
    y = np.random.default_rng(5).normal(size=(3, 4)) * 2.0
    flat = project_defense(game, jnp.asarray(y))
    tree = project_defense(game, Defense(*jnp.asarray(y)))
    assert isinstance(tree, Defense)
    np.testing.assert_array_equal(np.stack(tree), np.asarray(flat))  # same numbers, bitwise
    qp = _qp_projection(y, np.asarray(game.cost_matrix()), float(game.defender_budget))
    np.testing.assert_allclose(np.asarray(flat), qp, atol=1e-7)
    # a mask tree zeroes a lever in both forms
    masked = project_budget(Defense(*jnp.asarray(y)), Defense(*game.cost_matrix()),
                            game.defender_budget, Defense(1.0, 0.0, 1.0))
    assert float(jnp.max(jnp.abs(masked.s))) == 0.0


def test_line_search_converges_to_the_projection_of_the_target():
    """min ||x - t||^2 over the budget set is the projection of t: the shared line search,
    run on a Defense tree, reaches the independent QP's answer."""
    game = random_game(np.random.default_rng(6), 3)
    target = Defense(*jnp.asarray(np.random.default_rng(7).uniform(0.0, 3.0, (3, 3))))

    def f(x):
        return sum(jnp.sum((a - b) ** 2) for a, b in zip(x, target, strict=True))

    def project(x):
        return project_defense(game, x)

    x = project(Defense(*(jnp.zeros(3),) * 3))
    value, radius = f(x), jnp.asarray(1.0)
    step = jax.jit(lambda x, v, r: projected_line_search(f, project, x, v, r, 1e-14))
    for _ in range(300):
        x, new, radius = step(x, value, radius)
        assert float(new) <= float(value)
        value = new
    qp = _qp_projection(np.stack(target), np.asarray(game.cost_matrix()),
                        float(game.defender_budget))
    np.testing.assert_allclose(np.stack(x), qp, atol=1e-6)


# ----------------------------------------------------------------------------- termination
@pytest.mark.slow
def test_solutions_say_how_their_solver_ended():
    game = minimax.Game.from_dict(yaml.safe_load((CONF / "single_channel.yaml").read_text()))
    done = minimax.solve(game)
    assert done.termination == "converged" and done.iterations < 200
    short = minimax.solve(game, steps=2)
    assert short.termination == "budget_exhausted" and short.iterations == 2
    rows = minimax.solve_batch([game, game.replace(attacker_budget=2.0)])
    assert [r.termination for r in rows] == ["converged"] * 2
    assert [r.iterations < 200 for r in rows] == [True, True]
    # the saddle methods have no stopping test: they always use their budget
    opts = minimax.GradientOptions(steps=50)
    assert gradient_termination("gda", 50, opts) == "budget_exhausted"
    assert gradient_termination("gradient", 49, opts) == "converged"
    assert gradient_termination("gradient", 50, opts) == "budget_exhausted"
    assert set(TERMINATIONS) == {"converged", "stalled", "budget_exhausted"}


@pytest.mark.slow
def test_convex_termination():
    g = minimax.Game.create(mode="injection", attacker_budget=4.0, defender_budget=1.0,
                            B=[1.0, 2.0], S=[1.0, 1.0], N=[1.0, 0.5], w=[1.0, 1.0],
                            u=[0.0, 0.0], rho=[0.0, 0.0], alpha=[1.0, 0.5], beta=[1.0, 1.0],
                            gamma=[1.0, 1.0], levers=["n", "s"])
    assert minimax.solve(g, method="convex").termination == "converged"
    assert minimax.solve(g, method="convex", max_iter=1).termination == "budget_exhausted"


# ------------------------------------------------------------------------- double oracle
@pytest.fixture(scope="module")
def helps():
    game = minimax.Game.from_dict(yaml.safe_load((CONF / "mixing_helps.yaml").read_text()))
    pure = minimax.solve(game, method="gradient", starts=8, steps=100)
    return game, pure


@pytest.mark.slow
def test_double_oracle_one_round_at_a_time(helps):
    """Driving the double oracle by hand gives the run's rounds exactly; each round's
    restricted value is that of an independent LP on a payoff matrix recomputed in numpy, and
    the guarantee of that round's mixture is at least the restricted value."""
    game, pure = helps
    kw = dict(max_iter=5, tol=1e-12, starts=8, steps=100, pure=pure)
    state = double_oracle_init(game, **kw)
    assert state.iterations == 0 and state.termination == "" and len(state.defenses) == 2
    first = state
    for k in range(1, 6):
        before = (len(state.defenses), len(state.attacks))
        state = double_oracle_step(state)
        assert state.iterations == k
        M = np.array([[numpy_loss(game, d._asdict(), a) for a in _pool(state, before)[1]]
                      for d in _pool(state, before)[0]])
        assert state.restricted_value == pytest.approx(_lp_value(M), abs=1e-9)
        assert state.round_upper >= state.restricted_value - 1e-9
        assert state.lower <= state.upper
    assert first.iterations == 0 and first.history == ()  # the steps did not change it
    assert state.termination == "budget_exhausted"
    assert double_oracle_step(state) is state  # finished: nothing more to do
    by_hand = double_oracle_result(state)
    run = solve_mixed(game, **kw)
    assert run.history == by_hand.history and len(run.history) == 5
    assert (run.upper, run.lower, run.iterations) == (by_hand.upper, by_hand.lower, 5)
    np.testing.assert_array_equal(run.probabilities, by_hand.probabilities)
    assert run.termination == "budget_exhausted" and "max_iter" in run.reason
    again = double_oracle_run(double_oracle_init(game, **{**kw, "tol": 1e-6, "max_iter": 30}))
    assert again.termination == "converged" and again.upper - again.lower <= 1e-6


def _pool(state, sizes):
    """The pools as they were when the round's restricted game was built."""
    return state.defenses[: sizes[0]], state.attacks[: sizes[1]]
