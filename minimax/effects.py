"""Effect maps of the three defense levers (docs/model.md §1.3).

Each map turns an investment (>= 0, budget units) into a multiplicative factor:

* ``eta(n)``   -- noise suppression: adversarial power reaching the model is multiplied by it
  (1 at n = 0, decreasing to 0).
* ``sigma(s)`` -- signal enhancement: legitimate signal power is multiplied by it
  (1 at s = 0, increasing).
* ``kappa(b)`` -- bandwidth restriction: attacker bandwidth is multiplied by it, legitimate
  bandwidth by ``kappa(b) ** rho`` (1 at b = 0, decreasing to 0).

``exp`` is the default: ``eta = exp(-alpha n)``, ``sigma = 1 + beta s``,
``kappa = exp(-gamma b)``. ``rational`` keeps ``sigma`` and uses the slower, heavy-tailed
``eta = 1 / (1 + alpha n)`` and ``kappa = 1 / (1 + gamma b)``: each extra unit of budget buys
less than under ``exp``. Both are monotone and keep the convexity facts the certificates use
(``-log eta`` is convex in n and ``log kappa`` is monotone in b).
"""

from __future__ import annotations

import jax.numpy as jnp

EFFECTS = ("exp", "rational")


def noise_factor(effect: str, n, alpha):
    """eta(n): factor on adversarial power after ``n`` units of noise suppression."""
    if effect == "exp":
        return jnp.exp(-alpha * n)
    return 1.0 / (1.0 + alpha * n)


def log_noise_factor(effect: str, n, alpha):
    """log eta(n), exact where eta itself underflows (exp: -alpha n; rational: -log1p(alpha n)).

    Large suppression budgets drive eta below the float range (exp(-alpha n) = 0 from
    alpha n ~ 745); the log keeps such a *saturated* channel's arithmetic finite.
    """
    if effect == "exp":
        return -alpha * n
    return -jnp.log1p(alpha * n)


def signal_factor(effect: str, s, beta):
    """sigma(s) = 1 + beta s: factor on legitimate signal power (same for every effect)."""
    del effect
    return 1.0 + beta * s


def bandwidth_factor(effect: str, b, gamma):
    """kappa(b): factor on the attacker's usable bandwidth after ``b`` units of restriction."""
    if effect == "exp":
        return jnp.exp(-gamma * b)
    return 1.0 / (1.0 + gamma * b)


def legitimate_bandwidth_factor(effect: str, b, gamma, rho):
    """kappa(b) ** rho, written so that rho = 0 gives exactly 1 (also at kappa = 0)."""
    if effect == "exp":
        return jnp.exp(-rho * gamma * b)
    return jnp.exp(-rho * jnp.log1p(gamma * b))


def noise_stationary(effect: str, weight, attack, denom, alpha, price):
    """Unconstrained minimiser over n >= 0 of ``weight log2(1 + attack eta(n) / denom) + price n``.

    Used by the certificates (docs §3.4): the function is convex in n for both maps, so
    its stationary point, clipped to the feasible interval, is the constrained minimiser.
    Returns +inf when the price is 0 (more suppression always helps) and 0 when the first unit
    of suppression is not worth its price.
    """
    weight = jnp.maximum(weight, 0.0)
    safe_price = jnp.where(price > 0, price, 1.0)
    safe_attack = jnp.where(attack > 0, attack, 1.0)
    if effect == "exp":
        # W alpha / ln2 * r / (1 + r) = price  with  r = a e^{-alpha n} / D
        q = safe_price * jnp.log(2.0) / jnp.maximum(weight * alpha, 1e-300)
        r = q / jnp.maximum(1.0 - q, 1e-300)
        n = jnp.log(safe_attack / (denom * r)) / alpha
        n = jnp.where(q >= 1.0, 0.0, n)
    else:
        # with v = 1 + alpha n:  D v^2 + a v - W alpha a / (ln2 price) = 0, whose positive root
        # (-a + sqrt(a^2 + 4 D c)) / (2 D) is written 2 c / (a + hypot(a, 2 sqrt(D c))): no
        # cancellation and no overflow of a^2 (a = 1e300 gave n = inf and an invalid bound)
        c = weight * alpha * safe_attack / (jnp.log(2.0) * safe_price)
        v = 2.0 * c / (safe_attack + jnp.hypot(safe_attack, 2.0 * jnp.sqrt(denom * c)))
        n = (v - 1.0) / alpha
    n = jnp.where(price > 0, n, jnp.inf)
    n = jnp.where((attack > 0) & (weight > 0), n, 0.0)
    return jnp.maximum(n, 0.0)
