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

import numpy as np
from omegaconf import DictConfig, OmegaConf

from minimax.config import game_dict, solver_options, validate_config
from minimax.errors import SolverError
from minimax.game import Game
from minimax.methods import get_method, run_method
from minimax.report import channel_rows, markdown_table

log = logging.getLogger("minimax")


def record_error(cfg: Any, out_dir: str | Path, err: BaseException) -> Path:
    """Write ``error.json`` (the config as composed, the error and its traceback) to ``out_dir``.

    A failed point of a sweep keeps what is needed to reproduce it."""
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


def _write(out: Path, result: dict[str, Any], table: str, show: bool) -> dict[str, Any]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "result.json").write_text(json.dumps(result, indent=2))
    (out / "table.md").write_text(table)
    if show:
        print(table)
    log.info("wrote %s and %s", out / "result.json", out / "table.md")
    return result


def _run_matrix(path: str, out: Path, show: bool) -> dict[str, Any]:
    """A finite zero-sum game loaded from CSV / .npy, solved exactly (minimax.finite)."""
    from minimax.finite import load_matrix, zero_sum

    loss = load_matrix(path)
    sol = zero_sum(loss)
    status = getattr(sol, "status", None)
    if status is None:  # results without a status: the NaN rule
        finite = all(np.isfinite(float(v)) for v in (sol.value, sol.upper, sol.lower))
        status = "certified" if finite else "failed"
    if status == "failed":
        raise SolverError(f"matrix game {path}: the solver did not certify its answer "
                          f"({getattr(sol, 'reason', '') or 'non-finite value or bounds'})")
    result = {"status": status, "matrix": str(path), "shape": list(loss.shape),
              "value": float(sol.value),
              "exploitability": float(sol.exploitability), "upper": float(sol.upper),
              "lower": float(sol.lower), "defender": sol.x.tolist(), "attacker": sol.y.tolist(),
              "method": sol.method}
    rows = ["| player | mixed strategy (support) |", "|---|---|"]
    for name, strat in (("defender (rows)", sol.x), ("attacker (columns)", sol.y)):
        support = ", ".join(f"{i}: {p:.4f}" for i, p in enumerate(strat) if p > 1e-9)
        rows.append(f"| {name} | {support} |")
    table = "\n".join(rows) + (f"\n\nZero-sum game {loss.shape[0]}x{loss.shape[1]} from "
                               f"`{path}`: value {sol.value:.9f}, exploitability "
                               f"{sol.exploitability:.2e} (computed from the strategies).\n")
    return _write(out, result, table, show)


def _mixed_report(game: Game, sol: Any) -> tuple[dict[str, Any], str]:
    """result.json and table.md of a mixed defense (:class:`minimax.MixedSolution`)."""
    lines = ["| defense | probability | n | s | b |", "|---|---:|---|---|---|"]
    for j, (x, p) in enumerate(zip(sol.defenses, sol.probabilities, strict=True)):
        if p > 1e-9:
            fmt = lambda v: "[" + ", ".join(f"{float(e):.3f}" for e in v) + "]"  # noqa: E731
            lines.append(f"| {j} | {p:.4f} | {fmt(x.n)} | {fmt(x.s)} | {fmt(x.b)} |")
    table = "\n".join(lines) + (
        f"\n\nMixed defense by double oracle on `{game.name}`: V_mix in [{sol.lower:.9f}, "
        f"{sol.upper:.9f}] (gap {sol.gap:.2e}); pure V in [{sol.pure.lower:.9f}, "
        f"{sol.pure.upper:.9f}]; {sol.iterations} iterations, {sol.seconds:.1f} s.\n")
    table += f"\nStatus: {sol.status} ({sol.reason}).\n"
    return {"status": sol.status, "game": game.to_dict(), "mixed": sol.to_dict()}, table


def _pure_report(game: Game, sol: Any) -> tuple[dict[str, Any], str]:
    """result.json and table.md of a pure defense (:class:`minimax.Solution`)."""
    result = {"status": sol.status, "game": game.to_dict(), "solution": sol.to_dict(),
              "channels": channel_rows(game, sol)}
    return result, markdown_table(game, sol)


# how each kind of result of the method registry (Method.result) is reported
_REPORTS = {"pure": _pure_report, "mixed": _mixed_report}


def _run(cfg: Any, out_dir: str | Path) -> dict[str, Any]:
    app = validate_config(cfg)
    out = Path(out_dir)
    if app.matrix is not None:
        return _run_matrix(app.matrix, out, app.print_table)
    game = Game.from_dict(game_dict(app))
    method, options = solver_options(app.solver)
    report = _REPORTS[get_method(method).result]
    result, table = report(game, run_method(game, method, **options))
    return _write(out, result, table, app.print_table)
