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

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import least_squares

from minimax.serial import namedtuple_to_dict

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


# ==================================================================== the channel model
#
# The model the validation fits and solves (module docstring above: the smooth per-channel
# form the engine's continuous solver supports).  It extends that form where the data
# demand it:
#
# * **caps are thresholds.**  A bandwidth lever ``b_c`` on a channel with a *cap*
#   (``caps[c]`` = the attacker-controllable power at ``b = 0``, e.g. ``token_power k_max``)
#   lets through at most ``caps[c] exp(-b_c)`` of the attacker's power and none of the
#   rest: ``a_eff = min(a, caps[c] exp(-b_c))``, not an attenuation ``exp(-gamma b)`` of all
#   of it.  A cap-aware attacker moves the truncated power to the uncapped channels
#   (in proportion to what it gave them, or evenly if it gave them nothing).  At
#   ``b_c = 0`` no cap is set (``cap_open``, the realised semantics: with no token cap the
#   attacker appends as many tokens as its power buys).
# * **cross-channel levers.**  A lever ``l`` of another channel scales channel ``c``'s
#   capacity by ``exp(eta[c, l] l)`` (``eta > 0``: e.g. fine-tuning the image tower makes
#   the text suffix *more* effective), or with the saturating form (term ``"crosssat"``)
#   by ``exp(eta[c, l] (1 - e^-l))``, which levels off as the lever grows, or with the
#   threshold form (term ``"crossthr"``) by ``exp(eta[c, l] l^h / (l^h + t_l^h))``, an onset
#   ``t_l`` fitted for each lever the calibration crosses at two or more amounts
#   (``h = HILL = 4``): the boost is off below the onset and on above it.
# * **joint attacks.**  ``C_total = sum_c C_c + kappa sum_{c < c'} sqrt(C_c C_c')``
#   (``kappa > 0``: super-additive).
# * **clean inputs pay for the noise lever.**  Purification noise is added to every input,
#   so the legitimate SNR is ``(1 + beta s) S / (N e^(nu n + mu s))`` (``nu`` fitted where
#   clean conditions cross the noise lever, ``mu`` where they cross two fine-tuning radii:
#   robust training costs clean accuracy at large radii; the engine's form has
#   ``nu = mu = 0``).  Clean bits go
#   through a link of their own shape ``link_q_leg`` (fitted where >= 3 distinct clean
#   conditions exist): a classifier's accuracy falls off a cliff as its input degrades,
#   which the attack curves' shape ``link_q`` does not describe.
# * **a random mask is noise** (term ``"mask"``, chosen explicitly).  Keeping a random
#   fraction ``k = e^-b`` of the inputs turns the dropped part into noise: dividing the
#   output's mean and variance by ``k^2`` adds ``(1/k - 1)(V + c a)`` to the noise seen by
#   both the clean signal and the attacker (``V``: the clean input's energy through the
#   mask, ``c a``: the attacker's own masked power), so capacity stays bounded as
#   ``a -> infinity``: ``B log2(1 + 1 / (c (1/k - 1)))``.
#
# Interaction terms enter only where the calibration conditions cross them (a channel
# attacked under another channel's lever; two channels attacked at once), and are kept
# only if they lower the Akaike information criterion ``n ln(SSE / n) + 2 k`` of the fit.

KINDS = ("n", "s", "b")


class ChannelModel(NamedTuple):
    """A calibrated channel model of one target (see the section comment above)."""

    channels: tuple[str, ...]
    params: dict[str, dict[str, float]]   # channel -> B, S, N, alpha, beta, gamma, rho
    caps: dict[str, float]                # channel -> controllable power at b = 0 (threshold)
    cross: dict[str, float]               # "c<-lever" -> eta (capacity factor exp(eta lever))
    kappa: float                          # joint-attack coefficient (0: additive)
    link_q: float                         # saturation link shape
    imax: float                           # log2 K, bits
    rms: float                            # RMS fit residual, bits
    n_fit: int                            # conditions fitted
    terms: tuple[str, ...]                # interaction terms kept ("kappa", "cross")
    blind: bool                           # True: a defense-blind baseline (levers ignored)
    reallocate: bool = True               # the attacker moves power a cap truncates
    link_q_leg: float | None = None       # link shape of clean (legitimate) bits; None: link_q
    cap_open: bool = True                 # a cap lever at b = 0 sets no cap (as realised)
    onset: dict[str, float] | None = None  # lever -> onset t of its threshold cross dose
    cap_units: dict[str, float] | None = None  # channel -> power of one capped unit (token)

    def to_dict(self) -> dict:
        return {**self._asdict(), "channels": list(self.channels), "terms": list(self.terms)}


