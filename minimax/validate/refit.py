"""Re-fit and re-score the channel model on a finished run's measurements, measuring nothing.

``python -m minimax.validate.refit RUN_DIR [RUN_DIR ...] [--terms cross,kappa]`` reads each
run's ``conditions.csv`` (calibration and held-out conditions) and ``summary.json`` (the
budget-matched allocations' measured worst cases and lever amounts), fits the channel model
(:func:`minimax.validate.calibrate.fit_model`; by default with the interaction terms and the
token cap's semantics of the run's saved model) and the defense-blind baseline on the
calibration conditions only, and prints the scores of docs/validation.md §5.4 and §5.6:
held-out MAE and Spearman (clean and joint conditions included) and the one-shot rank
correlation across the allocations, model beside baseline.  This is how a change of the
channel model is checked against stored measurements; the engine prescription and the
empirical game need the full pipeline (with ``validate.store`` only new cells are measured).
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from minimax.validate import calibrate as cal

LEVER_COLUMNS = ("n_image", "s_image", "b_image", "s_text", "b_text")


def _float(v: str) -> float:
    return float(v) if v not in ("", None) else 0.0


def read_conditions(run_dir: str | Path) -> list[cal.Condition]:
    """The calibration and held-out conditions of a run (``conditions.csv``)."""
    out = []
    with open(Path(run_dir) / "conditions.csv") as f:
        for r in csv.DictReader(f):
            if r["split"] not in ("calib", "held"):
                continue
            power = {c: _float(r.get(f"P_{c}", "")) for c in ("image", "text")}
            power = {c: v for c, v in power.items() if v > 0}
            levers = {k: _float(r[k]) for k in LEVER_COLUMNS if k in r}
            out.append(cal.Condition(r["label"], r["kind"], r["split"], power, levers,
                                     float(r["bits"]), _float(r["lo"]), _float(r["hi"])))
    return out


def read_allocations(run_dir: str | Path) -> list[tuple[str, dict[str, float], float]]:
    """``(name, levers, measured worst case)`` of the budget-matched rows (``summary.json``)."""
    path = Path(run_dir) / "summary.json"
    if not path.exists():  # a run that measured its conditions only
        return []
    d = json.loads(path.read_text())
    return [(a["allocation"], dict(a["levers"]), float(a["measured"]))
            for a in (d.get("decision") or {}).get("allocations", [])]


def read_row_cis(run_dir: str | Path) -> dict[str, tuple[float, float, float]]:
    """Each game row's measured worst case and its CI, ``name -> (worst, lo, hi)``."""
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return {}
    d = json.loads(path.read_text())
    return {r["name"]: (float(r["worst"]), float(r["worst_lo"]), float(r["worst_hi"]))
            for r in (d.get("game") or {}).get("scores", [])}


def allocation_ceiling(allocs: Sequence[tuple[str, dict[str, float], float]],
                       cis: dict[str, tuple[float, float, float]]) -> float:
    """:func:`~minimax.validate.calibrate.rank_ceiling` of the budget-matched rows (nan if a
    row's CI is missing)."""
    if not allocs or any(name not in cis for name, _, _ in allocs):
        return float("nan")
    w, lo, hi = zip(*(cis[name] for name, _, _ in allocs), strict=True)
    return cal.rank_ceiling(w, lo, hi)


TOKEN = {"text": 0.125}  # one suffix token's text power on the digits target


def cap_semantics(run_dir: str | Path, cap: str = "run") -> dict[str, Any]:
    """``cap_open`` and ``cap_units`` for :func:`~minimax.validate.calibrate.fit_model`.

    ``"run"``: as the run's ``summary.json`` model has them; a model saved without
    ``cap_open`` was fitted with the earlier continuous cap (held even at ``b = 0``); a run
    without ``summary.json`` (conditions only) gets ``"open"``.
    """
    if cap == "open":
        return {"cap_open": True, "cap_units": dict(TOKEN)}
    if cap == "closed":
        return {"cap_open": False, "cap_units": None}
    if cap != "run":
        raise ValueError(f"cap={cap!r}; expected 'run', 'open' or 'closed'")
    path = Path(run_dir) / "summary.json"
    if not path.exists():
        return cap_semantics(run_dir, "open")
    m = json.loads(path.read_text()).get("model") or {}
    return {"cap_open": bool(m.get("cap_open", False)), "cap_units": m.get("cap_units")}


def run_terms(run_dir: str | Path) -> tuple[str, ...] | None:
    """The interaction terms the run's saved model kept (``summary.json``); None (choose by
    AIC) for a run without one."""
    path = Path(run_dir) / "summary.json"
    m = json.loads(path.read_text()).get("model") if path.exists() else None
    return tuple(m["terms"]) if m and "terms" in m else None


