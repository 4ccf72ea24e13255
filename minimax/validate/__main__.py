"""``python -m minimax.validate [validate=full]``: the Hydra entry point (conf/validate.yaml).

Exits with status 1 when the run failed (no empirical game could be solved).
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

CONF = Path(__file__).resolve().parents[2] / "conf"


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="validate")
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    from minimax.validate.run import run

    res = run(cfg.validate, HydraConfig.get().runtime.output_dir)
    if res.get("status") == "failed":
        sys.exit(1)


if __name__ == "__main__":
    main()
