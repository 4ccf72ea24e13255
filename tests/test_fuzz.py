"""Fuzzing the front door and the certificate: mutated game specs through ``Game.from_dict``,
``Game.create`` and ``solve``.

Every spec must end in exactly one of two ways: a named error (:class:`minimax.MinimaxError`:
``GameSpecError`` at construction, ``SolverError``/``CertificateError`` from the solver), or a
solution whose invariants hold when re-checked here in numpy, independently of the engine's own
check: finite numbers, ``lower <= value``, ``gap = value - lower >= 0``, a feasible defense and
attack, ``value = L(defense, attack)`` recomputed from the formulas, and ``lower <= phi(x)`` at
random feasible defenses. Anything else is a *crash* (another exception) or a *silent failure*
(a returned answer that breaks an invariant); both fail the test.

Valid specs are drawn over the supported ranges (docs/supported-ranges.md), extremes included,
then 0-2 mutations from a list of bad values (NaN, inf, 5e-324, 1.7e308, 10**400, strings,
None, lists, wrong lever sets, missing and unknown keys).

Profiles (fixed seed, ``derandomize``):

* ``ci`` (default): 300 specs on two game shapes, about a minute with compilation;
* ``long``: ``MINIMAX_FUZZ=long`` (count: ``MINIMAX_FUZZ_EXAMPLES``, default 10,000), 8
  shapes (K = 2 x mode x effect with every lever; K = 1 and 3 with fewer levers). Mutations of
  mode, effect and levers are invalid values only, so no spec compiles a shape of its own.
  ``MINIMAX_FUZZ_REPORT=path.json`` writes the counts (specs tried, accepted, named errors,
  invariant checks, crashes, silent failures).
"""

from __future__ import annotations

import copy
import json
import math
import os
from collections import Counter
from pathlib import Path

import jax
import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import minimax  # noqa: E402
from minimax.game import (  # noqa: E402
    BUDGET_MAX,
    CAP_MAX,
    CHANNEL_ARRAYS,
    LEVERS,
    PARAM_RANGE,
    WEIGHT_MAX,
    Defense,
)
from minimax.response import phi  # noqa: E402

LONG = os.environ.get("MINIMAX_FUZZ", "ci") == "long"
EXAMPLES = int(os.environ.get("MINIMAX_FUZZ_EXAMPLES", "10000")) if LONG else 300
settings.register_profile(
    "minimax-fuzz", max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
    suppress_health_check=list(HealthCheck), print_blob=True)

if LONG:  # 8 shapes (each compiles once): K = 2 x both modes x both effects, and four more
    SHAPES = [(2, m, e, LEVERS) for m in ("injection", "jamming") for e in ("exp", "rational")]
    SHAPES += [(1, "injection", "exp", ("b",)), (3, "jamming", "rational", ("n", "s")),
               (1, "jamming", "exp", ("n",)), (3, "injection", "rational", ("n", "s"))]
else:  # compilation dominates the CI budget: two shapes, every mode/effect pair between them
    SHAPES = [(2, "injection", "rational", LEVERS), (2, "jamming", "exp", LEVERS)]

# light solver settings: the invariants must hold at any resolution
OPTIONS = dict(method="gradient", starts=2, steps=12, boxes=8, refine=2, rounds=2, nu_steps=10,
               bisect_s=9, search_grid=8)
COUNTS: Counter = Counter()
SOLVER_ERRORS: list[str] = []  # accepted games the solver refused (reported, should be rare)

BAD = [math.nan, math.inf, -math.inf, -1.0, 0.0, 5e-324, 1.7e308, 10**400, -(10**400), "abc",
       "", None, True, [], {}, [1.0], 1e-7, 2e6, 2e12, "1e3", "nan", ".inf"]
BAD_LEVERS = [None, 5, math.nan, "x", "nsbx", ["x"], [], ["n", "n"], [1], {"n": 1}, "n, s"]
BAD_MODES = ["steal", None, 5, "", ["injection"]]
BAD_EFFECTS = ["linear", None, 3.0]


def _log_uniform(lo: float, hi: float):
    edges = st.sampled_from([lo, hi, 1.0])
    inner = st.floats(math.log10(lo), math.log10(hi)).map(lambda e: min(max(10.0**e, lo), hi))
    return st.one_of(edges, inner)


def _maybe_zero(strategy):
    return st.one_of(st.just(0.0), strategy)


