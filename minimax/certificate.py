"""Certified bounds on the minimax value V = min_x max_a L(x, a) (docs/certificates.md §3).

**Upper bound.** For any feasible defense x, ``phi(x) = max_a L(x, a)`` is computed exactly by
the attacker's best response, and ``V <= phi(x)``.

**Lower bound.** For any feasible attack a_hat,
``V >= max_a min_x L(x, a) >= min_x L(x, a_hat)``, and for every nu >= 0 the Lagrangian
relaxation of the defender's budget gives

    g(nu) = sum_i min_{x_i in X_i} [L_i(x_i, a_hat_i) + nu cost_i . x_i] - nu P_D  <=  V,

where X_i = {x_i >= 0, cost_i . x_i <= P_D} (a relaxation of X, so still valid). Each
per-channel problem has three variables and is not jointly convex, so it is lower-bounded
*globally*:

* **injection** -- for fixed b the objective is convex in (n, s) (``log(1 + e^u)`` of a convex
  u, minus ``log`` of an affine function). The optimal n given s has a closed form
  (:func:`minimax.effects.noise_stationary`), the remaining function of s is convex, and its
  minimum is bracketed by bisection on the derivative and lower-bounded by the two tangent
  lines at the bracket ends. Over b, a branch-and-bound on intervals uses monotonicity: on
  ``[b_lo, b_hi]`` the harm term is at least its value at ``b_hi``, the utility and cost terms
  at least their values at ``b_lo``.
* **jamming** -- the loss increases with b (restriction only removes legitimate bandwidth),
  so b = 0 is optimal; for fixed n the objective is convex in s, and n is handled by the same
  interval branch-and-bound (harm is decreasing in n). Its interval bound is first order only,
  so jamming mode starts from ``BoundConfig.jamming_widen`` times as many intervals.

Every nu gives a valid bound, so nu is searched (bisection on the supergradient
``sum cost . x(nu) - P_D`` in log-space) and the best bound found is kept. The bound is exact up
to floating-point rounding, for which a margin of ``BoundConfig.margin`` (1e-12) times the
magnitude of the terms (harm, utility and budget terms, not only their sum) is subtracted. It
is tight (up to the interval widths) when the game is convex-concave and a_hat is the saddle attack;
for non-convex games a real gap ``V - max_a min_x L`` can remain, and it is reported, never
hidden.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from minimax.channel import capacity, payoff
from minimax.effects import (
    bandwidth_factor,
    legitimate_bandwidth_factor,
    noise_factor,
    noise_stationary,
)
from minimax.errors import SolverError
from minimax.game import Defense, Game
from minimax.response import best_response_attack

_LN2 = jnp.log(2.0)


class BoundConfig(NamedTuple):
    """Resolution of the lower-bound computation (static: a new record compiles anew).

    Every field is a resolution or a rounding allowance of the bound, never a modelling
    choice: any record gives a valid bound, a coarser one a looser bound (docs/certificates.md
    §3.4).
    """

    # rounds of the parallel bracket search (a (grid - 1)-fold shrink per round): 21 halvings,
    # the 2^21 = 8^7 shrink of the earlier 7 rounds of 9 points
    bisect_s: int = 21
    boxes: int = 24  # intervals kept in the branch-and-bound pool
    # intervals refined per round (the lowest bounds of the pool, each split into
    # boxes // refine); the unrefined ones stay in the pool. With the pool, 6 rounds of 4 (3/4
    # of the rounds) against the previous 8 rounds of 6, which dropped every unrefined interval,
    # at the searched multiplier: g(nu) higher by 4.0e-5 in the median and 1.4e-3 at the 90th
    # percentile, lower by at most 2.4e-7, on 64 random games K = 6 (32 at K = 12: +6.4e-5
    # median, at most 3.7e-8 lower)
    refine: int = 4
    rounds: int = 6  # refinement rounds
    # rounds of the bracket search in the boxes of the refinement rounds (bisect_s in the first
    # round's boxes and everywhere else). The b intervals, not the bracket of s, set the bound:
    # a 4096x shrink (12 halvings, as 4 rounds of 9 points) in place of 8^7 cut the bound's time
    # by ~30% and moved g(nu) by at most -8.5e-8 (median -5.5e-9) on 64 random games K = 6,
    # leaving the gaps' median and 90th percentile where they were (experiments/profile_core.py)
    refine_bisect: int = 12
    # bisection steps on log nu over a width of 40 (1e-8 resolution: 20 steps left a gap of
    # 2.6e-5 on a convex game whose gap closes to 1e-10 with 32)
    nu_steps: int = 32
    # With a hint (the defense's own KKT multiplier, :func:`kkt_multiplier`), the search first
    # tries the bracket log nu in [log hint - nu_window, log hint + nu_window] (two estimates at
    # its ends) and bisects it hint_steps times (0.125 / 2^22 = 3e-8 resolution), else the side
    # of it where the crossing lies (then coarser). On 64 random games K = 6 the hint was off
    # the searched log nu by 0.005 in the median, 0.016 at the 90th percentile, 0.19 at most;
    # 24 evaluations of the estimate in place of 32.
    nu_window: float = 0.0625
    hint_steps: int = 22
    search_grid: int = 24  # outer-lever grid of the (heuristic) multiplier search
    # rounds of the bracket search inside the multiplier search (a heuristic, so coarser than
    # bisect_s): a 4096x shrink (12 halvings) in place of 16^6 cut the certificate's time by a
    # third on 64 random games K = 6 and moved no gap by more than 2e-6 (either way)
    search_bisect: int = 12
    # points per round of the bracket search of a convex 1-D minimum (>= 3). A round's ends
    # were evaluated in the round before, so a round costs grid - 2 evaluations for a
    # (grid - 1)-fold shrink: 3 points (bisection, 1 evaluation per halving) reach the shrink of
    # 9 points (7 evaluations per 3 halvings) with 3/7 of the evaluations and, on 64 random
    # games K = 6, the same bounds to 2.2e-16 and the same multipliers, for a certificate 2x
    # faster (experiments/bench_core.py --before)
    grid: int = 3
    # Rounding margin subtracted from the bound, relative to the magnitude of its terms (harm,
    # utility and budget terms, not only their sum); 1e-12 is ~4,500 ulps of each term.
    margin: float = 1e-12
    # Jamming mode multiplies boxes and refine by this: its box bound is first order, and a
    # finer first round cut the default jamming game's gap from 0.24 to 0.03 (times 4) for
    # twice the bound's time.
    jamming_widen: int = 4


def check_bound_config(cfg: BoundConfig) -> BoundConfig:
    """Validate the resolution options (raises :class:`SolverError` naming the field)."""
    for field in ("bisect_s", "boxes", "refine", "rounds", "nu_steps", "search_grid", "grid",
                  "jamming_widen", "search_bisect", "hint_steps", "refine_bisect"):
        value = getattr(cfg, field)
        least = {"rounds": 0, "grid": 3}.get(field, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise SolverError(f"bound option {field}: got {value!r}; expected an integer >= "
                              f"{least}")
    margin = cfg.margin
    if isinstance(margin, bool) or not isinstance(margin, int | float) \
            or not (math.isfinite(margin) and 0 <= margin < 1e-3):
        raise SolverError(f"bound option margin: got {margin!r}; expected a number in "
                          f"[0, 1e-3) (the relative rounding margin of the bound)")
    window = cfg.nu_window
    if isinstance(window, bool) or not isinstance(window, int | float) \
            or not (math.isfinite(window) and 0 < window <= 40):
        raise SolverError(f"bound option nu_window: got {window!r}; expected a number in "
                          f"(0, 40] (half-width of the hinted bracket of log nu)")
    if cfg.boxes % cfg.refine or cfg.refine > cfg.boxes:
        raise SolverError(
            f"bound options boxes={cfg.boxes}, refine={cfg.refine}: boxes must be a multiple "
            f"of refine (each refined interval is split into boxes // refine pieces)"
        )
    return cfg


class LowerBound(NamedTuple):
    """A certified lower bound on V and what produced it."""

    value: jax.Array  # () lower bound on V (weighted bits per query)
    nu: jax.Array  # () the budget multiplier that gave it
    defense: Defense  # per-channel minimisers at nu (a defender response estimate; may be
    # infeasible, informative only)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable)."""
        return {"value": float(self.value), "nu": float(self.nu),
                "defense": self.defense.to_dict()}


