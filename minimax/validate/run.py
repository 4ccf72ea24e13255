"""The validation pipeline over any target: measure, calibrate, empirical game, report.

Written once against :class:`minimax.validate.target.Target`; the target comes from the
config (``validate.target._target_``).  For each seed (model and attack):

1. **clean**: legitimate bits ``I(truth; answer)`` under each clean condition's defense;
2. **calibration conditions** (``calib`` units): attacks at several powers per channel
   under several defenses, and joint attacks under image-side and text-side defenses,
   each optimised against its own defense (``target.attack``), measured by
   ``target.evaluate``; **held-out conditions** (``held`` units): other powers, other
   defense intensities, clean and joint conditions;
3. **channel model** (:mod:`minimax.validate.calibrate`): fit on the calibration
   conditions (threshold caps, interaction terms where the data demand them) and a
   defense-blind baseline the same way; score both on the held-out conditions;
4. **engine prescription**: the calibrated game's one-shot minimax allocation
   (:func:`minimax.validate.game_bridge.prescribe`), realised by ``target.realise``;
5. **empirical game** (:mod:`minimax.validate.empirical`): rows = the target's menu within
   the defender budget (with "no defense"), the prescription and named alternatives;
   grown by double oracle, the defender oracle being the channel model recalibrated
   from the game's cells; output the validated defense, its worst case and the regrets;
6. **decision-level score**: rank correlation of predicted vs measured worst-case bits
   across the budget-matched rows, one-shot and recalibrated leaving each row out,
   beside the defense-blind baseline;
7. **attack-strength checks**: stronger attack options vs the defaults, paired.

Every step records its failures and the run goes on; ``status`` is ``"failed"`` when no
empirical game could be solved (the CLI then exits non-zero).

With ``workers >= 2`` the independent cells of steps 2, 5 and 7 (the conditions and the
checks in one batch; each double-oracle batch) are first computed by that many worker
processes into the measurement store (a temporary one when ``store`` is unset) and then
read back by this same serial program (:mod:`minimax.validate.parallel`), so every cell
equals the serial path's (docs/validation.md §5.7).  Long runs log a line per cell.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
import traceback
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from minimax.validate import calibrate as cal
from minimax.validate.empirical import EmpiricalGame, solve_empirical
from minimax.validate.game_bridge import prescribe, proposer, split_predictor
from minimax.validate.measure import bootstrap_weights, max_bits, outcome_bits, paired_difference
from minimax.validate.parallel import (
    Call,
    Stopwatch,
    attack_call,
    clean_call,
    n_workers,
    prefetcher,
)

log = logging.getLogger(__name__)
ENGINE, NONE = "engine prescription", "no defense"


def _plain(x: Any) -> Any:
    return OmegaConf.to_container(x, resolve=True) if OmegaConf.is_config(x) else x


def make_target(cfg, seed: int):
    """Instantiate ``cfg.target`` (a ``_target_`` spec) for one run seed.

    ``seed`` replaces the target's ``seed`` (data split, attack draws) and its model's
    ``seed`` (training), so each run seed is a different model and attack.
    """
    from hydra.utils import instantiate

    spec = cfg.target
    kw: dict[str, Any] = {"seed": int(seed)} if "seed" in spec else {}
    if "model" in spec and OmegaConf.is_dict(spec.model) and "seed" in spec.model:
        kw["model"] = {**_plain(spec.model), "seed": int(seed)}
    return instantiate(spec, **kw, _convert_="all")


class Measurer:
    """Measures conditions on one target with paired bootstrap weights per unit count."""

    def __init__(self, target, cfg, seed: int) -> None:
        self.t, self.seed = target, int(seed)
        self.n_boot, self.level = int(cfg.n_boot), float(cfg.get("level", 0.95))
        self.options = dict(_plain(cfg.get("attack", {})) or {})
        self._w: dict[tuple[int, str], np.ndarray] = {}
        self.traces: list[dict] = []

    def bits(self, outcome, kind: str):
        u = int(np.asarray(outcome.sent).shape[0])
        if (u, kind) not in self._w:
            self._w[u, kind] = bootstrap_weights(u, self.n_boot, self.seed)
        return outcome_bits(outcome, self._w[u, kind], self.level)

    def clean(self, levers: Mapping[str, float], split: str):
        knobs = self.t.realise(dict(levers))
        return knobs, self.bits(self.t.clean(knobs, split=split, seed=self.seed), "leg")

    def adv_call(self, levers: Mapping[str, float], power: Mapping[str, float], split: str,
                 options: Mapping[str, Any] | None = None, label: str = "") -> Call:
        """The store call :meth:`adv` makes (to compute it ahead in a worker)."""
        knobs = self.t.realise(dict(levers))
        return attack_call(label, [(1.0, knobs)], dict(power), split, self.seed,
                           {**self.options, **dict(options or {})}, (knobs,))

    def adv(self, levers: Mapping[str, float], power: Mapping[str, float], split: str,
            options: Mapping[str, Any] | None = None, label: str = ""):
        c = self.adv_call(levers, power, split, options, label)
        knobs = c.evaluate[0]
        att = self.t.attack(list(c.mixture), c.power, split=split, seed=self.seed,
                            options=c.options)
        self.traces.append({"label": label or att.label, "trace": dict(att.trace)})
        return knobs, self.bits(self.t.evaluate(att, knobs, split=split, seed=self.seed), "adv")


def _condition_specs(groups, split: str):
    """Expand config groups into ``(label, kind, levers, power)``."""
    out = []
    for g in groups or []:
        g = _plain(g)
        lev = dict(g.get("defense", {}) or {})
        name = g.get("name") or (" ".join(f"{k}={v:g}" for k, v in lev.items()) or "none")
        for ch, powers in (g.get("power") or {}).items():
            for p in powers:
                out.append((f"{ch} P={p:g} {name}", "adv", lev, {ch: float(p)}))
        for pw in g.get("joint") or []:
            desc = " ".join(f"{k}={v:g}" for k, v in pw.items())
            out.append((f"joint {desc} {name}", "adv", lev, {k: float(v) for k, v in pw.items()}))
        if g.get("clean"):
            out.append((f"clean {name}", "leg", lev, {}))
    return out


def _calls(m: Measurer, cfg) -> list[Call]:
    """Every condition's and check's store calls (independent of each other)."""
    out = []
    specs = [(label, kind, lev, power, split, None)
             for split in ("calib", "held")
             for label, kind, lev, power in _condition_specs(cfg.conditions.get(split), split)]
    for spec in _plain(cfg.get("checks")) or []:
        lev, power = dict(spec.get("defense") or {}), dict(spec.get("power") or {})
        specs += [(f"check {spec.get('name')}", "adv", lev, power, "held", spec.get("base")),
                  (f"check {spec.get('name')} stronger", "adv", lev, power, "held",
                   spec.get("options"))]
    for label, kind, lev, power, split, options in specs:
        try:
            out.append(clean_call(label, m.t.realise(dict(lev)), split, m.seed) if kind == "leg"
                       else m.adv_call(lev, power, split, options, label))
        except Exception:  # bad input: the serial path raises and records it
            continue
    return out


def measure_conditions(m: Measurer, cfg, res: dict) -> list[cal.Condition]:
    conds = []
    for split in ("calib", "held"):
        for label, kind, lev, power in _condition_specs(cfg.conditions.get(split), split):
            try:
                if kind == "leg":
                    knobs, b = m.clean(lev, split)
                else:
                    knobs, b = m.adv(lev, power, split, label=label)
            except Exception as e:  # a failed point records its traceback; the sweep goes on
                res["errors"].append({"label": label, "error": repr(e),
                                      "traceback": traceback.format_exc()})
                log.exception("condition %s failed", label)
                continue
            c = cal.Condition(label, kind, split, dict(power), m.t.lever_values(knobs), b.bits,
                              b.lo, b.hi, {"knobs": repr(knobs)})
            conds.append(c)
            log.info("%-5s %-44s bits=%.3f [%.3f, %.3f]", split, label, b.bits, b.lo, b.hi)
    return conds


def _deploy(target):
    """Lever amounts -> those of the defense the target deploys for them (within budget
    where the target rounds down, ``realise_within``; else its nearest, ``realise``)."""
    realise = getattr(target, "realise_within", target.realise)
    return lambda levers: target.lever_values(realise(levers))


def _rows(target, cfg, engine_levers) -> list[tuple[str, Any, str]]:
    gc = cfg.game
    D = float(cfg.budget.defender)
    rows = [(NONE, target.realise({}), "menu")]
    if engine_levers is not None:
        rows.append((ENGINE, target.realise(engine_levers), "engine"))
    if gc.get("menu", True):
        for name, knobs in target.menu(D).items():
            if name != NONE:
                rows.append((name, knobs, "menu"))
    for name, frac in (_plain(gc.get("alternatives")) or {}).items():
        rows.append((name, target.realise({k: D * float(v) for k, v in frac.items()}),
                     "alternative"))
    return rows


def _model_kw(target, cfg) -> dict[str, Any]:
    mc = _plain(cfg.get("model", {})) or {}
    caps = dict(getattr(target, "power_caps", None) or mc.get("caps") or {})
    return {"caps": caps, "imax": max_bits(target.n_classes),
            "reallocate": bool(mc.get("reallocate", True)),
            "restarts": int(mc.get("restarts", 4)),
            "terms": None if mc.get("terms") is None else tuple(mc["terms"]),
            "cap_units": mc.get("cap_units")}


def run_seed(cfg, seed: int, out: Path) -> dict[str, Any]:
    """One seed of the pipeline (module docstring); writes its report into ``out``."""
    from minimax.validate.store import StoredTarget

    t0 = time.perf_counter()
    res: dict[str, Any] = {"seed": int(seed), "errors": [], "status": "ok"}
    workers = n_workers(cfg)  # a bad value fails before any work
    target = make_target(cfg, seed)
    root, scratch = cfg.get("store"), None
    if not root and workers >= 2:  # the workers hand their cells over through a store
        root = scratch = tempfile.mkdtemp(prefix="minimax-validate-")
    if root:  # measurements kept on disk and reused (minimax.validate.store)
        target = StoredTarget(target, Path(str(root)), (_plain(cfg.target), int(seed)))
    pre = prefetcher(cfg, seed, target) if workers >= 2 else None
    try:
        return _run_seed(cfg, seed, out, target, pre, t0, res)
    finally:
        if pre is not None:
            pre.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _run_seed(cfg, seed: int, out: Path, target, pre, t0: float, res: dict) -> dict[str, Any]:
    from minimax.validate.report import write_report

    res["target"] = target.name
    chans = tuple(target.channels)
    P, D = float(cfg.budget.attacker), float(cfg.budget.defender)
    m = Measurer(target, cfg, seed)
    sw = Stopwatch(pre)
    if pre is not None:
        pre(_calls(m, cfg), "conditions and checks")
        sw.lap("conditions and checks (workers)")

    conds = measure_conditions(m, cfg, res)
    sw.lap("conditions")
    res["conditions"] = conds
    calib = [c for c in conds if c.split == "calib"]
    held = [c for c in conds if c.split == "held"]
    kw = _model_kw(target, cfg)
    model = blind = None
    try:
        model = cal.fit_model(calib, chans, **kw)
        blind = cal.fit_model(calib, chans, blind=True, **kw)
        for c in conds:
            c.extra["predicted"] = cal.predict_condition(model, c)
            c.extra["predicted_blind"] = cal.predict_condition(blind, c)
        res["model"], res["blind_model"] = model.to_dict(), blind.to_dict()
        res["heldout"] = {
            "model": cal.score([c.extra["predicted"] for c in held],
                               [c.bits for c in held])._asdict(),
            "blind": cal.score([c.extra["predicted_blind"] for c in held],
                               [c.bits for c in held])._asdict()}
        log.info("channel model terms %s, fit RMS %.3f; held-out %s", model.terms, model.rms,
                 res["heldout"])
    except Exception as e:
        res["errors"].append({"label": "calibration", "error": repr(e),
                              "traceback": traceback.format_exc()})
        log.exception("calibration failed")

    sw.lap("calibration")
    gc = cfg.game
    price = float(gc.get("utility_price", 0.0))
    engine = None
    if model is not None:
        try:
            pres = prescribe(model, target.levers, P, D, int(gc.get("lever_steps", 8)),
                             int(gc.get("split_steps", 20)), price, deploy=_deploy(target))
            engine = pres.levers
            res["prescription"] = pres._asdict()
            log.info("engine prescription %s (predicted worst case %.3f bits)",
                     {k: round(v, 3) for k, v in engine.items()}, pres.predicted_bits)
        except Exception as e:
            res["errors"].append({"label": "prescription", "error": repr(e),
                                  "traceback": traceback.format_exc()})

    sw.lap("prescription")
    current = {"model": model}

    def model_of():
        return current["model"]

    def propose(ymix, cells):
        if current["model"] is None:
            return None
        if gc.get("recalibrate", True):
            game = [cal.Condition(f"game {r}", "adv", "game", dict(p), dict(lv), b)
                    for lv, p, b, r in cells]
            try:
                current["model"] = cal.fit_model([*calib, *game], chans, **kw)
            except Exception:
                log.exception("recalibration failed; keeping the previous model")
        return proposer(model_of, target.levers, D, int(gc.get("lever_steps", 8)),
                        price, deploy=_deploy(target))(ymix)

    game: EmpiricalGame | None = None
    try:
        game = solve_empirical(
            target, _rows(target, cfg, engine), power=P, grid=int(gc.grid),
            recipes=tuple(gc.get("recipes", ["auto"])),
            predicted_split=split_predictor(model_of, P) if model is not None else None,
            propose=propose if model is not None else None,
            row_grid=gc.get("row_grid"), row_splits=_plain(gc.get("row_splits")) or (),
            split="held", seed=int(seed), options=m.options,
            n_boot=int(cfg.n_boot), level=m.level, utility_price=price,
            max_clean_drop=gc.get("max_clean_drop"), max_iter=int(gc.max_iter),
            on_step=lambda s: log.info("double oracle %s", s._asdict()), prefetch=pre)
        res["game"] = game.to_dict()
        res["recalibrated_model"] = current["model"].to_dict() if current["model"] else None
    except Exception as e:
        res["status"] = "failed"
        res["errors"].append({"label": "empirical game", "error": repr(e),
                              "traceback": traceback.format_exc()})
        log.exception("empirical game failed")

    sw.lap("empirical game")
    if game is not None:
        res["goal"] = _goal(game)
        if model is not None:
            try:
                res["decision"] = _decision(game, calib, held, chans, P, kw, model)
            except Exception as e:
                res["errors"].append({"label": "decision score", "error": repr(e),
                                      "traceback": traceback.format_exc()})
    sw.lap("decision score")
    res["checks"] = _checks(m, cfg, res)
    sw.lap("checks")
    res["traces"] = m.traces + ([{"label": c["label"], "trace": c["trace"]}
                                 for c in res["game"]["columns"]] if game is not None else [])
    if cfg.get("store"):
        res["store"] = {"path": str(cfg.store), "reused": target.hits, "measured": target.misses,
                        "measured_by_workers": pre.computed if pre is not None else 0}
        log.info("measurement store %s", res["store"])
    res["timing"] = sw.stages
    res["wall_s"] = time.perf_counter() - t0
    write_report(res, cfg, out)
    log.info("seed %d done in %.1fs; report in %s", seed, res["wall_s"], out)
    return res


def _goal(game: EmpiricalGame) -> dict[str, Any]:
    """Issue's goal: the validated defense vs every row (paired), and vs no defense."""
    menu = [s for s, r in zip(game.scores, game.rows, strict=True) if r.in_game]
    best_pure = min(menu, key=lambda s: s.worst)
    none = game.score(NONE)
    eng = next((s for s in game.scores if s.name == ENGINE), None)
    return {
        "validated_defense": game.defense(), "validated_worst": game.value,
        "validated_lo": game.value_lo, "validated_hi": game.value_hi,
        "best_pure_row": best_pure.name, "best_pure_worst": best_pure.worst,
        "no_defense_minus_validated": [none.regret, none.regret_lo, none.regret_hi],
        "beats_no_defense": bool(none.regret_lo > 0),
        "no_row_significantly_better": bool(all(s.regret_hi >= 0 for s in menu)),
        "engine_regret": [eng.regret, eng.regret_lo, eng.regret_hi] if eng else None,
        "engine_minus_best_pure": ([eng.vs_best_pure, eng.vs_best_lo, eng.vs_best_hi]
                                   if eng else None),
        "engine_rank_among_pure": (1 + sorted(s.worst for s in menu).index(eng.worst)
                                   if eng and eng.name in {s.name for s in menu} else None),
        "n_pure_rows": len(menu),
        "engine_best_within_ci": bool(eng and eng.regret_lo <= 0),
        "status": game.status,
    }


