"""Ground catalogue lever amounts in measurements on the validation targets.

    PYTHONPATH=. python experiments/validate_dci_grounding.py

For a catalogued defense a target implements, the measured *retained fraction* of
adversarial bits ``r = I_def / I_none`` (mean over the measured powers where the undefended
attack carries between 0.2 bits and 80% of ``log2 K``: away from the floor and the
saturation) is turned into the lever amount for which the default game's matched channel
retains the same fraction of adversarial capacity at the reference power ``a_ref`` (the
default game's attacker budget):

* ``b``: ``exp(-gamma b) = r``, whatever the power;
* ``n``: ``log2(1 + a e^{-alpha n} / m) = r log2(1 + a / m)``, ``m = N + S``;
* ``s``: ``log2(1 + a / (N + (1 + beta s) S)) = r log2(1 + a / m)``;

(``r >= 1``: amount 0, no protection measured).  It prints the amounts (which
``conf/defense/*.yaml`` record with their provenance) and the DCI ranking with the
catalogue as assumed (git ``HEAD~`` of these files, or ``--before DIR``) and as grounded.
Writes ``experiments/results/validate_memory/dci_grounding.md``.  With
``--before-after [REV]`` it writes ``experiments/results/dci/grounding.md`` instead: every
defense's DCI and rank with the catalogue at git ``REV`` (all amounts assumed) and now.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "experiments" / "results" / "validate_memory"
A_REF = 10.0


def retained(pairs, imax):
    """Mean I_def / I_none over powers with 0.2 <= I_none <= 0.8 imax, and the pairs used."""
    use = [(p, a, b) for p, a, b in pairs if 0.2 <= a <= 0.8 * imax]
    if not use:
        return float("nan"), use
    return float(np.mean([min(b / a, 1.0) for _, a, b in use])), use


def digits_pairs(name):
    # the digits levers' amounts in the catalogue were grounded on the earlier preset's seed 0
    path = ROOT / "experiments/results/validate_quick/earlier/seed0/conditions.csv"
    rows = list(csv.DictReader(open(path)))
    by = {}
    for r in rows:
        if r["kind"] != "adv" or float(r["P_text"] or 0.0) > 0:
            continue
        lab = r["label"].split(" ", 2)
        by.setdefault(lab[2], {}).setdefault(float(r["P_image"] or 0.0), []).append(
            float(r["bits"]))
    none, d = by["none"], by[name]
    return [(p, float(np.mean(none[p])), float(np.mean(d[p]))) for p in sorted(set(none) & set(d))]


def measured_where(tg: str, meas: str, mem: dict) -> str:
    """Which target and runs a grounded amount comes from."""
    if tg == "digits":
        return ("digits (seed 0 of the earlier quick preset, "
                "experiments/results/validate_quick/earlier)")
    if meas == "untrusted cap 1 (b)":
        bw = json.loads((OUT / "bandwidth.json").read_text())
        return f"memory (seed {bw['seed']}, bandwidth.md)"
    return f"memory (seeds {', '.join(s.removeprefix('seed') for s in mem['seeds'])})"


def memory_pairs(res, name):
    """``(P, I_none, I_def)`` of a memory defense, each the mean over the pipeline's seeds
    (``results.json`` of ``experiments/validate_memory.py --seeds-from``) of the
    conditions measured at the same power on the same victims; the untrusted cap, which
    the pipeline's menu does not realise, from ``bandwidth.json`` (``--bandwidth``) at the
    preset's step count."""
    if name == "untrusted cap 1 (b)":
        bw = json.loads((OUT / "bandwidth.json").read_text())
        at = {(r["defense"], r["P"]): next(x["bits"] for x in r["rows"]
                                           if x["steps"] == bw["steps"])
              for r in bw["runs"].values()}
        return [(p, at["no defense", p], at[name, p]) for d, p in sorted(at)
                if d == name and ("no defense", p) in at]
    by: dict[float, list[tuple[float, float]]] = {}
    for s in res["seeds"].values():
        conds = [c for c in s["conditions"] if c["kind"] == "adv"]
        none = {(c["split"], c["P"]): c["bits"] for c in conds if c["defense"] == "none"}
        for c in conds:
            if c["defense"] == name and (c["split"], c["P"]) in none:
                by.setdefault(c["P"], []).append((none[c["split"], c["P"]], c["bits"]))
    return [(p, float(np.mean([a for a, _ in v])), float(np.mean([b for _, b in v])))
            for p, v in sorted(by.items())]


