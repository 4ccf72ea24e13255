"""The batched sweep: expansion, resume after an interruption, invalid points, aggregation."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from minimax.config import AxisConfig
from minimax.errors import GameSpecError
from minimax.runtime import conf_dir
from minimax.sweep import SweepInterrupted, aggregate, expand, plan, point_id, run_sweep
from minimax.sweep._store import chunk_files

# Tiny solver settings: these tests check the sweep machinery, not the solver.
FAST = [
    "solver=gradient",
    "++sweep.options={starts: 2, steps: 5, boxes: 4, refine: 2, rounds: 1,"
    " nu_steps: 4, search_grid: 4}",
    "game=single_channel",
    "sweep.figure=false",
]


def _cfg(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="sweep", overrides=[*FAST, *overrides])


GRID = [
    "sweep.name=t",
    "sweep.axes=[{param: attacker_budget, values: [2, 4, 6]},"
    " {param: defender_budget, values: [1, 2]}]",
    "sweep.chunk_size=2",
]

GAME = {
    "mode": "injection",
    "attacker_budget": 1.0,
    "defender_budget": 1.0,
    "channels": [
        {"name": "a/text", "flow": "agent_app", "modality": "text", "gamma": 1.0},
        {"name": "m/text", "flow": "memory", "modality": "text", "gamma": 2.0},
    ],
}


def test_expand_grid_zip_and_channel_params():
    pts = expand(
        GAME,
        [
            AxisConfig("attacker_budget", start=1, stop=3, num=3),
            AxisConfig("channels.memory.gamma", values=[0.5, 2.0], op="scale"),
        ],
    )
    assert len(pts) == 6
    assert pts[1].params == {"attacker_budget": 1.0, "channels.memory.gamma": 2.0}
    assert pts[1].config["game"]["channels"][1]["gamma"] == 4.0  # scaled
    assert pts[1].config["game"]["channels"][0]["gamma"] == 1.0  # other flow untouched
    z = expand(
        GAME,
        [
            AxisConfig("attacker_budget", values=[1, 2]),
            AxisConfig("channels.0.gamma", values=[3, 4]),
        ],
        kind="zip",
    )
    assert [p.params["channels.0.gamma"] for p in z] == [3.0, 4.0]
    assert len({p.point_id for p in pts}) == 6
    assert point_id(pts[0].config) == pts[0].point_id  # deterministic content hash


@pytest.mark.parametrize(
    ("axes", "needle"),
    [
        ([AxisConfig("budget", values=[1])], "unknown param 'budget'"),
        ([AxisConfig("channels.gama", values=[1])], "unknown channel field 'gama'"),
        ([AxisConfig("channels.7.gamma", values=[1])], "out of range"),
        ([AxisConfig("channels.audio.gamma", values=[1])], "no channel named or of flow 'audio'"),
        ([AxisConfig("attacker_budget", start=1, num=3)], "start/stop/num|stop=None"),
        ([AxisConfig("attacker_budget", start=0, stop=1, num=3, scale="log")], "scale=log"),
    ],
)
def test_expand_errors_name_the_field(axes, needle):
    with pytest.raises(GameSpecError, match=needle):
        expand(GAME, axes)


def test_unknown_solver_option_is_rejected_at_start():
    with pytest.raises(GameSpecError, match="sweep.options.stpes"):
        plan(_cfg(*GRID, "+sweep.options.stpes=3"))


def _table(out):
    table = aggregate([out])
    cols = ["point_id", "attacker_budget", "defender_budget", "status", "value", "lower", "gap"]
    return table.sort_values("point_id")[cols].reset_index(drop=True)


@pytest.mark.slow
def test_resume_after_interruption_gives_the_same_table(tmp_path):
    full = tmp_path / "full"
    table = run_sweep(_cfg(*GRID), full)
    assert len(table) == 6 and table["status"].isin(["certified", "gap_above_tol"]).all()
    assert len(chunk_files(full)) == 3

    cut = tmp_path / "cut"
    with pytest.raises(SweepInterrupted, match="stopped after 1 of 3 chunks"):
        run_sweep(_cfg(*GRID, "sweep.stop_after_chunks=1"), cut)
    first = chunk_files(cut)
    assert len(first) == 1
    before = first[0].read_bytes()
    (first[0].parent / ".tmp-999-chunk-in-flight.jsonl").write_text("{partial")  # killed write
    resumed = run_sweep(_cfg(*GRID), cut)
    assert len(resumed) == 6
    assert first[0].read_bytes() == before  # finished results never rewritten
    assert len(chunk_files(cut)) == 3  # 1 old + 2 new: only the missing points were solved
    assert not list(first[0].parent.glob(".tmp-*"))
    pd.testing.assert_frame_equal(_table(full), _table(cut))
    # a third run has nothing to do and changes nothing
    run_sweep(_cfg(*GRID), cut)
    assert len(chunk_files(cut)) == 3


@pytest.mark.slow
def test_invalid_points_are_reported_and_the_rest_solved(tmp_path):
    """``python -m minimax.sweep sweep=faulty``: the invalid points get failed rows, the others
    are solved, and the command exits 1 (finished, but with failed points)."""
    proc = _sweep_cli(tmp_path, "sweep=faulty")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "2 of 6 points failed" in proc.stderr
    table = aggregate([tmp_path])
    bad = table[table["status"] == "failed"]
    good = table[table["status"] != "failed"]
    assert len(bad) == 2 and len(good) == 4
    assert (bad["defender_budget"] == -1.0).all()
    assert bad["error"].str.contains("GameSpecError: game.defender_budget: got -1.0").all()
    assert bad["traceback"].str.contains("Traceback").all()
    config = json.loads(bad["config"].iloc[0])
    assert config["game"]["defender_budget"] == -1.0  # the failing point's config is kept
    assert good["gap"].notna().all()
    written = pd.read_csv(tmp_path / "results.csv")
    assert set(written["status"]) <= {"certified", "gap_above_tol", "failed"}
    assert "failed" in set(written["status"])
    assert (tmp_path / "results.parquet").is_file()


@pytest.mark.slow
def test_each_game_is_built_once_in_the_chunk_that_solves_it(tmp_path, monkeypatch):
    """The sweep's own process builds no game ahead of the chunks (building 10,000 games took
    seconds there, before any worker started): every point's game is built once, an invalid
    one gives its failed row in its chunk's file, and the rest of the chunk is solved."""
    from minimax.game import Game

    built = []
    original = Game.from_dict.__func__
    monkeypatch.setattr(Game, "from_dict",
                        classmethod(lambda cls, d: built.append(d) or original(cls, d)))
    axes = ("sweep.axes=[{param: attacker_budget, values: [2, 4]},"
            " {param: defender_budget, values: [1, -1]}]")
    table = run_sweep(_cfg("sweep.name=t", axes, "sweep.chunk_size=2"), tmp_path)
    assert len(built) == 4
    assert len(chunk_files(tmp_path)) == 2
    bad = table[table["status"] == "failed"]
    assert list(bad["defender_budget"]) == [-1.0, -1.0]
    assert bad["error"].str.contains("GameSpecError: game.defender_budget: got -1.0").all()
    assert table.loc[table["status"] != "failed", "gap"].notna().all()


