"""The channel game: K Shannon-Hartley channels, an attacker and a defender (docs/model.md §1).

A :class:`Game` is a frozen pytree. Its arrays (one entry per channel, float64) are leaves, so
games of the same shape can be stacked and ``vmap``-ed; its sizes, labels and flags are static.
Invariants are checked once, at construction, by :meth:`Game.from_dict` / :meth:`Game.create`;
nothing is clipped silently.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from minimax.effects import EFFECTS
from minimax.errors import GameSpecError

FLOWS = ("prediction", "learning", "inferring", "agent_app", "multi_agent", "memory")
MODEL_FLOWS = ("prediction", "learning", "inferring")
SYSTEM_FLOWS = ("agent_app", "multi_agent", "memory")
MODES = ("injection", "jamming")
LEVERS = ("n", "s", "b")
LEVER_NAMES = {"n": "noise_suppression", "s": "signal_enhancement", "b": "bandwidth_restriction"}

CHANNEL_ARRAYS = (
    "B", "S", "N", "w", "u", "rho", "alpha", "beta", "gamma", "cap", "cost_n", "cost_s", "cost_b",
)
_REQUIRED = ("name", "flow", "modality", "B", "S", "N", "w", "u", "rho", "alpha", "beta", "gamma")
_OPTIONAL = {"cap": math.inf, "cost_n": 1.0, "cost_s": 1.0, "cost_b": 1.0}
_TOP_REQUIRED = ("mode", "attacker_budget", "defender_budget", "channels")
_TOP_OPTIONAL = {"utility_price": 0.0, "effect": "exp", "levers": LEVERS, "name": "game"}


class Defense(NamedTuple):
    """A defender investment x = (n, s, b), each of shape (K,), in budget units."""

    n: jax.Array  # (K,) noise suppression
    s: jax.Array  # (K,) signal enhancement
    b: jax.Array  # (K,) bandwidth restriction

    def to_dict(self) -> dict[str, list[float]]:
        return {k: np.asarray(v, dtype=float).tolist() for k, v in self._asdict().items()}


@dataclasses.dataclass(frozen=True)
class Game:
    """A channel game. Arrays have shape (K,) (or (batch, K) when stacked); scalars shape ().

    Attributes follow docs/model.md §1.1: ``B`` bandwidth (dimensions per query), ``S`` signal
    power, ``N`` noise power, ``w``/``u`` harm/utility weights, ``rho`` selectivity of bandwidth
    restriction, ``alpha``/``beta``/``gamma`` lever effectiveness, ``cap`` the attacker's
    per-channel power cap (inf = none), ``cost_*`` the price of one unit of each lever,
    ``attacker_budget`` P_A, ``defender_budget`` P_D, ``utility_price`` lambda.
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
    mode: str = dataclasses.field(default="injection", metadata={"static": True})
    effect: str = dataclasses.field(default="exp", metadata={"static": True})
    levers: tuple[str, ...] = dataclasses.field(default=LEVERS, metadata={"static": True})
    names: tuple[str, ...] = dataclasses.field(default=(), metadata={"static": True})
    flows: tuple[str, ...] = dataclasses.field(default=(), metadata={"static": True})
    modalities: tuple[str, ...] = dataclasses.field(default=(), metadata={"static": True})
    name: str = dataclasses.field(default="game", metadata={"static": True})

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
        unknown = set(d) - set(_TOP_REQUIRED) - set(_TOP_OPTIONAL)
        if unknown:
            raise GameSpecError(
                f"game: unknown key(s) {sorted(unknown)}; allowed keys are "
                f"{sorted(set(_TOP_REQUIRED) | set(_TOP_OPTIONAL))}"
            )
        for key in _TOP_REQUIRED:
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
        columns: dict[str, list[float]] = {k: [] for k in CHANNEL_ARRAYS}
        labels: dict[str, list[str]] = {"names": [], "flows": [], "modalities": []}
        for i, ch in enumerate(channels):
            where = f"game.channels[{i}]"
            if not isinstance(ch, Mapping):
                raise GameSpecError(f"{where}: expected a mapping, got {type(ch).__name__}")
            where = f"game.channels[{i}] ({ch.get('name', '?')})"
            unknown = set(ch) - set(_REQUIRED) - set(_OPTIONAL)
            if unknown:
                raise GameSpecError(
                    f"{where}: unknown key(s) {sorted(unknown)}; allowed keys are "
                    f"{sorted(set(_REQUIRED) | set(_OPTIONAL))}"
                )
            for key in _REQUIRED:
                if key not in ch:
                    raise GameSpecError(f"{where}: missing required key '{key}'")
            for key in ("name", "flow", "modality"):
                if not isinstance(ch[key], str) or not ch[key]:
                    raise GameSpecError(
                        f"{where}.{key}: expected a non-empty string, got {ch[key]!r}"
                    )
                labels[{"name": "names", "flow": "flows", "modality": "modalities"}[key]].append(
                    ch[key]
                )
            for key in CHANNEL_ARRAYS:
                columns[key].append(_number(ch.get(key, _OPTIONAL.get(key)), f"{where}.{key}"))
        return cls.create(
            mode=d["mode"],
            attacker_budget=_number(d["attacker_budget"], "game.attacker_budget"),
            defender_budget=_number(d["defender_budget"], "game.defender_budget"),
            utility_price=_number(d.get("utility_price", 0.0), "game.utility_price"),
            effect=d.get("effect", "exp"),
            levers=d.get("levers", LEVERS),
            name=str(d.get("name", "game")),
            **labels,
            **columns,
        )

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
        utility_price: float = 0.0,
        cap=None,
        cost_n=None,
        cost_s=None,
        cost_b=None,
        effect: str = "exp",
        levers: Sequence[str] = LEVERS,
        names: Sequence[str] | None = None,
        flows: Sequence[str] | None = None,
        modalities: Sequence[str] | None = None,
        name: str = "game",
    ) -> Game:
        """Build and validate a game from per-channel arrays (keyword names as in docs §1.1).

        ``names``, ``flows`` and ``modalities`` are per-channel labels; ``name`` names the game.
        Defaults: no cap, unit costs, all three levers, ``exp`` effects.
        """
        arrays = {"B": B, "S": S, "N": N, "w": w, "u": u, "rho": rho, "alpha": alpha,
                  "beta": beta, "gamma": gamma}
        k = np.size(_float_array(B, "game.B"))
        defaults = {"cap": math.inf, "cost_n": 1.0, "cost_s": 1.0, "cost_b": 1.0}
        for key, value in (("cap", cap), ("cost_n", cost_n), ("cost_s", cost_s),
                           ("cost_b", cost_b)):
            arrays[key] = np.full(k, defaults[key]) if value is None else value
        out = {}
        for key in CHANNEL_ARRAYS:
            arr = _float_array(arrays[key], f"game.{key}").reshape(-1)
            if arr.shape != (k,):
                raise GameSpecError(
                    f"game.{key}: expected {k} values (one per channel), got shape {arr.shape}"
                )
            out[key] = arr
        if k == 0:
            raise GameSpecError("game.channels: the game has no channels; give at least one")
        for label, values in (("names", names), ("flows", flows), ("modalities", modalities)):
            if values is not None and (isinstance(values, str) or not isinstance(values, Sequence)
                                       or not all(isinstance(v, str) for v in values)):
                raise GameSpecError(f"game.{label}: expected a list of {k} strings (one per "
                                    f"channel), got {_short(values)}")
        names = tuple(names) if names is not None else tuple(f"channel{i}" for i in range(k))
        flows = tuple(flows) if flows is not None else ("prediction",) * k
        modalities = tuple(modalities) if modalities is not None else ("text",) * k
        for label, values in (("name", names), ("flow", flows), ("modality", modalities)):
            if len(values) != k:
                raise GameSpecError(f"game.{label}: expected {k} labels, got {len(values)}")
        if mode not in MODES:
            raise GameSpecError(f"game.mode: unknown mode {mode!r}; expected one of {MODES}")
        if effect not in EFFECTS:
            raise GameSpecError(
                f"game.effect: unknown effect map {effect!r}; expected one of {EFFECTS}"
            )
        levers = _check_levers(levers)
        for i, f in enumerate(flows):
            if f not in FLOWS:
                raise GameSpecError(
                    f"game.channels[{i}] ({names[i]}).flow: unknown flow {f!r}; "
                    f"expected one of {FLOWS}"
                )
        _check_channels(out, names)
        attacker_budget = _check_scalar("attacker_budget", attacker_budget)
        defender_budget = _check_scalar("defender_budget", defender_budget)
        utility_price = _check_scalar("utility_price", utility_price)
        return cls(
            **{key: jnp.asarray(v) for key, v in out.items()},
            attacker_budget=jnp.asarray(attacker_budget),
            defender_budget=jnp.asarray(defender_budget),
            utility_price=jnp.asarray(utility_price),
            mode=mode, effect=effect, levers=levers, names=names, flows=flows,
            modalities=modalities, name=str(name),
        )

    # ----------------------------------------------------------------- helpers
    @property
    def num_channels(self) -> int:
        return int(np.shape(self.B)[-1])

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(np.shape(self.B)[:-1])

    def replace(self, **changes: Any) -> Game:
        """A validated copy with some fields changed (arrays, budgets, mode, levers, ...)."""
        if self.batch_shape:
            raise GameSpecError("game.replace: not available on a stacked (batched) game")
        d = self.to_dict()
        top = {"mode", "attacker_budget", "defender_budget", "utility_price", "effect",
               "levers", "name"}
        for key, value in changes.items():
            if key in top:
                d[key] = value
            elif key in CHANNEL_ARRAYS:
                values = np.broadcast_to(np.asarray(value, dtype=float), (self.num_channels,))
                for ch, v in zip(d["channels"], values, strict=True):
                    ch[key] = float(v)
            else:
                raise GameSpecError(f"game.replace: unknown field {key!r}")
        return Game.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        """The inverse of :meth:`from_dict` (plain Python floats and strings)."""
        if self.batch_shape:
            raise GameSpecError("game.to_dict: not available on a stacked (batched) game")
        channels = []
        for i in range(self.num_channels):
            ch: dict[str, Any] = {"name": self.names[i], "flow": self.flows[i],
                                  "modality": self.modalities[i]}
            for key in CHANNEL_ARRAYS:
                ch[key] = float(np.asarray(getattr(self, key))[i])
            channels.append(ch)
        return {
            "name": self.name, "mode": self.mode, "effect": self.effect,
            "levers": list(self.levers),
            "attacker_budget": float(self.attacker_budget),
            "defender_budget": float(self.defender_budget),
            "utility_price": float(self.utility_price),
            "channels": channels,
        }

    def lever_mask(self) -> jax.Array:
        """(3,) array: 1 where the defender may invest in lever n, s, b; 0 where not."""
        return jnp.asarray([float(lv in self.levers) for lv in LEVERS])

    def cost_matrix(self) -> jax.Array:
        """(..., 3, K) unit costs of the levers n, s, b per channel."""
        return jnp.stack([self.cost_n, self.cost_s, self.cost_b], axis=-2)


