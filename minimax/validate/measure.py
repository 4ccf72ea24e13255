"""Mutual information of a discrete channel from samples, in bits per query.

For paired samples ``(x_j, y_j)`` over ``K`` symbols the plug-in estimate
``I = H(X) + H(Y) - H(X, Y)`` is biased upward by roughly ``(K-1)^2 / (2 n ln 2)`` bits
for independent variables.  We use the Miller–Madow correction on each entropy,
``H_MM = H_plugin + (m - 1) / (2 n ln 2)`` with ``m`` the number of occupied cells, so
``I_MM = I_plugin + (m_X + m_Y - m_XY - 1) / (2 n ln 2)`` (Miller 1955; Paninski 2003,
"Estimation of entropy and mutual information", Neural Computation 15:1191).

Confidence intervals are percentile bootstrap intervals over *units* (images): an image
attacked toward all ten targets contributes ten correlated pairs, so whole images are
resampled together.  Resampling with replacement duplicates units, which makes the
replicates' mutual information larger than the sample's (about 0.13 bits at 500 pairs for
a 10-class channel); the replicates are therefore centred on the estimate (shifted by
``mean(replicates) - estimate``) before taking percentiles, a bias-corrected percentile
interval.

* legitimate capacity: ``I(Y; Y_hat)``, true class vs prediction on clean inputs;
* adversarial capacity: ``I(T; Y_hat)``, the attacker's uniformly drawn target vs the
  prediction under the targeted attack.

Both are at most ``log2(K)`` bits (3.32 bits for ten digits).

**Bounds.**  The Miller–Madow estimate can fall below 0 (independent variables) or above
``log2 K`` (a saturated channel plus the correction); mutual information cannot, so every
reported estimate and interval end is clipped into ``[0, log2 K]``.

**Paired comparisons.**  Two conditions measured on the same units (the same images, the
same attack seeds) are compared through one bootstrap: the same resampled units feed both
estimates, and the interval is that of the difference (a paired bootstrap), which is much
narrower than what overlapping marginal intervals suggest.  :func:`bootstrap_weights`
draws the resampling once (multinomial unit counts) and :func:`boot_bits` applies it to
any number of conditions.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from minimax.serial import namedtuple_to_dict

LN2 = np.log(2.0)


def _entropy_mm(counts: np.ndarray) -> float:
    n = counts.sum()
    p = counts[counts > 0] / n
    return float(-(p * np.log2(p)).sum() + (len(p) - 1) / (2 * n * LN2))


def mutual_information(x: np.ndarray, y: np.ndarray, k: int, correct: bool = True) -> float:
    """Miller–Madow (``correct=True``) or plug-in estimate of ``I(X; Y)`` in bits.

    ``x`` and ``y`` are integer arrays of equal length with values in ``0..k-1``.

    >>> round(mutual_information(np.arange(4) % 2, np.arange(4) % 2, 2, correct=False), 3)
    1.0
    """
    x = np.asarray(x).ravel()
    y = np.asarray(y).ravel()
    if x.shape != y.shape or x.size == 0:
        raise ValueError(f"x and y must be non-empty and of equal length, got {x.size}, {y.size}")
    joint = np.zeros((k, k))
    np.add.at(joint, (x, y), 1)
    if not correct:
        p = joint / joint.sum()
        px, py = p.sum(1, keepdims=True), p.sum(0, keepdims=True)
        nz = p > 0
        return float((p[nz] * np.log2(p[nz] / (px @ py)[nz])).sum())
    return _entropy_mm(joint.sum(1)) + _entropy_mm(joint.sum(0)) - _entropy_mm(joint.ravel())


def max_bits(k: int) -> float:
    """``log2 k``: the most bits one answer among ``k`` classes carries."""
    return float(np.log2(k))


def bounded(bits, k: int):
    """``bits`` clipped into ``[0, log2 k]`` (what mutual information can be)."""
    return np.clip(bits, 0.0, max_bits(k))


class MIEstimate(NamedTuple):
    bits: float       # Miller–Madow estimate clipped into [0, log2 K], bits per query
    lo: float         # bootstrap percentile lower bound, bits, in [0, log2 K]
    hi: float         # bootstrap percentile upper bound, bits, in [0, log2 K]
    n: int            # number of (x, y) pairs

    def to_dict(self) -> dict[str, Any]:
        """Plain Python of every field (docs/solution-concepts.md §2.10)."""
        return namedtuple_to_dict(self)


def mi_with_ci(x: np.ndarray, y: np.ndarray, k: int, n_boot: int = 200, level: float = 0.95,
               seed: int = 0) -> MIEstimate:
    """MI with a bootstrap CI; rows of 2-D ``x``/``y`` (one row per image) resample together."""
    x2 = np.atleast_2d(np.asarray(x).T).T if np.ndim(x) == 1 else np.asarray(x)
    y2 = np.atleast_2d(np.asarray(y).T).T if np.ndim(y) == 1 else np.asarray(y)
    est = mutual_information(x2, y2, k)
    rng = np.random.default_rng(seed)
    boots = np.empty(n_boot)
    for i in range(n_boot):
        idx = rng.integers(0, len(x2), len(x2))
        boots[i] = mutual_information(x2[idx], y2[idx], k)
    q = (1 - level) / 2
    lo, hi = np.quantile(bounded(boots - boots.mean() + est, k), [q, 1 - q])
    return MIEstimate(float(bounded(est, k)), float(lo), float(hi), int(x2.size))


def symmetric_channel_mi(k: int, error: float) -> float:
    """Closed form: ``log2 k - H_b(e) - e log2(k - 1)`` bits for the k-ary symmetric channel."""
    h = 0.0 if error in (0.0, 1.0) else -error * np.log2(error) - (1 - error) * np.log2(1 - error)
    return float(np.log2(k) - h - error * np.log2(k - 1))


# ---------------------------------------------------------------- paired bootstrap


def unit_counts(sent: np.ndarray, answers: np.ndarray, k: int) -> np.ndarray:
    """Joint counts per unit, ``(units, k * k)``: row ``u`` counts pairs ``(sent, answer)``."""
    s, a = np.asarray(sent), np.asarray(answers)
    if s.ndim != 2 or s.shape != a.shape or s.size == 0:
        raise ValueError(f"sent and answers must be equal, non-empty (units, queries) arrays; "
                         f"got shapes {s.shape} and {a.shape}")
    if s.min() < 0 or a.min() < 0 or s.max() >= k or a.max() >= k:
        raise ValueError(f"sent and answers must lie in [0, {k}); got ranges "
                         f"[{s.min()}, {s.max()}] and [{a.min()}, {a.max()}]")
    flat = s * k + a
    out = np.zeros((s.shape[0], k * k))
    np.add.at(out, (np.repeat(np.arange(s.shape[0]), s.shape[1]), flat.ravel()), 1.0)
    return out


def _h_mm(counts: np.ndarray) -> np.ndarray:
    """Miller–Madow entropy (bits) of each row of a count array ``(..., m)``."""
    n = counts.sum(-1, keepdims=True)
    p = np.where(counts > 0, counts / np.maximum(n, 1e-300), 1.0)
    occupied = (counts > 0).sum(-1)
    return -(counts / np.maximum(n, 1e-300) * np.log2(p)).sum(-1) + (occupied - 1) / (
        2 * n[..., 0] * LN2)


def mi_from_counts(joint: np.ndarray, k: int) -> np.ndarray:
    """Miller–Madow ``I(X; Y)`` (bits, unclipped) of joint counts ``(..., k * k)``."""
    j = np.asarray(joint, float).reshape(*np.shape(joint)[:-1], k, k)
    return _h_mm(j.sum(-1)) + _h_mm(j.sum(-2)) - _h_mm(j.reshape(*j.shape[:-2], k * k))


def bootstrap_weights(n_units: int, n_boot: int, seed: int = 0) -> np.ndarray:
    """How often each unit is drawn in each bootstrap replicate, ``(n_boot, n_units)``.

    Use one array for every condition measured on the same units: that pairs them.
    """
    if n_units < 1 or n_boot < 1:
        raise ValueError(f"n_units and n_boot must be >= 1; got {n_units}, {n_boot}")
    rng = np.random.default_rng(seed)
    return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=n_boot).astype(float)


def boot_bits(counts: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Bias-centred bootstrap replicates of the bounded MI of one condition, ``(n_boot,)``.

    Replicates are shifted so their mean is the sample estimate (see the module docstring).
    """
    if weights.shape[1] != counts.shape[0]:
        raise ValueError(f"weights cover {weights.shape[1]} units but the condition has "
                         f"{counts.shape[0]}; measure paired conditions on the same units")
    raw = mi_from_counts(weights @ counts, k)
    return bounded(raw - raw.mean() + mi_from_counts(counts.sum(0), k), k)


