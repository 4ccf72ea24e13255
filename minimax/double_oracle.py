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

* **attacker oracle** (exact): ``a_new = argmax_a sum_j p_j L(x_j, a)``, a concave, separable
  problem over ``{0 <= a <= cap, sum a <= P_A}``. Each channel's marginal gain
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

The loop stops when ``upper - lower <= tol``, when neither oracle finds a new strategy, or
after ``max_iter`` rounds. :func:`solve_mixed` also reports the pure solution of
:func:`minimax.solve` so ``V`` and ``V_mix`` can be compared (its certificate's lower bound is a
bound on ``max_a min_x L = V_mix``, hence also on V; it cannot separate the two).

References:
  H. B. McMahan, G. J. Gordon and A. Blum, "Planning in the presence of cost functions
  controlled by an adversary", ICML 2003 (the double-oracle algorithm).
  M. Sion, "On general minimax theorems", Pacific J. Math. 8(1):171-176 (1958).
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from minimax.best_response import best_response_attack
from minimax.certificate import BoundConfig, lagrangian_lower_bound
from minimax.channel import factors, payoff
from minimax.errors import CertificateError, SolverError
from minimax.game import Defense, Game
from minimax.gradient import initial_defenses, project_defense
from minimax.solution import Solution, certificate_violations

_LN2 = float(np.log(2.0))
_OUTER = 110  # bisections on log(mu): brackets of <= ~1,500 e-folds shrink below 1e-30
_INNER = 110  # bisections per channel on [0, min(cap, P_A)]: relative width 2^-110
_TRIALS = 7  # parallel step lengths per descent iteration (radius * 4 ** (1 - j))
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

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable)."""
        return {
            "status": self.status,
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
            "iterations": int(self.iterations),
            "history": [[float(u), float(lo)] for u, lo in self.history],
            "method": self.method,
            "seconds": float(self.seconds),
        }


# --------------------------------------------------------------------------- attacker oracle
def _channel_terms(game: Game, xs: Defense):
    """Per (defense j, channel i) coefficients of the marginal gain, each (J, K)."""
    eta, sigma, kappa, kappa_leg = jax.vmap(lambda x: factors(game, x))(xs)
    if game.mode == "injection":
        c = game.w * game.B * kappa / _LN2
        m = (game.N + sigma * game.S) / eta
        return c, m, eta, sigma * game.S
    d = game.w * game.B * kappa_leg / _LN2
    return d, eta, eta, sigma * game.S


def _marginal(game: Game, terms, p, a):
    """d/da_i of sum_j p_j L(x_j, a), shape (K,) (a of shape (K,))."""
    if game.mode == "injection":
        c, m, _, _ = terms
        return jnp.sum(p[:, None] * c / (m + a[None, :]), axis=0)
    d, eta, _, s = terms
    z = game.N + eta * a[None, :]
    return jnp.sum(p[:, None] * d * eta * s / (z * (z + s)), axis=0)


def mixture_best_attack(game: Game, defenses: Defense, p) -> tuple[jax.Array, jax.Array,
                                                                     jax.Array]:
    """The attacker's exact best response to the mixed defense ``sum_j p_j delta_{x_j}``.

    ``defenses`` holds (J, K) arrays, ``p`` (J,) probabilities (zeros allowed: padding).
    Returns ``(attack (K,), value, upper)``: ``value = sum_j p_j L(x_j, attack)`` at the
    returned feasible attack and ``upper >= max_a sum_j p_j L(x_j, a)`` a Lagrangian dual bound
    (``upper - value`` is of the order of float64 rounding). Pure and jit/vmap-able.
    """
    p = jnp.asarray(p)
    terms = _channel_terms(game, defenses)
    budget = game.attacker_budget
    top = jnp.minimum(game.cap, budget)  # a_i <= min(cap_i, P_A) on A
    reach = (_marginal(game, terms, p, jnp.zeros_like(game.B)) > 0) & (top > 0)
    top = jnp.where(reach, top, 0.0)
    tiny = jnp.finfo(jnp.float64).tiny

    def bracket(mu):
        """Bisection bracket [lo, hi] of each channel's argmax of G_i(a) - mu a on [0, top]."""

        def body(_, lh):
            lo, hi = lh
            mid = 0.5 * (lo + hi)
            up = _marginal(game, terms, p, mid) > mu
            return jnp.where(up, mid, lo), jnp.where(up, hi, mid)

        return jax.lax.fori_loop(0, _INNER, body, (jnp.zeros_like(top), top))

    all_caps = jnp.sum(top) <= budget
    g0 = _marginal(game, terms, p, jnp.zeros_like(top))
    g_top = _marginal(game, terms, p, top)
    log_hi = jnp.log(jnp.maximum(jnp.max(jnp.where(reach, g0, 0.0)), tiny)) + 1.0
    log_lo = jnp.log(jnp.maximum(jnp.min(jnp.where(reach, g_top, jnp.inf)), tiny)) - 1.0
    log_lo = jnp.minimum(log_lo, log_hi - 1.0)

    def outer(_, lh):
        lo, hi = lh
        mid = 0.5 * (lo + hi)
        over = jnp.sum(bracket(jnp.exp(mid))[0]) > budget  # too much power: raise mu
        return jnp.where(over, mid, lo), jnp.where(over, hi, mid)

    _, log_mu = jax.lax.fori_loop(0, _OUTER, outer, (log_lo, log_hi))
    mu = jnp.where(all_caps, 0.0, jnp.exp(log_mu))
    lo, hi = bracket(mu)
    attack = lo  # lower ends: sum(lo) <= budget at this mu, so the attack is feasible
    values = jax.vmap(lambda x: payoff(game, x, attack))(defenses)
    value = jnp.sum(p * values)
    slope = _marginal(game, terms, p, lo) - mu
    upper = value + mu * (budget - jnp.sum(lo)) + jnp.sum(jnp.maximum(slope, 0.0) * (hi - lo))
    return attack, value, jnp.maximum(upper, value)


