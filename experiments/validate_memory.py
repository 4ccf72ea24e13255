"""Measure the agent-memory target: clean bits, bits vs attacker power under each defense,
attack convergence, and the asymmetry of model-centric vs bandwidth defenses.

    PYTHONPATH=. python experiments/validate_memory.py [--quick]

Writes ``experiments/results/validate_memory/{results.json, README.md, *.png}``.
Relative protection of a defense at power P: ``R(P) = 1 - I_def(P) / I_none(P)`` (bits
``I(T; answer)`` with 95% unit-bootstrap CIs).  The game's prediction is the channel model
of :mod:`minimax.validate.calibrate` fitted on every measured condition of this run (one
channel, ``memory``; the write limit as a threshold cap), evaluated at the same levers.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from minimax.validate import calibrate as cal
from minimax.validate.measure import max_bits, mi_with_ci
from minimax.validate.targets.memory import MemoryDefense, MemoryTarget, memory_config

OUT = Path(__file__).parent / "results" / "validate_memory"
DEFENSES = {
    "no defense": MemoryDefense(),
    "ppl filter (n)": MemoryDefense(ppl_fpr=0.0),
    "paraphrase x3 (s)": MemoryDefense(paraphrases=3),
    "untrusted cap 1 (b)": MemoryDefense(untrusted_cap=1),
    "write limit 4 (b)": MemoryDefense(write_limit=4),
    "write limit 2 (b)": MemoryDefense(write_limit=2),
    "untrusted cap 2 (b)": MemoryDefense(untrusted_cap=2),
    "provenance partition (b)": MemoryDefense(untrusted_cap=0),
}
MODEL_CENTRIC = ("ppl filter (n)", "paraphrase x3 (s)")
BANDWIDTH = ("write limit 4 (b)", "write limit 2 (b)", "untrusted cap 1 (b)")


POWER_LABEL = "attacker power P (entry-tokens)"
# the pipeline's condition names (conf/validate/memory.yaml): none, model-centric, bandwidth
ORDER = ("none", "ppl", "paraphrase3", "limit4", "limit2")


def _finish(fig, ax, xlabel: str, ylabel: str, path: Path, log_x: bool = False,
            legend: int = 7) -> None:
    """Label, legend and save a figure (PNG, 120 dpi), then close it."""
    import matplotlib.pyplot as plt

    if log_x:
        ax.set_xscale("log", base=2)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.legend(fontsize=legend)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def bits(o, k, n_boot=200):
    m = mi_with_ci(o.sent, o.answers, k, n_boot)
    return {"bits": m.bits, "lo": m.lo, "hi": m.hi,
            "success": float((o.sent == o.answers).mean())}


def main(quick: bool) -> None:
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    OUT.mkdir(parents=True, exist_ok=True)
    cfg = memory_config(**_preset_target())
    tg = MemoryTarget(cfg)
    k = tg.n_classes
    powers = [16, 48, 128] if quick else [8, 16, 32, 64, 128]
    res = {"config": cfg.__dict__, "powers": powers, "clean": {}, "adv": {}, "convergence": {},
           "recipes": {}}
    for name, d in DEFENSES.items():
        res["clean"][name] = {**bits(tg.clean(d, split="calib"), k),
                              "levers": tg.lever_values(d)}
        print("clean", name, res["clean"][name], flush=True)
    for name, d in DEFENSES.items():
        res["adv"][name] = []
        for p in powers:
            a = tg.attack([(1.0, d)], {"memory": p}, split="calib")
            row = {"P": p, **bits(tg.evaluate(a, d, split="calib"), k),
                   "m": a.payload["m"], "L": a.payload["L"], "recipe": a.payload["recipe"],
                   "seconds": a.payload["seconds"], "loss": a.trace["loss"]}
            res["adv"][name].append(row)
            print(name, {kk: v for kk, v in row.items() if kk != "loss"}, flush=True)
    # convergence: bits vs GCG steps at the middle power, and the non-adaptive recipes
    pc = powers[len(powers) // 2]
    for name in ("no defense", "ppl filter (n)"):
        d = DEFENSES[name]
        res["convergence"][name] = []
        for steps in (0, 6, 12, 24):
            a = tg.attack([(1.0, d)], {"memory": pc}, split="calib",
                          options={"text_steps": steps})
            r = {"steps": steps, **bits(tg.evaluate(a, d, split="calib"), k),
                 "final_loss": a.trace["loss"][-1]}
            res["convergence"][name].append(r)
            print("convergence", name, r, flush=True)
    for rec in ("copy", "gcg"):
        d = DEFENSES["ppl filter (n)"]
        a = tg.attack([(1.0, d)], {"memory": pc}, split="calib", options={"recipe": rec})
        res["recipes"][f"ppl filter, {rec}"] = bits(tg.evaluate(a, d, split="calib"), k)
    finish(res, tg, t0)


def add_power(p: int) -> None:
    """Measure every defense at one more power and redo the fit, asymmetry and report."""
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    res = json.loads((OUT / "results.json").read_text())
    cfg = memory_config(**{k: v for k, v in res["config"].items()})
    tg = MemoryTarget(cfg)
    k = tg.n_classes
    for name, d in DEFENSES.items():
        if any(r["P"] == p for r in res["adv"][name]):
            continue
        a = tg.attack([(1.0, d)], {"memory": p}, split="calib")
        row = {"P": p, **bits(tg.evaluate(a, d, split="calib"), k),
               "m": a.payload["m"], "L": a.payload["L"], "recipe": a.payload["recipe"],
               "seconds": a.payload["seconds"], "loss": a.trace["loss"]}
        res["adv"][name] = sorted([*res["adv"][name], row], key=lambda r: r["P"])
        print(name, {kk: v for kk, v in row.items() if kk != "loss"}, flush=True)
    res["powers"] = sorted({*res["powers"], p})
    finish(res, tg, t0 - res.get("wall_s", 0.0))


def finish(res, tg, t0) -> None:
    """Fit the game's channel model on the measured conditions; asymmetry, figures, report."""
    k = tg.n_classes
    conds = []
    for name, rows in res["adv"].items():
        lv = res["clean"][name]["levers"]
        for r in rows:
            conds.append(cal.Condition(f"{name} P={r['P']}", "adv", "calib",
                                       {"memory": float(r["P"])}, lv, r["bits"], r["lo"],
                                       r["hi"]))
    for name, c in res["clean"].items():
        conds.append(cal.Condition(f"clean {name}", "leg", "calib", {}, c["levers"],
                                   c["bits"], c["lo"], c["hi"]))
    try:
        model = cal.fit_model(conds, ("memory",), caps=tg.power_caps, imax=max_bits(k))
        res["model"] = model.to_dict()
        for name, rows in res["adv"].items():
            for r in rows:
                r["predicted"] = float(cal.model_predict(
                    model, "adv", {"memory": float(r["P"])}, res["clean"][name]["levers"]))
    except Exception as e:  # the measurement stands without the fit
        res["model_error"] = repr(e)
    res["asymmetry"] = asymmetry(res)
    res["wall_s"] = time.perf_counter() - t0
    (OUT / "results.json").write_text(json.dumps(res, indent=1, default=float))
    figures(res)
    write_md(res)
    print(f"done in {res['wall_s']:.0f}s", flush=True)


