"""Reproducible analyses: taxonomy table, DCI, asymmetry, self-destruction threshold.

    python experiments/analyses.py experiment=taxonomy
    python experiments/analyses.py experiment=dci
    python experiments/analyses.py experiment=asymmetry
    python experiments/analyses.py experiment=threshold

Each preset (``conf/experiment/<name>.yaml``, a ``# @package _global_`` delta on
``conf/config.yaml``) sets an ``analysis`` node; ``run(cfg)`` is a plain function that writes
CSV + PNG + Markdown into ``analysis.out_dir`` (default ``experiments/results/<name>/``).
The game is the config's ``game`` group (default ``mfm_default``).
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

import minimax  # noqa: E402
from minimax import analysis as an  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- output helpers
def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "inf" if math.isinf(v) else f"{v:.4g}"
    return str(v)


def write_table(rows: Sequence[dict[str, Any]], out: Path, stem: str, title: str = "") -> str:
    """Write ``<stem>.csv`` and ``<stem>.md``; return the Markdown."""
    out.mkdir(parents=True, exist_ok=True)
    cols = list(rows[0].keys())
    with (out / f"{stem}.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=cols)
        w.writeheader()
        w.writerows(rows)
    lines = [f"## {title}", ""] if title else []
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r[c]) for c in cols) + " |" for r in rows]
    md = "\n".join(lines) + "\n"
    (out / f"{stem}.md").write_text(md)
    return md


def _game(cfg: DictConfig) -> minimax.Game:
    d = OmegaConf.to_container(cfg.game, resolve=True)
    return minimax.Game.from_dict(d)


def _path(p: str) -> Path:
    path = Path(p)
    return path if path.is_absolute() else ROOT / path


def _game_file(name: str) -> minimax.Game:
    return minimax.Game.from_dict(yaml.safe_load(_path(f"conf/game/{name}.yaml").read_text()))


# ----------------------------------------------------------------------------- taxonomy
def run_taxonomy(a: DictConfig, game: minimax.Game, out: Path) -> dict[str, Any]:
    tax = an.load_taxonomy(_path(a.taxonomy))
    cat = an.load_catalogue(_path(a.catalogue))
    labels = [f"{f}/{m}" for f, m in zip(game.flows, game.modalities, strict=True)]
    rows, reach = [], []
    for c in tax.classes:
        caps = an.class_caps(game, c)
        reach.append(np.where(np.isinf(caps), 1.0, np.minimum(caps, 1.0)))
        rows.append({"class": c.name, "mode": c.mode, "weight": c.weight,
                     "reach": "; ".join(f"{p}:{'inf' if math.isinf(v) else v}"
                                        for p, v in c.reach),
                     "channels_reached_in_game": int(np.sum(caps > 0)),
                     "sources": " | ".join(c.sources)})
    md = write_table(rows, out, "taxonomy", f"Attack taxonomy ({tax.name}) on game {game.name}")
    drows = []
    for s in cat:
        x = an.defense_vector(game, s)
        an.defense_cost_check(game, s)
        levers = "; ".join(f"{lab}:" + ",".join(
            f"{lv}={float(np.asarray(getattr(x, lv))[i]):g}" for lv in "nsb"
            if float(np.asarray(getattr(x, lv))[i]) > 0)
            for i, lab in enumerate(labels) if any(
                float(np.asarray(getattr(x, lv))[i]) > 0 for lv in "nsb"))
        drows.append({"defense": s.name, "category": s.category, "cost": s.cost,
                      "investments": levers, "adaptive_failure": s.adaptive_failure,
                      "provenance": s.provenance, "source": s.source})
    md += "\n" + write_table(drows, out, "catalogue", "Defense catalogue")
    fig, ax = plt.subplots(figsize=(10, 5.5))
    ax.imshow(np.array(reach), cmap="Greys", vmin=0, vmax=1.2, aspect="auto")
    ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(tax.classes)), [c.name for c in tax.classes], fontsize=8)
    ax.set_title(f"Attack-class reach on {game.name} (dark = reachable; grey = finite cap)")
    fig.tight_layout()
    fig.savefig(out / "taxonomy_reach.png", dpi=130)
    plt.close(fig)
    (out / "README.md").write_text(md)
    return {"classes": len(rows), "defenses": len(drows)}


# ----------------------------------------------------------------------------- DCI
def run_dci(a: DictConfig, game: minimax.Game, out: Path) -> dict[str, Any]:
    tax = an.load_taxonomy(_path(a.taxonomy))
    cat = an.load_catalogue(_path(a.catalogue))
    powers = np.geomspace(a.power_min, a.power_max, a.power_points)
    summary: dict[str, Any] = {}
    md = f"# DCI on {game.name}: {len(cat)} defenses x {len(tax.classes)} attack classes, " \
         f"{len(powers)} attacker powers {a.power_min:g} .. {a.power_max:g}\n\n"
    for equal in (False, True):
        tag = "equal_budget" if equal else "as_catalogued"
        r = an.dci(game, cat, tax, powers, equal_budget=equal)
        rows = r.table()
        md += write_table(rows, out, f"dci_table_{tag}",
                          f"DCI ranking ({tag.replace('_', ' ')})") + "\n"
        pc = [{"defense": r.defenses[j], **{k: float(r.per_class[j, i])
                                            for i, k in enumerate(r.classes)}}
              for j in r.ranking()]
        write_table(pc, out, f"dci_per_class_{tag}")
        pf = [{"defense": r.defenses[j], **{f: float(r.per_flow[j, i])
                                            for i, f in enumerate(r.flows)}}
              for j in r.ranking()]
        write_table(pf, out, f"dci_per_flow_{tag}")
        curves = [{"power": float(p), **{r.defenses[j]: float(r.curve[j, t])
                                         for j in range(len(r.defenses))},
                   **{f"mean_{c}": float(v[t]) for c, v in r.category_curve().items()}}
                  for t, p in enumerate(r.powers)]
        write_table(curves, out, f"cover_vs_power_{tag}")
        cc = r.category_curve()
        md += f"Mean cover (omega-weighted) at P = {powers[0]:g} -> {powers[-1]:g}: " + ", ".join(
            f"{c}-level {v[0]:.4f} -> {v[-1]:.4f}" for c, v in cc.items()) + "\n\n"
        summary[tag] = {"top": rows[:5], "category_curve": {c: [float(v[0]), float(v[-1])]
                                                            for c, v in cc.items()},
                        "skipped": list(r.skipped)}
        _heatmap(r, out / f"dci_heatmap_{tag}.png", tag)
        _curves(r, out / f"cover_vs_power_{tag}.png", tag)
    (out / "README.md").write_text(md)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _heatmap(r: an.DCIResult, path: Path, tag: str) -> None:
    order = r.ranking()
    data = r.per_class[order]
    fig, ax = plt.subplots(figsize=(12, 7))
    lim = max(1e-9, float(np.nanmax(np.abs(data))))
    im = ax.imshow(data, cmap="RdBu", vmin=-lim, vmax=lim, aspect="auto")
    ax.set_xticks(range(len(r.classes)), r.classes, rotation=50, ha="right", fontsize=8)
    ax.set_yticks(range(len(order)),
                  [f"{r.defenses[j]} [{r.categories[j]}, "
                   f"{r.provenance[j] if r.provenance else 'assumed'}] {r.dci[j]:.3f}"
                   for j in order],
                  fontsize=8)
    for i in range(data.shape[0]):
        for k in range(data.shape[1]):
            ax.text(k, i, f"{data[i, k]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label="mean_t cover_j(k, P_t)")
    ax.set_title(f"Defense x attack-class coverage ({tag.replace('_', ' ')}); rows ranked by DCI")
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _curves(r: an.DCIResult, path: Path, tag: str) -> None:
    fig, ax = plt.subplots(figsize=(9, 5.5))
    for j in range(len(r.defenses)):
        ax.semilogx(r.powers, r.curve[j], lw=0.8, alpha=0.6,
                    color="tab:red" if r.categories[j] == "model" else "tab:blue")
    for c, v in r.category_curve().items():
        ax.semilogx(r.powers, v, lw=3, color="darkred" if c == "model" else "navy",
                    label=f"mean {c}-level ({'model-centric' if c == 'model' else 'system'})")
    ax.set_xlabel("attacker power P_A")
    ax.set_ylabel("omega-weighted cover")
    ax.set_title(f"Coverage vs attacker power ({tag.replace('_', ' ')}); thin = one defense")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


# ----------------------------------------------------------------------------- asymmetry
def run_asymmetry(a: DictConfig, game: minimax.Game, out: Path) -> dict[str, Any]:
    powers = np.geomspace(a.power_min, a.power_max, a.power_points)
    games = {"one_channel": _game_file(a.one_channel_game), "default": game}
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    md, summary = "", {}
    for ax, (label, g) in zip(axes, games.items(), strict=True):
        r = an.asymmetry(g, powers, **dict(a.solver))
        rows = []
        closed = an.closed_form_one_channel(g, powers) if g.num_channels == 1 else None
        for t, p in enumerate(powers):
            row = {"power": float(p), "R_model": float(r.r_model[t]),
                   "R_sys": float(r.r_sys[t]), "V_none": float(r.value_none[t]),
                   "V_n_only": float(r.value_model[t]), "V_b_only": float(r.value_sys[t]),
                   "gap_n": float(r.gap_model[t]), "gap_b": float(r.gap_sys[t])}
            if closed is not None:
                row["R_model_closed_form"] = float(closed[0][t])
                row["R_sys_closed_form"] = float(closed[1][t])
            rows.append(row)
        md += write_table(rows, out, f"asymmetry_{label}",
                          f"Asymmetry on {g.name} ({label}), P_D = "
                          f"{float(g.defender_budget):g}") + "\n"
        ax.semilogx(powers, r.r_model, "o-", color="darkred", label="all on noise suppression (n)")
        ax.semilogx(powers, r.r_sys, "s-", color="navy", label="all on bandwidth restriction (b)")
        if closed is not None:
            ax.semilogx(powers, closed[0], "k:", label="closed form (spec 6)")
            ax.semilogx(powers, closed[1], "k:")
            summary[f"{label}_max_abs_err"] = float(max(np.max(np.abs(r.r_model - closed[0])),
                                                        np.max(np.abs(r.r_sys - closed[1]))))
        ax.set_title(f"{g.name}: K = {g.num_channels}")
        ax.set_xlabel("attacker power P_A")
        ax.grid(alpha=0.3)
        summary[label] = {"R_model": [float(r.r_model[0]), float(r.r_model[-1])],
                          "R_sys": [float(r.r_sys[0]), float(r.r_sys[-1])],
                          "max_gap": float(max(r.gap_model.max(), r.gap_sys.max()))}
    axes[0].set_ylabel("relative protection R(P) = 1 - V_lever / V_none")
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(out / "asymmetry.png", dpi=130)
    plt.close(fig)
    (out / "README.md").write_text(md)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


# ----------------------------------------------------------------------------- threshold
def run_threshold(a: DictConfig, game: minimax.Game, out: Path) -> dict[str, Any]:
    opts = dict(a.solver)
    search = {"points": a.points, "rtol": a.rtol, "max_rounds": a.max_rounds,
              "p_min": a.p_min, "p_max": a.p_max}
    one = _game_file(a.one_channel_game)
    md, summary, results = "", {}, {}
    for label, g, prices, budgets in (
            ("one_channel", one, a.one_channel_harm_prices, a.one_channel_budgets),
            ("default", game, a.harm_prices, a.budgets)):
        res = an.threshold_sweep(g, list(prices), list(budgets), **search, **opts)
        rows = [{"defender_budget": r.defender_budget, "harm_price": r.harm_price,
                 "P_star": r.power, "lower": r.lower, "upper": r.upper,
                 "undecided_lo": r.undecided[0] if r.undecided else float("nan"),
                 "undecided_hi": r.undecided[1] if r.undecided else float("nan"),
                 "converged": r.converged, "evaluations": r.evaluations} for r in res]
        md += write_table(rows, out, f"threshold_{label}",
                          f"Self-destruction threshold P*(h) on {g.name}") + "\n"
        results[label] = res
        summary[label] = rows
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8))
    for ax, label in zip(axes, ("one_channel", "default"), strict=True):
        res = results[label]
        for d in sorted({r.defender_budget for r in res}):
            sel = [r for r in res if r.defender_budget == d]
            h = np.array([r.harm_price for r in sel])
            lo = np.array([r.lower for r in sel])
            hi = np.array([r.upper for r in sel])
            p = np.array([r.power for r in sel])
            (line,) = ax.loglog(h, p, "o-", label=f"P_D = {d:g}")
            ax.fill_between(h, np.maximum(lo, 1e-12), np.where(np.isfinite(hi), hi, np.nan),
                            color=line.get_color(), alpha=0.2)
        ax.set_xlabel("harm price h")
        ax.set_ylabel("threshold attacker power P*")
        ax.set_title(f"{label}: P*(h) (band = certified bracket)")
        ax.grid(alpha=0.3, which="both")
        ax.legend()
    fig.tight_layout()
    fig.savefig(out / "threshold.png", dpi=130)
    plt.close(fig)
    md += _breaker_demo(a, results["default"], out)
    (out / "README.md").write_text(md)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _breaker_demo(a: DictConfig, res: Sequence[an.ThresholdResult], out: Path) -> str:
    """Circuit breaker tripping at the certified lower end of P* for h = 1 at the game's
    budget: per-query attacker-power estimates with Gaussian noise (sigma = noise x P*)."""
    ref = [r for r in res if r.harm_price == 1.0 and math.isfinite(r.upper)]
    if not ref:
        return "\n(no finite threshold for h = 1: breaker demo skipped)\n"
    r = ref[len(ref) // 2]
    b = a.breaker
    p_star = r.lower
    sigma = b.noise * p_star
    cb = an.CircuitBreaker.from_threshold(r, benign_power=b.benign_fraction * p_star,
                                          sigma=sigma, false_trip_bound=b.false_trip_bound,
                                          horizon=b.horizon)
    rng = np.random.default_rng(b.seed)
    n, t = b.streams, b.horizon
    benign = rng.normal(cb.benign_rate, sigma, (n, t))
    false_rate = float(np.mean(cb.first_trip(benign) >= 0))
    onset = t // 4
    mean = np.where(np.arange(t) < onset, cb.benign_rate, b.attack_fraction * p_star)
    sudden = cb.first_trip(rng.normal(mean, sigma, (1000, t)))
    ramp_mean = cb.benign_rate + (b.attack_fraction * p_star - cb.benign_rate) * np.arange(t) / t
    cross = int(np.argmax(ramp_mean >= p_star))
    ramp = cb.first_trip(rng.normal(ramp_mean, sigma, (1000, t)))
    nan = float("nan")
    hit = ramp[ramp >= 0]
    rows = [{"stream": f"benign ({n:,} streams x {t})", "trip_rate": false_rate,
             "bound": cb.false_trip_bound, "mean_delay": nan, "wald_delay": nan,
             "mean_level_at_trip_over_Pstar": nan},
            {"stream": f"sudden {b.attack_fraction:g} P* at t={onset} (1,000 streams)",
             "trip_rate": float(np.mean(sudden >= 0)), "bound": nan,
             "mean_delay": float(np.mean(sudden[sudden >= onset] - onset)),
             "wald_delay": cb.expected_delay(b.attack_fraction * p_star),
             "mean_level_at_trip_over_Pstar": nan},
            {"stream": f"ramp to {b.attack_fraction:g} P*, crosses P* at t={cross} (1,000)",
             "trip_rate": float(np.mean(ramp >= 0)), "bound": nan,
             "mean_delay": float(np.mean(hit - cross)) if hit.size else nan,
             "wald_delay": nan,
             "mean_level_at_trip_over_Pstar": float(np.mean(ramp_mean[hit]) / p_star)
             if hit.size else nan}]
    return write_table(rows, out, "breaker",
                       f"Circuit breaker at P* lower end {p_star:.4g} (h = 1, P_D = "
                       f"{r.defender_budget:g}); c = {cb.critical_value:.3f} nats")


RUNNERS = {"taxonomy": run_taxonomy, "dci": run_dci, "asymmetry": run_asymmetry,
           "threshold": run_threshold}


def run(cfg: DictConfig) -> dict[str, Any]:
    """Run the analysis named by ``cfg.analysis.name``; write outputs to its ``out_dir``."""
    a = cfg.analysis
    if a.name not in RUNNERS:
        raise minimax.GameSpecError(f"analysis.name: got {a.name!r}; expected one of "
                                    f"{sorted(RUNNERS)}")
    out = _path(a.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    summary = RUNNERS[a.name](a, _game(cfg), out)
    seconds = time.perf_counter() - start
    print(f"[{a.name}] wrote {out} in {seconds:.1f} s")
    print(json.dumps(summary, indent=1, default=str)[:4000])
    return {"seconds": seconds, **summary}


if __name__ == "__main__":
    import hydra

    @hydra.main(config_path="../conf", config_name="config", version_base=None)
    def main(cfg: DictConfig) -> None:
        run(cfg)

    main()
