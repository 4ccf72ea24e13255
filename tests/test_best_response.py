"""Exact best responses against a brute-force zooming grid and against the KKT conditions."""

import jax
import numpy as np
import pytest

import minimax
from tests.helpers import brute_force_best_response, numpy_loss, random_defense, random_game

CASES = [
    (seed, mode, k, caps)
    for seed in range(15)
    for mode in ("injection", "jamming")
    for k, caps in ((2, False), (3, True))
]


@pytest.mark.parametrize(("seed", "mode", "k", "caps"), CASES)
def test_best_response_matches_brute_force(seed, mode, k, caps):
    rng = np.random.default_rng(1000 + seed)
    effect = "rational" if seed % 5 == 4 else "exp"
    game = random_game(rng, k, mode=mode, caps=caps, utility_price=0.2 * (seed % 2), effect=effect)
    x = random_defense(rng, game)
    attack, value = minimax.best_response(game, x)
    _, brute = brute_force_best_response(game, x)
    assert np.all(attack >= -1e-12)
    assert np.all(attack <= np.asarray(game.cap) + 1e-9)
    assert attack.sum() <= float(game.attacker_budget) * (1 + 1e-12)
    assert value == pytest.approx(float(numpy_loss(game, x, attack)), abs=1e-12)
    assert value >= brute - 1e-9  # never worse than the grid
    assert value - brute <= 1e-6  # and the grid gets within 1e-6 of it


def test_count_of_instances():
    assert len(CASES) >= 50


@pytest.mark.parametrize("mode", ["injection", "jamming"])
def test_kkt_conditions(mode):
    """Equal marginal harm on channels strictly inside (0, cap); lower on zero-power channels."""
    rng = np.random.default_rng(7)
    game = random_game(rng, 8, mode=mode, caps=True)
    x = random_defense(rng, game)
    attack, _ = minimax.best_response(game, x)
    d = minimax.Defense(*(np.asarray(x[k]) for k in "nsb"))
    grad = np.asarray(jax.grad(lambda a: minimax.payoff(game, d, a))(attack))
    cap = np.asarray(game.cap)
    inner = (attack > 1e-9) & (attack < cap - 1e-9)
    mu = grad[inner]
    assert mu.size >= 1
    assert np.ptp(mu) <= 1e-8 * max(1.0, np.max(np.abs(mu)))
    assert np.all(grad[attack <= 1e-9] <= mu.max() + 1e-9)
    assert np.all(grad[attack >= cap - 1e-9] >= mu.min() - 1e-9)


def test_all_caps_bind_when_budget_exceeds_them():
    game = minimax.Game.create(
        mode="injection",
        attacker_budget=100.0,
        defender_budget=1.0,
        B=[1.0, 1.0],
        S=[1.0, 1.0],
        N=[1.0, 1.0],
        w=[1.0, 0.0],
        u=[0.0, 0.0],
        rho=[0.0, 0.0],
        alpha=[1.0, 1.0],
        beta=[1.0, 1.0],
        gamma=[1.0, 1.0],
        cap=[2.0, 3.0],
    )
    attack, value = minimax.best_response(game, {})
    # channel 1 has no harm weight, so the attacker puts nothing there
    np.testing.assert_allclose(attack, [2.0, 0.0], atol=1e-12)
    assert value == pytest.approx(np.log2(1 + 2.0 / 2.0))


def test_zero_budget_means_no_attack():
    rng = np.random.default_rng(3)
    game = random_game(rng, 4).replace(attacker_budget=0.0)
    for mode in ("injection", "jamming"):
        attack, _ = minimax.best_response(game.replace(mode=mode), {})
        np.testing.assert_array_equal(attack, np.zeros(4))
