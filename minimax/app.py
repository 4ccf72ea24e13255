"""The Hydra application: ``python -m minimax`` solves the configured game and reports it.

``run(cfg)`` is a plain function (tests call it with a composed config); ``main`` is the thin
``@hydra.main`` wrapper in ``minimax/__main__.py``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from minimax.config import game_dict, solver_options, validate_config
from minimax.game import Game
from minimax.report import channel_rows, markdown_table
from minimax.solve import solve

log = logging.getLogger("minimax")


def run(cfg: Any, out_dir: str | Path = ".") -> dict[str, Any]:
    """Solve the configured game; write ``result.json`` and ``table.md`` into ``out_dir``."""
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
