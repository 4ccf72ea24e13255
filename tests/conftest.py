"""Test configuration: float64 JAX, and compiled programs released after each test module.

One pytest process compiles many hundreds of XLA programs; kept alive together they crashed the
process late in the suite (a segmentation fault or an abort inside XLA, in whichever test came
next, while the same tests pass alone). Clearing JAX's caches after each module lets those
executables be freed. The test process does not use the persistent compilation cache (both early
crashes were inside its executable (de)serialisation); commands the tests start as subprocesses
enable it, as users' runs do (`minimax.runtime.enable_compilation_cache`).
"""

import jax
import pytest

import minimax  # noqa: F401  (sets float64)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    yield
    jax.clear_caches()