def _convex_min_lb(fun, s_max, cfg: BoundConfig):
    """Lower bound, upper estimate and argmin of a convex 1-D ``fun`` on [0, s_max] (elementwise).

    ``fun(s) -> (value, derivative)``. The minimiser is bracketed by a parallel search on the
    sign of the derivative (``cfg.grid`` points per round, ``cfg.bisect_s`` rounds: the bracket
    shrinks by ``cfg.grid - 1`` each round); the bound is the minimum over the bracket of the
    larger of the two tangents at its ends, valid because a convex function lies above its tangents.
    A round's end points were evaluated in the round before, so their derivatives' signs are
    carried and only the ``grid - 2`` interior points are evaluated: ``grid + (bisect_s - 1)
    (grid - 2) + 2`` evaluations in place of ``bisect_s grid + 2`` (53 against 65 at 9 points x
    7 rounds; 23 at the default 3 points x 21 rounds, the same shrink), the same bracket.
    """
    grid = cfg.grid
    ticks = jnp.linspace(0.0, 1.0, grid).reshape((grid,) + (1,) * jnp.ndim(s_max))
    take = lambda v, i: jnp.take_along_axis(v, i[None], axis=0)[0]  # noqa: E731

    def ends(pts, negative):
        j = jnp.sum(negative, axis=0)
        lo, hi = jnp.maximum(j - 1, 0), jnp.minimum(j, grid - 1)
        return take(pts, lo), take(pts, hi), take(negative, lo), take(negative, hi)

    first = ticks * s_max  # = 0 + ticks (s_max - 0): the first round evaluates every point

    def body(_, bracket):
        # the ends were evaluated in the round before: only the grid - 2 interior points are new
        lo, hi, neg_lo, neg_hi = bracket
        pts = lo + ticks * (hi - lo)
        negative = jnp.concatenate([neg_lo[None], fun(pts[1:-1])[1] < 0, neg_hi[None]])
        return ends(pts, negative)

    lo, hi, _, _ = jax.lax.fori_loop(1, cfg.bisect_s, body, ends(first, fun(first)[1] < 0))
    return _tangent_bound(fun, lo, hi)


