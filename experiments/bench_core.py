"""Benchmark: batched certified solving of the channel game vs a loop of solve vs SLSQP.

1,024 random K = 12 injection games (lambda in [0, 0.3], all three levers, non-convex).

* ``solve_batch``: one compiled, vmapped call for all games (certificates included); reported
  warm (second call) and cold (first call, compilation included).
* a loop of ``solve``: per-game calls on a sample (compiled once, then warm).
* scipy SLSQP multistart: what a user would otherwise write -- SLSQP from ``--starts`` random
  feasible points on phi with its exact gradient (the same exact inner best response), on a
  sample of games; no certificate.

Value quality compares, on the SLSQP sample, the batched value with the best SLSQP value.

    python experiments/bench_core.py [--games 1024] [--sample 16] [--starts 52]
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

import minimax
from minimax.testing import random_game

HERE = Path(__file__).resolve().parent


def slsqp_multistart(game, starts, rng):
    k = game.num_channels
    cost = np.concatenate([np.asarray(game.cost_n), np.asarray(game.cost_s),
                           np.asarray(game.cost_b)])
    budget = float(game.defender_budget)

    def split(z):
        return minimax.Defense(z[:k], z[k:2 * k], z[2 * k:])

    f = jax.jit(lambda g, z: minimax.phi(g, split(z)))
    df = jax.jit(jax.grad(lambda z, g: minimax.phi(g, split(z))))
    best = np.inf
    for _ in range(starts):
        x0 = rng.dirichlet(np.ones(3 * k + 1))[: 3 * k] * budget / cost
        res = minimize(lambda z: float(f(game, jnp.asarray(z))), x0,
                       jac=lambda z: np.asarray(df(jnp.asarray(z), game)), method="SLSQP",
                       bounds=[(0.0, None)] * (3 * k),
                       constraints=[{"type": "ineq", "fun": lambda z: budget - cost @ z,
                                     "jac": lambda z: -cost}],
                       options={"maxiter": 500, "ftol": 1e-12})
        z = np.maximum(res.x, 0.0)
        if cost @ z <= budget * (1 + 1e-9):
            best = min(best, float(f(game, jnp.asarray(z))))
    return best


def slsqp_multistart_fd(game, starts, rng):
    """SLSQP as it is usually written: a numpy objective, finite-difference gradients.

    phi(x) still uses the exact water-filling best response (otherwise it would not be
    phi at all), called once per objective evaluation.
    """
    k = game.num_channels
    cost = np.concatenate([np.asarray(game.cost_n), np.asarray(game.cost_s),
                           np.asarray(game.cost_b)])
    budget = float(game.defender_budget)

    def objective(z):
        _, value = minimax.best_response(game, {"n": z[:k], "s": z[k:2 * k], "b": z[2 * k:]})
        return value

    best = np.inf
    for _ in range(starts):
        x0 = rng.dirichlet(np.ones(3 * k + 1))[: 3 * k] * budget / cost
        res = minimize(objective, x0, method="SLSQP", bounds=[(0.0, None)] * (3 * k),
                       constraints=[{"type": "ineq", "fun": lambda z: budget - cost @ z}],
                       options={"maxiter": 500, "ftol": 1e-12})
        z = np.maximum(res.x, 0.0)
        if cost @ z <= budget * (1 + 1e-9):
            best = min(best, objective(z))
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--games", type=int, default=1024)
    ap.add_argument("--sample", type=int, default=16, help="games for the loop and SLSQP")
    ap.add_argument("--starts", type=int, default=52, help="SLSQP starts per game")
    ap.add_argument("--fd-sample", type=int, default=2,
                    help="games for SLSQP with finite-difference gradients")
    ap.add_argument("--batch-starts", type=int, default=8)
    ap.add_argument("--batch-steps", type=int, default=100)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_core.md")
    args = ap.parse_args()

    rng = np.random.default_rng(2026)
    games = [random_game(rng, 12, utility_price=float(rng.uniform(0, 0.3)))
             for _ in range(args.games)]
    opts = dict(starts=args.batch_starts, steps=args.batch_steps)

    t = time.perf_counter()
    minimax.solve_batch(games, **opts)
    cold = time.perf_counter() - t
    t = time.perf_counter()
    batch = minimax.solve_batch(games, **opts)
    warm = time.perf_counter() - t

    sample = list(range(args.sample))
    minimax.solve(games[0], method="gradient")  # compile once
    t = time.perf_counter()
    looped = [minimax.solve(games[i], method="gradient") for i in sample]
    loop = (time.perf_counter() - t) / len(sample)

    slsqp_game = slsqp_multistart(games[0], 1, rng)  # compile the objective once
    del slsqp_game
    t = time.perf_counter()
    ref = [slsqp_multistart(games[i], args.starts, rng) for i in sample]
    slsqp = (time.perf_counter() - t) / len(sample)

    fd_sample = list(range(args.fd_sample))
    t = time.perf_counter()
    ref_fd = [slsqp_multistart_fd(games[i], args.starts, rng) for i in fd_sample]
    slsqp_fd = (time.perf_counter() - t) / max(len(fd_sample), 1)
    diff_fd = np.array([batch[i].value for i in fd_sample]) - np.array(ref_fd)

    b_val = np.array([batch[i].value for i in sample])
    l_val = np.array([s.value for s in looped])
    ref = np.array(ref)
    gaps = np.array([s.gap for s in batch])
    rel_gaps = gaps / np.maximum(np.abs([s.value for s in batch]), 1e-12)
    rows = [
        ("solve_batch (warm, certified)", warm / args.games, args.games),
        ("solve_batch (cold: incl. compile)", cold / args.games, args.games),
        ("loop of solve (gradient, certified)", loop, len(sample)),
        (f"scipy SLSQP multistart ({args.starts} starts, exact JAX gradient, no certificate)",
         slsqp, len(sample)),
        (f"scipy SLSQP multistart ({args.starts} starts, finite differences, no certificate)",
         slsqp_fd, len(fd_sample)),
    ]
    lines = [
        f"# Channel-game solving: K = 12, {args.games} random games", "",
        f"Machine: {platform.machine()}, {jax.device_count()} JAX CPU device(s), "
        f"jax {jax.__version__}; batch options starts={args.batch_starts}, "
        f"steps={args.batch_steps}; loop uses `solve` defaults.", "",
        "| method | games | seconds per game | vs SLSQP (JAX grad) | vs SLSQP (finite diff.) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, per, count in rows:
        lines.append(f"| {name} | {count} | {per:.4f} | {slsqp / per:.1f}x | "
                     f"{slsqp_fd / per:.1f}x |")
    diff_b = b_val - ref
    diff_l = l_val - ref
    lines += [
        "", f"Value quality on the {len(sample)} SLSQP games (value = phi(defence), lower is "
        "better for the defender):", "",
        f"- solve_batch <= SLSQP best + 1e-6 on {int(np.sum(diff_b <= 1e-6))}/{len(sample)}; "
        f"mean(batch - SLSQP) = {diff_b.mean():.3e}, max = {diff_b.max():.3e}, "
        f"min = {diff_b.min():.3e}",
        f"- finite-difference SLSQP on {len(fd_sample)} games: batch - SLSQP = "
        f"{np.array2string(diff_fd, precision=3)}",
        f"- loop of solve <= SLSQP best + 1e-6 on {int(np.sum(diff_l <= 1e-6))}/{len(sample)};"
        f" mean(loop - SLSQP) = {diff_l.mean():.3e}",
        f"- certified gap over all {args.games} batched games: median {np.median(gaps):.3e}, "
        f"90th percentile {np.quantile(gaps, 0.9):.3e}, max {gaps.max():.3e}; "
        f"relative to |value|: median {np.median(rel_gaps):.3e}",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    (args.out.with_suffix(".json")).write_text(json.dumps({
        "batch_warm_s_per_game": warm / args.games, "batch_cold_s_per_game": cold / args.games,
        "loop_s_per_game": loop, "slsqp_s_per_game": slsqp, "slsqp_fd_s_per_game": slsqp_fd,
        "batch_minus_slsqp": diff_b.tolist(), "loop_minus_slsqp": diff_l.tolist(),
    }, indent=2))


if __name__ == "__main__":
    main()