def test_sharding_partitions_the_points():
    _, all_points = plan(_cfg(*GRID))
    shards = [plan(_cfg(*GRID, "sweep.num_shards=4", f"sweep.shard={k}"))[1] for k in range(4)]
    ids = sorted(p.point_id for s in shards for p in s)
    assert ids == sorted(p.point_id for p in all_points)


def test_app_run_records_error_json(tmp_path):
    """``python -m minimax`` per job: a failing point leaves error.json (config + traceback)."""
    from minimax.app import run

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["defender_budget=-1"])
    with pytest.raises(GameSpecError, match="defender_budget"):
        run(cfg, tmp_path)
    record = json.loads((tmp_path / "error.json").read_text())
    assert record["status"] == "error" and "GameSpecError" in record["error"]
    assert "Traceback" in record["traceback"] and record["config"]["defender_budget"] == -1
    assert not (tmp_path / "result.json").exists()


# --- status of rows, concurrency, aggregation of failed points, exit codes --------------------


class _FakeSolution:
    """A solver result with the given status (None: a result type without one) and numbers."""

    def __init__(self, status, value, reason=None):
        if status is not None:
            self.status, self.reason = status, reason
        self.value = value

    def to_dict(self):
        v = self.value
        return {"value": v, "upper": v, "lower": v - 0.1, "gap": 0.1, "seconds": 0.0,
                "iterations": 3, "method": "gradient", "defense": None, "attack": None}


