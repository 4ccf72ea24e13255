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
    assert len(table) == 6 and (table["status"] == "ok").all()
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
    table = run_sweep(_cfg("sweep=faulty", *FAST), tmp_path)
    bad = table[table["status"] == "error"]
    good = table[table["status"] == "ok"]
    assert len(bad) == 2 and len(good) == 4
    assert (bad["defender_budget"] == -1.0).all()
    assert bad["error"].str.contains("GameSpecError: game.defender_budget: got -1.0").all()
    assert bad["traceback"].str.contains("Traceback").all()
    config = json.loads(bad["config"].iloc[0])
    assert config["game"]["defender_budget"] == -1.0  # the failing point's config is kept
    assert good["gap"].notna().all()
    written = pd.read_csv(tmp_path / "results.csv")
    assert set(written["status"]) == {"ok", "error"}
    assert (tmp_path / "results.parquet").is_file()


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
