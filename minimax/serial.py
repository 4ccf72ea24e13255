"""Plain-Python views of results, for JSON (docs/solution-concepts.md §2.10).

Every public result type has a ``to_dict`` whose values are only ``dict``, ``list``, ``str``,
``int``, ``float``, ``bool`` and ``None``, so ``json.dumps(result.to_dict())`` works (NaN and
infinity are written as ``NaN`` / ``Infinity``, which Python's ``json`` reads back).
:func:`to_plain` is the one conversion they share.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def to_plain(value: Any) -> Any:
    """``value`` with arrays as (nested) lists, numpy scalars as Python numbers, tuples as
    lists, and objects that have a ``to_dict`` as their dict."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {str(k): to_plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_plain(v) for v in value]
    return np.asarray(value).tolist()  # numpy and JAX arrays


def namedtuple_to_dict(result: Any) -> dict[str, Any]:
    """``{field: to_plain(value)}`` over the fields of a NamedTuple result."""
    return {k: to_plain(v) for k, v in result._asdict().items()}
