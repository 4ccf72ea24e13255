"""The branch-and-bound's pool ordering (``certificate._stable_order``, the presorted pool)
against independent derivations.

* ``_stable_order`` against numpy's stable argsort on arrays with ties, NaN, +-inf and -0.0.
* The branch-and-bound as it was before the pool was kept sorted (an ``argsort`` of the pool at
  the start of every round, then one of the merged pool), re-implemented here: the same
  bound and the same per-channel minimisers, bit for bit, on random injection and jamming
  games (jamming's pool of 176 intervals goes to ``jnp.argsort``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from minimax import certificate as C
from minimax.game import Defense
from minimax.solver import stack_games
from minimax.testing import random_game


def _awkward(rng, shape):
    """Floats with many exact ties, NaN, +-inf and signed zeros."""
    v = rng.choice([-np.inf, -1.5, -0.0, 0.0, 0.25, 0.25, 2.0, np.inf, np.nan], size=shape)
    mixed = rng.normal(size=shape)
    return np.where(rng.uniform(size=shape) < 0.5, v, mixed)


@pytest.mark.parametrize("m", [1, 2, 7, 24, 44, 64, 65, 96])
def test_stable_order_is_a_stable_argsort(m):
    rng = np.random.default_rng(m)
    v = _awkward(rng, (m, 5))
    got = np.asarray(jax.jit(C._stable_order)(jnp.asarray(v)))
    # numpy: stable, NaN last, -0.0 == 0.0 (an independent implementation of the order)
    np.testing.assert_array_equal(got, np.argsort(v, axis=0, kind="stable"))
    assert sorted(got[:, 0].tolist()) == list(range(m))  # a permutation


def _previous_bnb(game, attack, nu, cfg):
    """``_channel_minimum_bnb`` before the pool was kept sorted: two sorts per round."""
    mask = game.lever_mask()
    outer_max, box = C._outer_lever(game, mask)
    boxes, refine = cfg.boxes, cfg.refine
    if game.mode == "jamming":
        boxes, refine = boxes * cfg.jamming_widen, refine * cfg.jamming_widen
    k = game.num_channels
    grid = jnp.linspace(0.0, 1.0, boxes + 1)[:, None] * outer_max[None, :]
    lo, hi = grid[:-1], grid[1:]
    lb, _, x = box(game, attack, nu, mask, lo, hi, cfg)
    pieces = boxes // refine
    split = jnp.linspace(0.0, 1.0, pieces + 1)
    fine = cfg._replace(bisect_s=cfg.refine_bisect)
    take = lambda v, i: jnp.take_along_axis(v, i, axis=0)  # noqa: E731

    def round_(carry, _):
        lo, hi, lb, x, floor = carry
        order = jnp.argsort(lb, axis=0)
        pick, rest = order[:refine], order[refine:]
        p_lo, p_hi = take(lo, pick), take(hi, pick)
        width = p_hi - p_lo
        new_lo = (p_lo[:, None, :] + split[None, :-1, None] * width[:, None, :]).reshape(-1, k)
        new_hi = (p_lo[:, None, :] + split[None, 1:, None] * width[:, None, :]).reshape(-1, k)
        parent = jnp.repeat(take(lb, pick), pieces, axis=0)
        new_lb, _, new_x = box(game, attack, nu, mask, new_lo, new_hi, fine, monotone=False)
        new_lb = jnp.maximum(new_lb, parent)
        pool = [jnp.concatenate([a, take(b, rest)]) for a, b in
                ((new_lo, lo), (new_hi, hi), (new_lb, lb))]
        pool_x = [jnp.concatenate([a, take(b, rest)]) for a, b in zip(new_x, x, strict=True)]
        order = jnp.argsort(pool[2], axis=0)
        stay, leave = order[:boxes], order[boxes:]
        floor = jnp.minimum(floor, jnp.min(take(pool[2], leave), axis=0, initial=jnp.inf))
        lo, hi, lb = (take(v, stay) for v in pool)
        return (lo, hi, lb, Defense(*(take(v, stay) for v in pool_x)), floor), None

    floor = jnp.full((k,), jnp.inf)
    (_, _, lb_final, x, floor), _ = jax.lax.scan(round_, (lo, hi, lb, x, floor), None,
                                                 length=cfg.rounds)
    best = jnp.argmin(lb_final, axis=0)
    pick = lambda v: jnp.take_along_axis(v, best[None, :], axis=0)[0]  # noqa: E731
    return jnp.minimum(floor, jnp.min(lb_final, axis=0)), Defense(*(pick(v) for v in x))


@pytest.mark.slow
def test_sorted_pool_gives_the_previous_bound_bit_for_bit():
    cfg = C.BoundConfig()
    rng = np.random.default_rng(29)
    cases = [
        [random_game(rng, 3, utility_price=float(rng.uniform(0, 0.3))) for _ in range(6)],
        [random_game(rng, 3, mode="jamming") for _ in range(3)],
    ]
    for games in cases:
        batch = stack_games(games)
        count = len(games)
        attack = jnp.asarray(rng.uniform(0.0, 1.0, (count, 3))) * batch.attacker_budget[:, None]
        nu = jnp.asarray(rng.choice([0.0, 0.05, 0.4, 2.0], count))
        new = jax.jit(jax.vmap(lambda g, a, n: C._channel_minimum_bnb(g, a, n, cfg)))(
            batch, attack, nu)
        old = jax.jit(jax.vmap(lambda g, a, n: _previous_bnb(g, a, n, cfg)))(batch, attack, nu)
        for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(old),
                        strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
