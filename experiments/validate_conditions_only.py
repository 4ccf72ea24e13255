"""Measure a seed's calibration and held-out conditions only (no empirical game), then refit.

An out-of-sample check of the channel model's form on a seed it was not chosen on: the
quick preset's conditions (``conf/validate/quick.yaml``) are measured for ``--seed`` (each
seed is its own digits model, data split and attack draws), written as ``conditions.csv``
in ``--out`` (the columns :func:`minimax.validate.refit.read_conditions` reads), and the
channel model and the defense-blind baseline are fitted on the calibration conditions and
scored on the held-out ones (docs/validation.md §5.4)::

    python experiments/validate_conditions_only.py --seed 3 --store STORE --out DIR

With ``--store`` the measurements are kept (and reused) in a measurement store.
"""

from __future__ import annotations

import argparse
import csv
import logging
from pathlib import Path

from omegaconf import OmegaConf

from minimax.validate import refit
from minimax.validate.run import Measurer, _plain, make_target, measure_conditions

COLUMNS = ("label", "kind", "split", "P_image", "P_text", *refit.LEVER_COLUMNS, "bits", "lo",
           "hi")


def load_target(config: str, seed: int, store: str | None):
    """The preset ``config`` and its target for ``seed`` (one torch thread; results kept in
    and read back from the measurement ``store`` if given)."""
    import torch

    torch.set_num_threads(1)
    cfg = OmegaConf.load(config)
    target = make_target(cfg, seed)
    if store:
        from minimax.validate.store import StoredTarget

        target = StoredTarget(target, Path(store), (_plain(cfg.target), int(seed)))
    return cfg, target


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--store", default=None)
    ap.add_argument("--config", default="conf/validate/quick.yaml")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cfg, target = load_target(args.config, args.seed, args.store)
    res: dict = {"errors": []}
    conds = measure_conditions(Measurer(target, cfg, args.seed), cfg, res)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "conditions.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for c in conds:
            w.writerow([c.label, c.kind, c.split, c.a.get("image", ""), c.a.get("text", ""),
                        *(c.levers.get(k, 0.0) for k in refit.LEVER_COLUMNS), c.bits, c.lo,
                        c.hi])
    for e in res["errors"]:
        print(f"failed: {e['label']}: {e['error']}")
    refit.main([str(out)])


if __name__ == "__main__":
    main()
