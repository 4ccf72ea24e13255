"""The command line of :func:`minimax.sweep.aggregate`.

``python -m minimax.sweep.aggregate DIR [DIR ...] [--out OUT] [--no-figure]`` gathers batched
sweeps and Hydra multiruns under each DIR into ``OUT/results.parquet``, ``OUT/results.csv`` and
``OUT/sweep.png`` (see :mod:`minimax.sweep._aggregate`).

Exit status: 0 when the tables are written and every point has an answer (``certified`` or
``gap_above_tol``); 1 when the tables are written but some points ``failed`` (listed on stderr);
2 when nothing could be gathered (a DIR is missing, or holds no sweep or job).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from minimax.sweep._aggregate import __doc__ as _DOC
from minimax.sweep._aggregate import aggregate, write_table
from minimax.sweep._status import FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m minimax.sweep.aggregate",
                                     description=(_DOC or '').splitlines()[0])
    parser.add_argument("dirs", nargs="+", help="sweep or multirun directories")
    parser.add_argument("--out", default=None, help="output directory (default: first DIR)")
    parser.add_argument("--no-figure", action="store_true", help="skip sweep.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        table = aggregate(args.dirs)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not len(table):
        print(f"error: no batched sweep (chunks/*.jsonl) or Hydra job (.hydra/config.yaml) "
              f"found under {args.dirs}", file=sys.stderr)
        return 2
    paths = write_table(table, args.out or args.dirs[0], figure=not args.no_figure)
    counts = table["status"].value_counts().to_dict()
    print(f"aggregate: {len(table)} points {counts}; wrote "
          + ", ".join(str(p) for p in paths.values()))
    failed = table[table["status"] == FAILED]
    if len(failed):
        for _, row in failed.head(10).iterrows():
            where = row.get("job") if isinstance(row.get("job"), str) else row.get("point_id")
            print(f"failed: {where}: {row.get('error')}", file=sys.stderr)
        print(f"{len(failed)} of {len(table)} points failed (exit status 1)", file=sys.stderr)
        return 1
    return 0
