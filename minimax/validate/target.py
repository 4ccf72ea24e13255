"""What the validation needs from a system under test: the target protocol.

A *target* is a real system — a dual encoder, an agent answering from a retrieval memory, a
user's own pipeline — seen through the channel game. The validation pipeline (measure,
calibrate, empirical game, report) is written once against this protocol; a target only
says what its channels, levers, defenses, attacks and answers are.

* **channels**: the (flow, modality) channels the attacker can reach, e.g. ``("image",
  "text")`` or ``("memory",)``; attacker power is given per channel in the target's own
  units (squared L2 radius for an image, ``token_power`` per suffix token, entries x tokens
  for a memory).
* **levers**: the game's lever names the target realises, ``"{n|s|b}_{channel}"``
  (e.g. ``"n_image"``, ``"b_text"``). ``realise(levers)`` builds the realisable defense
  knobs closest to given lever amounts; ``lever_values(knobs)`` is its inverse, used to
  place a measured defense in the calibrated game.
* **menu(budget)**: the discrete defenses the knobs allow within a defender budget (lever
  units, costs 1), always including ``"no defense"``: the rows of the empirical game.
* **attack(mixture, power, ...)**: a concrete attack optimised against a defense or a
  mixture of defenses (expectation over the mixture's draws), spending ``power`` per
  channel: the attacker oracle. It never pays for what a defense throws away (tokens a cap
  truncates, entries an isolation cap drops): a cap-aware attacker moves that power to
  where it still counts. It returns an :class:`Attack` whose ``payload`` ``evaluate``
  applies, and whose ``trace`` records its convergence.
* **evaluate(attack, knobs, ...)** and **clean(knobs, ...)**: the system's answers per
  query, paired with the attacker's targets (adversarial bits ``I(T; answer)``) or the
  true labels (legitimate bits ``I(truth; answer)``). Queries are grouped in *units*
  (an image attacked toward every target, a question asked under every target) that the
  bootstrap resamples together.

Bits are computed from an :class:`Outcome` by :mod:`minimax.validate.measure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np


class Outcome(NamedTuple):
    """Paired symbols of one measured condition, ``(units, queries per unit)`` each."""

    sent: np.ndarray      # (u, q) int in [0, K): the attacker's target, or the true label
    answers: np.ndarray   # (u, q) int in [0, K): what the defended system answered
    n_classes: int        # K; bits per query are at most log2(K)


class Attack(NamedTuple):
    """One attacker pure strategy, optimised and ready to evaluate against any defense."""

    label: str                              # e.g. "joint apgd-dlr+gcg P_img=1 k=4"
    power: Mapping[str, float]              # attacker power per channel, target units
    payload: Any                            # what evaluate() applies: deltas, suffixes, entries
    trace: Mapping[str, Sequence[float]]    # convergence: objective / success per step


@runtime_checkable
class Target(Protocol):
    """A system the validation can measure, attack and defend (see the module docstring)."""

    name: str
    n_classes: int
    channels: tuple[str, ...]
    levers: tuple[str, ...]

    def realise(self, levers: Mapping[str, float]) -> Any:
        """Defense knobs closest to the lever amounts ``levers`` (missing levers are 0)."""

    def lever_values(self, knobs: Any) -> dict[str, float]:
        """The game's lever amounts that ``knobs`` realise (every name in ``levers``)."""

    def menu(self, budget: float) -> dict[str, Any]:
        """Realisable defenses with total lever amount <= ``budget``; has ``"no defense"``."""

    def attack(self, mixture: Sequence[tuple[float, Any]], power: Mapping[str, float], *,
               split: str, seed: int, options: Mapping[str, Any] | None = None) -> Attack:
        """Optimise an attack against ``mixture`` (weights, knobs) with ``power`` per channel."""

    def evaluate(self, attack: Attack, knobs: Any, *, split: str, seed: int) -> Outcome:
        """Targets vs answers of the defended system under ``attack``."""

    def clean(self, knobs: Any, *, split: str, seed: int) -> Outcome:
        """True labels vs answers of the defended system on clean inputs."""
