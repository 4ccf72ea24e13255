"""The registry of solution methods: one entry per method, read by every caller.

A :class:`Method` is a name, an options record (a ``NamedTuple`` whose defaults are the
method's defaults), whether :func:`minimax.solve_batch` can run it, what it returns and the
runner that produces it. :func:`minimax.solve`, :func:`minimax.solve_batch`, the Hydra
configuration's schema (:mod:`minimax.config`), the sweep and the app all read :data:`METHODS`;
``conf/solver/NAME.yaml`` lists exactly the options of method ``NAME`` with these defaults
(``tests/test_registry.py`` checks it). See ``docs/solution-concepts.md §2.9``.

Every method also reads the lower-bound resolution (the fields of
:class:`~minimax.certificate.BoundConfig`), since every answer is certified. An option the
method does not read is a :class:`~minimax.errors.SolverError` naming it and the methods
that do read it; nothing is dropped silently.

>>> from minimax.methods import METHODS
>>> METHODS["gda"].options()
SaddleOptions(steps=3000, learning_rate=0.5, final_learning_rate=0.05)
>>> METHODS["convex"].batched, METHODS["double_oracle"].result
(False, 'mixed')
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, NamedTuple

import jax
import numpy as np

from minimax.certificate import BoundConfig, certify, check_bound_config
from minimax.convex import convexity, solve_convex
from minimax.errors import SolverError
from minimax.game import Defense, Game
from minimax.gradient import (
    GradientOptions,
    check_gradient_options,
    descent_run,
    gradient_termination,
    saddle_run,
)
from minimax.solution import Solution, check_certificate


class SaddleOptions(NamedTuple):
    """Options of the simultaneous-play methods ``gda``, ``extragradient``, ``optimistic``."""

    steps: int = 3000  # iterations of the (x, a) updates
    learning_rate: float = 0.5  # initial step, in units of defender_budget / mean cost
    final_learning_rate: float = 0.05  # final step of the schedule


class ConvexOptions(NamedTuple):
    """Options of the cutting-plane method ``convex`` (:func:`minimax.convex.solve_convex`)."""

    tol: float = 1e-8  # stop when upper - master lower bound <= tol (weighted bits per query)
    max_iter: int = 200  # master problems solved at most
    max_cuts: int = 40  # attacks kept in the master problem
    solver: str = "CLARABEL"  # the cvxpy back end of the master problem


class MixedOptions(NamedTuple):
    """Options of ``double_oracle`` (:func:`minimax.double_oracle.solve_mixed`).

    Its stopping tolerance is ``gap_tol`` (the loop stops once the certified gap is at most
    ``gap_tol``; None = 1e-6, the default of ``solve_mixed``)."""

    max_iter: int = 30  # oracle rounds at most
    starts: int = 16  # starts of the pure solve and of the defender oracle
    steps: int = 200  # descent steps of the pure solve and of the defender oracle
    seed: int = 0  # seed of the random starts


class Method(NamedTuple):
    """One entry of the registry."""

    name: str
    options: type  # NamedTuple record of the method's own options, defaults = the defaults
    run: Callable[..., Any]  # (game, opts, cfg: BoundConfig, gap_tol) -> result
    batched: bool  # solve_batch runs it as one compiled, vmapped call
    result: str  # "pure" (a Solution, minimax.solve) or "mixed" (a MixedSolution)
    summary: str  # one line for tables and error messages


BOUND_OPTIONS = BoundConfig._fields


def check_gap_tol(gap_tol: Any) -> float | None:
    """``gap_tol`` as a float (or None), or a :class:`SolverError` naming the value."""
    if gap_tol is None:
        return None
    try:
        value = float(gap_tol)
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    if isinstance(gap_tol, bool) or not (math.isfinite(value) and value >= 0):
        raise SolverError(f"solve: gap_tol={gap_tol!r}; expected None or a finite number >= 0 "
                          f"(the largest certified gap reported as 'certified')")
    return value


def _check_convex(opts: ConvexOptions) -> ConvexOptions:
    tol, max_iter, max_cuts = opts.tol, opts.max_iter, opts.max_cuts
    if isinstance(tol, bool) or not isinstance(tol, int | float) or not (
            math.isfinite(tol) and tol > 0):
        raise SolverError(f"solver option tol: got {tol!r}; expected a finite number > 0")
    for name, value in (("max_iter", max_iter), ("max_cuts", max_cuts)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise SolverError(f"solver option {name}: got {value!r}; expected an integer >= 1")
    if not isinstance(opts.solver, str) or not opts.solver:
        raise SolverError(f"solver option solver: got {opts.solver!r}; expected the name of a "
                          f"cvxpy solver, e.g. 'CLARABEL', 'SCS' or 'ECOS'")
    return opts


def saddle_gradient_options(opts: SaddleOptions) -> GradientOptions:
    """The :class:`GradientOptions` the saddle kernels run with (they read no starts or seed)."""
    return check_gradient_options(GradientOptions(steps=opts.steps,
                                                  learning_rate=opts.learning_rate,
                                                  final_learning_rate=opts.final_learning_rate))


def _kernel_run(game: Game, kernel: str, opts: GradientOptions):
    """The descent (``kernel="gradient"``) or a saddle kernel (``"gda"``, ``"extragradient"``,
    ``"optimistic"``) on an unlabelled game: (defense, iterations)."""
    if kernel == "gradient":
        x, _, iterations = descent_run(game, opts)
    else:
        x, _, iterations = saddle_run(game, kernel, opts)
    return Defense(n=x[0], s=x[1], b=x[2]), iterations


@partial(jax.jit, static_argnames=("kernel", "opts", "cfg"))
def gradient_pipeline(game: Game, kernel: str, opts: GradientOptions, cfg: BoundConfig):
    """One compiled call: :func:`_kernel_run`, then :func:`~minimax.certificate.certify` of
    its defense. Returns (defense, certificate, iterations). (The vmapped batch runs this;
    one game runs the two halves as two compiled calls, :func:`_gradient_family`.)"""
    defense, iterations = _kernel_run(game, kernel, opts)
    return defense, certify(game, defense, cfg=cfg), iterations


_kernel_jit = jax.jit(_kernel_run, static_argnames=("kernel", "opts"))
_certify_jit = jax.jit(certify, static_argnames=("cfg",))


def solution_from(defense, cert, method: str, iterations, seconds: float, reason: str,
                  index: int | None = None) -> Solution:
    """The :class:`Solution` of a defense and its certificate (row ``index`` of a batch)."""
    take = (lambda v: np.asarray(v)) if index is None else (lambda v: np.asarray(v)[index])
    return Solution(
        value=float(take(cert.upper)), upper=float(take(cert.upper)),
        lower=float(take(cert.lower)), gap=float(take(cert.gap)),
        defense=Defense(*(take(v) for v in defense)), attack=take(cert.attack),
        method=method, iterations=int(take(iterations)), seconds=seconds, reason=reason,
    )


def _gradient_family(kernel: str, reason: Callable[[Game], str] | None = None):
    """The runner of one game by a gradient kernel. The kernel and the certificate are two
    compiled calls (solver options and bound options are static arguments of one each), so a
    change of the solver options recompiles only the kernel and a change of the bound options
    only the certificate: compiling the certificate took 1.5 times as long as the descent (one
    channel, default options), and the two in one program as long as both apart
    (docs/solution-concepts.md §2.10)."""
    def run(game: Game, opts: GradientOptions, cfg: BoundConfig,
            gap_tol: float | None) -> Solution:
        start = time.perf_counter()
        view = game.view()
        defense, iterations = _kernel_jit(view, kernel, opts)
        cert = jax.block_until_ready(_certify_jit(view, defense, cfg=cfg))
        why = reason(game) if reason is not None else ""
        sol = solution_from(defense, cert, kernel, iterations, time.perf_counter() - start, why)
        sol = sol._replace(termination=gradient_termination(kernel, sol.iterations, opts))
        return check_certificate(game, sol, gap_tol)

    return run


def _auto_reason(game: Game) -> str:
    convex, why = convexity(game)
    kind = "convex-concave" if convex else "non-convex"
    return f"auto chose gradient (multi-start descent); game is {kind}: {why}"


def _run_convex(game: Game, opts: ConvexOptions, cfg: BoundConfig,
                gap_tol: float | None) -> Solution:
    start = time.perf_counter()
    view = game.view()
    result = solve_convex(view, **opts._asdict())
    cert = _certify_jit(view, result.defense, cfg=cfg)
    sol = solution_from(result.defense, cert, "convex", result.iterations,
                        time.perf_counter() - start,
                        f"cutting planes; master lower bound {result.master_lower:.12g}")
    sol = sol._replace(termination=result.termination)
    return check_certificate(game, sol, gap_tol)


def _run_mixed(game: Game, opts: MixedOptions, cfg: BoundConfig, gap_tol: float | None):
    from minimax.double_oracle import solve_mixed

    tol = {} if gap_tol is None else {"tol": gap_tol}
    return solve_mixed(game, **opts._asdict(), **tol, cfg=cfg)


_SADDLE = "simultaneous gradient play on (x, a)"
METHODS: Mapping[str, Method] = {m.name: m for m in (
    Method("auto", GradientOptions, _gradient_family("gradient", _auto_reason), True, "pure",
           "runs gradient; records whether the game is convex-concave"),
    Method("gradient", GradientOptions, _gradient_family("gradient"), True, "pure",
           "multi-start projected descent on phi with exact inner best responses"),
    Method("gda", SaddleOptions, _gradient_family("gda"), True, "pure", _SADDLE),
    Method("extragradient", SaddleOptions, _gradient_family("extragradient"), True, "pure",
           _SADDLE),
    Method("optimistic", SaddleOptions, _gradient_family("optimistic"), True, "pure", _SADDLE),
    Method("convex", ConvexOptions, _run_convex, False, "pure",
           "cutting planes over cvxpy; convex-concave games only"),
    Method("double_oracle", MixedOptions, _run_mixed, False, "mixed",
           "double oracle over mixed defenses"),
)}
"""The registry: method name -> :class:`Method` (docs/solution-concepts.md §2.9)."""

_CHECKS: Mapping[type, Callable[[Any], Any]] = {
    GradientOptions: check_gradient_options,
    SaddleOptions: saddle_gradient_options,
    ConvexOptions: _check_convex,
    MixedOptions: lambda opts: opts,  # checked by solve_mixed on entry
}


def get_method(method: Any) -> Method:
    """The registry entry of ``method``, or a :class:`SolverError` listing the methods."""
    if not isinstance(method, str) or method not in METHODS:
        raise SolverError(f"unknown method {method!r}; expected one of {list(METHODS)}")
    return METHODS[method]


def readers(option: str) -> list[str]:
    """The methods that read ``option`` (every method reads the bound options)."""
    return [m.name for m in METHODS.values()
            if option in m.options._fields or option in BOUND_OPTIONS]


def parse_options(method: str, options: Mapping[str, Any]) -> tuple[Method, Any, BoundConfig]:
    """Split ``options`` into the method's own record and the lower-bound resolution.

    Each record is validated, a :class:`SolverError` naming the field, the value and the range
    (the saddle methods' record becomes the :class:`GradientOptions` their kernels run with);
    an option the method does not read raises, naming the methods that read it.
    """
    spec = get_method(method)
    unread = sorted(k for k in options if k not in spec.options._fields
                    and k not in BOUND_OPTIONS)
    if unread:
        where = "; ".join(f"{k!r} is read by {readers(k) or 'no method'}" for k in unread)
        raise SolverError(
            f"method={method!r}: unknown option(s) {unread} for this method, which would "
            f"ignore them ({where}); {method} reads "
            f"{list(spec.options._fields)} and the lower-bound options {list(BOUND_OPTIONS)}"
        )
    own = spec.options(**{k: v for k, v in options.items() if k in spec.options._fields})
    bound = BoundConfig(**{k: v for k, v in options.items() if k in BOUND_OPTIONS})
    return spec, _CHECKS[spec.options](own), check_bound_config(bound)


def run_method(game: Game, method: str = "auto", *, gap_tol: float | None = None,
               **options: Any) -> Any:
    """Run any registered method on one game: a :class:`Solution` for the pure methods, a
    :class:`~minimax.double_oracle.MixedSolution` for ``double_oracle`` (``result`` of its
    entry). ``gap_tol``: the largest gap reported as ``"certified"`` (for ``double_oracle``
    also the loop's stopping tolerance)."""
    spec, opts, cfg = parse_options(method, options)
    gap_tol = check_gap_tol(gap_tol)
    if not isinstance(game, Game) or game.batch_shape:
        raise SolverError(f"method {method!r}: expected one minimax.Game (use solve_batch for "
                          f"many games)")
    return spec.run(game, opts, cfg, gap_tol)
