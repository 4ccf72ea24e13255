"""Self-destruction threshold P*(h) (docs/analyses.md §4.3) against closed forms and brute force."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.optimize import brentq, minimize

import minimax
from minimax.analysis import self_destruction_threshold, threshold_sweep


def _one_channel(levers, rho=0.0, **kw):
    p = dict(
        B=[1.0], S=[1.0], N=[1.0], w=[1.0], u=[1.0], rho=[rho], alpha=[1.0], beta=[1.0], gamma=[1.0]
    )
    p.update(kw)
    return minimax.Game.create(
        mode="injection", attacker_budget=1.0, defender_budget=1.0, levers=levers, **p
    )


@pytest.mark.slow
def test_bandwidth_only_threshold_matches_closed_form():
    """b only, rho = 0: net(P) <= 0 iff h w log2(1 + P/m0) e^{-gamma D} <= u C0, so
    P* = m0 (2^{u C0 e^{gamma D} / (h w)} - 1), m0 = N + S, C0 = log2(1 + S/N)."""
    game = _one_channel(["b"], w=[1.3], S=[2.0], N=[0.5], gamma=[0.7])
    prices = [0.5, 2.0]
    res = threshold_sweep(game, prices, [0.5, 1.5], rtol=1e-8, starts=4, steps=100)
    for r in res:
        m0, c0 = 2.5, math.log2(1 + 2.0 / 0.5)
        exact = m0 * (2 ** (c0 * math.exp(0.7 * r.defender_budget) / (r.harm_price * 1.3)) - 1)
        assert r.converged and r.undecided is None
        assert r.lower <= exact <= r.upper  # the certified bracket holds the closed form
        assert r.power == pytest.approx(exact, rel=1e-6)
        print(f"h={r.harm_price} D={r.defender_budget}: P*={r.power:.10g} exact={exact:.10g}")
    # sensitivity: P* rises with the defender budget and falls with the harm price
    p = {(r.defender_budget, r.harm_price): r.power for r in res}
    assert p[(1.5, 0.5)] > p[(0.5, 0.5)] and p[(0.5, 0.5)] > p[(0.5, 2.0)]


def _brute_force_net(p, h=1.0, d=1.0, rho=0.3):
    """min over the budget triangle (n = d - s - b binds: n only lowers harm) of h H - U."""

    def f(z):
        s, b = z
        n = d - s - b
        sigma = 1 + s
        harm = math.exp(-b) * math.log2(1 + p * math.exp(-n) / (1 + sigma))
        return h * harm - math.exp(-rho * b) * math.log2(1 + sigma)

    grid = [(s, b) for s in np.linspace(0, d, 41) for b in np.linspace(0, d, 41) if s + b <= d]
    starts = sorted(grid, key=f)[:4]
    cons = [{"type": "ineq", "fun": lambda z: d - z[0] - z[1]}]
    best = min(
        minimize(
            f,
            x0,
            method="SLSQP",
            bounds=[(0, d), (0, d)],
            constraints=cons,
            options={"ftol": 1e-15, "maxiter": 500},
        ).fun
        for x0 in starts
    )
    return min(best, min(f(z) for z in grid))


@pytest.mark.slow
def test_three_lever_threshold_matches_brute_force():
    """All three levers on one channel: an independent scipy minimisation over the budget
    triangle + Brent's root finder gives P*; the certified lower end must match it to 1e-6."""
    exact = brentq(_brute_force_net, 1.0, 100.0, xtol=1e-12, rtol=1e-13)
    r = self_destruction_threshold(_one_channel(["n", "s", "b"], rho=0.3), 1.0, rtol=1e-7)
    print(
        f"P* brute force {exact:.10g}; certified bracket [{r.lower:.10g}, {r.upper:.10g}], "
        f"undecided {r.undecided}"
    )
    assert r.lower <= exact * (1 + 1e-9) and exact <= r.upper * (1 + 1e-9)
    assert r.lower == pytest.approx(exact, rel=1e-6)
    assert r.power == pytest.approx(exact, rel=1e-6)


def test_invalid_harm_price():
    with pytest.raises(minimax.GameSpecError):
        self_destruction_threshold(_one_channel(["b"]), 0.0)