def _tangent_bound(fun, lo, hi):
    """(lower bound, upper estimate, argmin) of a convex ``fun`` whose minimiser on [0, s_max]
    lies in the bracket [lo, hi] (the derivative is < 0 at lo unless lo = 0, >= 0 at hi unless
    hi = s_max): the smaller of the two tangents' crossing and the ends' values."""
    f_lo, g_lo = fun(lo)
    f_hi, g_hi = fun(hi)
    width = hi - lo
    # The tangents cross at lo + off. Measured from lo (not as g_lo lo - g_hi hi, which cancels
    # catastrophically when a slope is 1e14 at s ~ 1e6), and evaluated on the flatter tangent
    # minus its slope times the rounding error of the crossing: a steep tangent evaluated an
    # ulp away from its crossing would be off by 1e5.
    denom = g_lo - g_hi
    off = (f_hi - f_lo - g_hi * width) / jnp.where(denom != 0, denom, 1.0)
    off = jnp.clip(jnp.where(denom != 0, off, 0.0), 0.0, width)
    flat_lo = jnp.abs(g_lo) <= jnp.abs(g_hi)
    at_cross = jnp.where(flat_lo, f_lo + g_lo * off, f_hi + g_hi * (off - width))
    err = 8.0 * jnp.finfo(jnp.float64).eps * (jnp.abs(lo) + jnp.abs(hi) + width)
    at_cross = at_cross - jnp.minimum(jnp.abs(g_lo), jnp.abs(g_hi)) * err
    at_lo = jnp.maximum(f_lo, f_hi - g_hi * width)
    at_hi = jnp.maximum(f_lo + g_lo * width, f_hi)
    lb = jnp.minimum(jnp.minimum(at_lo, at_hi), at_cross)
    best = jnp.where(f_lo <= f_hi, lo, hi)
    return jnp.minimum(lb, jnp.minimum(f_lo, f_hi)), jnp.minimum(f_lo, f_hi), best


def _injection_inner(game: Game, attack, nu, mask, w_harm, u_leg, remaining, shift,
                     cfg: BoundConfig):
    """min over (n, s) of ``w_harm log2(1 + a eta(n)/D(s)) - u_leg log2(1 + sigma S/N)
    + nu (cn n + cs s) + shift`` with cn n + cs s <= remaining: (lower bound, estimate, x)."""
    eff = game.effect
    s_max = remaining / game.cost_s * mask[1]

    def inner(s):
        sigma = 1.0 + game.beta * s
        denom = game.N + sigma * game.S
        n_max = jnp.maximum(remaining - game.cost_s * s, 0.0) / game.cost_n * mask[0]
        n_free = noise_stationary(eff, w_harm, attack, denom, game.alpha, nu * game.cost_n)
        n = jnp.clip(n_free, 0.0, n_max)
        at_cap = (n_free > n_max) & (mask[0] > 0)
        eta = noise_factor(eff, n, game.alpha)
        r = attack * eta / denom
        share = r / (1.0 + r)
        value = (w_harm * jnp.log1p(r) - u_leg * jnp.log1p(sigma * game.S / game.N)) / _LN2 \
            + nu * (game.cost_n * n + game.cost_s * s) + shift
        dlog_eta = -game.alpha if eff == "exp" else -game.alpha / (1.0 + game.alpha * n)
        d_n = w_harm / _LN2 * share * dlog_eta + nu * game.cost_n
        d_s = -(game.beta * game.S / (denom * _LN2)) * (w_harm * share + u_leg) \
            + nu * game.cost_s
        return value, d_s + jnp.where(at_cap, d_n * (-game.cost_s / game.cost_n), 0.0), n

    lb, ub, s = _convex_min_lb(lambda s: inner(s)[:2], s_max, cfg)
    return lb, ub, inner(s)[2], s


