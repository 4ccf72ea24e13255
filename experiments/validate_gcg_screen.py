"""GCG side by side over attack seeds: bfloat16 ranking vs float32, or twice the budget.

GCG spends most of a validation run encoding candidate suffixes through the text tower.
With ``text_screen: bfloat16`` it ranks them in bfloat16 and rescores the best
``text_verify`` per target in float32 before accepting a swap (docs/validation.md §5.3).
For the quick preset's model (``conf/validate/quick.yaml``, one data/model seed) this
measures, for each attack seed and each precision, the wall time of the whole attack
(text stage and image stage, single thread), the GCG steps, the final objective, and the
bits on the calibration split with their 95% bootstrap CI, for a text-alone attack under
no defense and a joint attack under an ensemble of three templates; then the mean over
attack seeds per precision and the mean paired difference (bfloat16 - float32) with a
bootstrap CI over images, pooled over seeds.  It also times one candidate batch
(10 targets x 16 candidates x 2 templates) through the text tower in both precisions.

``--vary budget`` compares the preset's GCG budget with twice it (``text_steps``,
``text_max`` doubled, ``text_tol`` and ``text_atol`` halved: the checks preset's "2x GCG")
instead, both in the preset's precision: a budget check that averages over GCG's own
randomness (its candidate draws move a joint attack's bits by about 0.1) rather than
comparing one run of each.

Run from the repository root::

    PYTHONPATH=. python experiments/validate_gcg_screen.py --seeds 0 1 2
    PYTHONPATH=. python experiments/validate_gcg_screen.py --vary budget --cells joint-none

Writes ``experiments/results/validate_gcg_screen.md`` (``validate_gcg_budget.md``).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "results"
CELLS = {"text-none": ("text alone, no defense", {}, {"image": 0.0, "text": 1.0}),
         "joint-ens3": ("joint, ensemble 3", {"s_text": 1.0}, {"image": 0.5, "text": 0.5}),
         "joint-none": ("joint, no defense", {}, {"image": 0.5, "text": 0.5})}
PRECISIONS = ("float32", "bfloat16")
BUDGETS = ("preset", "2x GCG")


def _options(vary: str, arm: str, defaults: dict) -> dict:
    """Attack options of one arm: a precision, or the preset's GCG budget or twice it."""
    if vary == "screen":
        return {"text_screen": arm}
    if arm == "preset":
        return {}
    return {"text_steps": 2 * defaults["text_steps"], "text_max": 2 * defaults["text_max"],
            "text_tol": defaults["text_tol"] / 2, "text_atol": defaults["text_atol"] / 2}


def _target(data_seed: int):
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(Path(__file__).resolve().parents[1] / "conf/validate/quick.yaml")
    cfg.target.seed = data_seed
    return instantiate(cfg.target)


def _batch_time(target) -> dict[str, float]:
    """Seconds per candidate batch through the text tower, and bf16's relative error."""
    from minimax.validate.attacks import _prompt_batch

    m = target.model(0.0)
    ids, mask, pos = _prompt_batch(m, 2, 8)
    T, E, L = ids.shape
    g = torch.Generator().manual_seed(0)
    allowed = m.candidate_tokens()
    cands = allowed[torch.randint(len(allowed), (T, 16, 8), generator=g)]
    x = ids[:, None].expand(T, 16, E, L).clone()
    x.scatter_(3, pos[:, None].expand(T, 16, E, 8), cands[:, :, None].expand(T, 16, E, 8))
    x, mk = x.reshape(-1, L), mask[:, None].expand(T, 16, E, L).reshape(-1, L)
    out = {}
    with torch.inference_mode():
        for name in PRECISIONS:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=name == "bfloat16"):
                m.encode_text(x, mk)
                t0 = time.perf_counter()
                for _ in range(3):
                    e = m.encode_text(x, mk).float()
                out[name] = (time.perf_counter() - t0) / 3
                out[f"emb_{name}"] = e
    e32, e16 = out.pop("emb_float32"), out.pop("emb_bfloat16")
    out["rel_err"] = float(((e16 - e32).norm(dim=-1) / e32.norm(dim=-1)).max())
    return out


def _run(target, levers, power, seed: int, options: dict):
    from minimax.validate.measure import mi_with_ci

    d = target.realise(levers)
    t0 = time.perf_counter()
    a = target.attack([(1.0, d)], power, split="calib", seed=seed, options=options)
    dt = time.perf_counter() - t0
    o = target.evaluate(a, d, split="calib", seed=seed)
    return dt, a.trace["text_loss"], mi_with_ci(o.sent, o.answers, o.n_classes), o