def asymmetry(res):
    none = {r["P"]: r for r in res["adv"]["no defense"]}
    out = {}
    for name, rows in res["adv"].items():
        if name == "no defense":
            continue
        out[name] = []
        for r in rows:
            i0 = none[r["P"]]
            ok = i0["bits"] > 0.05
            out[name].append({
                "P": r["P"],
                "R_measured": 1 - r["bits"] / i0["bits"] if ok else float("nan"),
                "R_predicted": (1 - r["predicted"] / i0["predicted"]
                                if ok and "predicted" in r and i0.get("predicted", 0) > 1e-9
                                else float("nan"))})
    return out


def figures(res):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in res["adv"].items():
        p = [r["P"] for r in rows]
        b = np.array([r["bits"] for r in rows])
        lo = np.array([r["lo"] for r in rows])
        hi = np.array([r["hi"] for r in rows])
        ax.errorbar(p, b, yerr=[b - lo, hi - b], marker="o", capsize=3, label=name)
    _finish(fig, ax, POWER_LABEL, "I(T; answer), bits per query", OUT / "bits_vs_power.png",
            log_x=True)
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, rows in res["asymmetry"].items():
        style = "-" if name in MODEL_CENTRIC else "--"
        p = [r["P"] for r in rows]
        line, = ax.plot(p, [r["R_measured"] for r in rows], style, marker="o",
                        label=f"{name} measured")
        ax.plot(p, [r["R_predicted"] for r in rows], ":", color=line.get_color(),
                label=f"{name} game")
    _finish(fig, ax, POWER_LABEL, "relative protection R = 1 - I_def / I_none",
            OUT / "asymmetry.png", log_x=True, legend=6)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, rows in res["convergence"].items():
        s = [r["steps"] for r in rows]
        b = np.array([r["bits"] for r in rows])
        ax.errorbar(s, b, yerr=[b - np.array([r["lo"] for r in rows]),
                                np.array([r["hi"] for r in rows]) - b], marker="o", capsize=3,
                    label=name)
    _finish(fig, ax, "GCG steps", "bits per query", OUT / "convergence.png")


def write_md(res):
    c = res["config"]
    search = (f"GCG step rule `{c.get('update', 'swap')}`, {c['steps']} steps, {c['n_cand']} "
              f"candidates, entry shape `{c.get('shape', 'fixed')}`, start "
              f"`{c.get('start', 'two')}`")
    lines = ["# The agent-memory target: measured", "",
             f"Attack: {search}. Wall time {res['wall_s']:.0f} s (2 shared CPU cores). "
             "Bits `I(T; answer)` with "
             "95% unit-bootstrap CIs on the 20 calibration victims (5 questions x 6 targets "
             "each); `log2 6 = 2.585` bits is the most a query carries.", "",
             "## Clean memory", "", "| defense | accuracy | legitimate bits [CI] | levers |",
             "|---|---|---|---|"]
    for name, c in res["clean"].items():
        lv = ", ".join(f"{k}={v:.2f}" for k, v in c["levers"].items())
        lines.append(f"| {name} | {c['success']:.3f} | {c['bits']:.3f} [{c['lo']:.3f}, "
                     f"{c['hi']:.3f}] | {lv} |")
    lines += ["", "## Bits vs attacker power (adaptive attack per defense)", "",
              "| defense | P | entries x tokens | recipe | bits [CI] | target success | "
              "game |", "|---|---|---|---|---|---|---|"]
    for name, rows in res["adv"].items():
        for r in rows:
            lines.append(f"| {name} | {r['P']} | {r['m']} x {r['L']} | {r['recipe']} | "
                         f"{r['bits']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] | "
                         f"{r['success']:.3f} | {r.get('predicted', float('nan')):.3f} |")
    lines += ["", "![bits vs power](bits_vs_power.png)", "",
              "## Attack convergence (bits vs GCG steps)", "",
              "| defense | steps | bits [CI] | final loss |", "|---|---|---|---|"]
    for name, rows in res["convergence"].items():
        for r in rows:
            lines.append(f"| {name} | {r['steps']} | {r['bits']:.3f} [{r['lo']:.3f}, "
                         f"{r['hi']:.3f}] | {r['final_loss']:.3f} |")
    lines += ["", "Non-adaptive recipes against the perplexity filter (same power):", ""]
    for k_, r in res["recipes"].items():
        lines.append(f"- {k_}: {r['bits']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] bits")
    lines += ["", "![convergence](convergence.png)", ""]
    curves = sorted(p.name for p in OUT.glob("steps_curve_*.md"))
    if curves:
        lines += ["Bits vs GCG steps at the preset's budget, one run per defense and step "
                  "rule: " + ", ".join(f"[{c}]({c})" for c in curves) + ".", ""]
    lines += ["",
              "## Asymmetry: relative protection R(P) = 1 - I_def / I_none", "",
              "| defense | P | R measured | R game |", "|---|---|---|---|"]
    for name, rows in res["asymmetry"].items():
        for r in rows:
            lines.append(f"| {name} | {r['P']} | {r['R_measured']:.3f} | "
                         f"{r['R_predicted']:.3f} |")
    lines += ["", "![asymmetry](asymmetry.png)", ""]
    if "model" in res:
        lines += ["Channel model fitted on these conditions: "
                  f"`{json.dumps(res['model'], default=float)[:600]}`", ""]
    (OUT / "README.md").write_text("\n".join(lines))


STEPS = (0, 6, 12, 24, 48, 96, 160)


