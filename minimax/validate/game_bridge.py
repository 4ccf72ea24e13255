"""Calibrated channels -> the defender's decision, and game levers -> realisable defenses.

* :func:`solve_game` / :func:`best_response_value`: the smooth calibrated channels as a
  :class:`minimax.Game`, solved by :func:`minimax.solve` (the engine's continuous solver).
* :func:`prescribe` / :func:`proposer` / :func:`split_predictor`: the calibrated
  :class:`~minimax.validate.calibrate.ChannelModel` (threshold caps, cross-channel and
  joint-attack terms: outside the engine's closed-form family) solved on a grid: the
  defender's budget ``D`` split over the target's levers in steps of ``D / steps``
  (budget-matched: the amounts sum to ``D``), the attacker's power over channels on a
  simplex grid; the one-shot prescription is the grid allocation with the smallest worst
  case ``min_d max_a bits(d, a)`` (exact on the grid), plus the priced clean cost.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from minimax.serial import namedtuple_to_dict
from minimax.validate.calibrate import ChannelModel, model_predict
from minimax.validate.knobs import Knobs

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
            "gamma": max(p["gamma"], TINY),
        })
    # cap, costs, utility price, levers and effect: the schema's defaults (minimax.schema)
    return {"mode": "injection", "attacker_budget": float(attacker_budget),
            "defender_budget": float(defender_budget), "channels": chans}


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
            base: Knobs) -> Knobs:
    """The defense whose knobs best match ``levers`` (clipped to realisable ranges).

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


# ---------------------------------------------------------------- the calibrated model's decision


def lever_grid(levers: tuple[str, ...] | list[str], budget: float, steps: int
               ) -> dict[str, np.ndarray]:
    """Every split of ``budget`` over ``levers`` in steps of ``budget / steps``: arrays (G,)."""
    from minimax.validate.empirical import split_grid

    if budget < 0 or steps < 1:
        raise ValueError(f"lever grid needs budget >= 0 and steps >= 1; got {budget}, {steps}")
    g = split_grid(tuple(levers), steps)
    return {lv: np.array([budget * f[lv] for f in g]) for lv in levers}


def realised_grid(grid: dict[str, np.ndarray], deploy=None) -> dict[str, np.ndarray]:
    """Each grid allocation replaced by the lever amounts of the defense that deploys it.

    ``deploy(levers) -> levers``: the amounts the target actually realises (rounded to
    its knobs: whole templates, whole tokens, its fine-tuning grid), e.g.
    ``lambda lv: target.lever_values(target.realise_within(lv))``; ``None``: as given.
    """
    if deploy is None:
        return grid
    names = list(grid)
    n = len(grid[names[0]])
    rows = [deploy({lv: float(grid[lv][i]) for lv in names}) for i in range(n)]
    return {lv: np.array([float(r.get(lv, 0.0)) for r in rows]) for lv in names}


def _clean_cost(model: ChannelModel, grid: dict[str, np.ndarray], price: float) -> np.ndarray:
    n = len(next(iter(grid.values())))
    if price == 0:
        return np.zeros(n)
    none = float(model_predict(model, "leg", {}, {}))
    return price * np.maximum(none - np.broadcast_to(model_predict(model, "leg", {}, grid),
                                                     (n,)), 0.0)


def _loss(model: ChannelModel, grid: dict[str, np.ndarray], powers) -> np.ndarray:
    """Predicted bits ``(G, len(powers))`` of each grid allocation against each power split."""
    n = len(next(iter(grid.values())))
    return np.stack([np.broadcast_to(model_predict(model, "adv", p, grid), (n,))
                     for p in powers], -1)


class Prescription(NamedTuple):
    """The calibrated model's one-shot prescription (pure minimax on the lever grid)."""

    levers: dict[str, float]      # lever amounts, summing to the defender budget
    predicted_bits: float         # its predicted worst case (plus priced clean cost), bits
    attack: dict[str, float]      # the predicted best-response split (fractions per channel)
    no_defense_bits: float        # predicted worst case without defense, bits

    def to_dict(self) -> dict[str, Any]:
        """Plain Python of every field (docs/solution-concepts.md §2.10)."""
        return namedtuple_to_dict(self)


def prescribe(model: ChannelModel, levers, attacker_budget: float, defender_budget: float,
              steps: int = 8, split_steps: int = 20, utility_price: float = 0.0,
              deploy=None) -> Prescription:
    """``argmin_d max_a`` predicted bits over the lever grid and the split grid.

    ``deploy``: see :func:`realised_grid`; with it every grid allocation is predicted, and
    returned, as the defense the target deploys for it (no lever amount the knobs cannot
    realise is ever counted).
    """
    from minimax.validate.empirical import split_grid

    grid = realised_grid(lever_grid(levers, defender_budget, steps), deploy)
    splits = split_grid(model.channels, split_steps)
    powers = [{c: attacker_budget * f[c] for c in model.channels} for f in splits]
    loss = _loss(model, grid, powers) + _clean_cost(model, grid, utility_price)[:, None]
    i = int(np.argmin(loss.max(1)))
    j = int(np.argmax(loss[i]))
    none = max(float(model_predict(model, "adv", p, {})) for p in powers)
    return Prescription({lv: float(v[i]) for lv, v in grid.items()}, float(loss[i].max()),
                        splits[j], none)


def proposer(model_of, levers, defender_budget: float, steps: int = 8,
             utility_price: float = 0.0, deploy=None):
    """The defender oracle: the grid allocation minimising predicted bits against a mixture.

    ``model_of()`` returns the current (possibly recalibrated) :class:`ChannelModel`;
    ``deploy`` as in :func:`prescribe`.
    """
    grid = realised_grid(lever_grid(levers, defender_budget, steps), deploy)

    def propose(ymix):
        model = model_of()
        w = np.array([w for w, _ in ymix])
        loss = _loss(model, grid, [p for _, p in ymix]) @ w
        loss = loss + _clean_cost(model, grid, utility_price)
        i = int(np.argmin(loss))
        return {lv: float(v[i]) for lv, v in grid.items()}
    return propose


def split_predictor(model_of, attacker_budget: float, split_steps: int = 40):
    """The model's best-response split (fractions per channel) against given lever amounts."""
    from minimax.validate.calibrate import worst_case

    def predicted(levers):
        return worst_case(model_of(), levers, attacker_budget, split_steps)[1]
    return predicted
