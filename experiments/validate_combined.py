"""The combined system (digits dual encoder + agent memory) under one defender budget.

    PYTHONPATH=. python experiments/validate_combined.py [HYDRA OVERRIDES ...]
    PYTHONPATH=. python experiments/validate_combined.py --from DIR   # summarise a kept run
    PYTHONPATH=. python experiments/validate_combined.py --seeds DIR/seed0 DIR/seed1 ...

Runs the ``validate=combined`` preset (the pipeline of ``python -m minimax.validate``) into
``experiments/results/validate_combined/pipeline/`` and writes
``experiments/results/validate_combined/README.md``: how the engine's prescription splits
the one budget over the two subsystems, the empirical game's best allocation, and the
engine's allocation against it (paired bootstrap CIs on the same composite units), with every
menu row grouped by where its budget goes (none, vision only, agent only, split).  With
``--seeds`` it summarises kept runs of several seeds: one table of the engine against the
empirical game per seed, then each seed's page.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "validate_combined"


def run_preset(overrides: list[str]) -> Path:
    from hydra import compose, initialize_config_dir

    from minimax.validate.run import run

    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose(config_name="validate", overrides=["validate=combined", *overrides])
    out = OUT / "pipeline"
    t0 = time.perf_counter()
    run(cfg.validate, out)
    print(f"pipeline done in {time.perf_counter() - t0:.0f}s", flush=True)
    return out


def where(levers: dict[str, float]) -> str:
    """Which subsystems a row's budget goes to."""
    parts = sorted({k.split("_")[1] for k, v in levers.items() if v > 1e-9})
    return {0: "none", 1: f"{parts[0]} only" if parts else "none"}.get(len(parts), "split")


def share(levers: dict[str, float]) -> str:
    tot = sum(levers.values())
    if tot <= 1e-9:
        return "-"
    per: dict[str, float] = {}
    for k, v in levers.items():
        per[k.split("_")[1]] = per.get(k.split("_")[1], 0.0) + v
    return ", ".join(f"{p} {v / tot:.0%}" for p, v in sorted(per.items()))


def summarise(run_dir: Path, note: str = "") -> str:
    res = json.loads((run_dir / "summary.json").read_text())
    game, goal = res["game"], res["goal"]
    rows = {r["name"]: r for r in game["rows"]}
    pres = res.get("prescription") or {}
    lines = [
        "# The combined system: one budget over the digits dual encoder and the agent memory",
        "",
        f"`python -m minimax.validate validate=combined` (run dir `{run_dir.name}`), seed "
        f"{res['seed']}, status **{res['status']}**, wall {res['wall_s']:.0f} s on 2 shared "
        "CPU cores. Bits per query are the sum over the two flows (at most log2 10 + log2 6 "
        "= 5.91); CIs are 95% paired bootstraps over the 20 composite units (an image and a "
        "victim) of the held-out split. Full report: [pipeline/report.md](pipeline/report.md).",
        *([""] + [note] if note else []), "", "## Engine vs empirical game", ""]
    if pres:
        lv = {k: round(v, 3) for k, v in pres["levers"].items() if v > 1e-9}
        lines += [f"- engine prescription (calibrated channel game): `{lv}` "
                  f"({share(pres['levers'])} of the budget), predicted worst case "
                  f"{pres['predicted_bits']:.3f} bits, predicted best response "
                  f"`{ {k: round(v, 2) for k, v in pres['attack'].items()} }`"]
        if "engine prescription" in rows:
            lines.append(f"- realised as `{rows['engine prescription']['knobs']}`")
    lines += [
        f"- empirical game (double oracle, {game['status']}): validated defense "
        f"`{ {k: round(v, 3) for k, v in goal['validated_defense'].items()} }`, worst case "
        f"{goal['validated_worst']:.3f} [{goal['validated_lo']:.3f}, "
        f"{goal['validated_hi']:.3f}] bits",
        f"- best pure row: **{goal['best_pure_row']}** ({goal['best_pure_worst']:.3f} bits); "
        f"no defense minus validated: {_ci(goal['no_defense_minus_validated'])}"]
    if goal.get("engine_regret"):
        lines += [f"- engine's regret vs the validated defense (paired): "
                  f"{_ci(goal['engine_regret'])} bits; best within CI: "
                  f"**{goal['engine_best_within_ci']}**"]
    if goal.get("engine_minus_best_pure"):
        lines += [f"- engine minus the best pure row (paired): "
                  f"{_ci(goal['engine_minus_best_pure'])} bits; engine's rank among "
                  f"{goal['n_pure_rows']} pure rows: {goal['engine_rank_among_pure']}"]
    lines += ["", "## Every allocation (worst case over the attacker's columns)", "",
              "| allocation | budget goes to | share | worst bits [CI] | regret vs validated "
              "(paired CI) | legit bits |", "|---|---|---|---|---|---|"]
    for s in sorted(game["scores"], key=lambda s: s["worst"]):
        r = rows.get(s["name"])
        if r is None:
            continue
        lines.append(f"| {s['name']} | {where(r['levers'])} | {share(r['levers'])} | "
                     f"{s['worst']:.3f} [{s['worst_lo']:.3f}, {s['worst_hi']:.3f}] | "
                     f"{s['regret']:+.3f} [{s['regret_lo']:+.3f}, {s['regret_hi']:+.3f}] | "
                     f"{r['legit_bits']:.3f}{'' if r['in_game'] else ' (left out)'} |")
    lines += ["", "Attacker columns: " + "; ".join(
        f"{c['label']} (weight {c['weight']:.2f})" for c in game["columns"]), ""]
    ho = res.get("heldout") or {}
    if ho:
        lines += [f"Channel model on held-out conditions: Spearman "
                  f"{ho['model']['spearman']:.3f}, MAE {ho['model']['mae']:.3f} bits "
                  f"(defense-blind baseline: {ho['blind']['spearman']:.3f}, "
                  f"{ho['blind']['mae']:.3f}).", ""]
    if res["errors"]:
        lines += ["Errors: " + "; ".join(f"{e['label']}: {e['error']}" for e in res["errors"]),
                  ""]
    return "\n".join(lines)


