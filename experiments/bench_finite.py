"""Benchmark of the finite zero-sum solvers against the usual libraries, side by side in one run.

    python experiments/bench_finite.py            # full run, ~5-10 minutes on 2 cores
    python experiments/bench_finite.py --quick    # smaller sizes, a smoke test

Single games (10 x 10, 100 x 100, 1000 x 1000, N(0, 1) losses, a fresh game per repeat, median
of the repeats) and a batch of 10,000 random 20 x 20 games at exploitability 1e-6. Slow baselines
run on fewer games and are extrapolated linearly; the table says so. Every row is timed in this
process on the same machine. Writes ``experiments/results/bench_finite.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import platform
import signal
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import scipy.optimize

from minimax.finite import zero_sum, zero_sum_batch

RESULTS = Path(__file__).resolve().parent / "results" / "bench_finite.md"


class _Timeout(Exception):
    pass


@contextlib.contextmanager
def time_limit(seconds: float):
    """Abort pure-Python work (nashpy's Lemke-Howson) after ``seconds`` via SIGALRM."""

    def handler(signum, frame):
        raise _Timeout

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def optional(name: str):
    try:
        return importlib.import_module(name)
    except Exception as err:  # noqa: BLE001  (record any install/import failure plainly)
        print(f"  {name}: not available ({type(err).__name__}: {err})")
        return None


# --- the contenders: each takes a loss matrix A (defender = rows minimises) -------------------


def linprog_highs(A: np.ndarray, method: str = "highs") -> float:
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
        method=method,
    )
    assert res.status == 0, res.message
    return float(res.fun)


