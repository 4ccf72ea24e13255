"""Gather sweep outputs into one tidy table (Parquet + CSV) and a figure.

``python -m minimax.sweep.aggregate DIR [DIR ...] [--out OUT]`` reads, under each DIR,

* batched sweeps (``python -m minimax.sweep``): every ``chunks/*.jsonl`` row, and
* Hydra multiruns of the app (``python -m minimax -m ...``): every job directory holding
  ``.hydra/config.yaml`` and ``result.json`` (solved) or ``error.json`` (failed),

and writes ``OUT/results.parquet`` (if pyarrow is installed), ``OUT/results.csv`` and
``OUT/sweep.png`` (value and certified gap over the first two swept axes). One row per point:
config columns (swept params, game scalars, solver), then result columns (value, upper, lower,
gap, seconds, iterations, status, error) and JSON columns (defense, attack, config).

``status`` is read from each result (see :mod:`minimax.sweep._status`): ``certified``,
``gap_above_tol`` or ``failed`` (invalid point, solver error, or a job that left neither
``result.json`` nor ``error.json``), with the reason in ``error``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from minimax.sweep._status import FAILED, normalise_row_status, result_status
from minimax.sweep._store import chunk_files, read_rows

log = logging.getLogger("minimax.sweep")

RESULT_COLUMNS = ("value", "upper", "lower", "gap", "seconds", "iterations", "method", "status",
                  "error")
GAME_COLUMNS = ("game", "mode", "attacker_budget", "defender_budget", "utility_price")


def _game_columns(game: Mapping[str, Any]) -> dict[str, Any]:
    return {"game": game.get("name"), "mode": game.get("mode"),
            **{k: game.get(k) for k in GAME_COLUMNS[2:]}}


def _solver_columns(solver: Mapping[str, Any], prefix: str = "solver") -> dict[str, Any]:
    """``solver.KEY`` columns; a nested mapping (``bound``) gives ``solver.bound.KEY`` columns
    (an empty one none: Parquet cannot store a struct without fields)."""
    out: dict[str, Any] = {}
    for key, value in solver.items():
        if isinstance(value, Mapping):
            out.update(_solver_columns(value, f"{prefix}.{key}"))
        elif key != "method" or prefix != "solver":
            out[f"{prefix}.{key}"] = value
    return out


def _jsonish(value: Any) -> Any:
    return None if value is None else json.dumps(value)


def _row_from_chunk(row: Mapping[str, Any], source: str) -> dict[str, Any]:
    config = row.get("config") or {}
    out: dict[str, Any] = {"point_id": row["point_id"], "source": source, "kind": "batched",
                           "index": row.get("index")}
    out.update(_game_columns(config.get("game", {})))
    out.update(row.get("params") or {})
    out.update(_solver_columns(config.get("solver", {})))
    out.update({k: row.get(k) for k in RESULT_COLUMNS})
    out["status"] = normalise_row_status(row.get("status"), row)
    if out["status"] == FAILED and not out.get("error"):
        out["error"] = f"row status {row.get('status')!r} with non-finite numbers"
    out["traceback"] = row.get("traceback")
    out.update({k: _jsonish(row.get(k)) for k in ("defense", "attack", "config")})
    return out


def tidy(rows: Iterable[Mapping[str, Any]], source: str = "") -> Any:
    """DataFrame of chunk rows, sorted by grid index (one row per point)."""
    import pandas as pd

    table = pd.DataFrame([_row_from_chunk(r, source) for r in rows])
    if len(table):
        # (a point has two rows only in directories written by unlocked concurrent runs)
        table = table.drop_duplicates("point_id", keep="first")
        table = table.sort_values("index", kind="stable").reset_index(drop=True)
    return table


def _job_rows(root: Path) -> list[dict[str, Any]]:
    """One row per Hydra job directory (``.hydra/config.yaml`` + result.json/error.json)."""
    import yaml

    from minimax.sweep._grid import point_id

    rows = []
    for cfg_path in sorted(root.rglob(".hydra/config.yaml")):
        job = cfg_path.parent.parent
        if (job / "chunks").is_dir() or (job / "sweep_config.yaml").is_file():
            continue  # a batched sweep's own Hydra dir: its rows come from the chunks
        cfg = yaml.safe_load(cfg_path.read_text()) or {}
        overrides_path = job / ".hydra" / "overrides.yaml"
        overrides = yaml.safe_load(overrides_path.read_text()) if overrides_path.is_file() else []
        game = dict(cfg.get("game") or {})
        for key in ("attacker_budget", "defender_budget", "utility_price", "mode"):
            if cfg.get(key) is not None:
                game[key] = cfg[key]
        row: dict[str, Any] = {"source": str(root), "kind": "job", "index": None,
                               "job": str(job.relative_to(root))}
        row.update(_game_columns(game))
        for item in overrides or []:
            key, _, value = str(item).partition("=")
            key = key.lstrip("+~")
            if key not in row and not key.startswith("hydra"):
                row[f"override.{key}"] = value
        row.update(_solver_columns(cfg.get("solver") or {}))
        row["method"] = (cfg.get("solver") or {}).get("method")
        result_path, error_path = job / "result.json", job / "error.json"
        if result_path.is_file():
            result = json.loads(result_path.read_text())
            sol = _result_numbers(result)
            row.update({k: sol.get(k) for k in RESULT_COLUMNS if k in sol})
            status, error = result_status(sol, sol.get("status", result.get("status")),
                                          sol.get("reason", result.get("reason")))
            row.update(status=status, error=error, traceback=None,
                       defense=_jsonish(sol.get("defense")), attack=_jsonish(sol.get("attack")))
        elif error_path.is_file():
            err = json.loads(error_path.read_text())
            row.update(status=FAILED, error=err.get("error"), traceback=err.get("traceback"))
        else:
            row.update(status=FAILED, error="no result.json or error.json (job killed?)")
        row["config"] = json.dumps(cfg)
        row["point_id"] = point_id({"job": cfg})
        rows.append(row)
    return rows


def _result_numbers(result: Mapping[str, Any]) -> dict[str, Any]:
    """The certificate in a job's ``result.json``: a pure solve (``solution``), a mixed one
    (``mixed``), or a finite matrix game (numbers at the top, the gap named exploitability)."""
    for key in ("solution", "mixed"):
        if isinstance(result.get(key), Mapping):
            return dict(result[key])
    return {**result, "gap": result.get("gap", result.get("exploitability"))}


def aggregate(dirs: Sequence[str | Path]) -> Any:
    """Tidy table of every batched-sweep row and Hydra job found under ``dirs``."""
    import pandas as pd

    frames = []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise FileNotFoundError(f"aggregate: {str(d)!r} is not a directory; give the "
                                    f"output directory of a sweep or of a multirun")
        for sweep_root in sorted({p.parent.parent for p in d.rglob("chunks/*.jsonl")}):
            frames.append(tidy(read_rows(chunk_files(sweep_root)), source=str(sweep_root)))
        jobs = _job_rows(d)
        if jobs:
            frames.append(pd.DataFrame(jobs))
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=["point_id", *RESULT_COLUMNS])
    table = pd.concat(frames, ignore_index=True)
    return table.drop_duplicates("point_id", keep="first").reset_index(drop=True)


def _ordered(table: Any) -> Any:
    front = ["point_id", "status", "error"]
    back = list(RESULT_COLUMNS[:7]) + ["traceback", "defense", "attack", "config"]
    middle = [c for c in table.columns if c not in front and c not in back]
    return table[[c for c in front + middle + back if c in table.columns]]


def write_table(table: Any, out_dir: str | Path, figure: bool = True,
                axes: Sequence[str] | None = None) -> dict[str, Path]:
    """Write ``results.csv``, ``results.parquet`` (when pyarrow is present) and ``sweep.png``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    table = _ordered(table)
    paths = {"csv": out / "results.csv"}
    table.to_csv(paths["csv"], index=False)
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        log.warning("aggregate: pyarrow is not installed; wrote CSV only (pip install pyarrow)")
    else:
        paths["parquet"] = out / "results.parquet"
        table.to_parquet(paths["parquet"], index=False)
    if figure and len(table):
        from minimax.sweep._figure import plot_sweep

        fig_path = plot_sweep(table, out / "sweep.png", axes=axes)
        if fig_path is not None:
            paths["figure"] = fig_path
    return paths
