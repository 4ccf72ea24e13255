"""Test configuration: float64 JAX.

The test process does not use the persistent compilation cache: in one long process that has
compiled hundreds of programs (and loaded torch), JAX's executable (de)serialisation for the
cache crashed twice with a segmentation fault in `tests/test_threshold.py`, while the same
tests pass alone. Commands the tests start as subprocesses enable the cache as users' runs do
(`minimax.runtime.enable_compilation_cache`).
"""

import minimax  # noqa: F401  (sets float64)
