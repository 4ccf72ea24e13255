"""Runtime circuit breaker: a CUSUM test that trips when the adversarial rate crosses a threshold.

Each query yields an observation x_t: an estimate of the adversarial rate (a detector flag or
score in [0, 1], ``model="bernoulli"``) or of the attacker's power / SNR per query
(``model="gaussian"``, sub-Gaussian noise of scale ``sigma``). Benign traffic has mean
``benign_rate`` = mu0; the breaker must trip once the mean reaches ``threshold_rate`` = theta
(e.g. the self-destruction threshold P* of :func:`self_destruction_threshold`).

The log-likelihood-ratio increment of an alternative mean theta1 against mu0 is

* bernoulli: ``l(x) = x log(theta1/mu0) + (1 - x) log((1 - theta1)/(1 - mu0))``;
* gaussian:  ``l(x) = lam (x - mu0) - lam^2 sigma^2 / 2`` with ``lam = (theta1 - mu0)/sigma^2``.

Its drift ``D(r) = E l(x)`` under mean r is increasing in r and vanishes at one *indifference
rate* between mu0 and theta1. By default theta1 (``alternative_rate``) is chosen so that the
indifference rate *is* the threshold: gaussian ``theta1 = 2 theta - mu0``; bernoulli the root of
``D(theta) = 0`` in (theta, 1). Then the statistic drifts down below the threshold and up above
it, so the breaker trips (almost surely) exactly when the mean crosses the threshold; passing
``alternative_rate = threshold_rate`` gives the classical CUSUM tuned to detect theta itself,
which also trips (slowly) on means between the indifference rate and theta.

Page's CUSUM ``W_t = max(0, W_{t-1} + l(x_t))`` (``W_0 = 0``) trips when ``W_t >= c``
(Page 1954, "Continuous inspection schemes", Biometrika 41).

**False-trip bound (stated precisely).** Suppose that on benign traffic every observation,
conditionally on the past, has mean <= mu0 and is in [0, 1] (bernoulli model) or satisfies
``E[exp(lam (x - mu0))] <= exp(lam^2 sigma^2 / 2)`` for every lam >= 0 (gaussian model: e.g.
N(mu, sigma^2) with mu <= mu0, or any law on an interval of length 2 sigma by Hoeffding's
lemma). Then ``M_t = exp(sum_{j<=t} l(x_j))`` is a non-negative supermartingale (bernoulli: exp(l)
is convex in x on [0, 1], so for mean mu <= mu0
``E exp(l(x)) <= (1 - mu)(1 - theta1)/(1 - mu0) + mu theta1/mu0 <= 1``), and

    P(the breaker trips within the first H observations) <= H exp(-c)             (*)

because a trip at t <= H means ``S_t - S_s >= c`` for some start s < H (S = partial sums of
l), Ville's inequality bounds each start's probability by ``exp(-c)``, and a union bound over the
H starts gives (*). The breaker sets ``c = log(H / delta)`` so that (*) reads ``<= delta``
(``horizon`` = H, ``false_trip_bound`` = delta). Restarting the same argument after every
return of W to 0 gives Lorden's bound on the mean time to a false trip,
``E_benign[T] >= exp(c) = H / delta`` (Lorden 1971, Ann. Math. Statist. 42). (*) holds for
every theta1 > mu0, so it does not depend on the choice of the alternative.

**Detection delay.** For a mean r above the indifference rate the breaker trips after about
``c / D(r)`` observations (Wald's approximation, overshoot ignored):
:meth:`CircuitBreaker.expected_delay`; just above the threshold the drift is small and the delay
long. Means between mu0 and the threshold are not covered by the false-trip bound (which is
for means <= mu0); with the default alternative they have negative drift, so trips there are
rare but not bounded by (*).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from minimax.errors import GameSpecError

MODELS = ("bernoulli", "gaussian")


class CircuitBreaker:
    """Sequential (CUSUM) circuit breaker with a false-trip bound on benign traffic.

    ``update(x)`` consumes one observation and returns whether the breaker is tripped (it
    stays tripped until :meth:`reset`). :meth:`first_trip` runs many streams at once (numpy).

    >>> cb = CircuitBreaker(threshold_rate=0.2, benign_rate=0.01, false_trip_bound=0.01,
    ...                     horizon=1000)
    >>> round(cb.critical_value, 4)  # log(1000 / 0.01)
    11.5129
    >>> any(cb.update(1.0) for _ in range(5))  # five flagged queries in a row trip it
    True
    """

    def __init__(self, threshold_rate: float, benign_rate: float, *, model: str = "bernoulli",
                 sigma: float | None = None, false_trip_bound: float = 0.01,
                 horizon: int = 10_000, alternative_rate: float | None = None) -> None:
        if model not in MODELS:
            raise GameSpecError(f"CircuitBreaker.model: got {model!r}; expected one of {MODELS}")
        theta, mu0 = float(threshold_rate), float(benign_rate)
        if not (math.isfinite(theta) and math.isfinite(mu0) and theta > mu0):
            raise GameSpecError(f"CircuitBreaker: threshold_rate={theta!r} must be finite and > "
                                f"benign_rate={mu0!r}")
        if model == "bernoulli" and not (0.0 < mu0 < theta < 1.0):
            raise GameSpecError(f"CircuitBreaker (bernoulli): rates must satisfy 0 < "
                                f"benign_rate < threshold_rate < 1, got {mu0!r}, {theta!r}; use "
                                f"model='gaussian' for unbounded observations")
        if model == "gaussian" and (sigma is None or not (math.isfinite(sigma) and sigma > 0)):
            raise GameSpecError(f"CircuitBreaker.sigma: got {sigma!r}; the gaussian model needs "
                                f"the sub-Gaussian scale of benign observations (> 0)")
        if not (0.0 < false_trip_bound < 1.0):
            raise GameSpecError(f"CircuitBreaker.false_trip_bound: got {false_trip_bound!r}; "
                                f"expected a probability in (0, 1)")
        if int(horizon) < 1:
            raise GameSpecError(f"CircuitBreaker.horizon: got {horizon!r}; expected >= 1")
        self.threshold_rate, self.benign_rate = theta, mu0
        self.model, self.sigma = model, sigma
        if alternative_rate is None:
            alternative_rate = _default_alternative(model, theta, mu0)
        alt = float(alternative_rate)
        if not (alt >= theta and (model == "gaussian" or alt < 1.0)):
            raise GameSpecError(f"CircuitBreaker.alternative_rate: got {alt!r}; expected >= "
                                f"threshold_rate={theta!r} (and < 1 for bernoulli)")
        self.alternative_rate = alt
        self.false_trip_bound, self.horizon = float(false_trip_bound), int(horizon)
        self.critical_value = math.log(self.horizon / self.false_trip_bound)  # c
        self.reset()

    @classmethod
    def from_threshold(cls, threshold: Any, benign_power: float, sigma: float,
                       **kwargs: Any) -> CircuitBreaker:
        """A gaussian-model breaker on per-query attacker-power estimates that trips at the
        certified lower end of a :class:`ThresholdResult` bracket (the earliest power that may
        already be beyond P*)."""
        return cls(threshold_rate=threshold.lower, benign_rate=benign_power, model="gaussian",
                   sigma=sigma, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """The breaker's settings and its streaming state, JSON-serialisable;
        :meth:`from_dict` rebuilds an identical breaker."""
        return {"threshold_rate": self.threshold_rate, "benign_rate": self.benign_rate,
                "model": self.model, "sigma": self.sigma,
                "false_trip_bound": self.false_trip_bound, "horizon": self.horizon,
                "alternative_rate": self.alternative_rate,
                "critical_value": self.critical_value, "statistic": self.statistic,
                "count": self.count, "tripped": self.tripped, "trip_time": self.trip_time}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CircuitBreaker:
        """The breaker of a :meth:`to_dict` dict, settings re-checked, state restored."""
        cb = cls(d["threshold_rate"], d["benign_rate"], model=d["model"], sigma=d["sigma"],
                 false_trip_bound=d["false_trip_bound"], horizon=d["horizon"],
                 alternative_rate=d["alternative_rate"])
        cb.statistic, cb.count = float(d["statistic"]), int(d["count"])
        cb.tripped, cb.trip_time = bool(d["tripped"]), d["trip_time"]
        return cb

    # ----------------------------------------------------------------- statistic
    def increment(self, x):
        """Log-likelihood-ratio increment l(x) (elementwise, numpy)."""
        x = np.asarray(x, dtype=float)
        theta, mu0 = self.alternative_rate, self.benign_rate
        if self.model == "bernoulli":
            if np.any((x < 0) | (x > 1)) or np.any(np.isnan(x)):
                raise GameSpecError("CircuitBreaker.update: bernoulli observations must lie in "
                                    "[0, 1] (rates, flags or scores)")
            return x * math.log(theta / mu0) + (1 - x) * math.log((1 - theta) / (1 - mu0))
        lam = (theta - mu0) / self.sigma**2
        return lam * (x - mu0) - 0.5 * lam**2 * self.sigma**2

    def drift(self, rate: float) -> float:
        """E l(x) when observations have mean ``rate`` (> 0 above a point between mu0 and theta)."""
        if self.model == "gaussian":
            return float(self.increment(rate))
        return _bernoulli_drift(rate, self.alternative_rate, self.benign_rate)

    @property
    def indifference_rate(self) -> float:
        """The mean r0 in (mu0, theta1) at which the drift D(r0) = 0 (= threshold by default)."""
        theta, mu0 = self.alternative_rate, self.benign_rate
        if self.model == "gaussian":
            return 0.5 * (theta + mu0)
        up, down = math.log(theta / mu0), math.log((1 - mu0) / (1 - theta))
        return down / (up + down)

    def expected_delay(self, rate: float) -> float:
        """Wald's approximation c / D(rate) of the detection delay (observations); inf if D <= 0."""
        d = self.drift(rate)
        return self.critical_value / d if d > 0 else math.inf

    # ----------------------------------------------------------------- streaming
    def reset(self) -> None:
        """Back to W = 0, not tripped."""
        self.statistic = 0.0  # W_t (nats)
        self.count = 0  # observations consumed
        self.tripped = False
        self.trip_time: int | None = None  # 1-based index of the tripping observation

    def update(self, observation: float) -> bool:
        """Consume one observation; return True once the breaker has tripped."""
        self.count += 1
        if not self.tripped:
            self.statistic = max(0.0, self.statistic + float(self.increment(observation)))
            if self.statistic >= self.critical_value:
                self.tripped, self.trip_time = True, self.count
        return self.tripped

    def first_trip(self, observations) -> np.ndarray:
        """Vectorised: 0-based index of the tripping observation of each stream, -1 if none.

        ``observations`` has shape (..., T); uses ``W_t = S_t - min_{0 <= s <= t} S_s``.
        """
        inc = self.increment(observations)
        s = np.cumsum(inc, axis=-1)
        floor = np.minimum(np.minimum.accumulate(s, axis=-1), 0.0)
        hit = (s - floor) >= self.critical_value
        first = np.argmax(hit, axis=-1)
        return np.where(hit.any(axis=-1), first, -1)


def _bernoulli_drift(rate: float, alt: float, mu0: float) -> float:
    return rate * math.log(alt / mu0) + (1 - rate) * math.log((1 - alt) / (1 - mu0))


def _default_alternative(model: str, theta: float, mu0: float) -> float:
    """theta1 whose indifference rate is theta (drift D(theta) = 0)."""
    if model == "gaussian":
        return 2.0 * theta - mu0
    # D(theta; theta1) is 0 at theta1 = theta1*, > 0 below it, -> -inf as theta1 -> 1
    lo, hi = theta, 1.0 - 1e-15
    if _bernoulli_drift(theta, hi, mu0) >= 0:
        raise GameSpecError(f"CircuitBreaker: no bernoulli alternative < 1 has indifference rate "
                            f"{theta}; pass alternative_rate explicitly")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if _bernoulli_drift(theta, mid, mu0) > 0 else (lo, mid)
    return 0.5 * (lo + hi)
