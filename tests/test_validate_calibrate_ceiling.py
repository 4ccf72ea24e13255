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