def seeds_table(run_dirs: list[Path]) -> list[str]:
    """One row per seed: the engine's allocation, the empirical game's, and the paired
    regret of the engine against the validated defense."""
    lines = ["| seed | engine: budget to (predicted bits) | validated defense | validated worst "
             "[CI] | engine's regret (paired CI) | within CI | engine rank / pure rows | "
             "no defense minus validated | held-out MAE model / blind | wall s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for d in run_dirs:
        res = json.loads((d / "summary.json").read_text())
        g, pres = res["goal"], res.get("prescription") or {}
        ho = res.get("heldout") or {}
        lv = pres.get("levers", {})
        eng = (f"{where(lv)}, {share(lv)} ({pres['predicted_bits']:.3f})" if pres else "-")
        val = ", ".join(f"{k} {v:.2f}" for k, v in g["validated_defense"].items())
        mae = (f"{ho['model']['mae']:.3f} / {ho['blind']['mae']:.3f}" if ho else "-")
        reg = _ci(g["engine_regret"]) if g.get("engine_regret") else "-"
        lines.append(
            f"| {res['seed']} | {eng} | {val} | {g['validated_worst']:.3f} "
            f"[{g['validated_lo']:.3f}, {g['validated_hi']:.3f}] | {reg} | "
            f"{g.get('engine_best_within_ci')} | {g.get('engine_rank_among_pure')} / "
            f"{g.get('n_pure_rows')} | {_ci(g['no_defense_minus_validated'])} | {mae} | "
            f"{res['wall_s']:.0f} |")
    return lines


def summarise_seeds(run_dirs: list[Path], note: str = "") -> str:
    """README over seeds: :func:`seeds_table`, then each seed's :func:`summarise` page."""
    lines = ["# The combined system over seeds: one budget over the digits dual encoder and "
             "the agent memory", "",
             "`python -m minimax.validate validate=combined validate.seed=S` for S in "
             + ", ".join(json.loads((d / "summary.json").read_text())["seed"].__str__()
                         for d in run_dirs)
             + " (runs kept in " + ", ".join(f"[{d.name}]({d.parent.name}/{d.name}/report.md)"
                                             for d in run_dirs)
             + "); this page: `python experiments/validate_combined.py --seeds "
             + " ".join(f"experiments/results/validate_combined/{d.parent.name}/{d.name}"
                        for d in run_dirs) + "`. Bits per query are the sum over the two flows "
             "(at most log2 10 + log2 6 = 5.91); CIs are 95% paired bootstraps over the 20 "
             "composite units (an image and a victim) of the held-out split.",
             *([""] + [note] if note else []), "", "## Engine vs empirical game, per seed", "",
             *seeds_table(run_dirs), ""]
    for d in run_dirs:
        page = summarise(d).split("\n")
        body = [ln.replace("## ", "### ", 1) if ln.startswith("## ") else ln for ln in page[1:]]
        body = [ln.replace("(pipeline/report.md)", f"({d.parent.name}/{d.name}/report.md)")
                for ln in body]
        lines += [f"## Seed {json.loads((d / 'summary.json').read_text())['seed']}", *body]
    return "\n".join(lines)


def _ci(v) -> str:
    return f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--from", dest="src", type=Path, default=None,
                    help="summarise a kept run directory instead of running the preset")
    ap.add_argument("--note", default="", help="a line on how the run was timed")
    ap.add_argument("--seeds", type=Path, nargs="+", default=None, metavar="DIR",
                    help="summarise kept runs of several seeds (one table, then each seed)")
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    if args.seeds:
        OUT.mkdir(parents=True, exist_ok=True)
        (OUT / "README.md").write_text(summarise_seeds(args.seeds, args.note))
        print((OUT / "README.md").read_text())
        return
    import torch

    torch.set_num_threads(1)
    run_dir = args.src or run_preset(args.overrides)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "README.md").write_text(summarise(run_dir, args.note))
    print((OUT / "README.md").read_text())


if __name__ == "__main__":
    main()
