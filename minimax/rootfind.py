"""Exact root of a monotone piecewise-linear sum, the kernel of water-filling and projections.

Solves ``F(t) = sum_i clip(slope_i (t - start_i), 0, upper_i) = target`` for t, where every term
is non-decreasing in t. Water-filling (t = 1/mu), the projection onto a weighted budget simplex
and the projection onto a capped simplex are all of this form. The method is exact (up to
rounding) and branch-free: F is evaluated at its 2K kinks, the kink interval holding the target
is found as the largest kink where F is still below the target, and F is linear inside it.
Cost O(K^2) flops, no sort and no data-dependent loops.

**Why the root is a pair.** The root is returned as ``(k, d)`` with ``t = k + d``: ``k`` is a
kink (some ``start_j`` or ``start_j + upper_j / slope_j``) and ``d >= 0`` the step past it.
Each term is then evaluated as ``slope_i ((k - start_i) + d)``, never as ``slope_i t -
slope_i start_i``: when the starts are huge (a water-filling channel behind 1e190 units of
noise) and the target small (a budget of 5), ``k + d`` rounds to ``k`` and the product form
would lose every digit, while the pair keeps ``d`` exact and the terms feasible.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Root(NamedTuple):
    """The root ``t = kink + step`` of a clipped linear sum (see the module docstring)."""

    kink: jax.Array  # (...) the largest kink with F(kink) <= target (0 if none is finite)
    step: jax.Array  # (...) t - kink >= 0; +inf when target >= sup F (every term capped)


def _terms(slope, start, upper, kink, step):
    """``clip(slope (kink - start + step), 0, upper)`` per term; inactive terms are 0."""
    active = slope > 0
    gap = jnp.where(active, kink - start, 0.0) + step
    return jnp.where(active, jnp.clip(jnp.where(active, slope, 0.0) * gap, 0.0, upper), 0.0)


def clipped_linear_root(slope, start, upper, target) -> Root:
    """The smallest t with ``F(t) = target`` as a :class:`Root` pair.

    Terms with ``slope <= 0`` or a non-finite ``start`` are identically 0 (a term whose start
    is beyond the float range never receives anything at a finite root). ``upper`` may be
    +inf. Requires target >= 0. ``step`` is +inf exactly when ``target >= sup F`` (the sum of
    the active terms' ``upper``).
    """
    target = jnp.asarray(target, dtype=jnp.result_type(slope))
    active = (slope > 0) & jnp.isfinite(start)
    safe_slope = jnp.where(active, slope, 1.0)
    lo = jnp.where(active, start, jnp.inf)
    hi = jnp.where(active, start + upper / safe_slope, jnp.inf)
    kinks = jnp.concatenate([lo, hi], axis=-1)
    finite = jnp.isfinite(kinks)
    kink_t = jnp.where(finite, kinks, 0.0)[..., :, None]
    values = jnp.sum(
        _terms(jnp.where(active, slope, 0.0)[..., None, :], jnp.where(active, start, 0.0)[
            ..., None, :], upper[..., None, :], kink_t, 0.0), axis=-1)
    below = finite & (values <= target[..., None])
    # F is non-decreasing, so the largest kink with F <= target starts the linear piece holding
    # the root (no sort needed); F at the smallest kink is 0 <= target.
    k = jnp.max(jnp.where(below, kinks, -jnp.inf), axis=-1)
    f_k = jnp.max(jnp.where(below, values, -jnp.inf), axis=-1)
    k = jnp.where(jnp.isfinite(k), k, 0.0)
    f_k = jnp.where(jnp.isfinite(f_k), f_k, 0.0)
    in_segment = active & (lo <= k[..., None]) & (hi > k[..., None])
    rate = jnp.sum(jnp.where(in_segment, slope, 0.0), axis=-1)
    # "every term capped" is decided from the caps themselves: a piece narrower than one ulp of
    # its kink (start 4e18, width 100) has lo == hi in floats and must not read as capped.
    # Without a rising piece at k the root is k itself (what such a piece would add is below
    # the resolution of t).
    capped = jnp.sum(jnp.where(active, upper, 0.0), axis=-1) <= target
    step = jnp.where(rate > 0, jnp.maximum(target - f_k, 0.0) / jnp.where(rate > 0, rate, 1.0),
                     0.0)
    return Root(kink=k, step=jnp.where(capped, jnp.inf, step))


def clipped_linear_solution(slope, start, upper, root: Root):
    """The terms ``clip(slope (t - start), 0, upper)`` at ``t = root``; an infinite step gives
    ``upper`` on every active term (then ``sum upper <= target``)."""
    active = (slope > 0) & jnp.isfinite(start)
    capped = ~jnp.isfinite(root.step)
    step = jnp.where(capped, 0.0, root.step)[..., None]
    x = _terms(jnp.where(active, slope, 0.0), jnp.where(active, start, 0.0), upper,
               root.kink[..., None], step)
    x = jnp.where(capped[..., None], upper, x)
    return jnp.where(active, x, 0.0)
