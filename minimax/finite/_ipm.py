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
number is at most ``tol``. The best strategies seen are kept. That float64 number is only the
loop's stopping rule: after the loop, the returned strategies get a certificate that holds in
exact arithmetic (``_certify``), and every game it does not certify to ``tol`` (a stalled or
non-finite step, ``max_iter`` reached, or round-off at large payoff scales) is solved again by
an exact LP on the host and flagged ``finished_exactly``. Few games need it: at tol 1e-6, none
of 50,000 random 20 x 20 games on seeds 0-4 (``experiments/bench_finite_batch.py``), one of
10,000 on seed 9 and one on seed 10 (each stalled on a non-finite step near 1e-6).

Speed on a CPU comes from four choices, each measured on 10,000 random 20 x 20 games at tol 1e-6
(2-core machine; times for the whole batch):

* Mehrotra's starting point and a step-to-boundary fraction ``max(0.95, 1 - mu)`` that grows as
  the duality measure ``mu`` falls: 7.2 iterations per game on average instead of 10.2 from a
  fixed interior point with the fixed fraction 0.95 (``experiments/ipm_tuning.py``).
* Chunks of about ``IPMOptions.chunk_bytes`` of payoffs (327 games of 20 x 20) solved one after
  another, so an iteration's arrays stay in cache, and ``K`` formed as a sum of rank-one terms
  (one fused elementwise kernel, where a batched 20 x 20 matmul took 75 ms per iteration):
  together 1.8 s -> 0.85 s.
* Passes: a chunk stops once at most an eighth of its games are still running, and those
  stragglers are gathered into as few chunks as possible to go on; a chunk otherwise runs as
  many iterations as its slowest game. On 10,000 games of 20 x 20 the chunks run 83,000
  game-iterations for the 72,500 the games need (a stopping fraction of 1/2 instead of 1/8:
  77,000, in more calls, no faster measured).
* Triangular solves unrolled into elementwise code (see ``IPMOptions.unroll_max``).

The compiled program solves one chunk of a fixed number of games (``chunk_games(m, n)``); the
host cuts any batch into such chunks (the last padded with all-zero games, which are certified
at the start) and gathers the stragglers, so there is one program per game shape (m, n) and
options record, whatever the batch size. ``tol`` and ``max_iter`` are traced, so changing them
does not recompile either. A game's result does not depend on the other games in the batch.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve

import minimax._x64  # noqa: F401  (float64 before any array is made)
from minimax.errors import GameSpecError, SolverError
from minimax.finite._certify import certify
from minimax.finite._lp import solve_lp
from minimax.finite._validate import as_batch, as_options, check_tol
from minimax.serial import namedtuple_to_dict, to_plain

STATUSES = ("certified", "gap_above_tol")


class IPMOptions(NamedTuple):
    """Settings of the batched interior-point method; each says which measurement chose it.

    Hashable, so it is a static argument of the compiled program: a new record compiles a new
    program, the same record reuses it.
    """

    # Least fraction of the largest feasible step (Mehrotra's eta). experiments/ipm_tuning.py
    # (ten families of random games, tol 1e-6): a constant 0.999 needs fewer iterations on
    # average than 0.99 (7.3 vs 7.6 on 20 x 20) but leaves long tails (up to 21 on 20 x 5);
    # max(0.95, 1 - mu) has both (7.2 on 20 x 20, at most 12 on every family).
    step_to_boundary: float = 0.95
    # True: the fraction is max(step_to_boundary, 1 - mu) (bolder as mu -> 0); False: constant.
    adaptive_step: bool = True
    # "mehrotra" (Mehrotra 1992, section 7) or "fixed" (a centred interior point; ~2 more
    # iterations per game, kept for the tuning experiment).
    start: str = "mehrotra"
    # Relative diagonal shift (one ulp of the largest pivot). 1e-13 was measured to stall games
    # at exploitability 1e-6: near the optimum the pivots span ~30 orders of magnitude.
    regularisation: float = 1e-16
    # Up to this many columns the two triangular solves are unrolled into elementwise code: on
    # CPU a batched triangular solve costs one library call per game (10,000 games 20 x 20:
    # ~50-100 ms per solve vs ~6 ms unrolled). Compile time grows like n^2, hence the cap.
    unroll_max: int = 24
    # Payoff bytes per compiled chunk; None: 1 MiB on CPU (10,000 games of 20 x 20, medians of
    # 3: 0.25 / 1 / 2 MiB 0.79 / 0.81 / 0.74 s; 4 MiB 0.95 s; one chunk 1.49 s), 64 MiB on an
    # accelerator (not tuned there).
    chunk_bytes: int | None = None
    # A chunk's first pass stops once at most this fraction of its games still run; those
    # stragglers are then gathered into as few chunks as possible to finish.
    straggler_fraction: float = 0.125


