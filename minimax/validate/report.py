"""Markdown + CSV + PNG report of a validation run (one seed, and the seeds' summary)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _save(fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _f(x, nd=3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{nd}f}" if isinstance(x, float | np.floating) else str(x)


def _ci(v, nd=3) -> str:
    return f"{_f(v[0], nd)} [{_f(v[1], nd)}, {_f(v[2], nd)}]" if v else "n/a"


def conditions_frame(conds) -> pd.DataFrame:
    rows = []
    for c in conds:
        rows.append({"label": c.label, "kind": c.kind, "split": c.split,
                     **{f"P_{k}": v for k, v in c.a.items()}, **c.levers, "bits": c.bits,
                     "lo": c.lo, "hi": c.hi, "predicted": c.extra.get("predicted"),
                     "predicted_blind": c.extra.get("predicted_blind"),
                     "knobs": c.extra.get("knobs")})
    return pd.DataFrame(rows)


def allocation_frame(res: dict[str, Any]) -> pd.DataFrame:
    """One row per defense of the empirical game, the validated mixture first."""
    g = res.get("game")
    if not g:
        return pd.DataFrame()
    pred = {a["allocation"]: a for a in (res.get("decision") or {}).get("allocations", [])}
    rows = [{"allocation": "validated defense", "measured_bits": g["value"],
             "measured_lo": g["value_lo"], "measured_hi": g["value_hi"], "regret": 0.0,
             "regret_lo": 0.0, "regret_hi": 0.0, "weight": 1.0,
             "realised": json.dumps({k: round(v, 3) for k, v in g["defense"].items()}),
             "origin": "double oracle"}]
    scores = {s["name"]: s for s in g["scores"]}
    for r in g["rows"]:
        s = scores[r["name"]]
        p = pred.get(r["name"], {})
        rows.append({"allocation": r["name"], "measured_bits": s["worst"],
                     "measured_lo": s["worst_lo"], "measured_hi": s["worst_hi"],
                     "regret": s["regret"], "regret_lo": s["regret_lo"],
                     "regret_hi": s["regret_hi"], "worst_column": s["worst_column"],
                     "predicted_bits": p.get("predicted"),
                     "predicted_recalibrated": p.get("predicted_recalibrated"),
                     "legit_bits": r["legit_bits"], "weight": r["weight"],
                     "in_game": r["in_game"], "origin": r["origin"], "realised": r["knobs"],
                     "levers": json.dumps({k: round(v, 4) for k, v in r["levers"].items()})})
    head, rest = rows[:1], sorted(rows[1:], key=lambda r: r["measured_bits"])
    return pd.DataFrame(head + rest)


# ---------------------------------------------------------------- figures


def _scatter(df: pd.DataFrame, path: Path, imax: float) -> None:
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    for (split, kind), mk in ((("calib", "adv"), "o"), (("held", "adv"), "^"),
                              (("calib", "leg"), "s"), (("held", "leg"), "D")):
        s = df[(df.split == split) & (df.kind == kind)]
        if s.empty or s.predicted.isna().all():
            continue
        yerr = [(s.bits - s.lo).clip(lower=0), (s.hi - s.bits).clip(lower=0)]
        ax.errorbar(s.predicted, s.bits, yerr=yerr, fmt=mk, ms=4, alpha=0.8,
                    label=f"{split} {'attacked' if kind == 'adv' else 'clean'} ({len(s)})")
    lim = [-0.1, imax + 0.1]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set(xlim=lim, ylim=lim, xlabel="predicted bits / query", ylabel="measured bits / query",
           title="channel model vs measured conditions")
    ax.legend(fontsize=7)
    _save(fig, path)


def _table_fig(g: dict, path: Path) -> None:
    t = np.asarray(g["table"])
    x = np.array([r["weight"] for r in g["rows"]])
    y = np.array([c["weight"] for c in g["columns"]])
    fig = plt.figure(figsize=(min(3 + 0.22 * t.shape[1], 18), 2 + 0.32 * t.shape[0]))
    gs = fig.add_gridspec(2, 2, width_ratios=[t.shape[1], 3], height_ratios=[2, t.shape[0]],
                          wspace=0.05, hspace=0.05)
    ax = fig.add_subplot(gs[1, 0])
    im = ax.imshow(t, aspect="auto", cmap="viridis", vmin=0)
    ax.set_yticks(range(t.shape[0]), [r["name"] for r in g["rows"]], fontsize=7)
    ax.set_xticks(range(t.shape[1]), [str(j) for j in range(t.shape[1])], fontsize=5)
    ax.set_xlabel("attacker column (see game_table.csv)")
    fig.colorbar(im, ax=ax, fraction=0.03, label="bits / query")
    axr = fig.add_subplot(gs[1, 1], sharey=ax)
    axr.barh(range(len(x)), x, color="C3")
    axr.set_xlabel("defender x")
    axr.tick_params(labelleft=False)
    axt = fig.add_subplot(gs[0, 0], sharex=ax)
    axt.bar(range(len(y)), y, color="C1")
    axt.set_ylabel("attacker y")
    axt.tick_params(labelbottom=False)
    axt.set_title(f"empirical game: value {g['value']:.3f} bits [{g['value_lo']:.3f}, "
                  f"{g['value_hi']:.3f}]")
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


def _trace_fig(g: dict, path: Path) -> None:
    tr = pd.DataFrame(g["trace"])
    fig, ax = plt.subplots(figsize=(5, 3.5))
    if not tr.empty:
        ax.errorbar(tr.iteration, tr.exploitability,
                    yerr=[(tr.exploitability - tr.expl_lo).clip(lower=0),
                          (tr.expl_hi - tr.exploitability).clip(lower=0)],
                    fmt="o-", label="exploitability (paired 95% CI)")
        ax.plot(tr.iteration, tr.gain_attacker, "s:", label="attacker oracle gain")
        ax.plot(tr.iteration, tr.gain_defender, "^:", label="defender oracle gain")
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="double-oracle iteration", ylabel="bits / query",
           title=f"double oracle ({g['status']})")
    ax.legend(fontsize=7)
    _save(fig, path)


def _convergence_fig(traces: list[dict], path: Path, limit: int = 30) -> None:
    """One panel per trace kind (e.g. image margin, text loss): objective vs attack step."""
    keys = sorted({k for t in traces for k, v in (t.get("trace") or {}).items()
                   if len(list(v)) >= 2})
    fig, axes = plt.subplots(1, max(len(keys), 1), figsize=(5 * max(len(keys), 1), 3.8),
                             squeeze=False)
    for ax, key in zip(axes[0], keys or ["none"], strict=True):
        shown = 0
        for t in traces:
            v = list((t.get("trace") or {}).get(key, []))
            if len(v) < 2 or shown >= limit:
                continue
            ax.plot(np.arange(1, len(v) + 1), v, lw=0.8, alpha=0.7,
                    label=t["label"][:38] if shown < 8 else None)
            shown += 1
        ax.set(xlabel="attack step", ylabel=key, title=f"{key}: {shown} attacks")
        if shown:
            ax.legend(fontsize=5)
    _save(fig, path)


def _decision_fig(dec: dict, path: Path) -> None:
    a = pd.DataFrame(dec["allocations"])
    fig, ax = plt.subplots(figsize=(4.8, 4.5))
    for col, mk, lab in (("predicted", "o", "one-shot"), ("predicted_recalibrated", "^",
                                                          "recalibrated (held out)"),
                         ("predicted_blind_recalibrated", "x", "defense-blind")):
        ax.plot(a[col], a.measured, mk, label=lab)
    lo = float(np.nanmin(a[["measured", "predicted", "predicted_recalibrated"]].values)) - 0.1
    hi = float(np.nanmax(a[["measured", "predicted", "predicted_recalibrated"]].values)) + 0.1
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    ax.set(xlabel="predicted worst-case bits", ylabel="measured worst-case bits",
           title="decision level: budget-matched allocations")
    ax.legend(fontsize=7)
    _save(fig, path)


# ---------------------------------------------------------------- writers


def write_report(res: dict[str, Any], cfg, out: Path) -> None:
    out = Path(out)
    df = conditions_frame(res.get("conditions", []))
    df.to_csv(out / "conditions.csv", index=False)
    alloc = allocation_frame(res)
    alloc.to_csv(out / "allocation.csv", index=False)
    pd.DataFrame(res.get("checks", [])).to_csv(out / "checks.csv", index=False)
    imax = float((res.get("model") or {}).get("imax", 3.3219))
    if not df.empty and "predicted" in df:
        _scatter(df, out / "predicted_vs_measured.png", imax)
    g = res.get("game")
    if g:
        _table_fig(g, out / "game_table.png")
        _trace_fig(g, out / "exploitability.png")
        pd.DataFrame(g["trace"]).to_csv(out / "trace.csv", index=False)
        cols = [c["label"] for c in g["columns"]]
        tab = pd.DataFrame(g["table"], index=[r["name"] for r in g["rows"]], columns=cols)
        tab.index.name = "defense"
        tab.to_csv(out / "game_table.csv")
    _convergence_fig(res.get("traces", []), out / "convergence.png")
    if res.get("decision"):
        _decision_fig(res["decision"], out / "decision.png")
    summary = {k: v for k, v in res.items() if k not in ("conditions", "traces")}
    (out / "summary.json").write_text(json.dumps(summary, indent=1, default=str))
    (out / "report.md").write_text(_markdown(res, cfg, df, alloc))


def _markdown(res, cfg, df, alloc) -> str:
    name = cfg.get("name", "validate") if hasattr(cfg, "get") else "validate"
    md = [f"# minimax.validate report ({name}, target {res.get('target')}, seed {res['seed']})",
          "", f"Status: **{res['status']}**. Wall time: {res.get('wall_s', float('nan')):.0f} s.",
          ""]
    goal = res.get("goal")
    if goal:
        md += ["## The decision, measured", "",
               f"- validated defense (double oracle): `{json.dumps(goal['validated_defense'])}`,"
               f" worst case {_f(goal['validated_worst'])} bits "
               f"[{_f(goal['validated_lo'])}, {_f(goal['validated_hi'])}] "
               f"({goal['status']})",
               f"- no defense minus validated (paired): {_ci(goal['no_defense_minus_validated'])}"
               f" bits; beats no defense: **{goal['beats_no_defense']}**",
               f"- engine prescription's regret (paired): {_ci(goal['engine_regret'])} bits; "
               f"best within CI: **{goal['engine_best_within_ci']}**",
               f"- engine prescription minus the best pure row (paired): "
               f"{_ci(goal.get('engine_minus_best_pure'))} bits; rank "
               f"{goal.get('engine_rank_among_pure')} of {goal.get('n_pure_rows')} pure rows",
               f"- best pure row: {goal['best_pure_row']} ({_f(goal['best_pure_worst'])} bits);"
               f" no row significantly better than the validated defense: "
               f"{goal['no_row_significantly_better']}", ""]
    if not alloc.empty:
        md += ["## Allocations (worst case over every attacker column, bits per query)", "",
               *_alloc_md(alloc), "", "![game](game_table.png)", "",
               "![trace](exploitability.png)", ""]
    g = res.get("game")
    if g:
        md += ["## Double-oracle trace", "", *_trace_md(g), ""]
    dec, ho = res.get("decision"), res.get("heldout")
    if ho:
        m, b = ho["model"], ho["blind"]
        md += ["## Prediction", "",
               f"Channel model: terms {res['model']['terms']}, caps {res['model']['caps']}, "
               f"kappa {res['model']['kappa']:.3f}, cross {json.dumps(res['model']['cross'])}, "
               f"fit RMS {res['model']['rms']:.3f} bits on {res['model']['n_fit']} conditions.",
               "", "| score | model | defense-blind baseline |", "|---|---|---|",
               f"| held-out conditions (n={m['n']}, clean and joint included): Spearman | "
               f"{_f(m['spearman'])} | {_f(b['spearman'])} |",
               f"| held-out MAE (bits) | {_f(m['mae'])} | {_f(b['mae'])} |"]
        if dec:
            for key, lab in (("decision", "one-shot"), ("recalibrated",
                                                        "recalibrated, leave-one-row-out")):
                s, sb = dec[key], dec["blind_" + key]
                md.append(f"| allocations (n={s['n']}), {lab}: Spearman | {_f(s['spearman'])} |"
                          f" {_f(sb['spearman'])} |")
                md.append(f"| allocations, {lab}: MAE (bits) | {_f(s['mae'])} | "
                          f"{_f(sb['mae'])} |")
            md.append(f"| allocations: Spearman a perfect model could expect, given the "
                      f"measured worst cases' CIs | {_f(allocation_ceiling(res))} | |")
        md += ["", "![scatter](predicted_vs_measured.png)", ""]
        if dec:
            md += ["![decision](decision.png)", ""]
    if res.get("checks"):
        md += ["## Attack-strength checks (stronger options vs defaults, paired)", "",
               "| check | options | bits | bits (stronger) | delta (CI) | converged |",
               "|---|---|---|---|---|---|"]
        for c in res["checks"]:
            md.append(f"| {c['check']} | `{json.dumps(c['options'])}` | {c['bits']:.3f} | "
                      f"{c['bits_stronger']:.3f} | {c['delta']:+.3f} [{c['delta_lo']:+.3f}, "
                      f"{c['delta_hi']:+.3f}] | {c['converged']} |")
        md.append("")
    md += ["![convergence](convergence.png)", ""]
    if not df.empty:
        md += ["## Measured conditions (bits per query, 95% CI)", "",
               "| split | condition | measured | CI | predicted | defense-blind |",
               "|---|---|---|---|---|---|"]
        for _, r in df.iterrows():
            md.append(f"| {r.split} | {r.label} | {r.bits:.3f} | [{r.lo:.3f}, {r.hi:.3f}] | "
                      f"{_f(r.predicted)} | {_f(r.predicted_blind)} |")
    if res["errors"]:
        md += ["", "## Failed points", ""] + [f"- {e['label']}: {e['error']}"
                                              for e in res["errors"]]
    return "\n".join(md) + "\n"


def _alloc_md(alloc: pd.DataFrame) -> list[str]:
    """The allocation table (:func:`allocation_frame`) as markdown rows."""
    md = ["| allocation | measured | CI | regret vs validated (paired CI) | predicted "
          "(one-shot) | predicted (recalibrated) | legit bits | weight |",
          "|---|---|---|---|---|---|---|---|"]
    for _, r in alloc.iterrows():
        cells = [r.allocation, f"{r.measured_bits:.3f}",
                 f"[{r.measured_lo:.3f}, {r.measured_hi:.3f}]",
                 _pm(r.regret, r.regret_lo, r.regret_hi), _f(r.get("predicted_bits")),
                 _f(r.get("predicted_recalibrated")), _f(r.get("legit_bits")), _f(r.weight)]
        md.append("| " + " | ".join(cells) + " |")
    return md


def _pm(v: float, lo: float, hi: float, fmt: str = "+.3f") -> str:
    """``v [lo, hi]`` with one format."""
    return f"{v:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"


def _trace_md(g: dict) -> list[str]:
    """The double oracle's trace as markdown rows."""
    md = ["| it | rows | cols | value | attacker gain (CI) | defender gain (CI) | "
          "exploitability (CI) |", "|---|---|---|---|---|---|---|"]
    for t in g["trace"]:
        cells = [t["iteration"], t["n_rows"], t["n_cols"], f"{t['value']:.3f}",
                 _pm(t["gain_attacker"], t["gain_att_lo"], t["gain_att_hi"]),
                 _pm(t["gain_defender"], t["gain_def_lo"], t["gain_def_hi"]),
                 _pm(t["exploitability"], t["expl_lo"], t["expl_hi"], ".3f")]
        md.append("| " + " | ".join(map(str, cells)) + " |")
    return md