def _lv(levers: Mapping[str, float], kind: str, ch: str):
    return np.asarray(levers.get(f"{kind}_{ch}", 0.0), float)


def effective_power(model: ChannelModel, power: Mapping[str, float],
                    levers: Mapping[str, float]) -> dict[str, np.ndarray]:
    """Attacker power per channel after the caps, truncated power moved to uncapped channels."""
    a = {c: np.asarray(power.get(c, 0.0), float) for c in model.channels}
    if model.blind or not model.caps:
        return a
    if not model.reallocate:
        return {c: np.minimum(a[c], cap_limit(model, c, levers))
                if c in model.caps else a[c] for c in model.channels}
    freed = 0.0
    for c in model.caps:
        if c in a:
            lim = cap_limit(model, c, levers)
            freed = freed + np.maximum(a[c] - lim, 0.0)
            a[c] = np.minimum(a[c], lim)
    free = [c for c in model.channels if c not in model.caps]
    if free:
        tot = sum(a[c] for c in free)
        for c in free:
            share = np.where(tot > 0, a[c] / np.where(tot > 0, tot, 1.0), 1.0 / len(free))
            a[c] = a[c] + freed * share
    return a


def cap_limit(model: ChannelModel, c: str, levers: Mapping[str, float]):
    """The most attacker power channel ``c``'s cap lets through: ``caps[c] e^(-b_c)``.

    With a unit ``u = cap_units[c]`` (e.g. one token's power) the cap is a whole number of
    units, rounded up as the target realises it: ``u ceil(caps[c] e^(-b_c) / u)``.  With
    ``model.cap_open`` (the realised semantics: a cap that keeps all ``caps[c]`` is no cap,
    the attacker appends as many tokens as its power buys) the limit is infinite wherever
    it is not below ``caps[c]``, e.g. at ``b_c = 0``; without it the cap holds ``caps[c]``
    even there.
    """
    b = _lv(levers, "b", c)
    lim = model.caps[c] * np.exp(-b)
    u = (model.cap_units or {}).get(c)
    if u:
        lim = u * np.ceil(lim / u - 1e-9)
    if not model.cap_open:
        return lim
    return np.where(lim < model.caps[c] * (1 - 1e-12), lim, np.inf)


def mask_noise(p: Mapping[str, float], b, a):
    """Noise power a random input mask adds, ``(e^b - 1) (V + c a)`` (section comment above).

    ``b = -ln(keep)``; ``V``: the clean input's energy seen through the mask's randomness,
    ``c``: the share of the attacker's own power ``a`` that the mask turns into noise.
    """
    b = np.asarray(b, float)
    return np.expm1(np.maximum(b, 0.0)) * (p.get("V", 0.0) + p.get("c", 0.0) * np.asarray(a))


def channel_capacity(model: ChannelModel, c: str, a, levers: Mapping[str, float]):
    """Raw adversarial bits of channel ``c`` at effective power ``a`` (array-friendly)."""
    p = model.params[c]
    if model.blind:
        return p["B"] * np.log2(1 + np.asarray(a, float) / (p["N"] + p["S"]))
    n, s, b = (_lv(levers, k, c) for k in KINDS)
    a = np.asarray(a, float)
    m = (p["N"] + (1 + p["beta"] * s) * p["S"]) * np.exp(p["alpha"] * n)
    att = 1.0 if c in model.caps else np.exp(-p["gamma"] * b)
    if c not in model.caps:
        m = m + mask_noise(p, b, a)
    out = p["B"] * att * np.log2(1 + a / m)
    for key, eta in model.cross.items():
        ch, lever = key.split("<-")
        if ch == c:
            out = out * np.exp(eta * cross_dose(model, levers.get(lever, 0.0), lever))
    return out


HILL = 4.0  # steepness of the threshold cross dose l^h / (l^h + t^h)


