"""Certificate soundness where it used to break: saturated channels, rational effects at large
attacker power, costs other than 1, the extremes of the supported ranges; projections against
an independent QP; the status of every result.

Every ``lower`` is checked against an independent upper estimate of V: ``min phi(x)`` over a
dense simplex grid of feasible defenses (plus random ones), where ``phi(x)`` is the engine's
exact best-response value *and* is checked against a brute-force maximisation over a grid of
attacks written here in numpy (``L`` is non-decreasing in every ``a_i``, so with K = 2 the
attacker's choice is one number).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml

import minimax
from minimax import CertificateError, GameSpecError, SolverError
from minimax.game import Defense
from minimax.projection import project_attack, project_budget
from minimax.response import phi
from minimax.runtime import conf_dir

# the options (and K = 2 shapes) of the fuzz suite's CI profile: compiled once per session
OPTIONS = dict(method="gradient", starts=2, steps=12, boxes=8, refine=2, rounds=2, nu_steps=10,
               bisect_s=9, search_grid=8)


def _game(mode, effect, **over):
    base = dict(mode=mode, effect=effect, levers=("n", "s", "b"), attacker_budget=6.0,
                defender_budget=2.5, utility_price=0.4, B=[1.0, 2.0], S=[2.0, 1.0],
                N=[0.5, 1.0], w=[1.0, 1.6], u=[1.0, 0.5], rho=[0.6, 0.2], alpha=[1.0, 0.6],
                beta=[0.5, 0.8], gamma=[0.7, 1.5], cost_n=[0.5, 2.0], cost_s=[3.0, 0.7],
                cost_b=[1.5, 0.25])
    return minimax.Game.create(**{**base, **over})


def _np_loss(game, x, a):
    """L(x, a) in numpy from the formulas; x (..., 3, K), a (..., K)."""
    g = {f: np.asarray(getattr(game, f), dtype=float) for f in
         ("B", "S", "N", "w", "u", "rho", "alpha", "beta", "gamma")}
    n, s, b = x[..., 0, :], x[..., 1, :], x[..., 2, :]
    if game.effect == "exp":
        log_eta, kappa = -g["alpha"] * n, np.exp(-g["gamma"] * b)
        kappa_leg = np.exp(-g["rho"] * g["gamma"] * b)
    else:
        log_eta, kappa = -np.log1p(g["alpha"] * n), 1 / (1 + g["gamma"] * b)
        kappa_leg = (1 + g["gamma"] * b) ** -g["rho"]
    sigma = 1 + g["beta"] * s
    ln2 = math.log(2.0)
    if game.mode == "injection":
        snr = a * np.exp(log_eta - np.log(g["N"] + sigma * g["S"]))
        harm = np.sum(g["w"] * g["B"] * kappa * np.log1p(snr), axis=-1) / ln2
        util = np.sum(g["u"] * g["B"] * kappa_leg * np.log1p(sigma * g["S"] / g["N"]), axis=-1)
        return harm - float(game.utility_price) * util / ln2
    removed = g["B"] * np.log1p(g["S"] / g["N"]) - g["B"] * kappa_leg * np.log1p(
        sigma * g["S"] / (g["N"] + np.exp(log_eta) * a))
    return np.sum(g["w"] * removed, axis=-1) / ln2


def _brute_phi(game, xs, points=2001):
    """max_a L(x, a) for K = 2 over a grid of a_1 (a_2 takes what budget and cap allow)."""
    p_a = float(game.attacker_budget)
    cap = np.asarray(game.cap, dtype=float)
    a1 = np.linspace(0.0, min(cap[0], p_a), points)
    a = np.stack([a1, np.minimum(cap[1], p_a - a1)], axis=-1)  # (P, 2)
    with np.errstate(all="ignore"):
        values = _np_loss(game, xs[:, None, :, :], a[None, :, :])
    return np.max(values, axis=1)


def _compositions(n, m):
    """Every tuple of ``n`` non-negative integers with sum <= ``m`` (no filtering of a product:
    at K = 12 the product has 2^36 points for ``m = 1``)."""
    if n == 0:
        yield ()
        return
    for first in range(m + 1):
        for rest in _compositions(n - 1, m - first):
            yield (first, *rest)


def _simplex_grid(game, m=8, extra=2000, seed=0):
    """Feasible defenses: every point of the simplex grid with step 1/m over the 3K levers and
    a slack coordinate, plus random points (Dirichlet), in budget units."""
    k = game.num_channels
    dims = 3 * k + 1
    w = np.asarray(list(_compositions(dims - 1, m)), dtype=float) / m
    rng = np.random.default_rng(seed)
    w = np.concatenate([w, rng.dirichlet(np.ones(dims), extra)[:, : dims - 1]])
    cost = np.asarray(game.cost_matrix())
    mask = np.array([[lv in game.levers] for lv in "nsb"], dtype=float)
    return w.reshape(-1, 3, k) * mask * float(game.defender_budget) / cost


_phis = jax.jit(jax.vmap(lambda g, x: phi(g, Defense(x[0], x[1], x[2])), in_axes=(None, 0)))


def _check_lower(game, sol, m=8, quality=True):
    xs = _simplex_grid(game, m)
    xs = np.concatenate([xs, np.stack([np.asarray(v) for v in sol.defense])[None]])
    engine = np.asarray(_phis(game, jnp.asarray(xs)))
    brute = _brute_phi(game, xs)
    scale = 1.0 + float(np.max(np.abs(engine)))
    # the engine's best response is at least as good as the grid's, and not far above it
    assert np.all(engine >= brute - 1e-9 * scale)
    assert np.all(engine <= brute + 1e-3 * scale)
    best = float(np.min(engine))
    assert sol.lower <= best + 1e-12 * scale, (sol.lower, best)
    assert sol.lower <= sol.value == sol.upper and sol.gap >= 0 and sol.status == "certified"
    if quality:  # the solver finds a defense about as good as the grid's
        assert sol.value <= best + 0.05 * scale
    return best


@pytest.mark.parametrize("mode,effect", [("injection", "rational"), ("jamming", "exp")])
def test_lower_bound_below_a_dense_grid_on_non_convex_games_with_costs(mode, effect):
    game = _game(mode, effect)
    _check_lower(game, minimax.solve(game, **OPTIONS))


@pytest.mark.parametrize("mode,effect", [("injection", "rational"), ("jamming", "exp")])
@pytest.mark.parametrize("corner", ["budgets", "weights", "params"])
def test_lower_bound_at_the_extremes_of_the_supported_ranges(mode, effect, corner):
    hi = minimax.game.BUDGET_MAX
    over = {
        "budgets": dict(attacker_budget=hi["attacker_budget"],
                        defender_budget=hi["defender_budget"], utility_price=1e-6),
        "weights": dict(w=[1e6, 1e6], u=[1e6, 0.0], utility_price=hi["utility_price"]),
        "params": dict(B=[1e-6, 1e6], S=[1e6, 1e-6], N=[1e-6, 1e6], alpha=[1e6, 1e-6],
                       beta=[1e-6, 1e6], gamma=[1e6, 1e-6], cost_n=[1e-6, 1e6],
                       cost_s=[1e6, 1e-6], cost_b=[1e-6, 1e6]),
    }[corner]
    game = _game(mode, effect, **over)
    sol = minimax.solve(game, **OPTIONS)
    assert all(math.isfinite(v) for v in (sol.value, sol.lower, sol.gap))
    assert float(np.sum(sol.attack)) <= float(game.attacker_budget) * (1 + 1e-9)
    _check_lower(game, sol, m=6, quality=False)  # 12 descent steps: sound, not tight


def test_rational_effects_at_large_attacker_power_keep_lower_below_upper():
    """Issue reproducer 2 inside the supported range: rational effects, P_A at its maximum."""
    game = _game("injection", "rational", attacker_budget=minimax.game.BUDGET_MAX[
        "attacker_budget"], utility_price=0.0)
    _check_lower(game, minimax.solve(game, **OPTIONS))


def test_tangent_crossing_with_a_steep_slope_keeps_the_bound_valid():
    """Found by the long fuzz run: slopes of 1e14 at s ~ 6e6 made the crossing of the two
    tangents cancel catastrophically, and lower exceeded upper by 2.5e-4."""
    spec = {"mode": "injection", "effect": "rational", "attacker_budget": 0.02191772292102243,
            "defender_budget": 5688322.840134582, "utility_price": 1e6, "channels": [
                {"name": "c0", "flow": "memory", "modality": "text", "B": 98943.73553276107,
                 "S": 1e-6, "N": 300484.934697673, "w": 1e6, "u": 1e-6, "rho": 1e-15,
                 "alpha": 1e6, "beta": 0.10772982785116787, "gamma": 173.6637018353015,
                 "cost_n": 1e-6, "cost_s": 1e6, "cost_b": 259205.8858819373},
                {"name": "c1", "flow": "prediction", "modality": "text", "B": 1.0, "S": 1.0,
                 "N": 1.0, "w": 1e6, "u": 1e-6, "rho": 0.0, "alpha": 1e5, "beta": 1e-6,
                 "gamma": 1.0, "cap": 1.0, "cost_n": 1e-6, "cost_s": 1.0, "cost_b": 1.0}]}
    game = minimax.Game.from_dict(spec)
    sol = minimax.solve(game, **OPTIONS)
    assert sol.lower <= sol.value and sol.status == "certified"
    _check_lower(game, sol, m=6, quality=False)


def test_saturated_channels_keep_the_attack_feasible():
    """Issue reproducer 3: huge noise suppression (eta below 1e-190) and a budget of 5."""
    game = minimax.Game.create(
        mode="injection", attacker_budget=5, defender_budget=2890, B=[1, 2, 1], S=[2, 1, 3],
        N=[1, 1, 1], w=[1, 1.5, 2], u=[1, .5, .3], rho=[.3, .2, .6], alpha=[1, .5, .8],
        beta=[.5, .4, .3], gamma=[1, 1.5, .5])
    for n1, expect in ((100.0, 5.0), (890.0, 5.0), (1500.0, 0.0)):
        attack, value = minimax.best_response(game, {"n": [1000.0, n1, 1000.0]})
        assert attack.tolist() == [0.0, expect, 0.0]
        # w B log2(1 + a eta / (N + S)) = 3 log2(1 + 5 e^{-n/2} / 2) on the one open channel
        exact = 3.0 * math.log1p(5 * math.exp(-0.5 * n1) / 2) / math.log(2)
        assert value == pytest.approx(exact, rel=1e-12, abs=1e-300)


@pytest.mark.slow
@pytest.mark.parametrize("mode,budget", [("injection", 1e4), ("jamming", 1e5)])
def test_large_defender_budget_on_the_default_game_is_certified(mode, budget):
    """Issue reproducer 1: P_D = 1e4 gave NaN value, lower and gap ("certified")."""
    d = yaml.safe_load((conf_dir() / "game" / "mfm_default.yaml").read_text())
    game = minimax.Game.from_dict({**d, "mode": mode, "defender_budget": budget})
    sol = minimax.solve(game)
    assert all(math.isfinite(v) for v in (sol.value, sol.lower, sol.gap))
    assert sol.lower <= sol.value and sol.status == "certified"
    xs = _simplex_grid(game, m=1, extra=3000)  # corners and random defenses
    assert sol.lower <= float(np.min(np.asarray(_phis(game, jnp.asarray(xs)))))


@pytest.mark.parametrize("spec,message", [
    (dict(defender_budget=1e10), r"game\.defender_budget: got 10000000000\.0; expected a finite "
                                 r"number in \[0, 1e\+09\] \(the supported range"),
    (dict(utility_price=1.7e308), r"game\.utility_price: got 1\.7e\+308"),
    (dict(N=[5e-324, 1.0]), r"\.N: got 5e-324; expected in \[1e-06, 1e\+06\]"),
    (dict(cost_n=[5e-324, 1.0]), r"\.cost_n: got 5e-324"),
    (dict(attacker_budget=1e300), r"game\.attacker_budget: got 1e\+300"),
    (dict(attacker_budget=10**400), r"game\.attacker_budget: the integer 1000.*beyond the "
                                    r"float64 range"),
    (dict(S=[1.0, 10**400]), r"game\.S\[1\]: the integer .* beyond the float64 range"),
    (dict(S=["a", 1.0]), r"game\.S\[0\]: expected a number, got 'a'"),
    (dict(B="12"), r"game\.B: expected numbers \(one per channel\), got the string '12'"),
    (dict(levers=None), r"game\.levers: expected a list of levers .* got None"),
    (dict(levers=5), r"game\.levers: expected a list .* got 5"),
    (dict(levers=math.nan), r"game\.levers: expected a list .* got nan"),
])
def test_out_of_range_and_malformed_input_is_named(spec, message):
    with pytest.raises(GameSpecError, match=message):
        _game("injection", "exp", **spec)


@pytest.mark.parametrize("option,message", [
    (dict(starts=0), r"starts: got 0; expected an integer >= 1"),
    (dict(steps=-5), r"steps: got -5; expected an integer >= 1"),
    (dict(steps=2.5), r"steps: got 2\.5"),
    (dict(learning_rate=math.nan), r"learning_rate: got nan"),
    (dict(seed=-1), r"seed: got -1"),
    (dict(gap_tol=-1.0), r"gap_tol=-1\.0"),
    (dict(boxes=0), r"boxes: got 0"),
    (dict(method="convex", tol=0.0), r"tol: got 0\.0"),
    (dict(method="convex", max_iter=0), r"max_iter: got 0"),
])
def test_solver_options_out_of_range_are_named(option, message):
    game = _game("injection", "exp", levers=("n", "s"))
    with pytest.raises(SolverError, match=message):
        minimax.solve(game, **option)


def test_status_and_gap_tol():
    game = _game("injection", "rational")
    sol = minimax.solve(game, **OPTIONS)
    assert sol.status == "certified" and sol.to_dict()["status"] == "certified"
    strict = minimax.solve(game, gap_tol=0.0, **OPTIONS)
    assert strict.status == "gap_above_tol" and strict.gap > 0  # the rounding margin alone
    assert minimax.solve(game, gap_tol=strict.gap, **OPTIONS).status == "certified"


def test_a_broken_invariant_raises_and_a_batch_keeps_its_other_games():
    good = _game("injection", "rational")
    # bypass the construction checks: N = 5e-324 makes the arithmetic overflow
    bad = good.replace(N=jnp.asarray([5e-324, 1.0]), check=False)
    with pytest.raises(CertificateError, match="the certificate does not hold"):
        minimax.solve(bad, **OPTIONS)
    rows = minimax.solve_batch([good, bad, good], **{k: v for k, v in OPTIONS.items()
                                                    if k != "method"})
    assert [r.status for r in rows] == ["certified", "failed", "certified"]
    assert math.isnan(rows[1].value) and "does not hold" in rows[1].reason
    assert rows[0].value == pytest.approx(rows[2].value) and rows[1].to_dict()["status"] == \
        "failed"


# ----------------------------------------------------------------------------- projections
def _qp_budget(y, cost, budget, mask):
    import cvxpy as cp

    x = cp.Variable(y.size)
    cons = [x >= 0, cost.reshape(-1) @ x <= budget, x[~mask.reshape(-1)] == 0]
    cp.Problem(cp.Minimize(cp.sum_squares(x - y.reshape(-1))), cons).solve(
        solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return x.value.reshape(y.shape)


def _qp_attack(y, cap, budget):
    import cvxpy as cp

    a = cp.Variable(y.size)
    finite = np.isfinite(cap)
    cons = [a >= 0, cp.sum(a) <= budget]
    if finite.any():
        cons.append(a[finite] <= cap[finite])
    cp.Problem(cp.Minimize(cp.sum_squares(a - y)), cons).solve(
        solver="CLARABEL", tol_gap_abs=1e-12, tol_gap_rel=1e-12, tol_feas=1e-12)
    return a.value


@pytest.mark.parametrize("seed", range(6))
def test_budget_projection_matches_a_cvxpy_qp_with_costs(seed):
    rng = np.random.default_rng(seed)
    k = 4
    y = rng.normal(0.0, 2.0, (3, k))
    cost = 10.0 ** rng.uniform(-1.0, 1.0, (3, k))
    mask = np.ones((3, k), dtype=bool)
    mask[rng.integers(0, 3)] = seed % 2 == 0
    budget = float(rng.uniform(0.1, 3.0))
    x = np.asarray(project_budget(jnp.asarray(y), jnp.asarray(cost), budget,
                                  jnp.asarray(mask[:, :1] * 1.0)))
    ref = _qp_budget(y, cost, budget, mask)
    np.testing.assert_allclose(x, ref, atol=1e-6 * (1 + np.abs(y).max()))
    assert np.all(x >= 0) and float(np.sum(cost * x)) <= budget * (1 + 1e-12)


def test_budget_projection_with_costs_spanning_twelve_decades_stays_feasible():
    """Found by the fuzz suite: costs 1e-6 .. 1e6 and P_D = 1e9 overspent by 2.4e-6. Checked
    by the projection's optimality conditions: x = max(y - tau c, 0), one tau >= 0 for every
    coordinate, and the budget met with equality when y is outside."""
    cost = np.asarray([[1e6, 33.07], [1.0, 229.26], [1.0, 1e-6]])
    y = np.asarray([[3e2, 1e8], [5e8, 2e3], [4e8, 9e14]])
    for budget in (1e9, 1.0, 1e-6):
        x = np.asarray(project_budget(jnp.asarray(y), jnp.asarray(cost), budget))
        spent = float(np.sum(cost * x))
        assert spent <= budget * (1 + 1e-12) and spent >= budget * (1 - 1e-9)
        active = x > 0
        taus = (y[active] - x[active]) / cost[active]
        tau = float(np.median(taus))
        assert tau >= 0 and np.allclose(taus, tau, rtol=1e-6, atol=0)
        assert np.all(y[~active] <= tau * cost[~active] * (1 + 1e-9))


@pytest.mark.parametrize("seed", range(6))
def test_attack_projection_matches_a_cvxpy_qp(seed):
    rng = np.random.default_rng(100 + seed)
    k = 5
    y = rng.normal(1.0, 3.0, k)
    cap = np.where(rng.random(k) < 0.5, rng.uniform(0.0, 2.0, k), np.inf)
    budget = float(rng.uniform(0.5, 6.0))
    a = np.asarray(project_attack(jnp.asarray(y), jnp.asarray(cap), budget))
    np.testing.assert_allclose(a, _qp_attack(y, cap, budget), atol=1e-6)
    assert np.all(a >= 0) and np.all(a <= cap) and a.sum() <= budget * (1 + 1e-12)
