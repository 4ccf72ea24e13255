"""Per-point Hydra multiruns of the app (basic, Ray on loopback) and SLURM submission dry-run.

A failed point writes ``error.json`` (config + traceback) and the multirun goes on; the
aggregator gathers job directories and batched sweeps alike.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minimax.runtime import conf_dir
from minimax.sweep import aggregate

ROOT = conf_dir().parent
POINTS = [
    "game=single_channel",
    "solver=gradient",
    "solver.starts=2",
    "solver.steps=5",
    "print_table=false",
    "attacker_budget=2,4",
    "defender_budget=-1,1",
]


def _multirun(tmp_path: Path, *extra: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "minimax", "-m", *POINTS, f"hydra.sweep.dir={tmp_path}", *extra]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def _check(tmp_path: Path, proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, proc.stderr[-3000:]
    errors = sorted(tmp_path.rglob("error.json"))
    results = sorted(tmp_path.rglob("result.json"))
    assert len(errors) == 2 and len(results) == 2  # the sweep went on past the bad points
    record = json.loads(errors[0].read_text())
    assert "GameSpecError" in record["error"] and "Traceback" in record["traceback"]
    assert record["config"]["defender_budget"] == -1
    table = aggregate([tmp_path])
    assert len(table) == 4
    assert (table["status"] == "failed").sum() == 2
    assert table["status"].isin(["certified", "gap_above_tol", "failed"]).all()
    bad = table[table["status"] == "failed"]
    assert bad["error"].str.contains("defender_budget: got -1.0").all()
    assert table.loc[table["status"] != "failed", "gap"].notna().all()


@pytest.mark.slow
def test_basic_multirun_records_failed_points(tmp_path):
    _check(tmp_path, _multirun(tmp_path))


def _have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.mark.slow
@pytest.mark.skipif(
    not _have("ray", "hydra_plugins.hydra_ray_launcher"),
    reason="optional extra 'sweep' (hydra-ray-launcher, ray) not installed",
)
def test_ray_launcher_on_local_loopback_cluster(tmp_path):
    # ray_local.yaml starts a one-node cluster on 127.0.0.1 (2 CPUs) that ends with the process
    proc = _multirun(tmp_path, "hydra/launcher=ray_local", timeout=540)
    _check(tmp_path, proc)


@pytest.mark.skipif(
    not _have("submitit", "hydra_plugins.hydra_submitit_launcher"),
    reason="optional extra 'sweep' (hydra-submitit-launcher) not installed",
)
def test_slurm_submission_dry_run(tmp_path, monkeypatch):
    """Compose hydra/launcher=slurm and build the sbatch script submitit would submit (no
    sbatch is run; submitit's check for ``srun`` on the machine is bypassed)."""
    import submitit
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(
            config_name="config",
            overrides=["experiment=grid_budgets", "hydra/launcher=slurm"],
            return_hydra_config=True,
        )
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    params = {
        k: launcher[k]
        for k in (
            "timeout_min",
            "cpus_per_task",
            "mem_gb",
            "nodes",
            "tasks_per_node",
            "array_parallelism",
        )
    }
    setup = list(launcher.setup)
    monkeypatch.setattr(submitit.SlurmExecutor, "affinity", classmethod(lambda cls: 1))
    executor = submitit.SlurmExecutor(folder=tmp_path / "%j")
    executor.update_parameters(
        time=params["timeout_min"],
        cpus_per_task=params["cpus_per_task"],
        mem=f"{params['mem_gb']}GB",
        nodes=params["nodes"],
        ntasks_per_node=params["tasks_per_node"],
        array_parallelism=params["array_parallelism"],
        partition="debug",
        setup=setup,
        job_name="minimax",
    )
    script = executor._make_submission_file_text("python -m minimax", "UID")
    assert "#SBATCH --cpus-per-task=2" in script
    assert "#SBATCH --mem=8GB" in script
    assert "#SBATCH --partition=debug" in script
    assert 'export MINIMAX_CACHE="${MINIMAX_CACHE:-$HOME/.cache/minimax}"' in script
    sweeper = cfg.hydra.sweeper.params
    assert sweeper.attacker_budget.count(",") == 3  # 4 x 3 points -> a 12-task array