def rescore(run_dir: str | Path, *, power: float = 1.5, caps: dict[str, float] | None = None,
            terms: Sequence[str] | None = None, restarts: int = 3,
            extra: Sequence[str | Path] = (), skip: Sequence[str] = (),
            cap: str = "run") -> dict[str, Any]:
    """Fit on the run's calibration conditions; score held-out conditions and allocations.

    ``extra``: directories whose ``conditions.csv`` holds more calibration conditions of the
    same seed (e.g. from ``experiments/validate_conditions_only.py``), added to the fit.
    ``skip``: labels of ``extra`` conditions left out of the fit.  ``cap``: the token cap's
    semantics (:func:`cap_semantics`): ``"run"`` as the run fitted it, ``"open"`` no cap at
    ``b_text = 0`` and caps in whole tokens, ``"closed"`` the earlier continuous cap that
    holds ``caps.text`` even at ``b_text = 0``.
    """
    conds = read_conditions(run_dir)
    calib = [c for c in conds if c.split == "calib"]
    calib += [c for d in extra for c in read_conditions(d)
              if c.split == "calib" and c.label not in skip]
    held = [c for c in conds if c.split == "held"]
    kw = {"caps": dict(caps if caps is not None else {"text": 1.0}), "restarts": restarts,
          **cap_semantics(run_dir, cap)}
    model = cal.fit_model(calib, ("image", "text"), terms=terms, **kw)
    blind = cal.fit_model(calib, ("image", "text"), blind=True, **kw)
    allocs = read_allocations(run_dir)

    def held_score(m):
        return cal.score([cal.predict_condition(m, c) for c in held], [c.bits for c in held])

    dec = cal.decision_score(model, [(lv, b) for _, lv, b in allocs], power)
    dec_b = cal.decision_score(blind, [(lv, b) for _, lv, b in allocs], power)
    resid = {c.label: cal.predict_condition(model, c) - c.bits for c in held}
    cis = read_row_cis(run_dir)
    rows = [{"allocation": name, "levers": lv, "measured": b,
             "measured_lo": cis.get(name, (b, math.nan, math.nan))[1],
             "measured_hi": cis.get(name, (b, math.nan, math.nan))[2],
             "predicted": cal.worst_case(model, lv, power)[0],
             "predicted_blind": cal.worst_case(blind, lv, power)[0]} for name, lv, b in allocs]
    return {"run": str(run_dir), "terms": list(model.terms), "fit_rms": model.rms,
            "k": cal.n_free(model, calib), "aic": cal.aic(model, calib),
            "held": held_score(model)._asdict(), "held_blind": held_score(blind)._asdict(),
            "allocations": dec._asdict(), "allocations_blind": dec_b._asdict(),
            "allocation_ceiling": allocation_ceiling(allocs, cis), "allocation_rows": rows,
            "held_residuals": resid,
            "held_rows": [(c.label, c.bits, cal.predict_condition(model, c),
                           cal.predict_condition(blind, c)) for c in held]}


def _ranks(v: Sequence[float]) -> list[float]:
    from scipy.stats import rankdata

    return list(rankdata(v)) if len(v) else []


def diagnosis(r: dict[str, Any]) -> str:
    """Markdown: each budget-matched row measured vs predicted with ranks, and each held-out
    condition's residual (what :func:`rescore` returned)."""
    rows = r["allocation_rows"]
    rm, rp = _ranks([x["measured"] for x in rows]), _ranks([x["predicted"] for x in rows])
    md = [f"### {r['run']}", "",
          "| row | levers | measured worst (CI) | predicted | rank measured | rank predicted |",
          "|---|---|---|---|---:|---:|"]
    for x, a, b in sorted(zip(rows, rm, rp, strict=True), key=lambda t: t[1]):
        lv = ", ".join(f"{k} {v:.2f}" for k, v in x["levers"].items() if v)
        md.append(f"| {x['allocation']} | {lv} | {x['measured']:.3f} [{x['measured_lo']:.3f}, "
                  f"{x['measured_hi']:.3f}] | {x['predicted']:.3f} | {a:g} | {b:g} |")
    md += ["", "| held-out condition | measured | model | residual | blind |",
           "|---|---|---|---|---|"]
    for label, y, p, pb in r["held_rows"]:
        md.append(f"| {label} | {y:.3f} | {p:.3f} | {p - y:+.3f} | {pb:.3f} |")
    return "\n".join(md) + "\n"


