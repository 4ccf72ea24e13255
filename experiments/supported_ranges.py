"""Measure how far the certificate stays sound as P_A, P_D and the payoff scale grow.

For each base game and each scale 10^k the game is built *without* the construction checks
(``Game.replace(..., check=False)``), solved, and its certificate tested:

* the invariants :func:`minimax.solution.certificate_violations` checks (finite numbers,
  ``lower <= upper``, feasible defense and attack);
* ``lower <= min phi(x)`` over the returned defense and ``--defenses`` random feasible defenses
  (an independent upper estimate of V: phi is the attacker's exact best-response value).

A scale counts as sound when both hold (a named error raised by the solver counts as "refused",
not sound). The table gives, per game and per quantity, the largest sound 10^k; the supported
ranges in ``minimax/game.py`` (``BUDGET_MAX``, ``WEIGHT_MAX``) are set at or below them and
stated in ``docs/supported-ranges.md``.

    PYTHONPATH=. python experiments/supported_ranges.py            # ~10 min on 2 cores
    PYTHONPATH=. python experiments/supported_ranges.py --quick    # fewer scales
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import yaml

import minimax
from minimax.game import Defense
from minimax.response import phi
from minimax.runtime import conf_dir
from minimax.solution import certificate_violations

EXPONENTS = (0, 3, 6, 9, 12, 15, 20, 30, 50, 100, 150, 200, 250, 300)
QUICK = (0, 6, 9, 12, 30, 100, 300)


def base_games() -> dict[str, minimax.Game]:
    def load(name):
        d = yaml.safe_load((conf_dir() / "game" / f"{name}.yaml").read_text())
        d.pop("defaults", None)
        if name == "mfm_jamming":
            base = yaml.safe_load((conf_dir() / "game" / "mfm_default.yaml").read_text())
            base.update(d)
            d = base
        return minimax.Game.from_dict(d)

    default = load("mfm_default")
    return {
        "default (injection, exp)": default,
        "default, effect=rational": default.replace(effect="rational"),
        "jamming": load("mfm_jamming"),
        "single channel": load("single_channel"),
    }


def scaled(game: minimax.Game, quantity: str, factor: float) -> minimax.Game:
    if quantity == "P_A":
        return game.replace(attacker_budget=game.attacker_budget * factor, check=False)
    if quantity == "P_D":
        return game.replace(defender_budget=game.defender_budget * factor, check=False)
    return game.replace(w=game.w * factor, u=game.u * factor, check=False)


def random_defenses(rng, game, count):
    k = game.num_channels
    cost = np.asarray(game.cost_matrix())
    mask = np.array([[lv in game.levers] for lv in "nsb"], dtype=float)
    w = rng.dirichlet(np.ones(3 * k + 1), size=count)[:, : 3 * k].reshape(count, 3, k)
    # half spread over everything, half concentrated on one lever and channel (corners)
    corners = np.zeros_like(w[: count // 2])
    idx = rng.integers(0, 3 * k, size=count // 2)
    corners.reshape(count // 2, -1)[np.arange(count // 2), idx] = 1.0
    w[: count // 2] = corners
    return w * mask * float(game.defender_budget) / cost


@jax.jit
def _phis(game, xs):
    return jax.vmap(lambda x: phi(game, Defense(x[0], x[1], x[2])))(xs)


def check(game, defenses, solve_opts):
    try:
        sol = minimax.solve(game, **solve_opts)
    except minimax.MinimaxError as err:
        return {"sound": False, "outcome": f"refused: {type(err).__name__}: {str(err)[:160]}"}
    except Exception as err:  # noqa: BLE001 - a crash is what this measures
        return {"sound": False, "outcome": f"crash: {type(err).__name__}: {str(err)[:160]}"}
    bad = certificate_violations(game, sol.value, sol.lower, sol.gap, sol.defense, sol.attack)
    xs = jnp.asarray(defenses)
    values = np.asarray(_phis(game, xs))
    best_random = float(np.nanmin(values)) if np.isfinite(values).any() else math.nan
    if not math.isnan(best_random) and sol.lower > best_random:
        bad.append(f"lower {sol.lower!r} > phi {best_random!r} of a random feasible defense")
    return {"sound": not bad, "outcome": "; ".join(bad) or "sound", "value": sol.value,
            "lower": sol.lower, "gap": sol.gap, "best_random_phi": best_random}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--defenses", type=int, default=400)
    parser.add_argument("--out", default="experiments/results/supported_ranges.json")
    args = parser.parse_args()
    exponents = QUICK if args.quick else EXPONENTS
    rng = np.random.default_rng(0)
    solve_opts = {"method": "gradient", "starts": 8, "steps": 100}
    rows = []
    start = time.perf_counter()
    for gname, game in base_games().items():
        for quantity in ("P_A", "P_D", "payoff scale"):
            for e in exponents:
                g = scaled(game, quantity, 10.0 ** e)
                r = check(g, random_defenses(rng, g, args.defenses), solve_opts)
                rows.append({"game": gname, "quantity": quantity, "exponent": e, **r})
                print(f"{gname:28s} {quantity:13s} x1e{e:<3d} {r['outcome'][:90]}", flush=True)
    summary = {}
    for gname in base_games():
        for quantity in ("P_A", "P_D", "payoff scale"):
            sel = [r for r in rows if r["game"] == gname and r["quantity"] == quantity]
            largest = None
            for r in sel:  # the largest exponent below which every tried scale was sound
                if not r["sound"]:
                    break
                largest = r["exponent"]
            summary[f"{gname} / {quantity}"] = largest
    print("\nlargest sound scale factor 10^k (every smaller tried scale also sound):")
    for key, e in summary.items():
        print(f"  {key:45s} {'none' if e is None else f'1e{e}'}")
    print(f"total {time.perf_counter() - start:.0f} s")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"rows": rows, "summary": summary,
                               "exponents": list(exponents)}, indent=1))


if __name__ == "__main__":
    main()