def cross_dose(model: ChannelModel, lever, name: str = ""):
    """How much of a lever a cross-channel term sees.

    The lever amount ``l`` itself; ``1 - e^(-l)`` with the saturating term ``"crosssat"``
    (the factor ``e^(eta (1 - e^-l))`` levels off at ``e^eta`` as the lever grows); or, with
    the threshold term ``"crossthr"`` and an onset ``t`` fitted for lever ``name``
    (``model.onset``), the Hill dose ``l^h / (l^h + t^h)``, ``h = HILL``: about 0 below
    ``t``, 1/2 at ``t``, 1 well above it, so the factor ``e^(eta dose)`` switches the boost on
    at the lever's onset instead of growing smoothly from ``l = 0``
    (docs/validation.md §5.4).
    """
    lv = np.asarray(lever, float)
    if "crosssat" in model.terms:
        return -np.expm1(-lv)
    t = (model.onset or {}).get(name)
    if t is None:
        return lv
    x = np.maximum(lv, 0.0) / t
    return x ** HILL / (1.0 + x ** HILL)


def model_predict(model: ChannelModel, kind: str, power: Mapping[str, float],
                  levers: Mapping[str, float]):
    """Predicted measured bits of a condition (``kind`` "adv" or "leg"); broadcasts arrays."""
    if kind == "leg":
        c = model.channels[0]
        p = model.params[c]
        if model.blind:
            raw = p["B"] * np.log2(1 + p["S"] / p["N"]) + 0 * sum(
                (np.asarray(v, float) for v in levers.values()), 0.0)
        else:
            n, s, b = (_lv(levers, k, c) for k in KINDS)
            att = 1.0 if c in model.caps else np.exp(-p["rho"] * p["gamma"] * b)
            noise = p["N"] * np.exp(p.get("nu", 0.0) * n + p.get("mu", 0.0) * s)
            if c not in model.caps:
                noise = noise + mask_noise(p, b, 0.0)
            raw = p["B"] * att * np.log2(1 + (1 + p["beta"] * s) * p["S"] / noise)
        q = model.link_q if model.link_q_leg is None else model.link_q_leg
        return link(raw, model.imax, q)
    a = effective_power(model, power, levers)
    caps = [channel_capacity(model, c, a[c], levers) for c in model.channels]
    total = sum(caps)
    if model.kappa:
        for i in range(len(caps)):
            for j in range(i + 1, len(caps)):
                total = total + model.kappa * np.sqrt(caps[i] * caps[j])
    return link(np.maximum(total, 0.0), model.imax, model.link_q)


def predict_condition(model: ChannelModel, cond: Condition) -> float:
    return float(model_predict(model, cond.kind, cond.a, cond.levers))


# ---------------------------------------------------------------- fitting


def _stack(conds: Sequence[Condition]) -> list[tuple[str, np.ndarray, dict, dict]]:
    """Conditions grouped by kind, powers and levers as arrays (one vectorised prediction)."""
    out = []
    for kind in ("adv", "leg"):
        idx = np.array([i for i, c in enumerate(conds) if c.kind == kind], int)
        if not len(idx):
            continue
        sub = [conds[i] for i in idx]
        chans = sorted({k for c in sub for k in c.a})
        levs = sorted({k for c in sub for k in c.levers})
        out.append((kind, idx, {k: np.array([c.a.get(k, 0.0) for c in sub]) for k in chans},
                    {k: np.array([c.levers.get(k, 0.0) for c in sub]) for k in levs}))
    return out


_DEFAULT = {"B": 2.0, "S": 1.0, "N": 1.0, "alpha": 1.0, "beta": 0.5, "gamma": 1.0, "rho": 0.5,
            "nu": 0.1, "V": 0.1, "c": 0.1, "mu": 0.1}


