"""Benchmark: batched certified solving of the channel game vs a loop of solve vs SLSQP.

Random injection games at each K of ``--k`` (lambda in [0, 0.3], all three levers,
non-convex), solver options = the ``solve`` defaults unless given.

* ``solve_batch``: one compiled call for all games (certificates included); reported
  warm (second call) and cold (first call, compilation included); beside it the previous
  batched program (one vmapped ``while_loop`` over the whole batch, so every game ran as long
  as the slowest), same options, same games, same run.
* a loop of ``solve``: per-game calls on a sample (compiled once, then warm).
* scipy SLSQP multistart: what a user would otherwise write -- SLSQP from ``--starts`` random
  feasible points on phi with its exact gradient (the same exact inner best response), on a
  sample of games; no certificate.

* ``--before SRC``: the same games solved by the solver in the source tree ``SRC`` (e.g. the
  previous release, ``git worktree add /tmp/before main``), in a subprocess of the same run:
  its ``solve_batch`` (warm) and loop of ``solve``, and its certified gaps beside today's.

Value quality compares, on the SLSQP sample, the batched value with the best SLSQP value.

    python experiments/bench_core.py [--k 6 12] [--games 256 128] [--sample 8] [--starts 52]
        [--before SRC]
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy.optimize import minimize

import minimax
from minimax.methods import parse_options
from minimax.testing import random_game

_solve_module = importlib.import_module("minimax.solver")
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


def _vmapped_while(games, opts):
    """The previous batched program: descent and certificate of every game in one vmapped
    ``while_loop`` (runs every game for as many iterations as the slowest needs)."""
    stacked = minimax.stack_games(games)
    _, o, cfg = parse_options("gradient", dict(opts))
    _, cert, _ = _solve_module._batch_pipeline(stacked, "gradient", o, cfg)
    return jax.block_until_ready(cert)


_BEFORE = """
import json, time, numpy as np, minimax
from minimax.testing import random_game
k, n, sample, opts = {k}, {n}, {sample}, {opts!r}
rng = np.random.default_rng(2026 + k)
games = [random_game(rng, k, utility_price=float(rng.uniform(0, 0.3))) for _ in range(n)]
t = time.perf_counter(); minimax.solve_batch(games, **opts); cold = time.perf_counter() - t
warm = np.inf
for _ in range(2):  # the faster of two warm calls (the machine is shared)
    t = time.perf_counter(); sols = minimax.solve_batch(games, **opts)
    warm = min(warm, time.perf_counter() - t)
minimax.solve(games[0], method="gradient", **opts)
t = time.perf_counter()
for i in range(sample):
    minimax.solve(games[i], method="gradient", **opts)
loop = (time.perf_counter() - t) / sample
print(json.dumps({{"cold": cold / n, "warm": warm / n, "loop": loop,
                  "values": [s.value for s in sols], "gaps": [s.gap for s in sols],
                  "lowers": [s.lower for s in sols]}}))
