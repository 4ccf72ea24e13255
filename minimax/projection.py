"""Euclidean projections onto the players' strategy sets (docs/model.md §1.2).

* Defender: ``X = {x >= 0, sum cost * x <= P_D}`` with disabled levers fixed at 0. The
  projection of y is ``max(y - tau cost, 0)`` with tau >= 0 the smallest value meeting the
  budget (found by sorting the ratios y / cost).
* Attacker: ``A = {0 <= a <= cap, sum a <= P_A}``; projection ``clip(y - tau, 0, cap)``, tau
  from the monotone piecewise-linear root of ``minimax.rootfind``.

Both are exact, branch-free, jit/vmap-able. ``optax.projections.projection_simplex`` covers
only the unweighted, uncapped equality case, hence these.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from minimax.rootfind import clipped_linear_root, clipped_linear_solution


def project_budget(y, cost, budget, mask=None) -> jax.Array:
    """Project ``y`` (any shape) onto ``{x >= 0, sum(cost * x) <= budget, x = 0 off mask}``.

    ``cost`` > 0 has the shape of ``y``; ``budget`` is a scalar; ``mask`` (broadcastable, 0/1)
    marks the coordinates that may be non-zero. Sort-based: with the ratios ``y_i / c_i``
    sorted in decreasing order, tau is the last ``(sum_{j<=i} c_j y_j - P) / sum_{j<=i} c_j^2``
    that is still below its ratio (the weighted form of Held, Wolfe & Crowder 1974; Duchi et
    al. 2008), O(n log n).
    """
    shape = y.shape
    if mask is not None:
        y = jnp.where(mask > 0, y, 0.0)
    y = y.reshape(-1)
    c = jnp.broadcast_to(cost, shape).reshape(-1)
    plus = jnp.maximum(y, 0.0)
    inside = jnp.sum(c * plus) <= budget
    order = jnp.argsort(-(y / c))
    ys, cs = y[order], c[order]
    tau = (jnp.cumsum(cs * ys) - budget) / jnp.cumsum(cs * cs)
    last = jnp.maximum(jnp.sum(ys / cs > tau) - 1, 0)
    t = jnp.maximum(tau[last], 0.0)
    # The cumulative sums lose digits when costs span many decades (1e-6 .. 1e6 cost the
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
    return jnp.where(inside, plus, projected).reshape(shape)


def project_attack(y, cap, budget) -> jax.Array:
    """Project ``y`` (K,) onto ``{0 <= a <= cap, sum a <= budget}``."""
    box = jnp.clip(y, 0.0, cap)
    inside = jnp.sum(box) <= budget
    # a_i(t) = clip(t + y_i, 0, cap_i) with t = -tau <= 0 (only reached when the box is over
    # budget, so the root is finite)
    root = clipped_linear_root(jnp.ones_like(y), -y, cap, budget)
    projected = clipped_linear_solution(jnp.ones_like(y), -y, cap, root)
    return jnp.where(inside, box, projected)