def _free_names(conds: Sequence[Condition], channels: Sequence[str], caps: Mapping[str, float],
                blind: bool, terms: set[str]) -> list[str]:
    """Parameters the conditions identify, as ``"channel.param"``, ``"cross.c<-l"``, ...."""
    adv = [c for c in conds if c.kind == "adv"]
    leg = [c for c in conds if c.kind == "leg"]
    names = ["link_q"]
    if not blind and len({tuple(sorted(c.levers.items())) for c in leg}) >= 3:
        names.append("link_q_leg")
    for ch in channels:
        hit = [c for c in adv if c.a.get(ch, 0) > 0]
        if not hit and ch != channels[0]:
            continue
        names += [f"{ch}.B", f"{ch}.S", f"{ch}.N"]
        if blind:
            continue
        on = {k: any(c.levers.get(f"{k}_{ch}", 0) > 0 for c in hit) for k in KINDS}
        if on["n"]:
            names.append(f"{ch}.alpha")
        if on["s"] or (ch == channels[0] and any(c.levers.get(f"s_{ch}", 0) > 0 for c in leg)):
            names.append(f"{ch}.beta")
        if on["b"] and ch not in caps:
            names.append(f"{ch}.gamma")
            if ch == channels[0] and any(c.levers.get(f"b_{ch}", 0) > 0 for c in leg):
                names.append(f"{ch}.rho")
            if "mask" in terms:
                names += [f"{ch}.V", f"{ch}.c"]
        if ch == channels[0] and any(c.levers.get(f"n_{ch}", 0) > 0 for c in leg):
            names.append(f"{ch}.nu")
        if ch == channels[0] and len({c.levers.get(f"s_{ch}", 0) for c in leg
                                      if c.levers.get(f"s_{ch}", 0) > 0}) >= 2:
            names.append(f"{ch}.mu")
        if terms & {"cross", "crosssat", "crossthr"}:
            others = sorted({k for c in hit for k, v in c.levers.items()
                             if v > 0 and not k.endswith(f"_{ch}")})
            names += [f"cross.{ch}<-{lv}" for lv in others]
    if "crossthr" in terms:  # an onset where a lever crosses channels at >= 2 amounts
        names += [f"onset.{lv}" for lv, amounts in sorted(cross_amounts(conds, channels).items())
                  if len(amounts) >= 2 and any(n.endswith(f"<-{lv}") for n in names)]
    if "kappa" in terms and any(sum(v > 0 for v in c.a.values()) >= 2 for c in adv):
        names.append("kappa")
    return names


def _build(theta, names, channels, caps, blind, imax, terms, realloc=True,
           cap_open=True, cap_units=None) -> ChannelModel:
    params = {ch: dict(_DEFAULT, alpha=0.0, beta=0.0, gamma=0.0, rho=0.0, nu=0.0, V=0.0, c=0.0,
                       mu=0.0)
              for ch in channels}
    cross, kappa, q, q_leg, onset = {}, 0.0, 1.0, None, {}
    for name, v in zip(names, theta, strict=True):
        if name.startswith("onset."):
            onset[name[6:]] = float(np.exp(v))
        elif name == "link_q":
            q = float(np.exp(v))
        elif name == "link_q_leg":
            q_leg = float(np.exp(v))
        elif name == "kappa":
            kappa = float(v)
        elif name.startswith("cross."):
            cross[name[6:]] = float(v)
        else:
            ch, p = name.split(".")
            params[ch][p] = float(1 / (1 + np.exp(-v)) if p == "rho" else np.exp(v))
    return ChannelModel(tuple(channels), params, dict(caps), cross, kappa, q, imax, float("nan"),
                        0, tuple(sorted(terms)), blind, realloc, q_leg, cap_open,
                        onset or None, dict(cap_units) if cap_units else None)


def _bounds(names):
    lo, hi, x0 = [], [], []
    for n in names:
        if n in ("link_q", "link_q_leg"):
            lo.append(np.log(0.2)), hi.append(np.log(12.0)), x0.append(0.0)
        elif n == "kappa":
            lo.append(-0.9), hi.append(8.0), x0.append(0.0)
        elif n.startswith("cross."):
            lo.append(-4.0), hi.append(4.0), x0.append(0.0)
        elif n.startswith("onset."):  # log t, t in [0.05, 5] lever units
            lo.append(np.log(0.05)), hi.append(np.log(5.0)), x0.append(0.0)
        elif n.endswith(".rho"):
            lo.append(-8.0), hi.append(8.0), x0.append(0.0)
        elif n.endswith((".nu", ".mu")):  # clean costs: e^(nu n + mu s) finite on the grid
            lo.append(-12.0), hi.append(np.log(20.0)), x0.append(np.log(_DEFAULT["nu"]))
        else:
            lo.append(-12.0), hi.append(8.0), x0.append(np.log(_DEFAULT[n.split(".")[1]]))
    return np.array(lo), np.array(hi), np.array(x0)