def _injection_box(game: Game, attack, nu, mask, b_lo, b_hi, cfg: BoundConfig,
                   monotone: bool = True):
    """Per-channel lower bound of ``L_i + nu cost_i . x_i`` over b in [b_lo, b_hi], (M, K).

    Two valid bounds, the larger is kept. *Monotone*: harm at b_hi, utility and cost at b_lo
    (first order in the interval width). *Tangent*: for fixed (n, s), ``A kappa(b) + nu cb b``
    is convex in b (A >= 0 the harm factor), so on [b_m - h, b_m + h] it is at least
    ``min over sign of A (kappa_m + sign kappa'_m h) + nu cb (b_m + sign h)``; each sign gives
    a convex problem in (n, s) while ``kappa_m - |kappa'_m| h >= 0``. Near an interior optimum
    the derivative vanishes, so this bound is second order there and the branch-and-bound
    closes.

    ``monotone=False`` skips the monotone bound (one of the three inner problems) for refined
    boxes: their parent's bound holds on them too and takes its place (the caller keeps the
    larger); where the tangent bound is not usable the result is then -inf.
    """
    eff = game.effect
    weight = game.w * game.B
    u_leg = game.utility_price * game.u * game.B * legitimate_bandwidth_factor(
        eff, b_lo, game.gamma, game.rho)
    remaining = jnp.maximum(game.defender_budget - game.cost_b * b_lo, 0.0)
    mid, half = 0.5 * (b_lo + b_hi), 0.5 * (b_hi - b_lo)
    kappa_m, slope = jax.jvp(lambda b: bandwidth_factor(eff, b, game.gamma), (mid,),
                             (jnp.ones_like(mid),))
    usable = kappa_m + slope * half >= 0.0  # slope <= 0
    tangent = jnp.full_like(mid, jnp.inf)
    for sign in (1.0, -1.0):
        coef = jnp.maximum(kappa_m + sign * slope * half, 0.0)
        lb_t, ub, n, s = _injection_inner(game, attack, nu, mask, weight * coef, u_leg,
                                          remaining, nu * game.cost_b * (mid + sign * half),
                                          cfg)
        tangent = jnp.minimum(tangent, lb_t)
    tangent = jnp.where(usable, tangent, -jnp.inf)
    if not monotone:
        return tangent, ub, Defense(n=n, s=s, b=mid)
    lb, ub, n, s = _injection_inner(
        game, attack, nu, mask, weight * bandwidth_factor(eff, b_hi, game.gamma), u_leg,
        remaining, nu * game.cost_b * b_lo, cfg)
    return jnp.maximum(lb, tangent), ub, Defense(n=n, s=s, b=mid)


def _jamming_box(game: Game, attack, nu, mask, n_lo, n_hi, cfg: BoundConfig,
                 monotone: bool = True):
    """Per-channel lower bound of ``L_i + nu cost_i . x_i`` over n in [n_lo, n_hi], b = 0
    (one inner problem; ``monotone`` is read by the injection box only)."""
    weight = game.w * game.B
    floor = game.N + noise_factor(game.effect, n_hi, game.alpha) * attack
    remaining = jnp.maximum(game.defender_budget - game.cost_n * n_lo, 0.0)
    s_max = remaining / game.cost_s * mask[1]
    baseline = game.w * capacity(game.B, game.S, game.N)

    def inner(s):
        signal = (1.0 + game.beta * s) * game.S
        value = baseline - weight * jnp.log1p(signal / floor) / _LN2 \
            + nu * (game.cost_n * n_lo + game.cost_s * s)
        slope = -weight / _LN2 * game.beta * game.S / (floor + signal) + nu * game.cost_s
        return value, slope

    lb, ub, s = _convex_min_lb(inner, s_max, cfg)
    return lb, ub, Defense(n=0.5 * (n_lo + n_hi), s=s, b=jnp.zeros_like(s))


def _bandwidth_only(game: Game, attack, nu, cfg: BoundConfig):
    """Per-channel bound when b is the only lever and restriction costs no utility: then
    ``W kappa(b) log2(1 + a/m0) + nu cb b`` is convex in b and the tangent bound is tight."""
    harm = game.w * game.B * jnp.log2(1.0 + attack / (game.N + game.S))
    util = game.utility_price * game.u * capacity(game.B, game.S, game.N)
    b_max = game.defender_budget / game.cost_b

    def fun(b):
        value, slope = jax.jvp(lambda b: harm * bandwidth_factor(game.effect, b, game.gamma),
                               (b,), (jnp.ones_like(b),))
        return value - util + nu * game.cost_b * b, slope + nu * game.cost_b

    lb, _, b = _convex_min_lb(fun, b_max, cfg)
    zero = jnp.zeros_like(b)
    return lb, Defense(n=zero, s=zero, b=b)


