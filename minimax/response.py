"""Exact attacker best responses (docs/solution-concepts.md §2.3).

For a fixed defense x, ``L(x, .)`` is concave in the attack a over
``A = {a >= 0, a_i <= cap_i, sum_i a_i <= P_A}``, so the KKT conditions characterise the best
response:

* **injection** -- weighted water-filling: ``a_i = clip(c_i / mu - m_i, 0, cap_i)`` with
  ``c_i = w_i B_i kappa_i / ln 2`` and the water level ``1/mu`` set so the budget binds (or every
  reachable cap binds). Solved exactly by :func:`minimax.rootfind.clipped_linear_root`.
* **jamming** -- the marginal harm of noise on channel i is
  ``d_i eta_i s_i / ((N_i + eta_i a_i)(N_i + eta_i a_i + s_i))`` with ``s_i = sigma_i S_i``,
  ``d_i = w_i B_i kappa_i^rho / ln 2``; equating it to mu gives a quadratic in
  ``z_i = N_i + eta_i a_i`` with a closed-form root, and mu is found by bisection in log-space
  (the allocation is monotone in mu). 96 halvings of a bracket of at most ~330 e-folds leave
  a relative error in mu far below float64 resolution.

Saturated channels (``eta = exp(-alpha n)`` below the float range once ``alpha n > ~745``) are
exact too: water-filling works with ``1/m_i = eta_i / (N_i + sigma_i S_i)`` formed from
``log eta`` and a root carried as kink + step (:mod:`minimax.rootfind`), and the jamming
allocation is evaluated in logs.

Both run inside ``jit``/``vmap`` and are exact to rounding: ``phi(x) = max_a L(x, a)`` is then
an exact upper bound on the minimax value at any feasible x (Danskin: its gradient is
``grad_x L(x, a*(x))``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minimax.channel import attacker_gain, factors, payoff
from minimax.effects import log_noise_factor
from minimax.game import Defense, Game, as_defense
from minimax.rootfind import clipped_linear_root, clipped_linear_solution

_BISECTIONS = 96


def best_response_attack(game: Game, defense: Defense) -> jax.Array:
    """The attacker's exact best response a*(x), shape (K,). Pure and jit/vmap-able."""
    if game.mode == "injection":
        return _water_filling(game, defense)
    return _jamming_best_response(game, defense)


def _water_filling(game: Game, defense: Defense) -> jax.Array:
    _, _, kappa, _ = factors(game, defense)
    c = game.w * game.B * kappa / jnp.log(2.0)
    gain = attacker_gain(game, defense)
    # a_i = clip(c_i (t - start_i), 0, cap_i), t = 1/mu, start_i = m_i / c_i = 1 / (c_i gain_i);
    # start_i = inf (gain or c underflows) marks a channel no finite water level reaches
    start = 1.0 / (c * gain)
    root = clipped_linear_root(c, start, game.cap, game.attacker_budget)
    return clipped_linear_solution(c, start, game.cap, root)


def _log_expm1(e):
    """log(exp(e) - 1) for e > 0 without overflow or cancellation."""
    return jnp.where(e > 1.0, e + jnp.log1p(-jnp.exp(-jnp.maximum(e, 1.0))),
                     jnp.log(jnp.expm1(jnp.minimum(e, 1.0))))


def _jamming_allocation(log_mu, log_m0, noise, s, log_eta, cap, reach):
    """Each channel's power at multiplier mu, from the marginal-harm equation in log-space.

    With y = eta a the attack's noise and q = d eta s / mu, the marginal condition
    (N + y)(N + y + s) = q has the root y = 2 N (N + s) (q / (N (N + s)) - 1)
    / ((2N + s) + sqrt(s^2 + 4q)) and q / (N (N + s)) = exp(log m0 - log mu), m0 the marginal
    at a = 0. Evaluated in logs, so eta below the float range (a saturated channel) and
    multipliers far from m0 neither overflow nor cancel.
    """
    e = jnp.minimum(log_m0 - log_mu, 1400.0)
    pos = reach & (e > 0)
    e = jnp.where(pos, e, 1.0)
    base = jnp.log(noise) + jnp.log(noise + s)
    log_q = base + e
    log_sqrt = 0.5 * jnp.logaddexp(2.0 * jnp.log(s), jnp.log(4.0) + log_q)
    log_den = jnp.logaddexp(jnp.log(2.0 * noise + s), log_sqrt)
    log_a = jnp.log(2.0) + base + _log_expm1(e) - log_den - log_eta
    a = jnp.minimum(jnp.exp(jnp.minimum(log_a, 1000.0)), cap)
    return jnp.where(pos, a, 0.0)