def cross_amounts(conds: Sequence[Condition], channels: Sequence[str]) -> dict[str, set[float]]:
    """Per lever, the distinct positive amounts at which it acts across channels.

    A lever of channel ``c`` acts across channels in an adversarial condition that attacks
    another channel.
    """
    seen: dict[str, set[float]] = {}
    for c in conds:
        if c.kind != "adv":
            continue
        hit = {ch for ch in channels if c.a.get(ch, 0) > 0}
        for name, v in c.levers.items():
            if v > 0 and any(not name.endswith(f"_{ch}") for ch in hit):
                seen.setdefault(name, set()).add(round(float(v), 9))
    return seen


def cross_intensities(conds: Sequence[Condition], channels: Sequence[str]) -> int:
    """The most distinct positive amounts at which one lever acts across channels.

    The saturating and threshold cross terms differ from the exponential one only where
    some lever does so at two or more amounts (at one, the forms fit the same).
    """
    return max((len(v) for v in cross_amounts(conds, channels).values()), default=0)


def fit_model(conds: Sequence[Condition], channels: Sequence[str], *,
              caps: Mapping[str, float] | None = None, imax: float = IMAX, blind: bool = False,
              terms: Sequence[str] | None = None, restarts: int = 6, seed: int = 0,
              reallocate: bool = True, cap_open: bool = True,
              cap_units: Mapping[str, float] | None = None) -> ChannelModel:
    """Least-squares fit (in measured bits) of the channel model to ``conds``.

    ``reallocate``: the measured attacker moves the power a cap truncates to uncapped
    channels (a cap-aware attacker); ``False`` if it simply lost it.  ``cap_open``: a cap
    lever at ``b = 0`` sets no cap; ``cap_units``: caps are whole numbers of these units
    (:func:`cap_limit`).
    ``terms`` (default: choose among ``()``, ``("kappa",)``, ``("cross",)``,
    ``("cross", "kappa")``, and where :func:`cross_intensities` is >= 2 ``("crosssat",)``,
    ``("crosssat", "kappa")``, by AIC; the threshold term ``"crossthr"`` only when given)
    are the interaction terms allowed; ``blind=True``
    fits the defense-blind baseline (every lever ignored, same conditions, same link).
    """
    conds = [c for c in conds if np.isfinite(c.bits)]
    if not conds:
        raise ValueError("fit_model needs at least one condition with finite bits")
    caps = {} if blind else dict(caps or {})
    if terms is None and not blind:
        fits = [fit_model(conds, channels, caps=caps, imax=imax, terms=t, restarts=restarts,
                          seed=seed, reallocate=reallocate, cap_open=cap_open,
                          cap_units=cap_units)
                for t in ((), ("kappa",), ("cross",), ("cross", "kappa"),
                          *((("crosssat",), ("crosssat", "kappa"))
                            if cross_intensities(conds, channels) >= 2 else ()))]
        return min(fits, key=lambda m: aic(m, conds))
    tset = set() if blind else set(terms or ())
    names = _free_names(conds, channels, caps, blind, tset)
    y = np.array([c.bits for c in conds])
    groups = _stack(conds)

    def resid(theta):
        m = _build(theta, names, channels, caps, blind, imax, tset, reallocate, cap_open,
                   cap_units)
        out = np.empty(len(conds))
        # a trial point far out on a bound may overflow e^(alpha n): capacity 0, still finite
        with np.errstate(over="ignore"):
            for kind, idx, power, levers in groups:
                out[idx] = model_predict(m, kind, power, levers)
        return out - y

    lo, hi, x0 = _bounds(names)
    rng = np.random.default_rng(seed)
    best = None
    for r in range(restarts):
        start = x0 if r == 0 else x0 + rng.normal(0, 1.0, len(x0))
        try:
            res = least_squares(resid, np.clip(start, lo + 1e-6, hi - 1e-6), bounds=(lo, hi))
        except (ValueError, FloatingPointError):
            continue
        if best is None or res.cost < best.cost:
            best = res
    if best is None:
        raise RuntimeError("the channel-model fit failed from every start")
    m = _build(best.x, names, channels, caps, blind, imax, tset, reallocate, cap_open,
               cap_units)
    rms = float(np.sqrt(np.mean(best.fun ** 2)))
    used = tuple(t for t in sorted(tset)
                 if any(n.startswith(t) or (t == "mask" and n.endswith(".V"))
                        or (t == "crosssat" and n.startswith("cross."))
                        or (t == "crossthr" and n.startswith(("cross.", "onset.")))
                        for n in names))
    return m._replace(rms=rms, n_fit=len(conds), terms=used)


