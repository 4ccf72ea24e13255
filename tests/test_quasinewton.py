"""The quasi-Newton step of the descent (minimax.quasinewton, docs/solution-concepts.md §2.9.2):
its pieces against closed forms, the descent with it against the descent without it and
against scipy SLSQP multistart."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import minimax
from minimax.quasinewton import (
    MEMORY,
    face,
    inverse_hessian_times,
    newton_direction,
    no_pairs,
    on_face,
    push_pair,
)
from tests.helpers import random_game
from tests.test_solvers import slsqp_multistart

CONF = Path(__file__).resolve().parents[1] / "conf" / "game"


def _product_form(pairs, n):
    """BFGS inverse Hessian from (s.y / y.y) I of the newest pair, pair by pair: Nocedal &
    Wright (6.17), the full matrix."""
    s_new, y_new = pairs[-1]
    h = (s_new @ y_new) / (y_new @ y_new) * np.eye(n)
    for s, y in pairs:
        rho = 1.0 / (s @ y)
        left = np.eye(n) - rho * np.outer(s, y)
        h = left @ h @ left.T + rho * np.outer(s, s)
    return h


def test_two_loop_recursion_is_the_product_form_bfgs_of_the_last_pairs():
    rng = np.random.default_rng(0)
    n = 8
    a = rng.normal(size=(n, n))
    a = a @ a.T + n * np.eye(n)
    memory, pairs = no_pairs(n), []
    v = rng.normal(size=n)
    assert np.all(np.asarray(inverse_hessian_times(memory, jnp.asarray(v))) == 0)  # empty: 0
    for count in range(1, MEMORY + 3):
        s = rng.normal(size=n)
        y = a @ s + 0.1 * rng.normal(size=n)
        memory = push_pair(memory, jnp.asarray(s), jnp.asarray(y), jnp.asarray(True))
        pairs.append((s, y))
        h = _product_form(pairs[-MEMORY:], n)  # beyond MEMORY pairs the oldest are dropped
        got = np.asarray(inverse_hessian_times(memory, jnp.asarray(v)))
        np.testing.assert_allclose(got, h @ v, rtol=1e-10, atol=1e-12, err_msg=str(count))
        np.testing.assert_allclose(np.asarray(inverse_hessian_times(memory, jnp.asarray(y))), s,
                                   rtol=1e-10, atol=1e-12)  # secant condition H y = s
    # no positive curvature: not stored; a new face empties the memory first
    s = rng.normal(size=n)
    same = push_pair(memory, jnp.asarray(s), jnp.asarray(-s), jnp.asarray(True))
    np.testing.assert_array_equal(np.asarray(same.rho), np.asarray(memory.rho))
    fresh = push_pair(memory, jnp.asarray(s), jnp.asarray(-s), jnp.asarray(False))
    np.testing.assert_array_equal(np.asarray(fresh.rho), np.zeros(MEMORY))
    y = a @ s
    one = push_pair(memory, jnp.asarray(s), jnp.asarray(y), jnp.asarray(False))
    np.testing.assert_allclose(np.asarray(inverse_hessian_times(one, jnp.asarray(v))),
                               _product_form([(s, y)], n) @ v, rtol=1e-10, atol=1e-12)


def test_face_fixes_the_zeros_whose_lagrangian_gradient_is_positive():
    # budget x0 + x1 + x2 + x3 <= 1 spent on x0; KKT on x0 gives lambda = 1, so
    # x1 (g + lambda = 0.5 > 0) is fixed, x2 (g + lambda = -1 < 0) may enter, x3's lever is off
    x = jnp.array([1.0, 0.0, 0.0, 0.0])
    g = jnp.array([-1.0, -0.5, -2.0, -3.0])
    cost, mask = jnp.ones(4), jnp.array([1.0, 1.0, 1.0, 0.0])
    f = face(x, g, cost, mask, 1.0)
    np.testing.assert_array_equal(np.asarray(f.free), [1.0, 0.0, 1.0, 0.0])
    np.testing.assert_allclose(np.asarray(f.normal), [2 ** -0.5, 0.0, 2 ** -0.5, 0.0])
    # Pi v: zero on fixed coordinates, orthogonal to the cost on the free ones
    v = on_face(jnp.array([3.0, 5.0, 1.0, 7.0]), f)
    np.testing.assert_allclose(np.asarray(v), [1.0, 0.0, -1.0, 0.0], atol=1e-15)
    # budget not binding: no normal, lambda = 0 (a zero with g < 0 is free)
    f = face(0.5 * x, g, cost, mask, 1.0)
    np.testing.assert_array_equal(np.asarray(f.free), [1.0, 1.0, 1.0, 0.0])
    np.testing.assert_array_equal(np.asarray(f.normal), np.zeros(4))


def test_newton_step_solves_a_quadratic_on_a_one_dimensional_face():
    """min 0.5 (x - t)' A (x - t) on {x0 + x1 = 1} (x2, x3 off): the face is the line
    x + r e, e = (1, -1, 0, 0) / sqrt 2. One pair along e makes H exact on it, and x - d is the
    minimiser on the line, x - (e.g / e'Ae) e (closed form)."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    a = a @ a.T + 4 * np.eye(4)
    t = np.array([0.5, 0.6, 0.4, 0.2])
    x = np.array([0.3, 0.7, 0.0, 0.0])
    g = a @ (x - t)
    mask = jnp.array([1.0, 1.0, 0.0, 0.0])
    f = face(jnp.asarray(x), jnp.asarray(g), jnp.ones(4), mask, 1.0)
    e = np.array([1.0, -1.0, 0.0, 0.0]) / np.sqrt(2.0)
    s = 0.01 * e
    y = np.asarray(on_face(jnp.asarray(a @ s), f))
    pairs = push_pair(no_pairs(4), jnp.asarray(s), jnp.asarray(y), jnp.asarray(False))
    step = np.asarray(newton_direction(pairs, jnp.asarray(g), f))
    np.testing.assert_allclose(x - step, x - (e @ g) / (e @ a @ e) * e, atol=1e-12)


@pytest.mark.slow
def test_quasi_newton_descent_is_no_worse_than_the_gradient_descent_and_slsqp():
    rng = np.random.default_rng(11)
    games = [random_game(rng, 4, utility_price=0.2 * (i % 2)) for i in range(6)]
    new = minimax.solve_batch(games)
    old = minimax.solve_batch(games, quasi_newton=False)
    for game, n, o in zip(games, new, old, strict=True):
        assert n.status == "certified"
        assert n.value <= o.value + 1e-9
        assert n.value <= min(slsqp_multistart(game, 6, rng)) + 1e-6
    assert sum(n.iterations for n in new) < sum(o.iterations for o in old)


@pytest.mark.slow
def test_quasi_newton_converges_where_the_gradient_descent_hit_its_cap():
    """The default game at P_A = 1, P_D = 4.944 (a point of the 10,000-point sweep): the
    gradient descent alone runs all 200 iterations; with the quasi-Newton step it stops on
    its own, at a value at least as low."""
    spec = yaml.safe_load((CONF / "mfm_default.yaml").read_text())
    game = minimax.Game.from_dict(spec).replace(attacker_budget=1.0,
                                                defender_budget=0.5 + 80 * 5.5 / 99)
    new = minimax.solve(game, method="gradient", keep=4)
    old = minimax.solve(game, method="gradient", keep=4, quasi_newton=False)
    assert old.iterations == 200 and old.termination == "budget_exhausted"
    assert new.iterations < 200 and new.termination == "converged"
    assert new.value <= old.value + 1e-12


def test_a_nan_trial_never_hides_a_decrease_in_the_line_search():
    """f = (x - 1)^2, NaN below x = 0.5: from x = 1.2 with radius 1 the longest trials
    (x = -2.8, 0.2) are NaN, the shorter ones (x = 0.95, ...) decrease f."""
    import jax.numpy as jnp

    from minimax.linesearch import projected_line_search

    def f(x):
        return jnp.where(x[0] < 0.5, jnp.nan, (x[0] - 1.0) ** 2)

    x = jnp.array([1.2])
    x_new, value, _ = projected_line_search(f, lambda v: v, x, f(x), jnp.asarray(1.0),
                                            jnp.asarray(1e-12))
    assert float(value) < float(f(x))
    assert abs(float(x_new[0]) - 1.0) < 0.1
