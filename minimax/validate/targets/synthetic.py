"""A synthetic target with a known answer: bits are a closed-form function of defense and attack.

The system answers a ``K``-way query.  Under an attack with power ``a_image``, ``a_text``
against levers ``n_image`` (a noise lever, a smooth attenuation) and ``b_text`` (a cap:
a threshold that shuts the text channel once ``b_text >= 1``), the attacker's target comes
out with probability

    p = 1/K + (1 - 1/K) (1 - exp(-x)),
    x = w_image r a_image exp(-k_n n_image) + w_text r a_text [b_text < 1]

(``r = 1`` for the ``"auto"`` recipe, ``1/2`` for ``"weak"``) and otherwise as one of the
other ``K - 1`` classes uniformly, so ``I(T; answer)`` is that of the ``K``-ary symmetric
channel with error ``1 - p``, :func:`minimax.validate.measure.symmetric_channel_mi`.
Answers are *sampled* from that channel (seeded by the attack, the defense and the seed,
so repeated measurements of one cell are identical and cells share units), which gives
the empirical game the same sampling noise a real target has while the exact value of
every cell, hence of the whole game, is known: :meth:`SyntheticTarget.true_bits`.

Clean answers: the true label comes out with probability ``acc0 exp(-c_clean sum(levers))``
(each lever costs some legitimate accuracy), uniformly otherwise.

Knobs are a sorted tuple ``((lever, amount), ...)`` on a grid of ``step`` lever units.
Attack options: ``recipe`` (``"auto"`` = ``"strong"``, or ``"weak"``), ``steps``,
``restarts``, ``eot``, ``text_steps`` (accepted and recorded; the closed form has no
optimisation to converge).  Defaults: ``recipe="auto"``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from minimax.validate.measure import symmetric_channel_mi
from minimax.validate.target import Attack, Outcome

OPTION_KEYS = ("recipe", "steps", "restarts", "eot", "text_steps")
RECIPES = {"auto": 1.0, "strong": 1.0, "weak": 0.5}
SPLITS = ("attack", "calib", "held")


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


class SyntheticTarget:
    """Closed-form target (see the module docstring); every parameter is a float knob."""

    name = "synthetic"
    channels = ("image", "text")
    levers = ("n_image", "b_text")

    def __init__(self, n_classes: int = 10, n_units: int = 300, w_image: float = 1.0,
                 w_text: float = 0.6, k_n: float = 3.0, step: float = 0.5,
                 acc0: float = 0.98, c_clean: float = 0.02) -> None:
        if n_classes < 2 or n_units < 1 or step <= 0:
            raise ValueError(f"SyntheticTarget needs n_classes >= 2, n_units >= 1, step > 0; "
                             f"got {n_classes}, {n_units}, {step}")
        self.n_classes, self.n_units = int(n_classes), int(n_units)
        self.w = {"image": float(w_image), "text": float(w_text)}
        self.k_n, self.step = float(k_n), float(step)
        self.acc0, self.c_clean = float(acc0), float(c_clean)

    # ------------------------------------------------------------------ defenses
    def realise(self, levers: Mapping[str, float]) -> tuple:
        bad = set(levers) - set(self.levers)
        if bad:
            raise ValueError(f"SyntheticTarget levers are {self.levers}; got unknown {sorted(bad)}")
        return tuple((lv, round(max(float(levers.get(lv, 0.0)), 0.0) / self.step) * self.step)
                     for lv in self.levers)

    def lever_values(self, knobs: tuple) -> dict[str, float]:
        return {lv: float(v) for lv, v in knobs}

    def menu(self, budget: float) -> dict[str, tuple]:
        n = int(math.floor(budget / self.step + 1e-9))
        out = {"no defense": self.realise({})}
        for i in range(n + 1):
            for j in range(n + 1 - i):
                if i or j:
                    k = self.realise({"n_image": i * self.step, "b_text": j * self.step})
                    out[f"n_image={i * self.step:g} b_text={j * self.step:g}"] = k
        return out

    # ------------------------------------------------------------------ closed form
    def success(self, knobs: tuple, power: Mapping[str, float], recipe: str = "auto") -> float:
        lv = self.lever_values(knobs)
        r = RECIPES[recipe]
        x = (self.w["image"] * r * power.get("image", 0.0) * math.exp(-self.k_n * lv["n_image"])
             + self.w["text"] * r * power.get("text", 0.0) * (lv["b_text"] < 1.0 - 1e-9))
        k = self.n_classes
        return 1.0 / k + (1.0 - 1.0 / k) * (1.0 - math.exp(-x))

    def true_bits(self, knobs: tuple, power: Mapping[str, float], recipe: str = "auto") -> float:
        """Exact ``I(T; answer)`` in bits of the sampled channel."""
        return symmetric_channel_mi(self.n_classes, 1.0 - self.success(knobs, power, recipe))

    def clean_accuracy(self, knobs: tuple) -> float:
        return self.acc0 * math.exp(-self.c_clean * sum(v for _, v in knobs))

    # ------------------------------------------------------------------ protocol
    def attack(self, mixture: Sequence[tuple[float, Any]], power: Mapping[str, float], *,
               split: str, seed: int, options: Mapping[str, Any] | None = None) -> Attack:
        opts = dict(options or {})
        bad = set(opts) - set(OPTION_KEYS)
        if bad:
            raise ValueError(f"unknown attack option(s) {sorted(bad)}; known: {OPTION_KEYS}")
        recipe = str(opts.get("recipe", "auto"))
        if recipe not in RECIPES:
            raise ValueError(f"options['recipe']={recipe!r}; expected one of {sorted(RECIPES)}")
        bad_ch = set(power) - set(self.channels)
        if bad_ch or any(v < 0 for v in power.values()):
            raise ValueError(f"power must map channels {self.channels} to >= 0; got {power}")
        self._check_split(split)
        exp_succ = sum(w * self.success(k, power, recipe) for w, k in mixture)
        steps = int(opts.get("steps", 10))
        curve = [exp_succ * (1 - math.exp(-3.0 * (i + 1) / steps)) for i in range(steps)]
        label = f"{recipe} " + " ".join(f"{c}={power.get(c, 0.0):.3g}" for c in self.channels)
        return Attack(label, dict(power), {"power": dict(power), "recipe": recipe},
                      {"success": curve})

    def evaluate(self, attack: Attack, knobs: tuple, *, split: str, seed: int) -> Outcome:
        self._check_split(split)
        p = self.success(knobs, attack.payload["power"], attack.payload["recipe"])
        rng = np.random.default_rng(_seed("adv", attack.label, knobs, split, seed))
        return self._sample(rng, p)

    def clean(self, knobs: tuple, *, split: str, seed: int) -> Outcome:
        self._check_split(split)
        rng = np.random.default_rng(_seed("clean", knobs, split, seed))
        return self._sample(rng, self.clean_accuracy(knobs))

    def _sample(self, rng: np.random.Generator, p: float) -> Outcome:
        k, u = self.n_classes, self.n_units
        sent = np.tile(np.arange(k), (u, 1))
        hit = rng.random((u, k)) < p
        other = (sent + rng.integers(1, k, (u, k))) % k
        return Outcome(sent, np.where(hit, sent, other), k)

    def _check_split(self, split: str) -> None:
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; expected one of {SPLITS}")
