"""Iterations of the batched interior-point method (`zero_sum_batch`) under its design choices.

Regenerates `experiments/results/ipm_tuning.md`, the measurements behind the starting point and
the step-to-boundary rule in `minimax/finite/_ipm.py`: for each variant, the mean and largest
number of iterations to exploitability 1e-6 (1e-2 for payoffs of scale 1e4) on several families
of random games, and whether every game converged. Iteration counts do not depend on the
machine; the chunked layout's effect on time is in `bench_finite.py`.

    python experiments/ipm_tuning.py            # about 3 minutes on 2 cores
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from minimax.finite import IPMOptions, zero_sum_batch

RESULTS = Path(__file__).parent / "results" / "ipm_tuning.md"


def families(rng: np.random.Generator) -> dict[str, tuple[np.ndarray, float]]:
    """Name -> (loss matrices, tol)."""
    normal = rng.standard_normal
    return {
        "N(0,1) 20x20": (normal((2000, 20, 20)), 1e-6),
        "U(0,1) 20x20": (rng.random((2000, 20, 20)), 1e-6),
        "integers -2..2, 20x20": (rng.integers(-2, 3, (2000, 20, 20)).astype(float), 1e-6),
        "N(0,1) 20x5": (normal((2000, 20, 5)), 1e-6),
        "N(0,1) 5x20": (normal((2000, 5, 20)), 1e-6),
        "N(0,1) 50x50": (normal((300, 50, 50)), 1e-6),
        "N(0,1) 3x3": (normal((2000, 3, 3)), 1e-6),
        "1e4 N(0,1) 20x20": (1e4 * normal((500, 20, 20)), 1e-2),
        "rank 2, 20x20": (
            np.einsum("bik,bkj->bij", normal((1000, 20, 2)), normal((1000, 2, 20))),
            1e-6,
        ),
        "binary 10x10": (rng.integers(0, 2, (2000, 10, 10)).astype(float), 1e-6),
    }


# Each variant is an options record passed to zero_sum_batch (a new record compiles anew).
VARIANTS = [
    ("fixed start, eta 0.95", IPMOptions(start="fixed", adaptive_step=False)),
    ("Mehrotra start, eta 0.95", IPMOptions(adaptive_step=False)),
    ("Mehrotra start, eta 0.99", IPMOptions(step_to_boundary=0.99, adaptive_step=False)),
    ("Mehrotra start, eta 0.999", IPMOptions(step_to_boundary=0.999, adaptive_step=False)),
    ("Mehrotra start, eta max(0.95, 1 - mu) (default)", IPMOptions()),
]


def main() -> None:
    start = time.perf_counter()
    games = families(np.random.default_rng(2))
    rows = []
    for name, options in VARIANTS:
        cells = []
        for family, (As, tol) in games.items():
            sol = zero_sum_batch(As, tol=tol, options=options)
            # Games the IPM left uncertified are finished by the exact LP; count them.
            late = int(sol.finished_exactly.sum())
            ok = "" if not late else f", {late} finished by the exact LP"
            cells.append(f"{sol.iterations.mean():.2f} / {sol.iterations.max()}{ok}")
            print(f"{name:50s} {family:24s} {cells[-1]}", flush=True)
        rows.append((name, cells))
    head = "| variant | " + " | ".join(games) + " |"
    lines = [head, "|---|" + "---|" * len(games)]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    text = (
        "# Batched IPM: iterations per game (mean / max)\n\n"
        f"`python experiments/ipm_tuning.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f", total {time.perf_counter() - start:.0f} s. Tolerance 1e-6 on exploitability (1e-2 "
        "for the 1e4-scaled games); the IPM certified every game unless a cell says how many "
        "the exact LP finished. A chunk "
        "of games runs as long as its slowest member, so the maximum matters as much as the "
        "mean.\n\n" + "\n".join(lines) + "\n"
    )
    print()
    print(text)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    print(f"written to {RESULTS}")


if __name__ == "__main__":
    main()