"""


def solve_before(src: Path, k: int, n_games: int, sample: int, opts: dict) -> dict:
    """The same games (same generator and seed) solved by the solver in the source tree
    ``src``, in a subprocess run from that tree (so it imports that ``minimax``)."""
    code = _BEFORE.format(k=k, n=n_games, sample=sample, opts=opts)
    env = {**os.environ, "PYTHONPATH": str(src)}
    out = subprocess.run([sys.executable, "-c", code], cwd=src, env=env, capture_output=True,
                         text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_k(k, n_games, args):
    rng = np.random.default_rng(2026 + k)
    games = [random_game(rng, k, utility_price=float(rng.uniform(0, 0.3)))
             for _ in range(n_games)]
    opts = dict(starts=args.batch_starts, steps=args.batch_steps)

    def timed(fn):
        t = time.perf_counter()
        out = fn()
        return out, time.perf_counter() - t

    _, cold = timed(lambda: minimax.solve_batch(games, **opts))
    batch, warm = timed(lambda: minimax.solve_batch(games, **opts))
    warm = min(warm, timed(lambda: minimax.solve_batch(games, **opts))[1])  # faster of two
    _, old_cold = timed(lambda: _vmapped_while(games, opts))
    old_cert, old_warm = timed(lambda: _vmapped_while(games, opts))

    sample = list(range(args.sample))
    minimax.solve(games[0], method="gradient", **opts)  # compile once
    looped, loop = timed(lambda: [minimax.solve(games[i], method="gradient", **opts)
                                  for i in sample])
    loop /= len(sample)

    slsqp_multistart(games[0], 1, rng)  # compile the objective once
    ref, slsqp = timed(lambda: [slsqp_multistart(games[i], args.starts, rng) for i in sample])
    slsqp /= len(sample)
    fd_sample = list(range(args.fd_sample))
    ref_fd, slsqp_fd = timed(lambda: [slsqp_multistart_fd(games[i], args.starts, rng)
                                      for i in fd_sample])
    slsqp_fd /= max(len(fd_sample), 1)

    before = (solve_before(args.before, k, n_games, len(sample), opts) if args.before
              else None)

    b_val = np.array([s.value for s in batch])
    diff_b = b_val[sample] - np.array(ref)
    diff_l = np.array([s.value for s in looped]) - np.array(ref)
    diff_fd = b_val[fd_sample] - np.array(ref_fd)
    gaps = np.array([s.gap for s in batch])
    old_gaps = np.asarray(old_cert.gap)
    status = {st: sum(s.status == st for s in batch) for st in {s.status for s in batch}}
    rows = [
        ("solve_batch (warm, certified)", warm / n_games, n_games),
        ("solve_batch (cold: incl. compile)", cold / n_games, n_games),
        ("one vmapped while_loop over the whole batch, no compaction (warm)", old_warm / n_games,
         n_games),
        ("one vmapped while_loop, no compaction (cold: incl. compile)", old_cold / n_games,
         n_games),
        ("loop of solve (gradient, certified)", loop, len(sample)),
        (f"scipy SLSQP multistart ({args.starts} starts, exact JAX gradient, no certificate)",
         slsqp, len(sample)),
        (f"scipy SLSQP multistart ({args.starts} starts, finite differences, no certificate)",
         slsqp_fd, len(fd_sample)),
    ]
    if before:
        rows[4:4] = [(f"before ({args.before_label}): solve_batch (warm)", before["warm"],
                      n_games),
                     (f"before ({args.before_label}): solve_batch (cold)", before["cold"],
                      n_games),
                     (f"before ({args.before_label}): loop of solve", before["loop"],
                      len(sample))]
    lines = [
        f"## K = {k}, {n_games} random games", "",
        "| method | games | seconds per game | vs SLSQP (JAX grad) | vs SLSQP (finite diff.) |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, per, count in rows:
        lines.append(f"| {name} | {count} | {per:.4f} | {slsqp / per:.1f}x | "
                     f"{slsqp_fd / per:.1f}x |")

    def spread(g):
        return (f"median {np.median(g):.3e}, 90th percentile {np.quantile(g, 0.9):.3e}, "
                f"max {g.max():.3e}")

    lines += [
        "", "Value quality (value = phi(defense), lower is better for the defender):", "",
        f"- solve_batch <= SLSQP (JAX grad) best + 1e-6 on {int(np.sum(diff_b <= 1e-6))}/"
        f"{len(sample)}; mean(batch - SLSQP) = {diff_b.mean():.3e}, max = {diff_b.max():.3e}",
        f"- solve_batch <= SLSQP (finite diff.) best + 1e-6 on {int(np.sum(diff_fd <= 1e-6))}/"
        f"{len(fd_sample)}; batch - SLSQP = {np.array2string(diff_fd, precision=3)}",
        f"- loop of solve <= SLSQP (JAX grad) best + 1e-6 on {int(np.sum(diff_l <= 1e-6))}/"
        f"{len(sample)}",
        f"- solve_batch vs one vmapped while_loop on all {n_games} games: "
        f"max |value difference| {np.abs(b_val - np.asarray(old_cert.upper)).max():.2e}",
        f"- status: {status}",
        f"- certified gap, solve_batch: {spread(gaps)}",
        f"- certified gap, one vmapped while_loop: {spread(old_gaps)}",
    ]
    if before:
        diff_before = b_val - np.array(before["values"])
        lines += [
            f"- certified gap, before ({args.before_label}): "
            f"{spread(np.array(before['gaps']))}",
            f"- solve_batch - before on all {n_games} games: value max {diff_before.max():.2e}, "
            f"min {diff_before.min():.2e}; <= before + 1e-6 on "
            f"{int(np.sum(diff_before <= 1e-6))}/{n_games}",
        ]
        if "lowers" in before:
            b_low = np.array([s.lower for s in batch])
            d_low = b_low - np.array(before["lowers"])
            lines.append(f"- certified lower bound, solve_batch - before: max {d_low.max():.2e}, "
                         f"min {d_low.min():.2e}, max |difference| relative to 1 + |lower| "
                         f"{np.max(np.abs(d_low) / (1 + np.abs(b_low))):.2e}")
    return "\n".join(lines), {
        "k": k, "games": n_games, "batch_warm_s_per_game": warm / n_games,
        "batch_cold_s_per_game": cold / n_games, "previous_batch_warm_s_per_game":
        old_warm / n_games, "loop_s_per_game": loop, "slsqp_s_per_game": slsqp,
        "slsqp_fd_s_per_game": slsqp_fd, "batch_minus_slsqp": diff_b.tolist(),
        "batch_minus_slsqp_fd": diff_fd.tolist(), "loop_minus_slsqp": diff_l.tolist(),
        "gap_median": float(np.median(gaps)), "gap_p90": float(np.quantile(gaps, 0.9)),
        "gap_max": float(gaps.max()),
        **({"before": {key: before[key] for key in ("warm", "cold", "loop")},
            "before_gaps": before["gaps"], "before_values": before["values"]}
           if before else {}),
    }


def _label(src: Path) -> str:
    """``src`` and its git commit, if it is a checkout."""
    try:
        commit = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return str(src)
    return f"{src} at {commit}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[6, 12])
    ap.add_argument("--games", type=int, nargs="+", default=[256, 128])
    ap.add_argument("--sample", type=int, default=8, help="games for the loop and SLSQP")
    ap.add_argument("--starts", type=int, default=52, help="SLSQP starts per game")
    ap.add_argument("--fd-sample", type=int, default=2,
                    help="games for SLSQP with finite-difference gradients")
    ap.add_argument("--batch-starts", type=int, default=16)
    ap.add_argument("--batch-steps", type=int, default=200)
    ap.add_argument("--out", type=Path, default=HERE / "results" / "bench_core.md")
    ap.add_argument("--before", type=Path, default=None,
                    help="source tree of an earlier solver, run on the same games")
    args = ap.parse_args()
    args.before_label = _label(args.before) if args.before else ""

    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    parts, records = [], []
    for k, n in zip(args.k, args.games, strict=True):
        text, record = bench_k(k, n, args)
        print(text, flush=True)
        parts.append(text)
        records.append(record)
    load_after = " ".join(f"{v:.1f}" for v in os.getloadavg())
    text = "\n".join([
        "# Channel-game solving: batched, single and SLSQP multistart", "",
        f"Machine: {platform.machine()}, {jax.device_count()} JAX CPU device(s), "
        f"jax {jax.__version__}; solver options starts={args.batch_starts}, "
        f"steps={args.batch_steps} (batch and loop); load average before {load}, after "
        f"{load_after} (ratios within one run are comparable; absolute times are not).", "",
        *[p + "\n" for p in parts],
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(records, indent=2))


if __name__ == "__main__":
    main()
