"""Exact attacker best responses (docs/solution-concepts.md §2.3).

For a fixed defence x, ``L(x, .)`` is concave in the attack a over
``A = {a >= 0, a_i <= cap_i, sum_i a_i <= P_A}``, so the KKT conditions characterise the best
response:

* **injection** -- weighted water-filling: ``a_i = clip(c_i / mu - m_i, 0, cap_i)`` with
  ``c_i = w_i B_i kappa_i / ln 2`` and the water level ``1/mu`` set so the budget binds (or every
  reachable cap binds). Solved exactly by :func:`minimax.rootfind.clipped_linear_root`.
* **jamming** -- the marginal harm of noise on channel i is
  ``d_i eta_i s_i / ((N_i + eta_i a_i)(N_i + eta_i a_i + s_i))`` with ``s_i = sigma_i S_i``,
  ``d_i = w_i B_i kappa_i^rho / ln 2``; equating it to mu gives a quadratic in
  ``z_i = N_i + eta_i a_i`` with a closed-form root, and mu is found by bisection in log-space
  (the allocation is monotone in mu). 96 halvings of a bracket of at most ~1,400 e-folds leave
  a relative error in mu far below float64 resolution.

Both run inside ``jit``/``vmap`` and are exact to rounding: ``phi(x) = max_a L(x, a)`` is then
an exact upper bound on the minimax value at any feasible x (Danskin: its gradient is
``grad_x L(x, a*(x))``).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from minimax.channel import attacker_noise_floor, factors, payoff
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
    m = attacker_noise_floor(game, defense)
    t = clipped_linear_root(c, m, game.cap, game.attacker_budget)
    return clipped_linear_solution(c, m, game.cap, t)


def _jamming_allocation(mu, d, eta, s, noise, cap):
    z = 0.5 * (-s + jnp.sqrt(s * s + 4.0 * d * eta * s / mu))
    a = jnp.clip((z - noise) / eta, 0.0, cap)
    return jnp.where(d > 0, a, 0.0)


def _jamming_best_response(game: Game, defense: Defense) -> jax.Array:
    eta, sigma, _, kappa_leg = factors(game, defense)
    d = game.w * game.B * kappa_leg / jnp.log(2.0)
    s = sigma * game.S
    noise = game.N
    budget = game.attacker_budget
    reach = d > 0
    cap = jnp.where(reach, game.cap, 0.0)

    def marginal(a):
        z = noise + eta * a
        return d * eta * s / (z * (z + s))

    all_caps = jnp.sum(cap, axis=-1) <= budget
    tiny = jnp.finfo(jnp.float64).tiny
    log_hi = jnp.log(jnp.max(jnp.where(reach, marginal(0.0), tiny), axis=-1))
    log_lo = jnp.log(
        jnp.maximum(jnp.min(jnp.where(reach, marginal(jnp.maximum(budget, 0.0)), jnp.inf),
                            axis=-1), tiny)
    ) - 1.0

    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        total = jnp.sum(_jamming_allocation(jnp.exp(mid), d, eta, s, noise, cap), axis=-1)
        # total is decreasing in mu: too much power -> raise mu
        lo = jnp.where(total > budget, mid, lo)
        hi = jnp.where(total > budget, hi, mid)
        return lo, hi

    lo, hi = jax.lax.fori_loop(0, _BISECTIONS, body, (log_lo, log_hi))
    a = _jamming_allocation(jnp.exp(hi), d, eta, s, noise, cap)
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
    """The adaptive attacker's exact best response to a fixed defence.

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
