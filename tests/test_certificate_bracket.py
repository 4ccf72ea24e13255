"""The bound's 1-D bracket search (``_convex_min_lb``) against independent derivations.

* Random convex functions: its bound is below a brute-force minimum over a dense grid (sound)
  and within the bracket's resolution of it (tight); its estimate is a value of the function.
* The previous bracket search (every round evaluated all ``grid`` points, its ends included),
  re-implemented here with the same tangent bound: the same bound, with fewer evaluations.
* The per-channel bound and the multiplier search of random games with the previous search
  swapped in: the same numbers.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minimax import certificate as C
from minimax.solver import stack_games
from minimax.testing import random_game


def _previous_search(fun, s_max, cfg):
    """The search before the bracket's ends carried their signs: (lb, estimate, argmin)."""
    grid = cfg.grid
    ticks = jnp.linspace(0.0, 1.0, grid).reshape((grid,) + (1,) * jnp.ndim(s_max))

    def body(_, bracket):
        lo, hi = bracket
        pts = lo + ticks * (hi - lo)
        _, slope = fun(pts)
        j = jnp.sum(slope < 0, axis=0)
        take = lambda i: jnp.take_along_axis(pts, i[None], axis=0)[0]  # noqa: E731
        return take(jnp.maximum(j - 1, 0)), take(jnp.minimum(j, grid - 1))

    lo, hi = jax.lax.fori_loop(0, cfg.bisect_s, body, (jnp.zeros_like(s_max), s_max))
    return C._tangent_bound(fun, lo, hi)


def _convex(p, m, q, r, t):
    """``p (s - m)^2 + q e^{-r s} + t s`` (convex for p, q, r >= 0) and its derivative."""
    def fun(s):
        e = jnp.exp(-r * s)
        return p * (s - m) ** 2 + q * e + t * s, 2 * p * (s - m) - q * r * e + t
    return fun


def _random_convex(rng, size):
    return tuple(jnp.asarray(v) for v in (
        rng.uniform(0, 2, size) * (rng.uniform(size=size) < 0.8),  # some linear-exponential
        rng.uniform(-1, 3, size), rng.uniform(0, 2, size), rng.uniform(0.1, 5, size),
        rng.uniform(-1, 1, size)))


def test_bracket_bound_is_below_a_brute_force_minimum_and_within_its_resolution():
    rng = np.random.default_rng(5)
    size = 64
    params = _random_convex(rng, size)
    s_max = jnp.asarray(rng.uniform(0.5, 4, size))
    cfg = C.BoundConfig()
    lb, est, best = jax.jit(lambda *a: C._convex_min_lb(_convex(*a[:5]), a[5], cfg))(
        *params, s_max)
    p, m, q, r, t = (np.asarray(v)[:, None] for v in params)
    s = np.linspace(0.0, 1.0, 200_001)[None, :] * np.asarray(s_max)[:, None]
    brute = np.min(p * (s - m) ** 2 + q * np.exp(-r * s) + t * s, axis=1)
    scale = 1.0 + np.abs(brute)
    lb, est, best = (np.asarray(v) for v in (lb, est, best))
    assert np.all(lb <= brute + 1e-12 * scale)  # sound
    # tight: the final bracket is s_max / 8^7 wide, the grid step s_max / 2e5
    assert np.all(lb >= brute - 1e-7 * scale)
    assert np.all(est >= lb) and np.all(est <= brute + 1e-7 * scale)
    f, _ = (np.asarray(v) for v in _convex(*params)(jnp.asarray(best)))
    # the estimate is the function's value at best (up to the rounding of a jitted call)
    np.testing.assert_allclose(est, f, rtol=1e-13, atol=1e-15)


def test_bisection_default_gives_the_bound_of_nine_points_per_round():
    # 21 halvings (the default) and 7 rounds of 9 points: the same 2^21 shrink, the same bound
    rng = np.random.default_rng(9)
    params = _random_convex(rng, 64)
    s_max = jnp.asarray(rng.uniform(0.5, 4, 64))
    default = C._convex_min_lb(_convex(*params), s_max, C.BoundConfig())
    nine = C._convex_min_lb(_convex(*params), s_max, C.BoundConfig(grid=9, bisect_s=7))
    for a, b in zip(default, nine, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(("grid", "bisect_s"), [(9, 1), (9, 4), (9, 7), (3, 21)])
def test_bracket_search_matches_the_previous_search_with_fewer_evaluations(grid, bisect_s):
    rng = np.random.default_rng(bisect_s)
    size = 48
    params = _random_convex(rng, size)
    s_max = jnp.asarray(rng.uniform(0.5, 4, size))
    cfg = C.BoundConfig(bisect_s=bisect_s, grid=grid)
    counted = []

    def counting(fun):
        def inner(s):
            jax.debug.callback(lambda s: counted.append(s.size // size), s)
            return fun(s)
        return inner

    new = C._convex_min_lb(counting(_convex(*params)), s_max, cfg)
    jax.effects_barrier()
    evaluated, counted[:] = sum(counted), []
    old = _previous_search(counting(_convex(*params)), s_max, cfg)
    jax.effects_barrier()
    for a, b in zip(new, old, strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))  # the same bracket
    assert evaluated == grid + (bisect_s - 1) * (grid - 2) + 2
    assert sum(counted) == bisect_s * grid + 2  # the previous search's evaluations


@pytest.mark.slow
def test_channel_bound_and_multiplier_match_the_previous_search(monkeypatch):
    rng = np.random.default_rng(17)
    injection = stack_games([random_game(rng, 2, utility_price=float(rng.uniform(0, 0.3)))
                             for _ in range(6)])
    jamming = stack_games([random_game(rng, 2, mode="jamming") for _ in range(3)])
    cfg = C.BoundConfig()

    def run():
        out = []
        for batch, search in ((injection, True), (jamming, False)):
            count = batch.batch_shape[0]
            attack = jnp.broadcast_to(batch.attacker_budget[:, None] / 2, (count, 2))
            nu = jnp.asarray(np.linspace(0.05, 0.5, count))
            out.append(jax.jit(jax.vmap(lambda g, a, n: C._channel_minimum(g, a, n, cfg)[0]))(
                batch, attack, nu))
            if search:
                out.append(jax.jit(jax.vmap(lambda g, a: C._multiplier(g, a, cfg)))(batch,
                                                                                   attack))
        return [np.asarray(v) for v in out]

    new = run()
    monkeypatch.setattr(C, "_convex_min_lb", _previous_search)
    old = run()
    for a, b in zip(new, old, strict=True):  # bound of injection, multiplier, bound of jamming
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
