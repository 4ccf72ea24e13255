"""``solve`` and ``solve_batch``: the public entry points of the channel-game solvers.

Every method returns a :class:`~minimax.solution.Solution` whose ``upper``/``lower``/``gap`` are
computed by :func:`minimax.certificate.certify` from the returned defense, whatever produced it,
and whose invariants are checked before it is returned (:func:`minimax.solution.check_certificate`:
a violation raises :class:`~minimax.errors.CertificateError`; in ``solve_batch`` it marks that
game's row ``status="failed"``). Inputs are within the supported ranges of
``docs/supported-ranges.md``, enforced when the game is built.

The methods, their options and defaults are the registry :data:`minimax.methods.METHODS`
(``docs/solution-concepts.md §2.9``):

* ``gradient`` -- multi-start projected descent on phi with exact inner best responses
  (:mod:`minimax.gradient`); works for every game.
* ``gda``, ``extragradient``, ``optimistic`` -- simultaneous gradient play on (x, a).
* ``convex`` -- cutting planes over cvxpy (:mod:`minimax.convex`); convex games only.
* ``auto`` -- ``convex`` is not faster than ``gradient`` here and both reach ~1e-9, so ``auto``
  always runs ``gradient`` and records in ``Solution.reason`` whether the game is convex-concave
  (then the certificate's gap closes up to rounding) or not (then a gap may remain).
* ``double_oracle`` -- mixed defenses; it returns a
  :class:`~minimax.double_oracle.MixedSolution`, so it runs through
  :func:`minimax.solve_mixed` or :func:`minimax.methods.run_method`, not ``solve``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minimax.certificate import (
    BoundConfig,
    Certificate,
    centre_bound,
    combined_value,
    kkt_multiplier,
    zero_bound,
)
from minimax.channel import payoff
from minimax.errors import CertificateError, SolverError
from minimax.game import Defense, Game
from minimax.gradient import (
    GradientOptions,
    descent_advance,
    descent_start,
    gradient_termination,
)
from minimax.methods import (
    METHODS,
    check_gap_tol,
    get_method,
    gradient_pipeline,
    parse_options,
    run_method,
    solution_from,
)
from minimax.response import best_response_attack
from minimax.solution import Solution, check_certificate, failed_solution

__all__ = ["METHODS", "solve", "solve_batch", "stack_games"]


def solve(game: Game, method: str = "auto", *, gap_tol: float | None = None,
          **options: Any) -> Solution:
    """Certified minimax defense of a channel game.

    ``V = min_{x in X} max_{a in A} L(x, a)``: returns the defense, its exact value against an
    adaptive attacker (``upper``), a certified ``lower`` bound on V and the ``gap``.

    ``method`` is a pure method of the registry :data:`minimax.methods.METHODS`; its options
    are the fields of its options record (``starts``, ``steps``, ``learning_rate``,
    ``final_learning_rate``, ``seed`` for ``auto``/``gradient``; ``steps``, ``learning_rate``,
    ``final_learning_rate`` for ``gda``/``extragradient``/``optimistic``; ``tol``,
    ``max_iter``, ``max_cuts``, ``solver`` for ``convex``) and, for every method, the
    lower-bound resolution (``bisect_s``, ``boxes``, ``refine``, ``rounds``, ``nu_steps``, ...:
    :class:`~minimax.certificate.BoundConfig`). An option the method does not read raises
    :class:`~minimax.errors.SolverError`. ``gap_tol``: the returned ``status`` is
    ``"certified"`` when the gap is at most ``gap_tol`` (or ``gap_tol`` is None) and
    ``"gap_above_tol"`` otherwise. Every answer's invariants (finite, ``lower <= upper``,
    feasible defense and attack) are checked; a violation raises
    :class:`~minimax.errors.CertificateError`, never a number.

    >>> import minimax
    >>> g = minimax.Game.create(mode="injection", attacker_budget=4.0, defender_budget=1.0,
    ...     B=[1.0], S=[1.0], N=[1.0], w=[1.0], u=[0.0], rho=[0.0], alpha=[1.0], beta=[1.0],
    ...     gamma=[1.0], levers=["b"])
    >>> sol = minimax.solve(g)   # all budget on b: V = e^{-1} log2(1 + 4/2)
    >>> round(sol.value, 6), sol.gap < 1e-6
    (0.583075, True)
    """
    if get_method(method).result != "pure":
        raise SolverError(f"solve: method {method!r} returns a mixed defense; call "
                          f"minimax.solve_mixed(game, ...) (or minimax.methods.run_method)")
    return run_method(game, method, gap_tol=gap_tol, **options)


def stack_games(games: Sequence[Game]) -> Game:
    """Stack games of one shape (same K, mode, effect and levers) into a batched game."""
    if not games:
        raise SolverError("solve_batch: no games given")
    views = [g.view() for g in games]
    first = jax.tree_util.tree_structure(views[0])
    for i, v in enumerate(views):
        if jax.tree_util.tree_structure(v) != first or v.num_channels != views[0].num_channels:
            raise SolverError(
                f"solve_batch: games[{i}] differs in shape from games[0] (K="
                f"{v.num_channels} vs {views[0].num_channels}, mode={v.mode!r} vs "
                f"{views[0].mode!r}, levers={v.levers} vs {views[0].levers}); batch only games "
                f"of one shape"
            )
    return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *views)


@partial(jax.jit, static_argnames=("kernel", "opts", "cfg"))
def _batch_pipeline(games: Game, kernel: str, opts: GradientOptions, cfg: BoundConfig):
    return jax.vmap(lambda g: gradient_pipeline(g, kernel, opts, cfg))(games)


_PIECE = 10  # descent iterations per compiled call of the compacted batch
_MIN_BUCKET = 4  # smallest compiled batch size of a piece


@partial(jax.jit, static_argnames=("opts",))
def _batch_descent_init(games: Game, opts: GradientOptions):
    key = jax.random.PRNGKey(opts.seed)
    return jax.vmap(lambda g: descent_start(g, opts, key))(games)


@partial(jax.jit, static_argnames=("opts",))
def _batch_descent_piece(games: Game, state, opts: GradientOptions, until):
    return jax.vmap(lambda g, s, u: descent_advance(g, s, opts, u))(games, state, until)


@partial(jax.jit, static_argnames=("cfg",))
def _batch_certify_centre(games: Game, x, cfg: BoundConfig):
    def one(game, x):
        defense = Defense(n=x[0], s=x[1], b=x[2])
        attack = best_response_attack(game, defense)
        hint = kkt_multiplier(game, defense, attack)
        centre = centre_bound(game, attack, cfg, hint)
        # the per-channel minimisers at nu are informative only (no certificate field reads
        # them): left out, the compiled program does not carry them through the branch-and-bound
        return defense, attack, payoff(game, defense, attack), centre._replace(defense=None)

    return jax.vmap(one)(games, x)


@partial(jax.jit, static_argnames=("cfg",))
def _batch_zero_bound(games: Game, attacks, cfg: BoundConfig):
    return jax.vmap(lambda g, a: zero_bound(g, a, cfg)[0])(games, attacks)


@jax.jit
def _batch_combine(games: Game, attacks, upper, centre, zero_value):
    def one(game, attack, upper, centre, zero_value):
        lower, nu = combined_value(game, attack, centre, zero_value)
        return Certificate(upper=upper, lower=lower, gap=upper - lower, attack=attack, nu=nu)

    return jax.vmap(one)(games, attacks, upper, centre, zero_value)


def _batch_certify(games: Game, count: int, x, cfg: BoundConfig):
    """:func:`~minimax.certificate.certify` of every game of a stacked batch at its defense
    ``x``, with the bound at nu = 0 computed only for the games where it could be the better
    one (:func:`~minimax.certificate.centre_bound`); the certificates are those of ``certify``.
    """
    defense, attacks, upper, centre = _batch_certify_centre(games, x, cfg)
    need = np.flatnonzero(np.asarray(centre.need_zero))
    zero_value = np.full(count, -np.inf)
    if need.size:
        size = _bucket(need.size, count)
        idx = np.concatenate([need, np.full(size - need.size, need[0])])
        games_np = jax.tree_util.tree_map(np.asarray, games)
        sub = jax.tree_util.tree_map(lambda v: v[idx], games_np)
        value = _batch_zero_bound(sub, np.asarray(attacks)[idx], cfg)
        zero_value[need] = np.asarray(value)[: need.size]
    return defense, _batch_combine(games, attacks, upper, centre, zero_value)


def _bucket(active: int, count: int) -> int:
    """Compiled size for ``active`` unfinished games of a batch of ``count``: the whole batch,
    or the next power of two (at least ``_MIN_BUCKET``), so a batch compiles O(log count)
    programs, reused by every later batch of the same size."""
    if active >= count:
        return count
    return min(count, max(_MIN_BUCKET, 1 << (active - 1).bit_length()))


def _compacted_descent(games: Game, count: int, opts: GradientOptions):
    """The multi-start descent of every game of a stacked batch, with finished games dropped.

    A vmapped ``while_loop`` runs every game for as many iterations as the slowest needs.
    Here the loop is cut into pieces of ``_PIECE`` iterations; after each piece the games
    whose descent has stopped are set aside and the rest are gathered into a smaller batch
    (padded to a power of two). Each game follows the iterates of
    :func:`~minimax.gradient.descent_run` (up to the rounding of vmapped reductions).
    Returns (best x (count, 3, K), iterations).

    Measured against one vmapped ``while_loop`` over the whole batch (``_batch_pipeline``), in
    one run: 13.3 against 18.0 ms per game at K = 6 on 64 random games, 27.2 against 40.1 at
    K = 12 on 32
    (``experiments/bench_core.py``), so the compaction stays.
    """
    host = lambda tree: jax.tree_util.tree_map(np.array, tree)  # noqa: E731
    state = host(_batch_descent_init(games, opts))
    games_np = jax.tree_util.tree_map(np.asarray, games)
    active = np.arange(count)
    while active.size:
        size = _bucket(active.size, count)
        idx = np.concatenate([active, np.full(size - active.size, active[0])])
        sub_games = jax.tree_util.tree_map(lambda v, idx=idx: v[idx], games_np)
        sub_state = jax.tree_util.tree_map(lambda v, idx=idx: v[idx], state)
        new, running = _batch_descent_piece(sub_games, sub_state, opts,
                                            sub_state.step + _PIECE)
        new = host(new)
        for field, value in zip(state, new, strict=True):
            field[active] = value[: active.size]
        active = active[np.asarray(running)[: active.size]]
    best = np.argmin(state.value, axis=1)
    return state.x[np.arange(count), best], state.step


def solve_batch(games: Sequence[Game] | Game, method: str = "gradient", *,
                gap_tol: float | None = None, **options: Any) -> list[Solution]:
    """Solve many games of one shape with compiled, vmapped calls (gradient methods).

    ``method="gradient"``: the descent runs in pieces of ``_PIECE`` iterations and games whose
    descent has stopped leave the batch between pieces (each game gets the iterates of its
    own :func:`solve`, up to rounding); the certificates are those of :func:`solve`. The saddle
    methods run in one vmapped call. ``games`` is a sequence of :class:`Game` or an already
    stacked game. Each returned :class:`Solution` carries its own certificate and status;
    ``seconds`` is the batch wall time divided by the number of games. A game whose answer
    breaks an invariant of its certificate comes back as a ``status="failed"`` row (NaN
    numbers, the violated check in ``reason``) and the other games are unaffected.
    """
    spec = get_method(method)
    if not spec.batched:
        batched = [m.name for m in METHODS.values() if m.batched]
        raise SolverError(f"solve_batch: method {method!r} is not batched; use one of "
                          f"{batched}, or call solve() per game")
    gap_tol = check_gap_tol(gap_tol)
    start = time.perf_counter()
    _, opts, cfg = parse_options(method, options)
    method = "gradient" if method == "auto" else method
    stacked = games if isinstance(games, Game) else stack_games(games)
    count = stacked.batch_shape[0] if stacked.batch_shape else 1
    if method == "gradient" and stacked.batch_shape:
        x, iterations = _compacted_descent(stacked, count, opts)
        defense, cert = _batch_certify(stacked, count, x, cfg)
    else:
        defense, cert, iterations = _batch_pipeline(stacked, method, opts, cfg)
    # one transfer to the host, then numpy slices per game (a jax slice per field per game
    # cost ~1 ms per game at K = 6, a tenth of the batch's time)
    host = lambda tree: jax.tree_util.tree_map(np.asarray, tree)  # noqa: E731
    defense, cert, iterations = host(defense), host(cert), np.asarray(iterations)
    games_np = host(stacked)
    per_game = (time.perf_counter() - start) / count
    out = []
    for i in range(count):
        one = jax.tree_util.tree_map(lambda v, i=i: v[i], games_np) if stacked.batch_shape \
            else stacked
        sol = solution_from(defense, cert, method, iterations, per_game, "",
                            index=i if stacked.batch_shape else None)
        sol = sol._replace(termination=gradient_termination(method, sol.iterations, opts))
        try:
            out.append(check_certificate(one, sol, gap_tol))
        except CertificateError as err:
            out.append(failed_solution(one, method, str(err)))
    return out
