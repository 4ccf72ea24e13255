"""The Hydra application: ``python -m minimax`` solves the configured game and reports it.

``run(cfg)`` is a plain function (tests call it with a composed config); ``main`` is the thin
``@hydra.main`` wrapper in ``minimax/__main__.py``.
"""

from __future__ import annotations

import json
import logging
import traceback
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from minimax.config import game_dict, solver_options, validate_config
from minimax.game import Game
from minimax.report import channel_rows, markdown_table
from minimax.solve import solve

log = logging.getLogger("minimax")


def record_error(cfg: Any, out_dir: str | Path, err: BaseException) -> Path:
    """Write ``error.json`` (the config as composed, the error and its traceback) to ``out_dir``.

    A failed point of a sweep keeps what is needed to reproduce it (STYLE 12)."""
    try:
        config = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) \
            else cfg
        config = {k: v for k, v in dict(config).items() if k != "hydra"}
    except Exception:  # noqa: BLE001 -- the config itself may be what is broken
        config = repr(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    record = {"status": "error", "error": f"{type(err).__name__}: {err}",
              "traceback": "".join(traceback.format_exception(err)), "config": config}
    path = out / "error.json"
    path.write_text(json.dumps(record, indent=2, default=repr))
    return path


def run(cfg: Any, out_dir: str | Path = ".") -> dict[str, Any]:
    """Solve the configured game; write ``result.json`` and ``table.md`` into ``out_dir``.

    On failure, writes ``error.json`` (config + traceback, see :func:`record_error`) and
    re-raises."""
    try:
        return _run(cfg, out_dir)
    except Exception as err:
        path = record_error(cfg, out_dir, err)
        log.error("failed: %s: %s (recorded in %s)", type(err).__name__, err, path)
        raise


def _run(cfg: Any, out_dir: str | Path) -> dict[str, Any]:
    app = validate_config(cfg)
    game = Game.from_dict(game_dict(app))
    method, options = solver_options(app.solver)
    sol = solve(game, method=method, **options)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result = {"game": game.to_dict(), "solution": sol.to_dict(),
              "channels": channel_rows(game, sol)}
    (out / "result.json").write_text(json.dumps(result, indent=2))
    table = markdown_table(game, sol)
    (out / "table.md").write_text(table)
    if app.print_table:
        print(table)
    log.info("wrote %s and %s", out / "result.json", out / "table.md")
    return result
