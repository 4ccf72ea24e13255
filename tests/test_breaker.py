"""Circuit breaker: measured false-trip rate within the stated bound, measured delays."""

from __future__ import annotations

import math

import numpy as np
import pytest

from minimax import GameSpecError
from minimax.analysis import CircuitBreaker

STREAMS = 10_000


def test_bernoulli_false_trip_rate_within_bound_on_10000_benign_streams():
    cb = CircuitBreaker(threshold_rate=0.05, benign_rate=0.01, false_trip_bound=0.05, horizon=1000)
    assert cb.critical_value == pytest.approx(math.log(1000 / 0.05))
    rng = np.random.default_rng(1)
    flags = (rng.random((STREAMS, cb.horizon)) < cb.benign_rate).astype(np.float64)
    rate = float(np.mean(cb.first_trip(flags) >= 0))
    # the bound is H e^{-c} = delta; 3 binomial s.d. of slack for the finite sample
    assert rate <= cb.false_trip_bound + 3 * math.sqrt(0.05 * 0.95 / STREAMS)
    print(f"bernoulli benign false-trip rate {rate:.4f} <= bound {cb.false_trip_bound}")


def test_gaussian_false_trip_bound_with_worst_case_mean_and_short_horizon():
    # benign mean exactly at mu0 (the worst case allowed) and a loose bound delta = 0.5
    cb = CircuitBreaker(
        threshold_rate=1.0,
        benign_rate=0.0,
        model="gaussian",
        sigma=1.0,
        false_trip_bound=0.5,
        horizon=50,
    )
    rng = np.random.default_rng(2)
    rate = float(np.mean(cb.first_trip(rng.normal(0.0, 1.0, (STREAMS, 50))) >= 0))
    assert rate <= 0.5 + 3 * math.sqrt(0.25 / STREAMS)


def _delay_bracket(cb, mu0, rate):
    """Rigorous bounds on the mean detection delay of a sudden change from ``mu0`` to ``rate``,
    derived here from the log-likelihood-ratio walk (not from the breaker's own formulas).

    Increments: ``up = log(theta1/mu0)`` on a flag, ``down = log((1-theta1)/(1-mu0))`` else;
    drift ``D(r) = r up + (1-r) down``, variance ``r(1-r)(up-down)^2``. After the change
    ``W_t >= S'_t`` (the walk since the change), so the delay is at most the first passage of
    S' over c, whose mean is ``E[S'_tau]/D <= (c + up)/D`` (Wald's identity; the overshoot is
    below one up-step). And ``W_T <= W_onset + S'_T + M`` with ``M = -min_k S'_k``, so
    ``E[T] >= (c - E[W_onset] - E[M])/D``, where Kingman's bound on the supremum of a random walk
    with drift -|D| gives ``E[M] <= var/(2D)`` and ``E[W_onset] <= var0/(2|D0|)``.
    """
    theta1 = cb.alternative_rate
    up, down = math.log(theta1 / mu0), math.log((1 - theta1) / (1 - mu0))
    drift = lambda r: r * up + (1 - r) * down  # noqa: E731
    var = lambda r: r * (1 - r) * (up - down) ** 2  # noqa: E731
    c = math.log(cb.horizon / cb.false_trip_bound)
    d1, d0 = drift(rate), drift(mu0)
    assert d1 > 0 > d0
    lower = (c - var(mu0) / (2 * -d0) - var(rate) / (2 * d1)) / d1 - 1.0
    upper = (c + up) / d1
    return lower, upper, c / d1


def test_detection_delay_sudden_and_ramp():
    cb = CircuitBreaker(threshold_rate=0.05, benign_rate=0.01, false_trip_bound=0.05, horizon=1000)
    rng = np.random.default_rng(3)
    t, onset = 1500, 200
    # default alternative: the drift vanishes exactly at the threshold
    theta1 = cb.alternative_rate
    d_at = 0.05 * math.log(theta1 / 0.01) + 0.95 * math.log((1 - theta1) / 0.99)
    assert abs(d_at) < 1e-12
    assert cb.indifference_rate == pytest.approx(0.05, rel=1e-9)
    assert cb.drift(0.049) < 0 < cb.drift(0.051)
    for attack in (0.08, 0.12):
        p = np.where(np.arange(t) < onset, 0.01, attack)
        trips = cb.first_trip((rng.random((2000, t)) < p).astype(np.float64))
        assert np.all(trips >= 0)
        delays = trips - onset
        delay = float(np.mean(delays))
        lower, upper, wald = _delay_bracket(cb, 0.01, attack)
        se = float(np.std(delays)) / math.sqrt(delays.size)
        print(f"sudden attack rate {attack}: mean delay {delay:.1f} +- {se:.1f}, bracket "
              f"[{lower:.1f}, {upper:.1f}], Wald c/D {wald:.1f}")
        assert lower - 4 * se <= delay <= upper + 4 * se
        # the breaker's Wald figure is the same c / D, and lies inside the rigorous bracket
        assert cb.expected_delay(attack) == pytest.approx(wald, rel=1e-12)
        assert lower <= wald <= upper
    # slow ramp 0.01 -> 0.15: trips after the rate crosses the threshold
    ramp = 0.01 + 0.14 * np.arange(t) / t
    cross = int(np.argmax(ramp >= 0.05))
    trips = cb.first_trip((rng.random((2000, t)) < ramp).astype(np.float64))
    assert np.mean(trips >= 0) > 0.99
    early = float(np.mean((trips >= 0) & (trips < cross)))
    # near the threshold the drift is ~0, so a random walk can reach c slightly early: the
    # median trip is after the crossing and 99% of trips happen above twice the benign rate
    assert np.median(trips) > cross
    assert ramp[int(np.quantile(trips, 0.01))] > 2 * cb.benign_rate
    print(
        f"ramp: crosses theta at {cross}; trip median {np.median(trips):.0f}, mean delay "
        f"{np.mean(trips - cross):.1f}, tripped before crossing {early:.4f}"
    )


def test_classical_alternative_trips_in_the_grey_zone():
    """With alternative_rate = threshold the indifference rate lies below the threshold."""
    cb = CircuitBreaker(threshold_rate=0.05, benign_rate=0.01, alternative_rate=0.05)
    r0 = cb.indifference_rate
    assert 0.01 < r0 < 0.05 and abs(cb.drift(r0)) < 1e-12


def test_streaming_update_matches_vectorised_and_stays_tripped():
    cb = CircuitBreaker(threshold_rate=0.3, benign_rate=0.05, false_trip_bound=0.01, horizon=200)
    rng = np.random.default_rng(4)
    x = (rng.random(400) < np.where(np.arange(400) < 100, 0.05, 0.5)).astype(float)
    states = [cb.update(v) for v in x]
    first = int(cb.first_trip(x))
    assert first >= 0 and cb.trip_time == first + 1
    assert not any(states[:first]) and all(states[first:])
    cb.reset()
    assert not cb.tripped and cb.statistic == 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(threshold_rate=0.01, benign_rate=0.05),
        dict(threshold_rate=1.5, benign_rate=0.5),
        dict(threshold_rate=2.0, benign_rate=1.0, model="gaussian"),
        dict(threshold_rate=0.5, benign_rate=0.1, false_trip_bound=1.5),
    ],
)
def test_invalid_parameters_raise(kwargs):
    with pytest.raises(GameSpecError):
        CircuitBreaker(**kwargs)
