"""minimax: certified attacker-defender games over the information channels of multimodal models.

Each (information flow, modality) of a multimodal system is a Shannon-Hartley channel
``C = B log2(1 + S/N)``; an attacker spends power on the channels, a defender invests in noise
suppression, signal enhancement and bandwidth restriction, and the engine solves and certifies
the resulting minimax game. See ``docs``/README and the module docstrings for the mathematics.
"""

from minimax import _x64  # noqa: F401  (process-wide float64, before anything touches JAX)
from minimax.analysis import (
    CircuitBreaker,
    DCIResult,
    ThresholdResult,
    asymmetry,
    dci,
    load_catalogue,
    load_taxonomy,
    self_destruction_threshold,
    threshold_sweep,
)
from minimax.certificate import BoundConfig, Certificate, certify, lagrangian_lower_bound
from minimax.channel import (
    adversarial_capacity,
    capacity,
    defense_cost,
    legitimate_capacity,
    payoff,
)
from minimax.convex import convexity
from minimax.double_oracle import MixedSolution, solve_mixed
from minimax.errors import CertificateError, GameSpecError, MinimaxError, SolverError
from minimax.game import FLOWS, LEVERS, MODEL_FLOWS, MODES, SYSTEM_FLOWS, Defense, Game
from minimax.gradient import GradientOptions
from minimax.response import best_response, best_response_attack, phi
from minimax.solution import Solution
from minimax.solver import METHODS, solve, solve_batch, stack_games

__version__ = "0.1.0"

__all__ = [
    "FLOWS", "LEVERS", "METHODS", "MODEL_FLOWS", "MODES", "SYSTEM_FLOWS",
    "BoundConfig", "Certificate", "Defense", "Game", "GameSpecError", "GradientOptions",
    "CertificateError", "MinimaxError", "Solution", "SolverError",
    "adversarial_capacity", "best_response", "best_response_attack", "capacity", "certify",
    "convexity", "defense_cost", "lagrangian_lower_bound", "legitimate_capacity", "payoff",
    "phi", "solve", "solve_batch", "stack_games",
    "CircuitBreaker", "DCIResult", "ThresholdResult", "asymmetry", "dci", "load_catalogue",
    "load_taxonomy", "self_destruction_threshold", "threshold_sweep",
    "MixedSolution", "solve_mixed",
]