def _channel_minimum(game: Game, attack, nu, cfg: BoundConfig):
    """Global lower bound of min_{x_i} [L_i + nu cost_i . x_i] per channel, by interval B&B."""
    if game.mode == "injection" and game.levers == ("b",):
        # convex in b when lambda u rho = 0 (checked at run time: else fall through to B&B)
        convex_b = jnp.all(game.utility_price * game.u * game.rho == 0)
        lb_c, x_c = _bandwidth_only(game, attack, nu, cfg)
        lb_g, x_g = _channel_minimum_bnb(game, attack, nu, cfg)
        pick = lambda a, b: jnp.where(convex_b, a, b)  # noqa: E731
        return pick(lb_c, lb_g), Defense(*(pick(a, b) for a, b in zip(x_c, x_g, strict=True)))
    return _channel_minimum_bnb(game, attack, nu, cfg)


def _outer_lever(game: Game, mask):
    """The lever searched by intervals and its box bound: b in injection mode, n in jamming
    mode (its largest affordable amount per channel, 0 where the lever is off)."""
    if game.mode == "injection":
        return game.defender_budget / game.cost_b * mask[2], _injection_box
    return game.defender_budget / game.cost_n * mask[0], _jamming_box


_RANK_SORT_MAX = 64  # pools up to this size are ordered by counting (faster than XLA's sort)


def _stable_order(v):
    """``jnp.argsort(v, axis=0)`` (stable; NaN last, -0.0 equal to 0.0), exactly.

    Up to :data:`_RANK_SORT_MAX` entries the permutation is built by counting: entry i has rank
    ``#{j: v_j < v_i} + #{j < i: v_j == v_i}`` and the entry of rank r goes to position r
    (O(M^2) comparisons, no sort: 2-3x faster than XLA's sort at the branch-and-bound's 24-44
    entries, slower from ~100). Larger inputs go to ``jnp.argsort``.
    """
    m = v.shape[0]
    if m > _RANK_SORT_MAX:
        return jnp.argsort(v, axis=0)
    other, this = v[:, None], v[None, :]
    nan_other, nan_this = jnp.isnan(other), jnp.isnan(this)
    less = (other < this) | (~nan_other & nan_this)
    equal = (other == this) | (nan_other & nan_this)
    tail = (1,) * (v.ndim - 1)
    idx = jnp.arange(m)
    earlier = (idx[:, None] < idx[None, :]).reshape((m, m) + tail)
    rank = jnp.sum(less | (equal & earlier), axis=0)
    at = rank[None] == idx.reshape((m, 1) + tail)  # at[r, i]: entry i has rank r
    return jnp.sum(jnp.where(at, idx.reshape((1, m) + tail), 0), axis=1)


def _channel_minimum_bnb(game: Game, attack, nu, cfg: BoundConfig):
    mask = game.lever_mask()
    outer_max, box = _outer_lever(game, mask)
    boxes, refine = cfg.boxes, cfg.refine
    if game.mode == "jamming":
        # The jamming box bound is first order, so the intervals left unrefined after the first
        # round set the error (see BoundConfig.jamming_widen).
        boxes, refine = boxes * cfg.jamming_widen, refine * cfg.jamming_widen
    k = game.num_channels
    grid = jnp.linspace(0.0, 1.0, boxes + 1)[:, None] * outer_max[None, :]
    lo, hi = grid[:-1], grid[1:]
    lb, ub, x = box(game, attack, nu, mask, lo, hi, cfg)
    pieces = boxes // refine
    split = jnp.linspace(0.0, 1.0, pieces + 1)
    fine = cfg._replace(bisect_s=cfg.refine_bisect)
    take = lambda v, i: jnp.take_along_axis(v, i, axis=0)  # noqa: E731
    # The pool is kept sorted by bound (stable): sorted once here, then each round's pool is
    # taken in sorted order, so the boxes to refine are its first `refine` (a sort of the sorted
    # pool would be the identity) and one sort per round remains, of the merged pool.
    order = _stable_order(lb)
    lo, hi, lb = (take(v, order) for v in (lo, hi, lb))
    x = Defense(*(take(v, order) for v in x))

    def round_(carry, _):
        lo, hi, lb, x, floor = carry
        p_lo, p_hi = lo[:refine], hi[:refine]
        width = p_hi - p_lo
        new_lo = (p_lo[:, None, :] + split[None, :-1, None] * width[:, None, :]).reshape(-1, k)
        new_hi = (p_lo[:, None, :] + split[None, 1:, None] * width[:, None, :]).reshape(-1, k)
        # a refined box lies in its parent, so the parent's bound holds on it too
        parent = jnp.repeat(lb[:refine], pieces, axis=0)
        new_lb, _, new_x = box(game, attack, nu, mask, new_lo, new_hi, fine, monotone=False)
        new_lb = jnp.maximum(new_lb, parent)
        # the pool: the new boxes and the unrefined ones; the `boxes` lowest stay in it (and
        # may be refined later), the others leave it and their smallest bound joins the floor
        pool = [jnp.concatenate([a, b[refine:]]) for a, b in
                ((new_lo, lo), (new_hi, hi), (new_lb, lb))]
        pool_x = [jnp.concatenate([a, b[refine:]]) for a, b in zip(new_x, x, strict=True)]
        order = _stable_order(pool[2])
        stay, leave = order[:boxes], order[boxes:]
        floor = jnp.minimum(floor, jnp.min(take(pool[2], leave), axis=0, initial=jnp.inf))
        lo, hi, lb = (take(v, stay) for v in pool)
        return (lo, hi, lb, Defense(*(take(v, stay) for v in pool_x)), floor), None

    floor = jnp.full((k,), jnp.inf)
    (lo, hi, lb_final, x, floor), _ = jax.lax.scan(round_, (lo, hi, lb, x, floor), None,
                                                   length=cfg.rounds)
    best = jnp.argmin(lb_final, axis=0)
    pick = lambda v: jnp.take_along_axis(v, best[None, :], axis=0)[0]  # noqa: E731
    bound = jnp.minimum(floor, jnp.min(lb_final, axis=0))
    return bound, Defense(*(pick(v) for v in x))