def steps_curve(power: int, marks=STEPS, names=("no defense", "ppl filter (n)"),
                split: str = "held", seed: int = 0, update: str | None = None) -> None:
    """Bits vs GCG steps at one power (the preset's budget), one run per defense.

    The pipeline's own measurement (:class:`minimax.validate.run.Measurer`): the preset's
    target (``conf/validate/target/memory.yaml``), run seed ``seed``, the ``split`` victims;
    each step count is scored with the same bootstrap weights, so successive counts are
    compared paired.  ``update``: the GCG step rule (``MemoryConfig.update``; default the
    preset's).  Writes ``steps_curve_{update}.{json,md,png}`` after each defense.
    """
    from minimax.validate.measure import bootstrap_weights, outcome_bits, paired_difference
    from minimax.validate.targets.memory import make_memory_target

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    conf = _preset_target()
    if update:
        conf["update"] = update
    tg = make_memory_target(seed=seed, **conf)
    out = {"power": power, "split": split, "seed": seed, "target": conf, "curves": {}}
    stem = f"steps_curve_{tg.cfg.update}"
    old = OUT / f"{stem}.json"
    if old.exists():  # keep the other defenses' curves of the same setting
        prev = json.loads(old.read_text())
        if (prev["power"], prev["split"], prev["seed"]) == (power, split, seed):
            out["curves"] = {k: v for k, v in prev["curves"].items() if k not in names}
            out["note"] = prev.get("note", "")
    for name in names:
        d = DEFENSES[name]
        a = tg.attack([(1.0, d)], {"memory": power}, split=split, seed=seed,
                      options={"text_steps": max(marks), "checkpoints": list(marks)})
        rows, prev, w = [], None, None
        for s in marks:
            o = tg.evaluate(tg.at_checkpoint(a, s), d, split=split, seed=seed)
            if w is None:
                w = bootstrap_weights(o.sent.shape[0], 200, seed)
            b = outcome_bits(o, w)
            r = {"steps": s, "bits": b.bits, "lo": b.lo, "hi": b.hi,
                 "loss": a.trace["loss"][s], "success": float((o.sent == o.answers).mean())}
            if prev is not None:
                diff = paired_difference(b, prev)
                r["delta"], r["delta_lo"], r["delta_hi"] = diff
            rows.append(r)
            prev = b
            print(name, r, flush=True)
        last = rows[-1]
        out["curves"][name] = {"rows": rows, "seconds": a.payload["seconds"],
                               "m": a.payload["m"], "L": a.payload["L"],
                               "recipe": a.payload["recipe"], "final_bits": last["bits"]}
        out["curves"][name]["wall_s"] = time.perf_counter() - t0
        out["wall_s"] = max(c.get("wall_s", 0.0) for c in out["curves"].values())
        (OUT / f"{stem}.json").write_text(json.dumps(out, indent=1, default=float))
        steps_report(out, stem)


def transfer(power: int, seed: int = 0) -> None:
    """Do entries written for one set of victims steer answers about others?  The preset's
    attack fit on the ``attack`` victims, scored on them and on the ``held`` victims, under
    no defense.  Writes ``transfer.{json,md}``."""
    from minimax.validate.targets.memory import make_memory_target

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    tg = make_memory_target(seed=seed, **_preset_target())
    d = DEFENSES["no defense"]
    a = tg.attack([(1.0, d)], {"memory": power}, split="attack", seed=seed)
    rows = {s: bits(tg.evaluate(a, d, split=s, seed=seed), tg.n_classes)
            for s in ("attack", "held")}
    out = {"power": power, "seed": seed, "m": a.payload["m"], "L": a.payload["L"],
           "rows": rows, "wall_s": time.perf_counter() - t0}
    (OUT / "transfer.json").write_text(json.dumps(out, indent=1, default=float))
    lines = [f"# Transfer: entries fit on the attack victims (P = {power}, {out['m']} x "
             f"{out['L']}, no defense, preset attack, seed {seed})", "",
             "| victims scored | bits [CI] | target success |", "|---|---|---|"]
    for s, r in rows.items():
        lines.append(f"| {s} | {r['bits']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] | "
                     f"{r['success']:.3f} |")
    lines += ["", f"Wall {out['wall_s']:.0f} s.", ""]
    (OUT / "transfer.md").write_text("\n".join(lines))
    print(out, flush=True)


def bandwidth(powers: list[int], names: tuple[str, ...], marks: tuple[int, ...],
              longer: dict[str, int] | None = None, seed: int = 0, split: str = "held") -> None:
    """Bandwidth defenses against the preset's attack: bits vs attacker power with CIs, and
    the attack's convergence under each (``bandwidth.{json,md}``).

    One GCG run per defense and power, of ``max(marks)`` steps, scored at each of ``marks``
    (the preset's 16 steps, 2x, ...; ``longer`` gives some defenses a longer run) with the
    same bootstrap weights, so a doubling of the steps is a paired difference; each defense
    is also paired with no defense at the same power, step count and victims:
    ``R = 1 - I_def / I_none``.  Runs of other (defense, power) pairs already in
    ``bandwidth.json`` (same seed and split) are kept, so the file grows over calls; a kept
    no-defense run with the step counts needed is paired against from its stored answers
    (the attack is deterministic given the seed).  Grounds the catalogue's memory isolation
    (experiments/validate_dci_grounding.py).
    """
    from minimax.validate.measure import bootstrap_weights, outcome_bits, paired_difference
    from minimax.validate.target import Outcome
    from minimax.validate.targets.memory import make_memory_target

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    conf = _preset_target()
    tg = make_memory_target(seed=seed, **conf)
    longer = longer or {}
    path = OUT / "bandwidth.json"
    out = {"seed": seed, "split": split, "steps": conf["steps"], "runs": {}}
    if path.exists():
        prev = json.loads(path.read_text())
        if (prev["seed"], prev["split"], prev["steps"]) == (seed, split, conf["steps"]):
            out["runs"] = prev["runs"]
    todo = [("no defense", p) for p in powers] + [(n, p) for n in names if n != "no defense"
                                                   for p in powers]
    scored: dict[tuple[str, int], dict[int, object]] = {}
    for name, p in todo:
        d = DEFENSES[name]
        key = f"{name}|{p}"
        mk = tuple(sorted({*marks, conf["steps"], *([longer[name]] if name in longer else [])}))
        kept = out["runs"].get(key, {}).get("outcomes", {})
        if name == "no defense" and all(str(s) in kept for s in mk):
            # the reference is kept with its answers: pair against it without re-running
            scored[(name, p)] = {s: outcome_bits(Outcome(*map(np.asarray, kept[str(s)]),
                                                         tg.n_classes),
                                                 bootstrap_weights(len(kept[str(s)][0]), 200,
                                                                   seed)) for s in mk}
            continue
        a = tg.attack([(1.0, d)], {"memory": p}, split=split, seed=seed,
                      options={"text_steps": max(mk), "checkpoints": list(mk)})
        rows, last, got, outs = [], None, {}, {}
        for s in mk:
            o = tg.evaluate(tg.at_checkpoint(a, s), d, split=split, seed=seed)
            outs[str(s)] = [o.sent.tolist(), o.answers.tolist()]
            b = outcome_bits(o, bootstrap_weights(o.sent.shape[0], 200, seed))
            got[s] = b
            r = {"steps": s, "bits": b.bits, "lo": b.lo, "hi": b.hi,
                 "success": float((o.sent == o.answers).mean())}
            if last is not None:
                r["delta"] = list(paired_difference(b, last))
            ref = scored.get(("no defense", p), {}).get(s)
            if ref is not None and name != "no defense":
                r["vs_none"] = list(paired_difference(b, ref))
                r["R"] = 1.0 - b.bits / ref.bits if ref.bits > 0 else float("nan")
            rows.append(r)
            last = b
            print(name, p, r, flush=True)
        scored[(name, p)] = got
        out["runs"][key] = {"defense": name, "P": p, "m": a.payload["m"], "L": a.payload["L"],
                            "recipe": a.payload["recipe"], "seconds": a.payload["seconds"],
                            "rows": rows, "outcomes": outs}
        out["wall_s"] = time.perf_counter() - t0
        path.write_text(json.dumps(out, default=float))  # one line: the answers are long
        bandwidth_report(out)


