"""Evaluation-set size of the quick preset: CI half-width and CPU of the image attack.

The universal text suffix is optimised on the attacker's own images; the calibration and
held-out images only evaluate (an image attack per image and target), so their number sets
the CI width of every cell at a cost linear in it. For one seed of
``conf/validate/quick.yaml`` this measures, on the held-out split at the preset's size
(``target.data.n_held``) and on its first 50 images, the bits and 95% bootstrap CI of
image-only cells under each image defense and of clean inputs, and the CPU seconds
(``time.process_time``, single thread) of the image attack at 50 and at the preset's size.

Run from the repository root::

    PYTHONPATH=. python experiments/validate_eval_size.py --seed 0

Writes ``experiments/results/validate_eval_size.md``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "results"
CELLS = (("none, image P=1", {}, 1.0), ("noise 0.4, image P=1", {"n_image": 2.0}, 1.0),
         ("adv-ft 0.5, image P=1", {"s_image": 1.0}, 1.0),
         ("mask 0.5, image P=1", {"b_image": 0.693}, 1.0),
         ("none, clean", {}, None), ("mask 0.25, clean", {"b_image": 1.386}, None))


def _compose(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose(config_name="validate", overrides=overrides).validate


def _subset(outcome, n: int):
    """The outcome restricted to its first ``n`` units (images)."""
    return type(outcome)(outcome.sent[:n], outcome.answers[:n], outcome.n_classes)


def _cell(target, m, levers, p_img, split: str):
    """(outcome, CPU seconds of the attack) of one image-only or clean cell."""
    knobs = target.realise(dict(levers))
    if p_img is None:
        return target.clean(knobs, split=split, seed=m.seed), 0.0
    t0 = time.process_time()
    att = target.attack([(1.0, knobs)], {"image": p_img}, split=split, seed=m.seed)
    cpu = time.process_time() - t0
    return target.evaluate(att, knobs, split=split, seed=m.seed), cpu


def main() -> None:
    from minimax.validate.measure import bootstrap_weights, outcome_bits
    from minimax.validate.run import Measurer, make_target

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--small", type=int, default=50)
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = _compose([])
    n_big = int(cfg.target.data.n_held)
    small_cfg = _compose([f"validate.target.data.n_held={args.small}"])
    big, small = make_target(cfg, args.seed), make_target(small_cfg, args.seed)
    m = Measurer(big, cfg, args.seed)
    w_small = bootstrap_weights(args.small, int(cfg.n_boot), args.seed)
    rows = []
    for name, levers, p_img in CELLS:
        out, cpu_big = _cell(big, m, levers, p_img, "held")
        _, cpu_small = _cell(small, m, levers, p_img, "held")
        b_big = m.bits(out, "adv")
        b_sub = outcome_bits(_subset(out, args.small), w_small, m.level)
        rows.append((name, b_sub, b_big, cpu_small, cpu_big))
        print(name, f"{b_sub.bits:.3f} [{b_sub.lo:.3f}, {b_sub.hi:.3f}]",
              f"{b_big.bits:.3f} [{b_big.lo:.3f}, {b_big.hi:.3f}]",
              f"cpu {cpu_small:.2f} {cpu_big:.2f}", flush=True)
    half = np.array([[(r[1].hi - r[1].lo) / 2, (r[2].hi - r[2].lo) / 2] for r in rows])
    lines = [f"# Evaluation-set size: CI half-width and image-attack CPU (seed {args.seed})", "",
             f"`PYTHONPATH=. python experiments/validate_eval_size.py --seed {args.seed}`: "
             f"the quick preset's model and attack, held-out split of {n_big} images and its "
             f"first {args.small} (same attacks, same answers: only the number of images "
             f"differs), bootstrap {int(cfg.n_boot)}, 95%. CPU: the image attack's "
             f"`process_time`, single thread, on a {args.small}-image and a {n_big}-image "
             "split (the same seed's target built at each size).", "",
             f"| cell | bits ({args.small}) | 95% CI | bits ({n_big}) | 95% CI | "
             f"half-width ratio | CPU s ({args.small}) | CPU s ({n_big}) |",
             "|---|---:|---|---:|---|---:|---:|---:|"]
    for (name, a, b, c1, c2), (h1, h2) in zip(rows, half, strict=True):
        ratio = f"{h2 / h1:.2f}" if h1 > 0 else "-"
        lines.append(f"| {name} | {a.bits:.3f} | [{a.lo:.3f}, {a.hi:.3f}] | {b.bits:.3f} | "
                     f"[{b.lo:.3f}, {b.hi:.3f}] | {ratio} | {c1:.2f} | {c2:.2f} |")
    ok = half[:, 0] > 0
    lines += ["", f"Median half-width: {np.median(half[ok, 0]):.3f} bits at {args.small} images, "
              f"{np.median(half[ok, 1]):.3f} at {n_big} (ratio "
              f"{np.median(half[ok, 1] / half[ok, 0]):.2f}; 1/sqrt({n_big}/{args.small}) = "
              f"{np.sqrt(args.small / n_big):.2f})."]
    OUT.mkdir(exist_ok=True)
    (OUT / "validate_eval_size.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[-1:]))


if __name__ == "__main__":
    main()
