"""The attacker's exact best response to a mixed defense (docs/solution-concepts.md §2.5,
docs/certificates.md §3.5).

Against ``sum_j p_j delta_{x_j}`` the attacker maximises ``G(a) = sum_j p_j L(x_j, a)`` over
``A = {0 <= a <= cap, sum a <= P_A}``: a concave, separable problem. Each channel's marginal
gain (injection: ``sum_j p_j w_i B_i kappa_ij / ln2 / (m_ij + a_i)``; jamming:
``sum_j p_j d_ij eta_ij s_ij / ((N_i + eta_ij a_i)(N_i + eta_ij a_i + s_ij))``) decreases in
a_i, so for a budget multiplier mu each channel's allocation is found by bisection, and mu by
an outer bisection on log mu. The value at the returned attack is made an upper bound by
Lagrangian duality: for the mu found,
``max_a G(a) <= mu P_A + sum_i max_{0 <= a_i <= min(cap_i, P_A)} [G_i(a_i) - mu a_i]``, and
each one-dimensional concave maximum is bounded by the tangent at the lower end of its
bisection bracket. This is the attacker oracle of the double oracle
(:mod:`minimax.double_oracle`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from minimax.channel import factors, payoff
from minimax.game import Defense, Game

_LN2 = float(np.log(2.0))
_OUTER = 110  # bisections on log(mu): brackets of <= ~1,500 e-folds shrink below 1e-30
_INNER = 110  # bisections per channel on [0, min(cap, P_A)]: relative width 2^-110


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