def _decision(game: EmpiricalGame, calib, held, chans, P, kw, model) -> dict[str, Any]:
    cells = []
    for i, r in enumerate(game.rows):
        if r.name == NONE:
            continue  # budget-matched rows only
        for j, c in enumerate(game.columns):
            cells.append(cal.Condition(f"{r.name} | {c.label}", "adv", "game", dict(c.power),
                                       dict(r.levers), float(game.table[i, j]),
                                       extra={"allocation": r.name}))
    pr = cal.prediction_report(calib, held, cells, channels=chans, power=P, model=model,
                               **{k: v for k, v in kw.items() if k != "restarts"})
    out = {k: v._asdict() for k, v in pr._asdict().items() if k != "allocations"}
    out["allocations"] = pr.allocations
    log.info("decision-level score: one-shot %s, recalibrated %s, blind %s", pr.decision,
             pr.recalibrated, pr.blind_recalibrated)
    return out


def _checks(m: Measurer, cfg, res) -> list[dict]:
    """Stronger attack options vs the defaults (or vs the check's ``base`` options) on the
    same units and seed (paired)."""
    out = []
    for spec in _plain(cfg.get("checks")) or []:
        lev, power = dict(spec.get("defense") or {}), dict(spec["power"])
        label = spec.get("name") or f"{lev} {power}"
        try:
            _, base = m.adv(lev, power, "held", spec.get("base"),
                            label=f"check {label} default")
            _, strong = m.adv(lev, power, "held", spec.get("options"),
                              label=f"check {label} stronger")
            d = paired_difference(strong, base)
            out.append({"check": label, "options": spec.get("options"),
                        "base": spec.get("base"), "bits": base.bits,
                        "bits_stronger": strong.bits, "delta": d.diff, "delta_lo": d.lo,
                        "delta_hi": d.hi, "converged": bool(d.lo <= 0)})
            log.info("check %s: %s", label, out[-1])
        except Exception as e:
            res["errors"].append({"label": f"check {label}", "error": repr(e),
                                  "traceback": traceback.format_exc()})
    return out


