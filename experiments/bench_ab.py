"""Interleaved A/B timing of ``solve_batch`` (and one ``solve``) in two source trees.

``bench_core.py --before SRC`` times the earlier solver in a subprocess after the current one,
so on a shared machine the two are measured under different loads. Here both solvers are
loaded once, each in its own worker process (compiled before timing), and the parent
alternates between them: one warm ``solve_batch`` of the same random games in A, then in B,
``--rounds`` times (only one worker computes at a time). Reported: the fastest and the median
round of each, their ratio, and the values and lower bounds of B against A.

    python experiments/bench_ab.py --a /tmp/before --b . [--k 6] [--games 128] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

_WORKER = """
import json, sys, time, numpy as np, minimax
from minimax.testing import random_game
k, n = {k}, {n}
rng = np.random.default_rng(2026 + k)
games = minimax.stack_games([random_game(rng, k, utility_price=float(rng.uniform(0, 0.3)))
                             for _ in range(n)])
one = [random_game(np.random.default_rng(2026 + k), k)][0]
sols = minimax.solve_batch(games)
minimax.solve(one, method="gradient")
print(json.dumps({{"ready": True}}), flush=True)
for line in sys.stdin:
    t = time.perf_counter(); sols = minimax.solve_batch(games); batch = time.perf_counter() - t
    t = time.perf_counter(); minimax.solve(one, method="gradient"); single = time.perf_counter() - t
    print(json.dumps({{"batch": batch / n, "single": single, "values": [s.value for s in sols],
                      "lowers": [s.lower for s in sols], "gaps": [s.gap for s in sols],
                      "status": [s.status for s in sols]}}), flush=True)
"""


def _worker(src: Path, k: int, n: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.Popen([sys.executable, "-c", _WORKER.format(k=k, n=n)], cwd=src, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def _ask(proc: subprocess.Popen) -> dict:
    proc.stdin.write("go\n")
    proc.stdin.flush()
    return json.loads(proc.stdout.readline())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", type=Path, required=True, help="source tree A (e.g. the earlier one)")
    ap.add_argument("--b", type=Path, default=Path("."), help="source tree B")
    ap.add_argument("--k", type=int, default=6)
    ap.add_argument("--games", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    load = " ".join(f"{v:.1f}" for v in os.getloadavg())
    procs = {}
    for name, src in (("A", args.a), ("B", args.b)):  # compiled one after the other
        procs[name] = _worker(src.resolve(), args.k, args.games)
        json.loads(procs[name].stdout.readline())
    runs = {"A": [], "B": []}
    for _ in range(args.rounds):
        for name in ("A", "B"):
            runs[name].append(_ask(procs[name]))
    for proc in procs.values():
        proc.stdin.close()
        proc.wait()
    after = " ".join(f"{v:.1f}" for v in os.getloadavg())
    stat = {name: {key: (min(r[key] for r in rs), float(np.median([r[key] for r in rs])))
                   for key in ("batch", "single")} for name, rs in runs.items()}
    a, b = runs["A"][-1], runs["B"][-1]
    dv = np.array(b["values"]) - np.array(a["values"])
    la, lb = np.array(a["lowers"]), np.array(b["lowers"])
    rel = (lb - la) / (1.0 + np.abs(la))

    def spread(g):
        g = np.asarray(g)
        return f"{np.median(g):.3e} / {np.quantile(g, 0.9):.3e} / {g.max():.3e}"

    print(f"K = {args.k}, {args.games} random games, {args.rounds} interleaved rounds; load "
          f"average before {load}, after {after}")
    print(f"A = {args.a}, B = {args.b}")
    for key, label in (("batch", "solve_batch s/game"), ("single", "one solve s")):
        (amin, amed), (bmin, bmed) = stat["A"][key], stat["B"][key]
        print(f"{label}: A min {amin:.5f} median {amed:.5f}; B min {bmin:.5f} median {bmed:.5f};"
              f" B/A min {bmin / amin:.3f} median {bmed / amed:.3f}")
    print(f"values B - A: max {dv.max():.2e}, min {dv.min():.2e}; B <= A + 1e-12 on "
          f"{int(np.sum(dv <= 1e-12))}/{dv.size}")
    print(f"lower bounds (B - A) / (1 + |A|): min {rel.min():.2e}, max {rel.max():.2e}")
    print(f"gap median / p90 / max: A {spread(a['gaps'])}; B {spread(b['gaps'])}")
    print(f"status B: {sorted(set(b['status']))}")


if __name__ == "__main__":
    main()
