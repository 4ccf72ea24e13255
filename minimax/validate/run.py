"""The validation experiment: measure, calibrate, predict, solve, check.

Steps (each writes rows to the report):

1. build the model (cached) and measure clean zero-shot accuracy and the legitimate
   capacity ``I(Y; Y_hat)`` with a bootstrap CI, with and without each defence;
2. calibration conditions on the calibration images: targeted PGD-L2 on the image at
   several powers under each image defence, GCG suffixes of several lengths on the text;
3. the robustness-evaluation checklist (Carlini et al. 2019, "On Evaluating Adversarial
   Robustness"): more steps and restarts, an unbounded attack, transfer from the
   undefended model; Linf PGD as a second threat model;
4. held-out conditions on disjoint images: other powers, other intensities, joint
   image+text allocations;
5. fit the channels (:mod:`minimax.validate.calibrate`), predict the held-out bits, and
   report Spearman's rho and the mean absolute error;
6. solve the calibrated game, realise its minimax defence and >= 5 alternatives of the
   same budget, attack each adaptively (PGD + GCG, best split of the attacker's budget)
   and rank them;
7. the asymmetry: relative protection of the noise and the bandwidth defences vs power.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from minimax.validate import calibrate as cal
from minimax.validate.attacks import defended_image_embeddings, gcg, pgd
from minimax.validate.data import load_digits_split
from minimax.validate.defences import Defence, lever_values, pixel_order
from minimax.validate.game_bridge import best_response_value, realise, solve_game
from minimax.validate.measure import mi_with_ci
from minimax.validate.model import DigitsCLIPConfig, build_digits_clip
from minimax.validate.pipeline import Pipeline

log = logging.getLogger(__name__)
K = 10


class Lab:
    """Holds the model variants, the data and the attack caches of one run."""

    def __init__(self, cfg) -> None:
        self.cfg = cfg
        self.split = load_digits_split(cfg.data.n_attack, cfg.data.n_calib, cfg.data.n_held,
                                       cfg.seed)
        self.model_cfg = DigitsCLIPConfig(**dict(cfg.model))
        self.models: dict[float, Any] = {}
        self.order = pixel_order(self.split.x_train)
        self.suffixes: dict[tuple, dict[int, torch.Tensor]] = {}
        self.units = dict(cfg.levers)
        self.k_max = int(cfg.text.k_max)

    def model(self, adv_eps: float):
        if adv_eps not in self.models:
            mc = DigitsCLIPConfig(**{**asdict(self.model_cfg), "adv_eps": float(adv_eps)})
            self.models[adv_eps] = build_digits_clip(self.split, mc)
        return self.models[adv_eps]

    def images(self, which: str):
        x = getattr(self.split, f"x_{which}")
        y = getattr(self.split, f"y_{which}")
        return torch.from_numpy(x), y

    def suffix(self, k: int, d: Defence, steps: int | None = None) -> dict[int, torch.Tensor]:
        """GCG suffixes of ``k`` tokens against the text side of ``d`` (cached, warm-started).

        Fit on the attacker's images through the *undefended-image* base tower (the
        attacker's surrogate), so one suffix serves every image-side defence.
        """
        tc = self.cfg.text
        steps = steps or tc.steps
        key = (k, d.ensemble, steps)
        if k <= 0:
            return {}
        if key not in self.suffixes:
            shorter = [kk for (kk, e, st) in self.suffixes if kk < k and e == d.ensemble
                       and st == steps]
            init = self.suffixes[(max(shorter), d.ensemble, steps)] if shorter else None
            m = self.model(0.0)
            xa = torch.from_numpy(self.split.x_attack)
            emb = defended_image_embeddings(m, Defence(), self.order, xa)
            t0 = time.perf_counter()
            self.suffixes[key] = gcg(m, Defence(ensemble=d.ensemble), emb,
                                     torch.from_numpy(self.split.y_attack), k, steps=steps,
                                     n_cand=tc.n_cand, topk=tc.topk, seed=self.cfg.seed,
                                     init=init)
            log.info("GCG k=%d ens=%d steps=%d: %.1fs", k, d.ensemble, steps,
                     time.perf_counter() - t0)
        return self.suffixes[key]

    def legit(self, d: Defence, which: str = "calib"):
        x, y = self.images(which)
        pipe = Pipeline(self.model(d.adv_eps), d, self.order, seed=self.cfg.seed)
        pred = pipe.predict(x, torch.zeros(len(x), dtype=torch.long))
        return float((pred == y).mean()), mi_with_ci(y, pred, K, self.cfg.n_boot, seed=0)

    def attack(self, d: Defence, a_img: float, k: int, which: str = "calib",
               norm: str = "l2", steps: int | None = None, restarts: int = 1,
               eps: float | None = None, transfer_from: Defence | None = None,
               text_steps: int | None = None):
        """Targeted attack toward every target for every image; returns (success, MI).

        The adaptive attacker against a token cap optimises only the tokens it keeps.
        """
        ac = self.cfg.attack
        x, _ = self.images(which)
        n = len(x)
        xx = x.repeat_interleave(K, 0)
        tt = torch.arange(K).repeat(n)
        k_eff = k if d.token_cap is None else min(k, d.token_cap)
        sfx = self.suffix(k_eff, d, text_steps) if k_eff > 0 else None
        pipe = Pipeline(self.model(d.adv_eps), d, self.order, sfx, seed=self.cfg.seed)
        if eps is None:
            eps = math.sqrt(a_img) if norm == "l2" else math.sqrt(a_img / xx[0].numel())
        src = pipe
        if transfer_from is not None:
            src = Pipeline(self.model(transfer_from.adv_eps), transfer_from, self.order, sfx)
        xadv = pgd(src, xx, tt, eps, norm=norm, steps=steps or ac.steps, restarts=restarts,
                   eot=ac.eot, seed=self.cfg.seed) if a_img > 0 else xx
        pred = pipe.predict(xadv, tt)
        t2, p2 = tt.numpy().reshape(n, K), pred.reshape(n, K)
        return float((p2 == t2).mean()), mi_with_ci(t2, p2, K, self.cfg.n_boot, seed=0)


def _defence(spec) -> Defence:
    return Defence(**dict(spec))


def run(cfg, out_dir: str | Path) -> dict[str, Any]:
    """Run the validation described by ``cfg`` and write the report into ``out_dir``."""
    from minimax.validate.report import write_report

    t_start = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    lab = Lab(cfg)
    res: dict[str, Any] = {"errors": [], "conditions": [], "checks": [], "legit": []}
    tau = float(cfg.text.token_power)

    # 1. clean model and legitimate capacity --------------------------------------------
    acc, mi = lab.legit(Defence())
    res["clean_accuracy"], res["legit_capacity"] = acc, mi._asdict()
    log.info("clean zero-shot accuracy %.3f, I(Y;Y_hat) = %.3f [%.3f, %.3f] bits", acc, *mi[:3])

    def lev(d: Defence) -> dict[str, float]:
        return lever_values(d, lab.units, lab.k_max)

    conds: list[cal.Condition] = []

    def add(label, d, a_img, k, split, kind="adv", **kw):
        try:
            if kind == "leg":
                acc, m = lab.legit(d, "calib" if split == "calib" else "held")
                succ = acc
            else:
                succ, m = lab.attack(d, a_img, k, "calib" if split == "calib" else "held", **kw)
        except Exception as e:  # a failed point records its traceback; the sweep goes on
            res["errors"].append({"label": label, "error": repr(e),
                                  "traceback": traceback.format_exc()})
            log.exception("condition %s failed", label)
            return None
        c = cal.Condition(label, kind, split, {"image": a_img, "text": tau * k}, lev(d),
                          m.bits, m.lo, m.hi,
                          {"success": succ, "defence": d.key(), "k": k, "P_image": a_img})
        conds.append(c)
        log.info("%-5s %-40s bits=%.3f [%.3f, %.3f] success/acc=%.3f", split, label, m.bits,
                 m.lo, m.hi, succ)
        return c

    # 2. calibration conditions -----------------------------------------------------------
    ccfg = cfg.conditions
    image_defs = {name: _defence(spec) for name, spec in ccfg.image_defences.items()}
    held_defs = {name: _defence(spec) for name, spec in ccfg.held_defences.items()}
    for name, d in {"none": Defence(), **image_defs}.items():
        add(f"legit {name}", d, 0.0, 0, "calib", kind="leg")
        for p in ccfg.powers:
            add(f"image P={p:g} {name}", d, float(p), 0, "calib")
    for name, spec in ccfg.text_defences.items():
        d = _defence(spec.defence)
        for k in spec.tokens:
            add(f"text k={k} {name}", d, 0.0, int(k), "calib")

    for a_img, k, tname in ccfg.joint_calib:
        d = _defence(ccfg.text_defences[tname].defence)
        add(f"joint P={a_img:g} k={k} {tname}", d, float(a_img), int(k), "calib")

    # 3. checklist ------------------------------------------------------------------------
    chk = cfg.checks
    for name, d in {"none": Defence(), **image_defs}.items():
        p = float(chk.power)
        try:
            base = lab.attack(d, p, 0)
            more = lab.attack(d, p, 0, steps=chk.steps_factor * cfg.attack.steps,
                              restarts=chk.restarts)
            unb = lab.attack(d, float(chk.unbounded_power), 0)
            trans = lab.attack(d, p, 0, transfer_from=Defence())
            linf = lab.attack(d, p, 0, norm="linf")
            res["checks"].append({
                "defence": name, "power": p, "bits": base[1].bits, "success": base[0],
                "bits_more_steps_restarts": more[1].bits, "success_more": more[0],
                "delta_bits": more[1].bits - base[1].bits,
                "success_unbounded": unb[0], "bits_transfer": trans[1].bits,
                "success_transfer": trans[0], "bits_linf_same_l2_envelope": linf[1].bits,
                "masking_signs": _masking_signs(base, more, unb, trans, chk.tolerance_bits),
            })
            log.info("check %s: %s", name, res["checks"][-1])
        except Exception as e:
            res["errors"].append({"label": f"check {name}", "error": repr(e),
                                  "traceback": traceback.format_exc()})
    try:
        k = int(min(ccfg.text_defences.none.tokens))
        b1 = lab.attack(Defence(), 0.0, k)
        b2 = lab.attack(Defence(), 0.0, k, text_steps=chk.steps_factor * cfg.text.steps)
        res["checks"].append({"defence": "text none", "power": tau * k, "bits": b1[1].bits,
                              "success": b1[0], "bits_more_steps_restarts": b2[1].bits,
                              "success_more": b2[0], "delta_bits": b2[1].bits - b1[1].bits,
                              "masking_signs": "" if b2[1].bits - b1[1].bits
                              <= chk.tolerance_bits else "GCG not converged"})
    except Exception as e:
        res["errors"].append({"label": "check text", "error": repr(e),
                              "traceback": traceback.format_exc()})

    # 4. held-out conditions --------------------------------------------------------------
    for name, d in {"none": Defence(), **image_defs, **held_defs}.items():
        if name in held_defs:
            add(f"legit {name}", d, 0.0, 0, "held", kind="leg")
        powers = ccfg.held_powers if name not in held_defs else [*ccfg.powers, *ccfg.held_powers]
        for p in powers:
            add(f"image P={p:g} {name}", d, float(p), 0, "held")
    for a_img, k, tname in ccfg.joint:
        d = _defence(ccfg.text_defences[tname].defence)
        add(f"joint P={a_img:g} k={k} {tname}", d, float(a_img), int(k), "held")

    # 5. calibration and prediction -------------------------------------------------------
    calib = [c for c in conds if c.split == "calib"]
    params, rms = {}, {}
    params["image"], rms["image"] = cal.fit_channel(calib, "image")
    pi = params["image"]
    # Text alone sits in the link's dead zone; the joint calibration conditions identify it.
    params["text"], rms["text"] = cal.fit_channel(
        calib, "text", fixed={"alpha": 1e-6, "rho": 0.0, "S": pi["S"] / pi["N"], "N": 1.0},
        link_q=pi["link_q"], others={"image": pi})
    res["params"], res["fit_rms_bits"] = params, rms
    for c in conds:
        c.extra["predicted"] = cal.predict(params, c)
    held = [c for c in conds if c.split == "held" and c.kind == "adv"]
    pred = np.array([c.extra["predicted"] for c in held])
    meas = np.array([c.bits for c in held])
    res["heldout"] = {"n": len(held), "spearman": cal.spearman(pred, meas),
                      "mae_bits": float(np.mean(np.abs(pred - meas))) if len(held) else None}
    log.info("held-out: %s", res["heldout"])

    # 6. allocation check -----------------------------------------------------------------
    try:
        res["allocation"] = _allocation_check(lab, cfg, params)
    except Exception as e:
        res["errors"].append({"label": "allocation", "error": repr(e),
                              "traceback": traceback.format_exc()})
        log.exception("allocation check failed")

    # 7. asymmetry ------------------------------------------------------------------------
    res["asymmetry"] = _asymmetry(conds, cfg, params)
    res["conditions"] = conds
    res["wall_s"] = time.perf_counter() - t_start
    write_report(res, cfg, out)
    log.info("done in %.1fs; report in %s", res["wall_s"], out)
    return res


def _masking_signs(base, more, unb, trans, tol) -> str:
    signs = []
    if more[1].bits - base[1].bits > tol:
        signs.append("more steps/restarts raise bits")
    if unb[0] < 0.99:
        signs.append(f"unbounded attack only {unb[0]:.2f} success")
    if trans[1].bits - base[1].bits > tol:
        signs.append("transfer beats white-box")
    return "; ".join(signs)


def _allocation_check(lab: Lab, cfg, params) -> dict[str, Any]:
    ac = cfg.allocation
    P, D = float(ac.attacker_budget), float(ac.defender_budget)
    tau = float(cfg.text.token_power)
    sol = solve_game(params, P, D)
    allocs = {"game minimax": sol["levers"]}
    for name, spec in ac.alternatives.items():
        allocs[name] = {k: D * float(v) for k, v in dict(spec).items()}
    rows = []
    for name, levers in allocs.items():
        d = realise(levers, lab.units, lab.k_max, Defence(draws=int(cfg.allocation.draws)))
        realised = lever_values(d, lab.units, lab.k_max)
        pred_raw, pred_attack = best_response_value(params, realised, P)
        splits = []
        for f in ac.image_fractions:
            a_img = f * P
            k = int(round((1 - f) * P / tau))
            k = min(k, lab.k_max)
            try:
                succ, m = lab.attack(d, a_img, k, "held")
                splits.append({"f_image": f, "k": k, "bits": m.bits, "lo": m.lo, "hi": m.hi,
                               "success": succ})
            except Exception as e:
                splits.append({"f_image": f, "k": k, "error": repr(e)})
        ok = [s for s in splits if "bits" in s]
        worst = max(ok, key=lambda s: s["bits"]) if ok else None
        acc, leg = lab.legit(d, "held")
        rows.append({"allocation": name, "levers": levers, "realised": d.key(),
                     "predicted_bits": float(cal.link(pred_raw, q=params["image"]["link_q"])),
                     "predicted_attack": pred_attack,
                     "measured_bits": worst["bits"] if worst else float("nan"),
                     "measured_lo": worst["lo"] if worst else float("nan"),
                     "measured_hi": worst["hi"] if worst else float("nan"),
                     "best_split": worst, "splits": splits, "clean_accuracy": acc,
                     "legit_bits": leg.bits})
        log.info("allocation %-22s %s measured %.3f predicted %.3f", name, d.key(),
                 rows[-1]["measured_bits"], rows[-1]["predicted_bits"])
    order = sorted(rows, key=lambda r: r["measured_bits"])
    rank = 1 + [r["allocation"] for r in order].index("game minimax")
    best = order[0]
    game = next(r for r in rows if r["allocation"] == "game minimax")
    return {"solution": sol, "rows": rows, "game_rank": rank, "n": len(rows),
            "best": best["allocation"],
            "game_minus_best_bits": game["measured_bits"] - best["measured_bits"],
            "game_ci_overlaps_best": bool(game["measured_lo"] <= best["measured_hi"])}


def _asymmetry(conds, cfg, params) -> dict[str, Any]:
    """Relative protection ``R(P) = 1 - I_def(P) / I_none(P)`` from the measured bits."""
    names = cfg.asymmetry
    by = {}
    for c in conds:
        if c.kind == "adv" and c.a["text"] == 0 and c.a["image"] > 0:
            by.setdefault(c.label.split(" ", 2)[2], {}).setdefault(c.a["image"], []).append(c)
    out = {}
    none = by.get("none", {})
    for key in ("noise", "bandwidth"):
        name = names[key]
        rows = []
        for p in sorted(set(none) & set(by.get(name, {}))):
            i0 = np.mean([c.bits for c in none[p]])
            i1 = np.mean([c.bits for c in by[name][p]])
            lv = by[name][p][0].levers
            c0 = cal.raw_capacity(params["image"], p, 0, 0, 0)
            c1 = cal.raw_capacity(params["image"], p, lv["n_image"], lv["s_image"],
                                  lv["b_image"])
            rows.append({"P": p, "bits_none": i0, "bits_defended": i1,
                         "R_measured": 1 - i1 / i0 if i0 > 0.05 else float("nan"),
                         "R_predicted_raw": 1 - c1 / c0 if c0 > 0 else float("nan")})
        out[key] = {"defence": name, "rows": rows}
    return out
