"""``solve`` and ``solve_batch``: the public entry points of the channel-game solvers.

Every method returns a :class:`~minimax.solution.Solution` whose ``upper``/``lower``/``gap`` are
computed by :func:`minimax.certificate.certify` from the returned defense, whatever produced it,
and whose invariants are checked before it is returned (:func:`minimax.solution.check_certificate`:
a violation raises :class:`~minimax.errors.CertificateError`; in ``solve_batch`` it marks that
game's row ``status="failed"``). Inputs are within the supported ranges of
``docs/supported-ranges.md``, enforced when the game is built.

Methods:

* ``gradient`` -- multi-start projected descent on phi with exact inner best responses
  (:mod:`minimax.gradient`); works for every game.
* ``gda``, ``extragradient``, ``optimistic`` -- simultaneous gradient play on (x, a).
* ``convex`` -- cutting planes over cvxpy (:mod:`minimax.convex`); convex games only.
* ``auto`` -- ``convex`` is not faster than ``gradient`` here and both reach ~1e-9, so ``auto``
  always runs ``gradient`` and records in ``Solution.reason`` whether the game is convex-concave
  (then the certificate's gap closes up to rounding) or not (then a gap may remain).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minimax.best_response import best_response_attack
from minimax.certificate import (
    BoundConfig,
    Certificate,
    centre_bound,
    certify,
    check_bound_config,
    combine_bounds,
    zero_bound,
)
from minimax.channel import payoff
from minimax.convex import convexity, solve_convex
from minimax.errors import CertificateError, SolverError
from minimax.game import Defense, Game
from minimax.gradient import (
    GradientOptions,
    check_gradient_options,
    descent_advance,
    descent_init,
    descent_run,
    gradient_termination,
    saddle_run,
)
from minimax.solution import Solution, check_certificate, failed_solution

METHODS = ("auto", "gradient", "gda", "extragradient", "optimistic", "convex")
SADDLE = ("gda", "extragradient", "optimistic")


def _compute_view(game: Game) -> Game:
    """The game without labels, so compiled code is shared by games that differ only in names."""
    return dataclasses.replace(game, names=(), flows=(), modalities=(), name="")


SADDLE_DEFAULTS = {"steps": 3000, "learning_rate": 0.5, "final_learning_rate": 0.05}


def _options(options: dict[str, Any], method: str = "gradient"
             ) -> tuple[GradientOptions, BoundConfig, dict[str, Any]]:
    grad = {k: options.pop(k) for k in list(options) if k in GradientOptions._fields}
    if method in SADDLE:
        grad = {**SADDLE_DEFAULTS, **grad}
    bound = {k: options.pop(k) for k in list(options) if k in BoundConfig._fields}
    try:
        return (check_gradient_options(GradientOptions(**grad)),
                check_bound_config(BoundConfig(**bound)), options)
    except TypeError as err:
        raise SolverError(f"solver options: {err}") from None


def _check_gap_tol(gap_tol: Any) -> float | None:
    if gap_tol is None:
        return None
    try:
        value = float(gap_tol)
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    if isinstance(gap_tol, bool) or not (math.isfinite(value) and value >= 0):
        raise SolverError(f"solve: gap_tol={gap_tol!r}; expected None or a finite number >= 0 "
                          f"(the largest certified gap reported as 'certified')")
    return value


def _convex_options(extra: dict[str, Any]) -> dict[str, Any]:
    tol, max_iter = extra.get("tol", 1e-8), extra.get("max_iter", 200)
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not (
            math.isfinite(tol) and tol > 0):
        raise SolverError(f"solver option tol: got {tol!r}; expected a finite number > 0")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int | np.integer) or max_iter < 1:
        raise SolverError(f"solver option max_iter: got {max_iter!r}; expected an integer >= 1")
    return extra


@partial(jax.jit, static_argnames=("method", "opts", "cfg"))
def _gradient_pipeline(game: Game, method: str, opts: GradientOptions, cfg: BoundConfig):
    if method == "gradient":
        x, _, iterations = descent_run(game, opts)
    else:
        x, _, iterations = saddle_run(game, method, opts)
    defense = Defense(n=x[0], s=x[1], b=x[2])
    return defense, certify(game, defense, cfg=cfg), iterations


_certify_jit = jax.jit(certify, static_argnames=("cfg",))


def _solution(defense, cert, method, iterations, seconds, reason, index=None) -> Solution:
    take = (lambda v: np.asarray(v)) if index is None else (lambda v: np.asarray(v)[index])
    return Solution(
        value=float(take(cert.upper)), upper=float(take(cert.upper)),
        lower=float(take(cert.lower)), gap=float(take(cert.gap)),
        defense=Defense(*(take(v) for v in defense)), attack=take(cert.attack),
        method=method, iterations=int(take(iterations)), seconds=seconds, reason=reason,
    )


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise SolverError(f"solve: unknown method {method!r}; expected one of {METHODS}")


def _auto_reason(game: Game) -> str:
    convex, why = convexity(game)
    kind = "convex-concave" if convex else "non-convex"
    return f"auto chose gradient (multi-start descent); game is {kind}: {why}"


def solve(game: Game, method: str = "auto", *, gap_tol: float | None = None,
          **options: Any) -> Solution:
    """Certified minimax defense of a channel game.

    ``V = min_{x in X} max_{a in A} L(x, a)``: returns the defense, its exact value against an
    adaptive attacker (``upper``), a certified ``lower`` bound on V and the ``gap``.

    Options: ``starts``, ``steps``, ``learning_rate``, ``final_learning_rate``, ``seed``
    (gradient methods); ``tol``, ``max_iter`` (convex); ``bisect_s``, ``boxes``, ``refine``,
    ``rounds``, ``nu_steps`` (lower-bound resolution). ``gap_tol``: the returned ``status`` is
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
    _check_method(method)
    if not isinstance(game, Game) or game.batch_shape:
        raise SolverError("solve: expected one minimax.Game (use solve_batch for many games)")
    gap_tol = _check_gap_tol(gap_tol)
    start = time.perf_counter()
    opts, cfg, rest = _options(dict(options), method)
    view = _compute_view(game)
    if method == "convex":
        extra = {k: rest.pop(k) for k in list(rest) if k in ("tol", "max_iter", "solver")}
        if rest:
            raise SolverError(f"solve: unknown option(s) {sorted(rest)} for method='convex'")
        result = solve_convex(view, **_convex_options(extra))
        cert = _certify_jit(view, result.defense, cfg=cfg)
        sol = _solution(result.defense, cert, "convex", result.iterations,
                        time.perf_counter() - start,
                        f"cutting planes; master lower bound {result.master_lower:.12g}")
        sol = sol._replace(termination=result.termination)
        return check_certificate(game, sol, gap_tol)
    if rest:
        raise SolverError(f"solve: unknown option(s) {sorted(rest)} for method={method!r}")
    reason = _auto_reason(game) if method == "auto" else ""
    inner = "gradient" if method == "auto" else method
    defense, cert, iterations = _gradient_pipeline(view, inner, opts, cfg)
    jax.block_until_ready(cert)
    sol = _solution(defense, cert, inner, iterations, time.perf_counter() - start, reason)
    sol = sol._replace(termination=gradient_termination(inner, sol.iterations, opts))
    return check_certificate(game, sol, gap_tol)


