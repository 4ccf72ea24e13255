"""The schema of a channel game: every field of :class:`~minimax.game.Game`, its default, its
allowed range and its check, written once (docs/model.md §1.1, docs/supported-ranges.md).

:meth:`Game.from_dict`, :meth:`Game.create`, :meth:`Game.to_dict`, the validated
:meth:`Game.replace` and the sweep's channel defaults (:mod:`minimax.sweep`) all read
:data:`FIELDS`; :func:`check_game` is the one check every construction runs.

A field is one of four kinds:

* ``channel`` -- a float per channel (an array of shape (K,), or (batch, K) when stacked);
* ``label`` -- a string per channel (``names``, ``flows``, ``modalities``; stripped, i.e.
  ``()``, in the unlabelled view the solvers compile on);
* ``scalar`` -- a float per game (shape (), or (batch,) when stacked);
* ``static`` -- a flag of the game (``mode``, ``effect``, ``levers``, ``name``).

Supported ranges: inside them every product the engine forms (SNRs, water levels,
multipliers, the payoff and its Lagrangian) stays far inside float64, and the certificate was
measured sound over them (experiments/supported_ranges.py); values that are merely
representable (N = 5e-324, lambda = 1.7e308) are refused at the door.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from minimax.effects import EFFECTS
from minimax.errors import GameSpecError

FLOWS = ("prediction", "learning", "inferring", "agent_app", "multi_agent", "memory")
MODEL_FLOWS = ("prediction", "learning", "inferring")
SYSTEM_FLOWS = ("agent_app", "multi_agent", "memory")
MODES = ("injection", "jamming")
LEVERS = ("n", "s", "b")
LEVER_NAMES = {"n": "noise_suppression", "s": "signal_enhancement", "b": "bandwidth_restriction"}

PARAM_RANGE = (1e-6, 1e6)  # B, S, N, alpha, beta, gamma, cost_n, cost_s, cost_b: [lo, hi]
WEIGHT_MAX = 1e6  # w, u in [0, WEIGHT_MAX]
BUDGET_MAX = {"attacker_budget": 1e9, "defender_budget": 1e9, "utility_price": 1e6}
CAP_MAX = 1e9  # cap in [0, CAP_MAX] or inf (no cap)
RANGES_DOC = "docs/supported-ranges.md"


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # the default of a field that must be given


class Field(NamedTuple):
    """One field of a game."""

    attr: str  # attribute of Game
    key: str  # key in the dict of from_dict/to_dict (a channel's key for channel/label fields)
    kind: str  # "channel", "label", "scalar" or "static"
    default: Any  # the value create() (and from_dict, unless in_dict is REQUIRED) fills in
    allowed: str  # the allowed values, in words (error messages and docs)
    ok: Callable[[Any], Any] | None  # elementwise test of numbers (numpy arrays in, bools out)
    in_dict: Any = None  # from_dict's default when it differs from create's (REQUIRED)


def _in(lo: float, hi: float) -> Callable[[Any], Any]:
    return lambda v: (lo <= v) & (v <= hi)


_LO, _HI = PARAM_RANGE
_SUPPORTED = f"(the supported range, {RANGES_DOC})"
_POSITIVE = (f"in [{_LO:g}, {_HI:g}] {_SUPPORTED}", _in(_LO, _HI))
_WEIGHT = (f"in [0, {WEIGHT_MAX:g}] {_SUPPORTED}", _in(0.0, WEIGHT_MAX))
_CAP = (f"0 (no access), inf (no cap) or in [0, {CAP_MAX:g}] {_SUPPORTED}",
        lambda v: (v == math.inf) | ((v >= 0) & (v <= CAP_MAX)))


def _channel(attr: str, allowed: tuple[str, Callable], default: Any = REQUIRED) -> Field:
    return Field(attr, attr, "channel", default, *allowed)


def _scalar(attr: str, default: Any = REQUIRED) -> Field:
    hi = BUDGET_MAX[attr]
    return Field(attr, attr, "scalar", default,
                 f"a finite number in [0, {hi:g}] {_SUPPORTED}", _in(0.0, hi))


FIELDS: tuple[Field, ...] = (
    # top level, in the order of to_dict
    Field("name", "name", "static", "game", "a string naming the game", None),
    Field("mode", "mode", "static", REQUIRED, f"one of {MODES}", None),
    Field("effect", "effect", "static", "exp", f"one of {EFFECTS}", None),
    Field("levers", "levers", "static", LEVERS, f"a non-empty set of distinct levers from "
          f"{list(LEVERS)}", None),
    _scalar("attacker_budget"),
    _scalar("defender_budget"),
    _scalar("utility_price", 0.0),
    # per channel, in the order of a channel's dict
    Field("names", "name", "label", "channel{i}", "a non-empty string", None, REQUIRED),
    Field("flows", "flow", "label", "prediction", f"one of {FLOWS}", None, REQUIRED),
    Field("modalities", "modality", "label", "text", "a non-empty string", None, REQUIRED),
    _channel("B", _POSITIVE),
    _channel("S", _POSITIVE),
    _channel("N", _POSITIVE),
    _channel("w", _WEIGHT),
    _channel("u", _WEIGHT),
    _channel("rho", ("in [0, 1]", _in(0.0, 1.0))),
    _channel("alpha", _POSITIVE),
    _channel("beta", _POSITIVE),
    _channel("gamma", _POSITIVE),
    _channel("cap", _CAP, math.inf),
    _channel("cost_n", _POSITIVE, 1.0),
    _channel("cost_s", _POSITIVE, 1.0),
    _channel("cost_b", _POSITIVE, 1.0),
)
"""Every field of a game, top-level fields first, then a channel's, in the order of
:meth:`Game.to_dict <minimax.game.Game.to_dict>`."""
BY_ATTR: Mapping[str, Field] = {f.attr: f for f in FIELDS}
TOP_FIELDS = tuple(f for f in FIELDS if f.kind in ("static", "scalar"))
CHANNEL_FIELDS = tuple(f for f in FIELDS if f.kind in ("label", "channel"))
CHANNEL_ARRAYS = tuple(f.attr for f in FIELDS if f.kind == "channel")
CHANNEL_DEFAULTS = {f.attr: f.default for f in FIELDS
                    if f.kind == "channel" and f.default is not REQUIRED}


def dict_default(field: Field) -> Any:
    """The value :meth:`Game.from_dict` fills in for ``field`` (REQUIRED if it must be given)."""
    return field.default if field.in_dict is None else field.in_dict


def default_of(attr: str) -> Any:
    """The default of a game field (``REQUIRED`` when it has none)."""
    return BY_ATTR[attr].default


# ----------------------------------------------------------------------------- coercion
def short(value: Any) -> str:
    """``repr(value)``, shortened for error messages."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:28]}...{text[-12:]} ({len(text)} characters)"


