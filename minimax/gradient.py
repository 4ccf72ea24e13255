"""Projected first-order solvers for the channel game, in JAX + optax (docs §2.9).

``descent`` minimises ``phi(x) = max_a L(x, a)`` directly: the inner maximisation is solved
exactly (water-filling / jamming KKT), so by Danskin's theorem ``grad phi(x) = grad_x L(x, a*)``
and the outer problem is a smooth-almost-everywhere minimisation over the weighted budget
simplex. Because ``L`` is not jointly convex in (n, s, b), it is run from many starts at once
(``vmap``), and the start with the smallest exact ``phi`` wins.

``gda``, ``extragradient`` and ``optimistic`` are simultaneous gradient methods on (x, a) for
payoffs without an exact inner solver (Korpelevich 1976; Daskalakis et al. 2018, "Training GANs
with optimism"); the certificate of their answer is still computed exactly.

Each solver is a pure pair ``init(game, key) -> State`` / ``step(game, state) -> State`` and a
``run`` that scans ``step``; nothing mutates.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from minimax import quasinewton as qn
from minimax.channel import payoff
from minimax.errors import SolverError
from minimax.game import Defense, Game
from minimax.linesearch import TRIALS, projected_line_search
from minimax.projection import (
    STRUCTURED_STARTS,
    initial_defenses,
    project_attack,
    project_defense,
)
from minimax.response import phi


class GradientOptions(NamedTuple):
    """Static options of the gradient solvers."""

    starts: int = 16  # parallel starts (descent) / restarts (saddle methods)
    steps: int = 200  # iterations (descent stops earlier once every start has converged)
    learning_rate: float = 0.1  # initial step, in units of defender_budget / mean cost
    final_learning_rate: float = 1e-9  # smallest step (descent) / final step (saddle methods)
    seed: int = 0
    # Starts that go on after the screen: the first `pinned` structured ones (no defense, then
    # noise spread evenly; the structured starts are no defense, each lever spread evenly, all
    # spread evenly) and, of all the others, the ones with the smallest phi after the screen.
    # With every start descended to the end on 704 random games (K = 6 and 12, caps), keeping
    # no defense, the noise start and the best one screened after 1 iteration reached the
    # value of the earlier 6 (the five structured and the best random one after 2 iterations)
    # on every game; docs/solution-concepts.md §2.9.1.
    keep: int = 3
    screen: int = 1  # iterations every start runs before the screen
    pinned: int = 2  # structured starts kept whatever their phi after the screen
    # A start has stalled when phi fell by at most stall_tol (1 + |phi|) over its last
    # STALL_WINDOW iterations; the descent stops when every start has stalled or collapsed.
    # 1e-12 cut the iterations ~20% and moved no best value by more than 3e-10 (same games).
    stall_tol: float = 1e-12
    # Each iteration also tries the BFGS step on the active face (minimax.quasinewton); its
    # trials compete with the gradient's, so it never gives a worse iterate.
    quasi_newton: bool = True


def check_gradient_options(opts: GradientOptions) -> GradientOptions:
    """Validate the options (raises :class:`SolverError` naming the field, value and range)."""
    for field, least in (("starts", 1), ("steps", 1), ("keep", 1), ("screen", 0),
                         ("pinned", 0)):
        value = getattr(opts, field)
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
            raise SolverError(f"solver option {field}: got {value!r}; expected an integer >= "
                              f"{least}")
    tol = opts.stall_tol
    if isinstance(tol, bool) or not isinstance(tol, int | float | np.floating) \
            or not (math.isfinite(tol) and 0 <= tol < 1e-3):
        raise SolverError(f"solver option stall_tol: got {tol!r}; expected a number in [0, "
                          f"1e-3) (relative decrease of phi below which a start has stalled)")
    for field in ("learning_rate", "final_learning_rate"):
        value = getattr(opts, field)
        if isinstance(value, bool) or not isinstance(value, int | float | np.floating) \
                or not (math.isfinite(value) and value > 0):
            raise SolverError(f"solver option {field}: got {value!r}; expected a finite "
                              f"number > 0")
    if opts.final_learning_rate > opts.learning_rate:
        raise SolverError(f"solver options: final_learning_rate={opts.final_learning_rate!r} > "
                          f"learning_rate={opts.learning_rate!r}; the step only shrinks")
    if not isinstance(opts.quasi_newton, bool | np.bool_):
        raise SolverError(f"solver option quasi_newton: got {opts.quasi_newton!r}; expected "
                          f"true or false")
    if isinstance(opts.seed, bool) or not isinstance(opts.seed, int | np.integer) \
            or not 0 <= opts.seed < 2**32:
        raise SolverError(f"solver option seed: got {opts.seed!r}; expected an integer in "
                          f"[0, 2**32)")
    return opts._replace(starts=int(opts.starts), steps=int(opts.steps), seed=int(opts.seed),
                         keep=int(opts.keep), screen=int(opts.screen),
                         pinned=int(opts.pinned),
                         stall_tol=float(opts.stall_tol),
                         quasi_newton=bool(opts.quasi_newton),
                         learning_rate=float(opts.learning_rate),
                         final_learning_rate=float(opts.final_learning_rate))


def _scale(game: Game) -> jax.Array:
    return game.defender_budget / jnp.mean(game.cost_matrix())


def _schedule(opts: GradientOptions):
    ratio = opts.final_learning_rate / opts.learning_rate
    return lambda t: opts.learning_rate * ratio ** (t / max(opts.steps - 1, 1))


STALL_WINDOW = 5  # iterations over which a start's decrease of phi is measured
# Gradient step lengths per iteration when the quasi-Newton trials run beside them (4 of the
# line search's 7: the longest ones; the quasi-Newton step takes over the short steps near a
# minimiser, where the gradient's zig-zag needed them)
NEWTON_GRADIENT_TRIALS = 4


class DescentState(NamedTuple):
    """State of the multi-start Danskin descent."""

    x: jax.Array  # (starts, 3, K) current feasible defenses, budget units
    value: jax.Array  # (starts,) phi(x), weighted bits per query
    radius: jax.Array  # (starts,) trust radius of the next line search, budget units
    history: jax.Array  # (STALL_WINDOW, starts) phi of the last iterations, oldest first
    step: jax.Array  # () iteration counter
    pair_s: jax.Array  # (starts, MEMORY, 3K) curvature pairs on the face (steps), budget units
    pair_y: jax.Array  # (starts, MEMORY, 3K) ... and changes of the face gradient
    pair_rho: jax.Array  # (starts, MEMORY) 1 / s.y, 0 = empty slot (minimax.quasinewton)
    prev_x: jax.Array  # (starts, 3, K) the iterate before x (x itself after a failed search)
    prev_g: jax.Array  # (starts, 3, K) grad phi at prev_x, weighted bits per budget unit


def _phi_of(game: Game):
    return lambda x: phi(game, Defense(*x))


def descent_init(game: Game, opts: GradientOptions, key) -> DescentState:
    """All ``opts.starts`` starting points (:func:`~minimax.projection.initial_defenses`),
    projected, with their phi; the screen (:func:`descent_screen`) comes later."""
    x = jax.vmap(lambda x0: project_defense(game, x0))(initial_defenses(game, opts.starts, key))
    values = jax.vmap(_phi_of(game))(x)
    radius = jnp.full((opts.starts,), opts.learning_rate * _scale(game))
    history = jnp.broadcast_to(values, (STALL_WINDOW, opts.starts))
    n = 3 * game.num_channels
    return DescentState(x=x, value=values, radius=radius, history=history,
                        step=jnp.asarray(0), pair_s=jnp.zeros((opts.starts, qn.MEMORY, n)),
                        pair_y=jnp.zeros((opts.starts, qn.MEMORY, n)),
                        pair_rho=jnp.zeros((opts.starts, qn.MEMORY)), prev_x=x,
                        prev_g=jnp.zeros_like(x))


def descent_step(game: Game, state: DescentState, opts: GradientOptions) -> DescentState:
    """One projected-gradient step per start with the shared parallel line search along the
    projection arc (:func:`minimax.linesearch.projected_line_search`, exact phi), the trust
    radius floored at ``final_learning_rate * scale``; with ``opts.quasi_newton`` the
    quasi-Newton step on the active face (:mod:`minimax.quasinewton`) competes in the search."""
    f = _phi_of(game)
    floor = opts.final_learning_rate * _scale(game)
    cost = game.cost_matrix().reshape(-1)
    mask = jnp.broadcast_to(game.lever_mask()[:, None], (3, game.num_channels)).reshape(-1)

    def one(x, value, radius, pairs, prev_x, prev_g):
        grad = jax.grad(f)(x)
        newton = None
        if opts.quasi_newton:
            here = qn.face(x.reshape(-1), grad.reshape(-1), cost, mask, game.defender_budget)
            there = qn.face(prev_x.reshape(-1), prev_g.reshape(-1), cost, mask,
                            game.defender_budget)
            same = jnp.all(here.free == there.free) & jnp.all(
                (here.normal != 0) == (there.normal != 0))
            s = (x - prev_x).reshape(-1)
            y = qn.on_face(grad.reshape(-1), here) - qn.on_face(prev_g.reshape(-1), there)
            pairs = qn.push_pair(pairs, s, y, same)
            newton = qn.newton_direction(pairs, grad.reshape(-1), here).reshape(x.shape)
        new_x, new_value, new_radius = projected_line_search(
            f, lambda y: project_defense(game, y), x, value, radius, floor, grad=grad,
            newton=newton, trials=NEWTON_GRADIENT_TRIALS if opts.quasi_newton else TRIALS)
        return new_x, new_value, new_radius, pairs, x, grad

    pairs = qn.Pairs(s=state.pair_s, y=state.pair_y, rho=state.pair_rho)
    x, value, radius, pairs, prev_x, prev_g = jax.vmap(one)(
        state.x, state.value, state.radius, pairs, state.prev_x, state.prev_g)
    history = jnp.concatenate([state.history[1:], value[None]], axis=0)
    return DescentState(x=x, value=value, radius=radius, history=history,
                        step=state.step + 1, pair_s=pairs.s, pair_y=pairs.y,
                        pair_rho=pairs.rho, prev_x=prev_x, prev_g=prev_g)


def descent_screen(state: DescentState, opts: GradientOptions) -> DescentState:
    """Keep ``opts.keep`` starts: the first ``opts.pinned`` structured ones (of the
    :data:`~minimax.projection.STRUCTURED_STARTS`) and, of all the others, those with the
    smallest phi (ties: the earlier start).

    Screening costs ``opts.screen`` iterations of every start; the rest of the descent runs
    only the kept ones. Identity when ``keep >= starts``.
    """
    starts = state.value.shape[0]
    if opts.keep >= starts:
        return state
    fixed = min(STRUCTURED_STARTS, opts.pinned, opts.keep)
    rest = state.value[fixed:]
    best = fixed + jnp.argsort(rest)[: opts.keep - fixed]
    idx = jnp.concatenate([jnp.arange(fixed), best])
    return DescentState(x=state.x[idx], value=state.value[idx], radius=state.radius[idx],
                        history=state.history[:, idx], step=state.step,
                        pair_s=state.pair_s[idx], pair_y=state.pair_y[idx],
                        pair_rho=state.pair_rho[idx], prev_x=state.prev_x[idx],
                        prev_g=state.prev_g[idx])


def descent_start(game: Game, opts: GradientOptions, key) -> DescentState:
    """:func:`descent_init`, ``opts.screen`` iterations of every start, then
    :func:`descent_screen`: the state the rest of the descent continues from."""
    state = descent_init(game, opts, key)
    state, _ = descent_advance(game, state, opts, min(opts.screen, opts.steps))
    return descent_screen(state, opts)


def descent_run(game: Game, opts: GradientOptions = GradientOptions(), key=None):
    """Run the multi-start descent; returns (best defense (3, K), its phi, iterations).

    Starts from ``opts.starts`` points, keeps ``opts.keep`` of them after ``opts.screen``
    iterations (:func:`descent_start`), and stops after ``opts.steps`` iterations or once every
    kept start has stopped (:func:`descent_running`).
    """
    key = jax.random.PRNGKey(opts.seed) if key is None else key
    state, _ = descent_advance(game, descent_start(game, opts, key), opts, opts.steps)
    return descent_best(state)


def descent_running(game: Game, state: DescentState, opts: GradientOptions) -> jax.Array:
    """Whether the descent goes on: fewer than ``opts.steps`` iterations and some start still
    moving, i.e. its trust radius above the floor ``4 final_learning_rate * scale`` (a trial
    step still decreases phi) and phi fallen by more than ``stall_tol (1 + |phi|)`` over its
    last ``STALL_WINDOW`` iterations (or fewer iterations run)."""
    floor = 4.0 * opts.final_learning_rate * _scale(game)
    fell = state.history[0] - state.value > opts.stall_tol * (1.0 + jnp.abs(state.value))
    moving = (state.radius > floor) & (fell | (state.step < STALL_WINDOW))
    return (state.step < opts.steps) & jnp.any(moving)


def descent_best(state: DescentState):
    """(best defense (3, K), its phi, iterations) of a descent state."""
    i = jnp.argmin(state.value)
    return state.x[i], state.value[i], state.step


def descent_advance(game: Game, state: DescentState, opts: GradientOptions, until):
    """Run the descent from ``state`` until it stops or its counter reaches ``until``: the same
    iterates as :func:`descent_run`, cut into pieces so that a batch can drop finished games
    between pieces. Returns (state, still running)."""
    state = jax.lax.while_loop(
        lambda s: descent_running(game, s, opts) & (s.step < until),
        lambda s: descent_step(game, s, opts), state)
    return state, descent_running(game, state, opts)


class SaddleState(NamedTuple):
    """State of the simultaneous (x, a) gradient methods."""

    x: jax.Array  # (3, K) defense
    a: jax.Array  # (K,) attack
    opt_state: optax.OptState  # optimizer state over the pair
    best_x: jax.Array  # (3, K) defense with the smallest exact phi seen
    best_value: jax.Array  # () its phi
    step: jax.Array  # () iteration counter


def _saddle_grads(game: Game, x, a):
    gx, ga = jax.grad(lambda x, a: payoff(game, Defense(*x), a), argnums=(0, 1))(x, a)
    return gx, -ga  # descent on x, ascent on a


def _saddle_project(game: Game, x, a):
    return project_defense(game, x), project_attack(a, game.cap, game.attacker_budget)


def saddle_run(game: Game, method: str, opts: GradientOptions = GradientOptions()):
    """Gradient descent-ascent, extragradient or optimistic GDA on L(x, a).

    Extragradient is built from two updates of one optax transformation: a look-ahead from
    z_t to z_{t+1/2}, then the real step from z_t with the gradient at z_{t+1/2}.
    """
    scale = _scale(game)
    a_scale = jnp.maximum(game.attacker_budget, 1e-12)
    lr = _schedule(opts)
    if method == "optimistic":
        tx = optax.optimistic_gradient_descent(learning_rate=lr)
    else:
        tx = optax.sgd(learning_rate=lr)

    def scaled(u):
        return (u[0] * scale, u[1] * a_scale)

    x0 = project_defense(game, jnp.zeros((3, game.num_channels)))
    a0 = project_attack(jnp.full((game.num_channels,), game.attacker_budget
                                 / game.num_channels), game.cap, game.attacker_budget)
    state = SaddleState(x=x0, a=a0, opt_state=tx.init((x0, a0)), best_x=x0,
                        best_value=phi(game, Defense(*x0)), step=jnp.asarray(0))

    def step(s: SaddleState, _):
        g = _saddle_grads(game, s.x, s.a)
        g = (g[0] / scale, g[1] / a_scale)
        if method == "extragradient":
            look, _ = tx.update(g, s.opt_state, (s.x, s.a))
            look = scaled(look)
            xh, ah = _saddle_project(game, s.x + look[0], s.a + look[1])
            g = _saddle_grads(game, xh, ah)
            g = (g[0] / scale, g[1] / a_scale)
        upd, opt_state = tx.update(g, s.opt_state, (s.x, s.a))
        upd = scaled(upd)
        x, a = _saddle_project(game, s.x + upd[0], s.a + upd[1])
        value = phi(game, Defense(*x))
        better = value < s.best_value
        return SaddleState(x=x, a=a, opt_state=opt_state,
                           best_x=jnp.where(better, x, s.best_x),
                           best_value=jnp.where(better, value, s.best_value),
                           step=s.step + 1), None

    state, _ = jax.lax.scan(step, state, None, length=opts.steps)
    return state.best_x, state.best_value, state.step


def gradient_termination(method: str, iterations: int, opts: GradientOptions) -> str:
    """How a gradient solver's run ended (one of :data:`minimax.solution.TERMINATIONS`).

    The descent (``method="gradient"``) is ``"converged"`` when it stopped on its own test
    (every start's trust radius collapsed: no trial step decreases phi) before its iteration
    budget, and ``"budget_exhausted"`` when it ran all ``opts.steps`` iterations. The saddle
    methods have no stopping test: they always run ``opts.steps`` iterations.
    """
    if method == "gradient" and int(iterations) < opts.steps:
        return "converged"
    return "budget_exhausted"
