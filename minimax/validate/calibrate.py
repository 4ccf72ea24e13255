"""Fit the game's channel parameters to measured bits, and predict unseen conditions.

Channel model (docs/model.md §1, ``effect="exp"``), per channel ``c`` at lever levels
``(n, s, b)`` and attacker power ``a``:

    C_adv = B exp(-gamma b) log2(1 + a exp(-alpha n) / (N + (1 + beta s) S))
    C_leg = B exp(-rho gamma b) log2(1 + (1 + beta s) S / N)

**Saturation.**  A 10-way classifier carries at most ``I_max = log2 10 = 3.32`` bits per
query, Shannon–Hartley channels do not saturate.  We keep the game's channels as they
are (uncapped, in "raw" bits) and put one fixed, monotone output link between the summed
raw capacity of all channels feeding one prediction and the measured mutual information:

    I_measured = I_max (1 - exp(-(C_total / I_max)^q))

saturating at ``I_max``; the shape ``q > 0`` is fitted with the image channel (``q = 1``:
slope 1 at zero; ``q > 1``: a dead zone at low power, which is what targeted attacks on a
classifier with a margin show — the attacker must first overcome the margin before any
bit gets through).  The fit minimises the
squared error in *measured* bits, so saturated points neither blow up nor dominate, and
joint image+text attacks are predicted by ``link(C_image + C_text)``.  Because the link
is increasing, the attacker's best response and the defender's minimax under the link
are those of the uncapped game, so :func:`minimax.solve` on the calibrated channels gives
the right allocation; only the reported values need the link.

Identifiability: ``B`` and ``m0 = N + S`` come from the undefended adversarial curve,
``S/N`` from the clean (legitimate) information of the image channel, ``alpha``,
``beta``, ``gamma`` from one or two intensities of each lever, ``rho`` from the clean
information under the pixel mask.  The text channel has no legitimate measurement of
its own (legitimate queries carry no untrusted suffix), so its ``S/N`` is set to the
image channel's and ``rho_text = 0``; only ``N + (1 + beta s) S`` matters at
``lambda = 0`` anyway.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import least_squares

IMAX = float(np.log2(10))
PARAMS = ("B", "S", "N", "alpha", "beta", "gamma", "rho")


def link(c, imax: float = IMAX, q: float = 1.0):
    """Measured bits from raw channel bits: ``imax (1 - exp(-(c / imax)^q))``."""
    return imax * (1.0 - np.exp(-(np.maximum(np.asarray(c, float), 0.0) / imax) ** q))


@dataclass
class Condition:
    label: str
    kind: str                      # "adv" (I(T; Y_hat)) or "leg" (I(Y; Y_hat))
    split: str                     # "calib" or "held"
    a: dict[str, float]            # attacker power per channel: {"image": ., "text": .}
    levers: dict[str, float]       # lever levels, keys like "n_image", "b_text"
    bits: float = float("nan")     # measured, bits per query
    lo: float = float("nan")
    hi: float = float("nan")
    extra: dict = field(default_factory=dict)


def raw_capacity(p: dict[str, float], a: float, n: float, s: float, b: float,
                 kind: str = "adv") -> float:
    """``C_adv`` or ``C_leg`` of one channel with parameters ``p`` (see module docstring)."""
    sig = 1.0 + p["beta"] * s
    if kind == "leg":
        return p["B"] * np.exp(-p["rho"] * p["gamma"] * b) * np.log2(1 + sig * p["S"] / p["N"])
    m = (p["N"] + sig * p["S"]) / np.exp(-p["alpha"] * n)
    return p["B"] * np.exp(-p["gamma"] * b) * np.log2(1 + a / m)


def predict(params: dict[str, dict[str, float]], cond: Condition) -> float:
    """Predicted measured bits for ``cond`` from calibrated ``params`` per channel."""
    q = params["image"].get("link_q", 1.0)
    if cond.kind == "leg":
        c = raw_capacity(params["image"], 0.0, *_lev(cond, "image"), kind="leg")
        return float(link(c, q=q))
    total = sum(raw_capacity(params[ch], cond.a.get(ch, 0.0), *_lev(cond, ch))
                for ch in params if cond.a.get(ch, 0.0) > 0)
    return float(link(total, q=q))


def _lev(cond: Condition, ch: str) -> tuple[float, float, float]:
    return tuple(cond.levers.get(f"{x}_{ch}", 0.0) for x in ("n", "s", "b"))


def _unpack(theta, free):
    p = dict(zip(free, np.exp(theta), strict=True))
    if "rho" in p:
        p["rho"] = float(p["rho"] / (1 + p["rho"]))  # squash to (0, 1)
    return p


def fit_channel(conds: list[Condition], channel: str, fixed: dict[str, float] | None = None,
                seed: int = 0, link_q: float | None = None,
                others: dict[str, dict[str, float]] | None = None
                ) -> tuple[dict[str, float], float]:
    """Least-squares fit of one channel's parameters on single-channel conditions.

    Returns the parameters and the RMS residual in bits.  ``fixed`` pins parameters that
    the data cannot identify (e.g. ``alpha`` of a channel with no noise lever).  The link
    shape is fitted too (returned as ``link_q``) unless ``link_q`` is given.  Conditions
    where ``channel`` acts jointly with channels in ``others`` (already calibrated, held
    fixed) are used as well: their raw capacities add before the link.
    """
    fixed = dict(fixed or {})
    if link_q is not None:
        fixed["link_q"] = float(link_q)
    others = others or {}

    def active(c):
        return {k for k, v in c.a.items() if v > 0}

    use = [c for c in conds if c.kind == "leg" and channel == "image"] + [
        c for c in conds if c.kind == "adv" and channel in active(c)
        and active(c) <= {channel, *others}
    ]
    offset = np.array([sum(raw_capacity(others[o], c.a[o], *_lev(c, o))
                           for o in active(c) - {channel}) if c.kind == "adv" else 0.0
                       for c in use])
    if not use:
        raise ValueError(f"no calibration conditions for channel {channel!r}")
    free = [k for k in (*PARAMS, "link_q") if k not in fixed]
    y = np.array([c.bits for c in use])

    def resid(theta):
        p = {**fixed, **_unpack(theta, free)}
        pr = [float(link(raw_capacity(p, c.a.get(channel, 0.0), *_lev(c, channel), c.kind)
                         + off, q=p["link_q"])) for c, off in zip(use, offset, strict=True)]
        return np.asarray(pr) - y

    rng = np.random.default_rng(seed)
    best = None
    for _ in range(8):
        x0 = np.log(np.array([{"B": 2.0, "S": 1.0, "N": 1.0, "alpha": 1.0, "beta": 0.5,
                                "gamma": 1.0, "rho": 0.5, "link_q": 1.0}[k] for k in free]))
        x0 = x0 + (rng.normal(0, 1.0, len(free)) if best is not None else 0)
        lo = np.array([np.log(0.2) if k == "link_q" else -12.0 for k in free])
        hi = np.array([np.log(10.0) if k == "link_q" else 8.0 for k in free])
        r = least_squares(resid, np.clip(x0, lo + 1e-6, hi - 1e-6), bounds=(lo, hi))
        if best is None or r.cost < best.cost:
            best = r
    p = {**fixed, **_unpack(best.x, free)}
    return {k: float(p[k]) for k in (*PARAMS, "link_q")}, float(np.sqrt(np.mean(best.fun ** 2)))


def spearman(x, y) -> float:
    from scipy.stats import spearmanr

    if len(x) < 3:
        return float("nan")
    return float(spearmanr(x, y).statistic)