def check_options(options: object) -> IPMOptions:
    """``options`` (None, an :class:`IPMOptions` or a dict of its fields) checked field by field."""
    o = as_options(options, IPMOptions, "IPM")
    checks = [
        ("step_to_boundary", isinstance(o.step_to_boundary, float) and 0 < o.step_to_boundary < 1,
         "a float in (0, 1)"),
        ("adaptive_step", isinstance(o.adaptive_step, bool), "True or False"),
        ("start", o.start in ("mehrotra", "fixed"), "'mehrotra' or 'fixed'"),
        ("regularisation", isinstance(o.regularisation, float) and 0 <= o.regularisation < 1e-3,
         "a float in [0, 1e-3)"),
        ("unroll_max", isinstance(o.unroll_max, int) and o.unroll_max >= 0, "an integer >= 0"),
        ("chunk_bytes", o.chunk_bytes is None
         or (isinstance(o.chunk_bytes, int) and o.chunk_bytes >= 1), "None or an integer >= 1"),
        ("straggler_fraction", isinstance(o.straggler_fraction, float)
         and 0 <= o.straggler_fraction < 1, "a float in [0, 1)"),
    ]
    for field, ok, allowed in checks:
        if not ok:
            raise GameSpecError(
                f"options.{field} must be {allowed}; got {getattr(o, field)!r}."
            )
    return o


class BatchSolution(NamedTuple):
    """Equilibria of a batch of zero-sum games; every field has a leading ``batch`` axis.

    ``upper``, ``lower`` and ``exploitability`` are computed after the solve from the returned
    ``x`` and ``y`` and hold in exact arithmetic (``x`` and ``y`` read as ``x / sum(x)``,
    ``y / sum(y)``): at large payoff scales the float64 round-off is bounded, and the games near
    ``tol`` are re-checked exactly.
    """

    x: np.ndarray  # (batch, m) defender strategies (rows), each sums to 1
    y: np.ndarray  # (batch, n) attacker strategies (columns), each sums to 1
    value: np.ndarray  # (batch,) (upper + lower) / 2, within exploitability / 2 of the value
    exploitability: np.ndarray  # (batch,) upper - lower >= 0, units of A
    upper: np.ndarray  # (batch,) >= max_j (x^T A)_j, the defender's guaranteed loss
    lower: np.ndarray  # (batch,) <= min_i (A y)_i, the loss the attacker's y guarantees
    iterations: np.ndarray  # (batch,) int, IPM iterations used by each game
    converged: np.ndarray  # (batch,) bool, exploitability <= tol
    finished_exactly: np.ndarray  # (batch,) bool: the IPM did not certify it; an exact LP did
    status: np.ndarray  # (batch,) str: "certified" or "gap_above_tol" (only with strict=False)
    # (batch,) str: how the IPM's own run ended, before any exact-LP finishing: "converged"
    # (certified to tol by its stopping rule), "stalled" (a non-finite or non-interior step),
    # "budget_exhausted" (max_iter reached); see minimax.solution.TERMINATIONS
    termination: np.ndarray

    def to_dict(self) -> dict[str, object]:
        """JSON-ready dict of lists, one entry per game in each."""
        return namedtuple_to_dict(self)

    def row(self, k: int) -> dict[str, object]:
        """Game ``k`` of the batch as a JSON-ready dict (the same keys, one game's values)."""
        return {name: to_plain(v[k]) for name, v in self._asdict().items()}


