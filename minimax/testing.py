"""Random games and reference implementations for tests and benchmarks.

Written from the formulas of docs/model.md, independently of the engine: ``numpy_loss`` is the
loss L(x, a) in numpy, ``brute_force_best_response`` maximises it by a zooming grid search
without KKT conditions. ``random_game`` / ``random_defense`` draw the instances the test suite
and ``experiments/bench_core.py`` use. Nothing here is used by the solvers.
"""

from __future__ import annotations

import numpy as np

import minimax


def random_game(
    rng: np.random.Generator,
    k: int,
    *,
    mode: str = "injection",
    utility_price: float = 0.0,
    levers=("n", "s", "b"),
    caps: bool = False,
    effect: str = "exp",
) -> minimax.Game:
    """A random K-channel game with parameters in the ranges the tests and benchmarks use.

    Budgets: P_A ~ U(1, 10), P_D ~ U(0.5, 3); channel parameters uniform in fixed ranges;
    ``caps=True`` caps about half the channels (and always channel 0) below P_A.
    """
    cap = np.full(k, np.inf)
    if caps:
        cap = np.where(rng.random(k) < 0.5, rng.uniform(0.0, 3.0, k), np.inf)
        cap[0] = rng.uniform(0.0, 1.0)
    return minimax.Game.create(
        mode=mode,
        attacker_budget=rng.uniform(1.0, 10.0),
        defender_budget=rng.uniform(0.5, 3.0),
        B=rng.uniform(0.5, 2.0, k),
        S=rng.uniform(0.5, 3.0, k),
        N=rng.uniform(0.2, 1.0, k),
        w=rng.uniform(0.2, 1.5, k),
        u=rng.uniform(0.0, 1.0, k),
        rho=rng.uniform(0.0, 1.0, k),
        alpha=rng.uniform(0.3, 2.0, k),
        beta=rng.uniform(0.3, 2.0, k),
        gamma=rng.uniform(0.3, 2.0, k),
        cap=cap,
        utility_price=utility_price,
        levers=levers,
        effect=effect,
    )


def numpy_loss(game: minimax.Game, x: dict, a: np.ndarray):
    """L(x, a) in numpy, from the formulas of docs/model.md §1.4 and §1.5 (a: (..., K))."""
    g = {
        f: np.asarray(getattr(game, f), dtype=float)
        for f in ("B", "S", "N", "w", "u", "rho", "alpha", "beta", "gamma")
    }
    n, s, b = (np.asarray(x[k], dtype=float) for k in "nsb")
    if game.effect == "exp":
        eta, kappa = np.exp(-g["alpha"] * n), np.exp(-g["gamma"] * b)
    else:
        eta, kappa = 1 / (1 + g["alpha"] * n), 1 / (1 + g["gamma"] * b)
    sigma = 1 + g["beta"] * s
    if game.mode == "injection":
        m = (g["N"] + sigma * g["S"]) / eta
        cadv = g["B"] * kappa * np.log2(1 + a / m)
        cleg = g["B"] * kappa ** g["rho"] * np.log2(1 + sigma * g["S"] / g["N"])
        return np.sum(g["w"] * cadv, axis=-1) - float(game.utility_price) * np.sum(
            g["u"] * cleg, axis=-1
        )
    return np.sum(
        g["w"]
        * (
            g["B"] * np.log2(1 + g["S"] / g["N"])
            - g["B"] * kappa ** g["rho"] * np.log2(1 + sigma * g["S"] / (g["N"] + eta * a))
        ),
        axis=-1,
    )


def brute_force_best_response(
    game: minimax.Game, x: dict, points: int = 201, levels: int = 12
) -> tuple[np.ndarray, float]:
    """max_a L(x, a) by a zooming grid search (no KKT conditions, no engine code).

    L is non-decreasing in every a_i, so for given a_1..a_{K-1} the best a_K is
    ``min(cap_K, P_A - sum of the others)``: the grid runs over the first K - 1 coordinates.
    """
    k = game.num_channels
    budget = float(game.attacker_budget)
    upper = np.minimum(np.asarray(game.cap, dtype=float), budget)
    # one step h for every axis, so moving power between two channels stays on the grid
    centre, half = np.full(k - 1, budget / 2), budget / 2
    best_a, best_v = np.zeros(k), -np.inf
    for _ in range(levels):
        offsets = np.linspace(-half, half, points)
        axes = [np.clip(centre[i] + offsets, 0.0, upper[i]) for i in range(k - 1)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, k - 1)
        grid = grid[grid.sum(axis=1) <= budget]
        last = np.minimum(upper[-1], budget - grid.sum(axis=1))[:, None]
        full = np.concatenate([grid, last], axis=1)
        values = numpy_loss(game, x, full)
        i = int(np.argmax(values))
        if values[i] > best_v:
            best_a, best_v = full[i], float(values[i])
        centre, half = best_a[:-1], half * 4.0 / (points - 1)
    return best_a, best_v


def random_defense(rng: np.random.Generator, game: minimax.Game) -> dict:
    """A random feasible defense on the enabled levers, spending the whole budget."""
    k = game.num_channels
    weights = rng.dirichlet(np.ones(3 * k + 1))[: 3 * k].reshape(3, k)
    cost = np.stack([np.asarray(game.cost_n), np.asarray(game.cost_s), np.asarray(game.cost_b)])
    mask = np.array([[lv in game.levers] for lv in "nsb"], dtype=float)
    x = weights * mask * float(game.defender_budget) / cost
    return {"n": x[0], "s": x[1], "b": x[2]}
