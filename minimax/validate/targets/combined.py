"""A combined system: several targets defended from one budget and attacked from one power.

The system an organisation deploys is rarely one flow: an image-text model answers
queries while an agent answers from its retrieval memory, and one security budget pays
for both.  :class:`CombinedTarget` composes targets (``parts``, e.g. ``{"vision":
DigitsTarget, "agent": MemoryTarget}``) into one :class:`~minimax.validate.target.Target`,
so the whole pipeline (measure, calibrate, engine prescription, empirical game, report)
runs on the combined system unchanged (docs/validation.md §5.8).

**Names.**  Every channel and lever is prefixed by its part: channel ``"image"`` of part
``"vision"`` is ``"vision_image"``, lever ``"n_image"`` is ``"n_vision_image"``, so the
lever of a combined channel ``c`` is still ``"{n|s|b}_{c}"``.

**One attacker power.**  The attacker's total power ``P`` (combined units) is split over
every channel of every part.  A part's own units differ (squared L2 radius on an image,
entry-tokens in a memory), so ``power_units[part]`` says what one combined unit buys on
that part: power ``a`` on combined channel ``part_c`` is ``a * power_units[part]`` of the
part's channel ``c``.  The exchange rate is an assumption about the attacker (what the same
effort buys on each subsystem), stated in the config beside the budgets.

**One defender budget.**  Knobs are a :class:`CombinedKnobs` (one knob set per part); their
lever amounts are the parts' amounts, prefixed, so the defender's budget is spent over
both subsystems.  :meth:`CombinedTarget.menu` returns every combination of the parts'
menu rows whose total lever amount fits the budget: "no defense", single-subsystem rows
(the whole budget on one part) and split rows (each part's menu at what the other
leaves).

**Bits add over flows.**  The subsystems answer different queries through independent
flows, so the information the attacker gets through the combined system per query (one
query of each flow) is the sum ``I = I_1(T_1; A_1) + I_2(T_2; A_2)``, at most
``log2 K_1 + log2 K_2 = log2(K_1 K_2)`` (``n_classes = K_1 K_2``): the game's total
capacity, a sum over channels.  :class:`CombinedOutcome` carries the parts' outcomes and
:func:`minimax.validate.measure.outcome_bits` adds their estimates.  Units: part ``i``'s
unit ``u`` (an image attacked toward every target, a victim asked under every target) and
the other parts' unit ``u`` form one composite unit, which the bootstrap resamples
together; the parts' units are independent draws, so resampling composite units is a
bootstrap of each part's units, and every condition measured on the same composite units
is paired with every other (regrets, convergence checks).  The parts must therefore have
as many units on every split (a named error otherwise).

**Attacks.**  Bits add and the parts share nothing, so the attacker's best response to a
mixture of combined defenses is each part's best response to the mixture's marginal on
that part, with that part's share of the power: :meth:`CombinedTarget.attack` runs each
part's attacker oracle.  A part given no power is left alone: it answers as on clean
inputs whatever the target, so its outcome repeats its clean answers under every target
(no information about the target, 0 bits up to sampling).

Options: keys naming a part (``{"agent": {"text_steps": 48}}``) go to that part only;
every other key goes to every part.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from minimax.validate.target import Attack, Outcome


class CombinedKnobs(NamedTuple):
    """One knob set per part, in the order of :attr:`CombinedTarget.parts`."""

    parts: tuple[tuple[str, Any], ...]   # ((part name, that part's knobs), ...)

    def of(self, name: str) -> Any:
        return dict(self.parts)[name]


class CombinedOutcome(NamedTuple):
    """The parts' outcomes on composite units; bits are the sum of the parts' bits."""

    parts: tuple[Outcome, ...]   # each (units, its own queries per unit), equal units

    @property
    def sent(self) -> np.ndarray:
        """``(units, total queries)``; the shape names the composite units (bits use parts)."""
        return np.concatenate([p.sent for p in self.parts], 1)

    @property
    def answers(self) -> np.ndarray:
        return np.concatenate([p.answers for p in self.parts], 1)

    @property
    def n_classes(self) -> int:
        """``prod K_i``: the combined answer carries at most ``sum log2 K_i`` bits."""
        return int(np.prod([p.n_classes for p in self.parts]))


def combine(outcomes: Mapping[str, Outcome], split: str) -> CombinedOutcome:
    """The parts' outcomes on composite units (equal unit counts, else a named error)."""
    units = {name: int(np.asarray(o.sent).shape[0]) for name, o in outcomes.items()}
    if len(set(units.values())) != 1:
        raise ValueError(f"split {split!r}: the parts have {units} units; composite units "
                         f"pair them by index, so give every part as many units per split "
                         f"(e.g. the digits data n_calib / n_held = the memory's "
                         f"n_entities / 3)")
    return CombinedOutcome(tuple(outcomes.values()))


