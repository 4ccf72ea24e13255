"""Markdown + CSV + PNG report of a validation run."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402


def _f(x, nd=3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def conditions_frame(conds) -> pd.DataFrame:
    rows = []
    for c in conds:
        rows.append({"label": c.label, "kind": c.kind, "split": c.split,
                     "P_image": c.a.get("image", 0.0), "P_text": c.a.get("text", 0.0),
                     "k": c.extra.get("k"), **c.levers, "bits": c.bits, "lo": c.lo,
                     "hi": c.hi, "predicted": c.extra.get("predicted"),
                     "success_or_acc": c.extra.get("success"), "defence": c.extra.get("defence")})
    return pd.DataFrame(rows)


def _scatter(df: pd.DataFrame, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for split, mk in (("calib", "o"), ("held", "^")):
        s = df[(df.split == split) & (df.kind == "adv")]
        yerr = [(s.bits - s.lo).clip(lower=0), (s.hi - s.bits).clip(lower=0)]
        ax.errorbar(s.predicted, s.bits, yerr=yerr, fmt=mk, ms=4,
                    alpha=0.8, label=f"{split} ({len(s)})")
    lim = [-0.1, 3.45]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set(xlim=lim, ylim=lim, xlabel="predicted adversarial bits / query",
           ylabel="measured I(T; Y_hat), bits / query",
           title="calibrated channel vs real attacks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _protection(res: dict[str, Any], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for key, mk in (("noise", "o-"), ("bandwidth", "s-")):
        a = res["asymmetry"].get(key)
        if not a or not a["rows"]:
            continue
        r = pd.DataFrame(a["rows"])
        ax.plot(r.P, r.R_measured, mk, label=f"{key} ({a['defence']}), measured")
        ax.plot(r.P, r.R_predicted_raw, mk[0] + ":", alpha=0.6,
                label=f"{key}, calibrated channel")
    ax.set_xscale("log")
    ps = sorted({r["P"] for a in res["asymmetry"].values() for r in a["rows"]})
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.set_xticks(ps, [f"{p:g}" for p in ps], fontsize=7)
    ax.set(xlabel="attacker power P (squared L2 budget)", ylabel="relative protection R(P)",
           title="asymmetry: protection vs attacker power")
    ax.axhline(0, color="k", lw=0.5)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(res: dict[str, Any], cfg, out: Path) -> None:
    df = conditions_frame(res["conditions"])
    df.to_csv(out / "conditions.csv", index=False)
    pd.DataFrame(res["checks"]).to_csv(out / "checks.csv", index=False)
    alloc = res.get("allocation")
    if alloc:
        pd.DataFrame([{k: v for k, v in r.items() if k not in ("splits", "levers",
                                                               "predicted_attack",
                                                               "best_split")}
                      for r in alloc["rows"]]).to_csv(out / "allocation.csv", index=False)
    _scatter(df, out / "predicted_vs_measured.png")
    _protection(res, out / "protection_vs_power.png")
    summary = {k: v for k, v in res.items() if k not in ("conditions",)}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))

    L = res["legit_capacity"]
    md = [f"# minimax.validate report ({cfg.name})", "",
          f"Wall time: {res['wall_s']:.0f} s. Model: MiniLM-L6 text tower (real, frozen) + "
          "MLP image tower trained contrastively on sklearn digits.", "",
          "## Clean model",
          f"- zero-shot accuracy (calibration images): {res['clean_accuracy']:.3f}",
          f"- legitimate capacity I(Y; Y_hat): {L['bits']:.3f} bits "
          f"[{L['lo']:.3f}, {L['hi']:.3f}] (95% bootstrap, Miller-Madow; max 3.322)", "",
          "## Measured conditions (bits per query, 95% CI)", "",
          "| split | condition | measured | CI | predicted | success / acc |",
          "|---|---|---|---|---|---|"]
    for _, r in df.iterrows():
        md.append(f"| {r.split} | {r.label} | {r.bits:.3f} | [{r.lo:.3f}, {r.hi:.3f}] | "
                  f"{_f(r.predicted)} | {_f(r.success_or_acc)} |")
    h = res["heldout"]
    md += ["", "## Calibration and held-out prediction", "",
           "Saturation: measured bits = I_max (1 - exp(-(C/I_max)^q)) of the summed raw channel "
           f"capacity C, fitted shape q = {res['params']['image']['link_q']:.3f} "
           "(see `minimax.validate.calibrate`).", "",
           "| channel | " + " | ".join(["B", "S", "N", "alpha", "beta", "gamma", "rho"])
           + " | fit RMS (bits) |", "|---" * 9 + "|"]
    for ch, p in res["params"].items():
        md.append(f"| {ch} | " + " | ".join(_f(p[k], 4) for k in
                                             ("B", "S", "N", "alpha", "beta", "gamma", "rho"))
                  + f" | {res['fit_rms_bits'][ch]:.3f} |")
    md += ["", f"Held-out conditions: n = {h['n']}, Spearman rho = {_f(h['spearman'])}, "
           f"MAE = {_f(h['mae_bits'])} bits.", "", "![scatter](predicted_vs_measured.png)", ""]
    md += ["## Attack checklist (gradient-masking signs)", "",
           "| defence | P | bits | bits (more steps + restarts) | delta | unbounded success | "
           "transfer bits | Linf bits | signs |", "|---" * 9 + "|"]
    for c in res["checks"]:
        md.append(f"| {c['defence']} | {c['power']:g} | {c['bits']:.3f} | "
                  f"{c['bits_more_steps_restarts']:.3f} | {c['delta_bits']:+.3f} | "
                  f"{_f(c.get('success_unbounded'))} | {_f(c.get('bits_transfer'))} | "
                  f"{_f(c.get('bits_linf_same_l2_envelope'))} | {c['masking_signs'] or 'none'} |")
    if alloc:
        s = alloc["solution"]
        md += ["", "## Allocation check", "",
               f"Game (calibrated): value {s['value']:.3f} raw bits, gap {s['gap']:.2e}; "
               f"levers {json.dumps({k: round(v, 3) for k, v in s['levers'].items()})}.", "",
               "| allocation | realised defence | predicted bits | measured worst-split bits | "
               "CI | worst split | clean acc |", "|---" * 7 + "|"]
        for r in sorted(alloc["rows"], key=lambda r: r["measured_bits"]):
            b = r["best_split"] or {}
            md.append(f"| {r['allocation']} | `{r['realised']}` | {r['predicted_bits']:.3f} | "
                      f"{r['measured_bits']:.3f} | [{r['measured_lo']:.3f}, "
                      f"{r['measured_hi']:.3f}] | f_img={b.get('f_image')}, k={b.get('k')} | "
                      f"{r['clean_accuracy']:.3f} |")
        md += ["", f"Game's allocation ranks {alloc['game_rank']} of {alloc['n']} "
               f"(best: {alloc['best']}; game - best = {alloc['game_minus_best_bits']:+.3f} bits;"
               f" CIs overlap: {alloc['game_ci_overlaps_best']})."]
    md += ["", "## Asymmetry", "", "![protection](protection_vs_power.png)", ""]
    for key, a in res["asymmetry"].items():
        md.append(f"- {key} ({a['defence']}): " + ", ".join(
            f"P={r['P']:g}: R={_f(r['R_measured'], 2)} (pred {_f(r['R_predicted_raw'], 2)})"
            for r in a["rows"]))
    if res["errors"]:
        md += ["", "## Failed points", ""] + [f"- {e['label']}: {e['error']}"
                                              for e in res["errors"]]
    (out / "report.md").write_text("\n".join(md) + "\n")
