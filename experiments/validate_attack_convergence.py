"""Do the digits target's attacks converge? Bits vs attack budget under each defense.

For the image attack (APGD-CE + APGD-DLR, the ``auto`` recipe) at ``P_image = 1``:
bits vs steps, restarts and EOT draws; the old fixed-step PGD and the gradient-free
Square attack beside it (the gradient-masking check); an unbounded attack (``P = 64``,
radius 8: any 8x8 image is reachable) must reach ~100% targeted success.  For the text
attack (GCG against each defended text path, never transferred) bits vs GCG steps, alone
(``k = 8`` tokens) and jointly with the image (``P_image = 0.5``, ``k = 8``), each GCG
checkpoint followed by the final image attack; and the joint attack's alternation rounds.

Bits are ``I(T; answer)`` (Miller-Madow, 95% bootstrap CI over images) of the defended
system on the calibration images, attacked toward each of the ten targets.  Defenses are
the budget-1 menu rows of :class:`minimax.validate.targets.DigitsTarget` (noise 0.2,
adversarial fine-tuning 0.5, pixel mask 0.37, token cap 3, ensemble 3) plus noise 0.4 for
the EOT sweep, and no defense.

Run: ``PYTHONPATH=. python experiments/validate_attack_convergence.py [--images 50]``;
writes ``experiments/results/validate_attack_convergence.{md,json,png}``.  About 10 min on
2 shared cores.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch

from minimax.validate import attacks as atk
from minimax.validate.knobs import Knobs
from minimax.validate.measure import mi_with_ci
from minimax.validate.target import Attack
from minimax.validate.targets.digits import ATTACK_DEFAULTS, DigitsPayload, DigitsTarget, K

OUT = Path(__file__).resolve().parent / "results"
ROWS: list[dict] = []
DEFAULTS: dict = dict(ATTACK_DEFAULTS)   # the budgets the verdicts check (--preset: its own)


def measure(T: DigitsTarget, res: atk.ImageAttackResult, sfx, d: Knobs, n_boot: int):
    att = Attack("", {}, DigitsPayload("calib", res.x_adv, sfx, 0), {})
    o = T.evaluate(att, d, split="calib", seed=0)
    m = mi_with_ci(o.sent, o.answers, K, n_boot, seed=0)
    return m, float((o.sent == o.answers).mean())


def record(sweep, defense, x, m, succ, secs, **extra):
    row = {"sweep": sweep, "defense": defense, "x": x, "bits": m.bits, "lo": m.lo, "hi": m.hi,
           "success": succ, "seconds": secs, **extra}
    ROWS.append(row)
    print(f"{sweep:14s} {defense:14s} {str(x):>6s}  bits {m.bits:.3f} [{m.lo:.3f}, {m.hi:.3f}]"
          f"  success {succ:.3f}  {secs:6.1f}s", flush=True)


def image_sweeps(T, defs, n_boot):
    base = {**DEFAULTS, "eot": 8}
    for name, d in defs.items():
        if d.token_cap is not None or d.ensemble > 1:
            continue  # text-side defenses: the image attack does not see them
        for steps in (5, 10, 25, 50, 100):
            t0 = time.perf_counter()
            r = T.attack_images([(1, d)], {}, "calib", 1.0, {**base, "steps": steps}, seed=0)
            record("image steps", name, steps, *measure(T, r, {}, d, n_boot),
                   time.perf_counter() - t0)
        for restarts in (2, 4):
            t0 = time.perf_counter()
            r = T.attack_images([(1, d)], {}, "calib", 1.0,
                                {**base, "steps": 25, "restarts": restarts}, seed=0)
            record("image restarts", name, restarts, *measure(T, r, {}, d, n_boot),
                   time.perf_counter() - t0)
        for recipe, steps in (("pgd", 25), ("pgd", 50), ("pgd", 100), ("square", 100),
                              ("square", 1000)):
            t0 = time.perf_counter()
            r = T.attack_images([(1, d)], {}, "calib", 1.0,
                                {**base, "recipe": recipe, "steps": steps}, seed=0)
            record(f"{recipe} steps", name, steps, *measure(T, r, {}, d, n_boot),
                   time.perf_counter() - t0)
        t0 = time.perf_counter()
        r = T.attack_images([(1, d)], {}, "calib", 64.0, {**base, "steps": 50}, seed=0)
        record("unbounded", name, 64, *measure(T, r, {}, d, n_boot), time.perf_counter() - t0)


def eot_sweep(T, n_boot):
    for level in (0.2, 0.4):
        d = Knobs(purify="noise", level=level, draws=8)
        for eot in (1, 4, 8, 16, 32):
            t0 = time.perf_counter()
            r = T.attack_images([(1, d)], {}, "calib", 1.0,
                                {**DEFAULTS, "steps": 25, "eot": eot}, seed=0)
            record("image eot", f"noise {level}", eot, *measure(T, r, {}, d, n_boot),
                   time.perf_counter() - t0)


def text_sweep(T, defs, names, p_img, k, checkpoints, n_boot, sweep):
    """GCG in chunks (warm-started), the final image attack after each chunk."""
    xa, ya = T.images("attack")
    o = T._options(None)
    for name in names:
        d = defs[name]
        mix = [(1.0, d)]
        p_eff, k_eff = T.budget_split(mix, {"image": p_img, "text": k * T.token_power})
        eps = T._eps(p_eff, "l2")
        t0 = time.perf_counter()
        x_att, per_target = xa, False
        if eps > 0:
            x_rep, t_rep = xa.repeat_interleave(K, 0), torch.arange(K).repeat(len(xa))
            pipe = T._pipes(mix, None, seed=101)
            x_att = T._image_attack(pipe, x_rep, t_rep, eps, T.inner_options(o), 0).x_adv
            per_target = True
        sides = T.text_sides(mix, x_att, per_target, o["eot"], seed=202)
        sfx, done = None, 0
        for c in checkpoints:
            if c > done and k_eff > 0:
                sfx = atk.gcg_mixture(sides, torch.from_numpy(ya), k_eff, steps=c - done,
                                      n_cand=o["n_cand"], topk=o["topk"], seed=c,
                                      init=sfx).suffixes
                done = c
            r = T.attack_images(mix, sfx or {}, "calib", p_eff, o, seed=0)
            record(sweep, name, c, *measure(T, r, sfx or {}, d, n_boot),
                   time.perf_counter() - t0, tokens=k_eff, p_image=p_eff)


def doubled(o: dict) -> dict:
    """The GCG budget doubled: twice the minimum and maximum steps, half the plateau gain."""
    return {"text_steps": 2 * o["text_steps"], "text_max": 2 * max(o["text_max"], o["text_steps"]),
            "text_tol": o["text_tol"] / 2}


def plateau_sweep(T, defs, names, power, n_boot, sweep):
    """The real oracle (``T.attack``) at the default GCG budget and at twice it.

    ``x`` is the GCG steps the attack actually ran (its plateau rule may stop early); the
    row's ``budget`` says which budget it was.
    """
    o = T._options(None)
    for name in names:
        d = defs[name]
        for budget, opts in (("default", {}), ("2x", doubled(o))):
            t0 = time.perf_counter()
            a = T.attack([(1.0, d)], power, split="calib", seed=0, options=opts)
            out = T.evaluate(a, d, split="calib", seed=0)
            m = mi_with_ci(out.sent, out.answers, K, n_boot, seed=0)
            rounds = o["rounds"] if power.get("image", 0) > 0 else 1
            steps = max(len(a.trace["text_loss"]) - rounds, 0)
            record(sweep, name, steps, m, float((out.sent == out.answers).mean()),
                   time.perf_counter() - t0, budget=budget, tokens=a.payload.tokens)


def rounds_sweep(T, defs, n_boot):
    for name in ("no defense",):
        d = defs[name]
        for rounds in (1, 2, 4):
            t0 = time.perf_counter()
            a = T.attack([(1.0, d)], {"image": 0.5, "text": 1.0}, split="calib", seed=0,
                         options={"rounds": rounds})
            o = T.evaluate(a, d, split="calib", seed=0)
            m = mi_with_ci(o.sent, o.answers, K, n_boot, seed=0)
            record("joint rounds", name, rounds, m, float((o.sent == o.answers).mean()),
                   time.perf_counter() - t0)


def plot(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("image steps", "APGD steps (P=1)"), ("image restarts", "APGD restarts (25 steps)"),
              ("image eot", "EOT draws (noise, 25 steps)"), ("square steps", "Square queries"),
              ("text steps", "GCG steps, text only (k=8)"),
              ("joint steps", "GCG steps, joint (P=0.5, k=8)"),
              ("text plateau", "GCG to a plateau, text only (k=8): default, 2x"),
              ("joint plateau", "GCG to a plateau, joint (0.5 + 0.5): default, 2x")]
    panels = [p for p in panels if any(r["sweep"] == p[0] for r in ROWS)]
    cols = math.ceil(len(panels) / 2)
    fig, axes = plt.subplots(2, cols, figsize=(4.7 * cols, 8), squeeze=False)
    for ax in axes.ravel()[len(panels):]:
        ax.axis("off")
    for ax, (sweep, title) in zip(axes.ravel(), panels, strict=False):
        by: dict[str, list[dict]] = {}
        for r in ROWS:
            if r["sweep"] == sweep:
                by.setdefault(r["defense"], []).append(r)
        for name, rows in by.items():
            x = np.array([r["x"] for r in rows], float)
            b = np.array([r["bits"] for r in rows])
            lo, hi = np.array([r["lo"] for r in rows]), np.array([r["hi"] for r in rows])
            ax.errorbar(x, b, yerr=[np.maximum(b - lo, 0), np.maximum(hi - b, 0)], marker="o",
                        capsize=3, label=name)
        if sweep == "square steps":
            for r in ROWS:
                if r["sweep"] == "image steps" and r["x"] == 50:
                    ax.axhline(r["bits"], ls=":", color="grey")
        ax.set_xscale("symlog", linthresh=1)
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("bits I(T; answer)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _row(sweep, defense, x):
    for r in ROWS:
        if r["sweep"] == sweep and r["defense"] == defense and r["x"] == x:
            return r
    return None


def _near(sweep, defense, x):
    """The row of ``sweep`` under ``defense`` whose budget is closest to ``x`` (ties: larger).

    The image sweeps measure a fixed grid of step counts (5, 10, 25, 50, 100), which need not
    contain a preset's default (e.g. 30 steps)."""
    rows = [r for r in ROWS if r["sweep"] == sweep and r["defense"] == defense]
    return min(rows, key=lambda r: (abs(r["x"] - x), -r["x"])) if rows else None


