"""Test configuration: float64 JAX, persistent compilation cache."""

import minimax  # noqa: F401  (sets float64)
from minimax.runtime import enable_compilation_cache

enable_compilation_cache()
