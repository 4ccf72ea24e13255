"""The rank-correlation ceiling of noisy measured worst cases (docs/validation.md §5.6)."""

import numpy as np
import pytest
from scipy.stats import norm

from minimax.validate.calibrate import rank_ceiling


def test_two_rows_match_the_closed_form():
    # Spearman of two points is +1 if the noisy pair keeps its order, else -1:
    # E = 1 - 2 P(swap) = 1 - 2 Phi(-d / (sd sqrt 2)).
    d, sd = 0.2, 0.15
    half = sd * norm.ppf(0.975)
    got = rank_ceiling([0.0, d], [-half, d - half], [half, d + half], draws=40000, seed=1)
    want = 1 - 2 * norm.cdf(-d / (sd * np.sqrt(2)))
    assert got == pytest.approx(want, abs=0.02)


def test_exact_measurements_rank_perfectly_and_noise_lowers_the_ceiling():
    w = np.linspace(2.5, 3.3, 9)
    assert rank_ceiling(w, w, w) == pytest.approx(1.0, abs=1e-12)
    narrow = rank_ceiling(w, w - 0.05, w + 0.05)
    wide = rank_ceiling(w, w - 0.5, w + 0.5)
    assert 1.0 > narrow > wide > 0.0


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="hi < lo"):
        rank_ceiling([1.0, 2.0], [1.0, 2.0], [0.5, 2.5])
    with pytest.raises(ValueError, match="lo has shape"):
        rank_ceiling([1.0, 2.0], [1.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="level"):
        rank_ceiling([1.0, 2.0], [1.0, 2.0], [1.0, 2.0], level=1.5)


def test_a_runs_ceiling_uses_its_budget_matched_rows_only():
    from minimax.validate.report import allocation_ceiling

    d, sd = 0.3, 0.1
    half = sd * norm.ppf(0.975)
    scores = [{"name": "no defense", "worst": 9.0, "worst_lo": 0.0, "worst_hi": 99.0},
              {"name": "a", "worst": 1.0, "worst_lo": 1.0 - half, "worst_hi": 1.0 + half},
              {"name": "b", "worst": 1.0 + d, "worst_lo": 1.0 + d - half,
               "worst_hi": 1.0 + d + half}]
    run = {"game": {"scores": scores},
           "decision": {"allocations": [{"allocation": "a"}, {"allocation": "b"}]}}
    want = 1 - 2 * norm.cdf(-d / (sd * np.sqrt(2)))
    assert allocation_ceiling(run) == pytest.approx(want, abs=0.03)
    run["decision"]["allocations"].append({"allocation": "missing"})
    assert allocation_ceiling(run) is None
