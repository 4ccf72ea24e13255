"""Mixed defenses by double oracle: randomising over defense portfolios (docs §2.5).

**Why mix.** The deterministic minimax ``V = min_x max_a L(x, a)`` lets the attacker see the
defense before it moves. If the defender instead draws its portfolio x from a distribution p
that the attacker knows but cannot observe, it pays

    V_mix = min_{p in Delta(X)} max_{a in A} E_{x~p} L(x, a)  <=  V.

``E_p L(x, a)`` is linear in p and concave in a (docs §2.3), and A is convex and compact, so
Sion's minimax theorem (Sion 1958) gives ``V_mix = max_{a in A} min_{x in X} L(x, a)``: the
attacker gains nothing by randomising (concavity lets it play the mean of any mixture instead).
When L is jointly convex in the defense, ``V = V_mix``; L here is not (docs §2.4), and
``V - V_mix > 0`` is the value of unpredictability: e.g. "restrict channel 1 *or* channel 2,
chosen at random", where spreading one budget over both is worse than either alone.

**Double oracle** (McMahan, Gordon & Blum 2003). Keep finite strategy sets D (defenses) and
A' (attacks); solve the restricted matrix game ``M[j, k] = L(x_j, a_k)`` by LP, giving mixed
strategies p over D and q over A'; then ask each player's *oracle* for a best response to the
other's mixture over the full strategy space and add it:

* **attacker oracle** (exact, :mod:`minimax.mixed_best_response`):
  ``a_new = argmax_a sum_j p_j L(x_j, a)``, a concave, separable problem over
  ``{0 <= a <= cap, sum a <= P_A}``. Each channel's marginal gain
  (injection: ``sum_j p_j w_i B_i kappa_ij / ln2 / (m_ij + a_i)``; jamming:
  ``sum_j p_j d_ij eta_ij s_ij / ((N_i + eta_ij a_i)(N_i + eta_ij a_i + s_ij))``) decreases in
  a_i, so for a multiplier mu each channel's allocation is found by bisection, and mu by an outer
  bisection. Its value is an **upper bound** ``U(p) >= V_mix``: the defender's mixture p
  guarantees it. It is made rigorous by Lagrangian duality: for the mu found,
  ``max_a sum_j p_j L <= mu P_A + sum_i max_{0 <= a_i <= min(cap_i, P_A)} [G_i(a_i) - mu a_i]``
  and each one-dimensional concave maximum is bounded by the tangent at the lower end of its
  bisection bracket.
* **defender oracle** (heuristic): ``x_new = argmin_x sum_k q_k L(x, a_k)`` by multi-start
  projected descent. Only generates columns, so a local minimum costs speed, never validity.
* **lower bound** (rigorous): for any feasible attack a_bar,
  ``V_mix = max_a min_x L(x, a) >= min_x L(x, a_bar) >= lagrangian_lower_bound(a_bar)``
  (:func:`minimax.lagrangian_lower_bound`, a global per-channel bound). It is evaluated at
  the attacker's mean ``a_bar = sum_k q_k a_k`` (feasible: A is convex) and at each a_k; the
  best over the iterations is kept. For a non-convex game the Lagrangian relaxation itself can
  leave a duality gap, so the bracket need not close to zero even when the LP has converged.

**As init / step / run.** :func:`double_oracle_init` builds a :class:`DOState` (the pools,
the bounds, the round counter); :func:`double_oracle_step` runs one round and returns a new
state (nothing mutates); :func:`double_oracle_run` steps until the state's ``termination`` is
set: ``"converged"`` when ``upper - lower <= tol``, ``"budget_exhausted"`` after ``max_iter``
rounds, ``"stalled"`` when neither oracle found a new strategy. :func:`solve_mixed` runs
them and also reports the pure solution of :func:`minimax.solve`, so ``V`` and ``V_mix`` can
be compared (its certificate's lower bound is a bound on ``max_a min_x L = V_mix``, hence also
on V; it cannot separate the two).

References:
  H. B. McMahan, G. J. Gordon and A. Blum, "Planning in the presence of cost functions
  controlled by an adversary", ICML 2003 (the double-oracle algorithm).
  M. Sion, "On general minimax theorems", Pacific J. Math. 8(1):171-176 (1958).
"""

from __future__ import annotations

