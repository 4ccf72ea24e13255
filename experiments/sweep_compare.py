"""Two runs of one sweep compared point by point: are their answers bit-identical?

    python experiments/sweep_compare.py DIR_A DIR_B

Joins the two ``results.parquet`` tables on ``point_id`` and prints, per column (value, upper,
lower, gap, iterations, status, defense, attack), whether the two runs agree exactly, with the
largest absolute difference of the numeric ones. Exit status 1 when any column differs.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pandas as pd

NUMBERS = ("value", "upper", "lower", "gap")
OTHERS = ("iterations", "status", "defense", "attack")


def compare(a: pd.DataFrame, b: pd.DataFrame) -> dict[str, tuple[bool, float | None]]:
    """``{column: (identical, max |difference| or None)}`` over the points of both tables."""
    a, b = a.set_index("point_id").sort_index(), b.set_index("point_id").sort_index()
    if list(a.index) != list(b.index):
        raise SystemExit(f"the runs hold different points ({len(a)} and {len(b)})")
    out: dict[str, tuple[bool, float | None]] = {}
    for col in NUMBERS:
        x, y = a[col].to_numpy(float), b[col].to_numpy(float)
        diff = np.abs(x - y)
        out[col] = (np.array_equal(x, y, equal_nan=True),
                    float(np.nanmax(diff)) if np.isfinite(diff).any() else None)
    for col in OTHERS:
        out[col] = (bool((a[col].astype(str) == b[col].astype(str)).all()), None)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir_a")
    parser.add_argument("dir_b")
    args = parser.parse_args()
    a = pd.read_parquet(f"{args.dir_a}/results.parquet")
    b = pd.read_parquet(f"{args.dir_b}/results.parquet")
    result = compare(a, b)
    for col, (same, diff) in result.items():
        extra = "" if diff is None else f", max |difference| {diff:.3e}"
        print(f"{col}: {'identical' if same else 'DIFFERENT'}{extra}")
    print(f"{len(a)} points; statuses {b['status'].value_counts().to_dict()}")
    sys.exit(0 if all(same for same, _ in result.values()) else 1)


if __name__ == "__main__":
    main()
