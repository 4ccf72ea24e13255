"""The channel-game benchmarks still run against the current solver internals (tiny sizes).

They reach below the public API (the previous batched program, per-phase timings), so a
refactor of ``minimax.solver``/``minimax.methods`` can break them without any other test failing.
Only that they run and report certified games is checked here; their timings live in
``experiments/results/`` (docs/usage.md §6.7).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_bench_core_runs(tmp_path):
    out = tmp_path / "bench.md"
    r = _run(["experiments/bench_core.py", "--k", "3", "--games", "4", "--sample", "1",
              "--fd-sample", "1", "--starts", "2", "--batch-starts", "2", "--batch-steps", "10",
              "--out", str(out)])
    assert r.returncode == 0, r.stderr[-2000:]
    text = out.read_text()
    assert "status: {'certified': 4}" in text, text


@pytest.mark.slow
def test_profile_core_runs():
    r = _run(["experiments/profile_core.py", "--k", "3", "--games", "4", "--repeat", "1"])
    assert r.returncode == 0, r.stderr[-2000:]
    assert "| 3 | 4 |" in r.stdout, r.stdout[-2000:]