@st.composite
def valid_spec(draw):
    k, mode, effect, levers = draw(st.sampled_from(SHAPES))
    lo, hi = PARAM_RANGE
    pos = _log_uniform(lo, hi)
    channels = []
    for i in range(k):
        ch = {"name": f"c{i}", "flow": draw(st.sampled_from(minimax.FLOWS)), "modality": "text"}
        for f in ("B", "S", "N", "alpha", "beta", "gamma", "cost_n", "cost_s", "cost_b"):
            ch[f] = draw(pos)
        for f in ("w", "u"):
            ch[f] = draw(_maybe_zero(_log_uniform(lo, WEIGHT_MAX)))
        ch["rho"] = draw(st.one_of(st.sampled_from([0.0, 1.0]), st.floats(0.0, 1.0)))
        ch["cap"] = draw(st.one_of(st.just(math.inf), _maybe_zero(_log_uniform(lo, CAP_MAX))))
        channels.append(ch)
    return {
        "name": "fuzz", "mode": mode, "effect": effect, "levers": list(levers),
        "attacker_budget": draw(_maybe_zero(_log_uniform(lo, BUDGET_MAX["attacker_budget"]))),
        "defender_budget": draw(_maybe_zero(_log_uniform(lo, BUDGET_MAX["defender_budget"]))),
        "utility_price": draw(_maybe_zero(_log_uniform(lo, BUDGET_MAX["utility_price"]))),
        "channels": channels,
    }


@st.composite
def mutated_spec(draw):
    spec = draw(valid_spec())
    for _ in range(draw(st.integers(0, 2))):
        kind = draw(st.sampled_from(["channel", "channel", "top", "levers", "mode", "effect",
                                     "drop", "unknown", "channels"]))
        if not isinstance(spec.get("channels"), list) or not spec["channels"] or not all(
                isinstance(ch, dict) for ch in spec["channels"]):
            break
        k = len(spec["channels"])
        if kind == "channel":
            ch = spec["channels"][draw(st.integers(0, k - 1))]
            ch[draw(st.sampled_from(CHANNEL_ARRAYS))] = draw(st.sampled_from(BAD))
        elif kind == "top":
            spec[draw(st.sampled_from(list(BUDGET_MAX)))] = draw(st.sampled_from(BAD))
        elif kind == "levers":
            spec["levers"] = draw(st.sampled_from(BAD_LEVERS))
        elif kind == "mode":
            spec["mode"] = draw(st.sampled_from(BAD_MODES))
        elif kind == "effect":
            spec["effect"] = draw(st.sampled_from(BAD_EFFECTS))
        elif kind == "drop":
            key = draw(st.sampled_from(["mode", "channels", "attacker_budget", "B", "rho"]))
            target = spec if key in spec else spec["channels"][0]
            target.pop(key, None)
        elif kind == "unknown":
            spec[draw(st.sampled_from(["budget", "Levers", "extra"]))] = 1.0
        else:
            spec["channels"] = draw(st.sampled_from([[], None, "x", [5], [{}]]))
    return spec


def _create_kwargs(spec: dict) -> dict | None:
    """The same game as keyword arrays for ``Game.create`` (value mutations carried over;
    None when the mutation removed what a keyword call needs)."""
    channels = spec.get("channels")
    if not isinstance(channels, list) or not channels or not all(
            isinstance(ch, dict) for ch in channels):
        return None
    kwargs = {f: [ch.get(f, 1.0) for ch in channels] for f in CHANNEL_ARRAYS}
    for key in ("mode", "effect", "levers", "attacker_budget", "defender_budget",
                "utility_price"):
        kwargs[key] = spec.get(key, {"mode": "injection", "attacker_budget": 1.0,
                                     "defender_budget": 1.0}.get(key, 0.0 if key ==
                                                                  "utility_price" else None))
    for key in ("effect", "levers"):
        if key not in spec:
            kwargs.pop(key)
    return kwargs


_phis = jax.jit(jax.vmap(lambda g, x: phi(g, Defense(x[0], x[1], x[2])), in_axes=(None, 0)))


def _numpy_loss(g: dict, lam: float, mode: str, effect: str, x: np.ndarray, a: np.ndarray):
    """L(x, a) from the formulas in numpy, plus the sum of the magnitudes of its terms."""
    n, s, b = x
    if effect == "exp":
        log_eta, kappa = -g["alpha"] * n, np.exp(-g["gamma"] * b)
        kappa_leg = np.exp(-g["rho"] * g["gamma"] * b)
    else:
        log_eta, kappa = -np.log1p(g["alpha"] * n), 1 / (1 + g["gamma"] * b)
        kappa_leg = np.exp(-g["rho"] * np.log1p(g["gamma"] * b))
    sigma = 1 + g["beta"] * s
    ln2 = math.log(2.0)
    if mode == "injection":
        snr = a * np.exp(log_eta - np.log(g["N"] + sigma * g["S"]))
        harm = g["w"] * g["B"] * kappa * np.log1p(snr) / ln2
        util = lam * g["u"] * g["B"] * kappa_leg * np.log1p(sigma * g["S"] / g["N"]) / ln2
        return float(np.sum(harm) - np.sum(util)), float(np.sum(harm) + np.sum(util))
    base = g["w"] * g["B"] * np.log1p(g["S"] / g["N"]) / ln2
    left = g["w"] * g["B"] * kappa_leg * np.log1p(
        sigma * g["S"] / (g["N"] + np.exp(log_eta) * a)) / ln2
    return float(np.sum(base - left)), float(np.sum(base) + np.sum(left))