def bandwidth_clean(names: tuple[str, ...], seed: int = 0, split: str = "held") -> None:
    """What each defense costs clean use: legitimate bits ``I(truth; answer)`` on clean memory
    (no attacker entries) beside no defense, paired on the same questions; added to
    ``bandwidth.json`` under ``clean`` and shown in ``bandwidth.md``.  A provenance partition
    (untrusted cap 0) never retrieves a fact written by an untrusted source, so it pays here
    for what it blocks in the attack table."""
    from minimax.validate.measure import bootstrap_weights, outcome_bits, paired_difference
    from minimax.validate.targets.memory import make_memory_target

    torch.set_num_threads(1)
    tg = make_memory_target(seed=seed, **_preset_target())
    path = OUT / "bandwidth.json"
    out = json.loads(path.read_text())
    if (out["seed"], out["split"]) != (seed, split):
        raise ValueError(f"{path}: seed {out['seed']} split {out['split']}; expected seed "
                         f"{seed} split {split}")
    scored = {}
    for name in ("no defense", *[n for n in names if n != "no defense"]):
        o = tg.clean(DEFENSES[name], split=split, seed=seed)
        scored[name] = outcome_bits(o, bootstrap_weights(o.sent.shape[0], 200, seed))
    ref = scored["no defense"]
    clean = out.setdefault("clean", {})
    for name, b in scored.items():
        clean[name] = {"bits": b.bits, "lo": b.lo, "hi": b.hi,
                       "vs_none": None if name == "no defense"
                       else list(paired_difference(b, ref))}
        print(name, clean[name], flush=True)
    path.write_text(json.dumps(out, default=float))
    bandwidth_report(out)


def bandwidth_report(out: dict) -> None:
    """``bandwidth.md`` from :func:`bandwidth`'s results."""
    base = out["steps"]
    lines = [f"# Bandwidth defenses vs attacker power (preset attack, seed {out['seed']}, "
             f"{out['split']} victims)", "",
             "`python experiments/validate_memory.py --bandwidth P,P,... --defenses NAMES "
             "--marks 16,32`. One GCG run per defense and power, scored at each step count "
             f"with the same bootstrap weights; the preset's budget is {base} steps. "
             "Convergence: bits at 2x (and 4x) steps minus the previous count, paired CI "
             "(flat = the CI reaches 0). Protection: the defense minus no defense at the same "
             "power and step count on the same victims (paired CI), and R = 1 - I_def / I_none.",
             "", "| defense | P | entries x tokens | steps | bits [CI] | vs previous steps "
             "(paired CI) | minus no defense (paired CI) | R | attack s |",
             "|---|---|---|---|---|---|---|---|---|"]
    order = {n: i for i, n in enumerate(DEFENSES)}
    runs = sorted(out["runs"].values(), key=lambda r: (order.get(r["defense"], 99), r["P"]))

    def ci(v):
        return f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]" if v else ""
    for run in runs:
        for r in run["rows"]:
            rr = f"{r['R']:.3f}" if "R" in r else ""
            lines.append(f"| {run['defense']} | {run['P']} | {run['m']} x {run['L']} | "
                         f"{r['steps']} | {r['bits']:.3f} [{r['lo']:.3f}, {r['hi']:.3f}] | "
                         f"{ci(r.get('delta'))} | {ci(r.get('vs_none'))} | {rr} | "
                         f"{run['seconds']:.0f} |")
    lines += ["", f"Wall {out.get('wall_s', 0.0):.0f} s (last call).", ""]
    if out.get("clean"):
        lines += ["## What each defense costs clean use", "",
                  "`python experiments/validate_memory.py --bandwidth-clean --defenses NAMES`: "
                  "legitimate bits I(truth; answer) on clean memory, same questions, paired "
                  "against no defense.", "",
                  "| defense | clean bits [CI] | minus no defense (paired CI) |",
                  "|---|---|---|"]
        for name in sorted(out["clean"], key=lambda n: order.get(n, 99)):
            c = out["clean"][name]
            lines.append(f"| {name} | {c['bits']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}] | "
                         f"{ci(c.get('vs_none'))} |")
        lines.append("")
    (OUT / "bandwidth.md").write_text("\n".join(lines))


def bandwidth_summary(out: dict) -> list[dict]:
    """One row per (defense, power) of ``bandwidth.json``: bits at the preset's steps, the
    protection against no defense there, and what each doubling of the steps adds."""
    rows = []
    order = {n: i for i, n in enumerate(DEFENSES)}
    for run in sorted(out["runs"].values(),
                      key=lambda r: (order.get(r["defense"], 99), r["P"])):
        by = {r["steps"]: r for r in run["rows"]}
        base = by[out["steps"]]
        rows.append({"defense": run["defense"], "P": run["P"], "bits": base,
                     "R": base.get("R"), "vs_none": base.get("vs_none"),
                     "doublings": [(s, by[s]["delta"]) for s in sorted(by)
                                   if s > out["steps"] and "delta" in by[s]]})
    return rows