def _nu_ceiling(game: Game, attack):
    """A multiplier above which investing nothing is optimal in every channel (crude, safe)."""
    w = game.w * game.B
    if game.mode == "injection":
        u = game.utility_price * game.u * game.B
        m0 = game.N + game.S
        rates = jnp.stack([
            w * game.alpha / _LN2 / game.cost_n,
            game.beta * (w + u) / _LN2 / game.cost_s,
            game.gamma * w * jnp.log2(1.0 + attack / m0) / game.cost_b,
        ])
    else:
        rates = jnp.stack([
            w * game.alpha * attack / (game.N * _LN2) / game.cost_n,
            w * game.beta * game.S / (game.N * _LN2) / game.cost_s,
        ])
    return 2.0 * jnp.max(rates) + 1e-12


def _channel_minimum_estimate(game: Game, attack, nu, cfg: BoundConfig):
    """Cheap estimate of the per-channel minimiser at ``nu`` (for choosing nu, not a bound):
    the convex inner problem solved on a grid of the outer lever (b, or n in jamming mode)."""
    mask = game.lever_mask()
    if game.mode == "injection" and game.levers == ("b",):
        convex_b = jnp.all(game.utility_price * game.u * game.rho == 0)
        _, x_c = _bandwidth_only(game, attack, nu, cfg)
        _, x_g = _channel_minimum_estimate_grid(game, attack, nu, cfg, mask)
        return None, Defense(*(jnp.where(convex_b, a, b) for a, b in zip(x_c, x_g,
                                                                           strict=True)))
    return _channel_minimum_estimate_grid(game, attack, nu, cfg, mask)


def _injection_point(game: Game, attack, nu, mask, b, cfg: BoundConfig):
    """The injection per-channel problem at a fixed bandwidth restriction b: the convex inner
    problem in (n, s) of ``L_i + nu cost_i . x_i`` (lower bound, estimate, minimiser).

    The same problem as the box bound of ``_injection_box`` on the degenerate interval [b, b],
    where its three inner problems coincide: one is solved here in place of three."""
    u_leg = game.utility_price * game.u * game.B * legitimate_bandwidth_factor(
        game.effect, b, game.gamma, game.rho)
    remaining = jnp.maximum(game.defender_budget - game.cost_b * b, 0.0)
    harm = game.w * game.B * bandwidth_factor(game.effect, b, game.gamma)
    lb, ub, n, s = _injection_inner(game, attack, nu, mask, harm, u_leg, remaining,
                                    nu * game.cost_b * b, cfg)
    return lb, ub, Defense(n=n, s=s, b=b)


def _channel_minimum_estimate_grid(game, attack, nu, cfg, mask):
    """Per-channel minimum over a grid of the outer lever of the inner problem's value at its
    estimated minimiser: (estimate (K,), minimisers)."""
    outer_max, _ = _outer_lever(game, mask)
    grid = jnp.linspace(0.0, 1.0, cfg.search_grid)[:, None] * outer_max[None, :]
    coarse = cfg._replace(bisect_s=cfg.search_bisect)
    if game.mode == "injection":
        _, ub, x = _injection_point(game, attack, nu, mask, grid, coarse)
    else:
        _, ub, x = _jamming_box(game, attack, nu, mask, grid, grid, coarse)
    best = jnp.argmin(ub, axis=0)
    pick = lambda v: jnp.take_along_axis(v, best[None, :], axis=0)[0]  # noqa: E731
    return jnp.min(ub, axis=0), Defense(*(pick(v) for v in x))


def _rigorous_g(game: Game, attack, nu, cfg: BoundConfig):
    per_channel, x = _channel_minimum(game, attack, nu, cfg)
    return jnp.sum(per_channel) - nu * game.defender_budget, x