@pytest.mark.parametrize(
    ("status", "value", "reason", "expected", "error"),
    [
        (None, 1.0, None, "certified", None),  # no status on the result: the NaN rule
        (None, float("nan"), None, "failed", "non-finite"),
        ("certified", 1.0, None, "certified", None),
        ("gap_above_tol", 1.0, None, "gap_above_tol", None),
        ("failed", float("nan"), "lower > upper", "failed", "lower > upper"),
        ("certified", float("inf"), None, "failed", "status 'certified' but non-finite"),
    ],
)
def test_row_status_is_read_from_the_result(status, value, reason, expected, error):
    from minimax.sweep._grid import Point
    from minimax.sweep._run import _ok_row

    point = Point(0, "p0", {"attacker_budget": 1.0}, {"game": {}, "solver": {"method": "x"}})
    row = _ok_row(point, _FakeSolution(status, value, reason))
    assert row["status"] == expected
    assert (row["error"] is None) if error is None else (error in row["error"])
    json.dumps(row, allow_nan=False)  # rows stay valid JSON (no NaN literals)


@pytest.mark.slow
def test_concurrent_runs_on_one_directory_never_duplicate_points(tmp_path):
    """Two runs on one directory, with different chunk sizes (so different chunk files): the
    second waits for the first's lock, then finds every point done. Before the lock: 24
    duplicated ids in 88 rows for 64 points, or a raw FileExistsError with equal chunk sizes."""
    import threading
    import time

    from minimax.sweep._store import locked, read_rows

    configs = {"a": _cfg(*GRID), "b": _cfg(*GRID, "sweep.chunk_size=4"),
               "c": _cfg(*GRID)}  # c: the same command as a
    outcome: dict[str, object] = {}

    def run(key):
        try:
            outcome[key] = run_sweep(configs[key], tmp_path)
        except BaseException as err:  # noqa: BLE001 -- re-raised in the test's thread
            outcome[key] = err

    threads = [threading.Thread(target=run, args=(k,)) for k in configs]
    with locked(tmp_path):  # hold the directory so that all three start together
        for t in threads:
            t.start()
        time.sleep(0.5)
        assert all(t.is_alive() for t in threads)  # each waits for the lock
    for t in threads:
        t.join(timeout=600)
    for key, result in outcome.items():
        assert isinstance(result, pd.DataFrame), f"run {key}: {result!r}"
        assert len(result) == 6
    ids = [r["point_id"] for r in read_rows(chunk_files(tmp_path))]
    assert len(ids) == len(set(ids)) == 6


def _job(root, name, budgets, result=None, error=None, key="solution"):
    import yaml

    job = root / name
    (job / ".hydra").mkdir(parents=True)
    game = {"name": "g", "mode": "injection", "attacker_budget": budgets[0],
            "defender_budget": budgets[1]}
    (job / ".hydra" / "config.yaml").write_text(
        yaml.safe_dump({"game": game, "solver": {"method": "gradient"}}))
    if result is not None:
        record = result if key is None else {key: result}
        (job / "result.json").write_text(json.dumps(record))
    if error is not None:
        (job / "error.json").write_text(json.dumps({"status": "error", "error": error,
                                                    "traceback": "Traceback ..."}))


def _sol(value, status=None):
    out = {"value": value, "upper": value, "lower": value - 0.5, "gap": 0.5, "seconds": 0.1,
           "iterations": 4, "method": "gradient", "defense": {}, "attack": {}}
    return out if status is None else {**out, "status": status}