def cvxpy_plain(A: np.ndarray, solver: str) -> float:
    """What a user writes in cvxpy: a fresh problem with A as a constant, default settings."""
    import cvxpy as cp

    x, v = cp.Variable(A.shape[0], nonneg=True), cp.Variable()
    prob = cp.Problem(cp.Minimize(v), [A.T @ x <= v, cp.sum(x) == 1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob.solve(solver=solver, warm_start=False)
    if prob.status != cp.OPTIMAL:
        raise RuntimeError(f"status {prob.status}")
    return float(prob.value)


def make_openspiel():
    lp_solver = optional("open_spiel.python.algorithms.lp_solver")
    pyspiel = optional("pyspiel")
    if lp_solver is None or pyspiel is None:
        return None
    # LinearProgram.solve binds solver=cp.ECOS as a default argument at import time, and ECOS is
    # not installed with cvxpy >= 1.6; module constants cannot change a bound default, so we
    # replace the defaults themselves: Clarabel, cvxpy's default LP solver, with its own settings.
    lp_solver.LinearProgram.solve.__defaults__ = ("CLARABEL", {})

    def run(A: np.ndarray) -> float:
        game = pyspiel.create_matrix_game((-A).tolist(), A.tolist())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, _, v0, _ = lp_solver.solve_zero_sum_matrix_game(game)
        return -float(v0)

    return run


def make_nashpy():
    nash = optional("nashpy")
    if nash is None:
        return None, None

    def lp(A: np.ndarray) -> float:
        x = nash.linalg.minimax.linear_program(-A)  # row player maximises -A
        return float(np.max(x @ A))

    def lemke_howson(A: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x, y = nash.Game(-A, A).lemke_howson(initial_dropped_label=0)
        return float(x @ A @ y)

    return lp, lemke_howson


def make_gambit():
    gbt = optional("pygambit")
    if gbt is None:
        return None

    def lp(A: np.ndarray) -> float:
        game = gbt.Game.from_arrays(-A, A)
        result = gbt.nash.lp_solve(game, rational=False)
        profile = result.equilibria[0]
        return -float(profile.payoff(next(iter(game.players))))

    return lp


# --- timing -----------------------------------------------------------------------------------


def timed(fn: Callable[[np.ndarray], float], games: list[np.ndarray], limit: float) -> dict:
    """Median seconds per game over ``games`` (one call each).

    Stops after the first call that brings the total past ``limit`` seconds (so slow rows get
    fewer runs); a single call is abandoned after ``max(limit, 150)`` s where Python can interrupt
    it (C solvers finish their call first).
    """
    times, values, spent = [], [], 0.0
    for A in games:
        start = time.perf_counter()
        try:
            with time_limit(limit if limit < 30 else max(limit, 150)):
                values.append(fn(A))
        except _Timeout:
            return {"note": f"no result within {limit:.0f} s (timeout)"}
        except Exception as err:  # noqa: BLE001  (report the failure, go on)
            return {"note": f"failed: {type(err).__name__}: {str(err)[:80]}"}
        times.append(time.perf_counter() - start)
        spent += times[-1]
        if spent > limit:
            break
    return {"seconds": statistics.median(times), "runs": len(times), "values": values}


def in_child(fn: Callable[[np.ndarray], float], seconds: float) -> Callable[[np.ndarray], float]:
    """From 500 x 500 up, run ``fn`` in a forked process killed after ``seconds`` (C code ignores
    SIGALRM, so a stuck solver could not be stopped in this process)."""
    import multiprocessing as mp

    def run(A: np.ndarray) -> float:
        if A.size < 250_000:  # small games: no fork overhead (~70 ms) in the timing
            return fn(A)
        ctx = mp.get_context("fork")
        parent, child = ctx.Pipe(duplex=False)

        def target() -> None:
            child.send(fn(A))

        proc = ctx.Process(target=target, daemon=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # JAX warns about fork; the child never uses JAX
            proc.start()
        ready = parent.poll(seconds)
        if not ready:
            proc.kill()
            proc.join()
            raise _Timeout
        value = parent.recv()
        proc.join()
        return value

    return run


def fmt_seconds(s: float) -> str:
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def single_games(sizes, repeats, contenders, rng) -> tuple[list[str], dict]:
    """Time every contender on the same ``repeats[size]`` games per size.

    ``err`` compares each value with the first contender's (our exact LP, checked against scipy
    HiGHS to 1e-8 in the tests), to avoid solving every 1000 x 1000 game once more.
    """
    results: dict[str, dict[int, dict]] = {name: {} for name, *_ in contenders}
    for size in sizes:
        games = [rng.standard_normal((size, size)) for _ in range(repeats[size])]
        exact = None
        for name, fn, max_size, limit in contenders:
            if fn is None:
                results[name][size] = {"note": "not installed"}
                continue
            if size > max_size:
                results[name][size] = {"note": f"skipped above {max_size} x {max_size}"}
                continue
            print(f"  {name} @ {size}x{size} ...", flush=True)
            r = timed(fn, games, limit)
            if "values" in r:
                exact = r["values"] if exact is None else exact
                r["error"] = max(abs(v - e) for v, e in zip(r["values"], exact, strict=False))
            results[name][size] = r
    return sizes, results


def single_table(sizes, results) -> str:
    raw = {
        s: min(
            results[k][s]["seconds"]
            for k in ("scipy linprog, HiGHS (default: simplex)", "scipy linprog, HiGHS IPM")
            if "seconds" in results[k][s]
        )
        for s in sizes
    }
    head = "| method | " + " | ".join(f"{s}x{s}" for s in sizes) + " |"
    lines = [head, "|" + "---|" * (len(sizes) + 1)]
    for name, per_size in results.items():
        cells = []
        for s in sizes:
            r = per_size[s]
            if "seconds" not in r:
                cells.append(r["note"])
                continue
            err = f", err {r['error']:.0e}" if r["error"] > 1e-9 else ""
            cells.append(
                f"{fmt_seconds(r['seconds'])} ({r['seconds'] / raw[s]:.2f}x, n={r['runs']}{err})"
            )
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def batch(n_games, shape, tol, repeats, loops, rng) -> str:
    As = rng.standard_normal((n_games, *shape))
    print("  zero_sum_batch (compile) ...", flush=True)
    start = time.perf_counter()
    sol = zero_sum_batch(As, tol=tol)
    compile_and_run = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        sol = zero_sum_batch(As, tol=tol)
        times.append(time.perf_counter() - start)
    ours = statistics.median(times)
    rows = [
        (
            "minimax `zero_sum_batch` (JAX Mehrotra IPM, one compiled program)",
            ours,
            f"all {n_games}; median of {repeats}; first call incl. compile "
            f"{fmt_seconds(compile_and_run)}; converged {sol.converged.mean():.2%}, max "
            f"exploitability {sol.exploitability.max():.1e}, iterations median "
            f"{np.median(sol.iterations):.0f} / max {sol.iterations.max()}",
        )
    ]
    check = [zero_sum(A).value for A in As[:200]]
    print(
        "  batch vs exact value on 200 games: max |diff| =",
        f"{np.max(np.abs(sol.value[:200] - check)):.1e}",
    )
    for name, fn, count in loops:
        if fn is None:
            rows.append((name, None, "not installed"))
            continue
        print(f"  loop: {name} on {count} games ...", flush=True)
        start = time.perf_counter()
        try:
            for A in As[:count]:
                fn(A)
        except Exception as err:  # noqa: BLE001
            rows.append((name, None, f"failed: {type(err).__name__}: {str(err)[:80]}"))
            continue
        per_game = (time.perf_counter() - start) / count
        note = (
            "all games"
            if count == n_games
            else f"{count} games timed, x{n_games / count:.0f} extrapolated"
        )
        rows.append((name, per_game * n_games, note))
    highs = next(t for name, t, _ in rows if name.startswith("scipy linprog"))
    lines = [
        f"| method ({n_games} games {shape[0]}x{shape[1]}) | total time | throughput vs HiGHS loop "
        "| notes |",
        "|---|---|---|---|",
    ]
    for name, t, note in rows:
        if t is None:
            lines.append(f"| {name} | - | - | {note} |")
        else:
            lines.append(f"| {name} | {fmt_seconds(t)} | {highs / t:.1f}x | {note} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    args = parser.parse_args()
    rng = np.random.default_rng(2026)
    openspiel = make_openspiel()
    nash_lp, nash_lh = make_nashpy()
    gambit = make_gambit()
    sizes = [10, 30] if args.quick else [10, 100, 1000]
    big = sizes[-1]
    # name, function, largest size run, time budget per size (s)
    contenders = [
        ("minimax `zero_sum` (default: highs-direct)", lambda A: zero_sum(A).value, big, 60),
        (
            "minimax `zero_sum(solver='HIGHS')` (cvxpy, cached DPP problem)",
            lambda A: zero_sum(A, solver="HIGHS").value,
            big,
            60,
        ),
        (
            "minimax `zero_sum(solver='CLARABEL')` (cvxpy, cached DPP problem)",
            lambda A: zero_sum(A, solver="CLARABEL").value,
            big,
            60,
        ),
        ("scipy linprog, HiGHS (default: simplex)", linprog_highs, big, 30),
        ("scipy linprog, HiGHS IPM", lambda A: linprog_highs(A, "highs-ipm"), big, 30),
        ("cvxpy + HiGHS (fresh problem)", lambda A: cvxpy_plain(A, "HIGHS"), big, 30),
        ("cvxpy + Clarabel (fresh problem)", lambda A: cvxpy_plain(A, "CLARABEL"), big, 30),
        (
            "nashpy `linear_program` (in a child process, killed after 150 s)",
            nash_lp and in_child(nash_lp, 150),
            big,
            30,
        ),
        ("nashpy Lemke-Howson", nash_lh, 10, 20),
        (
            "OpenSpiel `lp_solver` (ECOS -> Clarabel; child process, killed after 150 s)",
            openspiel and in_child(openspiel, 150),
            big,
            30,
        ),
        ("pygambit `lp_solve` (floating point)", gambit, 100, 60),
    ]
    repeats = {10: 30, 30: 10, 100: 10, 1000: 3}  # games per size; budgets below cap slow rows
    start = time.perf_counter()
    print("single games:")
    table_single = single_table(*single_games(sizes, repeats, contenders, rng))
    n_games = 500 if args.quick else 10_000
    print("batch:")
    loops = [
        ("scipy linprog, HiGHS, Python loop", linprog_highs, n_games // 5),
        ("minimax `zero_sum` (highs-direct), Python loop", zero_sum, n_games // 10),
        (
            "minimax `zero_sum(solver='CLARABEL')`, loop",
            lambda A: zero_sum(A, "CLARABEL"),
            n_games // 50,
        ),
        ("nashpy `linear_program`, loop", nash_lp, n_games // 50),
        ("OpenSpiel `lp_solver`, loop", openspiel, n_games // 100),
        ("pygambit `lp_solve`, loop", gambit, n_games // 100),
    ]
    table_batch = batch(n_games, (20, 20), 1e-6, 3, loops, rng)
    total = time.perf_counter() - start
    import jax

    header = (
        "# Finite zero-sum games: benchmark\n\n"
        f"`python experiments/bench_finite.py{' --quick' if args.quick else ''}`, "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {platform.machine()}, "
        f"Python {sys.version.split()[0]}, jax {jax.__version__}, scipy {scipy.__version__}, "
        f"total {total:.0f} s.\n\n"
        "Random N(0, 1) loss matrices, a fresh game per repeat. Times are medians; `(r x, n=k)` "
        "is the ratio to the fastest raw HiGHS row (scipy linprog, simplex or IPM) at that size "
        "and the number of timed runs (fewer where one run exceeds the budget). `err` is the "
        "largest |value - exact value| where above 1e-9. The machine has 2 cores and is shared: "
        "compare rows of one run only.\n"
    )
    # Keep the five-seed batch section that bench_finite_batch.py writes into the same file.
    begin, end = "<!-- bench_finite_batch: begin -->", "<!-- bench_finite_batch: end -->"
    old = RESULTS.read_text() if RESULTS.is_file() else ""
    kept = old[old.index(begin) : old.index(end) + len(end)] + "\n\n" if begin in old else ""
    text = (
        header + "\n" + kept + "## Single games\n\n" + table_single + "\n\n## Batch at "
        "exploitability 1e-6, one seed, against several libraries\n\n" + table_batch + "\n"
    )
    print()
    print(text)
    if not args.quick:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
        print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