import math
import time
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from minimax.certificate import BoundConfig, lagrangian_lower_bound
from minimax.channel import payoff
from minimax.errors import CertificateError, SolverError
from minimax.finite import zero_sum
from minimax.game import Defense, Game
from minimax.linesearch import projected_line_search
from minimax.mixed_best_response import mixture_best_attack
from minimax.projection import initial_defenses, project_defense
from minimax.response import best_response_attack
from minimax.solution import Solution, certificate_violations

# The lower bound is computed a few times per run, not per game in a batch, so it can afford
# twice the engine's default branch-and-bound rounds (on conf/game/mixing_helps.yaml this
# closes the bracket from 2.6e-6 to 3e-8).
DEFAULT_BOUND = BoundConfig(rounds=16)
_SAME = 1e-9  # strategies closer than this (inf-norm, relative) count as already present


class MixedSolution(NamedTuple):
    """A mixed defense (finite support) with certified bounds on ``V_mix``.

    ``upper`` is what the mixture guarantees against an attacker who knows p (exact up to
    rounding: a Lagrangian dual bound of the attacker's concave best response); ``lower`` is a
    certified lower bound on ``V_mix``; ``pure`` is the deterministic solution (``pure.upper``
    bounds V from above), so ``lower <= V_mix <= upper`` and ``V_mix <= V <= pure.upper``.
    """

    defenses: list[Defense]  # support of the mixed defense
    probabilities: np.ndarray  # (len(defenses),) probabilities, sum to 1
    value: float  # = upper
    upper: float  # certified upper bound on V_mix (guaranteed by the mixture)
    lower: float  # certified lower bound on V_mix
    gap: float  # upper - lower
    pure: Solution  # minimax.solve(game, method="gradient"): V beside V_mix
    iterations: int  # double-oracle rounds run
    history: list[tuple[float, float]]  # (best upper, best lower) after each round
    seconds: float
    method: str = "double_oracle"
    status: str = "certified"  # "certified" (gap <= tol) or "gap_above_tol"; see solution.py
    reason: str = ""  # why the loop stopped
    termination: str = ""  # "converged" | "stalled" | "budget_exhausted" (solution.TERMINATIONS)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable); ``pure`` is summarised by its value, lower
        bound and status, and in full under ``"pure"``."""
        return {
            "status": self.status,
            "termination": self.termination,
            "reason": self.reason,
            "value": float(self.value),
            "upper": float(self.upper),
            "lower": float(self.lower),
            "gap": float(self.gap),
            "defenses": [d.to_dict() for d in self.defenses],
            "probabilities": np.asarray(self.probabilities, dtype=float).tolist(),
            "pure_value": float(self.pure.upper),
            "pure_lower": float(self.pure.lower),
            "pure_status": self.pure.status,
            "pure": self.pure.to_dict(),
            "iterations": int(self.iterations),
            "history": [[float(u), float(lo)] for u, lo in self.history],
            "method": self.method,
            "seconds": float(self.seconds),
        }


# --------------------------------------------------------------------------- defender oracle
def defender_best_response(game: Game, attacks, q, starts_x, steps: int):
    """Heuristic ``argmin_x sum_k q_k L(x, a_k)`` by multi-start projected descent.

    ``attacks`` (M, K), ``q`` (M,), ``starts_x`` S starting investments (a :class:`Defense`
    with leaves (S, K), or an (S, 3, K) array; projected first). Each start takes ``steps``
    steps of the shared projected line search (:func:`minimax.linesearch.projected_line_search`,
    radius from 0.1 budget units, floor 1e-12 of them). Returns the best defense (the kind of
    one start) and its objective value.
    """
    scale = game.defender_budget / jnp.mean(game.cost_matrix())

    def f(x):
        d = x if isinstance(x, Defense) else Defense(*x)
        losses = jax.vmap(lambda a: payoff(game, d, a))(attacks)
        return jnp.sum(q * losses)

    floor = 1e-12 * scale

    def project(x):
        return project_defense(game, x)

    def one(carry, _):
        return projected_line_search(f, project, *carry, floor), None

    def run(x0):
        x0 = project(x0)
        init = (x0, f(x0), 0.1 * scale)
        (x, value, _), _ = jax.lax.scan(one, init, None, length=steps)
        return x, value

    xs, values = jax.vmap(run)(starts_x)
    i = jnp.argmin(values)
    return jax.tree_util.tree_map(lambda v: v[i], xs), values[i]


# --------------------------------------------------------------------------- jitted kernels
_attacker_jit = jax.jit(mixture_best_attack)
_defender_jit = jax.jit(defender_best_response, static_argnames=("steps",))
_best_attack_jit = jax.jit(best_response_attack)


@partial(jax.jit, static_argnames=("cfg",))
def _lower_jit(game, attack, cfg):
    return lagrangian_lower_bound(game, attack, cfg).value


@jax.jit
def _matrix_jit(game, xs: Defense, attacks):
    return jax.vmap(lambda x: jax.vmap(lambda a: payoff(game, x, a))(attacks))(xs)


def _distance(u: Any, v: Any) -> float:
    """Largest absolute difference between two pytrees of one structure."""
    return max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
               for a, b in zip(jax.tree_util.tree_leaves(u), jax.tree_util.tree_leaves(v),
                               strict=True))


def _present(pool: tuple, v: Any, scale: float) -> bool:
    return any(_distance(u, v) <= _SAME * max(scale, 1.0) for u in pool)


def _padded(pool: tuple, size: int):
    """The pool stacked along a new leading axis and padded with zeros to ``size`` rows (the
    compiled kernels see one shape per run; padded rows carry probability 0)."""
    def pad(*leaves):
        out = np.zeros((size, *np.shape(leaves[0])))
        out[: len(leaves)] = np.stack(leaves)
        return jnp.asarray(out)

    return jax.tree_util.tree_map(pad, *pool)


# --------------------------------------------------------------------------- init / step / run
class DOProblem(NamedTuple):
    """What one double-oracle run solves; fixed for the whole run."""

    game: Game  # the game as given (its name is used in messages)
    view: Game  # the game without labels, so compiled code is shared
    pure: Solution  # the pure solution: first defense of the pool, V beside V_mix
    tol: float  # stop once upper - lower <= tol (weighted bits per query)
    max_iter: int  # most rounds
    steps: int  # line-search steps per start of the defender oracle
    cfg: BoundConfig  # resolution of the lower bound
    starts: Defense  # leaves (starts, K): the defender oracle's fixed random starts
    size: int  # max_iter + 2: static pool size of the compiled kernels


class DOState(NamedTuple):
    """The double oracle after ``iterations`` rounds (host-side; :func:`double_oracle_step`
    returns a new state and never changes this one)."""

    problem: DOProblem
    defenses: tuple[Defense, ...]  # pool D of pure defenses, leaves (K,), budget units
    attacks: tuple[np.ndarray, ...]  # pool A' of attacks, each (K,), power units
    p: np.ndarray  # (|D|,) the last restricted LP's defender mixture (empty before round 1)
    q: np.ndarray  # (|A'|,) the last restricted LP's attacker mixture over A'
    restricted_value: float  # value of the last restricted matrix game M (nan before)
    round_upper: float  # U(p) of the last round: what the last mixture guarantees (nan before)
    upper: float  # best U(p) so far: certified upper bound on V_mix (inf before round 1)
    lower: float  # best certified lower bound on V_mix so far
    best: tuple[tuple[Defense, ...], np.ndarray] | None  # (pool, mixture) that gave ``upper``
    history: tuple[tuple[float, float], ...]  # (upper, lower) after each round
    iterations: int  # rounds run
    termination: str  # "" while running; else "converged" | "stalled" | "budget_exhausted"


def _check_do_args(game: Game, max_iter, tol, starts, steps) -> None:
    if game.batch_shape:
        raise SolverError("solve_mixed: one game at a time (got a stacked game)")
    for name, v in (("max_iter", max_iter), ("starts", starts), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise SolverError(f"solve_mixed: {name}={v!r}; expected an integer >= 1")
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not (np.isfinite(tol)
                                                                          and tol >= 0):
        raise SolverError(f"solve_mixed: tol={tol!r}; expected a finite number >= 0")


def double_oracle_init(game: Game, max_iter: int = 30, tol: float = 1e-6, starts: int = 16,
                       steps: int = 200, seed: int = 0, cfg: BoundConfig = DEFAULT_BOUND,
                       pure: Solution | None = None) -> DOState:
    """The state before the first round: pools D = {pure defense, no defense} and A' = their
    exact best responses, ``lower`` = the best Lagrangian bound at those attacks.

    The arguments are those of :func:`solve_mixed`; ``pure`` defaults to
    ``minimax.solve(game, method="gradient", starts=starts, steps=steps, seed=seed)``.
    """
    _check_do_args(game, max_iter, tol, starts, steps)
    from minimax.solver import solve

    view = game.view()
    if pure is None:
        pure = solve(game, method="gradient", starts=starts, steps=steps, seed=seed)
    k = game.num_channels
    x_scale, a_scale = float(game.defender_budget), float(game.attacker_budget)
    defenses = (Defense(*(np.asarray(v, dtype=float) for v in pure.defense)),)
    none = Defense(*(np.zeros(k),) * 3)
    if not _present(defenses, none, x_scale):
        defenses += (none,)
    attacks: tuple[np.ndarray, ...] = ()
    for x in defenses:
        a = np.asarray(_best_attack_jit(view, x))
        if not _present(attacks, a, a_scale):
            attacks += (a,)
    grid = initial_defenses(view, starts, jax.random.PRNGKey(seed))  # (starts, 3, K)
    problem = DOProblem(game=game, view=view, pure=pure, tol=tol, max_iter=max_iter,
                        steps=steps, cfg=cfg, starts=Defense(*jnp.moveaxis(grid, 1, 0)),
                        size=max_iter + 2)
    lower = max(float(_lower_jit(view, jnp.asarray(a), cfg)) for a in attacks)
    return DOState(problem=problem, defenses=defenses, attacks=attacks, p=np.zeros(0),
                   q=np.zeros(0), restricted_value=math.nan, round_upper=math.nan,
                   upper=math.inf, lower=lower, best=None, history=(), iterations=0,
                   termination="")


def double_oracle_step(state: DOState) -> DOState:
    """One round: solve the restricted game ``M[j, k] = L(x_j, a_k)`` by LP, ask both oracles
    for best responses to the other's mixture, update the bounds and add what is new.

    A finished state (``termination`` set) is returned unchanged.
    """
    if state.termination:
        return state
    pr = state.problem
    view, size, cfg = pr.view, pr.size, pr.cfg
    x_scale, a_scale = float(pr.game.defender_budget), float(pr.game.attacker_budget)
    defenses, attacks = state.defenses, state.attacks
    iterations = state.iterations + 1
    xp, ap = _padded(defenses, size), _padded(attacks, size)
    M = np.asarray(_matrix_jit(view, xp, ap))[: len(defenses), : len(attacks)]
    restricted = zero_sum(M)
    p, q = np.asarray(restricted.x), np.asarray(restricted.y)
    p_pad, q_pad = np.zeros(size), np.zeros(size)
    p_pad[: len(defenses)] = p
    q_pad[: len(attacks)] = q
    a_new, _, u = _attacker_jit(view, xp, jnp.asarray(p_pad))
    upper, best = state.upper, state.best
    if float(u) < upper:
        upper, best = float(u), (defenses, p.copy())
    a_bar = np.asarray(q @ np.stack(attacks))
    lower = max(state.lower, float(_lower_jit(view, jnp.asarray(a_bar), cfg)))
    x_starts = jax.tree_util.tree_map(lambda a, b: jnp.concatenate([a, b], axis=0),
                                      pr.starts, xp)
    x_new, _ = _defender_jit(view, ap, jnp.asarray(q_pad), x_starts, pr.steps)
    a_new = np.asarray(a_new)
    x_new = Defense(*(np.asarray(v) for v in x_new))
    added = False
    if upper - lower > pr.tol and len(attacks) < size and not _present(attacks, a_new,
                                                                           a_scale):
        attacks += (a_new,)
        lower = max(lower, float(_lower_jit(view, jnp.asarray(a_new), cfg)))
        added = True
    if upper - lower > pr.tol and len(defenses) < size and not _present(defenses, x_new,
                                                                            x_scale):
        defenses += (x_new,)
        added = True
    termination = ("converged" if upper - lower <= pr.tol else
                   "budget_exhausted" if iterations == pr.max_iter else
                   "" if added else "stalled")
    return DOState(problem=pr, defenses=defenses, attacks=attacks, p=p, q=q,
                   restricted_value=float(restricted.value), round_upper=float(u), upper=upper,
                   lower=lower, best=best, history=state.history + ((upper, lower),),
                   iterations=iterations, termination=termination)


def double_oracle_run(state: DOState) -> DOState:
    """Step until the state's ``termination`` is set (at most ``max_iter`` rounds)."""
    while not state.termination:
        state = double_oracle_step(state)
    return state


