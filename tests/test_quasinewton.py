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
from minimax.quasinewton import bfgs_update, face, newton_direction, on_face
from tests.helpers import random_game
from tests.test_solvers import slsqp_multistart

CONF = Path(__file__).resolve().parents[1] / "conf" / "game"


def test_bfgs_update_is_the_product_form_and_meets_the_secant_condition():
    rng = np.random.default_rng(0)
    n = 6
    a = rng.normal(size=(n, n))
    h = a @ a.T + np.eye(n)
    s = rng.normal(size=n)
    y = s + 0.1 * rng.normal(size=n)
    rho = 1.0 / (s @ y)
    left = np.eye(n) - rho * np.outer(s, y)
    expected = left @ h @ left.T + rho * np.outer(s, s)  # Nocedal & Wright (6.17)
    got = np.asarray(bfgs_update(jnp.asarray(h), jnp.asarray(s), jnp.asarray(y),
                                 jnp.asarray(True)))
    np.testing.assert_allclose(got, expected, atol=1e-12)
    np.testing.assert_allclose(got @ y, s, atol=1e-12)  # H+ y = s
    # a new face (or no estimate yet) starts from the Barzilai-Borwein scale (s.s / s.y) I
    fresh = np.asarray(bfgs_update(jnp.asarray(h), jnp.asarray(s), jnp.asarray(y),
                                   jnp.asarray(False)))
    expected = left @ ((s @ s) * rho * np.eye(n)) @ left.T + rho * np.outer(s, s)
    np.testing.assert_allclose(fresh, expected, atol=1e-12)
    # no positive curvature: the estimate is kept on the same face, dropped on a new one
    same = bfgs_update(jnp.asarray(h), jnp.asarray(s), jnp.asarray(-s), jnp.asarray(True))
    np.testing.assert_array_equal(np.asarray(same), h)
    new = bfgs_update(jnp.asarray(h), jnp.asarray(s), jnp.asarray(-s), jnp.asarray(False))
    np.testing.assert_array_equal(np.asarray(new), np.zeros((n, n)))


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


def test_newton_direction_with_the_exact_inverse_solves_a_quadratic_on_the_face():
    """min 0.5 (x - t)' A (x - t) on {x0 + x1 + x2 = 1} (x3 fixed): x - d with d = Pi H Pi g,
    H the inverse of A on the face, is the minimiser from the KKT system (closed form)."""
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    a = a @ a.T + 4 * np.eye(4)
    t = np.array([0.5, 0.6, 0.4, 0.0])
    x = np.array([0.3, 0.3, 0.4, 0.0])
    g = a @ (x - t)
    f = face(jnp.asarray(x), jnp.asarray(g), jnp.ones(4), jnp.array([1.0, 1.0, 1.0, 0.0]),
             1.0)
    basis = np.array([[1.0, -1.0, 0.0, 0.0], [1.0, 1.0, -2.0, 0.0]]).T  # the face's directions
    basis /= np.linalg.norm(basis, axis=0)
    h = basis @ np.linalg.inv(basis.T @ a @ basis) @ basis.T
    step = np.asarray(newton_direction(jnp.asarray(h), jnp.asarray(g), f))
    # KKT: A (z - t) + lambda 1 = 0 on the first three coordinates, sum z = 1, z3 = 0
    kkt = np.zeros((4, 4))
    kkt[:3, :3], kkt[:3, 3], kkt[3, :3] = a[:3, :3], 1.0, 1.0
    z = np.linalg.solve(kkt, np.concatenate([a[:3, :3] @ t[:3], [1.0]]))[:3]
    np.testing.assert_allclose((x - step)[:3], z, atol=1e-12)


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