def n_free(model: ChannelModel, conds: Sequence[Condition]) -> int:
    """How many parameters ``model``'s form fits on ``conds`` (its terms, caps and levers)."""
    conds = [c for c in conds if np.isfinite(c.bits)]
    return len(_free_names(conds, model.channels, model.caps, model.blind, set(model.terms)))


def aic(model: ChannelModel, conds: Sequence[Condition]) -> float:
    """Akaike information criterion ``n ln(RMS^2) + 2 k`` of a least-squares fit on ``conds``.

    ``n``: conditions with finite bits, ``k``: :func:`n_free`.  Lower is better; it uses the
    calibration conditions only, so it can choose a model form without the held-out ones.
    """
    n = sum(np.isfinite(c.bits) for c in conds)
    return float(n * np.log(max(model.rms, 1e-9) ** 2) + 2 * n_free(model, conds))


# ---------------------------------------------------------------- scores


class Score(NamedTuple):
    """Prediction quality on a set of conditions or allocations."""

    n: int
    spearman: float   # rank correlation predicted vs measured (nan: constant prediction)
    mae: float        # mean absolute error, bits

    def to_dict(self) -> dict[str, Any]:
        """Plain Python of every field (docs/solution-concepts.md §2.10)."""
        return namedtuple_to_dict(self)


def score(pred, meas) -> Score:
    pred, meas = np.asarray(pred, float), np.asarray(meas, float)
    if len(pred) == 0:
        return Score(0, float("nan"), float("nan"))
    rho = spearman(pred, meas) if np.ptp(pred) > 1e-9 and np.ptp(meas) > 1e-9 else float("nan")
    return Score(len(pred), rho, float(np.mean(np.abs(pred - meas))))


def rank_ceiling(worst, lo, hi, *, level: float = 0.95, draws: int = 4000,
                 seed: int = 0) -> float:
    """The rank correlation a perfect model can expect against noisy measured worst cases.

    docs/validation.md §5.6.  Each row's measured worst case ``worst_i`` carries a CI
    ``[lo_i, hi_i]`` at ``level``; read as a normal error of standard deviation
    ``sd_i = (hi_i - lo_i) / (2 z)``, ``z = Phi^-1((1 + level) / 2)``.  Taking the measured
    values as the truth, this is ``E[Spearman(worst, worst + e)]``, ``e_i ~ N(0, sd_i^2)``
    independent (Monte Carlo over ``draws``): what a model that predicted every row's true
    worst case would score on one measurement of it.  Two rows ``d`` apart with a common
    ``sd`` give ``1 - 2 Phi(-d / (sd sqrt 2))`` (Spearman of two points is +-1).
    """
    from scipy.stats import norm, rankdata

    w, lo, hi = (np.asarray(v, float) for v in (worst, lo, hi))
    for name, v in (("lo", lo), ("hi", hi)):
        if v.shape != w.shape:
            raise ValueError(f"rank_ceiling: {name} has shape {v.shape}; worst has {w.shape}")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(lo)) and np.all(np.isfinite(hi))):
        raise ValueError("rank_ceiling: worst, lo and hi must be finite")
    if np.any(hi < lo):
        raise ValueError(f"rank_ceiling: hi < lo at rows {np.flatnonzero(hi < lo).tolist()}")
    if not 0 < level < 1:
        raise ValueError(f"rank_ceiling: level={level}; expected 0 < level < 1")
    if len(w) < 2 or np.ptp(w) <= 0:
        return float("nan")
    sd = (hi - lo) / (2 * norm.ppf((1 + level) / 2))
    noisy = w + np.random.default_rng(seed).normal(size=(int(draws), len(w))) * sd
    rw = rankdata(w)
    rn = rankdata(noisy, axis=1)
    rw, rn = rw - rw.mean(), rn - rn.mean(1, keepdims=True)
    rho = (rn @ rw) / np.sqrt((rn ** 2).sum(1) * (rw ** 2).sum())
    return float(np.mean(rho))