_STOP = {"converged": "gap closed to tol", "budget_exhausted": "max_iter reached",
         "stalled": "neither oracle found a new strategy"}


def double_oracle_result(state: DOState, seconds: float = math.nan) -> MixedSolution:
    """The certified :class:`MixedSolution` of a state that has run at least one round
    (:class:`CertificateError` when its certificate does not hold)."""
    pr = state.problem
    game, upper, lower, best = pr.game, state.upper, state.lower, state.best
    if best is None or not np.all(np.isfinite(best[1])):
        raise CertificateError(f"double oracle on game {game.name!r}: no finite mixture was "
                               f"found (upper = {upper!r}); the restricted LP failed")
    support, probs = best
    keep = probs > 0
    defenses = [d for d, kp in zip(support, keep, strict=True) if kp]
    probs = probs[keep] / probs[keep].sum()
    gap = upper - lower
    _check_mixed(game, defenses, probs, upper, lower, gap, pr.pure)
    stop = _STOP.get(state.termination, "stopped before termination")
    return MixedSolution(
        defenses=defenses, probabilities=probs, value=upper, upper=upper, lower=lower,
        gap=gap, pure=pr.pure, iterations=state.iterations, history=list(state.history),
        seconds=seconds, status="certified" if gap <= pr.tol else "gap_above_tol",
        reason=f"{stop} (tol {pr.tol:g})", termination=state.termination,
    )


