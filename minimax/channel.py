"""Shannon-Hartley capacities and the defender's loss L(x, a) (docs/model.md §1.1, §1.4, §1.5).

All capacities are in bits per query; powers are in the channel's power units. Every function
takes a :class:`~minimax.game.Game` (arrays of shape (K,)) and a :class:`~minimax.game.Defense`
and is pure, jit-able and vmap-able.

Injection mode (the attacker pushes its own information through the channel; legitimate
signal is interference)::

    m_i(x)      = (N_i + sigma_i(s_i) S_i) / eta_i(n_i)
    Cadv_i(x,a) = B_i kappa_i(b_i) log2(1 + a_i / m_i(x))
    Cleg_i(x)   = B_i kappa_i(b_i)^rho_i log2(1 + sigma_i(s_i) S_i / N_i)
    L(x, a)     = sum_i w_i Cadv_i(x, a) - lambda sum_i u_i Cleg_i(x)

Jamming mode (attacker power is noise on the legitimate channel)::

    L(x, a) = sum_i w_i [B_i log2(1 + S_i/N_i)
                         - B_i kappa_i(b_i)^rho_i log2(1 + sigma_i S_i / (N_i + eta_i a_i))]

In jamming mode the per-channel "adversarial capacity" reported is the bracket above: the
legitimate bits per query the attack removes (negative when the defense more than restores them).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from minimax.effects import (
    bandwidth_factor,
    legitimate_bandwidth_factor,
    log_noise_factor,
    noise_factor,
    signal_factor,
)
from minimax.game import Defense, Game


def capacity(bandwidth, signal, noise):
    """Shannon-Hartley capacity ``C = B log2(1 + S/N)`` in bits per query.

    >>> float(capacity(1.0, 3.0, 1.0))
    2.0
    """
    # log1p, not log2(1 + x): at SNR 1e-11 the latter keeps only 5 digits
    return bandwidth * jnp.log1p(signal / noise) / jnp.log(2.0)


def factors(game: Game, defense: Defense):
    """(eta, sigma, kappa, kappa_leg): the lever effects at ``defense``, each of shape (K,)."""
    eta = noise_factor(game.effect, defense.n, game.alpha)
    sigma = signal_factor(game.effect, defense.s, game.beta)
    kappa = bandwidth_factor(game.effect, defense.b, game.gamma)
    kappa_leg = legitimate_bandwidth_factor(game.effect, defense.b, game.gamma, game.rho)
    return eta, sigma, kappa, kappa_leg


def attacker_noise_floor(game: Game, defense: Defense) -> jax.Array:
    """m_i(x) = (N_i + sigma_i S_i) / eta_i: the interference an injected signal must beat
    (+inf on a saturated channel, where eta underflows; see :func:`attacker_gain`)."""
    return 1.0 / attacker_gain(game, defense)


def attacker_gain(game: Game, defense: Defense) -> jax.Array:
    """1 / m_i(x) = eta_i / (N_i + sigma_i S_i), computed from log eta so that it is finite
    (possibly 0) however much noise suppression the defense buys. The injected signal's SNR is
    ``a_i * gain_i``."""
    _, sigma, _, _ = factors(game, defense)
    log_eta = log_noise_factor(game.effect, defense.n, game.alpha)
    return jnp.exp(log_eta - jnp.log(game.N + sigma * game.S))


def legitimate_capacity(game: Game, defense: Defense, attack=None) -> jax.Array:
    """Legitimate bits per query per channel, (K,).

    Injection mode: ``B kappa^rho log2(1 + sigma S / N)`` (the attack does not change it).
    Jamming mode: ``B kappa^rho log2(1 + sigma S / (N + eta a))`` (``attack`` = 0 if omitted).
    """
    eta, sigma, _, kappa_leg = factors(game, defense)
    noise = game.N
    if game.mode == "jamming" and attack is not None:
        noise = noise + eta * attack
    return capacity(game.B * kappa_leg, sigma * game.S, noise)


def adversarial_capacity(game: Game, defense: Defense, attack) -> jax.Array:
    """Adversarial bits per query per channel, (K,).

    Injection: ``B kappa log2(1 + a / m(x))``. Jamming: the legitimate bits the attack removes,
    ``B log2(1 + S/N) - B kappa^rho log2(1 + sigma S / (N + eta a))``.
    """
    eta, sigma, kappa, kappa_leg = factors(game, defense)
    if game.mode == "injection":
        # log1p(a / m) with a / m = a * gain: finite and differentiable on saturated channels
        return game.B * kappa * jnp.log1p(attack * attacker_gain(game, defense)) / jnp.log(2.0)
    baseline = capacity(game.B, game.S, game.N)
    return baseline - capacity(game.B * kappa_leg, sigma * game.S, game.N + eta * attack)


def payoff(game: Game, defense: Defense, attack) -> jax.Array:
    """The defender's loss L(x, a) (docs/model.md §1.4, §1.5); the attacker maximises it."""
    harm = jnp.sum(game.w * adversarial_capacity(game, defense, attack), axis=-1)
    if game.mode == "jamming":
        return harm
    utility = jnp.sum(game.u * legitimate_capacity(game, defense), axis=-1)
    return harm - game.utility_price * utility


def defense_cost(game: Game, defense: Defense) -> jax.Array:
    """Budget spent by ``defense``: sum_i cn_i n_i + cs_i s_i + cb_i b_i."""
    return jnp.sum(
        game.cost_n * defense.n + game.cost_s * defense.s + game.cost_b * defense.b, axis=-1
    )
