"""Calibrated channels -> :class:`minimax.Game`, and game levers -> realisable defences."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minimax.validate.defences import Defence

CHANNELS = ("image", "text")
LEVERS = ("n", "s", "b")
TINY = 1e-6  # effectiveness of a lever a channel does not have


def game_dict(params: dict[str, dict[str, float]], attacker_budget: float,
              defender_budget: float) -> dict[str, Any]:
    chans = []
    for ch in CHANNELS:
        p = params[ch]
        chans.append({
            "name": f"prediction/{ch}", "flow": "prediction", "modality": ch,
            "B": p["B"], "S": p["S"], "N": p["N"], "w": 1.0, "u": 1.0,
            "rho": float(np.clip(p["rho"], 0.0, 1.0)),
            "alpha": max(p["alpha"], TINY), "beta": max(p["beta"], TINY),
            "gamma": max(p["gamma"], TINY), "cap": float("inf"),
            "cost_n": 1.0, "cost_s": 1.0, "cost_b": 1.0,
        })
    return {"mode": "injection", "attacker_budget": float(attacker_budget),
            "defender_budget": float(defender_budget), "utility_price": 0.0,
            "levers": list(LEVERS), "effect": "exp", "channels": chans}


def solve_game(params, attacker_budget: float, defender_budget: float) -> dict[str, Any]:
    """Certified minimax of the calibrated game via :func:`minimax.solve`."""
    import jax

    import minimax

    g = minimax.Game.from_dict(game_dict(params, attacker_budget, defender_budget))
    # the solvers broadcast arrays of different rank (e.g. (K,) * (starts, K)); allow it
    # whatever the caller's jax_numpy_rank_promotion setting.
    with jax.numpy_rank_promotion("allow"):
        sol = minimax.solve(g)
    levers = {f"{lv}_{ch}": float(np.asarray(getattr(sol.defense, lv))[i])
              for lv in LEVERS for i, ch in enumerate(CHANNELS)}
    return {"levers": levers, "value": float(sol.value), "upper": float(sol.upper),
            "lower": float(sol.lower), "gap": float(sol.gap),
            "attack": [float(v) for v in np.asarray(sol.attack)]}


def best_response_value(params, levers: dict[str, float], attacker_budget: float) -> tuple:
    """The calibrated game's attacker best response (raw bits, allocation) for ``levers``."""
    import minimax

    g = minimax.Game.from_dict(game_dict(params, attacker_budget, 1.0))
    d = {lv: [levers.get(f"{lv}_{ch}", 0.0) for ch in CHANNELS] for lv in LEVERS}
    attack, value = minimax.best_response(g, d)
    return float(value), [float(v) for v in np.asarray(attack)]


def realise(levers: dict[str, float], units: dict[str, float], k_max: int,
            base: Defence) -> Defence:
    """The defence whose knobs best match ``levers`` (clipped to realisable ranges).

    Adversarial fine-tuning radii are rounded to a grid of ``units['s_grid']`` so that
    fine-tuned towers are reused from the cache; ensembles and token caps are integers.
    """
    n = levers.get("n_image", 0.0) * units["n"]
    s_eps = levers.get("s_image", 0.0) * units["s"]
    grid = units.get("s_grid", 0.25)
    s_eps = round(s_eps / grid) * grid
    keep = float(np.clip(math.exp(-levers.get("b_image", 0.0)), units.get("keep_min", 0.1), 1.0))
    ens = int(np.clip(1 + round(levers.get("s_text", 0.0) * units["ensemble"]), 1, 5))
    bt = levers.get("b_text", 0.0)
    cap = None if bt <= 1e-6 else int(math.floor(k_max * math.exp(-bt) + 1e-9))
    return base.with_(purify=units.get("purify", "noise") if n > 0 else "none",
                      level=float(min(n, units.get("n_max", 1.0))), adv_eps=float(s_eps),
                      pixel_keep=keep, ensemble=ens, token_cap=cap)
