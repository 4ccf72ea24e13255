"""``python -m minimax.sweep.aggregate DIR [DIR ...] [--out OUT] [--no-figure]``.

Gathers batched sweeps and Hydra multiruns under each DIR into ``OUT/results.parquet``,
``OUT/results.csv`` and ``OUT/sweep.png`` (see :mod:`minimax.sweep._aggregate`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from minimax.sweep._aggregate import __doc__ as _DOC
from minimax.sweep._aggregate import aggregate, write_table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m minimax.sweep.aggregate",
                                     description=(_DOC or '').splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="sweep or multirun directories")
    parser.add_argument("--out", default=None, help="output directory (default: first DIR)")
    parser.add_argument("--no-figure", action="store_true", help="skip sweep.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = aggregate(args.dirs)
    paths = write_table(table, args.out or args.dirs[0], figure=not args.no_figure)
    counts = table["status"].value_counts().to_dict() if "status" in table else {}
    print(f"aggregate: {len(table)} points {counts}; wrote "
          + ", ".join(str(p) for p in paths.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