def number(value: Any, where: str) -> float:
    """``value`` as a float (``".inf"``/``"inf"`` strings allowed), or a named error."""
    if isinstance(value, bool) or value is None:
        raise GameSpecError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, str):
        if value.strip().lower() in (".inf", "inf", "infinity"):
            return math.inf
        try:
            return float(value)
        except ValueError:
            raise GameSpecError(f"{where}: expected a number, got the string {value!r}") from None
    try:
        return float(value)
    except OverflowError:
        raise GameSpecError(
            f"{where}: the integer {short(value)} is beyond the float64 range (|x| < 1.8e308); "
            f"see the supported ranges in {RANGES_DOC}"
        ) from None
    except (TypeError, ValueError):
        raise GameSpecError(f"{where}: expected a number, got {short(value)}") from None


def float_array(value: Any, where: str) -> np.ndarray:
    """``value`` as a float64 array, or a :class:`GameSpecError` naming ``where``."""
    if isinstance(value, (str, bytes)):
        raise GameSpecError(f"{where}: expected numbers (one per channel), got the string "
                            f"{short(value)}")
    try:
        arr = np.asarray(value, dtype=object)
    except Exception:
        arr = None
    if arr is not None and arr.dtype == object:
        flat = arr.reshape(-1) if arr.ndim else arr.reshape(1)
        for i, v in enumerate(flat):
            if isinstance(v, (str, bytes, bool, np.bool_)) or v is None:
                raise GameSpecError(f"{where}[{i}]: expected a number, got {short(v)}")
            number(v, f"{where}[{i}]")
    try:
        return np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise GameSpecError(f"{where}: a value is beyond the float64 range (|x| < 1.8e308)"
                            ) from None
    except (TypeError, ValueError) as err:
        raise GameSpecError(f"{where}: expected numbers (one per channel): {err}") from None


