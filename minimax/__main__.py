"""``python -m minimax``: the Hydra entry point (see ``conf/config.yaml``)."""

from __future__ import annotations

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from minimax.errors import MinimaxError
from minimax.runtime import conf_dir, enable_compilation_cache


@hydra.main(config_path=str(conf_dir()), config_name="config", version_base="1.3")
def _main(cfg: DictConfig) -> None:
    from minimax.app import run

    enable_compilation_cache()
    try:
        run(cfg, HydraConfig.get().runtime.output_dir)
    except MinimaxError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