# --------------------------------------------------------------------------- defender oracle
def _as_defense(x):
    return Defense(n=x[0], s=x[1], b=x[2])


def _stack(d: Defense):
    return jnp.stack([d.n, d.s, d.b], axis=-2)


def defender_best_response(game: Game, attacks, q, starts_x, steps: int):
    """Heuristic ``argmin_x sum_k q_k L(x, a_k)`` by multi-start projected descent.

    ``attacks`` (M, K), ``q`` (M,), ``starts_x`` (S, 3, K) starting investments (projected
    first). Each start takes ``steps`` projected-gradient steps with a parallel line search along
    the projection arc (the trust radius doubles on success, shrinks on failure). Returns the
    best (3, K) defense and its objective value.
    """
    scale = game.defender_budget / jnp.mean(game.cost_matrix())

    def f(x):
        losses = jax.vmap(lambda a: payoff(game, _as_defense(x), a))(attacks)
        return jnp.sum(q * losses)

    lengths = 4.0 ** (1.0 - jnp.arange(_TRIALS, dtype=jnp.float64))
    floor = 1e-12 * scale

    def one(carry, _):
        x, value, radius = carry
        grad = jax.grad(f)(x)
        direction = grad / jnp.maximum(jnp.max(jnp.abs(grad)), 1e-300)
        trials = radius * lengths
        xs = jax.vmap(lambda t: project_defense(game, x - t * direction))(trials)
        vals = jax.vmap(f)(xs)
        j = jnp.argmin(vals)
        ok = vals[j] < value
        return (jnp.where(ok, xs[j], x), jnp.where(ok, vals[j], value),
                jnp.where(ok, 2.0 * trials[j], jnp.maximum(trials[-1] / 2.0, floor))), None

    def run(x0):
        x0 = project_defense(game, x0)
        init = (x0, f(x0), 0.1 * scale)
        (x, value, _), _ = jax.lax.scan(one, init, None, length=steps)
        return x, value

    xs, values = jax.vmap(run)(starts_x)
    i = jnp.argmin(values)
    return xs[i], values[i]