def _paired(outs32, outs16, k: int, n_boot: int = 200) -> tuple[float, float, float]:
    """Mean over seeds of bits(second arm) - bits(first), bootstrap over images (shared
    draws)."""
    from minimax.validate.measure import mutual_information

    n = len(outs32[0].sent)
    rng = np.random.default_rng(0)

    def diff(idx):
        return float(np.mean([mutual_information(b.sent[idx], b.answers[idx], k)
                              - mutual_information(a.sent[idx], a.answers[idx], k)
                              for a, b in zip(outs32, outs16, strict=True)]))

    est = diff(np.arange(n))
    boots = np.array([diff(rng.integers(0, n, n)) for _ in range(n_boot)])
    lo, hi = np.quantile(boots - boots.mean() + est, [0.025, 0.975])
    return est, float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="attack seeds")
    ap.add_argument("--data-seed", type=int, default=0)
    ap.add_argument("--vary", choices=("screen", "budget"), default="screen")
    ap.add_argument("--cells", nargs="+", choices=sorted(CELLS),
                    default=["text-none", "joint-ens3"])
    ap.add_argument("--out", type=Path, default=None)
    a = ap.parse_args()
    out = a.out or OUT / ("validate_gcg_screen.md" if a.vary == "screen"
                          else "validate_gcg_budget.md")
    arms = PRECISIONS if a.vary == "screen" else BUDGETS
    torch.set_num_threads(1)
    target = _target(a.data_seed)
    cmd = (f"`PYTHONPATH=. python experiments/validate_gcg_screen.py --vary {a.vary} --cells "
           f"{' '.join(a.cells)} --seeds {' '.join(map(str, a.seeds))}` (quick preset model, "
           f"data seed {a.data_seed}, one thread; calibration split).")
    if a.vary == "screen":
        bt = _batch_time(target)
        lines = [
            "# GCG candidate ranking: bfloat16 screening vs float32", "", cmd, "",
            f"One candidate batch (10 targets x 16 candidates x 2 templates) through the text "
            f"tower: float32 {bt['float32']:.3f} s, bfloat16 {bt['bfloat16']:.3f} s "
            f"({bt['float32'] / bt['bfloat16']:.1f}x); largest relative error of a bfloat16 "
            f"embedding {bt['rel_err']:.4f}.", ""]
    else:
        lines = ["# GCG budget over attack seeds: the preset vs twice its GCG budget", "", cmd,
                 ""]
    lines += ["| attack | attack seed | arm | wall (s) | GCG steps | final objective (nats) "
              "| bits [95% CI] |", "|---|---:|---|---:|---:|---:|---|"]
    summary = []
    for name in a.cells:
        label, levers, power = CELLS[name]
        outs = {p: [] for p in arms}
        times = {p: [] for p in arms}
        bits = {p: [] for p in arms}
        for s in a.seeds:
            for p in arms:
                dt, trace, est, o = _run(target, levers, power, s,
                                         _options(a.vary, p, target.defaults))
                outs[p].append(o)
                times[p].append(dt)
                bits[p].append(est.bits)
                lines.append(f"| {label} | {s} | {p} | {dt:.1f} | {len(trace) - 1} | "
                             f"{trace[-1]:.4f} | {est.bits:.3f} [{est.lo:.3f}, {est.hi:.3f}] |")
                print(lines[-1], flush=True)
        x, y = arms
        d = _paired(outs[x], outs[y], outs[x][0].n_classes)
        summary.append(
            f"| {label} | {np.mean(times[x]):.1f} | {np.mean(times[y]):.1f} | "
            f"{np.mean(times[x]) / np.mean(times[y]):.2f}x | "
            f"{np.mean(bits[x]):.3f} | {np.mean(bits[y]):.3f} | "
            f"{d[0]:+.3f} [{d[1]:+.3f}, {d[2]:+.3f}] |")
    x, y = arms
    lines += ["", f"Means over attack seeds; the difference is {y} minus {x}, paired "
              "on the same images, bootstrap over images:", "",
              f"| attack | wall {x} (s) | wall {y} (s) | ratio | bits {x} | "
              f"bits {y} | difference [95% CI] |", "|---|---:|---:|---:|---:|---:|---|",
              *summary, ""]
    out.write_text("\n".join(lines))
    print("\n".join(lines[-len(summary) - 2:]))


if __name__ == "__main__":
    main()