def seed_section(r: dict) -> list[str]:
    """One seed's game in markdown: its equilibrium (the validated mixture), the no-defense
    row, every row's measured worst case beside the one-shot prediction, and the trace."""
    g = r.get("game")
    if not g or not g.get("rows"):
        return [f"## Seed {r['seed']}", "", "No empirical game in this run.", ""]
    md = [f"## Seed {r['seed']}", "", "Equilibrium (the validated defense, the restricted "
          f"game's LP): value {_f(g['value'])} [{_f(g['value_lo'])}, {_f(g['value_hi'])}] "
          f"bits, {g['status']}; rows and weights:", ""]
    md += [f"- {name}: {w:.3f}" for name, w in sorted(g["defense"].items(),
                                                        key=lambda kv: -kv[1])]
    none = next((s for s in g.get("scores", []) if s["name"] == "no defense"), None)
    if none:
        md += ["", f"No defense: worst case {_f(none['worst'])} [{_f(none['worst_lo'])}, "
               f"{_f(none['worst_hi'])}] bits, regret vs validated {none['regret']:+.3f} "
               f"[{none['regret_lo']:+.3f}, {none['regret_hi']:+.3f}] (paired)."]
    md += ["", "Game table (each row's worst case over the attacker columns measured):", "",
           *_alloc_md(allocation_frame(r)), "", "Double-oracle trace:", "", *_trace_md(g), ""]
    return md


