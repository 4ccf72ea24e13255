"""The one result type every solver returns, carrying its certificate."""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from minimax.game import Defense


class Solution(NamedTuple):
    """A defence with its certificate.

    ``value`` is the defender's guaranteed loss with the returned defence against an adaptive
    attacker, ``phi(defense)``, which is also ``upper``; ``lower`` is a certified lower bound on
    the minimax value V, so ``lower <= V <= upper`` and ``gap = upper - lower``.
    """

    value: float  # phi(defense) = max_a L(defense, a), weighted bits per query
    upper: float  # certified upper bound on V (= value)
    lower: float  # certified lower bound on V
    gap: float  # upper - lower (computed, never assumed)
    defense: Defense  # (K,) arrays n, s, b in budget units
    attack: np.ndarray  # (K,) the attacker's best response to ``defense``, power units
    method: str  # the solver that produced the defence
    iterations: int  # iterations of that solver
    seconds: float  # wall time including the certificate
    reason: str = ""  # why ``auto`` chose this method, or solver notes

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable)."""
        return {
            "value": float(self.value),
            "upper": float(self.upper),
            "lower": float(self.lower),
            "gap": float(self.gap),
            "defense": self.defense.to_dict(),
            "attack": np.asarray(self.attack, dtype=float).tolist(),
            "method": self.method,
            "iterations": int(self.iterations),
            "seconds": float(self.seconds),
            "reason": self.reason,
        }