def zero_sum_batch(
    As: object,
    tol: float = 1e-6,
    max_iter: int = 60,
    *,
    options: IPMOptions | dict | None = None,
    strict: bool = True,
) -> BatchSolution:
    r"""Solve a batch of zero-sum games of one shape with a vmapped interior-point method.

    For each loss matrix :math:`A_k` (defender = rows minimises :math:`x^\top A_k y`) this runs
    Mehrotra's predictor-corrector IPM on the game's LP until the computed exploitability

    .. math:: e_k = \max_j (x_k^\top A_k)_j - \min_i (A_k y_k)_i \le \mathrm{tol},

    then freezes that game while the others continue. Afterwards every game's exploitability
    is bounded soundly (exact arithmetic for games near ``tol``), and each game the IPM did not
    certify (stalled, non-finite step, ``max_iter`` reached, or float64 round-off hiding a gap)
    is solved again by an exact LP on the host (HiGHS) and flagged ``finished_exactly``. So
    every returned game has exploitability at most ``tol``, or the call raises (see
    ``strict``). All IPM work runs in one compiled program per game shape (m, n), whatever
    the batch size: batches are cut into fixed-size chunks, the last one padded.

    Args:
      As: loss matrices, shape (batch, m, n), finite and real; m != n is fine.
      tol: absolute exploitability target in the units of ``A`` (> 0). Float64 strategies
        resolve exploitability only to about ``(m + n) 2^-53 max|A|``; a smaller ``tol`` can
        be met only by games with pure equilibria.
      max_iter: most IPM iterations per game (>= 1); games not certified by then are finished
        by the exact LP.
      options: :class:`IPMOptions` (or a dict of its fields); None for the defaults.
      strict: if True (default), raise when some game misses ``tol`` even after the exact LP;
        if False, return those games with ``status="gap_above_tol"`` and their certified
        (larger) exploitability.

    Returns:
      A :class:`BatchSolution` of numpy arrays.

    Raises:
      GameSpecError: ``As`` is not a finite, non-empty, real 3-D array, or ``tol``,
        ``max_iter`` or ``options`` are out of range.
      SolverError: (``strict=True``) some game cannot be certified to ``tol`` in float64; the
        message names the games, their best exploitability and the fix, and the exception's
        ``solution`` attribute holds the full :class:`BatchSolution`.

    References:
      S. Mehrotra, "On the implementation of a primal-dual interior point method",
      SIAM J. Optim. 2(4):575-601 (1992).

    Example (matching pennies and its negation, both of value 0 with uniform strategies):

    >>> import numpy as np
    >>> mp = np.array([[1.0, -1.0], [-1.0, 1.0]])
    >>> sol = zero_sum_batch(np.stack([mp, -mp]))
    >>> sol.status.tolist(), bool(np.abs(sol.value).max() < 1e-6), sol.x.round(6).tolist()
    (['certified', 'certified'], True, [[0.5, 0.5], [0.5, 0.5]])
    """
    As = as_batch(As, "As")
    tol = check_tol(tol)
    if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer) or max_iter < 1:
        raise GameSpecError(f"max_iter must be an integer >= 1; got {max_iter!r}.")
    opts = check_options(options)
    _, m, n = As.shape
    # Factorise the smaller side: the game -A^T (players' roles swapped) has an m x m system.
    # Transposing on the host lets (m, n) and (n, m) batches share one compiled program.
    transpose = n > m
    G = -np.swapaxes(As, 1, 2) if transpose else As
    state = _solve(np.ascontiguousarray(G), tol, int(max_iter), opts)
    x, y = _normalise_np(state.x), _normalise_np(state.y)
    if transpose:  # in -A^T the attacker is the row player
        x, y = y, x
    cert = certify(As, x, y, tol)
    upper, lower, gap = cert.upper, cert.lower, cert.gap
    redo = np.flatnonzero(~(gap <= tol))
    finished = np.zeros(len(As), dtype=bool)
    for k in redo:  # the few games the IPM could not certify: exact LP on the host
        xk, yk, _, _ = solve_lp(As[k])
        ck = certify(As[k : k + 1], xk[None], yk[None], tol)
        if not ck.gap[0] >= gap[k]:  # (also when the IPM's gap is NaN)
            x[k], y[k] = xk, yk
            upper[k], lower[k], gap[k] = ck.upper[0], ck.lower[0], ck.gap[0]
            finished[k] = True
    converged = gap <= tol
    sol = BatchSolution(
        x=x,
        y=y,
        value=0.5 * upper + 0.5 * lower,  # (halved first: no overflow at +-1.8e308)
        exploitability=gap,
        upper=upper,
        lower=lower,
        iterations=state.iterations,
        converged=converged,
        finished_exactly=finished,
        status=np.where(converged, STATUSES[0], STATUSES[1]),
        termination=_termination(state, tol, max_iter),
    )
    if strict and not converged.all():
        raise _missed(As, sol, tol)
    return sol


