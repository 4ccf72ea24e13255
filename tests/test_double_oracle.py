"""Double oracle for mixed defenses (minimax.double_oracle): oracles and a certified instance
where randomising strictly beats every pure defense (conf/game/mixing_helps.yaml)."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from helpers import random_game

import minimax
from minimax.double_oracle import MixedSolution, mixture_best_attack, solve_mixed
from minimax.game import Defense

CONF = Path(__file__).resolve().parents[1] / "conf" / "game"

_oracle = jax.jit(mixture_best_attack)


def _random_defenses(rng, game, count):
    k = game.num_channels
    raw = rng.uniform(0.0, 1.0, (count, 3, k)) * np.asarray(game.lever_mask())[None, :, None]
    raw *= float(game.defender_budget) / raw.sum(axis=(1, 2), keepdims=True).clip(1e-12)
    return Defense(*(jnp.asarray(raw[:, i]) for i in range(3)))


def _mixture_value(game, xs, p, a):
    values = jax.vmap(lambda n, s, b: minimax.payoff(game, Defense(n, s, b), a))(*xs)
    return float(jnp.sum(jnp.asarray(p) * values))


@pytest.mark.parametrize("mode", ["injection", "jamming"])
def test_attacker_oracle_matches_best_response_on_point_mass(mode):
    rng = np.random.default_rng(7)
    for _ in range(6):
        game = random_game(rng, 3, mode=mode, caps=True, utility_price=0.3)
        xs = _random_defenses(rng, game, 3)
        for j in range(3):
            p = np.eye(3)[j]
            attack, value, upper = _oracle(game, xs, p)
            x = Defense(*(v[j] for v in xs))
            ref = minimax.best_response_attack(game, x)
            np.testing.assert_allclose(attack, ref, atol=1e-9)
            assert abs(float(value) - float(minimax.payoff(game, x, ref))) <= 1e-12
            assert 0.0 <= float(upper) - float(value) <= 1e-12
            assert float(jnp.sum(attack)) <= float(game.attacker_budget) * (1 + 1e-14)
            assert np.all(np.asarray(attack) <= np.asarray(game.cap) + 1e-12)


@jax.jit
def _mixture_values(game, xs, p, attacks):
    def one(a):
        return jnp.sum(p * jax.vmap(lambda n, s, b: minimax.payoff(game, Defense(n, s, b), a))(
            *xs))

    return jax.vmap(one)(attacks)


@pytest.mark.parametrize("mode", ["injection", "jamming"])
def test_attacker_oracle_against_grid_on_two_channel_mixture(mode):
    """Brute force: L increases in each a_i, so the optimum lies on the frontier
    a_2 = min(cap_2, P_A - a_1); a fine 1-D grid on it brackets the exact maximum."""
    rng = np.random.default_rng(11 if mode == "injection" else 12)
    for _ in range(4):
        game = random_game(rng, 2, mode=mode, caps=True, utility_price=0.5)
        xs = _random_defenses(rng, game, 4)
        p = rng.dirichlet(np.ones(4))
        attack, value, upper = _oracle(game, xs, p)
        cap = np.asarray(game.cap)
        budget = float(game.attacker_budget)
        a1 = np.linspace(0.0, min(cap[0], budget), 20001)
        a2 = np.minimum(cap[1], budget - a1)
        grid = jnp.asarray(np.stack([a1, a2], axis=1))
        best = float(jnp.max(_mixture_values(game, xs, jnp.asarray(p), grid)))
        assert float(upper) >= best - 1e-12  # upper is a valid bound
        assert float(value) >= best - 1e-12  # no grid point beats the oracle
        assert float(value) - best <= 1e-5  # and the grid comes close (grid resolution)
        assert abs(_mixture_value(game, xs, p, attack) - float(value)) <= 1e-12
        # random feasible attacks never beat the dual upper bound
        for _ in range(20):
            r = rng.dirichlet(np.ones(3))[:2] * budget
            r = np.minimum(r, cap)
            assert _mixture_value(game, xs, p, jnp.asarray(r)) <= float(upper) + 1e-12


# ----------------------------------------------------------------- randomising strictly helps
def _lipschitz_n_jamming(game):
    """|dL/dn_i| <= w B alpha S / (ln2 (sqrt N + sqrt(N + S))^2) for every attack (jamming,
    lever n only): see experiments/double_oracle_demo.py for the derivation."""
    w, B, alpha, S, N = (np.asarray(getattr(game, k)) for k in ("w", "B", "alpha", "S", "N"))
    return w * B * alpha * S / (np.log(2.0) * (np.sqrt(N) + np.sqrt(N + S)) ** 2)


def _brute_force_pure_lower(game, points):
    """Certified lower bound on the pure V of a K = 2, n-only game: grid min - h sum G_i."""
    P = float(game.defender_budget)
    h = P / (points - 1)
    t = np.arange(points) * h
    n1, n2 = np.meshgrid(t, t, indexing="ij")
    keep = n1 + n2 <= P * (1 + 1e-12)
    grid = jnp.asarray(np.stack([n1[keep], n2[keep]], axis=1))
    zero = jnp.zeros(2)
    values = jax.jit(jax.vmap(lambda n: minimax.phi(game, Defense(n, zero, zero))))(grid)
    return float(jnp.min(values)) - h * float(_lipschitz_n_jamming(game).sum())


@pytest.fixture(scope="module")
def helps_game():
    return minimax.Game.from_dict(yaml.safe_load((CONF / "mixing_helps.yaml").read_text()))


@pytest.fixture(scope="module")
def helps_mixed(helps_game):
    return solve_mixed(helps_game, max_iter=30, tol=1e-6, starts=8, steps=100, seed=0)


def test_lipschitz_bound_holds(helps_game):
    rng = np.random.default_rng(3)
    zero = jnp.zeros(2)
    grad = jax.jit(jax.vmap(jax.grad(
        lambda n, a: minimax.payoff(helps_game, Defense(n, zero, zero), a))))
    n = rng.uniform(0.0, 3.0, (2000, 2))
    a = rng.uniform(0.0, 40.0, (2000, 2))
    g = np.abs(np.asarray(grad(jnp.asarray(n), jnp.asarray(a))))
    assert np.all(g <= _lipschitz_n_jamming(helps_game)[None, :] * (1 + 1e-12))


def test_mixing_strictly_helps(helps_game, helps_mixed):
    mixed = helps_mixed
    v_lower = _brute_force_pure_lower(helps_game, 201)  # h = 0.01
    # certified: every pure defense concedes >= v_lower; the mixture concedes <= mixed.upper
    assert mixed.upper < v_lower - 0.1, (mixed.upper, v_lower)
    assert mixed.pure.upper >= v_lower  # the engine's pure defense is consistent with V
    # the bracket is consistent
    assert mixed.lower <= mixed.upper
    assert mixed.lower <= mixed.pure.upper
    assert mixed.gap == pytest.approx(mixed.upper - mixed.lower)
    assert mixed.gap <= 1e-6
    assert mixed.value == mixed.upper
    # the mixture randomises over "all on channel 1" / "all on channel 2"
    assert len(mixed.defenses) >= 2
    assert mixed.probabilities.sum() == pytest.approx(1.0)
    assert np.all(mixed.probabilities >= 0)
    assert np.max(mixed.probabilities) < 0.6
    # its guarantee recomputed independently: the attacker's exact best response to it
    stacked = Defense(*(jnp.stack([jnp.asarray(getattr(d, f)) for d in mixed.defenses])
                        for f in ("n", "s", "b")))
    _, value, upper = _oracle(helps_game, stacked, mixed.probabilities)
    assert float(upper) == pytest.approx(mixed.upper, abs=1e-9)


def test_history_and_dict(helps_mixed):
    mixed = helps_mixed
    assert isinstance(mixed, MixedSolution) and mixed.method == "double_oracle"
    assert len(mixed.history) == mixed.iterations >= 2
    uppers = [u for u, _ in mixed.history]
    lowers = [lo for _, lo in mixed.history]
    assert all(b <= a for a, b in zip(uppers, uppers[1:], strict=False))
    assert all(b >= a for a, b in zip(lowers, lowers[1:], strict=False))
    assert all(lo <= u for u, lo in mixed.history)
    d = json.loads(json.dumps(mixed.to_dict()))
    assert set(d) == {"value", "upper", "lower", "gap", "defenses", "probabilities",
                      "pure_value", "pure_lower", "iterations", "history", "method", "seconds",
                      "status", "reason", "pure_status", "termination", "pure"}
    assert d["status"] in ("certified", "gap_above_tol") and d["pure_status"] == "certified"
    assert d["pure_value"] == mixed.pure.upper and len(d["history"]) == mixed.iterations


def test_weak_jammer_gains_nothing(helps_game):
    """With P_A < sqrt(N (N + S)) the harm is convex in n for every feasible attack
    (d^2L/dn^2 = alpha^2 S u g'(u), g(u) = u / ((N + u)(N + S + u)) increasing below that
    point): the game is convex-concave, has a pure saddle point, and V_mix = V."""
    game = helps_game.replace(attacker_budget=0.3)  # sqrt(0.1 * 1.1) = 0.33
    mixed = solve_mixed(game, max_iter=10, tol=1e-6, starts=8, steps=100)
    assert mixed.lower <= mixed.upper <= mixed.pure.upper + 1e-12
    assert mixed.upper == pytest.approx(mixed.pure.upper, abs=1e-5)
    pure_n = np.asarray(mixed.pure.defense.n)
    for d, prob in zip(mixed.defenses, mixed.probabilities, strict=True):
        assert prob < 1e-6 or np.max(np.abs(np.asarray(d.n) - pure_n)) < 1e-3  # no real mixing
    # The lower bound is valid but not tight here: min_x L(x, (0.15, 0.15)) = 0.48052 (at
    # n = (1, 1), a convex problem), while lagrangian_lower_bound returns 0.45661 at the right
    # multiplier: its branch-and-bound keeps the bounds of boxes discarded in the first round
    # (width P_D / boxes), which is loose for this flat harm. BoundConfig(boxes=96, refine=24,
    # rounds=12) gives 0.47878.
    assert mixed.gap < 0.05


def test_bracket_against_a_grid_lp(helps_game, helps_mixed):
    """The certified bracket [lower, upper] on V_mix against the value of the matrix game on
    grids of defenses and attacks, with the grids' errors bounded by Lipschitz constants.

    L is decreasing in n, so both players' best replies lie on the faces n_1 + n_2 = P_D and
    a_1 + a_2 = P_A, each one-dimensional. With v the LP value on the grids (spacings h_x, h_a):
    ``V_mix <= v + (G^a_1 + G^a_2) h_a / 2`` (the LP's mixture against any attack) and
    ``V_mix >= v - (G^n_1 + G^n_2) h_x / 2`` (the LP's attack mixture against any defense),
    where G^a_i >= |dL/da_i| = w B eta s / ((N + eta a)(N + eta a + s) ln 2) <= w B S /
    (N (N + S) ln 2) and G^n_i bounds |dL/dn_i| (``_lipschitz_n_jamming``).
    """
    from scipy.optimize import linprog

    g = {f: np.asarray(getattr(helps_game, f), dtype=float) for f in
         ("B", "S", "N", "w", "alpha")}
    p_d, p_a = float(helps_game.defender_budget), float(helps_game.attacker_budget)
    n1 = np.linspace(0.0, p_d, 401)
    a1 = np.linspace(0.0, p_a, 4001)
    n = np.stack([n1, p_d - n1], axis=1)[:, None, :]  # (D, 1, 2)
    a = np.stack([a1, p_a - a1], axis=1)[None, :, :]  # (1, A, 2)
    eta = np.exp(-g["alpha"] * n)
    removed = g["B"] * (np.log1p(g["S"] / g["N"]) - np.log1p(g["S"] / (g["N"] + eta * a)))
    M = np.sum(g["w"] * removed, axis=-1) / np.log(2.0)  # (D, A) loss, rows minimise
    d, m = M.shape
    res = linprog(np.r_[np.zeros(d), 1.0], A_ub=np.c_[M.T, -np.ones(m)], b_ub=np.zeros(m),
                  A_eq=np.r_[np.ones(d), 0.0][None], b_eq=[1.0],
                  bounds=[(0, None)] * d + [(None, None)], method="highs")
    assert res.status == 0
    v = float(res.x[-1])
    eps_a = float(np.sum(g["w"] * g["B"] * g["S"] / (g["N"] * (g["N"] + g["S"]) * np.log(2.0)))
                  ) * (a1[1] - a1[0]) / 2
    eps_x = float(_lipschitz_n_jamming(helps_game).sum()) * (n1[1] - n1[0]) / 2
    mixed = helps_mixed
    print(f"grid LP value {v:.6f} (+{eps_a:.4f} / -{eps_x:.4f}); bracket [{mixed.lower:.6f}, "
          f"{mixed.upper:.6f}]")
    assert mixed.lower <= v + eps_a
    assert mixed.upper >= v - eps_x
    assert mixed.upper <= v + eps_a + 1e-6  # and the mixture is about as good as the grid's
