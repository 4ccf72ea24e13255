"""Per-phase profile of the batched channel-game solver (descent, line search, certificate).

Runs each phase of ``solve_batch`` as its own compiled, vmapped program on the same random
games (the generator of ``bench_core.py``) and reports the wall time per game of each (best of
``--repeat``): the descent (of which its start: every start's initial point and its
``screen`` iterations), the certificate (of which the multiplier search and the
branch-and-bound at the multiplier), and what ``solve_batch`` spends outside both (host
gathers between descent pieces, building the results); plus the work counts that drive it:
descent iterations (mean / max) and line-search trials (every start during the screen, the
kept ones after it).

    python experiments/profile_core.py [--k 6 12] [--games 256 128] [--repeat 2] [--out FILE]

With ``--out`` the table (and the load average before and after) is also written to FILE, e.g.
``experiments/results/profile_core.md``.
"""

from __future__ import annotations

import argparse
import importlib
import os
import time
from pathlib import Path

import jax
import numpy as np

import minimax
from minimax import certificate as C
from minimax.game import Defense
from minimax.gradient import NEWTON_GRADIENT_TRIALS
from minimax.linesearch import TRIALS
from minimax.methods import parse_options
from minimax.quasinewton import NEWTON_STEPS
from minimax.testing import random_game

S = importlib.import_module("minimax.solver")

HERE = Path(__file__).resolve().parent


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

    _, t_screen = _timed(S._batch_descent_init, batch, opts, repeat=repeat)
    (x, iters), t_descent = _timed(lambda: S._compacted_descent(batch, games, opts),
                                   repeat=repeat)
    (_, attack, _, centre), t_centre = _timed(S._batch_certify_centre, batch, x, cfg,
                                              repeat=repeat)
    nu_search = jax.jit(jax.vmap(lambda g, a, x: C._multiplier(
        g, a, cfg, C.kkt_multiplier(g, Defense(*x), a))))
    log_nu, t_nu = _timed(nu_search, batch, attack, x, repeat=repeat)
    rigorous = jax.jit(jax.vmap(lambda g, a, nu: C._rigorous_g(g, a, nu, cfg)))
    _, t_rigorous = _timed(rigorous, batch, attack, jax.numpy.exp(log_nu), repeat=repeat)
    _, t_cert = _timed(lambda: S._batch_certify(batch, games, x, cfg), repeat=repeat)
    full = lambda: minimax.solve_batch(batch, **opts._asdict(), **cfg._asdict())  # noqa: E731
    _, t_full = _timed(lambda: [s.value for s in full()], repeat=repeat)
    one = jax.tree_util.tree_map(lambda v: v[0], batch)
    _, t_single = _timed(lambda: minimax.solve(one, method="gradient", **opts._asdict(),
                                               **cfg._asdict()).value, repeat=repeat + 2)
    sols = full()
    gaps = np.array([s.gap for s in sols])
    it = np.asarray(iters)
    screened = min(opts.screen, opts.steps)
    kept = min(opts.keep, opts.starts)
    per_step = NEWTON_GRADIENT_TRIALS + len(NEWTON_STEPS) if opts.quasi_newton else TRIALS
    trials = (screened * opts.starts + np.maximum(it - screened, 0).mean() * kept) * per_step
    return {
        "k": k, "games": games, "full": t_full / games, "single": t_single,
        "screen": t_screen / games, "descent": t_descent / games,
        "nu_search": t_nu / games, "rigorous": t_rigorous / games, "centre": t_centre / games,
        "cert": t_cert / games, "zero_games": int(np.asarray(centre.need_zero).sum()),
        "iters_mean": float(it.mean()), "iters_max": int(it.max()), "trials": float(trials),
        "gap_median": float(np.median(gaps)), "gap_p90": float(np.quantile(gaps, 0.9)),
        "gap_max": float(gaps.max()),
    }


