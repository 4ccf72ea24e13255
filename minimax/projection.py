"""Euclidean projections onto the players' strategy sets, and feasible starting points
(docs/model.md §1.2).

* Defender: ``X = {x >= 0, sum cost * x <= P_D}`` with disabled levers fixed at 0. The
  projection of y is ``max(y - tau cost, 0)`` with tau >= 0 the smallest value meeting the
  budget (found from the spend at every ratio y / cost, no sort). It takes any pytree: a
  :class:`~minimax.game.Defense` (leaves n, s, b of shape (K,)) is projected as it is, with
  no conversion to a flat array by the caller (as ``optax.projections`` do).
* Attacker: ``A = {0 <= a <= cap, sum a <= P_A}``; projection ``clip(y - tau, 0, cap)``, tau
  from the monotone piecewise-linear root of ``minimax.rootfind``.

Both are exact, branch-free, jit/vmap-able. ``optax.projections.projection_simplex`` covers
only the unweighted, uncapped equality case, hence these.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp

from minimax.game import Defense, Game
from minimax.rootfind import clipped_linear_root, clipped_linear_solution


def project_budget(y: Any, cost: Any, budget, mask: Any = None) -> Any:
    """Project the pytree ``y`` onto ``{x >= 0, sum(cost * x) <= budget, x = 0 off mask}``.

    ``y`` is an array of any shape or a pytree of arrays (e.g. a :class:`Defense`); ``cost``
    (> 0) and ``mask`` (0/1, marks the coordinates that may be non-zero) are pytrees of the
    same structure whose leaves broadcast to ``y``'s; ``budget`` is a scalar. The sum runs over
    every coordinate of every leaf, and the result has ``y``'s structure. The result is
    ``max(y - tau c, 0)`` with tau the root of the spend ``sum c max(y - tau c, 0) = P`` (the
    weighted form of Held, Wolfe & Crowder 1974; Duchi et al. 2008), found without sorting
    from the spend at every ratio ``y_i / c_i`` (O(n^2) flops, branch-free: faster than a sort
    for the n = 3K coordinates of a defense).
    """
    leaves, tree = jax.tree_util.tree_flatten(y)
    shapes = [jnp.shape(v) for v in leaves]
    costs = tree.flatten_up_to(cost)
    if mask is not None:
        leaves = [jnp.where(m > 0, v, 0.0) for v, m in zip(leaves, tree.flatten_up_to(mask),
                                                           strict=True)]
    y = jnp.concatenate([jnp.reshape(v, -1) for v in leaves])
    c = jnp.concatenate([jnp.broadcast_to(cv, sh).reshape(-1)
                         for cv, sh in zip(costs, shapes, strict=True)])
    plus = jnp.maximum(y, 0.0)
    inside = jnp.sum(c * plus) <= budget
    # x(tau) = c max(r - tau, 0) with r = y / c spends S(tau) = sum c^2 max(r - tau, 0),
    # decreasing and piecewise linear with kinks at the ratios r. Evaluated at every kink (n^2
    # flops, no sort: an XLA sort of 18-36 entries cost 3x the descent's phi evaluations), the
    # smallest kink spending at most the budget ends the linear piece that holds the root.
    r = y / c
    spend = jnp.sum(c * c * jnp.maximum(r[None, :] - r[:, None], 0.0), axis=1)
    upper = jnp.min(jnp.where(spend <= budget, r, jnp.inf))
    at_upper = jnp.sum(c * c * jnp.maximum(r - upper, 0.0))
    slope = jnp.sum(jnp.where(r >= upper, c * c, 0.0))
    t = jnp.maximum(upper - (budget - at_upper) / slope, 0.0)
    # The kink spends lose digits when costs span many decades (1e-6 .. 1e6 cost the
    # budget 2e-6 relative); two Newton steps on the piecewise-linear spend restore them.
    for _ in range(2):
        active = y - t * c > 0
        spend = jnp.sum(jnp.where(active, c * (y - t * c), 0.0))
        slope = jnp.sum(jnp.where(active, c * c, 0.0))
        t = jnp.where(slope > 0, jnp.maximum(t + (spend - budget) / jnp.where(
            slope > 0, slope, 1.0), 0.0), t)
    projected = jnp.maximum(y - t * c, 0.0)
    # what rounding leaves over the budget is removed by a uniform shrink (feasible by
    # construction; it moves the point by a few ulps)
    spent = jnp.sum(c * projected)
    projected = projected * jnp.where(spent > budget, budget / jnp.where(spent > 0, spent, 1.0),
                                      1.0)
    flat = jnp.where(inside, plus, projected)
    sizes = [math.prod(sh) for sh in shapes]
    parts = jnp.split(flat, list(itertools.accumulate(sizes))[:-1])
    return jax.tree_util.tree_unflatten(
        tree, [p.reshape(sh) for p, sh in zip(parts, shapes, strict=True)])


def project_defense(game: Game, x: Any) -> Any:
    """Projection onto the game's budget set X (disabled levers at 0) of a :class:`Defense`
    (leaves (K,)) or of a (3, K) array of the levers n, s, b; returns the same kind."""
    if isinstance(x, Defense):
        cost = Defense(game.cost_n, game.cost_s, game.cost_b)
        mask = Defense(*game.lever_mask())
    else:
        cost, mask = game.cost_matrix(), game.lever_mask()[:, None]
    return project_budget(x, cost, game.defender_budget, mask)


STRUCTURED_STARTS = 5  # the first starts of initial_defenses: none, each lever, all levers


def initial_defenses(game: Game, starts: int, key) -> jax.Array:
    """(starts, 3, K) feasible starting points: the ``STRUCTURED_STARTS`` none, each lever
    spread evenly, all levers spread evenly; then random (Dirichlet-distributed spends)."""
    k = game.num_channels
    cost = game.cost_matrix()
    mask = game.lever_mask()[:, None] * jnp.ones((3, k))
    budget = game.defender_budget
    fixed = [jnp.zeros((3, k))]
    for lever in range(3):
        sel = jnp.zeros((3, k)).at[lever].set(1.0) * mask
        spend = jnp.maximum(jnp.sum(sel * cost), 1e-300)
        fixed.append(sel * budget / spend)
    fixed.append(mask * budget / jnp.maximum(jnp.sum(mask * cost), 1e-300))
    fixed = jnp.stack(fixed)[:starts]
    extra = max(starts - fixed.shape[0], 0)
    weights = jax.random.dirichlet(key, jnp.ones(3 * k + 1), (extra,))[:, : 3 * k]
    weights = weights.reshape(extra, 3, k) * mask[None]
    rand = weights * budget / cost[None]
    return jnp.concatenate([fixed, rand], axis=0)


def project_attack(y, cap, budget) -> jax.Array:
    """Project ``y`` (K,) onto ``{0 <= a <= cap, sum a <= budget}``."""
    box = jnp.clip(y, 0.0, cap)
    inside = jnp.sum(box) <= budget
    # a_i(t) = clip(t + y_i, 0, cap_i) with t = -tau <= 0 (only reached when the box is over
    # budget, so the root is finite)
    root = clipped_linear_root(jnp.ones_like(y), -y, cap, budget)
    projected = clipped_linear_solution(jnp.ones_like(y), -y, cap, root)
    return jnp.where(inside, box, projected)
