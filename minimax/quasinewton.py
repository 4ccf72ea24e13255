"""A quasi-Newton direction on the active face of the defender's budget set
(docs/solution-concepts.md §2.9.2).

The descent minimises ``phi`` over ``X = {x >= 0, sum c x <= P_D}`` (disabled levers fixed at
0). Near a minimiser the binding constraints stop changing: some coordinates sit at 0 with a
gradient pushing them out of X, and the budget is spent. On that *face* the problem is an
unconstrained minimisation in the free coordinates restricted to the budget plane, and a
projected gradient step zig-zags on it when phi is ill-conditioned (hundreds of iterations on
the 12-channel default game). So each descent iteration also tries the quasi-Newton step

    d = Pi H Pi g,        x(t) = P(x - t d),  t in NEWTON_STEPS,

where ``Pi`` projects onto the face (zero on the fixed coordinates -- off levers, and zeros
whose Lagrangian gradient ``g_i + lambda c_i`` is positive -- and orthogonal to ``c`` on the
free ones when the budget binds) and ``H`` is the BFGS estimate of the inverse Hessian
of phi on the face (Nocedal & Wright 2006, §6.1), built from the pairs
``s = x_k - x_{k-1}``, ``y = Pi_k g_k - Pi_{k-1} g_{k-1}``. A pair with ``s.y <= 0`` (phi is
not convex) leaves ``H`` as it is; a change of face restarts ``H`` at the Barzilai-Borwein
scale ``(s.s / s.y) I`` (or at 0, no quasi-Newton trial, when ``s.y <= 0``). The line search
keeps the best of these trials and its own gradient trials, and only a decrease of phi, so the
direction can cost iterations' worth of evaluations but never a worse iterate.

Vectors here are flat, of length ``n = 3K``; pure and jit/vmap-able.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

NEWTON_STEPS = (2.0, 1.0, 0.5, 0.25)  # lengths tried along the quasi-Newton direction
_CURVATURE = 1e-10  # a pair is used when s.y > _CURVATURE |s| |y|


class Face(NamedTuple):
    """The face of X a point lies on, as seen by the gradient there."""

    free: jax.Array  # (n,) 1.0 where the coordinate may move, else 0.0
    normal: jax.Array  # (n,) unit budget normal on the free coordinates; 0 when not binding


def face(x: jax.Array, g: jax.Array, cost: jax.Array, mask: jax.Array, budget) -> Face:
    """The face at ``x`` (flat, feasible) for the gradient ``g``.

    The budget binds when ``sum c x >= P_D (1 - 1e-9)``; its multiplier is estimated from the
    KKT condition ``g_i + lambda c_i = 0`` on the positive coordinates (least squares,
    ``lambda >= 0``; 0 when the budget does not bind). A coordinate is fixed when its lever is
    off or it sits at 0 with ``g_i + lambda c_i > 0`` (moving it into X raises the Lagrangian).
    """
    binding = jnp.sum(cost * x) >= budget * (1.0 - 1e-9)
    pos = jnp.where((x > 0.0) & (mask > 0), cost, 0.0)
    denom = jnp.sum(pos * pos)
    lam = -jnp.sum(pos * g) / jnp.where(denom > 0, denom, 1.0)
    lam = jnp.where(binding & (denom > 0), jnp.maximum(lam, 0.0), 0.0)
    free = jnp.where((mask > 0) & ~((x <= 0.0) & (g + lam * cost > 0.0)), 1.0, 0.0)
    c = cost * free
    norm = jnp.sqrt(jnp.sum(c * c))
    normal = jnp.where(binding & (norm > 0), c / jnp.where(norm > 0, norm, 1.0), 0.0)
    return Face(free=free, normal=normal)


def on_face(v: jax.Array, f: Face) -> jax.Array:
    """Orthogonal projection of ``v`` onto the face's directions (``Pi v``)."""
    v = v * f.free
    return v - jnp.sum(f.normal * v) * f.normal


def bfgs_update(h: jax.Array, s: jax.Array, y: jax.Array, same_face: jax.Array) -> jax.Array:
    """The inverse-Hessian estimate after the pair (s, y).

    ``H+ = (I - rho s y^T) H0 (I - rho y s^T) + rho s s^T``, ``rho = 1 / s.y``, with ``H0 = H``
    on the same face and ``H0 = (s.s / s.y) I`` when the face changed or ``H`` is still 0.
    A pair without positive curvature keeps ``H`` (restarts it at 0 on a new face).
    """
    sy = jnp.sum(s * y)
    ok = sy > _CURVATURE * jnp.sqrt(jnp.sum(s * s) * jnp.sum(y * y))
    safe = jnp.where(ok, sy, 1.0)
    fresh = ~same_face | (jnp.trace(h) == 0)
    base = jnp.where(fresh, jnp.sum(s * s) / safe * jnp.eye(h.shape[0], dtype=h.dtype), h)
    rho = 1.0 / safe
    # the product form expanded into a rank-2 correction: O(n^2), not two n x n products
    hy = jnp.sum(base * y[None, :], axis=1)
    new = base - rho * (jnp.outer(s, hy) + jnp.outer(hy, s)) \
        + (rho * rho * jnp.sum(y * hy) + rho) * jnp.outer(s, s)
    kept = jnp.where(same_face, h, jnp.zeros_like(h))
    return jnp.where(ok, new, kept)


def newton_direction(h: jax.Array, g: jax.Array, f: Face) -> jax.Array:
    """``Pi H Pi g``: the quasi-Newton step (before its length ``t``) on the face."""
    return on_face(jnp.sum(h * on_face(g, f)[None, :], axis=1), f)
