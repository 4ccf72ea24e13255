"""The channel game: K Shannon-Hartley channels, an attacker and a defender (docs/model.md §1).

A :class:`Game` is a frozen pytree. Its arrays (one entry per channel, float64) are leaves, so
games of the same shape can be stacked and ``vmap``-ed; its sizes, labels and flags are static.
Every field's default and allowed range is the schema :data:`minimax.schema.FIELDS`; the
invariants are checked on every construction (:meth:`Game.from_dict`, :meth:`Game.create`,
:meth:`Game.replace`) by :func:`minimax.schema.check_game`; nothing is clipped silently.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from minimax.errors import GameSpecError
from minimax.schema import (  # noqa: F401  (the schema's constants are part of this module's API)
    BUDGET_MAX,
    BY_ATTR,
    CAP_MAX,
    CHANNEL_ARRAYS,
    CHANNEL_FIELDS,
    FIELDS,
    FLOWS,
    LEVER_NAMES,
    LEVERS,
    MODEL_FLOWS,
    MODES,
    PARAM_RANGE,
    RANGES_DOC,
    REQUIRED,
    SYSTEM_FLOWS,
    TOP_FIELDS,
    WEIGHT_MAX,
    check_game,
    check_labels,
    check_levers,
    default_of,
    dict_default,
    float_array,
    number,
)


class Defense(NamedTuple):
    """A defender investment x = (n, s, b), each of shape (K,), in budget units."""

    n: jax.Array  # (K,) noise suppression
    s: jax.Array  # (K,) signal enhancement
    b: jax.Array  # (K,) bandwidth restriction

    def to_dict(self) -> dict[str, list[float]]:
        return {k: np.asarray(v, dtype=float).tolist() for k, v in self._asdict().items()}


def _static() -> Any:
    return dataclasses.field(metadata={"static": True})


@dataclasses.dataclass(frozen=True)
class Game:
    """A channel game. Arrays have shape (K,) (or (batch, K) when stacked); scalars shape ().

    Attributes follow docs/model.md §1.1: ``B`` bandwidth (dimensions per query), ``S`` signal
    power, ``N`` noise power, ``w``/``u`` harm/utility weights, ``rho`` selectivity of bandwidth
    restriction, ``alpha``/``beta``/``gamma`` lever effectiveness, ``cap`` the attacker's
    per-channel power cap (inf = none), ``cost_*`` the price of one unit of each lever,
    ``attacker_budget`` P_A, ``defender_budget`` P_D, ``utility_price`` lambda. Their defaults
    and allowed ranges are the schema :data:`minimax.schema.FIELDS`. Build games with
    :meth:`from_dict`, :meth:`create` or :meth:`replace`, which check every field.
    """

    B: jax.Array
    S: jax.Array
    N: jax.Array
    w: jax.Array
    u: jax.Array
    rho: jax.Array
    alpha: jax.Array
    beta: jax.Array
    gamma: jax.Array
    cap: jax.Array
    cost_n: jax.Array
    cost_s: jax.Array
    cost_b: jax.Array
    attacker_budget: jax.Array
    defender_budget: jax.Array
    utility_price: jax.Array
    mode: str = _static()
    effect: str = _static()
    levers: tuple[str, ...] = _static()
    names: tuple[str, ...] = _static()
    flows: tuple[str, ...] = _static()
    modalities: tuple[str, ...] = _static()
    name: str = _static()

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Game:
        """Build a game from the YAML/dict schema (see ``conf/game/mfm_default.yaml``).

        >>> g = Game.from_dict({"mode": "injection", "attacker_budget": 5.0,
        ...     "defender_budget": 2.0, "channels": [{"name": "prediction/image",
        ...     "flow": "prediction", "modality": "image", "B": 1.0, "S": 2.0, "N": 0.5,
        ...     "w": 1.0, "u": 1.0, "rho": 0.3, "alpha": 1.0, "beta": 0.5, "gamma": 1.0}]})
        >>> g.num_channels
        1
        """
        if not isinstance(d, Mapping):
            raise GameSpecError(f"game: expected a mapping, got {type(d).__name__}: {d!r}")
        top = {f.key: f for f in TOP_FIELDS}
        unknown = set(d) - set(top) - {"channels"}
        if unknown:
            raise GameSpecError(f"game: unknown key(s) {sorted(unknown)}; allowed keys are "
                                f"{sorted({*top, 'channels'})}")
        for key in [k for k, f in top.items() if dict_default(f) is REQUIRED] + ["channels"]:
            if key not in d:
                raise GameSpecError(f"game: missing required key '{key}'")
        channels = d["channels"]
        if isinstance(channels, (str, bytes)) or not isinstance(channels, Sequence):
            raise GameSpecError(
                f"game.channels: expected a list of channel mappings, got "
                f"{type(channels).__name__}"
            )
        if len(channels) == 0:
            raise GameSpecError("game.channels: the game has no channels; give at least one")
        columns: dict[str, list[Any]] = {f.attr: [] for f in CHANNEL_FIELDS}
        keys = {f.key for f in CHANNEL_FIELDS}
        for i, ch in enumerate(channels):
            where = f"game.channels[{i}]"
            if not isinstance(ch, Mapping):
                raise GameSpecError(f"{where}: expected a mapping, got {type(ch).__name__}")
            where = f"game.channels[{i}] ({ch.get('name', '?')})"
            unknown = set(ch) - keys
            if unknown:
                raise GameSpecError(f"{where}: unknown key(s) {sorted(unknown)}; allowed keys "
                                    f"are {sorted(keys)}")
            for f in CHANNEL_FIELDS:
                if dict_default(f) is REQUIRED and f.key not in ch:
                    raise GameSpecError(f"{where}: missing required key '{f.key}'")
            for f in CHANNEL_FIELDS:
                if f.kind == "label":
                    if not isinstance(ch[f.key], str) or not ch[f.key]:
                        raise GameSpecError(f"{where}.{f.key}: expected a non-empty string, "
                                            f"got {ch[f.key]!r}")
                    columns[f.attr].append(ch[f.key])
                else:
                    columns[f.attr].append(number(ch.get(f.key, f.default), f"{where}.{f.key}"))
        given = {f.attr: d.get(f.key, f.default) for f in TOP_FIELDS}
        for f in TOP_FIELDS:  # a key given as null is an error, never its default
            if f.kind == "scalar":
                given[f.attr] = number(given[f.attr], f"game.{f.key}")
            elif f.attr == "levers":
                given[f.attr] = check_levers(given[f.attr])
            elif given[f.attr] is None:
                raise GameSpecError(f"game.{f.key}: got None; expected {f.allowed}")
        return cls.create(**{**given, "name": str(given["name"])}, **columns)

    @classmethod
    def create(
        cls,
        *,
        mode: str,
        attacker_budget: float,
        defender_budget: float,
        B,
        S,
        N,
        w,
        u,
        rho,
        alpha,
        beta,
        gamma,
        utility_price: float = default_of("utility_price"),
        cap=None,
        cost_n=None,
        cost_s=None,
        cost_b=None,
        effect: str = default_of("effect"),
        levers: Sequence[str] = default_of("levers"),
        names: Sequence[str] | None = None,
        flows: Sequence[str] | None = None,
        modalities: Sequence[str] | None = None,
        name: str = default_of("name"),
    ) -> Game:
        """Build and validate a game from per-channel arrays (keyword names as in docs §1.1).

        ``names``, ``flows`` and ``modalities`` are per-channel labels; ``name`` names the game.
        Defaults are the schema's (:data:`minimax.schema.FIELDS`): ``utility_price`` 0, ``exp``
        effects, all three levers, and for an array or label list left at None no cap, unit
        costs, labels ``channel{i}``/``prediction``/``text``.
        """
        given = dict(locals())  # the arguments, by field name
        k = np.size(float_array(B, "game.B"))
        if k == 0:
            raise GameSpecError("game.channels: the game has no channels; give at least one")
        values: dict[str, Any] = {}
        for f in FIELDS:
            value = given[f.attr]
            if value is None and f.default is REQUIRED:
                raise GameSpecError(f"game.{f.attr}: required; expected {f.allowed}")
            if value is None and f.kind == "label":
                value = [f.default.format(i=i) for i in range(k)]
            elif value is None and f.kind == "channel":
                value = np.full(k, f.default)
            values[f.attr] = _coerce(f.attr, value, (k,), broadcast=False)
        return cls._checked(values)

    @classmethod
    def _checked(cls, values: Mapping[str, Any]) -> Game:
        game = cls(**values)
        check_game(game)
        return game

    # ----------------------------------------------------------------- helpers
    @property
    def num_channels(self) -> int:
        return int(np.shape(self.B)[-1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.B)[:-1])

    def replace(self, *, check: bool = True, **changes: Any) -> Game:
        """A copy with some fields changed, checked like :meth:`create` (any field of the
        schema; stacked games too, with arrays of their batch shape).

        ``check=False`` skips the checks: only for measuring what happens outside the
        supported ranges (experiments/supported_ranges.py) and for tests of the certificate's
        guards; every other caller keeps the default.

        >>> g = Game.create(mode="injection", attacker_budget=1.0, defender_budget=1.0,
        ...     B=[1.0], S=[1.0], N=[1.0], w=[1.0], u=[0.0], rho=[0.0], alpha=[1.0],
        ...     beta=[1.0], gamma=[1.0])
        >>> float(g.replace(attacker_budget=2.0).attacker_budget)
        2.0
        >>> g.replace(rho=[1.5])
        Traceback (most recent call last):
        ...
        minimax.errors.GameSpecError: game.channels[0] (channel0).rho: got 1.5; expected in [0, 1]
        """
        unknown = sorted(set(changes) - set(BY_ATTR))
        if unknown:
            raise GameSpecError(f"game.replace: unknown field(s) {unknown}; fields are "
                                f"{list(BY_ATTR)}")
        shape = np.shape(self.B)
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values.update({attr: _coerce(attr, v, shape) if check else v
                       for attr, v in changes.items()})
        return type(self)._checked(values) if check else type(self)(**values)

    def view(self) -> Game:
        """The game without its labels (names, flows, modalities, name), so compiled code is
        shared by games that differ only in names. Dropping labels keeps every invariant."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return type(self)(**{**values, "names": (), "flows": (), "modalities": (), "name": ""})

    def to_dict(self) -> dict[str, Any]:
        """The inverse of :meth:`from_dict` (plain Python floats and strings)."""
        if self.batch_shape:
            raise GameSpecError("game.to_dict: not available on a stacked (batched) game")
        out: dict[str, Any] = {}
        for f in TOP_FIELDS:
            value = getattr(self, f.attr)
            out[f.key] = float(value) if f.kind == "scalar" else \
                list(value) if f.attr == "levers" else value
        out["channels"] = [
            {f.key: getattr(self, f.attr)[i] if f.kind == "label"
             else float(np.asarray(getattr(self, f.attr))[i]) for f in CHANNEL_FIELDS}
            for i in range(self.num_channels)
        ]
        return out

    def lever_mask(self) -> jax.Array:
        """(3,) array: 1 where the defender may invest in lever n, s, b; 0 where not."""
        return jnp.asarray([float(lv in self.levers) for lv in LEVERS])

    def cost_matrix(self) -> jax.Array:
        """(..., 3, K) unit costs of the levers n, s, b per channel."""
        return jnp.stack([self.cost_n, self.cost_s, self.cost_b], axis=-2)


