"""Every public result type has a ``to_dict`` of plain Python that survives JSON, and the
types with a ``from_dict`` come back equal."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml

import minimax
from minimax.analysis import (
    CircuitBreaker,
    asymmetry,
    dci,
    load_catalogue,
    load_taxonomy,
    self_destruction_threshold,
)
from minimax.certificate import lagrangian_lower_bound
from minimax.convex import solve_convex
from minimax.double_oracle import solve_mixed
from minimax.finite import stackelberg, zero_sum, zero_sum_batch
from minimax.solution import Solution

ROOT = Path(__file__).resolve().parents[1]
PLAIN = (dict, list, str, int, float, bool, type(None))


def _plain(value, where="") -> None:
    """Fails unless ``value`` is made only of JSON's Python types."""
    assert isinstance(value, PLAIN), f"{where}: {type(value).__name__}"
    if isinstance(value, dict):
        for k, v in value.items():
            assert isinstance(k, str), f"{where}: key {k!r}"
            _plain(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _plain(v, f"{where}[{i}]")


def _same(a, b) -> bool:
    """Equality that counts NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _round_trip(result) -> dict:
    d = result.to_dict()
    _plain(d, type(result).__name__)
    back = json.loads(json.dumps(d))
    assert _same(back, d)
    return back


@pytest.fixture(scope="module")
def game():
    return minimax.Game.create(mode="injection", attacker_budget=4.0, defender_budget=1.0,
                               B=[1.0, 2.0], S=[1.0, 1.0], N=[1.0, 0.5], w=[1.0, 1.0],
                               u=[0.5, 0.5], rho=[0.0, 0.0], alpha=[1.0, 0.5],
                               beta=[1.0, 1.0], gamma=[1.0, 1.0], utility_price=0.1)


@pytest.mark.slow
def test_solution_round_trips(game):
    sol = minimax.solve(game, starts=2, steps=20)
    d = _round_trip(sol)
    assert d["value"] == sol.value and d["termination"] == sol.termination != ""
    back = Solution.from_dict(d)
    for field in ("value", "upper", "lower", "gap", "method", "iterations", "status",
                  "termination", "reason", "seconds"):
        assert getattr(back, field) == getattr(sol, field), field
    np.testing.assert_array_equal(back.attack, np.asarray(sol.attack))
    for a, b in zip(back.defense, sol.defense, strict=True):
        np.testing.assert_array_equal(a, np.asarray(b))
    rows = minimax.solve_batch([game, game], starts=2, steps=20)
    assert [Solution.from_dict(_round_trip(r)).value for r in rows] == [r.value for r in rows]


@pytest.mark.slow
def test_certificates_round_trip(game):
    sol = minimax.solve(game, starts=2, steps=20)
    cert = minimax.certify(game, sol.defense)
    assert _round_trip(cert)["lower"] == float(cert.lower)
    bound = jax.jit(lagrangian_lower_bound)(game, sol.attack)
    assert _round_trip(bound)["value"] == float(bound.value)
    convex_game = game.replace(levers=("n", "s"))
    result = solve_convex(convex_game)
    d = _round_trip(result)
    assert d["termination"] == result.termination == "converged"
    assert d["upper"] == result.upper and len(d["history"]) == result.iterations


@pytest.mark.slow
def test_mixed_solution_round_trips():
    g = minimax.Game.create(mode="injection", attacker_budget=4.0, defender_budget=1.0,
                            B=[1.0], S=[1.0], N=[1.0], w=[1.0], u=[0.0], rho=[0.0],
                            alpha=[1.0], beta=[1.0], gamma=[1.0], levers=["b"])
    mixed = solve_mixed(g, max_iter=5, starts=4, steps=50)
    d = _round_trip(mixed)
    assert d["upper"] == mixed.upper and d["termination"] == mixed.termination == "converged"
    assert Solution.from_dict(d["pure"]).upper == mixed.pure.upper


def test_finite_results_round_trip():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 3))
    sol = zero_sum(A)
    assert _round_trip(sol)["x"] == sol.x.tolist()
    batch = zero_sum_batch(rng.standard_normal((3, 4, 3)))
    d = _round_trip(batch)
    assert d["termination"] == batch.termination.tolist() and len(d["value"]) == 3
    row = batch.row(1)
    _plain(row, "row")
    assert row["value"] == float(batch.value[1]) and row["x"] == batch.x[1].tolist()
    assert json.loads(json.dumps(row)) == row
    se = stackelberg(A, -A)
    assert _round_trip(se)["response"] == se.response


@pytest.mark.slow
def test_analysis_results_round_trip():
    game = minimax.Game.from_dict(yaml.safe_load((ROOT / "conf/game/mfm_default.yaml")
                                                 .read_text()))
    result = dci(game, load_catalogue(ROOT / "conf/defense"),
                 load_taxonomy(ROOT / "conf/taxonomy/mfm.yaml"), [1.0, 100.0])
    d = _round_trip(result)
    assert d["dci"] == result.dci.tolist() and d["defenses"] == list(result.defenses)
    one = minimax.Game.create(mode="injection", attacker_budget=1.0, defender_budget=1.0,
                              B=[1.0], S=[1.0], N=[1.0], w=[1.0], u=[1.0], rho=[0.3],
                              alpha=[1.0], beta=[1.0], gamma=[1.0])
    asym = asymmetry(one, [1.0, 10.0])
    assert _round_trip(asym)["r_model"] == asym.r_model.tolist()
    thr = self_destruction_threshold(one, 1.0, rtol=1e-3, max_rounds=5)
    d = _round_trip(thr)
    assert d["lower"] == thr.lower and len(d["history"]) == len(thr.history)


def test_circuit_breaker_round_trips():
    cb = CircuitBreaker(threshold_rate=0.2, benign_rate=0.01, false_trip_bound=0.01,
                        horizon=1000)
    for x in (1.0, 0.0, 1.0):
        cb.update(x)
    back = CircuitBreaker.from_dict(_round_trip(cb))
    assert back.to_dict() == cb.to_dict()
    assert [back.update(1.0) for _ in range(4)] == [cb.update(1.0) for _ in range(4)]