def invert(lever, r, ch, a=A_REF):
    if not math.isfinite(r) or r >= 1.0:
        return 0.0
    m = ch["N"] + ch["S"]
    target = r * math.log2(1 + a / m)
    if lever == "b":
        return -math.log(max(r, 1e-9)) / ch["gamma"]
    if lever == "n":
        f = (2 ** target - 1) * m / a
        return -math.log(max(f, 1e-12)) / ch["alpha"]
    if lever == "s":
        mp = a / (2 ** target - 1)
        return max(0.0, ((mp - ch["N"]) / ch["S"] - 1) / ch["beta"])
    raise ValueError(lever)


def main():
    import yaml

    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default=None, help="catalogue directory as assumed")
    args = ap.parse_args()
    game = yaml.safe_load(open(ROOT / "conf/game/mfm_default.yaml"))
    chans = {c["name"]: c for c in game["channels"]}
    mem = json.loads((OUT / "results.json").read_text())
    k_mem = mem["preset"]["n_classes"]
    # catalogue defense -> (target, measured defense, catalogued lever, channels grounded);
    # a channel the target does not have keeps its catalogued (assumed) amount.
    image = ("prediction/image", "agent_app/image", "multi_agent/image", "memory/image")
    plan = {
        "perplexity_filter": ("memory", "ppl", "n", math.log2(k_mem),
                              ("prediction/text",)),
        "memory_isolation": ("memory", "untrusted cap 1 (b)", "b", math.log2(k_mem),
                             ("memory/text", "memory/image")),
        "randomized_smoothing": ("digits", "noise", "n", math.log2(10), ("prediction/image",)),
        "adversarial_training_vision": ("digits", "signal", "n", math.log2(10), image),
    }
    out = {}
    for name, (tg, meas, lever, imax, grounded) in plan.items():
        pairs = memory_pairs(mem, meas) if tg == "memory" else digits_pairs(meas)
        r, used = retained(pairs, imax)
        spec = yaml.safe_load(open(ROOT / f"conf/defense/{name}.yaml"))
        amounts = {}
        for pattern, lv in spec["investments"].items():
            if lever in lv and pattern in chans and pattern in grounded:
                amounts[pattern] = round(invert(lever, r, chans[pattern]), 3)
        out[name] = {"target": measured_where(tg, meas, mem), "measured_defense": meas,
                     "lever": lever, "retained": r, "pairs": used, "amounts": amounts}
        print(name, json.dumps(out[name]))
    (OUT / "dci_grounding.json").write_text(json.dumps(out, indent=1))
    md = ["# Catalogue lever amounts grounded in measurements", "",
          f"Reference power a_ref = {A_REF:g} (the default game's attacker budget). "
          "Retained fraction r = mean I_def / I_none over the powers listed (undefended "
          "bits between 0.2 and 80% of log2 K).", "",
          "| defense | measured on | measured defense | lever | r | (P, I_none, I_def) | "
          "amounts on the default game |", "|---|---|---|---|---|---|---|"]
    for name, o in out.items():
        pr = "; ".join(f"({p:g}, {a:.2f}, {b:.2f})" for p, a, b in o["pairs"])
        am = ", ".join(f"{k}: {o['lever']}={v:g}" for k, v in o["amounts"].items())
        md.append(f"| {name} | {o['target']} | {o['measured_defense']} | {o['lever']} | "
                  f"{o['retained']:.3f} | {pr} | {am} |")
    md += ["", dci_tables(args.before)]
    (OUT / "dci_grounding.md").write_text("\n".join(md) + "\n")