def verdicts() -> list[str]:
    """Is each attack flat at its default budget? Gradient-free vs gradient; unbounded."""
    out = ["| check | defense | at default | at larger budget | difference | CI half-width "
           "| verdict |", "|---|---|---|---|---:|---:|---|"]
    steps, eot, text = DEFAULTS["steps"], DEFAULTS["eot"], DEFAULTS["text_steps"]
    checks = [("image steps", steps, "image steps", 2 * steps, "steps"),
              ("image steps", 25, "image restarts", 4, "restarts 1 -> 4 (25 steps)"),
              ("image eot", eot, "image eot", 2 * eot, "EOT draws"),
              ("text steps", text // 2, "text steps", text, "GCG steps, text only (k=8)"),
              ("joint steps", text // 2, "joint steps", text, "GCG steps, joint"),
              ("joint steps", text, "joint steps", 2 * text, "GCG steps, joint (long run)"),
              ("text steps", text, "text steps", 2 * text, "GCG steps, text only (long run)"),
              ("text steps", 2 * text, "text steps", 4 * text, "GCG steps, text only (4x)"),
              ("joint rounds", 2, "joint rounds", 4, "joint rounds 2 -> 4")]
    defenses = sorted({r["defense"] for r in ROWS})
    for sweep in ("text plateau", "joint plateau"):
        for d in defenses:
            a = next((r for r in ROWS if r["sweep"] == sweep and r["defense"] == d
                      and r.get("budget") == "default"), None)
            b = next((r for r in ROWS if r["sweep"] == sweep and r["defense"] == d
                      and r.get("budget") == "2x"), None)
            if a is None or b is None:
                continue
            diff = b["bits"] - a["bits"]
            half = max(b["hi"] - b["bits"], b["bits"] - b["lo"])
            ok = "flat within CI" if diff <= half else "NOT converged"
            out.append(f"| GCG {sweep} ({a['x']} -> {b['x']} steps, k={a.get('tokens')}) | "
                       f"{d} | {a['bits']:.3f} | {b['bits']:.3f} | {diff:+.3f} | {half:.3f} "
                       f"| {ok} |")
    for s0, x0, s1, x1, what in checks:
        for d in defenses:
            a, b = _row(s0, d, x0), _row(s1, d, x1)
            if s0 == s1 == "image steps":
                a, b = _near(s0, d, x0), _near(s1, d, x1)
            if a is None or b is None or a is b:
                continue
            diff = b["bits"] - a["bits"]
            half = max(b["hi"] - b["bits"], b["bits"] - b["lo"])
            ok = "flat within CI" if diff <= half else "NOT converged"
            out.append(f"| {what} | {d} | {a['bits']:.3f} | {b['bits']:.3f} | {diff:+.3f} | "
                       f"{half:.3f} | {ok} |")
    out += ["", "| gradient-free check | defense | Square (1000 queries) | APGD (default) "
            "| PGD (same steps) | verdict |", "|---|---|---:|---:|---:|---|"]
    for d in defenses:
        sq, ap, pg = (_row("square steps", d, 1000), _near("image steps", d, steps),
                      _near("pgd steps", d, steps))
        if sq is None or ap is None:
            continue
        half = max(ap["hi"] - ap["bits"], ap["bits"] - ap["lo"])
        ok = "Square not stronger" if sq["bits"] <= ap["bits"] + half else "GRADIENT MASKING?"
        out.append(f"| Square vs auto ({ap['x']} steps) | {d} | {sq['bits']:.3f} | "
                   f"{ap['bits']:.3f} | "
                   f"{pg['bits'] if pg else float('nan'):.3f} | {ok} |")
    out += ["", "| unbounded (P = 64) | targeted success | bits |", "|---|---:|---:|"]
    for d in defenses:
        u = _row("unbounded", d, 64)
        if u is not None:
            out.append(f"| {d} | {u['success']:.3f} | {u['bits']:.3f} |")
    return out


def write_md(path: Path, images: int, n_boot: int, wall: float, flags: str = "") -> None:
    lines = ["# Attack convergence on the digits target", "",
             f"`PYTHONPATH=. python experiments/validate_attack_convergence.py --images "
             f"{images}{flags}`: {images} calibration images x 10 targets, bootstrap "
             f"{n_boot}; wall {wall / 60:.1f} min on 2 shared cores. Bits are "
             "I(T; answer) (Miller-Madow, so about -0.1 at chance here) with a 95% CI; "
             "success is the targeted success rate. `x` is the budget of the sweep (steps, "
             "restarts, EOT draws, queries, GCG steps, rounds).", "",
             f"Defaults checked: `{DEFAULTS}`. The image step, restart and Square "
             "sweeps run at 8 EOT draws against noise; the text and joint sweeps run GCG in "
             "warm-started chunks after one inner image attack (the `rounds = 1` schedule) "
             "and finish each checkpoint with the default image attack.", "",
             "A verdict compares the rise from the default to a larger budget with the "
             "marginal 95% CI half-width at the larger budget (lenient: both sides use the "
             "same images and seed, so a paired interval would be narrower); the difference "
             "column shows where bits still rise.", "", "## Verdicts", "",
             *verdicts(), "", "## Every measurement", "",
             "| sweep | defense | x | bits | CI | success | s |",
             "|---|---|---:|---:|---|---:|---:|"]
    for r in ROWS:
        lines.append(f"| {r['sweep']} | {r['defense']} | {r['x']} | {r['bits']:.3f} | "
                     f"[{r['lo']:.3f}, {r['hi']:.3f}] | {r['success']:.3f} | "
                     f"{r['seconds']:.1f} |")
    path.write_text("\n".join(lines) + "\n")


def make_target(preset: str, images: int) -> DigitsTarget:
    """The digits target of ``preset`` (its ``target`` block) or the default one."""
    data = {"n_attack": 64, "n_calib": images, "n_held": 100}
    if not preset:
        return DigitsTarget(data=data)
    from omegaconf import OmegaConf

    spec = OmegaConf.to_container(OmegaConf.load(preset).target, resolve=True)
    spec.pop("_target_", None)
    spec["data"] = {**data, **spec.get("data", {}), "n_calib": images}
    return DigitsTarget(**spec)


def _gcg_options(factor: int, base: dict) -> dict:
    """GCG options at ``factor`` times the default budget: steps, maximum and 1/factor the
    plateau thresholds (the preset's "2x GCG steps" check is ``factor = 2``)."""
    return {"text_steps": base["text_steps"] * factor, "text_max": base["text_max"] * factor,
            "text_tol": base["text_tol"] / factor,
            "text_atol": base.get("text_atol", 0.0) / factor}


def preset_checks(seeds: list[int], store: str, escalate: list[str], max_factor: int,
                  tag: str, names: list[str] | None = None) -> None:
    """The preset's attack-strength checks on each seed, read from / kept in ``store``.

    Each check of ``conf/validate/checks.yaml`` (the quick preset with its checks; default
    vs its stronger options, paired on the held-out images), and for each check named in
    ``escalate`` the escalation rule: GCG at 1x, 2x, 4x, ... the default budget, stopping at
    the first doubling whose paired difference has a CI containing 0 (the attack has
    converged at the smaller budget), or at ``max_factor``.
    """
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from minimax.validate.measure import paired_difference
    from minimax.validate.run import Measurer, make_target
    from minimax.validate.store import StoredTarget

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="validate",
                      overrides=["validate=checks", f"validate.store={store}"]).validate
    out = []
    t0 = time.perf_counter()
    for seed in seeds:
        target = StoredTarget(make_target(cfg, seed), Path(store),
                              (OmegaConf.to_container(cfg.target, resolve=True), int(seed)))
        m = Measurer(target, cfg, seed)
        base_opts = dict(target.defaults)
        for spec in OmegaConf.to_container(cfg.checks, resolve=True):
            lev, power, name = dict(spec.get("defense") or {}), dict(spec["power"]), spec["name"]
            if names and name not in names:
                continue
            ts = time.perf_counter()
            _, base = m.adv(lev, power, "held", label=f"check {name} default")
            _, strong = m.adv(lev, power, "held", spec.get("options"))
            d = paired_difference(strong, base)
            out.append({"seed": seed, "check": name, "budget": "default vs options",
                        "options": spec.get("options"), "bits": base.bits,
                        "bits_stronger": strong.bits, "delta": d.diff, "delta_lo": d.lo,
                        "delta_hi": d.hi, "converged": bool(d.lo <= 0),
                        "seconds": time.perf_counter() - ts})
            print(json.dumps(out[-1]), f"store hits {target.hits} misses {target.misses}",
                  flush=True)
            if name not in escalate or d.lo <= 0:
                continue
            prev, f = strong, 2  # the check's options are the 2x budget (_gcg_options)
            while 2 * f <= max_factor:
                ts = time.perf_counter()
                _, nxt = m.adv(lev, power, "held", _gcg_options(2 * f, base_opts))
                d = paired_difference(nxt, prev)
                out.append({"seed": seed, "check": name, "budget": f"{2 * f}x vs {f}x GCG",
                            "options": _gcg_options(2 * f, base_opts), "bits": prev.bits,
                            "bits_stronger": nxt.bits, "delta": d.diff, "delta_lo": d.lo,
                            "delta_hi": d.hi, "converged": bool(d.lo <= 0),
                            "seconds": time.perf_counter() - ts})
                print(json.dumps(out[-1]), flush=True)
                prev, f = nxt, 2 * f
                if d.lo <= 0:
                    break
    stem = OUT / f"validate_attack_convergence_checks{('_' + tag) if tag else ''}"
    stem.with_suffix(".json").write_text(json.dumps(
        {"seeds": seeds, "store": store, "wall_s": time.perf_counter() - t0, "rows": out},
        indent=1))
    write_checks_md(stem.with_suffix(".md"), out)


def write_checks_md(path: Path, rows: list[dict]) -> None:
    lines = ["# Attack-strength checks of the quick preset, every seed", "",
             "`PYTHONPATH=. python experiments/validate_attack_convergence.py --checks 0,1,2 "
             "--store STORE`: each check of `conf/validate/checks.yaml` measured on the "
             "held-out images of each seed (paired bootstrap over images, 95%); the escalated "
             "check doubles the GCG budget until a doubling adds nothing within its CI (each "
             "row's GCG options are in the JSON beside this page). `s`: wall seconds of the "
             "row's new measurements on 2 shared cores; 0: read from the store.", "",
             "| seed | check | budgets | bits | bits (stronger) | difference [95% CI] | "
             "no rise beyond CI | s |", "|---:|---|---|---:|---:|---|---|---:|"]
    for r in rows:
        lines.append(f"| {r['seed']} | {r['check']} | {r['budget']} | {r['bits']:.3f} | "
                     f"{r['bits_stronger']:.3f} | {r['delta']:+.3f} [{r['delta_lo']:+.3f}, "
                     f"{r['delta_hi']:+.3f}] | {'yes' if r['converged'] else 'no'} | "
                     f"{r['seconds']:.0f} |")
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--n-boot", type=int, default=200)
    ap.add_argument("--text-checkpoints", type=str, default="0,8,16,32")
    ap.add_argument("--only", type=str, default="image,eot,text,joint,rounds",
                    help="comma list of sweeps to run: image, eot, text, joint, rounds, "
                         "plateau-text, plateau-joint (the oracle at its default GCG budget "
                         "and at twice it)")
    ap.add_argument("--text-defenses", type=str, default="no defense,ensemble 3,cap 3")
    ap.add_argument("--joint-defenses", type=str,
                    default="no defense,adv-ft 0.5,noise 0.2,ensemble 3,cap 3,mask 0.37")
    ap.add_argument("--tag", type=str, default="", help="suffix of the output file names")
    ap.add_argument("--preset", type=str, default="",
                    help="a validation preset (e.g. conf/validate/quick.yaml): its target's "
                         "model, data sizes and attack budgets are the ones checked")
    ap.add_argument("--from-json", action="store_true",
                    help="re-render the .md and .png from the stored .json, measuring nothing")
    ap.add_argument("--checks", type=str, default="",
                    help="comma list of seeds: run the quick preset's attack-strength checks "
                         "on each (with --store), escalating the GCG budget of --escalate")
    ap.add_argument("--store", type=str, default="", help="measurement store for --checks")
    ap.add_argument("--escalate", type=str, default="text, adv-ft 0.5, 2x GCG steps",
                    help="semicolon list of check names whose GCG budget is doubled until flat")
    ap.add_argument("--max-factor", type=int, default=8)
    ap.add_argument("--check-names", type=str, default="",
                    help="semicolon list: run only these checks of the preset (default all)")
    ap.add_argument("--checks-from-log", type=str, default="",
                    help="comma list of logs: write the checks tables from the JSON lines "
                         "--checks runs printed")
    args = ap.parse_args()
    if args.checks_from_log:
        dec, seen, rows = json.JSONDecoder(), set(), []
        for log in args.checks_from_log.split(","):  # several runs' logs: each row once
            for line in Path(log).read_text().splitlines():
                if line.startswith('{"seed"'):
                    r = dec.raw_decode(line)[0]
                    if (r["seed"], r["check"], r["budget"]) not in seen:
                        seen.add((r["seed"], r["check"], r["budget"]))
                        rows.append(r)
        rows.sort(key=lambda r: (r["seed"], r["check"], r["budget"] != "default vs options"))
        stem = OUT / f"validate_attack_convergence_checks{('_' + args.tag) if args.tag else ''}"
        stem.with_suffix(".json").write_text(json.dumps({"rows": rows}, indent=1))
        write_checks_md(stem.with_suffix(".md"), rows)
        return
    if args.checks:
        torch.set_num_threads(1)
        preset_checks([int(s) for s in args.checks.split(",")], args.store,
                      args.escalate.split(";"), args.max_factor, args.tag,
                      [n for n in args.check_names.split(";") if n])
        return
    if args.from_json and args.tag:  # every run tagged TAG* (e.g. a preset's sweeps) in one page
        blobs = [json.loads(f.read_text())
                 for f in sorted(OUT.glob(f"validate_attack_convergence_{args.tag}*.json"))]
        DEFAULTS.clear()
        DEFAULTS.update(blobs[0]["defaults"])
        seen = set()
        for b in blobs:  # a budget measured by two runs: the first file's (sorted by name)
            for r in b["rows"]:
                if (r["sweep"], r["defense"], r["x"]) not in seen:
                    seen.add((r["sweep"], r["defense"], r["x"]))
                    ROWS.append(r)
        flags = f" --preset {blobs[0]['preset']}" if blobs[0].get("preset") else ""
        write_md(OUT / f"validate_attack_convergence_{args.tag}.md", blobs[0]["images"],
                 blobs[0].get("n_boot", 200), sum(b["wall_s"] for b in blobs), flags)
        plot(OUT / f"validate_attack_convergence_{args.tag}.png")
        return
    if args.from_json:
        blob = json.loads((OUT / "validate_attack_convergence.json").read_text())
        ROWS.extend(blob["rows"])
        extra = OUT / "validate_attack_convergence_long.json"
        if extra.exists():  # the long GCG run (--tag long) joins the verdicts
            ROWS.extend(r for r in json.loads(extra.read_text())["rows"] if r["x"] > 32)
        extra = OUT / "validate_attack_convergence_textimg.json"
        if extra.exists():  # text alone against the image-side defenses (--tag textimg)
            ROWS.extend(json.loads(extra.read_text())["rows"])
        write_md(OUT / "validate_attack_convergence.md", blob["images"], blob.get("n_boot", 200),
                 blob["wall_s"])
        plot(OUT / "validate_attack_convergence.png")
        return
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    T = make_target(args.preset, args.images)
    DEFAULTS.clear()
    DEFAULTS.update(T.defaults)
    menu = T.menu(1.0)
    defs = {"no defense": menu["no defense"], "noise 0.2": menu["noise 0.2"],
            "adv-ft 0.5": menu["adv-ft 0.5"], "mask 0.37": menu["mask 0.37"],
            "cap 3": menu["cap 3"], "ensemble 3": menu["ensemble 3"]}
    cps = [int(c) for c in args.text_checkpoints.split(",")]
    only = set(args.only.split(","))
    if "image" in only:
        image_sweeps(T, defs, args.n_boot)
    if "eot" in only:
        eot_sweep(T, args.n_boot)
    if "text" in only:
        text_sweep(T, defs, args.text_defenses.split(","), 0.0, 8, cps, args.n_boot,
                   "text steps")
    if "joint" in only:
        text_sweep(T, defs, args.joint_defenses.split(","), 0.5, 8, cps, args.n_boot,
                   "joint steps")
    if "rounds" in only:
        rounds_sweep(T, defs, args.n_boot)
    if "plateau-text" in only:
        plateau_sweep(T, defs, args.text_defenses.split(","), {"text": 1.0}, args.n_boot,
                      "text plateau")
    if "plateau-joint" in only:
        plateau_sweep(T, defs, args.joint_defenses.split(","), {"image": 0.5, "text": 0.5},
                      args.n_boot, "joint plateau")
    wall = time.perf_counter() - t0
    OUT.mkdir(exist_ok=True)
    stem = "validate_attack_convergence" + (f"_{args.tag}" if args.tag else "")
    (OUT / f"{stem}.json").write_text(json.dumps(
        {"defaults": DEFAULTS, "preset": args.preset, "images": args.images,
         "n_boot": args.n_boot,
         "wall_s": wall, "rows": ROWS}, indent=1))
    write_md(OUT / f"{stem}.md", args.images, args.n_boot, wall)
    if not args.tag:
        plot(OUT / f"{stem}.png")
    print(f"wall {wall:.0f}s ({math.ceil(wall / 60)} min)")


if __name__ == "__main__":
    main()