def _multirun_dir(root):
    """A 2 x 3 multirun: four answers, a NaN "certificate" without status, an error.json for a
    NaN budget, and a job killed before writing anything."""
    _job(root, "0", (1.0, 1.0), _sol(1.0))  # no status field: finite -> certified
    _job(root, "1", (1.0, 2.0), _sol(2.0, "certified"))
    _job(root, "2", (2.0, 1.0), _sol(3.0, "gap_above_tol"))
    _job(root, "3", (2.0, 2.0), _sol(4.0, "certified"))
    _job(root, "4", (3.0, 1.0), _sol(float("nan")))  # the NaN certificate once labelled ok
    _job(root, "5", (float("nan"), 2.0), error="GameSpecError: attacker_budget: got nan")
    _job(root, "6", (3.0, 2.0))  # killed


def test_aggregate_reads_status_and_draws_what_it_can(tmp_path, caplog):
    import logging

    from minimax.sweep.aggregate_cli import main

    _multirun_dir(tmp_path / "runs")
    table = aggregate([tmp_path / "runs"]).set_index("job")
    assert table["status"].to_dict() == {
        "0": "certified", "1": "certified", "2": "gap_above_tol", "3": "certified",
        "4": "failed", "5": "failed", "6": "failed"}
    assert "non-finite" in table.loc["4", "error"] and "killed" in table.loc["6", "error"]
    with caplog.at_level(logging.WARNING, logger="minimax.sweep"):
        code = main([str(tmp_path / "runs"), "--out", str(tmp_path / "report")])
    assert code == 1  # tables and figure written, but points failed
    assert (tmp_path / "report" / "sweep.png").stat().st_size > 0
    written = pd.read_csv(tmp_path / "report" / "results.csv")
    assert sorted(written["status"].unique()) == ["certified", "failed", "gap_above_tol"]
    assert "4 of 7 points drawn; left blank: 3 failed" in caplog.text


def test_aggregate_exit_codes(tmp_path, capsys):
    from minimax.sweep.aggregate_cli import main

    root = tmp_path / "ok"
    _job(root, "0", (1.0, 1.0), _sol(1.0, "certified"))
    _job(root, "1", (2.0, 1.0), _sol(2.0, "gap_above_tol"))
    _job(root, "2", (3.0, 1.0), _sol(2.5), key="mixed")  # python -m minimax solver=double_oracle
    matrix = {"matrix": "A.csv", "value": 0.5, "upper": 0.5, "lower": 0.5, "exploitability": 0.0}
    _job(root, "3", (4.0, 1.0), matrix, key=None)  # python -m minimax matrix=A.csv
    table = aggregate([root]).set_index("job")
    assert table["status"].to_dict() == {"0": "certified", "1": "gap_above_tol",
                                         "2": "certified", "3": "certified"}
    assert table.loc["3", "gap"] == 0.0 and table.loc["2", "value"] == 2.5
    assert main([str(root), "--no-figure"]) == 0
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty")]) == 2
    assert "no batched sweep" in capsys.readouterr().err
    assert main([str(tmp_path / "absent")]) == 2
    assert "is not a directory" in capsys.readouterr().err


def test_aggregate_module_does_not_shadow_the_function(tmp_path):
    """``python -m minimax.sweep.aggregate`` runs the CLI; importing that module leaves
    ``minimax.sweep.aggregate`` the function (it used to become the module)."""
    import importlib
    import os
    import subprocess
    import sys

    import minimax.sweep
    from minimax.sweep._aggregate import aggregate as function

    importlib.import_module("minimax.sweep.aggregate")
    assert minimax.sweep.aggregate is function
    _multirun_dir(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "minimax.sweep.aggregate", str(tmp_path)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "3 of 7 points failed" in proc.stderr and (tmp_path / "results.csv").is_file()


def _sweep_cli(tmp_path, *overrides):
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "minimax.sweep", *FAST, f"hydra.run.dir={tmp_path}", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONWARNINGS": "ignore"})


def test_sweep_cli_exits_2_on_an_invalid_config(tmp_path):
    proc = _sweep_cli(tmp_path, "sweep.chunk_size=0")
    assert proc.returncode == 2 and "sweep.chunk_size: got 0" in proc.stderr