class Bits(NamedTuple):
    """One measured condition: bounded bits with a percentile CI and its replicates."""

    bits: float          # Miller–Madow estimate clipped into [0, log2 K], bits per query
    lo: float            # bootstrap percentile lower bound, bits
    hi: float            # bootstrap percentile upper bound, bits
    boot: np.ndarray     # (n_boot,) replicates, paired with every condition sharing weights

    def to_dict(self) -> dict[str, Any]:
        """Plain Python of every field (docs/solution-concepts.md §2.10)."""
        return namedtuple_to_dict(self)


def _ci(boot: np.ndarray, level: float) -> tuple[float, float]:
    q = (1 - level) / 2
    lo, hi = np.quantile(boot, [q, 1 - q])
    return float(lo), float(hi)


def outcome_bits(outcome, weights: np.ndarray, level: float = 0.95) -> Bits:
    """Bits of a target :class:`~minimax.validate.target.Outcome` with a paired-bootstrap CI.

    ``weights`` from :func:`bootstrap_weights` over the outcome's units.  An outcome with
    ``parts`` (a combined system's independent flows on composite units,
    :class:`~minimax.validate.targets.combined.CombinedOutcome`) has the sum of its parts'
    bits, replicate by replicate under the same weights (docs/validation.md §5.8).
    """
    parts = getattr(outcome, "parts", None)
    if parts is not None:
        each = [outcome_bits(p, weights, level) for p in parts]
        boot = np.sum([b.boot for b in each], 0)
        return Bits(float(sum(b.bits for b in each)), *_ci(boot, level), boot)
    k = int(outcome.n_classes)
    c = unit_counts(outcome.sent, outcome.answers, k)
    est = float(bounded(mi_from_counts(c.sum(0), k), k))
    boot = boot_bits(c, weights, k)
    return Bits(est, *_ci(boot, level), boot)


class Difference(NamedTuple):
    """A paired difference ``a - b`` of two measurements on the same units, bits."""

    diff: float   # point estimate a - b
    lo: float     # paired-bootstrap percentile lower bound
    hi: float     # paired-bootstrap percentile upper bound

    def to_dict(self) -> dict[str, Any]:
        """Plain Python of every field (docs/solution-concepts.md §2.10)."""
        return namedtuple_to_dict(self)


def paired_difference(a: Bits | tuple, b: Bits | tuple, level: float = 0.95) -> Difference:
    """``a - b`` with the percentile CI of the replicate-wise differences (paired bootstrap).

    ``a`` and ``b`` are ``(estimate, replicates)`` pairs (or :class:`Bits`) whose replicates
    were drawn with the same :func:`bootstrap_weights`.
    """
    ea, ba = (a.bits, a.boot) if isinstance(a, Bits) else a
    eb, bb = (b.bits, b.boot) if isinstance(b, Bits) else b
    ba, bb = np.asarray(ba), np.asarray(bb)
    if ba.shape != bb.shape:
        raise ValueError(f"paired replicates must have equal shapes; got {ba.shape}, {bb.shape}")
    return Difference(float(ea - eb), *_ci(ba - bb, level))
