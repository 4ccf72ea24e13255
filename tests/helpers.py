"""Shared test helpers: random games and brute-force oracles (independent of the engine).

They live in :mod:`minimax.testing` so that the benchmarks in ``experiments/`` can use them
without importing the test suite; this module re-exports them for the tests.
"""

from minimax.testing import (
    brute_force_best_response,
    numpy_loss,
    random_defense,
    random_game,
)

__all__ = ["brute_force_best_response", "numpy_loss", "random_defense", "random_game"]
