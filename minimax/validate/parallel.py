"""Independent cells measured by worker processes that share the measurement store.

The pipeline (:mod:`minimax.validate.run`) stays one serial program; before it reaches a
batch of cells that do not depend on each other (the calibration and held-out conditions
with the attack-strength checks; the columns of one double-oracle iteration; a new row's
cells), it hands the batch to :class:`Prefetcher`, whose ``workers`` processes compute
each call (``target.attack``, then ``target.evaluate`` under the listed defenses, or
``target.clean``) into a :class:`~minimax.validate.store.StoredTarget` on one directory.
The serial program then makes the very same calls and reads every result back from the
store (docs/validation.md §5.7).

**Identical to the serial path.**  A result depends only on the call's arguments (the
targets seed every draw from them; that is what makes them storable), so a cell computed
by a worker equals the cell the serial path would compute, whatever the worker and the
order; the serial program still assembles, bootstraps and solves everything itself.
Calls a target says share work (``target.work_key``: the digits target's text stage, one
GCG run shared by the attacks with the same suffix budget) go to one worker in one task,
so nothing is computed twice.

A failing call is logged and left out of the store: the serial path then makes it itself
and records its error exactly as without workers, and the other cells are kept.  Each
worker runs single-threaded (torch intra- and inter-op threads, OpenMP, MKL, XLA).
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import Any, NamedTuple

log = logging.getLogger(__name__)

SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
XLA_SINGLE = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


class Call(NamedTuple):
    """One storable measurement: an attack and its answers, or the clean answers.

    ``kind == "attack"``: ``target.attack(mixture, power, split, seed, options)``, then
    ``target.evaluate(attack, knobs, split, seed)`` for each ``knobs`` in ``evaluate``.
    ``kind == "clean"``: ``target.clean(knobs, split, seed)`` for each ``knobs`` in
    ``evaluate``.
    """

    kind: str
    label: str
    split: str
    seed: int
    evaluate: tuple = ()
    mixture: tuple = ()
    power: Mapping[str, float] | None = None
    options: Mapping[str, Any] | None = None


def attack_call(label: str, mixture: Sequence[tuple[float, Any]], power: Mapping[str, float],
                split: str, seed: int, options: Mapping[str, Any] | None,
                evaluate: Sequence[Any] = ()) -> Call:
    """A :class:`Call` of ``target.attack`` (and ``evaluate`` under each of ``evaluate``)."""
    return Call("attack", label, split, int(seed), tuple(evaluate),
                tuple((float(w), d) for w, d in mixture), dict(power), dict(options or {}))


def clean_call(label: str, knobs: Any, split: str, seed: int) -> Call:
    """A :class:`Call` of ``target.clean(knobs)``."""
    return Call("clean", label, split, int(seed), (knobs,))


def _single_thread_env() -> None:
    for k, v in SINGLE_THREAD.items():
        os.environ.setdefault(k, v)
    flags = os.environ.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {XLA_SINGLE}".strip()


def _die_with_parent() -> None:
    """Linux: the kernel sends this process SIGTERM when its parent dies (a run killed
    mid-batch leaves no worker computing for nobody); elsewhere, nothing."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            pr_set_pdeathsig = 1
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGTERM))
        except OSError:
            pass


def _init_worker() -> None:
    _die_with_parent()
    _single_thread_env()
    import torch

    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set in this process
        pass


_TARGETS: dict[str, Any] = {}


def _worker_target(spec: tuple) -> Any:
    """The stored target of ``spec = (validate config, seed, store root, identity)``,
    built once per worker process."""
    key = repr(spec)
    if key not in _TARGETS:
        from omegaconf import OmegaConf

        from minimax.validate.run import make_target
        from minimax.validate.store import StoredTarget

        cfg, seed, root, identity = spec
        _TARGETS.clear()  # one seed at a time: free the previous seed's models
        _TARGETS[key] = StoredTarget(make_target(OmegaConf.create(cfg), seed), root, identity)
    return _TARGETS[key]


def run_calls(spec: tuple, calls: Sequence[Call]
              ) -> list[tuple[str, str | None, float, float]]:
    """Compute ``calls`` into the store of ``spec``; ``(label, error or None, wall seconds,
    CPU seconds)`` per call (a failed call does not stop the others)."""
    t = _worker_target(spec)
    out = []
    for c in calls:
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            if c.kind == "clean":
                for knobs in c.evaluate:
                    t.clean(knobs, split=c.split, seed=c.seed)
            else:
                att = t.attack(list(c.mixture), c.power, split=c.split, seed=c.seed,
                               options=c.options)
                for knobs in c.evaluate:
                    t.evaluate(att, knobs, split=c.split, seed=c.seed)
            out.append((c.label, None, time.perf_counter() - t0, time.process_time() - c0))
        except Exception as e:
            out.append((c.label, f"{e!r}\n{traceback.format_exc()}", time.perf_counter() - t0,
                        time.process_time() - c0))
    return out