def refit(run_dirs: list[Path], caps: list[float]) -> None:
    """Refit the channel model on kept pipeline runs' calibration conditions with other
    threshold caps on memory power, and score the held-out conditions (model beside the
    defense-blind baseline); measures nothing.  ``caps`` of 0 fits no cap (the write limit
    an attenuation of capacity, as the target declares).  How the reading of the write
    limit was checked on stored runs (docs/validation.md §5.9)."""
    from minimax.validate.measure import max_bits

    for d in run_dirs:
        conds = [cal.Condition(c["label"], c["kind"], c["split"],
                               {"memory": c["P"]} if c["P"] > 0 else {}, c["levers"],
                               c["bits"], c["lo"], c["hi"]) for c in _seed_conditions(d)]
        fit = [c for c in conds if c.split == "calib"]
        held = [c for c in conds if c.split == "held"]
        for cap in caps:
            kw = {"caps": {"memory": cap} if cap > 0 else {}, "imax": max_bits(6),
                  "restarts": 3}
            scores = {}
            for tag, blind in (("model", False), ("blind", True)):
                m = cal.fit_model(fit, ("memory",), blind=blind, **kw)
                scores[tag] = cal.score([cal.predict_condition(m, c) for c in held],
                                        [c.bits for c in held])
            print(f"{d.name} cap {cap:g}: model MAE {scores['model'].mae:.3f} Spearman "
                  f"{scores['model'].spearman:.3f}; defense-blind MAE {scores['blind'].mae:.3f}"
                  f" Spearman {scores['blind'].spearman:.3f} (n = {scores['model'].n})",
                  flush=True)