def _termination(state: IPMState, tol: float, max_iter: int) -> np.ndarray:
    """Per game: "converged", "stalled" or "budget_exhausted" (the IPM's run, on the host)."""
    reached = np.asarray(state.gap) <= tol
    stalled = np.asarray(state.done) & ~reached
    return np.where(reached, "converged", np.where(stalled, "stalled", "budget_exhausted"))


def _missed(As: np.ndarray, sol: BatchSolution, tol: float) -> SolverError:
    bad = np.flatnonzero(~sol.converged)
    k = int(bad[np.argmax(sol.exploitability[bad])])
    _, m, n = As.shape
    scale = float(np.abs(As[k]).max())
    err = SolverError(
        f"{len(bad)} of {len(As)} games cannot be certified to tol={tol:g}, even by the exact LP "
        f"(games {bad[:10].tolist()}{'...' if len(bad) > 10 else ''}); the worst, game {k} with "
        f"payoffs up to {scale:.3g}, reaches exploitability {sol.exploitability[k]:.3g}. Float64 "
        f"strategies resolve exploitability only to about (m + n) 2^-53 max|A| = "
        f"{(m + n) * 2.0**-53 * scale:.3g} here. Pass tol >= {sol.exploitability[bad].max():.3g}, "
        f"rescale the payoffs, or strict=False to get these games with "
        f"status='gap_above_tol' (the exception's .solution holds the whole batch)."
    )
    err.solution = sol  # type: ignore[attr-defined]
    return err


def _normalise_np(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 0.0, None)
    total = p.sum(axis=-1, keepdims=True)
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / p.shape[-1])