def solve_mixed(game: Game, max_iter: int = 30, tol: float = 1e-6, starts: int = 16,
                steps: int = 200, seed: int = 0, cfg: BoundConfig = DEFAULT_BOUND,
                pure: Solution | None = None) -> MixedSolution:
    """Certified mixed defense by double oracle (McMahan, Gordon & Blum 2003).

    Returns a finite mixture of defenses with ``upper`` (what it guarantees against an
    attacker who knows the mixture, not the draw) and a certified ``lower`` bound on
    ``V_mix = min_p max_a E_p L = max_a min_x L`` (Sion 1958), beside the pure solution
    ``pure`` (``minimax.solve(game, method="gradient", starts=starts, steps=steps,
    seed=seed)`` unless given). ``cfg`` sets the resolution of the lower bound
    (:class:`minimax.BoundConfig`). The same as :func:`double_oracle_init`, then
    :func:`double_oracle_run`, then :func:`double_oracle_result`.

    >>> import minimax
    >>> from minimax.double_oracle import solve_mixed
    >>> g = minimax.Game.create(mode="injection", attacker_budget=4.0, defender_budget=1.0,
    ...     B=[1.0], S=[1.0], N=[1.0], w=[1.0], u=[0.0], rho=[0.0], alpha=[1.0], beta=[1.0],
    ...     gamma=[1.0], levers=["b"])
    >>> sol = solve_mixed(g, max_iter=5, starts=4, steps=50)  # convex game: V_mix = V
    >>> abs(sol.upper - sol.pure.upper) < 1e-6, sol.gap < 1e-6
    (True, True)
    """
    start = time.perf_counter()
    state = double_oracle_init(game, max_iter=max_iter, tol=tol, starts=starts, steps=steps,
                               seed=seed, cfg=cfg, pure=pure)
    state = double_oracle_run(state)
    return double_oracle_result(state, seconds=time.perf_counter() - start)


def _check_mixed(game: Game, defenses, probs, upper, lower, gap, pure: Solution) -> None:
    """The mixed certificate's invariants (:class:`CertificateError` when one fails)."""
    bad = []
    for name, v in (("upper", upper), ("lower", lower), ("gap", gap)):
        if not np.isfinite(v):
            bad.append(f"{name} = {v!r} is not finite")
    if not bad:
        if lower > upper:
            bad.append(f"lower = {lower!r} > upper = {upper!r}")
        if lower > pure.upper:
            bad.append(f"lower = {lower!r} > the pure value {pure.upper!r} (V_mix <= V)")
    if np.any(probs < 0) or abs(float(np.sum(probs)) - 1.0) > 1e-9:
        bad.append(f"probabilities {probs.tolist()} are not a distribution")
    for j, d in enumerate(defenses):
        viol = certificate_violations(game, 0.0, 0.0, 0.0, d, np.zeros(game.num_channels))
        bad.extend(f"defense {j}: {v}" for v in viol)
    if bad:
        raise CertificateError(
            f"double oracle on game {game.name!r}: the certificate does not hold ("
            + "; ".join(bad) + "). Nothing is reported as certified; check the supported ranges "
            "(docs/supported-ranges.md).")