def pipeline_seeds(run_dir: Path) -> None:
    """Summarise the pipeline's seeds (``run_dir/seed*/``): ``seeds.md`` (every seed's
    headline) and ``pipeline.md`` (conditions with the model's and the defense-blind
    predictions, relative protection at 128 entry-tokens, held-out scores, the empirical
    game's equilibrium and the engine's regret, the convergence check)."""
    import csv

    from minimax.validate.report import write_seeds

    dirs = sorted(p for p in run_dir.glob("seed*") if (p / "summary.json").exists())
    res = [json.loads((d / "summary.json").read_text()) for d in dirs]
    write_seeds(res, run_dir)
    lines = ["# The memory pipeline over seeds", "",
             "`python -m minimax.validate validate=memory validate.seed=S` per seed (fact base, "
             "victims and attack draws); bits `I(T; answer)` [95% unit-bootstrap CI]. "
             "Summary per seed: [seeds.md](seeds.md).", ""]
    rel: dict[str, list[tuple[float, float]]] = {}
    for d, r in zip(dirs, res, strict=True):
        rows = list(csv.DictReader((d / "conditions.csv").open()))
        lines += [f"## {d.name} (status {r.get('status')}, wall {r.get('wall_s', 0):.0f} s)",
                  "", "| condition | split | bits [CI] | model | defense-blind |",
                  "|---|---|---|---|---|"]
        for c in rows:
            lines.append(f"| {c['kind']} {c['label']} | {c['split']} | {float(c['bits']):.3f} "
                         f"[{float(c['lo']):.3f}, {float(c['hi']):.3f}] | "
                         f"{float(c['predicted'] or 'nan'):.3f} | "
                         f"{float(c['predicted_blind'] or 'nan'):.3f} |")
        none = {c["P_memory"]: c for c in rows if c["kind"] == "adv" and c["label"].endswith(
            " none") and c["split"] == "calib"}
        ref = none.get("128.0")
        for c in rows:
            if ref is None or c["kind"] != "adv" or c["P_memory"] != "128.0" or c is ref:
                continue
            name = c["label"].split()[-1]
            rel.setdefault(name, []).append((
                1 - float(c["bits"]) / float(ref["bits"]),
                1 - float(c["predicted"]) / float(ref["predicted"])))
        ho, g = r.get("heldout") or {}, r.get("goal") or {}
        m, b = ho.get("model", {}), ho.get("blind", {})
        nan = float("nan")
        lines += ["", f"- held-out prediction: model Spearman {m.get('spearman', nan):.3f},"
                  f" MAE {m.get('mae', nan):.3f} bits; defense-blind Spearman "
                  f"{b.get('spearman', float('nan')):.3f}, MAE {b.get('mae', float('nan')):.3f} "
                  f"(n = {m.get('n')})"]
        if g:
            er = g.get("engine_regret") or [float("nan")] * 3
            nd = g.get("no_defense_minus_validated") or [float("nan")] * 3
            lines += [f"- equilibrium (empirical game): {json.dumps(g.get('validated_defense'))},"
                      f" worst case {g.get('validated_worst', float('nan')):.3f} "
                      f"[{g.get('validated_lo', float('nan')):.3f}, "
                      f"{g.get('validated_hi', float('nan')):.3f}] bits; best pure row "
                      f"{g.get('best_pure_row')}",
                      f"- engine's regret in it: {er[0]:+.3f} [{er[1]:+.3f}, {er[2]:+.3f}] bits "
                      f"(best within CI: {g.get('engine_best_within_ci')}); no defense minus "
                      f"validated {nd[0]:+.3f} [{nd[1]:+.3f}, {nd[2]:+.3f}]"]
        for ck in r.get("checks") or []:
            lines.append(f"- check {ck['check']}: {ck['bits']:.3f} -> {ck['bits_stronger']:.3f}"
                         f", {ck['delta']:+.3f} [{ck['delta_lo']:+.3f}, {ck['delta_hi']:+.3f}]"
                         f" (flat: {ck['converged']})")
        lines.append("")
    lines += ["## Relative protection at 128 entry-tokens, R = 1 - I_def / I_none", "",
              "| defense | R measured per seed | R model per seed |", "|---|---|---|"]
    for name, v in rel.items():
        lines.append(f"| {name} | {', '.join(f'{a:.3f}' for a, _ in v)} | "
                     f"{', '.join(f'{p:.3f}' for _, p in v)} |")
    (run_dir / "pipeline.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    power_report(dirs, res)


def _seed_conditions(d: Path) -> list[dict]:
    """A seed's adversarial and clean conditions (``conditions.csv``), numbers parsed."""
    import csv

    out = []
    for c in csv.DictReader((d / "conditions.csv").open()):
        row = {"label": c["label"], "kind": c["kind"], "split": c["split"],
               "defense": c["label"].split()[-1],
               "P": float(c["P_memory"] or 0.0),
               "levers": {k: float(c[k] or 0.0) for k in ("n_memory", "s_memory", "b_memory")}}
        for k in ("bits", "lo", "hi", "predicted", "predicted_blind"):
            row[k] = float(c[k]) if c[k] not in ("", None) else float("nan")
        out.append(row)
    return out


def power_asymmetry(conds: list[dict]) -> list[dict]:
    """``R = 1 - I_def / I_none`` wherever a defense and no defense were measured at the
    same power on the same victims (split), measured and predicted by the seed's model."""
    none = {(c["split"], c["P"]): c for c in conds if c["kind"] == "adv"
            and c["defense"] == "none"}
    out = []
    for c in conds:
        ref = none.get((c["split"], c["P"]))
        if c["kind"] != "adv" or c["defense"] == "none" or ref is None:
            continue
        ok = ref["bits"] > 0.05
        out.append({"defense": c["defense"], "split": c["split"], "P": c["P"],
                    "R_measured": 1 - c["bits"] / ref["bits"] if ok else float("nan"),
                    "R_model": (1 - c["predicted"] / ref["predicted"]
                                if ref["predicted"] > 1e-9 else float("nan"))})
    return out


def power_report(dirs: list[Path], res: list[dict]) -> None:
    """Bits vs attacker power under each defense over the pipeline's seeds, the asymmetry
    (relative protection of model-centric and bandwidth defenses as power grows) beside
    each seed's calibrated channel model, held-out scores and the clean memory:
    ``results.json``, ``README.md``, ``bits_vs_power.png``, ``asymmetry.png`` in OUT."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from minimax.validate.measure import bootstrap_weights, outcome_bits
    from minimax.validate.targets.memory import make_memory_target

    torch.set_num_threads(1)
    preset = _preset_target()
    seeds: dict[str, dict] = {}
    for d, r in zip(dirs, res, strict=True):
        conds = _seed_conditions(d)
        tg = make_memory_target(seed=int(r["seed"]), **preset)
        clean = {}
        for name, d_ in (("none", MemoryDefense()), *[
                (c["defense"], tg.realise(c["levers"])) for c in conds if c["kind"] == "leg"
                and c["defense"] != "none"]):
            for split in ("calib", "held"):
                o = tg.clean(d_, split=split, seed=int(r["seed"]))
                b = outcome_bits(o, bootstrap_weights(o.sent.shape[0], 200, int(r["seed"])))
                clean[f"{name} {split}"] = {"accuracy": float((o.sent == o.answers).mean()),
                                            "bits": b.bits, "lo": b.lo, "hi": b.hi}
        seeds[d.name] = {"seed": r["seed"], "conditions": conds, "clean": clean,
                         "asymmetry": power_asymmetry(conds), "model": r.get("model"),
                         "heldout": r.get("heldout"), "goal": r.get("goal"),
                         "prescription": r.get("prescription"), "checks": r.get("checks"),
                         "wall_s": r.get("wall_s")}
    out = {"preset": preset, "seeds": seeds}
    (OUT / "results.json").write_text(json.dumps(out, indent=1, default=float))
    names = sorted({c["defense"] for s in seeds.values() for c in s["conditions"]
                    if c["kind"] == "adv"}, key=lambda n: (ORDER.index(n) if n in ORDER
                                                           else len(ORDER), n))
    colors = {n: f"C{i}" for i, n in enumerate(names)}
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for j, s in enumerate(seeds.values()):
        m = s["model"]
        for n in names:
            pts = sorted((c["P"], c["bits"], c["lo"], c["hi"], c["split"]) for c in
                         s["conditions"] if c["kind"] == "adv" and c["defense"] == n)
            if not pts:
                continue
            p, b, lo, hi, sp = map(np.array, zip(*pts, strict=True))
            off = p * (1 + 0.02 * (j - 1))
            for split, mk in (("calib", "o"), ("held", "s")):
                k = sp == split
                ax.errorbar(off[k], b[k], yerr=[b[k] - lo[k], hi[k] - b[k]], fmt=mk,
                            color=colors[n], capsize=2, ms=4,
                            label=f"{n} ({split})" if j == 0 else None,
                            mfc="none" if split == "held" else colors[n])
            if m:
                grid = np.linspace(8, 160, 80)
                lv = next(c["levers"] for c in s["conditions"] if c["defense"] == n)
                ax.plot(grid, _model_curve(m, grid, lv), "-", color=colors[n], lw=0.7,
                        alpha=0.7)
    ax.set_title("filled: calibration victims, open: held out; lines: each seed's model",
                 fontsize=8)
    _finish(fig, ax, POWER_LABEL, "I(T; answer), bits per query", OUT / "bits_vs_power.png",
            legend=6)
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for j, s in enumerate(seeds.values()):
        for n in names[1:]:
            rows = [a for a in s["asymmetry"] if a["defense"] == n]
            if rows:
                ax.plot([a["P"] * (1 + 0.02 * (j - 1)) for a in rows],
                        [a["R_measured"] for a in rows], "o", color=colors[n],
                        label=f"{n} measured" if j == 0 else None)
            if s["model"]:
                grid = np.linspace(8, 160, 80)
                lv = next(c["levers"] for c in s["conditions"] if c["defense"] == n)
                none = _model_curve(s["model"], grid, {})
                ax.plot(grid, 1 - _model_curve(s["model"], grid, lv) / np.maximum(none, 1e-9),
                        "-", color=colors[n], lw=0.7, alpha=0.7,
                        label=f"{n} model" if j == 0 else None)
    bw_path = OUT / "bandwidth.json"
    if bw_path.exists():  # the bandwidth defenses measured beside the pipeline (seed 0)
        bw = bandwidth_summary(json.loads(bw_path.read_text()))
        for i, n in enumerate(sorted({r["defense"] for r in bw if r["R"] is not None})):
            pts = [(r["P"], r["R"]) for r in bw if r["defense"] == n and r["R"] is not None]
            ax.plot(*zip(*pts, strict=True), "x--", color=f"C{len(names) + i}", lw=0.8,
                    label=f"{n} (bandwidth.md)")
        out["bandwidth"] = bw
    ax.set_ylim(-0.5, 1.1)
    _finish(fig, ax, POWER_LABEL, "relative protection R = 1 - I_def / I_none",
            OUT / "asymmetry.png", legend=6)
    write_power_md(out, names)


def _model_curve(model: dict, grid: np.ndarray, levers: dict) -> np.ndarray:
    """A seed's calibrated channel model (``summary.json``'s ``model``) at powers ``grid``."""
    from minimax.validate import calibrate as cal

    m = cal.ChannelModel(**{**model, "channels": tuple(model["channels"]),
                            "terms": tuple(model["terms"])})
    return np.asarray(cal.model_predict(m, "adv", {"memory": grid}, levers), float)


def write_power_md(out: dict, names: list[str]) -> None:
    """README.md of OUT from :func:`power_report`'s results."""
    seeds = out["seeds"]
    c = out["preset"]
    lines = ["# The agent-memory target: measured over seeds", "",
             f"Attack (`conf/validate/target/memory.yaml`): GCG step rule `{c['update']}`, "
             f"{c['steps']} steps, {c['n_cand']} candidates per entry, entry shape "
             f"`{c['shape']}`, start `{c['start']}`, deal `{c['deal']}`. Runs: "
             "`python -m minimax.validate validate=memory validate.seed=S`, kept in "
             "[pipeline/](pipeline/) ([pipeline.md](pipeline/pipeline.md) per seed, "
             "[seeds.md](pipeline/seeds.md)); this page: `python "
             "experiments/validate_memory.py --seeds-from experiments/results/validate_memory/"
             "pipeline`. Bits `I(T; answer)` with 95% unit-bootstrap CIs on 20 victims per "
             "split (5 questions x 6 targets each); `log2 6 = 2.585` bits is the most a query "
             "carries.", "", "## Clean memory", "",
             "| seed | defense, victims | accuracy | legitimate bits [CI] |", "|---|---|---|---|"]
    for sn, s in seeds.items():
        for k, v in s["clean"].items():
            lines.append(f"| {sn} | {k} | {v['accuracy']:.3f} | {v['bits']:.3f} "
                         f"[{v['lo']:.3f}, {v['hi']:.3f}] |")
    lines += ["", "## Bits vs attacker power under each defense", "",
              "Calibration conditions are fitted by the seed's channel model (`model`); held-"
              "out conditions are predicted by it.", "",
              "| defense | P (entry-tokens) | victims | " + " | ".join(
                  f"{sn} bits [CI] / model" for sn in seeds) + " |",
              "|---|---|---|" + "---|" * len(seeds)]
    keys = sorted({(c["defense"], c["P"], c["split"]) for s in seeds.values()
                   for c in s["conditions"] if c["kind"] == "adv"},
                  key=lambda k: (names.index(k[0]), k[1], k[2]))
    for dn, p, sp in keys:
        cells = []
        for s in seeds.values():
            c = next((c for c in s["conditions"] if c["kind"] == "adv" and
                      (c["defense"], c["P"], c["split"]) == (dn, p, sp)), None)
            cells.append("" if c is None else f"{c['bits']:.3f} [{c['lo']:.3f}, {c['hi']:.3f}]"
                         f" / {c['predicted']:.3f}")
        lines.append(f"| {dn} | {p:g} | {sp} | " + " | ".join(cells) + " |")
    lines += ["", "![bits vs power](bits_vs_power.png)", "",
              "## Asymmetry: relative protection R(P) = 1 - I_def / I_none", "",
              "Same victims and power for the defense and for no defense.", "",
              "| defense | P | victims | " + " | ".join(f"{sn} measured / model" for sn in seeds)
              + " |", "|---|---|---|" + "---|" * len(seeds)]
    akeys = sorted({(a["defense"], a["P"], a["split"]) for s in seeds.values()
                    for a in s["asymmetry"]}, key=lambda k: (names.index(k[0]), k[1]))
    for dn, p, sp in akeys:
        cells = []
        for s in seeds.values():
            a = next((a for a in s["asymmetry"] if (a["defense"], a["P"], a["split"]) ==
                      (dn, p, sp)), None)
            cells.append("" if a is None else f"{a['R_measured']:.3f} / {a['R_model']:.3f}")
        lines.append(f"| {dn} | {p:g} | {sp} | " + " | ".join(cells) + " |")
    lines += ["", "![asymmetry](asymmetry.png)", "", "## Held-out prediction", "",
              "| seed | n | model Spearman | model MAE | defense-blind Spearman | "
              "defense-blind MAE |", "|---|---|---|---|---|---|"]
    for sn, s in seeds.items():
        h = s["heldout"] or {}
        m, b = h.get("model", {}), h.get("blind", {})
        lines.append(f"| {sn} | {m.get('n')} | {m.get('spearman', float('nan')):.3f} | "
                     f"{m.get('mae', float('nan')):.3f} | "
                     f"{b.get('spearman', float('nan')):.3f} | "
                     f"{b.get('mae', float('nan')):.3f} |")
    if out.get("bandwidth"):
        lines += ["", "## Bandwidth defenses against the preset attack", "",
                  "Seed 0, held victims, one GCG run per defense and power scored at the "
                  f"preset's {out['preset']['steps']} steps and at 2x (4x) with the same "
                  "bootstrap weights "
                  "([bandwidth.md](bandwidth.md), `python experiments/validate_memory.py "
                  "--bandwidth 48,64,128 ...`); R and the difference to no defense at the "
                  "preset's steps, paired on the same victims.", "",
                  "| defense | P | bits [CI] | minus no defense (paired CI) | R | each doubling "
                  "of the steps adds (paired CI) |", "|---|---|---|---|---|---|"]
        for r in out["bandwidth"]:
            b, v = r["bits"], r["vs_none"]
            dbl = "; ".join(f"{s // 2}->{s}: {d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}]"
                            for s, d in r["doublings"])
            lines.append(f"| {r['defense']} | {r['P']} | {b['bits']:.3f} [{b['lo']:.3f}, "
                         f"{b['hi']:.3f}] | " + (f"{v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}]"
                                                 if v else "") + " | "
                         + (f"{r['R']:.3f}" if r["R"] is not None else "") + f" | {dbl} |")
        clean = json.loads((OUT / "bandwidth.json").read_text()).get("clean") or {}
        if clean:
            def cost(c):
                v = c.get("vs_none")
                return f" ({v[0]:+.3f} [{v[1]:+.3f}, {v[2]:+.3f}])" if v else ""
            lines += ["", "What each costs clean use (legitimate bits on clean memory, paired "
                      "against no defense; `--bandwidth-clean`): " + "; ".join(
                          f"{n} {c['bits']:.3f}{cost(c)}" for n, c in clean.items()) + "."]
    curves = sorted(p.name for p in OUT.glob("steps_curve_*.md"))
    lines += ["", "## Attack convergence", "",
              "Bits vs GCG steps at the preset's budget, one run per defense (seed 0, held "
              "victims): " + ", ".join(f"[{c}]({c})" for c in curves) + "; the pipeline's "
              "own check at twice the steps, per seed, is in [pipeline.md](pipeline/"
              "pipeline.md). Transfer between victims: [transfer.md](transfer.md).", ""]
    (OUT / "README.md").write_text("\n".join(lines))


