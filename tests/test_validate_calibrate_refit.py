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


def test_aic_comes_from_the_fit_residuals_and_compare_marks_its_best():
    import numpy as np

    from minimax.validate import calibrate as cal
    from minimax.validate.refit import cap_semantics, compare_terms, read_conditions

    calib = [c for c in read_conditions(RUN) if c.split == "calib" and np.isfinite(c.bits)]
    kw = {"caps": {"text": 1.0}, "restarts": 1, **cap_semantics(RUN, "run")}
    fits = {t: cal.fit_model(calib, ("image", "text"), terms=t, **kw) for t in ((), ("cross",))}
    for m in fits.values():  # residuals recomputed from the model's own predictions
        r = np.array([cal.predict_condition(m, c) - c.bits for c in calib])
        expect = len(calib) * np.log(np.mean(r ** 2)) + 2 * cal.n_free(m, calib)
        assert abs(cal.aic(m, calib) - expect) < 1e-6
    assert cal.n_free(fits[("cross",)], calib) > cal.n_free(fits[()], calib)
    md = compare_terms([RUN], [(), ("cross",)], restarts=1)
    best = min(fits, key=lambda t: cal.aic(fits[t], calib))
    label = ",".join(best) or "(none)"
    assert sum("(AIC best)" in ln for ln in md.splitlines()) == 1
    assert any(ln.startswith(f"| {label} (AIC best) |") for ln in md.splitlines())
