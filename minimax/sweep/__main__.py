"""``python -m minimax.sweep``: the batched sweep's Hydra entry point (``conf/sweep.yaml``).

Examples::

    python -m minimax.sweep                              # conf/sweep/budgets_small.yaml
    python -m minimax.sweep sweep=budgets_10k            # 100 x 100 budgets, batched
    python -m minimax.sweep sweep=budgets_10k sweep.n_jobs=2 sweep.chunk_size=128

The output directory is ``sweeps/${sweep.name}`` (``hydra.run.dir``): running the same
command again resumes the sweep, solving only the points without a row yet (a second run
started while the first is still going waits for it, then resumes).

Exit status: 0 when every point has an answer (``certified`` or ``gap_above_tol``); 1 when the
sweep finished but some points ``failed`` (their rows say why); 2 when the configuration is
invalid and nothing was solved.
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from minimax.errors import MinimaxError
from minimax.runtime import conf_dir, enable_compilation_cache
from minimax.sweep._status import FAILED

log = logging.getLogger("minimax.sweep")


@hydra.main(config_path=str(conf_dir()), config_name="sweep", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from minimax.sweep._run import run_sweep

    enable_compilation_cache()
    out = HydraConfig.get().runtime.output_dir
    try:
        table = run_sweep(cfg, out)
    except MinimaxError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    counts = table["status"].value_counts().to_dict() if len(table) else {}
    print(f"sweep: {len(table)} points {counts}; results in {out}")
    failed = int((table["status"] == FAILED).sum()) if len(table) else 0
    if failed:
        print(f"{failed} of {len(table)} points failed (status 'failed', reason in the 'error' "
              f"column of {out}/results.csv); exit status 1", file=sys.stderr)
        raise SystemExit(1)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
