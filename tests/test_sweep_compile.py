"""The sweep's chunk programs compiled once, ahead of the chunks (minimax.sweep._compile)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from minimax.sweep._compile import CERTIFY, PIECE, START, Program, chunk_programs
from minimax.sweep._run import _shared_programs

ROOT = Path(__file__).resolve().parents[1]

# One process plays a worker of the shared compilation (``compile``: every program of the chunk
# through compile_program) or a worker solving a chunk (``solve``); it prints the names of the
# programs whose persistent-cache look-up missed (each miss is a compilation).
SCRIPT = r"""
import json, logging, sys
import jax
from hydra import compose, initialize_config_dir
from minimax.runtime import conf_dir, enable_compilation_cache

misses = []
class Misses(logging.Handler):
    def emit(self, record):
        msg = record.getMessage()
        if msg.startswith("PERSISTENT COMPILATION CACHE MISS"):
            misses.append(msg.split("'")[1])
logger = logging.getLogger("jax._src.compiler")
logger.addHandler(Misses())
logger.setLevel(logging.DEBUG)
enable_compilation_cache()
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # cache every program
with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
    cfg = compose(config_name="sweep", overrides=[
        "solver=gradient", "game=single_channel",
        "++sweep.options={starts: 2, steps: 5, boxes: 4, refine: 2, rounds: 1, nu_steps: 4,"
        " search_grid: 4}",
        "sweep.axes=[{param: attacker_budget, values: [2, 4, 6]}]"])
from minimax.sweep._compile import compile_program
from minimax.sweep._run import _shared_programs, plan, solve_chunk

app, points = plan(cfg)
solver = points[0].config["solver"]
if sys.argv[1] == "compile":
    for program in _shared_programs(solver, 4, 1):
        assert compile_program(points[:1], solver, 4, program)[1] is not None
else:
    rows = solve_chunk(points, solver, 4)
    assert [r["status"] for r in rows] == ["certified"] * 3, rows
print(json.dumps(misses))
"""


def _worker(role: str, cache: Path) -> list[str]:
    env = {**os.environ, "MINIMAX_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", SCRIPT, role], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


CHUNK = {"jit__batch_descent_init", "jit__batch_descent_piece", "jit__batch_certify_centre"}


@pytest.mark.slow
def test_chunk_finds_every_program_compiled_by_another_process(tmp_path):
    """A chunk solved after another process ran the shared compilation compiles none of the
    chunk programs (every look-up of the persistent cache hits): the programs lowered ahead of
    time are exactly the ones solve_batch runs. The compiling process, on an empty cache, sees
    one miss per program (the check that the miss counting sees compilations at all)."""
    compiled = _worker("compile", tmp_path / "shared")
    assert sorted(n for n in compiled if n in CHUNK) == sorted(
        ["jit__batch_certify_centre", "jit__batch_descent_init", "jit__batch_descent_piece"])
    after = _worker("solve", tmp_path / "shared")
    assert not CHUNK & set(after), after


def test_chunk_programs_cover_every_bucket_longest_first():
    assert chunk_programs(250) == [
        Program(CERTIFY, 250), Program(START, 250),
        *(Program(PIECE, s) for s in (250, 128, 64, 32, 16, 8, 4))]
    assert chunk_programs(4) == [Program(CERTIFY, 4), Program(START, 4), Program(PIECE, 4)]
    assert chunk_programs(1) == [Program(CERTIFY, 1), Program(START, 1), Program(PIECE, 1)]


def test_no_shared_compilation_without_cache_or_for_other_methods(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIMAX_CACHE", str(tmp_path))
    assert _shared_programs({"method": "gradient"}, 8, 3) == chunk_programs(8)
    assert _shared_programs({"method": "auto"}, 8, 3) == chunk_programs(8)
    assert _shared_programs({"method": "gda"}, 8, 3) == []
    assert _shared_programs({"method": "gradient"}, 8, 0) == []
    monkeypatch.setenv("MINIMAX_CACHE", "off")
    assert _shared_programs({"method": "gradient"}, 8, 3) == []