def _groups(target: Any, calls: Sequence[Call]) -> list[list[Call]]:
    """Calls grouped by ``target.work_key`` (shared work in one task), heaviest first."""
    key_of = getattr(target, "work_key", None)
    keyed: dict[Any, list[Call]] = {}
    alone: list[list[Call]] = []
    for c in calls:
        k = None
        if key_of is not None and c.kind == "attack":
            try:
                k = key_of(list(c.mixture), c.power, c.options)
            except Exception:  # a bad call fails in the worker and again, recorded, serially
                k = None
        if k is None:
            alone.append([c])
        else:
            keyed.setdefault(k, []).append(c)
    # shared-work groups (the expensive text stages) first, larger first; then the rest
    return sorted(keyed.values(), key=len, reverse=True) + alone


class Prefetcher:
    """Computes batches of independent calls in ``workers`` processes (module docstring).

    ``stored``: the serial program's :class:`~minimax.validate.store.StoredTarget`, whose
    directory and identity the workers share; ``cfg``: the validation config (plain or
    OmegaConf) from which each worker builds its own target for ``seed``.
    """

    def __init__(self, cfg: Any, seed: int, stored: Any, workers: int) -> None:
        from omegaconf import OmegaConf

        if int(workers) < 2:
            raise ValueError(f"workers={workers}; a Prefetcher needs >= 2 (1 is the serial "
                             "path, which needs none)")
        plain = OmegaConf.to_container(cfg, resolve=True) if OmegaConf.is_config(cfg) else cfg
        self.spec = (plain, int(seed), str(stored.root), stored.identity)
        self.stored, self.workers = stored, int(workers)
        self._pool: ProcessPoolExecutor | None = None
        self.computed = 0
        self.cpu = 0.0  # CPU seconds the workers spent on calls
        self.failed: list[tuple[str, str]] = []

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing as mp

            _single_thread_env()  # inherited by the spawned workers before they import
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=_init_worker)
        return self._pool

    def __call__(self, calls: Sequence[Call], what: str = "cells") -> None:
        """Compute every call not yet stored; returns when all are done or failed."""
        todo = [c for c in _dedupe(self.stored, calls) if not self.stored.has(c)]
        if not todo:
            return
        groups = _groups(self.stored, todo)
        t0 = time.perf_counter()
        log.info("%s: %d calls in %d tasks on %d workers", what, len(todo), len(groups),
                 self.workers)
        try:
            pool = self._executor()
            futs = [pool.submit(run_calls, self.spec, g) for g in groups]
            done = 0
            for f in as_completed(futs):
                for label, err, secs, cpu in f.result():
                    done += 1
                    self.cpu += cpu
                    if err is None:
                        self.computed += 1
                        log.info("  [%d/%d] %s: %.1fs (%.0fs elapsed)", done, len(todo), label,
                                 secs, time.perf_counter() - t0)
                    else:
                        self.failed.append((label, err))
                        log.warning("  [%d/%d] %s failed in a worker (measured again serially): "
                                    "%s", done, len(todo), label, err.splitlines()[0])
        except Exception:  # a broken pool: the serial path measures whatever is missing
            log.exception("%s: the worker pool failed; continuing serially", what)
            self.close()
        log.info("%s done in %.1fs", what, time.perf_counter() - t0)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _dedupe(stored: Any, calls: Sequence[Call]) -> list[Call]:
    seen: dict[str, Call] = {}
    for c in calls:
        seen.setdefault(stored.call_id(c), c)
    return list(seen.values())


class Stopwatch:
    """Wall and CPU seconds per stage of a run: this process's CPU plus the workers'."""

    def __init__(self, pre: Prefetcher | None = None) -> None:
        self.pre = pre
        self.stages: dict[str, dict[str, float]] = {}
        self._t, self._c, self._w = time.perf_counter(), time.process_time(), self._workers()

    def _workers(self) -> float:
        return self.pre.cpu if self.pre is not None else 0.0

    def lap(self, stage: str) -> None:
        t, c, w = time.perf_counter(), time.process_time(), self._workers()
        self.stages[stage] = {"wall_s": t - self._t, "cpu_main_s": c - self._c,
                              "cpu_workers_s": w - self._w}
        log.info("stage %s: wall %.1fs, CPU %.1fs here + %.1fs in workers", stage, t - self._t,
                 c - self._c, w - self._w)
        self._t, self._c, self._w = t, c, w


def n_workers(cfg: Any) -> int:
    """``cfg.workers`` (default 1, the serial path) as an integer >= 1; bad values raise."""
    w = cfg.get("workers", 1) if hasattr(cfg, "get") else 1
    w = 1 if w is None else w
    if isinstance(w, bool) or not isinstance(w, int | float) or w != int(w) or w < 1:
        raise ValueError(f"validate.workers={w!r}; expected an integer >= 1 (1: serial)")
    return int(w)


def prefetcher(cfg: Any, seed: int, stored: Any) -> Prefetcher | None:
    """A :class:`Prefetcher` for ``cfg.workers`` >= 2, else ``None`` (the serial path)."""
    n = n_workers(cfg)
    return Prefetcher(cfg, seed, stored, n) if n >= 2 else None