jax.tree_util.register_dataclass(Game)


def _coerce(attr: str, value: Any, shape: tuple[int, ...], broadcast: bool = True) -> Any:
    """A value given for field ``attr`` in its stored form: float64 arrays of the game's
    channel ``shape`` (K,) or (batch, K), broadcast to it when ``broadcast`` (replace) or
    exactly K values (create); label tuples of K strings; canonical levers. Ranges are checked
    afterwards, on the whole game (:func:`minimax.schema.check_game`)."""
    kind, k = BY_ATTR[attr].kind, shape[-1]
    if kind == "scalar" and np.ndim(value) == 0 and not isinstance(value, jax.Array):
        value = number(value, f"game.{attr}")
    if kind in ("channel", "scalar"):
        want = shape if kind == "channel" else shape[:-1]
        arr = float_array(value, f"game.{attr}")
        if not broadcast and kind == "channel":
            arr = arr.reshape(-1)
        elif broadcast and arr.shape != want:
            try:
                arr = np.broadcast_to(arr, want)
            except ValueError:
                pass  # reported below with the shape that was given
        if arr.shape != want:
            what = f"{k} values (one per channel)" if kind == "channel" else "one value"
            raise GameSpecError(f"game.{attr}: expected {what}, got shape {arr.shape}")
        return jnp.asarray(arr)
    if kind == "label":
        labels = check_labels(attr, value, k)
        if len(labels) != k:
            raise GameSpecError(f"game.{BY_ATTR[attr].key}: expected {k} labels, got "
                                f"{len(labels)}")
        return labels
    if attr == "levers":
        return check_levers(value)
    return str(value) if attr == "name" else value