def stack_games(games: Sequence[Game]) -> Game:
    """Stack games of one shape (same K, mode, effect and levers) into a batched game."""
    if not games:
        raise SolverError("solve_batch: no games given")
    views = [_compute_view(g) for g in games]
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


@partial(jax.jit, static_argnames=("method", "opts", "cfg"))
def _batch_pipeline(games: Game, method: str, opts: GradientOptions, cfg: BoundConfig):
    return jax.vmap(lambda g: _gradient_pipeline(g, method, opts, cfg))(games)


_PIECE = 10  # descent iterations per compiled call of the compacted batch
_MIN_BUCKET = 4  # smallest compiled batch size of a piece


@partial(jax.jit, static_argnames=("opts",))
def _batch_descent_init(games: Game, opts: GradientOptions):
    key = jax.random.PRNGKey(opts.seed)
    return jax.vmap(lambda g: descent_init(g, opts, key))(games)


@partial(jax.jit, static_argnames=("opts",))
def _batch_descent_piece(games: Game, state, opts: GradientOptions, until):
    return jax.vmap(lambda g, s, u: descent_advance(g, s, opts, u))(games, state, until)


@partial(jax.jit, static_argnames=("cfg",))
def _batch_certify_centre(games: Game, x, cfg: BoundConfig):
    def one(game, x):
        defense = Defense(n=x[0], s=x[1], b=x[2])
        attack = best_response_attack(game, defense)
        return defense, attack, payoff(game, defense, attack), centre_bound(game, attack, cfg)

    return jax.vmap(one)(games, x)


