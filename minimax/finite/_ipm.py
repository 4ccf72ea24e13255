"""Thousands of zero-sum matrix games at once: a batched Mehrotra interior-point method in JAX.

Each game is rescaled to ``B = (A - min A) / (max A - min A) + 1``, whose entries lie in [1, 2]
(an increasing affine map of the payoffs keeps the equilibria). With ``B > 0`` the game is the
pair of LPs (the textbook substitution p = x / v, valid because the value v of B is >= 1):

    packing (defender):   max 1^T p  s.t.  B^T p + s = 1,  p, s >= 0      x = p / 1^T p
    covering (attacker):  min 1^T q  s.t.  B q >= 1,      q >= 0          y = q / 1^T q

The packing LP is in standard form ``min c^T z, M z = 1, z >= 0`` with ``z = (p, s)``,
``M = [B^T  I]`` and ``c = (-1, 0)``; the covering LP is its dual, with ``q`` the dual slack of
``s``. Mehrotra's predictor-corrector method (Mehrotra 1992; Wright, *Primal-Dual Interior-Point
Methods*, SIAM 1997, ch. 10) solves the Newton system through the normal equations

    (B^T D_p B + D_s) dlam = r,      D = diag(z / sigma),

an n x n positive-definite matrix that is factorised **once** per iteration (Cholesky) and reused
by the predictor and the corrector. Games with more columns than rows are transposed first, so
the factorised matrix is min(m, n) square.

Every iteration recomputes the exploitability ``max_j (x^T A)_j - min_i (A y)_i`` of the current
strategies in the units of ``A``; a game stops (its state is frozen under a mask) as soon as that
number is at most ``tol``. The best strategies seen are kept, so a game whose Cholesky breaks down
(non-finite step) or that runs out of iterations returns its best certified pair and
``converged=False``.

Speed on a CPU comes from four choices, each measured on 10,000 random 20 x 20 games at tol 1e-6
(2-core machine; times for the whole batch):

* Mehrotra's starting point and a step-to-boundary fraction ``max(0.95, 1 - mu)`` that grows as
  the duality measure ``mu`` falls: 7.2 iterations per game on average instead of 10.2 from a
  fixed interior point with the fixed fraction 0.95 (``experiments/ipm_tuning.py``).
* Chunks of about ``_CHUNK_BYTES`` of payoffs (327 games of 20 x 20) solved one after another
  inside the compiled program, so an iteration's arrays stay in cache, and ``K`` formed as a
  sum of rank-one terms (one fused elementwise kernel, where a batched 20 x 20 matmul took
  75 ms per iteration): together 1.8 s -> 0.85 s.
* Two phases: a chunk stops once at most an eighth of its games are still running, and those
  stragglers are gathered into as few chunks as possible to finish; a chunk otherwise runs as
  many iterations as its slowest game.
* Triangular solves unrolled into elementwise code (see ``_UNROLL_MAX``).

All of it is one ``jax.jit`` program, compiled once per batch shape; ``tol`` and ``max_iter``
are traced, so changing them does not recompile. A game's result does not depend on the other
games in the batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve

import minimax._x64  # noqa: F401  (float64 before any array is made)
from minimax.errors import GameSpecError
from minimax.finite._validate import as_batch

# Least fraction of the largest feasible step (Mehrotra's eta); the step uses max(this, 1 - mu).
# experiments/ipm_tuning.py (ten families of random games, tol 1e-6): a constant 0.999 needs
# fewer iterations on average than 0.99 (7.3 vs 7.6 on 20 x 20) but leaves long tails (up to 21
# on 20 x 5); max(0.95, 1 - mu) has both (7.2 on 20 x 20, at most 12 on every family).
_STEP_TO_BOUNDARY = 0.95
# Relative diagonal shift (one ulp of the largest pivot). 1e-13 was measured to stall games at
# exploitability 1e-6: near the optimum the pivots span ~30 orders of magnitude.
_REGULARISATION = 1e-16
# Up to this many columns the two triangular solves are unrolled into elementwise code: on CPU a
# batched triangular solve costs one library call per game (measured here, 10,000 games 20 x 20:
# ~50-100 ms per solve vs ~6 ms unrolled). Compile time grows like n^2, hence the cap.
_UNROLL_MAX = 24
# Payoff bytes per chunk on CPU (on an accelerator the batch is one chunk; not measured there).
# Measured on 10,000 games of 20 x 20 (medians of 3): 0.25 / 1 / 2 MiB 0.79 / 0.81 / 0.74 s,
# within noise of each other; 4 MiB 0.95 s; the whole batch as one chunk 1.49 s.
_CHUNK_BYTES = 1 << 20


class BatchSolution(NamedTuple):
    """Equilibria of a batch of zero-sum games; every field has a leading ``batch`` axis.

    ``exploitability`` is recomputed from the returned ``x`` and ``y`` after the loop, and
    ``converged`` is ``exploitability <= tol`` for that recomputed number.
    """

    x: np.ndarray  # (batch, m) defender strategies (rows), each sums to 1
    y: np.ndarray  # (batch, n) attacker strategies (columns), each sums to 1
    value: np.ndarray  # (batch,) (upper + lower) / 2, within exploitability / 2 of the value
    exploitability: np.ndarray  # (batch,) upper - lower >= 0, units of A
    upper: np.ndarray  # (batch,) max_j (x^T A)_j, the defender's guaranteed loss
    lower: np.ndarray  # (batch,) min_i (A y)_i, the loss the attacker's y guarantees
    iterations: np.ndarray  # (batch,) int, IPM iterations used by each game
    converged: np.ndarray  # (batch,) bool, exploitability <= tol


def zero_sum_batch(As: object, tol: float = 1e-6, max_iter: int = 60) -> BatchSolution:
    r"""Solve a batch of zero-sum games of one shape with a vmapped interior-point method.

    For each loss matrix :math:`A_k` (defender = rows minimises :math:`x^\top A_k y`) this runs
    Mehrotra's predictor-corrector IPM on the game's LP until the computed exploitability

    .. math:: e_k = \max_j (x_k^\top A_k)_j - \min_i (A_k y_k)_i \le \mathrm{tol},

    then freezes that game while the others continue. All games run in one compiled
    ``lax.while_loop`` (float64). See the module docstring for the formulation.

    Args:
      As: loss matrices, shape (batch, m, n), finite; m != n is fine.
      tol: absolute exploitability target in the units of ``A`` (> 0). Payoff ranges above
        about 1e6 times ``tol`` may need a larger ``tol`` (float64 round-off).
      max_iter: most IPM iterations (>= 1); games not certified by then report
        ``converged=False`` with their best strategies.

    Returns:
      A :class:`BatchSolution` of numpy arrays.

    Raises:
      GameSpecError: ``As`` is not a finite, non-empty 3-D array, or ``tol``/``max_iter`` are
        out of range.

    References:
      S. Mehrotra, "On the implementation of a primal-dual interior point method",
      SIAM J. Optim. 2(4):575-601 (1992).

    Example (matching pennies and its negation, both of value 0 with uniform strategies):

    >>> import numpy as np
    >>> mp = np.array([[1.0, -1.0], [-1.0, 1.0]])
    >>> sol = zero_sum_batch(np.stack([mp, -mp]))
    >>> sol.converged.tolist(), bool(np.abs(sol.value).max() < 1e-6), sol.x.round(6).tolist()
    ([True, True], True, [[0.5, 0.5], [0.5, 0.5]])
    """
    As = as_batch(As, "As")
    if not (isinstance(tol, (int, float, np.floating)) and np.isfinite(tol) and tol > 0):
        raise GameSpecError(f"tol must be a finite number > 0 (units of A); got {tol!r}.")
    if not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise GameSpecError(f"max_iter must be an integer >= 1; got {max_iter!r}.")
    _, m, n = As.shape
    # Factorise the smaller side: the game -A^T (players' roles swapped) has an m x m system.
    # Transposing on the host lets (m, n) and (n, m) batches share one compiled program.
    transpose = n > m
    G = -np.swapaxes(As, 1, 2) if transpose else As
    out = _solve(jnp.asarray(G), jnp.float64(tol), jnp.int32(max_iter))
    x, y, upper, lower, gap, iterations, converged = (np.asarray(v) for v in out)
    if transpose:  # in -A^T the attacker is the row player and losses change sign
        x, y, upper, lower = y, x, -lower, -upper
    return BatchSolution(
        x=x,
        y=y,
        value=0.5 * (upper + lower),
        exploitability=gap,
        upper=upper,
        lower=lower,
        iterations=iterations,
        converged=converged,
    )


@jax.jit
def _solve(G: jax.Array, tol: jax.Array, max_iter: jax.Array) -> tuple[jax.Array, ...]:
    """The compiled batch solve for loss matrices ``G`` of shape (batch, m, n), m >= n.

    Games are solved one chunk after another (``lax.map``), each chunk small enough for its
    arrays to stay in cache across iterations. A chunk is only as fast as its slowest game, so
    the solve has two phases: every chunk first iterates until at most an eighth of its games
    are still running; those stragglers are then gathered into as few chunks as possible and
    finished there (chunks with nothing left to do exit at once).
    """
    batch, m, n = G.shape
    chunk = min(batch, max(1, _CHUNK_BYTES // (8 * m * n)))
    if jax.default_backend() != "cpu":  # chunks serve CPU caches; an accelerator takes it whole
        chunk = batch
    state = jax.vmap(_init, in_axes=(0, 0, None))(_rescale(G), G, tol)

    def phase(i: jax.Array, state: _IPMState) -> _IPMState:
        # Running games first, stably (in phase 0 only games certified at the start move).
        order = jnp.argsort(_active(state, max_iter), descending=True, stable=True)
        cap = jnp.where(i == 0, chunk // 8, 0)
        part = _by_chunks(
            lambda g, st: _run(g, st, tol, max_iter, cap),
            chunk,
            G[order],
            jax.tree.map(lambda v: v[order], state),
        )
        return jax.tree.map(lambda full, p: full.at[order].set(p), state, part)

    # One loop over the two phases, so the iteration is compiled once.
    state = jax.lax.fori_loop(0, 2, phase, state)

    x, y = _normalise(state.x), _normalise(state.y)
    # Final certificate, from the strategies actually returned (not the loop's running value).
    upper = jnp.einsum("bm,bmn->bn", x, G).max(axis=1)
    lower = jnp.einsum("bmn,bn->bm", G, y).min(axis=1)
    gap = jnp.maximum(upper - lower, 0.0)
    return x, y, upper, lower, gap, state.iterations, gap <= tol


def _by_chunks(fn: Callable[..., Any], chunk: int, G: jax.Array, *args: Any) -> Any:
    """``fn`` applied to consecutive chunks of ``chunk`` games of ``G`` (and of ``args``).

    The last chunk ends at the last game, so it may overlap the one before; games in the
    overlap are computed twice, identically, and the later copy is kept.
    """
    batch = G.shape[0]
    n_chunks = -(-batch // chunk)
    starts = jnp.minimum(jnp.arange(n_chunks) * chunk, batch - chunk)

    def one(i: jax.Array):
        cut = jax.tree.map(lambda v: jax.lax.dynamic_slice_in_dim(v, i, chunk), (G, args))
        return fn(cut[0], *cut[1])

    out = jax.lax.map(one, starts)
    tail = batch - (n_chunks - 1) * chunk
    return jax.tree.map(
        lambda v: jnp.concatenate([v[:-1].reshape((-1,) + v.shape[2:]), v[-1, chunk - tail :]]),
        out,
    )


def _rescale(G: jax.Array) -> jax.Array:
    """Each game mapped affinely onto payoffs in [1, 2] (see the module docstring)."""
    lo = G.min(axis=(1, 2), keepdims=True)
    span = G.max(axis=(1, 2), keepdims=True) - lo
    return (G - lo) / jnp.where(span > 0, span, 1.0) + 1.0


def _active(st: _IPMState, max_iter: jax.Array) -> jax.Array:
    """Games still iterating: not certified, not stalled, iterations left."""
    return ~st.done & (st.iterations < max_iter)


def _run(
    G: jax.Array, st: _IPMState, tol: jax.Array, max_iter: jax.Array, cap: jax.Array
) -> _IPMState:
    """Iterate a chunk until at most ``cap`` of its games are active; the others stay frozen."""
    B = _rescale(G)

    def cond(st: _IPMState) -> jax.Array:
        return jnp.sum(_active(st, max_iter)) > cap

    def body(st: _IPMState) -> _IPMState:
        new = jax.vmap(_step, in_axes=(0, 0, 0, None))(B, G, st, tol)
        keep = ~_active(st, max_iter)  # certified games must not move
        return jax.tree.map(
            lambda old, nw: jnp.where(keep.reshape((-1,) + (1,) * (old.ndim - 1)), old, nw),
            st,
            new,
        )

    return jax.lax.while_loop(cond, body, st)


def _normalise(p: jax.Array) -> jax.Array:
    p = jnp.clip(p, 0.0, None)
    return p / p.sum(axis=-1, keepdims=True)


def _exploitability(G: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.max(x @ G) - jnp.min(G @ y)


class _IPMState(NamedTuple):
    """Per-game state of the packing LP ``min c^T z, [B^T I] z = 1, z >= 0`` and its dual."""

    z: jax.Array  # (m + n,) primal (p, s) > 0; p = x / value of the rescaled game
    lam: jax.Array  # (n,) equality multipliers; -lam = q, the attacker's scaled strategy
    sig: jax.Array  # (m + n,) dual slacks > 0; sig[m:] = q when dual-feasible
    x: jax.Array  # (m,) best defender strategy so far (rows of G)
    y: jax.Array  # (n,) best attacker strategy so far (columns of G)
    gap: jax.Array  # () exploitability of (x, y), units of A
    iterations: jax.Array  # () int32 iterations taken
    done: jax.Array  # () bool: certified (gap <= tol) or stalled (non-finite step)


def _init(B: jax.Array, G: jax.Array, tol: jax.Array) -> _IPMState:
    """Mehrotra's starting point (Mehrotra 1992, section 7; Wright 1997, p. 205).

    The least-squares solutions ``z = M^T (M M^T)^{-1} 1`` and ``lam = (M M^T)^{-1} M c`` with
    ``sig = c - M^T lam`` are shifted to be positive and then towards the central path. With
    ``M = [B^T I]`` the matrix ``M M^T = B^T B + I`` is positive definite. On 2,000 random
    20 x 20 games at tol 1e-6 it saves about two iterations over a fixed interior point (mean
    8.5 instead of 10.2, both with the step fraction fixed at 0.95;
    ``experiments/results/ipm_tuning.md``).
    """
    m, n = B.shape
    c = jnp.concatenate([-jnp.ones(m), jnp.zeros(n)])
    gram = B.T @ B + jnp.eye(n)
    # Both right-hand sides in one LAPACK solve (the start is computed once per game).
    rhs = jnp.stack([jnp.ones(n), -jnp.sum(B, axis=0)], axis=1)
    w, lam = cho_solve((jnp.linalg.cholesky(gram, symmetrize_input=False), True), rhs).T
    z = jnp.concatenate([B @ w, w])  # lam solves (M M^T) lam = M c = -B^T 1
    sig = c - jnp.concatenate([B @ lam, lam])
    z = z + jnp.maximum(-1.5 * jnp.min(z), 0.0)
    sig = sig + jnp.maximum(-1.5 * jnp.min(sig), 0.0)
    zs = z @ sig
    z, sig = z + 0.5 * zs / jnp.sum(sig), sig + 0.5 * zs / jnp.sum(z)
    x, y = jnp.full((m,), 1.0 / m), jnp.full((n,), 1.0 / n)
    gap = _exploitability(G, x, y)
    return _IPMState(
        z=z,
        lam=lam,
        sig=sig,
        x=x,
        y=y,
        gap=gap,
        iterations=jnp.int32(0),
        done=gap <= tol,
    )


def _step_fraction(mu: jax.Array) -> jax.Array:
    """Fraction of the largest feasible step taken: bolder as the duality measure mu -> 0."""
    return jnp.maximum(_STEP_TO_BOUNDARY, 1.0 - mu)


def _max_step(v: jax.Array, dv: jax.Array) -> jax.Array:
    """Largest alpha in (0, inf] with v + alpha dv >= 0."""
    ratios = jnp.where(dv < 0, -v / jnp.where(dv < 0, dv, -1.0), jnp.inf)
    return ratios.min()


def _cho_solve(chol: jax.Array, r: jax.Array) -> jax.Array:
    """Solve ``L L^T u = r`` for lower-triangular ``L`` (one game; vmapped by the caller)."""
    n = r.shape[0]
    if n > _UNROLL_MAX:
        return cho_solve((chol, True), r)
    # Forward then back substitution one scalar at a time: once vmapped, every operation is an
    # elementwise op over the batch instead of a library call per game.
    w: list[jax.Array] = []
    for j in range(n):
        acc = r[j]
        for k in range(j):
            acc = acc - chol[j, k] * w[k]
        w.append(acc / chol[j, j])
    u: list[jax.Array] = list(w)
    for j in reversed(range(n)):
        acc = w[j]
        for k in range(j + 1, n):
            acc = acc - chol[k, j] * u[k]
        u[j] = acc / chol[j, j]
    return jnp.stack(u)


def _step(B: jax.Array, G: jax.Array, st: _IPMState, tol: jax.Array) -> _IPMState:
    """One Mehrotra predictor-corrector iteration (one Cholesky factorisation)."""
    m, n = B.shape
    z, lam, sig = st.z, st.lam, st.sig
    big_n = m + n
    c = jnp.concatenate([-jnp.ones(m), jnp.zeros(n)])

    def M(v):  # (m + n,) -> (n,)
        return B.T @ v[:m] + v[m:]

    def Mt(w):  # (n,) -> (m + n,)
        return jnp.concatenate([B @ w, w])

    r_b = 1.0 - M(z)
    r_c = c - Mt(lam) - sig
    mu = z @ sig / big_n
    d = z / sig
    # B lies in [1, 2], so every diagonal entry of K is at most 4 sum(d_p) + max(d_s): a bound
    # on the largest pivot that needs no extra pass over K.
    shift = _REGULARISATION * (4.0 * jnp.sum(d[:m]) + jnp.max(d[m:]))
    K = jnp.diag(d[m:] + shift)
    dB = d[:m, None] * B
    # m rank-one terms, one fused elementwise kernel once vmapped. Scaling one factor first keeps
    # the loop-invariant products B_k B_k^T from being hoisted out of the loop and re-read.
    for k in range(m):
        K = K + jnp.outer(dB[k], B[k])
    chol = jnp.linalg.cholesky(K, symmetrize_input=False)  # K is symmetric by construction

    def newton(r_xs):  # solves M dz = r_b, M^T dlam + dsig = r_c, sig dz + z dsig = r_xs
        t = (r_xs - z * r_c) / sig
        dlam = _cho_solve(chol, r_b - M(t))
        mt = Mt(dlam)
        return t + d * mt, dlam, r_c - mt

    def predictor_corrector(carry, corrector):
        # Step 0 is the predictor (affine-scaling) direction; step 1 the corrector, which adds
        # the second-order term and Mehrotra's centring. Written as a two-step scan so that the
        # Newton solve is compiled once; the factorisation above serves both.
        dz_a, dsig_a = carry
        ap = jnp.minimum(1.0, _max_step(z, dz_a))
        ad = jnp.minimum(1.0, _max_step(sig, dsig_a))
        mu_aff = (z + ap * dz_a) @ (sig + ad * dsig_a) / big_n
        centring = (mu_aff / mu) ** 3
        r_xs = -z * sig + jnp.where(corrector, centring * mu - dz_a * dsig_a, 0.0)
        dz, dlam, dsig = newton(r_xs)
        return (dz, dsig), dlam

    zeros = (jnp.zeros_like(z), jnp.zeros_like(sig))
    (dz, dsig), dlams = jax.lax.scan(predictor_corrector, zeros, jnp.array([False, True]))
    dlam = dlams[1]
    eta = _step_fraction(mu)
    ap = jnp.minimum(1.0, eta * _max_step(z, dz))
    ad = jnp.minimum(1.0, eta * _max_step(sig, dsig))
    z_new, lam_new, sig_new = z + ap * dz, lam + ad * dlam, sig + ad * dsig

    finite = jnp.all(jnp.isfinite(z_new)) & jnp.all(jnp.isfinite(sig_new))
    finite = finite & jnp.all(jnp.isfinite(lam_new)) & (jnp.min(z_new) > 0)
    finite = finite & (jnp.min(sig_new) > 0)
    x, y = _normalise(z_new[:m]), _normalise(sig_new[m:])
    gap = _exploitability(G, x, y)
    better = finite & (gap < st.gap)
    return _IPMState(
        z=jnp.where(finite, z_new, z),
        lam=jnp.where(finite, lam_new, lam),
        sig=jnp.where(finite, sig_new, sig),
        x=jnp.where(better, x, st.x),
        y=jnp.where(better, y, st.y),
        gap=jnp.where(better, gap, st.gap),
        iterations=st.iterations + 1,
        done=(jnp.where(better, gap, st.gap) <= tol) | ~finite,
    )
