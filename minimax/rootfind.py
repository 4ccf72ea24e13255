"""Exact root of a monotone piecewise-linear sum, the kernel of water-filling and projections.

Solves ``F(t) = sum_i clip(slope_i t - offset_i, 0, upper_i) = target`` for t, where every term
is non-decreasing in t. Water-filling (t = 1/mu), the projection onto a weighted budget simplex
and the projection onto a capped simplex are all of this form. The method is exact (up to
rounding) and branch-free: F is evaluated at its 2K kinks, the kink interval holding the target
is found as the largest kink where F is still below the target, and F is linear inside it.
Cost O(K^2) flops, no sort and no data-dependent loops.
"""

from __future__ import annotations

import jax.numpy as jnp


def clipped_linear_root(slope, offset, upper, target):
    """The smallest t with ``F(t) = target``; +inf when ``target >= sup F`` (all terms capped).

    Terms with ``slope <= 0`` are identically 0. ``upper`` may be +inf. Requires target >= 0.
    """
    target = jnp.asarray(target, dtype=jnp.result_type(slope))
    active = slope > 0
    safe_slope = jnp.where(active, slope, 1.0)
    lo = jnp.where(active, offset / safe_slope, jnp.inf)
    hi = jnp.where(active, (offset + upper) / safe_slope, jnp.inf)
    kinks = jnp.concatenate([lo, hi], axis=-1)
    finite = jnp.isfinite(kinks)
    t = jnp.where(finite, kinks, 0.0)[..., :, None]
    terms = jnp.clip(slope[..., None, :] * t - offset[..., None, :], 0.0, upper[..., None, :])
    values = jnp.sum(jnp.where(active[..., None, :], terms, 0.0), axis=-1)
    below = finite & (values <= target[..., None])
    # F is non-decreasing, so the largest kink with F <= target starts the linear piece holding
    # the root (no sort needed); F at the smallest kink is 0 <= target.
    k = jnp.max(jnp.where(below, kinks, -jnp.inf), axis=-1)
    f_k = jnp.max(jnp.where(below, values, -jnp.inf), axis=-1)
    k = jnp.where(jnp.isfinite(k), k, 0.0)
    f_k = jnp.where(jnp.isfinite(f_k), f_k, 0.0)
    in_segment = active & (lo <= k[..., None]) & (hi > k[..., None])
    rate = jnp.sum(jnp.where(in_segment, slope, 0.0), axis=-1)
    return jnp.where(rate > 0, k + (target - f_k) / jnp.where(rate > 0, rate, 1.0), jnp.inf)


def clipped_linear_solution(slope, offset, upper, t):
    """``clip(slope t - offset, 0, upper)`` per term, with t = inf giving ``upper``."""
    active = slope > 0
    finite_t = jnp.where(jnp.isfinite(t), t, 0.0)
    x = jnp.clip(slope * finite_t[..., None] - offset, 0.0, upper)
    x = jnp.where(jnp.isfinite(t)[..., None], x, upper)
    return jnp.where(active, x, 0.0)
