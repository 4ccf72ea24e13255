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
free ones when the budget binds) and ``H`` is the limited-memory BFGS estimate of
the inverse Hessian of phi on the face (Nocedal & Wright 2006, §7.2), built from the last
:data:`MEMORY` pairs ``s = x_k - x_{k-1}``, ``y = Pi_k g_k - Pi_{k-1} g_{k-1}`` on
``H0 = (s.y / y.y) I``. A pair with ``s.y <= 0`` (phi is not convex) is not stored; a change
of face empties the memory (no quasi-Newton trial until a pair is stored). The line search
keeps the best of these trials and its own gradient trials, and only a decrease of phi, so the
direction can cost iterations' worth of evaluations but never a worse iterate.

Vectors here are flat, of length ``n = 3K``; pure and jit/vmap-able.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

NEWTON_STEPS = (2.0, 1.0, 0.5, 0.25)  # lengths tried along the quasi-Newton direction
MEMORY = 6  # curvature pairs kept (limited-memory BFGS)
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


class Pairs(NamedTuple):
    """The last :data:`MEMORY` curvature pairs on the current face, oldest first."""

    s: jax.Array  # (MEMORY, n) steps x_k - x_{k-1}, budget units
    y: jax.Array  # (MEMORY, n) changes of the face gradient Pi g
    rho: jax.Array  # (MEMORY,) 1 / s.y; 0 marks an empty slot


def no_pairs(n: int) -> Pairs:
    """An empty memory (the quasi-Newton direction is then 0: no trial)."""
    return Pairs(s=jnp.zeros((MEMORY, n)), y=jnp.zeros((MEMORY, n)), rho=jnp.zeros(MEMORY))


def push_pair(pairs: Pairs, s: jax.Array, y: jax.Array, same_face: jax.Array) -> Pairs:
    """The memory after the pair (s, y): appended (the oldest dropped) when ``s.y > 0``;
    emptied first when the face changed. A pair without positive curvature (phi is not
    convex) is not stored."""
    sy = jnp.sum(s * y)
    ok = sy > _CURVATURE * jnp.sqrt(jnp.sum(s * s) * jnp.sum(y * y))
    keep = jnp.where(same_face, 1.0, 0.0)
    old = Pairs(s=pairs.s * keep, y=pairs.y * keep, rho=pairs.rho * keep)
    new = Pairs(s=jnp.concatenate([old.s[1:], s[None]]),
                y=jnp.concatenate([old.y[1:], y[None]]),
                rho=jnp.concatenate([old.rho[1:], (1.0 / jnp.where(ok, sy, 1.0))[None]]))
    return jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, old)


def inverse_hessian_times(pairs: Pairs, v: jax.Array) -> jax.Array:
    """``H v`` for the BFGS inverse-Hessian estimate built from the stored pairs, oldest first,
    on ``H0 = (s.y / y.y) I`` of the newest pair (the two-loop recursion, Nocedal & Wright
    Algorithm 7.4): O(MEMORY n), where the full matrix costs O(n^2) per update. 0 when the
    memory is empty."""
    q = v
    alphas = []
    for i in reversed(range(MEMORY)):
        a = pairs.rho[i] * jnp.sum(pairs.s[i] * q)
        alphas.append(a)
        q = q - a * pairs.y[i]
    yy = jnp.sum(pairs.y[-1] * pairs.y[-1])
    gamma = jnp.where(pairs.rho[-1] > 0, 1.0 / (pairs.rho[-1] * jnp.where(yy > 0, yy, 1.0)),
                      0.0)
    r = gamma * q
    for i, a in zip(range(MEMORY), reversed(alphas), strict=True):
        b = pairs.rho[i] * jnp.sum(pairs.y[i] * r)
        r = r + (a - b) * pairs.s[i]
    return r


def newton_direction(pairs: Pairs, g: jax.Array, f: Face) -> jax.Array:
    """``Pi H Pi g``: the quasi-Newton step (before its length ``t``) on the face."""
    return on_face(inverse_hessian_times(pairs, on_face(g, f)), f)