def worst_case(model: ChannelModel, levers: Mapping[str, float], power: float,
               grid: int = 40) -> tuple[float, dict[str, float]]:
    """The model's attacker best response to ``levers``: (bits, split fractions)."""
    from minimax.validate.empirical import split_grid

    splits = split_grid(model.channels, grid)
    vals = [float(model_predict(model, "adv", {c: power * f[c] for c in model.channels}, levers))
            for f in splits]
    j = int(np.argmax(vals))
    return vals[j], splits[j]


def decision_score(model: ChannelModel, allocations: Sequence[tuple[Mapping[str, float], float]],
                   power: float) -> Score:
    """Rank correlation and MAE of predicted vs measured worst-case bits per allocation.

    ``allocations``: ``(levers, measured worst-case bits)`` of budget-matched defenses.
    """
    pred = [worst_case(model, lv, power)[0] for lv, _ in allocations]
    return score(pred, [m for _, m in allocations])


class Prediction(NamedTuple):
    """How well a channel model predicts, beside a defense-blind baseline fitted the same way.

    * ``held`` / ``blind_held``: held-out conditions (adversarial, clean and joint);
    * ``decision`` / ``blind_decision``: predicted vs measured worst-case bits across the
      budget-matched allocations, with the model calibrated before the game (one shot);
    * ``recalibrated`` / ``blind_recalibrated``: the same, each allocation predicted by a
      model refitted on the calibration conditions plus the *other* allocations' game cells
      (leave one allocation out: recalibration from the game, still held out).
    A defense-blind model predicts one number for every allocation, so its rank correlation
    is undefined (nan): it cannot rank defenses.
    """

    held: Score
    blind_held: Score
    decision: Score
    blind_decision: Score
    recalibrated: Score
    blind_recalibrated: Score
    allocations: list[dict]   # per allocation: measured, predicted (one shot, recalibrated)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python of every field (docs/solution-concepts.md §2.10)."""
        return namedtuple_to_dict(self)


def prediction_report(calib: Sequence[Condition], held: Sequence[Condition],
                      cells: Sequence[Condition], *, channels: Sequence[str], power: float,
                      caps: Mapping[str, float] | None = None, imax: float = IMAX,
                      reallocate: bool = True, restarts: int = 4,
                      terms: Sequence[str] | None = None,
                      model: ChannelModel | None = None,
                      cap_units: Mapping[str, float] | None = None) -> Prediction:
    """Score a channel model where decisions are made (see :class:`Prediction`).

    ``cells``: game cells, ``extra["allocation"]`` naming their row; an allocation's measured
    worst case is the largest of its cells' bits.  ``terms``: the interaction terms allowed
    (default: chosen by AIC on each fit's own conditions).
    """
    kw = {"caps": caps, "imax": imax, "reallocate": reallocate, "cap_units": cap_units}
    model = model or fit_model(calib, channels, restarts=restarts, terms=terms, **kw)
    blind = fit_model(calib, channels, blind=True, restarts=restarts, **kw)

    def on(m, conds):
        return score([predict_condition(m, c) for c in conds], [c.bits for c in conds])

    names = list(dict.fromkeys(c.extra["allocation"] for c in cells))
    rows = []
    for name in names:
        mine = [c for c in cells if c.extra["allocation"] == name]
        rest = [c for c in cells if c.extra["allocation"] != name]
        lev = mine[0].levers
        refit = fit_model([*calib, *rest], channels, restarts=2, terms=terms, **kw)
        refit_b = fit_model([*calib, *rest], channels, blind=True, restarts=2, **kw)
        rows.append({"allocation": name, "levers": dict(lev),
                     "measured": max(c.bits for c in mine),
                     "predicted": worst_case(model, lev, power)[0],
                     "predicted_blind": worst_case(blind, lev, power)[0],
                     "predicted_recalibrated": worst_case(refit, lev, power)[0],
                     "predicted_blind_recalibrated": worst_case(refit_b, lev, power)[0]})
    meas = [r["measured"] for r in rows]
    return Prediction(on(model, held), on(blind, held),
                      score([r["predicted"] for r in rows], meas),
                      score([r["predicted_blind"] for r in rows], meas),
                      score([r["predicted_recalibrated"] for r in rows], meas),
                      score([r["predicted_blind_recalibrated"] for r in rows], meas), rows)