def _silent(clean: Outcome) -> Outcome:
    """Targets vs answers of a part nobody attacks: its clean answers under every target."""
    u, q = clean.answers.shape
    k = clean.n_classes
    sent = np.repeat(np.arange(k), q)[None].repeat(u, 0)
    return Outcome(sent, np.tile(clean.answers, (1, k)), k)


class CombinedTarget:
    """Targets composed under one budget and one attacker power (module docstring)."""

    name = "combined"

    def __init__(self, parts: Mapping[str, Any], power_units: Mapping[str, float],
                 caps: Mapping[str, float] | None = None, one_lever_rows: bool = False) -> None:
        if len(parts) < 2:
            raise ValueError(f"parts={list(parts)}; a combined target needs >= 2 parts")
        bad = [p for p in parts if not p.isidentifier() or "_" in p]
        if bad:
            raise ValueError(f"part names {bad} must be identifiers without '_' (they "
                             f"prefix channel names like 'vision_image')")
        missing = sorted(set(parts) - set(power_units))
        if missing or any(not (float(v) > 0 and math.isfinite(float(v)))
                          for v in power_units.values()):
            raise ValueError(f"power_units={dict(power_units)}; expected a finite value > 0 "
                             f"for every part {list(parts)} (missing {missing})")
        self.parts = dict(parts)
        fps = {p: getattr(t, "fingerprint", None) for p, t in self.parts.items()}
        self.fingerprint = (tuple(fps.items()) if any(v is not None for v in fps.values())
                            else None)
        self.one_lever_rows = bool(one_lever_rows)
        self.units = {p: float(power_units[p]) for p in parts}
        self.channels = tuple(f"{p}_{c}" for p, t in parts.items() for c in t.channels)
        self.levers = tuple(f"{lv[0]}_{p}_{lv[2:]}" for p, t in parts.items() for lv in t.levers)
        self.n_classes = int(np.prod([t.n_classes for t in parts.values()]))
        # caps a part declares (its units), in combined units, and any given here
        own = {f"{p}_{c}": float(v) / self.units[p] for p, t in parts.items()
               for c, v in (getattr(t, "power_caps", None) or {}).items()}
        extra = dict(caps or {})
        unknown = sorted(set(extra) - set(self.channels))
        if unknown:
            raise ValueError(f"caps {unknown} are not channels of the combined target "
                             f"{self.channels}")
        self.power_caps = {**own, **{c: float(v) for c, v in extra.items()}}

    # ------------------------------------------------------------ names

    def _split_levers(self, levers: Mapping[str, float]) -> dict[str, dict[str, float]]:
        bad = sorted(set(levers) - set(self.levers))
        if bad:
            raise ValueError(f"levers {bad} are not levers of the combined target "
                             f"{self.levers}")
        out: dict[str, dict[str, float]] = {p: {} for p in self.parts}
        for name, v in levers.items():
            kind, rest = name.split("_", 1)
            part, ch = rest.split("_", 1)
            out[part][f"{kind}_{ch}"] = float(v)
        return out

    def _split_power(self, power: Mapping[str, float]) -> dict[str, dict[str, float]]:
        bad = sorted(set(power) - set(self.channels))
        if bad:
            raise ValueError(f"power channels {bad} unknown; expected {self.channels}")
        out: dict[str, dict[str, float]] = {p: {} for p in self.parts}
        for name, v in power.items():
            if not (float(v) >= 0 and math.isfinite(float(v))):
                raise ValueError(f"power[{name!r}]={v}; expected a finite value >= 0")
            part, ch = name.split("_", 1)
            if float(v) > 0:
                out[part][ch] = float(v) * self.units[part]
        return out

    def _knobs(self, knobs: Any) -> CombinedKnobs:
        if not isinstance(knobs, CombinedKnobs) or [p for p, _ in knobs.parts] != list(
                self.parts):
            raise TypeError(f"knobs={knobs!r}; expected CombinedKnobs over parts "
                            f"{list(self.parts)}")
        return knobs

    # ------------------------------------------------------------ levers and menu

    def realise(self, levers: Mapping[str, float]) -> CombinedKnobs:
        per = self._split_levers(levers)
        return CombinedKnobs(tuple((p, t.realise(per[p])) for p, t in self.parts.items()))

    def lever_values(self, knobs: CombinedKnobs) -> dict[str, float]:
        k = self._knobs(knobs)
        return {f"{lv[0]}_{p}_{lv[2:]}": float(v) for p, t in self.parts.items()
                for lv, v in t.lever_values(k.of(p)).items()}

    def menu(self, budget: float) -> dict[str, CombinedKnobs]:
        """"no defense", each part's menu rows alone, and split rows (module docstring).

        Single-subsystem rows are a part's ``menu(budget)`` with every other part
        undefended.  Split rows combine a defended row of every part: each part's rows
        from ``menu(budget)`` and its one-lever rows from ``menu(budget - c)`` that spend
        at least 3/4 of it, for every cost ``c`` of another part's ``menu(budget)`` rows
        (what that row leaves), whenever the total fits the budget.  Rows realising the
        same lever amounts are kept once.
        ``one_lever_rows``: every part contributes its one-lever rows only (a smaller game).
        """
        if not budget >= 0 or not math.isfinite(budget):
            raise ValueError(f"budget={budget}; expected a finite value >= 0")
        names = list(self.parts)

        def one(t, k) -> bool:
            return sum(x > 0 for x in t.lever_values(k).values()) == 1

        def priced(t, b):
            return {n: (k, sum(t.lever_values(k).values())) for n, k in t.menu(b).items()
                    if n == "no defense" or not self.one_lever_rows or one(t, k)}

        full = {p: priced(t, budget) for p, t in self.parts.items()}
        pool = {p: {n: v for n, v in full[p].items() if n != "no defense"} for p in names}
        for p, t in self.parts.items():   # what the other parts' rows leave
            left = {budget - c for q in names if q != p for _, c in full[q].values()
                    if 0 < c <= budget}
            for b in sorted(left):
                for n, v in priced(t, b).items():
                    if one(t, v[0]) and v[1] >= 0.75 * b:  # spends what is left (knobs round down)
                        pool[p].setdefault(n, v)
        out: dict[str, CombinedKnobs] = {}
        seen: set[tuple] = set()

        def add(chosen: dict[str, tuple[str, Any]]) -> None:
            knobs = CombinedKnobs(tuple((p, chosen[p][1] if p in chosen else t.realise({}))
                                        for p, t in self.parts.items()))
            key = tuple(sorted((lv, round(v, 9)) for lv, v in self.lever_values(knobs).items()))
            if key not in seen:
                seen.add(key)
                out[" + ".join(f"{p}: {chosen[p][0]}" for p in names if p in chosen)
                    or "no defense"] = knobs

        add({})
        for p in names:
            for n, (k, _) in pool[p].items():
                if n in full[p]:
                    add({p: (n, k)})
        for combo in itertools.product(*(pool[p].items() for p in names)):
            if sum(c for _, (_, c) in combo) <= budget + 1e-9:
                add({p: (n, k) for p, (n, (k, _)) in zip(names, combo, strict=True)})
        return out

    # ------------------------------------------------------------ attacks and answers

    def _options(self, options: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
        opts = dict(options or {})
        shared = {k: v for k, v in opts.items() if k not in self.parts}
        return {p: {**shared, **dict(opts.get(p) or {})} for p in self.parts}

    def attack(self, mixture: Sequence[tuple[float, CombinedKnobs]], power: Mapping[str, float],
               *, split: str, seed: int, options: Mapping[str, Any] | None = None) -> Attack:
        """Each part's attacker oracle against the mixture's marginal on that part."""
        mix = [(float(w), self._knobs(k)) for w, k in mixture]
        if not mix or sum(w for w, _ in mix) <= 0:
            raise ValueError("mixture must be a non-empty sequence of (weight > 0, knobs)")
        per_power = self._split_power(power)
        opts = self._options(options)
        payload: dict[str, Attack | None] = {}
        trace: dict[str, list[float]] = {}
        labels = []
        for p, t in self.parts.items():
            if not per_power[p]:
                payload[p] = None
                continue
            att = t.attack([(w, k.of(p)) for w, k in mix], per_power[p], split=split,
                           seed=seed, options=opts[p])
            payload[p] = att
            labels.append(f"{p}: {att.label}")
            trace.update({f"{p}_{k}": list(v) for k, v in att.trace.items()})
        spent = {f"{p}_{c}": float(v) / self.units[p] for p, a in payload.items() if a
                 for c, v in a.power.items()}
        return Attack(" | ".join(labels) or "no attack", spent, payload, trace)

    def evaluate(self, attack: Attack, knobs: CombinedKnobs, *, split: str,
                 seed: int) -> CombinedOutcome:
        k = self._knobs(knobs)
        pay = attack.payload
        if not isinstance(pay, dict) or set(pay) != set(self.parts):
            raise ValueError(f"attack.payload must map every part {list(self.parts)} to its "
                             f"attack (or None); got {type(pay).__name__}")
        out = {}
        for p, t in self.parts.items():
            if pay[p] is None:
                out[p] = _silent(t.clean(k.of(p), split=split, seed=seed))
            else:
                out[p] = t.evaluate(pay[p], k.of(p), split=split, seed=seed)
        return combine(out, split)

    def clean(self, knobs: CombinedKnobs, *, split: str, seed: int) -> CombinedOutcome:
        k = self._knobs(knobs)
        return combine({p: t.clean(k.of(p), split=split, seed=seed)
                        for p, t in self.parts.items()}, split)


def make_combined_target(parts: Mapping[str, Mapping[str, Any]],
                         power_units: Mapping[str, float],
                         caps: Mapping[str, float] | None = None,
                         order: Sequence[str] | None = None, one_lever_rows: bool = False,
                         seed: int = 0) -> CombinedTarget:
    """Build the parts from their ``_target_`` specs with run seed ``seed`` (Hydra).

    Each part gets the seed the pipeline gives a target of its own
    (:func:`minimax.validate.run.make_target`): a run seed draws new data, models and
    attacks on every part.  ``order``: the parts' order (channels, levers, outcomes);
    default the mapping's.
    """
    from omegaconf import OmegaConf

    from minimax.validate.run import make_target

    names = list(order or parts)
    if sorted(names) != sorted(parts):
        raise ValueError(f"order={names}; expected a permutation of the parts {list(parts)}")
    built = {name: make_target(OmegaConf.create({"target": dict(parts[name])}), seed)
             for name in names}
    return CombinedTarget(built, power_units, caps, one_lever_rows)