def _ci3(v) -> list:
    return list(v) if v else [None] * 3


def _last_exploitability(r: dict) -> dict[str, Any]:
    """The double oracle's last measured exploitability of the defender's mixture, with CI."""
    trace = (r.get("game") or {}).get("trace") or [{}]
    return {k: trace[-1].get(k) for k in ("exploitability", "expl_lo", "expl_hi")}


def allocation_ceiling(r: dict) -> float | None:
    """The rank correlation a perfect model could expect on this run's budget-matched rows
    (:func:`~minimax.validate.calibrate.rank_ceiling` of their measured worst cases and CIs);
    None where the run has no allocations or no game."""
    from minimax.validate.calibrate import rank_ceiling

    allocs = ((r.get("decision") or {}).get("allocations")) or []
    scores = {s["name"]: s for s in (r.get("game") or {}).get("scores", [])}
    if len(allocs) < 2 or any(a["allocation"] not in scores for a in allocs):
        return None
    rows = [scores[a["allocation"]] for a in allocs]
    return rank_ceiling([s["worst"] for s in rows], [s["worst_lo"] for s in rows],
                        [s["worst_hi"] for s in rows])


def seed_row(r: dict) -> dict[str, Any]:
    """One seed's headline numbers (a run's ``summary.json`` or ``run_seed`` result)."""
    g, d = r.get("goal") or {}, r.get("decision") or {}
    ho = r.get("heldout") or {}
    eng, none = _ci3(g.get("engine_regret")), _ci3(g.get("no_defense_minus_validated"))
    nd = next((s for s in (r.get("game") or {}).get("scores", []) if s["name"] == "no defense"),
              {})
    row = {
        "seed": r["seed"], "status": r.get("status"),
        "validated_defense": json.dumps(g.get("validated_defense")),
        "validated_worst": g.get("validated_worst"), "validated_lo": g.get("validated_lo"),
        "validated_hi": g.get("validated_hi"),
        "game_status": g.get("status"), **_last_exploitability(r),
        "no_defense_worst": nd.get("worst"), "no_defense_worst_lo": nd.get("worst_lo"),
        "no_defense_worst_hi": nd.get("worst_hi"),
        "engine_regret": eng[0], "engine_regret_lo": eng[1], "engine_regret_hi": eng[2],
        "engine_minus_best_pure": (g.get("engine_minus_best_pure") or [None])[0],
        "engine_rank_among_pure": g.get("engine_rank_among_pure"),
        "n_pure_rows": g.get("n_pure_rows"),
        "no_defense_minus_validated": none[0], "no_defense_lo": none[1],
        "no_defense_hi": none[2], "beats_no_defense": g.get("beats_no_defense"),
        "rank_corr_one_shot": (d.get("decision") or {}).get("spearman"),
        "rank_corr_ceiling": allocation_ceiling(r),
        "rank_corr_blind_one_shot": (d.get("blind_decision") or {}).get("spearman"),
        "alloc_mae": (d.get("decision") or {}).get("mae"),
        "alloc_mae_blind": (d.get("blind_decision") or {}).get("mae"),
        "rank_corr_recalibrated": (d.get("recalibrated") or {}).get("spearman"),
        "rank_corr_blind": (d.get("blind_recalibrated") or {}).get("spearman"),
        "heldout_mae": (ho.get("model") or {}).get("mae"),
        "heldout_mae_blind": (ho.get("blind") or {}).get("mae"),
        "heldout_spearman": (ho.get("model") or {}).get("spearman"),
        "heldout_spearman_blind": (ho.get("blind") or {}).get("spearman"),
        "wall_s": r.get("wall_s")}
    for c in r.get("checks") or []:
        row[f"check: {c['check']}"] = (f"{c['delta']:+.3f} [{c['delta_lo']:+.3f}, "
                                       f"{c['delta_hi']:+.3f}]")
    return row