def run(cfg, out_dir: str | Path) -> dict[str, Any]:
    """Run every seed of ``cfg`` (``seeds`` or ``[seed]``) and write the reports.

    One seed writes into ``out_dir``; several write ``out_dir/seed<k>/`` each and a
    ``seeds.csv`` / ``seeds.md`` summary with every seed's result.
    """
    from minimax.validate.report import write_seeds

    t0 = time.perf_counter()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    try:
        import torch

        torch.set_num_threads(int(cfg.get("threads", 1)))
    except ImportError:
        pass
    seeds = list(cfg.get("seeds") or [cfg.seed])
    results = []
    for s in seeds:
        sub = out if len(seeds) == 1 else out / f"seed{s}"
        sub.mkdir(parents=True, exist_ok=True)
        try:
            results.append(run_seed(cfg, int(s), sub))
        except Exception as e:
            log.exception("seed %s failed", s)
            results.append({"seed": int(s), "status": "failed",
                            "errors": [{"label": "seed", "error": repr(e),
                                        "traceback": traceback.format_exc()}]})
    summary = {"seeds": results if len(seeds) == 1 else [
        {k: r.get(k) for k in ("seed", "status", "goal", "wall_s")} for r in results],
        "wall_s": time.perf_counter() - t0,
        "status": "failed" if any(r.get("status") == "failed" for r in results) else "ok"}
    if len(seeds) > 1:
        write_seeds(results, out)
    log.info("validation %s in %.1fs", summary["status"], summary["wall_s"])
    return results[0] if len(seeds) == 1 else summary
