"""Solvers against a scipy SLSQP multistart, closed forms and each other; certificate validity."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import minimize

import minimax
from minimax import SolverError
from tests.helpers import random_defense, random_game


def _phi_flat(game: minimax.Game, z: jax.Array) -> jax.Array:
    """phi of the defense stacked as z = (n, s, b), each of length K."""
    k = game.num_channels
    return minimax.phi(game, minimax.Defense(z[:k], z[k : 2 * k], z[2 * k :]))


# compiled once per game shape (the game is an argument, not a constant of the program)
_PHI_FLAT = jax.jit(_phi_flat)
_GRAD_PHI_FLAT = jax.jit(jax.grad(_phi_flat, argnums=1))


def slsqp_multistart(game: minimax.Game, starts: int, rng) -> list[float]:
    """phi at every local solution SLSQP finds from random feasible starts (feasible only)."""
    k = game.num_channels
    cost = np.concatenate(
        [np.asarray(game.cost_n), np.asarray(game.cost_s), np.asarray(game.cost_b)]
    )
    budget = float(game.defender_budget)
    view = game.view()

    def f(z):
        return _PHI_FLAT(view, z)

    def df(z):
        return _GRAD_PHI_FLAT(view, z)

    found = []
    for _ in range(starts):
        x0 = rng.dirichlet(np.ones(3 * k + 1))[: 3 * k] * budget / cost
        res = minimize(
            lambda z: float(f(jnp.asarray(z))),
            x0,
            jac=lambda z: np.asarray(df(jnp.asarray(z))),
            method="SLSQP",
            bounds=[(0.0, None)] * (3 * k),
            constraints=[
                {"type": "ineq", "fun": lambda z: budget - cost @ z, "jac": lambda z: -cost}
            ],
            options={"maxiter": 300, "ftol": 1e-12},
        )
        z = np.maximum(res.x, 0.0)
        if cost @ z <= budget * (1 + 1e-12):
            found.append(float(f(jnp.asarray(z))))
    return found


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 5, 8])
def test_gradient_at_least_as_good_as_slsqp_multistart(k):
    rng = np.random.default_rng(100 + k)
    games = [random_game(rng, k, utility_price=0.3 * (i % 2), caps=i % 3 == 2) for i in range(7)]
    sols = minimax.solve_batch(games)
    for game, sol in zip(games, sols, strict=True):
        reference = slsqp_multistart(game, 8, rng)
        assert reference, "SLSQP found no feasible point"
        assert sol.value <= min(reference) + 1e-6
        assert sol.lower <= min(reference) + 1e-12  # never above a feasible value
        assert sol.lower <= sol.upper
        assert sol.gap == pytest.approx(sol.upper - sol.lower, abs=0)


CONVEX_CASES = [
    dict(k=4, mode="injection", levers=("n", "s"), utility_price=0.0, effect="exp"),
    dict(k=3, mode="injection", levers=("n", "s"), utility_price=0.3, effect="rational"),
    dict(k=3, mode="injection", levers=("b",), utility_price=0.0, effect="exp"),
    dict(k=3, mode="jamming", levers=("s",), utility_price=0.0, effect="exp"),
]


@pytest.mark.slow
@pytest.mark.parametrize("case", CONVEX_CASES, ids=lambda c: f"{c['mode']}-{''.join(c['levers'])}")
def test_convex_and_gradient_agree_on_convex_games(case):
    rng = np.random.default_rng(11)
    case = dict(case)
    game = random_game(rng, case.pop("k"), **case)
    assert minimax.convexity(game)[0]
    convex = minimax.solve(game, method="convex")
    grad = minimax.solve(game, method="gradient")
    assert abs(convex.value - grad.value) <= 1e-6
    assert convex.gap <= 1e-6 and grad.gap <= 1e-6
    assert convex.lower <= grad.upper + 1e-12 and grad.lower <= convex.upper + 1e-12


def test_convex_method_refuses_non_convex_games():
    game = random_game(np.random.default_rng(0), 2)
    with pytest.raises(SolverError, match="method='convex' needs a convex game"):
        minimax.solve(game, method="convex")


def test_closed_forms_single_channel():
    """One channel, one lever, all budget on it: V has a closed form (docs/analyses.md §4.1)."""
    base = dict(
        mode="injection",
        attacker_budget=7.0,
        defender_budget=1.5,
        B=[2.0],
        S=[1.0],
        N=[0.5],
        w=[1.0],
        u=[0.0],
        rho=[0.0],
        alpha=[0.8],
        beta=[1.0],
        gamma=[1.2],
    )
    m0 = 0.5 + 1.0
    bw = minimax.solve(minimax.Game.create(**base, levers=["b"]))
    assert bw.value == pytest.approx(2.0 * math.exp(-1.2 * 1.5) * math.log2(1 + 7.0 / m0), abs=1e-9)
    noise = minimax.solve(minimax.Game.create(**base, levers=["n"]))
    assert noise.value == pytest.approx(
        2.0 * math.log2(1 + 7.0 * math.exp(-0.8 * 1.5) / m0), abs=1e-9
    )
    for sol in (bw, noise):
        assert sol.gap <= 1e-6


def test_solve_batch_matches_solve():
    rng = np.random.default_rng(21)
    games = [random_game(rng, 3, utility_price=0.1 * i) for i in range(3)]
    batch = minimax.solve_batch(games, starts=8, steps=100)
    for game, sol in zip(games, batch, strict=True):
        single = minimax.solve(game, method="gradient", starts=8, steps=100)
        assert sol.value == pytest.approx(single.value, abs=1e-9)
        assert sol.lower == pytest.approx(single.lower, abs=1e-9)
        assert set(sol.to_dict()) >= {
            "value",
            "upper",
            "lower",
            "gap",
            "defense",
            "attack",
            "method",
            "iterations",
            "seconds",
        }


@pytest.mark.slow
def test_compacted_batch_follows_each_games_own_descent():
    """solve_batch drops finished games between pieces of the descent: every game must still
    follow its own solve's descent to the same defense and certificate. (The vmapped
    quasi-Newton reductions may round differently from one game's, which can move the stall
    test by a few final iterations that no longer change phi: the iteration counts are
    compared to within the stall window.)"""
    from minimax.gradient import STALL_WINDOW

    rng = np.random.default_rng(33)
    games = [random_game(rng, 2, utility_price=0.1 * (i % 3)) for i in range(7)]
    batch = minimax.solve_batch(games, starts=3, steps=45)
    iterations = [sol.iterations for sol in batch]
    assert len(set(iterations)) > 2  # games finish in different pieces: compaction exercised
    for game, sol in zip(games, batch, strict=True):
        single = minimax.solve(game, method="gradient", starts=3, steps=45)
        assert abs(sol.iterations - single.iterations) <= STALL_WINDOW
        assert sol.value == pytest.approx(single.value, abs=1e-12)
        assert sol.lower == pytest.approx(single.lower, abs=1e-9)
        assert sol.status == "certified"


@pytest.mark.slow
def test_bound_at_zero_multiplier_only_where_it_can_win():
    """The branch-and-bound at nu = 0 is skipped when an upper estimate of g(0) is below g at
    the searched multiplier; where the budget is slack it must still run, and the batched
    certificates (which compute it for those games only) must equal the single ones."""
    from minimax.certificate import centre_bound

    rng = np.random.default_rng(41)
    binding = [random_game(rng, 2, utility_price=0.1) for _ in range(2)]
    slack = [random_game(rng, 2, utility_price=3.0, levers=("b",)).replace(
        defender_budget=50.0) for _ in range(2)]
    need = [bool(jax.jit(centre_bound)(g, minimax.best_response(g, {})[0]).need_zero)
            for g in binding + slack]
    assert need == [False, False, True, True]
    batch = minimax.solve_batch(binding, starts=2, steps=20)
    batch_slack = minimax.solve_batch(slack, starts=2, steps=20)
    for game, sol in zip(binding + slack, batch + batch_slack, strict=True):
        single = minimax.solve(game, method="gradient", starts=2, steps=20)
        assert sol.lower == pytest.approx(single.lower, abs=1e-12)
        assert sol.lower <= sol.value
    assert all(sol.lower > -np.inf for sol in batch_slack)


def test_solve_batch_rejects_mixed_shapes():
    rng = np.random.default_rng(1)
    with pytest.raises(SolverError, match="differs in shape"):
        minimax.solve_batch([random_game(rng, 2), random_game(rng, 3)])


@pytest.mark.parametrize("mode", ["injection", "jamming"])
def test_lower_bound_below_every_feasible_value(mode):
    """lower <= V <= phi(x) for every feasible x: check against 300 random defenses."""
    rng = np.random.default_rng(5)
    game = random_game(rng, 3, mode=mode, utility_price=0.2 if mode == "injection" else 0.0)
    sol = minimax.solve(game, starts=8, steps=100)
    xs = [random_defense(rng, game) for _ in range(300)]
    stacked = jnp.stack([jnp.stack([jnp.asarray(x[k]) for k in "nsb"]) for x in xs])
    values = jax.vmap(lambda z: minimax.phi(game, minimax.Defense(*z)))(stacked)
    assert sol.lower <= float(jnp.min(values)) + 1e-12
    assert sol.value <= float(jnp.min(values)) + 1e-9  # and the solver beats random search
    spent = float(
        minimax.defense_cost(game, minimax.Defense(*(jnp.asarray(v) for v in sol.defense)))
    )
    assert spent <= float(game.defender_budget) * (1 + 1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["extragradient", "optimistic", "gda"])
def test_saddle_methods_on_a_convex_game(method):
    game = random_game(np.random.default_rng(5), 3, levers=("n", "s"))
    ref = minimax.solve(game, method="gradient")
    sol = minimax.solve(game, method=method)
    assert sol.method == method
    assert sol.value == pytest.approx(ref.value, abs=1e-6)
    assert sol.lower <= sol.upper


def test_auto_says_what_it_chose():
    game = random_game(np.random.default_rng(2), 2, levers=("n", "s"))
    sol = minimax.solve(game)
    assert sol.method == "gradient"
    assert "auto chose gradient" in sol.reason and "convex-concave" in sol.reason


def test_unknown_method_and_option():
    game = random_game(np.random.default_rng(2), 2)
    with pytest.raises(SolverError, match="unknown method 'newton'"):
        minimax.solve(game, method="newton")
    with pytest.raises(SolverError, match="unknown option"):
        minimax.solve(game, method="gradient", tol=1e-3)


def test_jamming_lower_bound_close_to_a_brute_force_dual() -> None:
    """The default system in jamming mode: the certified lower bound stays below a grid estimate
    of the Lagrangian dual g(nu) (the grid minimises over a subset, so it is >= the true g(nu)),
    and within 0.05 of it (a first round of 24 intervals left 0.24)."""
    from pathlib import Path

    import yaml

    from minimax.certificate import lagrangian_lower_bound
    from minimax.channel import adversarial_capacity
    from minimax.game import Defense

    spec = yaml.safe_load((Path(__file__).parents[1] / "conf/game/mfm_default.yaml").read_text())
    game = minimax.Game.from_dict({**spec, "mode": "jamming"})
    sol = minimax.solve(game)
    attack = jnp.asarray(sol.attack)
    bound = jax.jit(lagrangian_lower_bound)(game.view(), attack)  # eager, each loop compiles
    nu, budget, k = float(bound.nu), game.defender_budget, game.num_channels
    assert sol.lower <= sol.value and float(bound.value) <= sol.lower + 1e-12
    g_grid = -nu * budget
    for i in range(k):
        cn, cs = float(game.cost_n[i]), float(game.cost_s[i])
        n, s = (
            v.ravel()
            for v in np.meshgrid(np.linspace(0, budget / cn, 401), np.linspace(0, budget / cs, 401))
        )
        keep = cn * n + cs * s <= budget * (1 + 1e-12)
        n, s = n[keep], s[keep]
        tile = lambda v: jnp.asarray(np.repeat(v[:, None], k, axis=1))  # noqa: E731
        defense = Defense(n=tile(n), s=tile(s), b=jnp.zeros((n.size, k)))
        harm = np.asarray(adversarial_capacity(game, defense, attack))[:, i] * float(game.w[i])
        g_grid += float(np.min(harm + nu * (cn * n + cs * s)))
    assert float(bound.value) <= g_grid
    assert g_grid - float(bound.value) <= 0.05
    assert sol.value - sol.lower <= 0.05


# ------------------------------------------------------------- screened, stall-stopped descent
def test_screen_keeps_the_structured_starts_and_the_random_ones_with_the_smallest_phi():
    from minimax.gradient import STALL_WINDOW, DescentState, GradientOptions, descent_screen
    from minimax.projection import STRUCTURED_STARTS

    assert STRUCTURED_STARTS == 5
    value = jnp.array([9.0, 8.0, 7.0, 6.0, 5.0, 4.0, 0.5, 3.0, 1.0])  # starts 5..8 are random
    state = DescentState(x=jnp.arange(9.0)[:, None, None] * jnp.ones((9, 3, 2)), value=value,
                         radius=jnp.arange(9.0), history=jnp.tile(value, (STALL_WINDOW, 1)),
                         step=jnp.asarray(2), pair_s=jnp.zeros((9, 6, 6)),
                         pair_y=jnp.zeros((9, 6, 6)), pair_rho=jnp.arange(9.0)[:, None]
                         * jnp.ones((9, 6)), prev_x=jnp.zeros((9, 3, 2)),
                         prev_g=jnp.zeros((9, 3, 2)))
    kept = descent_screen(state, GradientOptions(starts=9, keep=7, pinned=5))
    np.testing.assert_array_equal(kept.value, [9.0, 8.0, 7.0, 6.0, 5.0, 0.5, 1.0])
    np.testing.assert_array_equal(kept.x[:, 0, 0], [0, 1, 2, 3, 4, 6, 8])  # rows move together
    np.testing.assert_array_equal(kept.radius, [0, 1, 2, 3, 4, 6, 8])
    np.testing.assert_array_equal(kept.pair_rho[:, 0], [0, 1, 2, 3, 4, 6, 8])
    np.testing.assert_array_equal(kept.history[0], kept.value)
    assert descent_screen(state, GradientOptions(starts=9, keep=9)) is state
    # fewer kept than pinned starts: the first ones
    np.testing.assert_array_equal(descent_screen(state, GradientOptions(starts=9, keep=2)).value,
                                  [9.0, 8.0])
    # the default: 2 pinned structured starts, then the smallest phi among all the others,
    # unpinned structured starts included (start 4, phi 5.0, beats random start 5, phi 5.0:
    # a tie goes to the earlier start)
    value = value.at[5].set(5.0)
    state = state._replace(value=value, history=jnp.tile(value, (STALL_WINDOW, 1)))
    kept = descent_screen(state, GradientOptions(starts=9, keep=6))
    np.testing.assert_array_equal(kept.x[:, 0, 0], [0, 1, 6, 8, 7, 4])
    assert (GradientOptions().pinned, GradientOptions().keep, GradientOptions().screen) == (2, 3, 1)


@pytest.mark.slow
def test_default_screen_reaches_the_value_of_every_start_descended():
    """The default screen (no defense, the noise start and the best screened one of the other
    14) against the descent of all 16 starts to the end (keep = starts, stall_tol = 0): the same
    value to 1e-9 on random games with K = 3 and caps. (A screen that pins no structured start,
    keep = 2, pinned = 0, is worse by 2.6e-2 on the fourth of them.)"""
    rng = np.random.default_rng(53)
    games = ([random_game(rng, 3, utility_price=float(rng.uniform(0, 0.3))) for _ in range(8)]
             + [random_game(rng, 3, caps=True) for _ in range(8)])[8:]
    fast = minimax.solve_batch(games)
    full = minimax.solve_batch(games, keep=16, stall_tol=0.0)
    for f, ref in zip(fast, full, strict=True):
        assert f.value <= ref.value + 1e-9
        assert f.status == "certified"


@pytest.mark.slow
def test_screen_and_stall_stop_lose_nothing_against_the_full_descent_and_slsqp():
    """Every start run to trust-region collapse (keep = starts, stall_tol = 0: the descent as
    it was before screening) and scipy SLSQP multistart are the references; the default
    screened, stall-stopped descent must match the first to 1e-9 and beat the second, in
    fewer iterations."""
    rng = np.random.default_rng(7)
    games = [random_game(rng, 4, utility_price=0.2 * (i % 2)) for i in range(4)]
    fast = minimax.solve_batch(games, starts=12, steps=150)
    full = minimax.solve_batch(games, starts=12, steps=150, keep=12, stall_tol=0.0)
    for game, f, ref in zip(games, fast, full, strict=True):
        assert f.value <= ref.value + 1e-9
        assert f.iterations <= ref.iterations
        assert f.value <= min(slsqp_multistart(game, 6, rng)) + 1e-6
    assert sum(f.iterations for f in fast) < sum(r.iterations for r in full)


@pytest.mark.parametrize("option, value", [("keep", 0), ("screen", -1), ("stall_tol", -1e-9),
                                           ("stall_tol", float("nan")), ("keep", 2.5)])
def test_screen_and_stall_options_are_checked_by_name(option, value):
    with pytest.raises(SolverError, match=f"solver option {option}: got"):
        minimax.solve(random_game(np.random.default_rng(0), 2), **{option: value})