def _headline(df: pd.DataFrame) -> list[str]:
    """Metrics as rows, seeds as columns, with the mean (sd) of the numeric ones."""
    seeds = [f"seed {s}" for s in df.seed]
    md = ["| | " + " | ".join(seeds) + " | mean (sd) |", "|---" * (len(seeds) + 2) + "|"]

    def ci(a, lo, hi):
        return [f"{_f(x)} [{_f(y)}, {_f(z)}]" for x, y, z in zip(df[a], df[lo], df[hi],
                                                                 strict=True)]

    def mean(col):
        v = pd.to_numeric(df[col], errors="coerce").dropna()
        return f"{v.mean():.3f} ({v.std(ddof=1):.3f})" if len(v) > 1 else ""

    items = [("validated defense, worst case (bits, CI)",
              ci("validated_worst", "validated_lo", "validated_hi"), mean("validated_worst")),
             ("double oracle: status", [str(v) for v in df.game_status], ""),
             ("double oracle: last exploitability of the mixture (bits, CI)",
              ci("exploitability", "expl_lo", "expl_hi"), ""),
             ("no defense: worst case (bits, CI)",
              ci("no_defense_worst", "no_defense_worst_lo", "no_defense_worst_hi"),
              mean("no_defense_worst")),
             ("no defense minus validated (paired CI)",
              ci("no_defense_minus_validated", "no_defense_lo", "no_defense_hi"),
              mean("no_defense_minus_validated")),
             ("engine one-shot prescription: regret vs validated (paired CI)",
              ci("engine_regret", "engine_regret_lo", "engine_regret_hi"), mean("engine_regret")),
             ("engine prescription's rank among pure rows",
              [f"{_f(a)} of {_f(b)}" for a, b in zip(df.engine_rank_among_pure, df.n_pure_rows,
                                                     strict=True)], "")]
    for col, name in (("rank_corr_one_shot", "allocations: Spearman, one shot (target >= 0.8)"),
                      ("rank_corr_ceiling", "allocations: Spearman a perfect model could expect "
                       "(measurement noise)"),
                      ("rank_corr_blind_one_shot", "allocations: Spearman, defense-blind "
                       "baseline (n/a: one number for every row)"),
                      ("alloc_mae", "allocations: MAE of the one-shot model (bits)"),
                      ("alloc_mae_blind", "allocations: MAE of the defense-blind baseline (bits)"),
                      ("rank_corr_recalibrated", "allocations: Spearman, recalibrated"),
                      ("heldout_mae", "held-out MAE, model (bits; target <= 0.15)"),
                      ("heldout_mae_blind", "held-out MAE, defense-blind baseline (bits)"),
                      ("heldout_spearman", "held-out Spearman, model"),
                      ("heldout_spearman_blind", "held-out Spearman, defense-blind baseline"),
                      ("wall_s", "wall time (s)")):
        items.append((name, [_f(v) for v in df[col]], mean(col)))
    for col in [c for c in df.columns if c.startswith("check: ")]:
        items.append((col[7:] + " (delta bits, paired CI)", [str(v) for v in df[col]], ""))
    md += [f"| {name} | " + " | ".join(vals) + f" | {m} |" for name, vals, m in items]
    return md


def write_seeds(results: list[dict], out: Path) -> None:
    """``seeds.csv`` and ``seeds.md``: every seed's headline numbers side by side."""
    df = pd.DataFrame([seed_row(r) for r in results])
    df.to_csv(out / "seeds.csv", index=False)
    md = ["# Seeds (model and attack)", "", *_headline(df), ""]
    for r in results:
        md += seed_section(r)
    md += ["## Every column", "", "| " + " | ".join(df.columns) + " |",
           "|" + "---|" * len(df.columns)]
    md += ["| " + " | ".join(_f(v) for v in r) + " |" for r in df.itertuples(index=False)]
    (out / "seeds.md").write_text("\n".join(md) + "\n")


def main(argv: list[str] | None = None) -> None:
    """``python -m minimax.validate.report OUT RUN_DIR [RUN_DIR ...]``: ``seeds.md`` of
    separate runs (one seed each) from their ``summary.json``."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("out")
    ap.add_argument("runs", nargs="+")
    args = ap.parse_args(argv)
    res = [json.loads((Path(r) / "summary.json").read_text()) for r in args.runs]
    write_seeds(res, Path(args.out))


if __name__ == "__main__":
    main()