def _preset_target() -> dict:
    import yaml

    conf = yaml.safe_load((Path(__file__).resolve().parents[1] / "conf" / "validate"
                           / "target" / "memory.yaml").read_text())
    return {k: v for k, v in conf.items() if k not in ("_target_", "seed")}


def steps_report(out: dict, stem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [f"# Memory attack convergence: bits vs GCG steps at P = {out['power']} "
             f"entry-tokens (step rule `{out['target'].get('update', 'swap')}`)", "",
             f"Preset target (`conf/validate/target/memory.yaml`), run seed {out['seed']}, the "
             f"`{out['split']}` victims; one GCG run per defense, scored at each step count "
             "with the same bootstrap weights (paired differences vs the previous count). "
             f"{out.get('note', '')}", "",
             "| defense | longest run (steps) | attack seconds | each doubling of the steps "
             "adds (paired CI) |", "|---|---|---|---|"]
    order = {n: i for i, n in enumerate(DEFENSES)}
    curves = sorted(out["curves"].items(), key=lambda kv: order.get(kv[0], len(order)))
    for name, c in curves:
        dbl = [f"{r['steps'] // 2}->{r['steps']}: {r['delta']:+.3f} [{r['delta_lo']:+.3f}, "
               f"{r['delta_hi']:+.3f}]" for r in c["rows"] if "delta" in r and r["steps"] >= 16]
        lines.append(f"| {name} | {c['rows'][-1]['steps']} | {c['seconds']:.0f} | "
                     f"{'; '.join(dbl)} |")
    lines += ["", "| defense | steps | bits [CI] | change vs previous (paired CI) | loss | "
              "target success |", "|---|---|---|---|---|---|"]
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, c in curves:
        for r in c["rows"]:
            d = (f"{r['delta']:+.3f} [{r['delta_lo']:+.3f}, {r['delta_hi']:+.3f}]"
                 if "delta" in r else "")
            lines.append(f"| {name} | {r['steps']} | {r['bits']:.3f} [{r['lo']:.3f}, "
                         f"{r['hi']:.3f}] | {d} | {r['loss']:.3f} | {r['success']:.3f} |")
        s = [r["steps"] for r in c["rows"]]
        b = np.array([r["bits"] for r in c["rows"]])
        ax.errorbar(s, b, yerr=[b - [r["lo"] for r in c["rows"]],
                                np.array([r["hi"] for r in c["rows"]]) - b],
                    marker="o", capsize=3, label=f"{name} ({c['recipe']}, {c['m']}x{c['L']})")
    lines += ["", f"![bits vs steps]({stem}.png)", ""]
    ax.set_title(f"P = {out['power']} entry-tokens", fontsize=9)
    _finish(fig, ax, "GCG steps", "I(T; answer), bits per query", OUT / f"{stem}.png")
    (OUT / f"{stem}.md").write_text("\n".join(lines))


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--add-power", type=int, default=None,
                    help="measure one more power into the existing results")
    ap.add_argument("--steps-curve", type=int, default=None, metavar="P",
                    help="bits vs GCG steps at power P (steps_curve_UPDATE.md)")
    ap.add_argument("--update", default=None, help="GCG step rule: swap or entries")
    ap.add_argument("--max-steps", type=int, default=max(STEPS))
    ap.add_argument("--marks", default=None,
                    help="step counts to score, comma-separated (default: STEPS below max)")
    ap.add_argument("--defenses", default="no defense,ppl filter (n)")
    ap.add_argument("--transfer", type=int, default=None, metavar="P",
                    help="entries fit on the attack victims, scored on the held ones")
    ap.add_argument("--seeds-from", type=Path, default=None, metavar="DIR",
                    help="summarise the pipeline's seeds kept in DIR/seed*/")
    ap.add_argument("--bandwidth", default=None, metavar="P,P",
                    help="bandwidth defenses (--defenses) vs no defense at these powers, "
                         "scored at --marks (bandwidth.md)")
    ap.add_argument("--bandwidth-clean", action="store_true",
                    help="legitimate bits of --defenses on clean memory beside no defense, "
                         "added to bandwidth.json / bandwidth.md")
    ap.add_argument("--longer", nargs="*", default=[], metavar="NAME=STEPS",
                    help="--bandwidth: a longer run for these defenses")
    ap.add_argument("--refit", type=Path, nargs="+", default=None, metavar="RUN",
                    help="refit kept runs with the caps of --caps and score held-out cells")
    ap.add_argument("--caps", default="192,40,0",
                    help="memory power caps for --refit (0: none)")
    args = ap.parse_args()
    if args.refit:
        refit(args.refit, [float(c) for c in args.caps.split(",")])
    elif args.bandwidth_clean:
        bandwidth_clean(tuple(args.defenses.split(",")))
    elif args.bandwidth:
        bandwidth([int(p) for p in args.bandwidth.split(",")], tuple(args.defenses.split(",")),
                  tuple(int(m) for m in (args.marks or "16,32").split(",")),
                  {k: int(v) for k, v in (x.rsplit("=", 1) for x in args.longer)})
    elif args.seeds_from:
        pipeline_seeds(args.seeds_from)
    elif args.transfer:
        transfer(args.transfer)
    elif args.steps_curve:
        marks = (tuple(int(s) for s in args.marks.split(",")) if args.marks else
                 tuple(s for s in STEPS if s < args.max_steps) + (args.max_steps,))
        steps_curve(args.steps_curve, marks, tuple(args.defenses.split(",")),
                    update=args.update)
    elif args.add_power:
        add_power(args.add_power)
    else:
        main(args.quick)
