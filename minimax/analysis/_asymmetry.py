"""The asymmetry between model-centric and system-level defense (docs/analyses.md §4.1), derived
numerically from the game.

Injection mode, lambda = 0, defender budget D. For an attacker of power P the relative
protection of a defense restricted to one lever is

    R_lever(P) = 1 - V_lever(P) / V_none(P),

with ``V_none(P) = phi(0)`` the undefended value and ``V_lever(P)`` the certified minimax value
when the defender may only use that lever (``levers=["n"]`` = all budget on noise suppression,
``levers=["b"]`` = all on bandwidth restriction). On one channel the restricted optimum is to
put the whole budget on the lever (phi decreases in n and in b), and the closed forms are

    R_model(P) = 1 - log(1 + P e^{-alpha D}/m0) / log(1 + P/m0)  ->  0   (like alpha D / ln(P/m0))
    R_sys(P)   = 1 - e^{-gamma D}                                        (constant in P)

with ``m0 = N + S`` and D in lever units (budget / unit cost). This module never uses these
formulas; :func:`closed_form_one_channel` evaluates them for the comparison.

On one channel the values are exact best-response values of the all-on-one-lever defense (a
vmapped :func:`minimax.phi`); on several channels the restricted games are solved with
certificates (:func:`minimax.solve_batch`, both restricted games are convex in the one lever,
so the gap closes) and the gaps are returned.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from minimax.errors import GameSpecError
from minimax.game import Defense, Game
from minimax.response import phi
from minimax.serial import namedtuple_to_dict
from minimax.solver import solve_batch


class AsymmetryResult(NamedTuple):
    """Relative protection of one-lever defenses against attacker power (T powers, K channels)."""

    powers: np.ndarray  # (T,) attacker budgets P_A
    r_model: np.ndarray  # (T,) 1 - V_n / V_none   (all budget on noise suppression)
    r_sys: np.ndarray  # (T,) 1 - V_b / V_none    (all budget on bandwidth restriction)
    value_none: np.ndarray  # (T,) undefended value, weighted bits per query
    value_model: np.ndarray  # (T,) certified upper value with levers = n only
    value_sys: np.ndarray  # (T,) certified upper value with levers = b only
    gap_model: np.ndarray  # (T,) certificate gap (0 on one channel: exact)
    gap_sys: np.ndarray  # (T,)
    defense_model: np.ndarray  # (T, K) n allocation
    defense_sys: np.ndarray  # (T, K) b allocation

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable)."""
        return namedtuple_to_dict(self)


def closed_form_one_channel(game: Game, powers: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form R_model(P), R_sys(P) (docs/analyses.md §4.1) of a one-channel game."""
    if game.num_channels != 1:
        raise GameSpecError("closed_form_one_channel: the closed form is for one channel")
    p = np.asarray(powers, dtype=float)
    m0 = float(game.N[0] + game.S[0])
    d_n = float(game.defender_budget / game.cost_n[0])
    d_b = float(game.defender_budget / game.cost_b[0])
    r_model = 1.0 - np.log1p(p * np.exp(-float(game.alpha[0]) * d_n) / m0) / np.log1p(p / m0)
    r_sys = np.full_like(p, 1.0 - np.exp(-float(game.gamma[0]) * d_b))
    return r_model, r_sys


@jax.jit
def _phi_ladder(games: Game, defenses: Defense) -> jax.Array:
    return jax.vmap(phi)(games, defenses)


def _ladder(game: Game, powers: np.ndarray) -> Game:
    view = game.view()
    t = powers.size
    leaves = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(v, (t,) + jnp.shape(v)), view)
    return leaves.replace(attacker_budget=jnp.asarray(powers))


def asymmetry(game: Game, powers: Sequence[float], **solver_options: Any) -> AsymmetryResult:
    """R_model(P) and R_sys(P) computed from the game (docs/analyses.md §4.1); see the module doc.

    The game is used in injection mode with ``utility_price = 0``; ``solver_options`` go to
    :func:`minimax.solve_batch` (several channels only).
    """
    p = np.asarray(powers, dtype=float)
    if p.ndim != 1 or p.size == 0 or np.any(~np.isfinite(p)) or np.any(p <= 0):
        raise GameSpecError(f"asymmetry.powers: got {p.tolist()}; expected finite powers > 0")
    g = game.replace(mode="injection", utility_price=0.0, levers=["n", "s", "b"])
    k, t = g.num_channels, p.size
    zeros = jnp.zeros((t, k))
    ladder = _ladder(g, p)
    v_none = np.asarray(_phi_ladder(ladder, Defense(zeros, zeros, zeros)))
    if k == 1:
        d_n = jnp.full((t, 1), g.defender_budget / g.cost_n[0])
        d_b = jnp.full((t, 1), g.defender_budget / g.cost_b[0])
        v_model = np.asarray(_phi_ladder(ladder, Defense(d_n, zeros, zeros)))
        v_sys = np.asarray(_phi_ladder(ladder, Defense(zeros, zeros, d_b)))
        gap_m = gap_s = np.zeros(t)
        alloc_m, alloc_s = np.asarray(d_n), np.asarray(d_b)
    else:
        out = {}
        for lever in ("n", "b"):
            sols = solve_batch([g.replace(levers=[lever], attacker_budget=float(x)) for x in p],
                               **solver_options)
            out[lever] = (np.array([s.upper for s in sols]), np.array([s.gap for s in sols]),
                          np.stack([np.asarray(getattr(s.defense, lever)) for s in sols]))
        (v_model, gap_m, alloc_m), (v_sys, gap_s, alloc_s) = out["n"], out["b"]
    return AsymmetryResult(
        powers=p, r_model=1.0 - v_model / v_none, r_sys=1.0 - v_sys / v_none,
        value_none=v_none, value_model=v_model, value_sys=v_sys, gap_model=gap_m, gap_sys=gap_s,
        defense_model=alloc_m, defense_sys=alloc_s,
    )
