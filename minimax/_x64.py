"""Process-wide float64 for JAX.

Certificates (upper/lower bounds and gaps) are only meaningful in float64, and JAX's x64 flag is
process-global: it is set once, here, when ``minimax`` is first imported, never per call.
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)
