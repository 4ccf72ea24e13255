"""The asymmetry of docs §4.1 reproduced by *solving* games, compared with the closed form.

One channel, injection, lambda = 0, the whole budget D on one lever. The defender's solver
decides how much of D to spend (it spends all of it); the relative protection
``R = 1 - V(D) / V(0)`` must match

    R_model(P) = 1 - log(1 + P e^{-alpha D} / m0) / log(1 + P / m0)   (noise suppression)
    R_sys(P)   = 1 - e^{-gamma D}                                     (bandwidth restriction)
"""

import numpy as np

import minimax
from minimax.analysis import closed_form_one_channel

# eight powers from 1 to 1e8: a batch of eight compiles the batch sizes 8 and 4 only (nine
# compiled 9, 8 and 4)
POWERS = np.logspace(0, 8, 8)
ALPHA, GAMMA, D = 1.0, 1.0, 2.0
S, N = 2.0, 0.5


def _games(levers, budget, cost_n=1.0, cost_b=1.0):
    return [
        minimax.Game.create(
            mode="injection",
            attacker_budget=float(p),
            defender_budget=budget,
            B=[1.0],
            S=[S],
            N=[N],
            w=[1.0],
            u=[1.0],
            rho=[0.3],
            alpha=[ALPHA],
            beta=[0.5],
            gamma=[GAMMA],
            levers=levers,
            cost_n=[cost_n],
            cost_b=[cost_b],
        )
        for p in POWERS
    ]


def _undefended() -> np.ndarray:
    """V(0) at every power: with no budget the defense is 0 whatever the solver settings, so
    the settings are those of the defended ``["n"]`` batches (one compiled program for both)."""
    return np.array([s.value for s in minimax.solve_batch(_games(["n"], 0.0), starts=4,
                                                          steps=100)])


def test_asymmetry_from_solved_games_matches_closed_form():
    m0 = N + S
    undefended = _undefended()
    noise = minimax.solve_batch(_games(["n"], D), starts=4, steps=100)
    band = minimax.solve_batch(_games(["b"], D), starts=4, steps=100)
    r_model = 1 - np.array([s.value for s in noise]) / undefended
    r_sys = 1 - np.array([s.value for s in band]) / undefended
    closed_model = 1 - np.log1p(POWERS * np.exp(-ALPHA * D) / m0) / np.log1p(POWERS / m0)
    closed_sys = np.full_like(POWERS, 1 - np.exp(-GAMMA * D))
    np.testing.assert_allclose(r_model, closed_model, atol=1e-9)
    np.testing.assert_allclose(r_sys, closed_sys, atol=1e-9)
    for sol in (*noise, *band):
        assert sol.gap <= 1e-6
    # model-centric protection fades like alpha D / ln(P / m0); system-level protection holds
    assert r_model[0] > 0.8 and r_model[-1] < 0.12
    assert np.all(np.diff(r_model) < 0)
    np.testing.assert_allclose(r_model[-1] * np.log(POWERS[-1] / m0), ALPHA * D, rtol=0.05)


def test_closed_form_helper_against_the_formulas_with_lever_costs():
    """``closed_form_one_channel`` (used by the analysis tests and tables) against the formulas
    written out here, with lever costs other than 1 (the budget buys D / cost of a lever), and
    against solved games."""
    cost_n, cost_b = 2.0, 0.5
    m0 = N + S
    closed_model = 1 - np.log1p(POWERS * np.exp(-ALPHA * D / cost_n) / m0) / np.log1p(
        POWERS / m0)
    closed_sys = np.full_like(POWERS, 1 - np.exp(-GAMMA * D / cost_b))
    game = _games(["n", "b"], D, cost_n, cost_b)[0]
    r_model, r_sys = closed_form_one_channel(game, POWERS)
    np.testing.assert_allclose(r_model, closed_model, rtol=1e-12)
    np.testing.assert_allclose(r_sys, closed_sys, rtol=1e-12)
    undefended = _undefended()
    noise = minimax.solve_batch(_games(["n"], D, cost_n, cost_b), starts=4, steps=100)
    band = minimax.solve_batch(_games(["b"], D, cost_n, cost_b), starts=4, steps=100)
    np.testing.assert_allclose(1 - np.array([s.value for s in noise]) / undefended,
                               closed_model, atol=1e-9)
    np.testing.assert_allclose(1 - np.array([s.value for s in band]) / undefended,
                               closed_sys, atol=1e-9)
    assert all(s.status == "certified" and s.gap <= 1e-6 for s in (*noise, *band))