def _check_solution(game: minimax.Game, sol: minimax.Solution, rng) -> None:
    """The invariants of a returned answer, recomputed here (numpy, independent formulas)."""
    g = {f: np.asarray(getattr(game, f), dtype=float) for f in CHANNEL_ARRAYS}
    p_a, p_d = float(game.attacker_budget), float(game.defender_budget)
    lam = float(game.utility_price)
    checks = []
    checks.append(all(math.isfinite(v) for v in (sol.value, sol.upper, sol.lower, sol.gap)))
    checks.append(sol.lower <= sol.value == sol.upper and sol.gap >= 0)
    checks.append(abs(sol.gap - (sol.value - sol.lower)) <= 1e-12 * (1 + abs(sol.value)))
    checks.append(sol.status == "certified")
    x = np.stack([np.asarray(getattr(sol.defense, lv), dtype=float) for lv in LEVERS])
    cost = np.stack([g["cost_n"], g["cost_s"], g["cost_b"]])
    mask = np.array([[lv in game.levers] for lv in LEVERS])
    checks.append(bool(np.all(np.isfinite(x)) and np.all(x >= 0) and np.all(x[~mask[:, 0]] == 0)))
    checks.append(float(np.sum(cost * x)) <= p_d * (1 + 1e-9))
    a = np.asarray(sol.attack, dtype=float)
    checks.append(bool(np.all(np.isfinite(a)) and np.all(a >= 0)))
    checks.append(bool(np.all(a <= g["cap"] * (1 + 1e-9))) and float(np.sum(a)) <= p_a * (1 + 1e-9))
    with np.errstate(all="ignore"):
        loss, scale = _numpy_loss(g, lam, game.mode, game.effect, x, a)
    checks.append(abs(loss - sol.value) <= 1e-8 * (1.0 + scale))
    # lower <= V <= phi(x) at random feasible defenses (corners and interior points)
    k = game.num_channels
    weights = rng.dirichlet(np.ones(3 * k + 1), size=8)[:, : 3 * k].reshape(8, 3, k)
    weights[0] = 0.0
    weights[1] = mask * 1.0 / max(mask.sum() * k, 1)
    xs = weights * mask * p_d / cost
    values = np.asarray(_phis(game.view(), xs))  # unlabelled: one program per shape
    checks.append(bool(np.all(np.isfinite(values))))
    slack = 1e-9 * (1.0 + scale)
    checks.append(sol.lower <= float(np.min(values)) + slack)
    COUNTS["invariant checks"] += len(checks)
    failed = [i for i, ok in enumerate(checks) if not ok]
    if failed:
        COUNTS["silent failures"] += 1
        raise AssertionError(f"invariants {failed} broken by a returned solution: "
                             f"{sol.to_dict()} for {game.to_dict()} (phi at random: {values})")


def _run_spec(spec: dict, via_create: bool, seed: int) -> None:
    COUNTS["specs tried"] += 1
    try:
        kwargs = _create_kwargs(spec) if via_create else None
        if kwargs is not None:
            game = minimax.Game.create(**kwargs)
        else:
            game = minimax.Game.from_dict(spec)
    except minimax.GameSpecError:
        COUNTS["named errors (construction)"] += 1
        return
    except Exception:
        COUNTS["crashes"] += 1
        raise
    COUNTS["accepted"] += 1
    try:
        sol = minimax.solve(game, **OPTIONS)
    except minimax.MinimaxError as err:
        COUNTS["named errors (solver)"] += 1
        SOLVER_ERRORS.append(f"{type(err).__name__}: {err} | game {game.to_dict()}")
        return
    except Exception:
        COUNTS["crashes"] += 1
        raise
    COUNTS["solved"] += 1
    _check_solution(game, sol, np.random.default_rng(seed))


@settings(settings.get_profile("minimax-fuzz"))
@given(spec=mutated_spec(), via_create=st.booleans(), seed=st.integers(0, 2**31))
def test_fuzzed_specs_end_in_a_named_error_or_a_sound_certificate(spec, via_create, seed):
    _run_spec(copy.deepcopy(spec), via_create, seed)


def test_fuzz_report():
    """Runs after the fuzz test (file order): prints and optionally writes the counts."""
    counts = {key: COUNTS.get(key, 0) for key in (
        "specs tried", "accepted", "named errors (construction)", "named errors (solver)",
        "solved", "invariant checks", "crashes", "silent failures")}
    print("fuzz counts:", json.dumps(counts))
    path = os.environ.get("MINIMAX_FUZZ_REPORT")
    if path:
        Path(path).write_text(json.dumps({"profile": "long" if LONG else "ci", **counts,
                                          "solver errors": SOLVER_ERRORS}, indent=1))
    assert counts["crashes"] == 0 and counts["silent failures"] == 0
    if counts["specs tried"]:
        assert counts["solved"] > 0 and counts["named errors (construction)"] > 0