@partial(jax.jit, static_argnames=("cfg",))
def _batch_zero_bound(games: Game, attacks, cfg: BoundConfig):
    return jax.vmap(lambda g, a: zero_bound(g, a, cfg))(games, attacks)


@jax.jit
def _batch_combine(games: Game, attacks, upper, centre, zero_value, zero_defense):
    def one(game, attack, upper, centre, zero_value, zero_defense):
        bound = combine_bounds(game, attack, centre, zero_value, zero_defense)
        return Certificate(upper=upper, lower=bound.value, gap=upper - bound.value,
                           attack=attack, nu=bound.nu)

    return jax.vmap(one)(games, attacks, upper, centre, zero_value, zero_defense)


def _batch_certify(games: Game, count: int, x, cfg: BoundConfig):
    """:func:`~minimax.certificate.certify` of every game of a stacked batch at its defense
    ``x``, with the bound at nu = 0 computed only for the games where it could be the better
    one (:func:`~minimax.certificate.centre_bound`); the certificates are those of ``certify``.
    """
    defense, attacks, upper, centre = _batch_certify_centre(games, x, cfg)
    need = np.flatnonzero(np.asarray(centre.need_zero))
    zero_value = np.full(count, -np.inf)
    zero_defense = jax.tree_util.tree_map(np.array, centre.defense)
    if need.size:
        size = _bucket(need.size, count)
        idx = np.concatenate([need, np.full(size - need.size, need[0])])
        games_np = jax.tree_util.tree_map(np.asarray, games)
        sub = jax.tree_util.tree_map(lambda v: v[idx], games_np)
        value, zx = _batch_zero_bound(sub, np.asarray(attacks)[idx], cfg)
        zero_value[need] = np.asarray(value)[: need.size]
        for field, part in zip(zero_defense, zx, strict=True):
            field[need] = np.asarray(part)[: need.size]
    return defense, _batch_combine(games, attacks, upper, centre, zero_value, zero_defense)


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
    (padded to a power of two). Each game follows exactly the iterates of
    :func:`~minimax.gradient.descent_run`. Returns (best x (count, 3, K), iterations).
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
    descent has stopped leave the batch between pieces (each game gets exactly the iterates
    of its own :func:`solve`); the certificates are those of :func:`solve`. The saddle
    methods run in one vmapped call. ``games`` is a sequence of :class:`Game` or an already
    stacked game. Each returned :class:`Solution` carries its own certificate and status;
    ``seconds`` is the batch wall time divided by the number of games. A game whose answer
    breaks an invariant of its certificate comes back as a ``status="failed"`` row (NaN
    numbers, the violated check in ``reason``) and the other games are unaffected.
    """
    gap_tol = _check_gap_tol(gap_tol)
    if method == "auto":
        method = "gradient"
    if method not in ("gradient", *SADDLE):
        raise SolverError(f"solve_batch: method {method!r} is not batched; use 'gradient' or "
                          f"one of {SADDLE}, or call solve() per game")
    start = time.perf_counter()
    opts, cfg, rest = _options(dict(options), method)
    if rest:
        raise SolverError(f"solve_batch: unknown option(s) {sorted(rest)}")
    stacked = games if isinstance(games, Game) else stack_games(games)
    count = stacked.batch_shape[0] if stacked.batch_shape else 1
    if method == "gradient" and stacked.batch_shape:
        x, iterations = _compacted_descent(stacked, count, opts)
        defense, cert = _batch_certify(stacked, count, x, cfg)
    else:
        defense, cert, iterations = _batch_pipeline(stacked, method, opts, cfg)
    jax.block_until_ready(cert)
    per_game = (time.perf_counter() - start) / count
    out = []
    for i in range(count):
        one = jax.tree_util.tree_map(lambda v, i=i: v[i], stacked) if stacked.batch_shape \
            else stacked
        sol = _solution(defense, cert, method, iterations, per_game, "",
                        index=i if stacked.batch_shape else None)
        sol = sol._replace(termination=gradient_termination(method, sol.iterations, opts))
        try:
            out.append(check_certificate(one, sol, gap_tol))
        except CertificateError as err:
            out.append(failed_solution(one, method, str(err)))
    return out
