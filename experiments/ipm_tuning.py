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
from collections.abc import Callable
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import minimax.finite._ipm as ipm

RESULTS = Path(__file__).parent / "results" / "ipm_tuning.md"
MEHROTRA_START = ipm._init
DEFAULT_FRACTION = ipm._step_fraction


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


def fixed_start(B: jax.Array, G: jax.Array, tol: jax.Array) -> ipm._IPMState:
    """The earlier start: a strictly feasible, roughly centred point (small p, large q)."""
    m, n = B.shape
    p = jnp.full((m,), 0.5 / (m * B.max()))
    q = jnp.full((n,), 2.0 / (n * B.min()))
    st = MEHROTRA_START(B, G, tol)
    return st._replace(
        z=jnp.concatenate([p, 1.0 - B.T @ p]),
        lam=-q,
        sig=jnp.concatenate([B @ q - 1.0, q]),
    )


def constant(eta: float) -> Callable[[jax.Array], jax.Array]:
    return lambda mu: jnp.full_like(mu, eta)


VARIANTS = [
    ("fixed start, eta 0.95", fixed_start, constant(0.95)),
    ("Mehrotra start, eta 0.95", MEHROTRA_START, constant(0.95)),
    ("Mehrotra start, eta 0.99", MEHROTRA_START, constant(0.99)),
    ("Mehrotra start, eta 0.999", MEHROTRA_START, constant(0.999)),
    ("Mehrotra start, eta max(0.95, 1 - mu) (default)", MEHROTRA_START, DEFAULT_FRACTION),
]


def main() -> None:
    start = time.perf_counter()
    games = families(np.random.default_rng(2))
    rows = []
    try:
        for name, start_fn, eta_fn in VARIANTS:
            ipm._init, ipm._step_fraction = start_fn, eta_fn
            ipm._solve.clear_cache()
            cells = []
            for family, (As, tol) in games.items():
                sol = ipm.zero_sum_batch(As, tol=tol)
                ok = "" if sol.converged.all() else f", {int((~sol.converged).sum())} failed"
                cells.append(f"{sol.iterations.mean():.2f} / {sol.iterations.max()}{ok}")
                print(f"{name:50s} {family:24s} {cells[-1]}", flush=True)
            rows.append((name, cells))
    finally:
        ipm._init, ipm._step_fraction = MEHROTRA_START, DEFAULT_FRACTION
        ipm._solve.clear_cache()
    head = "| variant | " + " | ".join(games) + " |"
    lines = [head, "|---|" + "---|" * len(games)]
    lines += [f"| {name} | " + " | ".join(cells) + " |" for name, cells in rows]
    text = (
        "# Batched IPM: iterations per game (mean / max)\n\n"
        f"`python experiments/ipm_tuning.py`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}"
        f", total {time.perf_counter() - start:.0f} s. Tolerance 1e-6 on exploitability (1e-2 "
        "for the 1e4-scaled games); every game converged unless a cell says otherwise. A chunk "
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