def check_levers(levers: Any) -> tuple[str, ...]:
    """``levers`` as the canonical tuple (order n, s, b), or a named error."""
    if isinstance(levers, str):
        levers = tuple(levers.replace(",", " ").split()) if " " in levers or "," in levers \
            else tuple(levers)
    if isinstance(levers, Mapping) or not isinstance(levers, Sequence | set | frozenset):
        raise GameSpecError(
            f"game.levers: expected a list of levers from {list(LEVERS)} (e.g. [n, s, b]), "
            f"got {short(levers)}"
        )
    levers = tuple(levers)
    if not levers or any(not isinstance(lv, str) or lv not in LEVERS for lv in levers) \
            or len(set(levers)) != len(levers):
        raise GameSpecError(
            f"game.levers: {list(levers)!r} is not a non-empty set of distinct levers "
            f"from {list(LEVERS)} (n = noise suppression, s = signal enhancement, "
            f"b = bandwidth restriction)"
        )
    return tuple(lv for lv in LEVERS if lv in levers)


def check_labels(attr: str, values: Any, k: int) -> tuple[str, ...]:
    """A per-channel label list as a tuple of ``k`` strings, or a named error."""
    if isinstance(values, str) or not isinstance(values, Sequence) \
            or not all(isinstance(v, str) for v in values):
        raise GameSpecError(f"game.{attr}: expected a list of {k} strings (one per "
                            f"channel), got {short(values)}")
    return tuple(values)


# ----------------------------------------------------------------------------- the check
def check_game(game: Any) -> None:
    """Every invariant of the schema on a built game (stacked games too); raises a
    :class:`GameSpecError` naming the first bad field, entry and value, and what is allowed.

    Labels are either one per channel or all stripped (``()``: the unlabelled view)."""
    shape = np.shape(game.B)
    if len(shape) < 1 or shape[-1] == 0:
        raise GameSpecError("game.channels: the game has no channels; give at least one")
    k, batch = shape[-1], shape[:-1]
    for f in CHANNEL_FIELDS:
        if f.kind == "label" and len(getattr(game, f.attr)) not in (0, k):
            raise GameSpecError(f"game.{f.key}: expected {k} labels, got "
                                f"{len(getattr(game, f.attr))}")
    names = game.names or tuple(f"channel{i}" for i in range(k))
    if game.mode not in MODES:
        raise GameSpecError(f"game.mode: unknown mode {game.mode!r}; expected one of {MODES}")
    if game.effect not in EFFECTS:
        raise GameSpecError(
            f"game.effect: unknown effect map {game.effect!r}; expected one of {EFFECTS}"
        )
    if check_levers(game.levers) != game.levers:
        raise GameSpecError(f"game.levers: {game.levers!r} is not in the canonical order "
                            f"{LEVERS}; build the game with create/replace")
    for i, flow in enumerate(game.flows):
        if flow not in FLOWS:
            raise GameSpecError(
                f"game.channels[{i}] ({names[i]}).flow: unknown flow {flow!r}; "
                f"expected one of {FLOWS}"
            )
    for f in CHANNEL_FIELDS + TOP_FIELDS:  # channel fields first, then the budgets
        if f.kind in ("channel", "scalar"):
            _check_numbers(f, getattr(game, f.attr), batch, k, names)
    if not isinstance(game.name, str):
        raise GameSpecError(f"game.name: expected a string, got {short(game.name)}")


def _check_numbers(f: Field, value: Any, batch: tuple[int, ...], k: int,
                   names: Sequence[str]) -> None:
    arr = np.asarray(value, dtype=np.float64)
    want = (*batch, k) if f.kind == "channel" else batch
    if arr.shape != want:
        raise GameSpecError(f"game.{f.attr}: expected shape {want}"
                            f"{' (one per channel)' if f.kind == 'channel' else ''}, got "
                            f"{arr.shape}")
    bad = np.flatnonzero(~np.asarray(f.ok(arr), dtype=bool))
    if bad.size:
        at = tuple(int(i) for i in np.unravel_index(bad[0], arr.shape))
        where = "game" + "".join(f"[{i}]" for i in at[:len(batch)])
        if f.kind == "channel":
            where = f"{where}.channels[{at[-1]}] ({names[at[-1]]})"
        raise GameSpecError(f"{where}.{f.key}: got {float(arr[at])!r}; expected {f.allowed}")