def table(rows) -> str:
    lines = [
        "| K | games | solve_batch ms/game | single solve ms | descent ms/game | of which "
        "init + screen | certificate ms/game | of which multiplier search | of which bound at "
        "the multiplier | rest of the certificate (best response, g(0) estimate, host) | host "
        "and bookkeeping (solve_batch - descent - certificate) | games needing the bound at "
        "nu = 0 | descent iterations mean / max | line-search trials per game (mean) | gap "
        "median / p90 / max |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        rest = r["cert"] - r["nu_search"] - r["rigorous"]
        host = r["full"] - r["descent"] - r["cert"]
        lines.append(
            f"| {r['k']} | {r['games']} | {1e3 * r['full']:.1f} | {1e3 * r['single']:.1f} | "
            f"{1e3 * r['descent']:.1f} | {1e3 * r['screen']:.1f} | {1e3 * r['cert']:.1f} | "
            f"{1e3 * r['nu_search']:.1f} | {1e3 * r['rigorous']:.1f} | {1e3 * rest:.1f} | "
            f"{1e3 * host:.1f} | {r['zero_games']} | {r['iters_mean']:.0f} / {r['iters_max']} | "
            f"{r['trials']:.0f} | {r['gap_median']:.2e} / {r['gap_p90']:.2e} / "
            f"{r['gap_max']:.2e} |")
    return "\n".join(lines)


def sweep_chunk(n: int, repeat: int, sample: int):
    """One chunk of the 10,000-point sweep (its first ``n`` points, its solver options): the
    previous batched program vs ``solve_batch``, side by side; and ``sample`` points re-solved
    with the default per-point ``solve``."""
    from hydra import compose, initialize_config_dir

    from minimax.runtime import conf_dir
    from minimax.sweep._run import _games, plan

    with initialize_config_dir(config_dir=str(conf_dir()), version_base=None):
        cfg = compose(config_name="sweep", overrides=["sweep=budgets_10k"])
    _, points = plan(cfg)
    options = dict(points[0].config["solver"])
    options.pop("method")
    games = _games(points[:n])
    stacked = S.stack_games(games)
    _, o, c = parse_options("gradient", dict(options))
    _, old = _timed(lambda: S._batch_pipeline(stacked, "gradient", o, c), repeat=repeat)
    sols, new = _timed(lambda: minimax.solve_batch(stacked, **options), repeat=repeat)
    old_cert = S._batch_pipeline(stacked, "gradient", o, c)[1]
    values = np.array([s.value for s in sols])
    gaps = np.array([s.gap for s in sols])
    rng = np.random.default_rng(0)
    pick = rng.choice(n, size=min(sample, n), replace=False)
    ref = [minimax.solve(games[i]) for i in pick]
    diff = values[pick] - np.array([r.value for r in ref])
    ref_gaps = np.array([r.gap for r in ref])
    return "\n".join([
        f"Sweep chunk: the first {n} points of `sweep=budgets_10k`, its options {options}.",
        f"- previous batched program {1e3 * old / n:.2f} ms/point, solve_batch "
        f"{1e3 * new / n:.2f} ms/point (ratio {old / new:.2f}x); max |value difference| "
        f"{np.abs(values - np.asarray(old_cert.upper)).max():.2e}, max |lower difference| "
        f"{np.abs(np.array([s.lower for s in sols]) - np.asarray(old_cert.lower)).max():.2e}",
        f"- {len(pick)} points re-solved with the default `solve`: value(sweep) - "
        f"value(default) max {diff.max():.2e}, median {np.median(diff):.2e}; <= 1e-6 on "
        f"{int(np.sum(diff <= 1e-6))}/{len(pick)}",
        f"- certified gap, sweep options: median {np.median(gaps[pick]):.3e}, max "
        f"{gaps[pick].max():.3e} (whole chunk: median {np.median(gaps):.3e}, max "
        f"{gaps.max():.3e}); default solve: median {np.median(ref_gaps):.3e}, max "
        f"{ref_gaps.max():.3e}",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--k", type=int, nargs="+", default=[6, 12])
    ap.add_argument("--games", type=int, nargs="+", default=[256, 128])
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--sweep-chunk", type=int, default=0,
                    help="also time one chunk of this many points of sweep=budgets_10k")
    ap.add_argument("--sweep-sample", type=int, default=20)
    ap.add_argument("--out", type=Path, default=None, help="also write the table here")
    args = ap.parse_args()
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    if args.sweep_chunk:
        print(sweep_chunk(args.sweep_chunk, args.repeat, args.sweep_sample), flush=True)
    _, opts, cfg = parse_options("gradient", {})
    rows = [profile(k, n, args.repeat, opts, cfg) for k, n in zip(args.k, args.games,
                                                                    strict=False) if k > 0]
    if rows:  # --k 0: the sweep chunk only
        print(table(rows))
    if rows and args.out:
        after = " ".join(f"{v:.1f}" for v in os.getloadavg())
        args.out.write_text("\n".join([
            "# Per-phase profile of `solve_batch` (channel games)", "",
            f"`python experiments/profile_core.py --k {' '.join(map(str, args.k))} --games "
            f"{' '.join(map(str, args.games))} --repeat {args.repeat}`; jax {jax.__version__}; "
            f"default options {opts}; load average before {load}, after {after} (shares within "
            f"one run are comparable; absolute times are not). Each phase is timed as its own "
            f"compiled call (best of the repeats), so the parts need not add up exactly.", "",
            table(rows), ""]))


if __name__ == "__main__":
    main()