def _term_scale(game: Game, attack):
    """An upper bound on the magnitude of every harm and utility term of g(nu), in weighted
    bits per query: rounding errors are relative to these, not to their (possibly cancelling)
    sum, so the rounding margin is scaled by it."""
    sigma_max = 1.0 + game.beta * game.defender_budget / game.cost_s
    restored = capacity(game.B, sigma_max * game.S, game.N)
    harm = capacity(game.B, game.S, game.N) + restored + capacity(game.B, attack, game.N)
    return jnp.sum(game.w * harm + game.utility_price * game.u * restored)


class CentreBound(NamedTuple):
    """The Lagrangian bound at the searched multiplier, and whether nu = 0 could beat it."""

    nu: jax.Array  # () the searched multiplier
    value: jax.Array  # () rigorous g(nu), before the rounding margin
    defense: Defense  # per-channel minimisers at nu
    need_zero: jax.Array  # () bool: g(0) may exceed value (else it is not computed)
    margin: jax.Array  # () BoundConfig.margin, carried to combine_bounds with the bound


def kkt_multiplier(game: Game, defense: Defense, attack) -> jax.Array:
    """The budget multiplier of the defender's KKT conditions at ``defense`` against ``attack``.

    At a minimiser x of ``L(., a)`` on X, ``grad_j L + nu cost_j = 0`` wherever ``x_j > 0``, so
    ``nu = -grad L . x / cost . x``; at a saddle point this is the nu that maximises g (docs/
    certificates.md §3.3). Used only as a hint for the multiplier search (any nu >= 0 gives a
    valid bound); NaN or <= 0 when undefined (no budget spent), and then ignored.
    """
    x = jnp.stack([defense.n, defense.s, defense.b])
    grad = jax.grad(lambda x: payoff(game, Defense(*x), attack))(x)
    spent = jnp.sum(game.cost_matrix() * x)
    return -jnp.sum(grad * x) / jnp.where(spent > 0, spent, jnp.nan)