def _jamming_best_response(game: Game, defense: Defense) -> jax.Array:
    _, sigma, _, kappa_leg = factors(game, defense)
    log_eta = log_noise_factor(game.effect, defense.n, game.alpha)
    d = game.w * game.B * kappa_leg / jnp.log(2.0)
    s = sigma * game.S
    noise = game.N
    budget = game.attacker_budget
    # marginal harm at a = 0: m0 = d eta s / (N (N + s)), in logs (eta may underflow)
    log_m0 = jnp.log(jnp.where(d > 0, d, 1.0)) + log_eta + jnp.log(s) - jnp.log(noise) \
        - jnp.log(noise + s)
    reach = (d > 0) & (game.cap > 0) & (log_m0 > -1e300)
    log_m0 = jnp.where(reach, log_m0, 0.0)
    cap = jnp.where(reach, game.cap, 0.0)

    def total(log_mu):
        return jnp.sum(_jamming_allocation(log_mu, log_m0, noise, s, log_eta, cap,
                                           reach), axis=-1)

    all_caps = jnp.sum(cap, axis=-1) <= budget
    # Bracket of log mu. At mu = max m0 nobody gets power. A channel given the water level
    # e = log(m0 / mu) receives a >= N e^{e/2} / 4 (the root above, e >= 1), so at
    # E = 2 log(4 P_A / min N) + 2 below a channel's m0 it alone absorbs P_A or its cap. Every
    # channel within 250 e-folds of the best is given that much room; channels further down
    # (e.g. saturated ones, log eta ~ -1e8) have a marginal below e^-250 of the best one's and
    # are left out of the bracket rather than stretching it over 1e8 e-folds, which 96
    # halvings would no longer resolve.
    log_hi = jnp.max(jnp.where(reach, log_m0, -jnp.inf), axis=-1)
    min_noise = jnp.min(jnp.where(reach, noise, jnp.inf), axis=-1)
    room = 2.0 * jnp.log(4.0 * jnp.maximum(budget, 1e-300) / min_noise) + 2.0
    log_hi = jnp.where(jnp.isfinite(log_hi), log_hi, 0.0)
    log_lo = log_hi - 250.0 - jnp.where(jnp.isfinite(room), jnp.maximum(room, 0.0), 0.0)

    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        # total is decreasing in mu: too much power -> raise mu
        over = total(mid) > budget
        return jnp.where(over, mid, lo), jnp.where(over, hi, mid)

    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, body, (log_lo, log_hi))
    a = _jamming_allocation(hi, log_m0, noise, s, log_eta, cap, reach)
    a = jnp.where(all_caps, cap, a)
    return jnp.where(budget > 0, a, jnp.zeros_like(a))


def phi(game: Game, defense: Defense) -> jax.Array:
    """phi(x) = max_a L(x, a), exact (the adaptive attacker's value against ``defense``)."""
    attack = jax.lax.stop_gradient(best_response_attack(game, defense))
    return payoff(game, defense, attack)


@jax.jit
def _best_response_jit(game: Game, defense: Defense):
    attack = best_response_attack(game, defense)
    return attack, payoff(game, defense, attack)


def best_response(game: Game, defense: Any) -> tuple[np.ndarray, float]:
    """The adaptive attacker's exact best response to a fixed defense.

    ``defense`` is ``{"n": [...], "s": [...], "b": [...]}`` (missing levers = 0), a
    :class:`~minimax.game.Defense` or a (3, K) array. Returns ``(attack, value)`` with
    ``attack`` of shape (K,) (power units) and ``value = L(x, a*)`` (weighted bits per query).

    >>> import minimax
    >>> g = minimax.Game.create(mode="injection", attacker_budget=2.0, defender_budget=1.0,
    ...     B=[1.0, 1.0], S=[1.0, 1.0], N=[1.0, 1.0], w=[1.0, 1.0], u=[0.0, 0.0],
    ...     rho=[0.0, 0.0], alpha=[1.0, 1.0], beta=[1.0, 1.0], gamma=[1.0, 1.0])
    >>> attack, value = minimax.best_response(g, {"n": [0, 0]})
    >>> attack.tolist(), round(value, 6)  # symmetric: split evenly, 2 log2(1 + 1/2)
    ([1.0, 1.0], 1.169925)
    """
    x = as_defense(game, defense)
    attack, value = _best_response_jit(game, x)
    return np.asarray(attack), float(value)
