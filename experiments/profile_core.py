"""Per-phase profile of the batched channel-game solver (descent, line search, certificate).

Runs each phase of ``solve_batch`` as its own compiled, vmapped program on the same random
games (the generator of ``bench_core.py``) and reports the wall time per game of each, plus
the work counts that drive it: descent iterations (mean / max over the batch: a vmapped loop
runs every game as long as the slowest), line-search trials and exact phi evaluations.

    python experiments/profile_core.py [--k 6 12] [--games 256 128] [--repeat 2]
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

import jax
import numpy as np

import minimax
from minimax import certificate as C
from minimax import gradient as G
from minimax.best_response import best_response_attack
from minimax.channel import payoff
from minimax.game import Defense

S = importlib.import_module("minimax.solve")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from tests.helpers import random_game  # noqa: E402


def _timed(fn, *args, repeat):
    out = fn(*args)
    jax.block_until_ready(out)
    best = np.inf
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn(*args)
        jax.block_until_ready(out)
        best = min(best, time.perf_counter() - t)
    return out, best


def profile(k: int, games: int, repeat: int, opts, cfg):
    rng = np.random.default_rng(2026 + k)
    batch = S.stack_games([random_game(rng, k, utility_price=float(rng.uniform(0, 0.3)))
                           for _ in range(games)])

    descent = jax.jit(jax.vmap(lambda g: G.descent_run(g, opts)))
    (x, _, iters), t_descent = _timed(descent, batch, repeat=repeat)
    defense = Defense(n=x[:, 0], s=x[:, 1], b=x[:, 2])

    def upper(g, d):
        a = best_response_attack(g, d)
        return a, payoff(g, d, a)

    (attack, _), t_upper = _timed(jax.jit(jax.vmap(upper)), batch, defense, repeat=repeat)
    lower = jax.jit(jax.vmap(lambda g, a: C.lagrangian_lower_bound(g, a, cfg)))
    _, t_lower = _timed(lower, batch, attack, repeat=repeat)

    def nu_only(g, a):
        return C.lagrangian_lower_bound(g, a, cfg._replace(rounds=0, boxes=cfg.refine))

    _, t_nu = _timed(jax.jit(jax.vmap(nu_only)), batch, attack, repeat=repeat)
    full = lambda: minimax.solve_batch(batch, **opts._asdict(), **cfg._asdict())  # noqa: E731
    _, t_full = _timed(lambda: [s.value for s in full()], repeat=repeat)
    one = jax.tree_util.tree_map(lambda v: v[0], batch)
    _, t_single = _timed(lambda: minimax.solve(one, method="gradient", **opts._asdict(),
                                               **cfg._asdict()).value, repeat=repeat + 2)
    sols = full()
    gaps = np.array([s.gap for s in sols])
    it = np.asarray(iters)
    return {
        "k": k, "games": games, "full": t_full / games, "single": t_single,
        "descent": t_descent / games, "upper": t_upper / games, "lower": t_lower / games,
        "lower_nu_search": t_nu / games,
        "iters_mean": float(it.mean()), "iters_max": int(it.max()),
        "trials": float(it.mean()) * opts.starts * G._TRIALS,
        "gap_median": float(np.median(gaps)), "gap_p90": float(np.quantile(gaps, 0.9)),
        "gap_max": float(gaps.max()),
    }


def table(rows) -> str:
    lines = [
        "| K | games | full batch ms/game | single solve ms | descent ms/game | "
        "certificate upper ms/game | certificate lower ms/game (of which nu search + first "
        "boxes) | descent iterations mean / max | line-search trials per game | "
        "gap median / p90 / max |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['k']} | {r['games']} | {1e3 * r['full']:.1f} | {1e3 * r['single']:.1f} | "
            f"{1e3 * r['descent']:.1f} | {1e3 * r['upper']:.2f} | {1e3 * r['lower']:.1f} "
            f"({1e3 * r['lower_nu_search']:.1f}) | {r['iters_mean']:.0f} / {r['iters_max']} | "
            f"{r['trials']:.0f} | {r['gap_median']:.2e} / {r['gap_p90']:.2e} / "
            f"{r['gap_max']:.2e} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[6, 12])
    ap.add_argument("--games", type=int, nargs="+", default=[256, 128])
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    opts, cfg, _ = S._options({}, "gradient")
    rows = [profile(k, n, args.repeat, opts, cfg) for k, n in zip(args.k, args.games,
                                                                    strict=True)]
    print(table(rows))


if __name__ == "__main__":
    main()
