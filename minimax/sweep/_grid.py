"""Expanding a sweep's axes into points: one validated game per point, named by a content hash.

A *point* is the base game with some numeric fields replaced (or scaled). Its id is the first
16 hex digits of the SHA-256 of its resolved configuration (the full game dict and the solver
options), so the same point always has the same id: re-running a sweep recognises the points
it has already solved (resume), whatever order or chunking produced them.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from minimax.config import AxisConfig
from minimax.errors import GameSpecError
from minimax.schema import CHANNEL_ARRAYS, REQUIRED, default_of

TOP_PARAMS = ("attacker_budget", "defender_budget", "utility_price")
KINDS = ("grid", "zip")


class Point(NamedTuple):
    """One point of a sweep (plain data: it is pickled to worker processes)."""

    index: int  # position in the expanded sweep (grid order, first axis slowest)
    point_id: str  # content hash of ``config`` (16 hex digits)
    params: dict[str, float]  # swept parameter -> value at this point
    config: dict[str, Any]  # {"game": resolved game dict, "solver": {"method", **options}}


def axis_values(axis: AxisConfig) -> list[float]:
    """The values of one axis: ``values``, or ``num`` points from ``start`` to ``stop``."""
    where = f"sweep.axes[{axis.param}]"
    if axis.values is not None:
        if axis.num is not None or axis.start is not None or axis.stop is not None:
            raise GameSpecError(f"{where}: give either values or start/stop/num, not both")
        if len(axis.values) == 0:
            raise GameSpecError(f"{where}.values: empty list; give at least one value")
        return [float(v) for v in axis.values]
    if axis.start is None or axis.stop is None or axis.num is None:
        raise GameSpecError(
            f"{where}: got start={axis.start}, stop={axis.stop}, num={axis.num}; give a list "
            f"`values: [...]` or all three of start, stop and num"
        )
    if axis.num < 1:
        raise GameSpecError(f"{where}.num: got {axis.num}; expected an integer >= 1")
    if axis.scale == "linear":
        return [float(v) for v in np.linspace(axis.start, axis.stop, axis.num)]
    if axis.scale == "log":
        if axis.start <= 0 or axis.stop <= 0:
            raise GameSpecError(
                f"{where}: scale=log needs start > 0 and stop > 0, got {axis.start}, {axis.stop}"
            )
        return [float(v) for v in np.geomspace(axis.start, axis.stop, axis.num)]
    raise GameSpecError(f"{where}.scale: got {axis.scale!r}; expected 'linear' or 'log'")


def _channel_selector(game: Mapping[str, Any], param: str) -> tuple[list[int], str]:
    """Channel indices and field of ``channels.FIELD`` / ``channels.SEL.FIELD``."""
    rest = param[len("channels."):]
    sel, _, field = rest.rpartition(".")
    if field not in CHANNEL_ARRAYS:
        raise GameSpecError(
            f"sweep.axes[{param}]: unknown channel field {field!r}; expected one of "
            f"{list(CHANNEL_ARRAYS)}"
        )
    channels = game["channels"]
    if not sel:
        return list(range(len(channels))), field
    if sel.isdigit():
        i = int(sel)
        if i >= len(channels):
            raise GameSpecError(
                f"sweep.axes[{param}]: channel index {i} out of range; the game has "
                f"{len(channels)} channels (0..{len(channels) - 1})"
            )
        return [i], field
    hits = [i for i, ch in enumerate(channels) if sel in (ch.get("name"), ch.get("flow"))]
    if not hits:
        names = [ch.get("name") for ch in channels]
        raise GameSpecError(
            f"sweep.axes[{param}]: no channel named or of flow {sel!r}; channels are {names}"
        )
    return hits, field


def check_param(game: Mapping[str, Any], param: str) -> None:
    """Raise :class:`GameSpecError` unless ``param`` names a numeric field of ``game``."""
    if param in TOP_PARAMS:
        return
    if param.startswith("channels."):
        _channel_selector(game, param)
        return
    raise GameSpecError(
        f"sweep.axes: unknown param {param!r}; expected one of {list(TOP_PARAMS)}, "
        f"'channels.FIELD' or 'channels.SEL.FIELD' (SEL: channel index, name or flow; FIELD "
        f"one of {list(CHANNEL_ARRAYS)})"
    )


def apply_param(game: dict[str, Any], param: str, value: float, op: str = "set") -> None:
    """Set (``op="set"``) or multiply (``op="scale"``) one field of a game dict, in place.

    A field the dict leaves out is scaled from its default in the game schema
    (:data:`minimax.schema.FIELDS`: ``cap`` inf, costs 1, ``utility_price`` 0)."""
    if op not in ("set", "scale"):
        raise GameSpecError(f"sweep.axes[{param}].op: got {op!r}; expected 'set' or 'scale'")
    if param in TOP_PARAMS:
        _apply(game, param, value, op, f"sweep.axes[{param}]")
        return
    indices, field = _channel_selector(game, param)
    for i in indices:
        _apply(game["channels"][i], field, value, op, f"sweep.axes[{param}] (channel {i})")


def _apply(where: dict[str, Any], key: str, value: float, op: str, label: str) -> None:
    if op == "set":
        where[key] = float(value)
        return
    old = where.get(key, default_of(key))
    if old is REQUIRED:
        raise GameSpecError(f"{label}: op=scale of {key!r}, which the game does not give and "
                            f"which has no default; give it in the game or use op=set")
    where[key] = float(old) * float(value)


def point_id(config: Mapping[str, Any]) -> str:
    """16-hex-digit SHA-256 of a point's resolved configuration (canonical JSON)."""
    text = json.dumps(config, sort_keys=True)  # inf -> Infinity, deterministic
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def expand(game: Mapping[str, Any], axes: Sequence[AxisConfig], kind: str = "grid",
           solver: Mapping[str, Any] | None = None) -> list[Point]:
    """All points of a sweep over ``game``: the grid (or zip) of the axes' values.

    >>> from minimax.config import AxisConfig
    >>> g = {"mode": "injection", "attacker_budget": 1.0, "defender_budget": 1.0,
    ...      "channels": [{"name": "c", "flow": "prediction", "modality": "text", "gamma": 1.0}]}
    >>> pts = expand(g, [AxisConfig("attacker_budget", values=[1, 2]),
    ...                  AxisConfig("channels.gamma", values=[0.5, 1.5])])
    >>> len(pts), pts[1].params
    (4, {'attacker_budget': 1.0, 'channels.gamma': 1.5})
    """
    if kind not in KINDS:
        raise GameSpecError(f"sweep.kind: got {kind!r}; expected one of {KINDS}")
    params = [a.param for a in axes]
    if len(set(params)) != len(params):
        raise GameSpecError(f"sweep.axes: a param appears twice in {params}; give each once")
    for axis in axes:
        check_param(game, axis.param)
    values = [axis_values(a) for a in axes]
    if kind == "zip":
        lengths = {a.param: len(v) for a, v in zip(axes, values, strict=True)}
        if len(set(lengths.values())) > 1:
            raise GameSpecError(f"sweep.kind=zip: axes differ in length {lengths}; give each "
                                f"axis the same number of values, or use kind=grid")
        combos: Any = zip(*values, strict=True)
    else:
        combos = itertools.product(*values)
    solver = dict(solver or {})
    points = []
    for index, combo in enumerate(combos):
        g = copy.deepcopy(dict(game))
        for axis, value in zip(axes, combo, strict=True):
            apply_param(g, axis.param, value, axis.op)
        config = {"game": g, "solver": solver}
        points.append(Point(index=index, point_id=point_id(config),
                            params=dict(zip(params, map(float, combo), strict=True)),
                            config=config))
    return points