def _multiplier(game: Game, attack, cfg: BoundConfig, hint=None):
    """log nu: bisection on the budget spent by the cheap per-channel minimiser estimate.

    Without ``hint``: ``cfg.nu_steps`` steps on [log ceiling - 40, log ceiling]. With a hint
    nu_h: the spend is estimated at log nu_h -+ ``cfg.nu_window``; the bracket is the window
    when the crossing lies in it, else the part of the full bracket on the side where it lies;
    then ``cfg.hint_steps`` steps. The estimate's spend decreases in nu, so either way the
    result is the crossing up to the final bracket width.
    """

    def over(t):  # spending too much at nu = e^t: raise nu
        _, x = _channel_minimum_estimate(game, attack, jnp.exp(t), cfg)
        return jnp.sum(game.cost_n * x.n + game.cost_s * x.s + game.cost_b * x.b) \
            > game.defender_budget

    hi = jnp.log(_nu_ceiling(game, attack))
    lo = hi - 40.0
    steps = cfg.nu_steps
    if hint is not None:
        centre = jnp.log(hint)
        ok = jnp.isfinite(centre)
        centre = jnp.clip(jnp.where(ok, centre, hi - 20.0), lo, hi)
        w_lo = jnp.maximum(centre - cfg.nu_window, lo)
        w_hi = jnp.minimum(centre + cfg.nu_window, hi)
        at_lo, at_hi = over(w_lo), over(w_hi)
        # over at w_hi: the crossing is above the window; not over at w_lo: below it
        lo, hi = (jnp.where(at_hi, w_hi, jnp.where(at_lo, w_lo, lo)),
                  jnp.where(at_hi, hi, jnp.where(at_lo, w_hi, w_lo)))
        steps = cfg.hint_steps

    def body(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        up = over(mid)
        return jnp.where(up, mid, lo), jnp.where(up, hi, mid)

    lo, hi = jax.lax.fori_loop(0, steps, body, (lo, hi))
    return 0.5 * (lo + hi)


def centre_bound(game: Game, attack, cfg: BoundConfig = BoundConfig(), hint=None
                 ) -> CentreBound:
    """Rigorous g at the searched multiplier, and an upper estimate of g(0) to decide whether
    the rigorous g(0) must be computed too.

    ``sum_i min over a grid of feasible x_i of [L_i(x_i, a_i)]`` is the value of the relaxed
    problem at feasible points, so it is >= min_x [...] = g(0) >= the rigorous bound at 0. When
    it is below g(nu) (by more than a rounding allowance), nu = 0 cannot win the comparison of
    :func:`lagrangian_lower_bound` and its branch-and-bound is skipped: the bound is unchanged.
    """
    nu = jnp.exp(_multiplier(game, attack, cfg, hint))
    value, x = _rigorous_g(game, attack, nu, cfg)
    zero = jnp.zeros_like(nu)
    upper_zero = jnp.sum(_channel_minimum_estimate_grid(game, attack, zero, cfg,
                                                        game.lever_mask())[0])
    allowance = 1e-9 * (1.0 + jnp.abs(upper_zero) + _term_scale(game, attack))
    need_zero = ~(upper_zero + allowance < value)  # NaN anywhere: compute it
    return CentreBound(nu=nu, value=value, defense=x, need_zero=need_zero,
                       margin=jnp.asarray(cfg.margin, dtype=value.dtype))


def zero_bound(game: Game, attack, cfg: BoundConfig = BoundConfig()):
    """Rigorous g(0) and its per-channel minimisers."""
    return _rigorous_g(game, attack, jnp.zeros(()), cfg)


def combine_bounds(game: Game, attack, centre: CentreBound, zero_value, zero_defense
                   ) -> LowerBound:
    """The better of g(nu) and g(0) (``zero_value = -inf`` when skipped), less the rounding
    margin ``centre.margin`` times the magnitude of the terms."""
    value, nu = combined_value(game, attack, centre, zero_value)
    take_zero = zero_value > centre.value
    defense = Defense(*(jnp.where(take_zero, z, c)
                        for z, c in zip(zero_defense, centre.defense, strict=True)))
    return LowerBound(value=value, nu=nu, defense=defense)


def combined_value(game: Game, attack, centre: CentreBound, zero_value):
    """(bound, multiplier) of :func:`combine_bounds` without the per-channel minimisers (which
    no certificate field reads): a compiled program that returns only these does not track the
    minimisers through the branch-and-bound."""
    take_zero = zero_value > centre.value
    value = jnp.where(take_zero, zero_value, centre.value)
    nu = jnp.where(take_zero, 0.0, centre.nu)
    margin = centre.margin * (1.0 + jnp.abs(value) + _term_scale(game, attack)
                        + (game.num_channels + 1) * nu * game.defender_budget)
    return value - margin, nu


def lagrangian_lower_bound(game: Game, attack, cfg: BoundConfig = BoundConfig(), hint=None
                           ) -> LowerBound:
    """Certified lower bound ``max_nu g(nu) <= min_x L(x, attack) <= V``; jit/vmap-able.

    The multiplier is chosen by bisection on the budget spent by a cheap estimate of the
    per-channel minimisers; the bound itself is then computed rigorously (interval
    branch-and-bound) at that multiplier and, unless an upper estimate of g(0) shows that it
    cannot be better (:func:`centre_bound`), at nu = 0; the better is kept: any nu >= 0 gives a
    valid bound, so the heuristic choice costs tightness, never validity. ``hint``: a guess of
    the multiplier that narrows the search (:func:`_multiplier`, :func:`kkt_multiplier`).
    """
    centre = centre_bound(game, attack, cfg, hint)
    skipped = (jnp.full_like(centre.value, -jnp.inf), centre.defense)
    zero_value, zero_defense = jax.lax.cond(centre.need_zero,
                                            lambda: zero_bound(game, attack, cfg),
                                            lambda: skipped)
    return combine_bounds(game, attack, centre, zero_value, zero_defense)


class Certificate(NamedTuple):
    """Upper and lower bounds on V computed for a defense and an attack."""

    upper: jax.Array  # () phi(defense), exact
    lower: jax.Array  # () certified lower bound
    gap: jax.Array  # () upper - lower
    attack: jax.Array  # (K,) the attacker's best response to the defense (used for the bound)
    nu: jax.Array  # () budget multiplier of the lower bound

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable); ``status`` as in :mod:`minimax.solution`
        (``failed`` when a bound is not finite or ``lower > upper``)."""
        upper, lower, gap = (float(v) for v in (self.upper, self.lower, self.gap))
        ok = all(math.isfinite(v) for v in (upper, lower, gap)) and lower <= upper
        return {"status": "certified" if ok else "failed", "upper": upper, "lower": lower,
                "gap": gap, "attack": np.asarray(self.attack, dtype=float).tolist(),
                "nu": float(self.nu)}


def certify(game: Game, defense: Defense, attack=None, cfg: BoundConfig = BoundConfig()):
    """Certificate for a feasible ``defense``: ``upper = phi(defense)`` and the Lagrangian lower
    bound at ``attack`` (default: the best response to ``defense``), its multiplier search
    hinted by the defense's KKT multiplier (:func:`kkt_multiplier`). jit/vmap-able."""
    best = best_response_attack(game, defense)
    upper = payoff(game, defense, best)
    probe = best if attack is None else attack
    bound = lagrangian_lower_bound(game, probe, cfg, kkt_multiplier(game, defense, probe))
    return Certificate(upper=upper, lower=bound.value, gap=upper - bound.value, attack=best,
                       nu=bound.nu)
