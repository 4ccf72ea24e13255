"""Experiment sweeps at scale: many equal-shape games per compiled, vmapped solve.

``python -m minimax.sweep`` (Hydra, ``conf/sweep.yaml``) expands a grid or list over numeric
game parameters (budgets, utility price, any channel field) and solves the points in chunks of
``sweep.chunk_size`` with :func:`minimax.solve_batch`, resumably (rows keyed by a content hash
of each point's resolved config, chunk files written atomically) and fault-tolerantly (invalid
points become ``status="failed"`` rows; every row's ``status`` is read from its result:
``certified``, ``gap_above_tol`` or ``failed``). ``python -m minimax.sweep.aggregate DIR``
(:mod:`minimax.sweep.aggregate_cli`) gathers batched sweeps and per-job Hydra multiruns
(``python -m minimax -m ...``) into one table with :func:`aggregate`.
"""

from minimax.sweep._aggregate import aggregate, tidy, write_table
from minimax.sweep._figure import plot_sweep
from minimax.sweep._grid import Point, apply_param, axis_values, expand, point_id
from minimax.sweep._progress import Progress
from minimax.sweep._run import SweepInterrupted, plan, run_sweep, solve_chunk, sweep_solver
from minimax.sweep._status import STATUSES

__all__ = [
    "STATUSES", "Point", "Progress", "SweepInterrupted", "aggregate", "apply_param",
    "axis_values", "expand", "plan", "plot_sweep", "point_id", "run_sweep", "solve_chunk",
    "sweep_solver", "tidy", "write_table",
]
