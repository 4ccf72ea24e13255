"""Quality cost of a sweep's solver options: a random sample of its points re-solved with the
default ``minimax.solve`` (default options), compared point by point.

    python experiments/sweep_quality.py [SWEEP_DIR] [--sample 20]

Prints, over the sample: value(sweep) - value(default) (positive = the fast defense is worse
against an adaptive attacker; both are certified upper bounds on V), and both gaps.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import minimax
from minimax.runtime import enable_compilation_cache
from minimax.sweep import aggregate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("sweep_dir", nargs="?", default="outputs/sweeps/budgets_10k")
    parser.add_argument("--sample", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    enable_compilation_cache()
    table = aggregate([args.sweep_dir])
    ok = table[table["status"] != "failed"]  # certified or gap_above_tol
    sample = ok.sample(n=min(args.sample, len(ok)), random_state=args.seed)
    diffs, fast_gaps, ref_gaps, ref_secs = [], [], [], []
    for _, row in sample.iterrows():
        game = minimax.Game.from_dict(json.loads(row["config"])["game"])
        t0 = time.perf_counter()
        ref = minimax.solve(game)
        ref_secs.append(time.perf_counter() - t0)
        diffs.append(row["value"] - ref.value)
        fast_gaps.append(row["gap"])
        ref_gaps.append(ref.gap)
        print(f"P_A={row['attacker_budget']:.3f} P_D={row['defender_budget']:.3f}  "
              f"value sweep {row['value']:.6f} default {ref.value:.6f} diff {diffs[-1]:+.2e}  "
              f"gap sweep {row['gap']:.4f} default {ref.gap:.4f}", flush=True)
    d, fg, rg = map(np.asarray, (diffs, fast_gaps, ref_gaps))
    print(f"\nsample of {len(d)} points: value(sweep) - value(default): mean {d.mean():+.2e}, "
          f"median {np.median(d):+.2e}, max {d.max():+.2e}, min {d.min():+.2e}; "
          f"relative max {np.max(d / np.abs(sample['value'].to_numpy())):+.2e}")
    print(f"values no worse than the default solve + 1e-6 on {int(np.sum(d <= 1e-6))}/{len(d)}")
    print(f"gap sweep: median {np.median(fg):.3e}, mean {fg.mean():.3e}, max {fg.max():.3e};  "
          f"gap default solve: median {np.median(rg):.3e}, mean {rg.mean():.3e}, max "
          f"{rg.max():.3e}; default solve {np.mean(ref_secs):.2f} s/point (warm)")


if __name__ == "__main__":
    main()