def chunk_games(m: int, n: int, options: IPMOptions = IPMOptions()) -> int:
    """Games per compiled chunk for (m, n) games: every call of that shape uses this many."""
    size = options.chunk_bytes
    if size is None:
        size = 1 << 20 if jax.default_backend() == "cpu" else 1 << 26
    return max(1, size // (8 * m * n))


def _solve(G: np.ndarray, tol: float, max_iter: int, opts: IPMOptions) -> IPMState:
    """IPM states (numpy) of loss matrices ``G`` (batch, m, n), m >= n, by fixed-size chunks.

    The first pass runs each chunk (the last padded with all-zero games, certified at the
    start) until at most ``straggler_fraction`` of its games still run. Each later pass gathers
    the games still running into full chunks and does the same; the games that do not fill a
    chunk are finished in one more chunk (padded with finished games, which do not move). Every
    call has the same shapes, so one compiled program serves any batch size.
    """
    batch, m, n = G.shape
    size = chunk_games(m, n, opts)
    chunks = -(-batch // size)
    padded = np.zeros((chunks * size, m, n))
    padded[:batch] = G
    blank = IPMState(
        z=np.ones((size, m + n)),
        lam=np.zeros((size, n)),
        sig=np.ones((size, m + n)),
        x=np.zeros((size, m)),
        y=np.zeros((size, n)),
        gap=np.zeros(size),
        iterations=np.zeros(size, np.int32),
        done=np.zeros(size, bool),
    )
    tol_, max_iter_ = np.float64(tol), np.int32(max_iter)
    cap = np.int32(int(size * opts.straggler_fraction))

    def run(block, state, fresh, cap):
        return _run_chunk(block, state, np.bool_(fresh), tol_, max_iter_, cap, opts=opts)

    parts = [run(padded[i * size : (i + 1) * size], blank, True, cap) for i in range(chunks)]
    state = jax.tree.map(lambda *v: np.concatenate([np.asarray(a) for a in v]), *parts)
    while True:
        waiting = np.flatnonzero(~state.done & (state.iterations < max_iter))
        if not len(waiting):
            return jax.tree.map(lambda v: v[:batch], state)
        # A full chunk starts with more than ``cap`` running games, so every call progresses;
        # the remainder is finished (cap 0), padded with a game that does not move if any.
        idle = np.flatnonzero(state.done | (state.iterations >= max_iter))
        pad = idle[0] if len(idle) else waiting[0]
        for s in range(0, len(waiting), size):
            block = waiting[s : s + size]
            rows = np.concatenate([block, np.full(size - len(block), pad)])
            part_cap = cap if len(block) == size else np.int32(0)
            out = run(padded[rows], IPMState(*(v[rows] for v in state)), False, part_cap)
            for full, part in zip(state, out, strict=True):
                full[block] = np.asarray(part)[: len(block)]


@functools.partial(jax.jit, static_argnames=("opts",))
def _run_chunk(
    G: jax.Array,
    state: IPMState,
    fresh: jax.Array,
    tol: jax.Array,
    max_iter: jax.Array,
    cap: jax.Array,
    *,
    opts: IPMOptions,
) -> IPMState:
    """The compiled program: iterate one chunk of games (size, m, n) until at most ``cap`` of
    them are still running, starting from the IPM's starting point if ``fresh``."""
    B = _rescale(G)
    state = jax.lax.cond(
        fresh,
        lambda: jax.vmap(_init, in_axes=(0, 0, None, None))(B, G, tol, opts),
        lambda: state,
    )

    def cond(st: IPMState) -> jax.Array:
        return jnp.sum(_active(st, max_iter)) > cap

    def body(st: IPMState) -> IPMState:
        new = jax.vmap(_step, in_axes=(0, 0, 0, None, None))(B, G, st, tol, opts)
        keep = ~_active(st, max_iter)  # certified games must not move
        return jax.tree.map(
            lambda old, nw: jnp.where(keep.reshape((-1,) + (1,) * (old.ndim - 1)), old, nw),
            st,
            new,
        )

    return jax.lax.while_loop(cond, body, state)


def _rescale(G: jax.Array) -> jax.Array:
    """Each game mapped affinely onto payoffs in [1, 2] (see the module docstring)."""
    lo = G.min(axis=(1, 2), keepdims=True)
    span = G.max(axis=(1, 2), keepdims=True) - lo
    return (G - lo) / jnp.where(span > 0, span, 1.0) + 1.0


def _active(st: IPMState, max_iter: jax.Array) -> jax.Array:
    """Games still iterating: not certified, not stalled, iterations left."""
    return ~st.done & (st.iterations < max_iter)


def _normalise(p: jax.Array) -> jax.Array:
    p = jnp.clip(p, 0.0, None)
    return p / p.sum(axis=-1, keepdims=True)


def _exploitability(G: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.max(x @ G) - jnp.min(G @ y)


def ipm_init(A: object, tol: float = 1e-6, options: IPMOptions | dict | None = None
             ) -> IPMState:
    """The IPM's state before its first iteration, for one loss matrix ``A`` (m, n).

    With :func:`ipm_step` this is the method of :func:`zero_sum_batch` one game and one
    iteration at a time (no chunks, no transposition, no exact-LP finishing): for a game with
    m >= n the iterates are those of the batch. ``state.done`` is set once the float64
    exploitability ``state.gap`` is at most ``tol`` or a step was not finite.
    """
    G = jnp.asarray(as_batch(np.asarray(A, dtype=float)[None], "A")[0])
    return _init(_rescale(G[None])[0], G, jnp.float64(check_tol(tol)), check_options(options))


def ipm_step(A: object, state: IPMState, tol: float = 1e-6,
             options: IPMOptions | dict | None = None) -> IPMState:
    """One Mehrotra predictor-corrector iteration of :func:`ipm_init`'s state (a finished
    state, ``done``, is returned unchanged, as in the batch)."""
    G = jnp.asarray(as_batch(np.asarray(A, dtype=float)[None], "A")[0])
    new = _step(_rescale(G[None])[0], G, state, jnp.float64(check_tol(tol)),
                check_options(options))
    return jax.tree.map(lambda old, nw: jnp.where(state.done, old, nw), state, new)


class IPMState(NamedTuple):
    """Per-game state of the packing LP ``min c^T z, [B^T I] z = 1, z >= 0`` and its dual."""

    z: jax.Array  # (m + n,) primal (p, s) > 0; p = x / value of the rescaled game
    lam: jax.Array  # (n,) equality multipliers; -lam = q, the attacker's scaled strategy
    sig: jax.Array  # (m + n,) dual slacks > 0; sig[m:] = q when dual-feasible
    x: jax.Array  # (m,) best defender strategy so far (rows of G)
    y: jax.Array  # (n,) best attacker strategy so far (columns of G)
    gap: jax.Array  # () exploitability of (x, y), units of A
    iterations: jax.Array  # () int32 iterations taken
    done: jax.Array  # () bool: certified (gap <= tol) or stalled (non-finite step)


def _init(B: jax.Array, G: jax.Array, tol: jax.Array, opts: IPMOptions) -> IPMState:
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
    if opts.start == "fixed":  # a strictly feasible, roughly centred point (small p, large q)
        p = jnp.full((m,), 0.5 / (m * B.max()))
        q = jnp.full((n,), 2.0 / (n * B.min()))
        z, lam, sig = jnp.concatenate([p, 1.0 - B.T @ p]), -q, jnp.concatenate([B @ q - 1.0, q])
    x, y = jnp.full((m,), 1.0 / m), jnp.full((n,), 1.0 / n)
    gap = _exploitability(G, x, y)
    return IPMState(
        z=z,
        lam=lam,
        sig=sig,
        x=x,
        y=y,
        gap=gap,
        iterations=jnp.int32(0),
        done=gap <= tol,
    )


def _step_fraction(mu: jax.Array, opts: IPMOptions) -> jax.Array:
    """Fraction of the largest feasible step taken: bolder as the duality measure mu -> 0."""
    if not opts.adaptive_step:
        return jnp.full_like(mu, opts.step_to_boundary)
    return jnp.maximum(opts.step_to_boundary, 1.0 - mu)


def _max_step(v: jax.Array, dv: jax.Array) -> jax.Array:
    """Largest alpha in (0, inf] with v + alpha dv >= 0."""
    ratios = jnp.where(dv < 0, -v / jnp.where(dv < 0, dv, -1.0), jnp.inf)
    return ratios.min()


def _cho_solve(chol: jax.Array, r: jax.Array, unroll_max: int) -> jax.Array:
    """Solve ``L L^T u = r`` for lower-triangular ``L`` (one game; vmapped by the caller)."""
    n = r.shape[0]
    if n > unroll_max:
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


def _step(
    B: jax.Array, G: jax.Array, st: IPMState, tol: jax.Array, opts: IPMOptions
) -> IPMState:
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
    shift = opts.regularisation * (4.0 * jnp.sum(d[:m]) + jnp.max(d[m:]))
    K = jnp.diag(d[m:] + shift)
    dB = d[:m, None] * B
    # m rank-one terms, one fused elementwise kernel once vmapped. Scaling one factor first keeps
    # the loop-invariant products B_k B_k^T from being hoisted out of the loop and re-read.
    for k in range(m):
        K = K + jnp.outer(dB[k], B[k])
    chol = jnp.linalg.cholesky(K, symmetrize_input=False)  # K is symmetric by construction

    def newton(r_xs):  # solves M dz = r_b, M^T dlam + dsig = r_c, sig dz + z dsig = r_xs
        t = (r_xs - z * r_c) / sig
        dlam = _cho_solve(chol, r_b - M(t), opts.unroll_max)
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
    eta = _step_fraction(mu, opts)
    ap = jnp.minimum(1.0, eta * _max_step(z, dz))
    ad = jnp.minimum(1.0, eta * _max_step(sig, dsig))
    z_new, lam_new, sig_new = z + ap * dz, lam + ad * dlam, sig + ad * dsig

    finite = jnp.all(jnp.isfinite(z_new)) & jnp.all(jnp.isfinite(sig_new))
    finite = finite & jnp.all(jnp.isfinite(lam_new)) & (jnp.min(z_new) > 0)
    finite = finite & (jnp.min(sig_new) > 0)
    x, y = _normalise(z_new[:m]), _normalise(sig_new[m:])
    gap = _exploitability(G, x, y)
    better = finite & (gap < st.gap)
    return IPMState(
        z=jnp.where(finite, z_new, z),
        lam=jnp.where(finite, lam_new, lam),
        sig=jnp.where(finite, sig_new, sig),
        x=jnp.where(better, x, st.x),
        y=jnp.where(better, y, st.y),
        gap=jnp.where(better, gap, st.gap),
        iterations=st.iterations + 1,
        done=(jnp.where(better, gap, st.gap) <= tol) | ~finite,
    )
