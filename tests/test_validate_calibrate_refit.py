"""Refitting a kept run: the per-row diagnosis and extra calibration conditions."""

import csv
from pathlib import Path

from minimax.validate.refit import diagnosis, rescore

RUN = Path(__file__).resolve().parents[1] / "experiments/results/validate_quick/earlier/seed1"


def test_diagnosis_ranks_rows_and_extra_calibration_enters_the_fit(tmp_path):
    base = rescore(RUN, terms=("cross",), restarts=1)
    rows = base["allocation_rows"]
    md = diagnosis(base)
    best = min(rows, key=lambda x: x["measured"])
    line = next(ln for ln in md.splitlines() if ln.startswith(f"| {best['allocation']} |"))
    assert line.split("|")[-3].strip() == "1"  # rank measured: the lowest worst case
    assert all(lo <= x["measured"] <= hi for x in rows
               for lo, hi in [(x["measured_lo"], x["measured_hi"])])
    # the held-out conditions, relabelled as calibration, fitted too: held-out MAE must fall
    with open(RUN / "conditions.csv") as f:
        rd = csv.DictReader(f)
        held = [dict(r, split="calib") for r in rd if r["split"] == "held"]
        cols = rd.fieldnames
    with open(tmp_path / "conditions.csv", "w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        w.writerows(held)
    more = rescore(RUN, terms=("cross",), restarts=1, extra=[tmp_path])
    assert more["held"]["mae"] < base["held"]["mae"] - 0.02
