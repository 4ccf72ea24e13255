"""``python -m minimax``: the Hydra entry point (see ``conf/config.yaml``).

Exit codes of a single run: 0 certified; 3 valid bounds but the gap is above the requested
``solver.gap_tol``; 2 a named error (bad input, or a solver that could not certify its answer:
``error.json`` says which); 1 an unexpected error (traceback). In a multirun each failed point
writes its ``error.json`` and the sweep goes on.
"""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from minimax.errors import MinimaxError
from minimax.runtime import conf_dir, enable_compilation_cache


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from minimax.app import run

    enable_compilation_cache()
    multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    try:
        result = run(cfg, HydraConfig.get().runtime.output_dir)
    except Exception as err:
        # run() has written error.json (config + traceback). In a multirun the sweep goes on
        # with the next point; a single run exits non-zero.
        if multirun:
            return
        if isinstance(err, MinimaxError):
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        raise
    if not multirun and result.get("status") == "gap_above_tol":
        print("not certified to the requested tolerance: status gap_above_tol", file=sys.stderr)
        raise SystemExit(3)


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
