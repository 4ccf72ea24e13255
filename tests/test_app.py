"""The Hydra app: the default game end to end, overrides, matrix files and errors."""

import json

import pytest
from hydra import compose, initialize_config_dir

import minimax
from minimax.app import run
from minimax.runtime import conf_dir


def _compose(overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=overrides)


@pytest.mark.slow
def test_default_game_end_to_end(tmp_path, capsys):
    result = run(_compose([]), tmp_path)
    saved = json.loads((tmp_path / "result.json").read_text())
    sol = saved["solution"]
    assert set(sol) >= {"value", "upper", "lower", "gap", "defense", "attack", "method",
                        "iterations", "seconds"}
    assert sol["lower"] <= sol["upper"] and sol["gap"] == pytest.approx(
        sol["upper"] - sol["lower"], abs=1e-15)
    assert len(saved["channels"]) == 12 == len(result["channels"])
    spent = sum(sum(sol["defense"][k]) for k in "nsb")  # unit costs in the default game
    assert spent <= 3.0 * (1 + 1e-12)
    table = (tmp_path / "table.md").read_text()
    assert "prediction/image" in table and "Certified" in table
    assert "Certified" in capsys.readouterr().out


def test_overrides_reach_the_game(tmp_path):
    cfg = _compose(["game=single_channel", "attacker_budget=3.5", "levers=[b]",
                    "solver=gradient", "solver.starts=4", "solver.steps=50", "print_table=false"])
    saved = run(cfg, tmp_path)
    assert saved["game"]["attacker_budget"] == 3.5
    assert saved["game"]["levers"] == ["b"]
    assert saved["solution"]["defense"]["n"] == [0.0]


def test_bad_override_is_named_and_recorded(tmp_path):
    cfg = _compose(["game=single_channel", "defender_budget=-2"])
    with pytest.raises(minimax.GameSpecError, match="game.defender_budget: got -2.0"):
        run(cfg, tmp_path)
    record = json.loads((tmp_path / "error.json").read_text())
    assert "defender_budget" in record["error"] and record["traceback"]


def test_wrong_solver_key_fails_at_start(tmp_path):
    cfg = _compose(["game=single_channel", "+solver.stepz=3"])
    with pytest.raises(minimax.GameSpecError, match="stepz"):
        run(cfg, tmp_path)


def test_matrix_file(tmp_path):
    path = tmp_path / "rps.csv"
    path.write_text("0,1,-1\n-1,0,1\n1,-1,0\n")
    saved = run(_compose([f"matrix={path}", "print_table=false"]), tmp_path)
    assert saved["value"] == pytest.approx(0.0, abs=1e-9)
    assert saved["defender"] == pytest.approx([1 / 3] * 3, abs=1e-7)


@pytest.mark.slow
def test_double_oracle_from_the_command_line_config(tmp_path):
    cfg = _compose(["game=mixing_helps", "solver=double_oracle", "solver.max_iter=20",
                    "print_table=false"])
    saved = run(cfg, tmp_path)
    mixed = saved["mixed"]
    assert mixed["lower"] <= mixed["upper"] <= mixed["pure_value"] + 1e-12
    assert mixed["upper"] < mixed["pure_value"] - 0.1  # randomising strictly helps here
    assert "V_mix in" in (tmp_path / "table.md").read_text()


def _cli(tmp_path, *overrides, timeout=300):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "minimax", *overrides, f"hydra.run.dir={tmp_path}"]
    return subprocess.run(cmd, cwd=conf_dir().parent, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("override,message", [
    ("solver.starts=0", "solver option starts: got 0; expected an integer >= 1"),
    ("solver.steps=-5", "solver option steps: got -5; expected an integer >= 1"),
    ("game.levers=null", "game.levers: expected a list of levers"),
    ("defender_budget=1e10", "expected a finite number in [0, 1e+09] (the supported range"),
])
def test_cli_exits_2_on_a_named_error(tmp_path, override, message):
    proc = _cli(tmp_path, "game=single_channel", "print_table=false", override)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert message in json.loads((tmp_path / "error.json").read_text())["error"]


@pytest.mark.slow
def test_cli_exit_codes_of_a_certified_run_and_of_a_gap_above_tol(tmp_path):
    args = ("game=single_channel", "solver=gradient", "solver.starts=2", "solver.steps=5",
            "print_table=false")
    ok = _cli(tmp_path / "ok", *args)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert json.loads((tmp_path / "ok" / "result.json").read_text())["status"] == "certified"
    strict = _cli(tmp_path / "strict", *args, "solver.gap_tol=0")  # the margin alone is > 0
    assert strict.returncode == 3, strict.stderr[-2000:]
    saved = json.loads((tmp_path / "strict" / "result.json").read_text())
    assert saved["status"] == saved["solution"]["status"] == "gap_above_tol"
    assert "gap is above the requested gap_tol" in (tmp_path / "strict" / "table.md").read_text()