# --------------------------------------------------------------------------- jitted kernels
@jax.jit
def _attacker_jit(game, xs, p):
    return mixture_best_attack(game, _as_defense(jnp.moveaxis(xs, -2, 0)), p)


@partial(jax.jit, static_argnames=("steps",))
def _defender_jit(game, attacks, q, starts_x, steps):
    return defender_best_response(game, attacks, q, starts_x, steps)


@partial(jax.jit, static_argnames=("cfg",))
def _lower_jit(game, attack, cfg):
    return lagrangian_lower_bound(game, attack, cfg).value


@jax.jit
def _matrix_jit(game, xs, attacks):
    return jax.vmap(lambda x: jax.vmap(lambda a: payoff(game, _as_defense(x), a))(attacks))(xs)


@jax.jit
def _best_attack_jit(game, x):
    return best_response_attack(game, _as_defense(x))


def _zero_sum(M: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equilibrium (p over rows, q over columns) of the loss matrix M, rows minimising."""
    try:
        from minimax.finite import zero_sum
    except ImportError:  # pragma: no cover - the finite package is optional here
        zero_sum = None
    if zero_sum is not None:
        sol = zero_sum(M)
        return np.asarray(sol.x), np.asarray(sol.y)
    from scipy.optimize import linprog

    m, n = M.shape
    c = np.zeros(m + 1)
    c[-1] = 1.0
    res = linprog(c, A_ub=np.hstack([M.T, -np.ones((n, 1))]), b_ub=np.zeros(n),
                  A_eq=np.concatenate([np.ones(m), [0.0]])[None, :], b_eq=[1.0],
                  bounds=[(0.0, None)] * m + [(None, None)], method="highs")
    if res.status != 0:
        raise SolverError(f"double oracle: restricted LP failed: {res.message}")
    p = np.clip(res.x[:m], 0.0, None)
    q = np.clip(-res.ineqlin.marginals, 0.0, None)
    return p / p.sum(), q / q.sum()


def _present(pool: list[np.ndarray], v: np.ndarray, scale: float) -> bool:
    return any(np.max(np.abs(u - v)) <= _SAME * max(scale, 1.0) for u in pool)


def solve_mixed(game: Game, max_iter: int = 30, tol: float = 1e-6, starts: int = 16,
                steps: int = 200, seed: int = 0, cfg: BoundConfig = DEFAULT_BOUND,
                pure: Solution | None = None) -> MixedSolution:
    """Certified mixed defense by double oracle (McMahan, Gordon & Blum 2003).

    Returns a finite mixture of defenses with ``upper`` (what it guarantees against an
    attacker who knows the mixture, not the draw) and a certified ``lower`` bound on
    ``V_mix = min_p max_a E_p L = max_a min_x L`` (Sion 1958), beside the pure solution
    ``pure`` (``minimax.solve(game, method="gradient", starts=starts, steps=steps,
    seed=seed)`` unless given). ``cfg`` sets the resolution of the lower bound
    (:class:`minimax.BoundConfig`).

    >>> import minimax
    >>> from minimax.double_oracle import solve_mixed
    >>> g = minimax.Game.create(mode="injection", attacker_budget=4.0, defender_budget=1.0,
    ...     B=[1.0], S=[1.0], N=[1.0], w=[1.0], u=[0.0], rho=[0.0], alpha=[1.0], beta=[1.0],
    ...     gamma=[1.0], levers=["b"])
    >>> sol = solve_mixed(g, max_iter=5, starts=4, steps=50)  # convex game: V_mix = V
    >>> abs(sol.upper - sol.pure.upper) < 1e-6, sol.gap < 1e-6
    (True, True)
    """
    if game.batch_shape:
        raise SolverError("solve_mixed: one game at a time (got a stacked game)")
    for name, v in (("max_iter", max_iter), ("starts", starts), ("steps", steps)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise SolverError(f"solve_mixed: {name}={v!r}; expected an integer >= 1")
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not (np.isfinite(tol)
                                                                          and tol >= 0):
        raise SolverError(f"solve_mixed: tol={tol!r}; expected a finite number >= 0")
    from minimax.solve import solve

    start = time.perf_counter()
    view = game.view()
    if pure is None:
        pure = solve(game, method="gradient", starts=starts, steps=steps, seed=seed)
    k = game.num_channels
    cap = max_iter + 2  # static pool size: padded rows carry probability 0
    x_hat = np.stack([np.asarray(v, dtype=float) for v in pure.defense])
    x_scale = float(game.defender_budget)
    a_scale = float(game.attacker_budget)
    xs = [x_hat]
    if not _present(xs, np.zeros((3, k)), x_scale):
        xs.append(np.zeros((3, k)))
    attacks: list[np.ndarray] = []
    for x in xs:
        a = np.asarray(_best_attack_jit(view, jnp.asarray(x)))
        if not _present(attacks, a, a_scale):
            attacks.append(a)
    key = jax.random.PRNGKey(seed)
    random_starts = np.asarray(initial_defenses(view, starts, key))

    def padded(pool, shape):
        out = np.zeros((cap, *shape))
        out[: len(pool)] = np.stack(pool)
        return jnp.asarray(out)

    lower = max(float(_lower_jit(view, jnp.asarray(a), cfg)) for a in attacks)
    upper, best = np.inf, None
    history: list[tuple[float, float]] = []
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        xp, ap = padded(xs, (3, k)), padded(attacks, (k,))
        M = np.asarray(_matrix_jit(view, xp, ap))[: len(xs), : len(attacks)]
        p, q = _zero_sum(M)
        p_pad = np.zeros(cap)
        p_pad[: len(xs)] = p
        q_pad = np.zeros(cap)
        q_pad[: len(attacks)] = q
        a_new, _, u = _attacker_jit(view, xp, jnp.asarray(p_pad))
        if float(u) < upper:
            upper, best = float(u), ([x.copy() for x in xs], p.copy())
        a_bar = np.asarray(q @ np.stack(attacks))
        lower = max(lower, float(_lower_jit(view, jnp.asarray(a_bar), cfg)))
        x_starts = jnp.concatenate([jnp.asarray(random_starts), xp], axis=0)
        x_new, _ = _defender_jit(view, ap, jnp.asarray(q_pad), x_starts, steps)
        a_new, x_new = np.asarray(a_new), np.asarray(x_new)
        added = False
        if upper - lower > tol and len(attacks) < cap and not _present(attacks, a_new, a_scale):
            attacks.append(a_new)
            lower = max(lower, float(_lower_jit(view, jnp.asarray(a_new), cfg)))
            added = True
        if upper - lower > tol and len(xs) < cap and not _present(xs, x_new, x_scale):
            xs.append(x_new)
            added = True
        history.append((upper, lower))
        if upper - lower <= tol or not added:
            break
    if best is None or not np.all(np.isfinite(best[1])):
        raise CertificateError(f"double oracle on game {game.name!r}: no finite mixture was "
                               f"found (upper = {upper!r}); the restricted LP failed")
    support, probs = best
    keep = probs > 0
    defenses = [_as_defense(jnp.asarray(x)) for x, kp in zip(support, keep, strict=True) if kp]
    defenses = [Defense(*(np.asarray(v) for v in d)) for d in defenses]
    probs = probs[keep] / probs[keep].sum()
    gap = upper - lower
    _check_mixed(game, defenses, probs, upper, lower, gap, pure)
    stop = ("gap closed to tol" if gap <= tol else "max_iter reached"
            if iterations == max_iter else "neither oracle found a new strategy")
    return MixedSolution(
        defenses=defenses, probabilities=probs, value=upper, upper=upper, lower=lower,
        gap=gap, pure=pure, iterations=iterations, history=history,
        seconds=time.perf_counter() - start,
        status="certified" if gap <= tol else "gap_above_tol",
        reason=f"{stop} (tol {tol:g})",
    )


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
