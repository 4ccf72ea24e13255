"""Extra white-box attacks on a finished run's game rows: is a row's measured worst case a
lower bound because its best split was never attacked?

A row's measured worst case is the largest of its cells over the columns the double oracle
added; only a few of those columns were optimised against that row (docs/validation.md §5.6).
This attacks each named row white-box at the given power splits on the held-out images
(same seed, attack settings and bootstrap resampling as the run's game), prints the new
cells beside the row's measured worst case, and the allocation rank correlation of the
one-shot channel model with the rows' worst cases raised by the new cells::

    python experiments/validate_row_best_response.py RUN --seed 1 --store STORE \
        --rows "even image levers" "mask 0.37" --splits 0:1.5
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
from pathlib import Path

from minimax.validate import calibrate as cal
from minimax.validate import refit
from minimax.validate.knobs import Knobs
from minimax.validate.measure import bootstrap_weights, outcome_bits
from minimax.validate.run import _plain


def load_target(config: str, seed: int, store: str | None):
    """``load_target`` of the sibling script ``validate_conditions_only.py``."""
    path = Path(__file__).with_name("validate_conditions_only.py")
    spec = importlib.util.spec_from_file_location("validate_conditions_only", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_target(config, seed, store)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--rows", nargs="+", required=True)
    ap.add_argument("--splits", nargs="+", default=["0:1.5"], help="image:text power pairs")
    ap.add_argument("--store", default=None)
    ap.add_argument("--config", default="conf/validate/quick.yaml")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg, target = load_target(args.config, args.seed, args.store)
    summ = json.loads((Path(args.run) / "summary.json").read_text())
    rows = {r["name"]: r for r in summ["game"]["rows"]}
    opts = {**(_plain(cfg.get("attack")) or {}), "recipe": "auto"}
    worst = {a: w for a, (w, _, _) in refit.read_row_cis(args.run).items()}
    w_adv = None
    for name in args.rows:
        knobs = eval(rows[name]["knobs"], {"Knobs": Knobs})  # the run's own repr
        for sp in args.splits:
            pi, pt = (float(v) for v in sp.split(":"))
            att = target.attack([(1.0, knobs)], {"image": pi, "text": pt}, split="held",
                                seed=args.seed, options=opts)
            out = target.evaluate(att, knobs, split="held", seed=args.seed)
            if w_adv is None:  # the game's resampling of the held units (paired)
                w_adv = bootstrap_weights(int(out.sent.shape[0]), int(cfg.n_boot), args.seed)
            b = outcome_bits(out, w_adv, float(cfg.get("level", 0.95)))
            print(f"{name} | white-box image={pi:g} text={pt:g} (spent {att.power}): "
                  f"{b.bits:.3f} [{b.lo:.3f}, {b.hi:.3f}]; row's measured worst case "
                  f"{worst[name]:.3f}", flush=True)
            worst[name] = max(worst[name], b.bits)
    r = refit.rescore(args.run)
    allocs = refit.read_allocations(args.run)
    pred = [x["predicted"] for x in r["allocation_rows"]]
    print(f"allocation Spearman one shot: measured worst cases {r['allocations']['spearman']:.3f};"
          f" raised by the new cells "
          f"{cal.score(pred, [worst[a] for a, _, _ in allocs]).spearman:.3f}")


if __name__ == "__main__":
    main()