jax.tree_util.register_dataclass(Game)


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


def _number(value: Any, where: str) -> float:
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
            f"{where}: the integer {_short(value)} is beyond the float64 range (|x| < 1.8e308); "
            f"see the supported ranges in docs/supported-ranges.md"
        ) from None
    except (TypeError, ValueError):
        raise GameSpecError(f"{where}: expected a number, got {_short(value)}") from None


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:28]}...{text[-12:]} ({len(text)} characters)"


def _float_array(value: Any, where: str) -> np.ndarray:
    """``value`` as a float64 array, or a :class:`GameSpecError` naming ``where``."""
    if isinstance(value, (str, bytes)):
        raise GameSpecError(f"{where}: expected numbers (one per channel), got the string "
                            f"{_short(value)}")
    try:
        arr = np.asarray(value, dtype=object)
    except Exception:
        arr = None
    if arr is not None and arr.dtype == object:
        flat = arr.reshape(-1) if arr.ndim else arr.reshape(1)
        for i, v in enumerate(flat):
            if isinstance(v, (str, bytes, bool, np.bool_)) or v is None:
                raise GameSpecError(f"{where}[{i}]: expected a number, got {_short(v)}")
            _number(v, f"{where}[{i}]")
    try:
        return np.asarray(value, dtype=np.float64)
    except OverflowError:
        raise GameSpecError(f"{where}: a value is beyond the float64 range (|x| < 1.8e308)"
                            ) from None
    except (TypeError, ValueError) as err:
        raise GameSpecError(f"{where}: expected numbers (one per channel): {err}") from None


