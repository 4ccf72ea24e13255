"""Batched matrix games: 10,000 random 20 x 20 games at exploitability 1e-6, over several seeds.

    python experiments/bench_finite_batch.py            # 5 seeds, about 2 minutes on 2 cores
    python experiments/bench_finite_batch.py --quick    # 2 seeds of 2,000 games, a smoke test

Measured side by side in one process (the machine is shared: compare ratios, not times):

* the first call of ``zero_sum_batch`` in a fresh process (compilation included; the persistent
  compilation cache is off here) and, after it, the warm time of the same call;
* per seed: the warm batch time (median of repeats) against a plain scipy HiGHS loop
  (``linprog``, one LP per game) timed on a subsample just before and just after the batch,
  extrapolated to the whole batch; the games above tol, counted independently of the solver
  (float64 recomputation, and exact rational arithmetic for every game within 1e-9 of tol or
  above); the games the exact LP finished; the largest value difference to HiGHS;
* first calls on new batch sizes after earlier calls: time, and whether anything compiled.

Writes the section between the ``bench_finite_batch`` markers of
``experiments/results/bench_finite.md`` (the rest of that file is ``bench_finite.py``'s).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import time
from fractions import Fraction
from pathlib import Path

import jax
import numpy as np
import scipy
import scipy.optimize

from minimax.errors import SolverError
from minimax.finite import zero_sum_batch
from minimax.finite._ipm import _run_chunk, chunk_games

RESULTS = Path(__file__).resolve().parent / "results" / "bench_finite.md"
BEGIN, END = "<!-- bench_finite_batch: begin -->", "<!-- bench_finite_batch: end -->"


def highs_value(A: np.ndarray) -> float:
    """The game value by one scipy HiGHS LP (what a user would write first)."""
    m, n = A.shape
    c = np.zeros(m + 1)
    c[-1] = 1.0
    res = scipy.optimize.linprog(
        c,
        A_ub=np.hstack([A.T, -np.ones((n, 1))]),
        b_ub=np.zeros(n),
        A_eq=np.concatenate([np.ones(m), [0.0]])[None, :],
        b_eq=[1.0],
        bounds=[(0, None)] * m + [(None, None)],
        method="highs",
    )
    assert res.status == 0, res.message
    return float(res.fun)


def exact_gap(A: np.ndarray, x: np.ndarray, y: np.ndarray) -> Fraction:
    """Exploitability of x / sum(x), y / sum(y) in rationals (independent of the solver)."""
    Aq = [[Fraction(float(v)) for v in row] for row in A]
    xq, yq = [Fraction(float(v)) for v in x], [Fraction(float(v)) for v in y]
    m, n = A.shape
    up = max(sum(xq[i] * Aq[i][j] for i in range(m)) for j in range(n)) / sum(xq)
    lo = min(sum(Aq[i][j] * yq[j] for j in range(n)) for i in range(m)) / sum(yq)
    return up - lo


def above_tol(As: np.ndarray, x: np.ndarray, y: np.ndarray, tol: float) -> tuple[int, int]:
    """(games whose exact exploitability exceeds tol, games checked exactly)."""
    naive = np.einsum("bm,bmn->bn", x, As).max(1) - np.einsum("bmn,bn->bm", As, y).min(1)
    near = np.flatnonzero(naive > tol - 1e-9)
    return sum(exact_gap(As[k], x[k], y[k]) > Fraction(tol) for k in near), len(near)


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def compiles_during(fn) -> tuple[float, int, int]:
    """(seconds, compile log lines, new entries in the IPM program's cache) of one call."""
    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "ompil" in record.getMessage():
                records.append(record.getMessage())

    handler = Grab(level=logging.DEBUG)
    logger = logging.getLogger("jax")
    logger.addHandler(handler)
    before = _run_chunk._cache_size()
    try:
        with jax.log_compiles(True):
            _, seconds = timed(fn)
    finally:
        logger.removeHandler(handler)
    return seconds, len(records), _run_chunk._cache_size() - before


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    games, seeds, highs_games, repeats = (2000, 2, 200, 2) if args.quick else (10_000, 5, 1000, 3)
    shape, tol = (20, 20), 1e-6
    wall = time.perf_counter()
    load_start = os.getloadavg()
    cache = jax.config.jax_compilation_cache_dir
    print(f"load average at start {load_start}; persistent compilation cache: {cache}")

    As0 = np.random.default_rng(0).standard_normal((games, *shape))
    _, first = timed(zero_sum_batch, As0, tol=tol)
    warm0 = statistics.median(timed(zero_sum_batch, As0, tol=tol)[1] for _ in range(repeats))
    print(f"first call {first:.2f} s, warm {warm0:.3f} s -> compile ~{first - warm0:.2f} s")

    rows = []
    for seed in range(seeds):
        As = np.random.default_rng(seed).standard_normal((games, *shape))
        half = highs_games // 2
        values, before = timed(lambda A=As[:half]: [highs_value(G) for G in A])
        try:
            times = [timed(zero_sum_batch, As, tol=tol)[1] for _ in range(repeats)]
            sol = zero_sum_batch(As, tol=tol)
            missed = 0
        except SolverError as err:  # a game missed tol even after the exact LP
            sol, times, missed = err.solution, [float("nan")], int((~err.solution.converged).sum())
        more, after = timed(lambda A=As[half:highs_games]: [highs_value(G) for G in A])
        ref = np.array(values + more)
        highs_per_game = (before + after) / highs_games
        batch = statistics.median(times)
        bad, checked = above_tol(As, sol.x, sol.y, tol)
        diff = np.abs(sol.value[:highs_games] - ref) - sol.exploitability[:highs_games] / 2
        row = {
            "seed": seed,
            "batch": batch,
            "highs": highs_per_game * games,
            "ratio": highs_per_game * games / batch,
            "above": bad,
            "missed": missed,
            "checked": checked,
            "finished": int(sol.finished_exactly.sum()),
            "max_gap": float(sol.exploitability.max()),
            "iters": f"{sol.iterations.mean():.2f} / {sol.iterations.max()}",
            "value_err": float(max(diff.max(), 0.0)),
        }
        rows.append(row)
        print(row, flush=True)

    # First calls on new batch sizes after the earlier calls (all of shape 20 x 20).
    rng = np.random.default_rng(99)
    new_sizes = []
    for size in (7777, 1, 333, 20_000):
        Bs = rng.standard_normal((size, *shape))
        seconds, logs, programs = compiles_during(lambda B=Bs: zero_sum_batch(B, tol=tol))
        warm = statistics.median(timed(zero_sum_batch, Bs, tol=tol)[1] for _ in range(2))
        new_sizes.append((size, seconds, warm, logs, programs))
        print(f"new batch size {size}: first call {seconds:.3f} s (warm {warm:.3f} s), "
              f"{logs} compile log lines, {programs} new programs", flush=True)
    load_end = os.getloadavg()

    ratios = [r["ratio"] for r in rows]
    table = [
        "| seed | batch (warm, median) | HiGHS loop (extrapolated) | ratio | games above tol "
        "(exact check) | finished by exact LP | max exploitability | iterations mean / max "
        "| value vs HiGHS beyond gap/2 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        table.append(
            f"| {r['seed']} | {r['batch']:.3f} s | {r['highs']:.1f} s | {r['ratio']:.1f}x | "
            f"{r['above']} ({r['checked']} checked exactly) | {r['finished']} | "
            f"{r['max_gap']:.2e} | {r['iters']} | {r['value_err']:.1e} |"
        )
    sizes = [
        "| batch size | first call after earlier calls | warm call | compile log lines | new "
        "programs |",
        "|---|---|---|---|---|",
    ] + [f"| {s} | {t:.3f} s | {w:.3f} s | {c} | {p} |" for s, t, w, c, p in new_sizes]
    text = "\n".join([
        BEGIN,
        "## Batch at exploitability 1e-6, five seeds (`experiments/bench_finite_batch.py`)",
        "",
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
        f"{os.cpu_count()} cores, jax {jax.__version__}, scipy {scipy.__version__}, total "
        f"{time.perf_counter() - wall:.0f} s. {games:,} N(0, 1) games of 20 x 20 per seed, "
        f"tol {tol:g}. The machine was shared with other processes (load average "
        f"{load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end): times are noisy, the "
        f"ratios come from timings taken side by side (HiGHS on {highs_games} games per seed, "
        f"half just before and half just after the batch, extrapolated x{games // highs_games}).",
        "",
        f"First call in a fresh process (compiles the one program for 20 x 20; persistent cache "
        f"{'off' if not cache else 'on'}): {first:.2f} s; warm: {warm0:.3f} s; compilation "
        f"about {first - warm0:.2f} s. Chunk: {chunk_games(*shape)} games per compiled call.",
        "",
        *table,
        "",
        f"Ratio vs the HiGHS loop: median {statistics.median(ratios):.1f}x (min "
        f"{min(ratios):.1f}x, max {max(ratios):.1f}x). Games above tol: "
        f"{sum(r['above'] for r in rows)} of {games * seeds:,} (must be 0; a game above tol "
        f"after the exact LP would make the call raise: {sum(r['missed'] for r in rows)}).",
        "",
        "First calls on new batch sizes, after the calls above (nothing may compile):",
        "",
        *sizes,
        END,
    ])
    print()
    print(text)
    old = RESULTS.read_text() if RESULTS.is_file() else ""
    if BEGIN in old and END in old:
        new = old[: old.index(BEGIN)] + text + old[old.index(END) + len(END):]
    else:
        head, sep, rest = old.partition("\n## ")
        new = head.rstrip() + "\n\n" + text + "\n\n" + (sep.lstrip("\n") + rest if sep else "")
    if not args.quick:
        RESULTS.write_text(new)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
