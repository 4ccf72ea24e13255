"""One projected line search, shared by every solver that descends over the defender's budget
set (docs/solution-concepts.md §2.9).

From a feasible x with objective f(x), the step searches the *projection arc*
``x(t) = P(x - t g / |g|_inf)`` (g the gradient of f at x, P the Euclidean projection onto the
budget set) at ``TRIALS`` lengths ``t_j = radius 4^(1 - j)``, j = 0 .. TRIALS - 1, all evaluated
at once (``vmap``), and keeps the best trial if it decreases f. The trust radius then doubles
from the accepted length; if no trial decreases f, x stays and the radius shrinks to half the
shortest trial, but not below ``floor``. Normalising by the largest gradient entry makes the
radius a length in budget units. Seven trials span 4^6 = 4096 between the longest and the
shortest step, and one failed step shrinks the radius 2 x 4^5 = 2048-fold, so a collapsing
trust region reaches its floor in a few iterations.

Given a second direction ``newton`` (the descent's quasi-Newton step on the active face,
:mod:`minimax.quasinewton`), the trials ``P(x - t newton)``, t in
:data:`~minimax.quasinewton.NEWTON_STEPS`, are evaluated with the others and compete with them;
when one of them wins, the trust radius becomes twice its largest coordinate move.

Works on any pytree x (a (3, K) array, a :class:`~minimax.game.Defense`): the gradient and the
projection follow x's structure. Pure and jit/vmap-able.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from minimax.quasinewton import NEWTON_STEPS

TRIALS = 7  # step lengths tried in parallel per iteration: radius * 4 ** (1 - j)


def projected_line_search(f: Callable[[Any], jax.Array], project: Callable[[Any], Any], x: Any,
                          value: jax.Array, radius: jax.Array, floor: jax.Array,
                          grad: Any = None, newton: Any = None, trials: int = TRIALS
                          ) -> tuple[Any, jax.Array, jax.Array]:
    """One projected-gradient step with a parallel line search along the projection arc.

    ``f`` maps x to a scalar (differentiable), ``project`` maps a pytree like x onto the
    feasible set, ``value = f(x)``; ``radius`` and ``floor`` are lengths in the units of x.
    ``grad``: the gradient of f at x if already known; ``newton``: a second search direction
    (a pytree like x) whose trials compete with the gradient's; ``trials``: the number of
    gradient step lengths (``radius 4^(1 - j)``, j < trials). Returns
    ``(x_new, f(x_new), radius_new)`` with ``f(x_new) <= value``.
    """
    grad = jax.grad(f)(x) if grad is None else grad
    largest = jnp.max(jnp.stack([jnp.max(jnp.abs(g)) for g in jax.tree_util.tree_leaves(grad)]))
    scale = jnp.maximum(largest, 1e-300)
    direction = jax.tree_util.tree_map(lambda g: g / scale, grad)
    trials = radius * 4.0 ** (1.0 - jnp.arange(trials, dtype=jnp.float64))

    def along(d, steps):
        return jax.vmap(lambda t: project(jax.tree_util.tree_map(lambda v, e: v - t * e, x, d))
                        )(steps)

    xs = along(direction, trials)
    lengths = trials
    if newton is not None:
        xn = along(newton, jnp.asarray(NEWTON_STEPS, dtype=jnp.float64))
        moved = jnp.max(jnp.stack([
            jnp.max(jnp.abs(a - b[None]).reshape(len(NEWTON_STEPS), -1), axis=1)
            for a, b in zip(jax.tree_util.tree_leaves(xn), jax.tree_util.tree_leaves(x),
                            strict=True)]), axis=0)
        xs = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b]), xs, xn)
        lengths = jnp.concatenate([trials, jnp.maximum(moved, floor / 2.0)])
    vals = jax.vmap(f)(xs)
    vals = jnp.where(jnp.isnan(vals), jnp.inf, vals)  # a NaN trial never hides a decrease
    j = jnp.argmin(vals)
    ok = vals[j] < value
    x_new = jax.tree_util.tree_map(lambda cand, v: jnp.where(ok, cand[j], v), xs, x)
    radius = jnp.where(ok, 2.0 * lengths[j], jnp.maximum(trials[-1] / 2.0, floor))
    return x_new, jnp.where(ok, vals[j], value), radius