def dci_tables(before: str | None) -> str:
    import subprocess
    import tempfile

    import yaml

    import minimax
    from minimax import analysis as an

    game = minimax.Game.from_dict(yaml.safe_load((ROOT / "conf/game/mfm_default.yaml")
                                                 .read_text()))
    tax = an.load_taxonomy(ROOT / "conf/taxonomy/mfm.yaml")
    powers = np.geomspace(1.0, 1e6, 13)
    lines = []
    with tempfile.TemporaryDirectory() as tmp:
        if before is None:
            before = tmp
            files = subprocess.run(["git", "ls-tree", "--name-only", "main", "conf/defense/"],
                                   cwd=ROOT, capture_output=True, text=True).stdout.split()
            for f in files:
                txt = subprocess.run(["git", "show", f"main:{f}"], cwd=ROOT,
                                     capture_output=True, text=True).stdout
                (Path(tmp) / Path(f).name).write_text(txt)
        for tag, cat_dir in (("of main", before), ("grounded now", ROOT / "conf/defense")):
            cat = an.load_catalogue(cat_dir)
            for equal in (False, True):
                r = an.dci(game, cat, tax, powers, equal_budget=equal)
                lines += [f"## DCI ranking, catalogue {tag}, "
                          f"{'equal budget' if equal else 'as catalogued'}", "",
                          "| rank | defense | category | provenance | DCI | cost |",
                          "|---|---|---|---|---|---|"]
                for row in r.table():
                    lines.append(f"| {row['rank']} | {row['defense']} | {row['category']} | "
                                 f"{row['provenance']} | {row['dci']:.4f} | {row['cost']:g} |")
                cc = r.category_curve()
                lines += ["", "Mean cover, lowest -> highest power: " + ", ".join(
                    f"{c} {v[0]:.3f} -> {v[-1]:.3f}" for c, v in cc.items()), ""]
    return "\n".join(lines)


ASSUMED_REV = "0b00144"  # the last commit whose catalogue had only assumed amounts
DCI_OUT = ROOT / "experiments" / "results" / "dci"


def _catalogue_at(rev: str, dest: Path) -> Path:
    import subprocess

    files = subprocess.run(["git", "ls-tree", "--name-only", rev, "conf/defense/"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        txt = subprocess.run(["git", "show", f"{rev}:{f}"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
        (dest / Path(f).name).write_text(txt)
    return dest


def before_after(rev: str = ASSUMED_REV) -> None:
    """``experiments/results/dci/grounding.md``: each defense's DCI and rank with the
    catalogue as assumed (git ``rev``) and as grounded (``conf/defense``), its provenance."""
    import tempfile

    import yaml

    import minimax
    from minimax import analysis as an

    game = minimax.Game.from_dict(yaml.safe_load((ROOT / "conf/game/mfm_default.yaml")
                                                 .read_text()))
    tax = an.load_taxonomy(ROOT / "conf/taxonomy/mfm.yaml")
    powers = np.geomspace(1.0, 1e6, 13)
    lines = ["# DCI before and after grounding the catalogue in measurements", "",
             f"Before: `conf/defense` at `{rev}` (every amount assumed). After: "
             "`conf/defense` now, where a defense a validation target implements takes its "
             "lever amount from the measurement (provenance `measured`; "
             "`experiments/validate_dci_grounding.py`, derivation in "
             "[../validate_memory/dci_grounding.md](../validate_memory/dci_grounding.md)); "
             "the other rows stay `assumed`. Same game (`mfm_default`), 13 powers 1 .. 1e6.",
             ""]
    with tempfile.TemporaryDirectory() as tmp:
        cats = {"before": an.load_catalogue(_catalogue_at(rev, Path(tmp))),
                "after": an.load_catalogue(ROOT / "conf/defense")}
        for equal in (False, True):
            res = {k: {r["defense"]: r for r in an.dci(game, c, tax, powers,
                                                       equal_budget=equal).table()}
                   for k, c in cats.items()}
            lines += [f"## {'Equal budget' if equal else 'As catalogued'}", "",
                      "| defense | category | provenance (after) | DCI before | rank before | "
                      "DCI after | rank after |", "|---|---|---|---|---|---|---|"]
            for name, a in sorted(res["after"].items(), key=lambda kv: kv[1]["rank"]):
                b = res["before"][name]
                lines.append(f"| {name} | {a['category']} | {a['provenance']} | "
                             f"{b['dci']:.4f} | {b['rank']} | {a['dci']:.4f} | {a['rank']} |")
            lines.append("")
    (DCI_OUT / "grounding.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--before-after"]:
        before_after(*sys.argv[2:3])
    else:
        main()