# Supported ranges (docs/supported-ranges.md). Inside them every product the engine forms
# (SNRs, water levels, multipliers, the payoff and its Lagrangian) stays far inside float64, and
# the certificate was measured sound over them (experiments/supported_ranges.py); values that
# are merely representable (N = 5e-324, lambda = 1.7e308) are refused at the door.
PARAM_RANGE = (1e-6, 1e6)  # B, S, N, alpha, beta, gamma, cost_n, cost_s, cost_b: [lo, hi]
WEIGHT_MAX = 1e6  # w, u in [0, WEIGHT_MAX]
BUDGET_MAX = {"attacker_budget": 1e9, "defender_budget": 1e9, "utility_price": 1e6}
CAP_MAX = 1e9  # cap in [0, CAP_MAX] or inf (no cap)
RANGES_DOC = "docs/supported-ranges.md"


def _in(lo: float, hi: float):
    return lambda v: lo <= v <= hi


_LO, _HI = PARAM_RANGE
_POSITIVE = (f"in [{_LO:g}, {_HI:g}] (the supported range, {RANGES_DOC})", _in(_LO, _HI))
_WEIGHT = (f"in [0, {WEIGHT_MAX:g}] (the supported range, {RANGES_DOC})", _in(0.0, WEIGHT_MAX))
_RANGES = {
    "B": _POSITIVE,
    "S": _POSITIVE,
    "N": _POSITIVE,
    "w": _WEIGHT,
    "u": _WEIGHT,
    "rho": ("in [0, 1]", lambda v: 0 <= v <= 1),
    "alpha": _POSITIVE,
    "beta": _POSITIVE,
    "gamma": _POSITIVE,
    "cap": (f"0 (no access), inf (no cap) or in [0, {CAP_MAX:g}] (the supported range, "
            f"{RANGES_DOC})", lambda v: v == math.inf or 0 <= v <= CAP_MAX),
    "cost_n": _POSITIVE,
    "cost_s": _POSITIVE,
    "cost_b": _POSITIVE,
}


def _check_channels(arrays: Mapping[str, np.ndarray], names: Sequence[str]) -> None:
    for key, (allowed, ok) in _RANGES.items():
        for i, v in enumerate(arrays[key]):
            if not ok(v):
                raise GameSpecError(
                    f"game.channels[{i}] ({names[i]}).{key}: got {float(v)!r}; expected {allowed}"
                )


def _check_scalar(key: str, value: Any) -> float:
    v = _number(value, f"game.{key}")
    hi = BUDGET_MAX[key]
    if not (math.isfinite(v) and 0 <= v <= hi):
        raise GameSpecError(
            f"game.{key}: got {v!r}; expected a finite number in [0, {hi:g}] (the supported "
            f"range, {RANGES_DOC})"
        )
    return v


def _check_levers(levers: Any) -> tuple[str, ...]:
    if isinstance(levers, str):
        levers = tuple(levers.replace(",", " ").split()) if " " in levers or "," in levers \
            else tuple(levers)
    if isinstance(levers, Mapping) or not isinstance(levers, Sequence | set | frozenset):
        raise GameSpecError(
            f"game.levers: expected a list of levers from {list(LEVERS)} (e.g. [n, s, b]), "
            f"got {_short(levers)}"
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