def as_defense(game: Game, defense: Any) -> Defense:
    """Coerce ``{"n": [...], "s": [...], "b": [...]}``, a :class:`Defense` or a (3, K) array.

    Missing levers default to 0. Values must be finite and >= 0; the budget is not enforced
    here (:func:`minimax.defense_cost` gives the budget spent).
    """
    k = game.num_channels
    if isinstance(defense, Defense):
        parts = defense._asdict()
    elif isinstance(defense, Mapping):
        unknown = set(defense) - set(LEVERS)
        if unknown:
            raise GameSpecError(f"defense: unknown lever(s) {sorted(unknown)}; expected n, s, b")
        parts = {lv: defense.get(lv, np.zeros(k)) for lv in LEVERS}
    else:
        arr = np.asarray(defense, dtype=float)
        if arr.shape != (3, k):
            raise GameSpecError(f"defense: expected a (3, {k}) array, got shape {arr.shape}")
        parts = dict(zip(LEVERS, arr, strict=True))
    out = {}
    for lv, v in parts.items():
        if isinstance(v, jax.core.Tracer):
            out[lv] = v
            continue
        arr = np.asarray(v, dtype=np.float64)
        if arr.shape == ():
            arr = np.full(k, float(arr))
        if arr.shape[-1:] != (k,):
            raise GameSpecError(f"defense.{lv}: expected {k} values, got shape {arr.shape}")
        if not np.all(np.isfinite(arr)) or np.any(arr < 0):
            raise GameSpecError(f"defense.{lv}: got {arr.tolist()}; expected finite values >= 0")
        out[lv] = jnp.asarray(arr)
    return Defense(**out)