def compare_terms(runs: Sequence[str | Path], choices: Sequence[Sequence[str]],
                  **kw: Any) -> str:
    """A Markdown table per run: each allowed set of interaction terms fitted on the run's
    calibration conditions, with its AIC (calibration only: what a fit can choose by) beside
    the scores that decide (held-out MAE and Spearman, allocations' Spearman and MAE), and
    the defense-blind baseline.  ``kw`` goes to :func:`rescore`."""
    md = []
    for run in runs:
        rs = [rescore(run, terms=tuple(t), **kw) for t in choices]
        best = min(range(len(rs)), key=lambda i: rs[i]["aic"])
        md += [f"### {run}", "",
               "| terms allowed | kept | k | AIC | fit RMS | held-out MAE | held-out Spearman "
               "| allocations Spearman | allocations MAE |",
               "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
        for i, (t, r) in enumerate(zip(choices, rs, strict=True)):
            h, a = r["held"], r["allocations"]
            md.append(f"| {','.join(t) or '(none)'}{' (AIC best)' if i == best else ''} | "
                      f"{','.join(r['terms']) or '-'} | {r['k']} | {r['aic']:.1f} | "
                      f"{r['fit_rms']:.3f} | {h['mae']:.3f} | {h['spearman']:.3f} | "
                      f"{a['spearman']:.3f} | {a['mae']:.3f} |")
        hb, ab = rs[0]["held_blind"], rs[0]["allocations_blind"]
        md += [f"| defense-blind | - | | | | {hb['mae']:.3f} | {hb['spearman']:.3f} | "
               f"{ab['spearman']:.3f} | {ab['mae']:.3f} |", ""]
    return "\n".join(md)


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--terms", default="run",
                    help="interaction terms allowed, comma list; 'auto': chosen by AIC; "
                         "default: those the run's saved model kept (AIC without one)")
    ap.add_argument("--power", type=float, default=1.5)
    ap.add_argument("--extra", action="append", default=[],
                    help="a directory with more calibration conditions of the same seed "
                         "(its conditions.csv); repeat for several; applies to every run")
    ap.add_argument("--skip", action="append", default=[],
                    help="the label of an --extra condition to leave out; repeat for several")
    ap.add_argument("--cap", choices=("run", "open", "closed"), default="run",
                    help="the token cap's semantics: as the run fitted it (default); open: no "
                         "cap at b_text = 0, caps in whole tokens; closed: the earlier "
                         "continuous cap, held even at b_text = 0")
    ap.add_argument("--diagnose", action="store_true",
                    help="also print each row and held-out condition, measured vs predicted")
    ap.add_argument("--compare", default=None, metavar="T,T;T,T,...",
                    help="semicolon-separated sets of terms: fit each on every run and print "
                         "one Markdown table per run (AIC beside the held-out and allocation "
                         "scores)")
    args = ap.parse_args(argv)
    if args.compare is not None:
        choices = [tuple(t for t in c.split(",") if t) for c in args.compare.split(";")]
        print(compare_terms(args.runs, choices, power=args.power, extra=args.extra,
                            skip=args.skip, cap=args.cap))
        return
    terms = (None if args.terms in ("run", "auto")
             else tuple(t for t in args.terms.split(",") if t))
    for run in args.runs:
        r = rescore(run, power=args.power,
                    terms=run_terms(run) if args.terms == "run" else terms, extra=args.extra,
                    skip=args.skip, cap=args.cap)
        h, hb, a = r["held"], r["held_blind"], r["allocations"]
        print(f"{run}: terms {r['terms']}, fit RMS {r['fit_rms']:.3f}; held-out MAE "
              f"{h['mae']:.3f} (blind {hb['mae']:.3f}), Spearman {h['spearman']:.3f} "
              f"(blind {hb['spearman']:.3f}); allocations n={a['n']} Spearman "
              f"{a['spearman']:.3f} (ceiling {r['allocation_ceiling']:.3f}), MAE {a['mae']:.3f} "
              f"(blind MAE {r['allocations_blind']['mae']:.3f})" if a["n"] else
              f"{run}: terms {r['terms']}, fit RMS {r['fit_rms']:.3f}; held-out MAE "
              f"{h['mae']:.3f} (blind {hb['mae']:.3f}), Spearman {h['spearman']:.3f} "
              f"(blind {hb['spearman']:.3f}); no allocations measured")
        worst = sorted(r["held_residuals"].items(), key=lambda kv: -abs(kv[1]))[:4]
        print("   largest held-out residuals (predicted - measured): " + ", ".join(
            f"{k} {v:+.3f}" for k, v in worst if math.isfinite(v)))
        if args.diagnose:
            print(diagnosis(r))


if __name__ == "__main__":
    main()
