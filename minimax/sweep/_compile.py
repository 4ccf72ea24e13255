"""Compile a sweep's chunk programs once, split over the worker processes.

A batched chunk (:func:`minimax.solve_batch`, method ``gradient``) runs several compiled
programs: the start of the descent, one piece of the descent per bucket size of the compacted
batch (the chunk size and the powers of two below it, ``minimax.solver._bucket``), and the
certificate at the defenses found. On a cold compilation cache every joblib worker would
compile all of them, the same programs at the same time on different cores. Here each program
is instead one task of its own, lowered for the chunk's shapes and compiled
(``jax.jit(...).lower(...).compile()``) into the persistent compilation cache
(:mod:`minimax.runtime`); the tasks go first, longest compile first, so the workers share them
out, and the chunks that follow load the programs from the cache instead of compiling them
again (``docs/usage.md`` §6.3). The programs and their inputs are exactly those of
``solve_batch``: nothing a chunk computes changes, only who compiles it and when. The bound at
nu = 0 (``minimax.solver._batch_zero_bound``) is left to the chunks: only some games need it,
at sizes known only once their certificates are under way (the 10,000-point budget sweep needs
it for none).
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import numpy as np

from minimax.sweep._grid import Point

log = logging.getLogger("minimax.sweep")

# the chunk programs, longest compile first (measured: the certificate ~2x a descent piece)
CERTIFY, START, PIECE = "certify_centre", "descent_init", "descent_piece"


class Program(NamedTuple):
    """One compiled program of a chunk: its ``name`` and the batch ``size`` it is compiled for."""

    name: str
    size: int


def precompiles(method: str) -> bool:
    """Whether chunks of ``method`` run the compacted batched descent these programs serve."""
    return method in ("gradient", "auto")


def chunk_programs(pad_to: int) -> list[Program]:
    """The programs a chunk of ``pad_to`` games can run, longest compile first: the certificate
    and the descent's start at ``pad_to`` games, a descent piece at every bucket size
    ``minimax.solver._bucket(active, pad_to)`` for ``active`` = 1 .. ``pad_to``."""
    from minimax.solver import _bucket

    sizes = sorted({_bucket(a, pad_to) for a in range(1, pad_to + 1)}, reverse=True)
    return [Program(CERTIFY, pad_to), Program(START, pad_to)] + [Program(PIECE, s) for s in sizes]


def _split(solver: dict[str, Any]):
    from minimax.methods import parse_options

    options = dict(solver)
    method = options.pop("method")
    options.pop("gap_tol", None)
    _, opts, cfg = parse_options(method, options)
    return opts, cfg


def _abstract(tree, size: int):
    """Shape-and-dtype stand-ins of the host (numpy) arrays of ``tree``, the leading axis set to
    ``size`` (as ``solve_batch`` passes them after gathering a bucket on the host)."""
    def one(v):
        return jax.ShapeDtypeStruct((size, *np.shape(v)[1:]), v.dtype)

    return jax.tree_util.tree_map(one, tree)


def compile_program(points: Sequence[Point], solver: dict[str, Any], pad_to: int,
                    program: Program) -> tuple[Program, float | None]:
    """Compile ``program`` for chunks of ``pad_to`` games of ``points``' shape into the persistent
    compilation cache; returns the program and the seconds it took (a cache hit: a load).

    Runs in a joblib worker (plain-data arguments), like :func:`minimax.sweep._run.solve_chunk`.
    The arguments are lowered with the avals ``solve_batch`` passes: the stacked game as a JAX
    array tree, the descent state and the bucketed games as host arrays. Only an optimisation:
    a failure is logged and gives None seconds, and the chunks then compile the program
    themselves (and report any error of their own, point by point).
    """
    try:
        return program, _compile(points, solver, pad_to, program)
    except Exception:  # noqa: BLE001 -- the chunks compile it themselves
        log.warning("sweep: compiling %s ahead of the chunks failed; the chunks compile it\n%s",
                    program, traceback.format_exc())
        return program, None


def _compile(points: Sequence[Point], solver: dict[str, Any], pad_to: int,
             program: Program) -> float:
    from minimax.runtime import enable_compilation_cache
    from minimax.solver import (
        _batch_certify_centre,
        _batch_descent_init,
        _batch_descent_piece,
        stack_games,
    )
    from minimax.sweep._run import _games

    enable_compilation_cache()
    start = time.perf_counter()
    opts, cfg = _split(solver)
    stacked = stack_games(_games(points[:1]) * pad_to)  # only its shape matters
    if program.name == START:
        _batch_descent_init.lower(stacked, opts).compile()
    else:
        state = jax.eval_shape(_batch_descent_init, stacked, opts)
        if program.name == PIECE:
            games_np = jax.tree_util.tree_map(np.asarray, stacked)
            sub_state = _abstract(state, program.size)
            until = _abstract(state.step, program.size)
            _batch_descent_piece.lower(_abstract(games_np, program.size), sub_state, opts,
                                       until).compile()
        elif program.name == CERTIFY:
            x = jax.ShapeDtypeStruct((pad_to, *state.x.shape[2:]), state.x.dtype)
            _batch_certify_centre.lower(stacked, x, cfg).compile()
        else:
            raise ValueError(f"compile_program: program.name {program.name!r}; expected one "
                             f"of {[CERTIFY, START, PIECE]}")
    return time.perf_counter() - start
