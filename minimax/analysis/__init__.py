"""Analyses on the channel game (docs/analyses.md §4.1-§4.4).

* :func:`dci` -- Defense Coverage Index of a defense catalogue against an attack taxonomy over
  a ladder of adaptive attackers (§4.2), from YAML data (:func:`load_taxonomy`,
  :func:`load_catalogue`).
* :func:`asymmetry` -- relative protection of all-on-noise-suppression vs all-on-bandwidth
  defenses as the attacker grows (§4.1).
* :func:`self_destruction_threshold` -- certified bracket on the attacker power P*(h) beyond
  which the best defense leaves negative net value (§4.3); :func:`threshold_sweep` for its
  sensitivity to h and the defender budget.
* :class:`CircuitBreaker` -- a CUSUM test on per-query observations with a stated false-trip
  bound on benign traffic.
"""

from minimax.analysis._asymmetry import AsymmetryResult, asymmetry, closed_form_one_channel
from minimax.analysis._breaker import CircuitBreaker
from minimax.analysis._dci import DCIResult, dci
from minimax.analysis._specs import (
    AttackClass,
    DefenseSpec,
    Taxonomy,
    class_caps,
    defense_cost_check,
    defense_vector,
    load_catalogue,
    load_taxonomy,
)
from minimax.analysis._threshold import (
    ThresholdResult,
    self_destruction_threshold,
    threshold_search,
    threshold_sweep,
)

__all__ = [
    "AsymmetryResult", "AttackClass", "CircuitBreaker", "DCIResult", "DefenseSpec",
    "Taxonomy", "ThresholdResult", "asymmetry", "class_caps", "closed_form_one_channel", "dci",
    "defense_cost_check", "defense_vector", "load_catalogue", "load_taxonomy",
    "self_destruction_threshold", "threshold_search", "threshold_sweep",
]
