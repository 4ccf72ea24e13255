"""The batched sweep: many equal-shape games per compiled, vmapped ``solve_batch`` call.

``python -m minimax`` under Hydra multirun pays interpreter start-up and JAX compilation for
every point (seconds each). Here the points of a sweep are cut into chunks of ``chunk_size``
games; each chunk is one call of :func:`minimax.solve_batch` on a stacked game, compiled once
per process (and cached on disk by JAX's persistent compilation cache, so later processes and
re-runs skip compilation). The per-point cost is then close to the solver's own.

Every point gets a row (its params, resolved config, certificate, status and error) in a chunk
file written atomically; invalid points (their game is built in the chunk's worker) get
``status="failed"`` rows with the :class:`~minimax.GameSpecError` message and the sweep goes
on; a chunk whose batched solve fails is retried point by point so that only the failing points
are marked. Re-running the same sweep in the same directory solves only the points that have no
row yet.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from omegaconf import DictConfig, OmegaConf

from minimax.config import SweepAppConfig, solver_options, validate_config
from minimax.errors import GameSpecError, MinimaxError
from minimax.methods import BOUND_OPTIONS, METHODS, get_method, parse_options, readers
from minimax.sweep._compile import Program, chunk_programs, compile_program, precompiles
from minimax.sweep._grid import Point, expand
from minimax.sweep._progress import Progress
from minimax.sweep._status import FAILED, GAP_ABOVE_TOL, of_solution
from minimax.sweep._store import (
    chunk_dir,
    chunk_files,
    done_ids,
    locked,
    read_rows,
    remove_stale_temporaries,
    write_rows_atomic,
)

log = logging.getLogger("minimax.sweep")

class SweepInterrupted(MinimaxError):
    """Raised by ``sweep.stop_after_chunks``: simulates a sweep killed after k chunks."""


def sweep_solver(app: SweepAppConfig) -> dict[str, Any]:
    """``{"method": ..., **options}``: the solver group's options, then the sweep's overrides.

    Checked against the method registry (:mod:`minimax.methods`) before any point is solved:
    the method must give pure defenses, and an option it does not read is a named error."""
    method, options = solver_options(app.solver)
    spec = get_method(method)
    if spec.result != "pure":
        pure = [m.name for m in METHODS.values() if m.result == "pure"]
        raise GameSpecError(f"solver.method: {method!r} gives mixed defenses; a sweep solves "
                            f"one of {pure} per point")
    allowed = set(spec.options._fields) | set(BOUND_OPTIONS)
    for key, value in app.sweep.options.items():
        if key not in allowed:
            raise GameSpecError(
                f"sweep.options.{key}: method={method!r} does not read this option (value "
                f"{value!r}; read by {readers(key) or 'no method'}); it reads {sorted(allowed)}"
            )
        options[key] = value
    gap_tol = options.pop("gap_tol", None)
    parse_options(method, options)  # a bad value fails here, once, not at every point
    return {"method": method, **options, **({} if gap_tol is None else {"gap_tol": gap_tol})}


def base_game(app: SweepAppConfig) -> dict[str, Any]:
    game = dict(app.game)
    game.pop("defaults", None)
    return game


def _error_row(point: Point, err: BaseException, tb: str | None = None) -> dict[str, Any]:
    return {
        "point_id": point.point_id, "index": point.index, "params": point.params,
        "status": FAILED, "error": f"{type(err).__name__}: {err}",
        "traceback": tb if tb is not None else traceback.format_exc(),
        "value": None, "upper": None, "lower": None, "gap": None, "seconds": None,
        "iterations": None, "method": point.config["solver"].get("method"),
        "defense": None, "attack": None, "config": point.config,
    }


def _ok_row(point: Point, sol: Any) -> dict[str, Any]:
    """The row of a solved point; its status is the one the solver reported (see _status)."""
    d = sol.to_dict()
    if getattr(sol, "status", None) is None and "status" in d:
        sol = _Reported(d.get("status"), d.get("reason"))
    status, error = of_solution(sol, d)
    numbers = {k: d.get(k) for k in ("value", "upper", "lower", "gap", "seconds", "iterations",
                                     "method")}
    for k in ("value", "upper", "lower", "gap"):  # JSON has no NaN: missing numbers are null
        if not isinstance(numbers[k], int | float) or not math.isfinite(numbers[k]):
            numbers[k] = None
    return {
        "point_id": point.point_id, "index": point.index, "params": point.params,
        "status": status, "error": error, "traceback": None, **numbers,
        "defense": d.get("defense"), "attack": d.get("attack"), "config": point.config,
    }


class _Reported(NamedTuple):
    status: Any
    reason: Any


def _games(points: Sequence[Point]):
    from minimax.game import Game

    return [Game.from_dict(p.config["game"]) for p in points]


def solve_chunk(points: Sequence[Point], solver: dict[str, Any], pad_to: int,
                path: str | None = None) -> list[dict[str, Any]]:
    """Solve one chunk of points (its valid games padded to ``pad_to`` so that every chunk has
    one compiled shape); write its rows to ``path`` (atomically) if given; return the rows, in
    the order of ``points``. A point whose game does not build gets a ``failed`` row.

    Runs in the sweep's process or in a joblib worker (plain-data arguments): the games are
    built (and so validated) here, once, in parallel over the workers."""
    from minimax.runtime import enable_compilation_cache
    from minimax.solver import solve, solve_batch

    enable_compilation_cache()
    options = dict(solver)
    method = options.pop("method")
    built, failed = _build(points)
    valid = [p for p in points if p.point_id in built]
    games = [built[p.point_id] for p in valid]
    solved: dict[str, dict[str, Any]] | None = None
    if METHODS[method].batched and games:
        try:
            padded = games + [games[0]] * max(pad_to - len(games), 0)
            sols = solve_batch(padded, method=method, **options)
            solved = {p.point_id: _ok_row(p, s) for p, s in zip(valid, sols, strict=False)}
        except Exception:  # noqa: BLE001 -- retried point by point below, errors kept per point
            log.warning("sweep: batched solve of a chunk failed; retrying its %d points one by "
                        "one\n%s", len(valid), traceback.format_exc())
    if solved is None:
        solved = {}
        for p, g in zip(valid, games, strict=True):
            try:
                solved[p.point_id] = _ok_row(p, solve(g, method=method, **options))
            except Exception as err:  # noqa: BLE001 -- a failing point is recorded, sweep goes on
                solved[p.point_id] = _error_row(p, err)
    rows = [solved[p.point_id] if p.point_id in solved else failed[p.point_id] for p in points]
    if path is not None:
        write_rows_atomic(Path(path), rows)
    return rows


def _build(points: Sequence[Point]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """The games of the points whose game builds, and error rows for those that do not (with
    the :class:`~minimax.GameSpecError` message and traceback), both by point id."""
    from minimax.game import Game

    built, failed = {}, {}
    for p in points:
        try:
            built[p.point_id] = Game.from_dict(p.config["game"])
        except Exception as err:  # noqa: BLE001 -- recorded with its traceback
            failed[p.point_id] = _error_row(p, err)
    return built, failed


def _chunk_name(points: Sequence[Point]) -> str:
    digest = hashlib.sha256("".join(p.point_id for p in points).encode()).hexdigest()[:16]
    return f"chunk-{points[0].index:07d}-{digest}.jsonl"


def _pad_size(todo: int, chunk_size: int) -> int:
    """Games per compiled call: ``chunk_size``, or the next power of two for small sweeps."""
    return min(chunk_size, 1 << max(todo - 1, 0).bit_length())


def plan(cfg: DictConfig | dict | SweepAppConfig) -> tuple[SweepAppConfig, list[Point]]:
    """Validate a composed sweep config and expand it into its points (no solving)."""
    app = cfg if isinstance(cfg, SweepAppConfig) else validate_config(cfg, SweepAppConfig)
    if app.sweep.chunk_size < 1:
        raise GameSpecError(f"sweep.chunk_size: got {app.sweep.chunk_size}; expected >= 1")
    if app.sweep.n_jobs == 0:
        raise GameSpecError("sweep.n_jobs: got 0; expected >= 1 (or -1 for all cores)")
    if not 0 <= app.sweep.shard < app.sweep.num_shards:
        raise GameSpecError(f"sweep.shard: got {app.sweep.shard} with num_shards="
                            f"{app.sweep.num_shards}; expected 0 <= shard < num_shards")
    solver = sweep_solver(app)
    points = expand(base_game(app), app.sweep.axes, app.sweep.kind, solver)
    points = [p for p in points if p.index % app.sweep.num_shards == app.sweep.shard]
    return app, points


def run_sweep(cfg: DictConfig | dict, out_dir: str | Path = ".") -> Any:
    """Run (or resume) the sweep of a composed ``conf/sweep.yaml`` config in ``out_dir``.

    Returns the tidy table (pandas DataFrame, one row per point of this sweep) and writes
    ``results.parquet``/``results.csv`` and ``sweep.png`` (see :mod:`minimax.sweep.aggregate_cli`).
    """
    from minimax.sweep._aggregate import tidy, write_table

    app, points = plan(cfg)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    container = cfg if isinstance(cfg, dict) else OmegaConf.to_container(cfg, resolve=True)
    container = {k: v for k, v in dict(container).items() if k != "hydra"}
    with locked(out):  # a second run on this directory waits here, then resumes
        (out / "sweep_config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(container)))
        stale = remove_stale_temporaries(out)
        if stale:
            log.info("sweep: removed %d temporary file(s) of an interrupted run", stale)
        done = done_ids(out)
        todo = [p for p in points if p.point_id not in done]
        log.info("sweep %r: %d points, %d already done, %d to solve (solver %s)",
                 app.sweep.name, len(points), len(points) - len(todo), len(todo),
                 points[0].config["solver"] if points else {})
        progress = Progress(len(points), len(points) - len(todo), app.sweep.name)
        if todo:
            _solve_all(app, todo, out, progress)
        ids = {p.point_id for p in points}
        rows = [r for r in read_rows(chunk_files(out)) if r["point_id"] in ids]
        table = tidy(rows, source=str(out))
        write_table(table, out, figure=app.sweep.figure, axes=[a.param for a in app.sweep.axes])
    return table


def _solve_all(app: SweepAppConfig, todo: list[Point], out: Path, progress: Progress) -> None:
    size = _pad_size(len(todo), app.sweep.chunk_size)
    chunks = [todo[i:i + size] for i in range(0, len(todo), size)]
    solver = todo[0].config["solver"]
    limit = app.sweep.stop_after_chunks
    jobs = [(c, str(chunk_dir(out) / _chunk_name(c))) for c in chunks]
    if limit is not None:
        jobs = jobs[:limit]
    t0 = time.perf_counter()
    if app.sweep.n_jobs == 1:
        for c, path in jobs:
            rows = solve_chunk(c, solver, size, path)
            progress.update(len(rows), _status_note(rows))
    else:
        from joblib import Parallel, delayed

        first = next((p for p in todo if _build([p])[0]), None)  # one valid game: its shape
        programs = _shared_programs(solver, size, len(jobs)) if first else []
        tasks = [delayed(compile_program)([first], solver, size, program)
                 for program in programs]
        tasks += [delayed(solve_chunk)(c, solver, size, p) for c, p in jobs]
        parallel = Parallel(n_jobs=app.sweep.n_jobs, return_as="generator_unordered")
        ready = 0
        for result in parallel(tasks):
            if isinstance(result, tuple):  # a (Program, seconds) of the shared compilation
                ready += 1
                log.debug("sweep: program %s ready in %s s", *result)
                if ready == len(programs):
                    log.info("sweep: %d chunk programs compiled or loaded, shared by the "
                             "workers, %.1f s after the start", ready, time.perf_counter() - t0)
            else:
                progress.update(len(result), _status_note(result))
    log.info("sweep: solved %d points in %.1f s (%d chunk(s) of up to %d games, n_jobs=%d)",
             sum(len(c) for c, _ in jobs), time.perf_counter() - t0, len(jobs), size,
             app.sweep.n_jobs)
    if limit is not None and limit < len(chunks):
        raise SweepInterrupted(
            f"sweep.stop_after_chunks={limit}: stopped after {limit} of {len(chunks)} chunks "
            f"(re-run the same command to resume)"
        )


def _shared_programs(solver: dict[str, Any], size: int, chunks: int) -> list[Program]:
    """The chunk programs the workers compile once between them before solving (longest first),
    or none: with caching off a program compiled in one worker cannot reach the others, and
    only the compacted batched descent has them (:mod:`minimax.sweep._compile`)."""
    from minimax.runtime import cache_root

    if not chunks or cache_root() is None or not precompiles(solver["method"]):
        return []
    return chunk_programs(size)


def _status_note(rows: Sequence[dict[str, Any]]) -> str:
    failed = sum(r["status"] == FAILED for r in rows)
    loose = sum(r["status"] == GAP_ABOVE_TOL for r in rows)
    notes = [f"{failed} failed" if failed else "", f"{loose} gap above tol" if loose else ""]
    return ", ".join(n for n in notes if n) + (" in chunk" if failed or loose else "")


def describe(points: Sequence[Point]) -> dict[str, Any]:
    """Summary of a planned sweep (for dry runs and logs)."""
    params = list(points[0].params) if points else []
    return {"points": len(points), "params": params,
            "solver": points[0].config["solver"] if points else {}}

