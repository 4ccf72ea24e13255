"""The empirical game's double oracle against a target whose every cell is known in closed form.

The oracle for each assertion is independent of the loop: the synthetic target's exact
bits (symmetric-channel closed form) over the *whole* menu x split grid, solved by the LP.
"""

from __future__ import annotations

import numpy as np
import pytest

from minimax.finite import zero_sum
from minimax.validate.empirical import solve_empirical, split_grid
from minimax.validate.measure import (
    Bits,
    bootstrap_weights,
    max_bits,
    outcome_bits,
    paired_difference,
)
from minimax.validate.target import Outcome, Target
from minimax.validate.targets.synthetic import SyntheticTarget

P, D, GRID = 2.0, 1.0, 10


@pytest.fixture(scope="module")
def target():
    return SyntheticTarget(n_units=400)


@pytest.fixture(scope="module")
def truth(target):
    """Exact value and defender mixture of the full game (every menu row x every split)."""
    menu = target.menu(D)
    splits = split_grid(target.channels, GRID)
    A = np.array([[target.true_bits(k, {c: f[c] * P for c in target.channels}) for f in splits]
                  for k in menu.values()])
    sol = zero_sum(A)
    mix = {name: float(w) for name, w in zip(menu, sol.x, strict=True) if w > 1e-6}
    return {"value": sol.value, "mix": mix, "A": A, "menu": menu}


def _true_propose(target, menu):
    def propose(ymix, cells):
        best = min(menu.values(), key=lambda k: sum(w * target.true_bits(k, p) for w, p in ymix))
        return target.lever_values(best)
    return propose


def _levers_of(res, name):
    return next(r.levers for r in res.rows if r.name == name)


def test_synthetic_target_is_a_target(target):
    assert isinstance(target, Target)
    with pytest.raises(ValueError, match="unknown attack option"):
        target.attack([(1.0, target.realise({}))], {"image": 1.0}, split="held", seed=0,
                      options={"stepz": 3})


def test_truth_is_mixed(truth):
    # the known equilibrium mixes two pure defenses: a loop that only ranks rows cannot find it
    assert len(truth["mix"]) == 2 and 0.9 < truth["value"] < 1.2


def test_double_oracle_recovers_known_equilibrium_and_value(target, truth):
    menu = truth["menu"]
    rows = [("no defense", menu["no defense"], "menu"),
            ("engine prescription", target.realise({"n_image": 0.5, "b_text": 0.5}), "engine")]
    res = solve_empirical(target, rows, power=P, grid=GRID, row_grid=2,
                          propose=_true_propose(target, menu), max_iter=6)
    assert res.status == "converged"
    # the value of the known game, inside the measured CI
    assert res.value == pytest.approx(truth["value"], abs=0.04)
    assert res.value_lo - 0.01 <= truth["value"] <= res.value_hi + 0.01
    # the known mixture, found by the defender oracle (rows not in the initial game)
    got = {tuple(sorted(_levers_of(res, n).items())): w for n, w in res.defense().items()}
    want = {tuple(sorted(target.lever_values(menu[n]).items())): w
            for n, w in truth["mix"].items()}
    assert set(got) == set(want)
    for k, w in want.items():
        assert got[k] == pytest.approx(w, abs=0.05)
    # the one-shot prescription's regret: exact = its worst case - the game value
    i_eng = list(menu).index("n_image=0.5 b_text=0.5")
    exact = truth["A"][i_eng].max() - truth["value"]
    eng = res.score("engine prescription")
    assert eng.regret == pytest.approx(exact, abs=0.06)
    assert eng.regret_lo > 0 and eng.regret_lo - 0.01 <= exact <= eng.regret_hi + 0.01
    none = res.score("no defense")
    assert none.regret_lo > 1.0  # no defense loses > 1 bit to the validated mixture
    # exploitability trace: the last step's gains are inside their paired CI
    last = res.trace[-1]
    assert last.gain_att_lo <= 0 and last.gain_def_lo <= 0
    assert set(res.to_dict()) >= {"defense", "value", "trace", "table", "scores"}


def test_without_defender_oracle_the_restricted_game_stays_worse(target, truth):
    # the check above can fail: without the defender oracle the mixture is out of reach
    menu = truth["menu"]
    rows = [("no defense", menu["no defense"], "menu"),
            ("engine prescription", target.realise({"n_image": 0.5, "b_text": 0.5}), "engine")]
    res = solve_empirical(target, rows, power=P, grid=GRID, row_grid=2, max_iter=3)
    assert res.value > truth["value"] + 0.4


def test_menu_rows_and_utility_price(target, truth):
    menu = truth["menu"]
    rows = [(n, k, "menu") for n, k in menu.items()]
    res = solve_empirical(target, rows, power=P, grid=GRID, row_grid=2, max_iter=4)
    assert res.value == pytest.approx(truth["value"], abs=0.04)
    # a huge price on lost clean accuracy makes "no defense" (cost 0) the defense
    priced = solve_empirical(target, rows, power=P, grid=4, row_grid=1, max_iter=2,
                             utility_price=1e3)
    assert priced.defense() == {"no defense": pytest.approx(1.0)}
    # a clean-accuracy constraint keeps excluded rows in the table, out of the game
    tight = solve_empirical(target, rows, power=P, grid=4, row_grid=1, max_iter=2,
                            max_clean_drop=0.1)
    out = [r.name for r in tight.rows if not r.in_game]
    assert out and all(tight.x[i] == 0 for i, r in enumerate(tight.rows) if not r.in_game)


def test_split_grid_always_contains_predicted_split():
    g = split_grid(("image", "text"), 4, [{"image": 0.37, "text": 0.63}])
    assert len(g) == 6 and any(abs(s["image"] - 0.37) < 1e-12 for s in g)
    assert all(abs(sum(s.values()) - 1) < 1e-12 for s in g)
    assert len(split_grid(("a", "b", "c"), 2)) == 6


def test_bits_bounded_and_paired_difference_narrower():
    rng = np.random.default_rng(0)
    k, u = 10, 60
    sent = np.tile(np.arange(k), (u, 1))
    w = bootstrap_weights(u, 300, 0)
    indep = outcome_bits(Outcome(sent, rng.integers(0, k, sent.shape), k), w)
    exact = outcome_bits(Outcome(sent, sent, k), w)
    assert 0.0 <= indep.lo <= indep.bits <= indep.hi <= max_bits(k)
    assert indep.bits >= 0 and exact.hi <= max_bits(k) + 1e-12 and exact.bits == max_bits(k)
    # two conditions that share most answers: the paired CI of the difference is far narrower
    base = np.where(rng.random(sent.shape) < 0.6, sent, rng.integers(0, k, sent.shape))
    alt = np.where(rng.random(sent.shape) < 0.1, rng.integers(0, k, sent.shape), base)
    a, b = outcome_bits(Outcome(sent, base, k), w), outcome_bits(Outcome(sent, alt, k), w)
    d = paired_difference(a, b)
    assert d.diff == pytest.approx(a.bits - b.bits)
    assert d.hi - d.lo < 0.5 * ((a.hi - a.lo) + (b.hi - b.lo))
    with pytest.raises(ValueError, match="equal shapes"):
        paired_difference(a, Bits(b.bits, b.lo, b.hi, b.boot[:10]))
