"""Structured schema of the Hydra app's configuration, checked once at start-up.

Hydra composes plain YAML from ``conf/``; :func:`validate_config` merges the result into the
dataclasses below (``OmegaConf.structured``), so an unknown key, a wrong type or a missing
(``???``) value fails at start with a message that names it, before any solving.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from minimax.errors import GameSpecError
from minimax.methods import METHODS


def _solver_fields() -> list[tuple[str, Any, Any]]:
    """The options of every method of the registry, each typed as its options record types it
    and defaulting to None (= the method's own default, ``conf/solver/NAME.yaml``)."""
    types: dict[str, Any] = {}
    for spec in METHODS.values():
        for key, hint in typing.get_type_hints(spec.options).items():
            if types.setdefault(key, hint) != hint:
                raise TypeError(f"option {key!r} has two types in the registry: "
                                f"{types[key]} and {hint}")
    return [(key, typing.Optional[hint], dataclasses.field(default=None))  # noqa: UP045
            for key, hint in types.items()]


@dataclasses.dataclass
class _SolverBase:
    method: str = "auto"
    # largest certified gap reported as status "certified" (else "gap_above_tol", exit code 3);
    # null = any valid certificate counts as certified. For double_oracle: its stopping tol.
    gap_tol: float | None = None
    # lower-bound resolution passed to the solver (keys of minimax.BoundConfig: boxes, refine,
    # rounds, nu_steps, bisect_s, ...); empty = the defaults
    bound: dict[str, Any] = dataclasses.field(default_factory=dict)


SolverConfig = dataclasses.make_dataclass("SolverConfig", _solver_fields(), bases=(_SolverBase,))
SolverConfig.__doc__ = """``conf/solver/*.yaml``: the method and its options (see ``solve``).

Its keys are the options of every method of the registry :data:`minimax.methods.METHODS`
(None = the method's default); :func:`solver_options` passes on those given, and a method
refuses an option it does not read."""
SolverConfig.__module__ = __name__


@dataclasses.dataclass
class AppConfig:
    """``conf/config.yaml``: a game, a solver and optional top-level overrides of the game."""

    game: Any = dataclasses.field(default_factory=dict)
    solver: SolverConfig = dataclasses.field(default_factory=SolverConfig)
    attacker_budget: float | None = None
    defender_budget: float | None = None
    utility_price: float | None = None
    mode: str | None = None
    levers: Any = None
    print_table: bool = True
    # a finite zero-sum game from a CSV / .npy loss matrix (rows = defender, minimising)
    # instead of the channel game: python -m minimax matrix=path/to/A.csv
    matrix: str | None = None


class ConfigError(GameSpecError):
    """The composed configuration does not match the schema."""


def validate_config(cfg: DictConfig | dict, schema: type = AppConfig) -> Any:
    """Merge ``cfg`` (without its ``hydra`` node) into ``schema``; return the typed object."""
    data = OmegaConf.to_container(cfg, resolve=False) if isinstance(cfg, DictConfig) else cfg
    data = {k: v for k, v in dict(data).items() if k != "hydra"}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), data)
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or getattr(err, "key", None) or "?"
        msg = str(err).splitlines()[0]
        raise ConfigError(f"config: invalid value at '{key}': {msg}") from None


def solver_options(solver: Any) -> tuple[str, dict[str, Any]]:
    """The method name and the keyword options given for it (those not None, the ``bound``
    options, ``gap_tol`` if set), for :func:`minimax.methods.run_method`."""
    opts = dataclasses.asdict(solver)
    method = opts.pop("method")
    bound = dict(opts.pop("bound"))
    given = {k: v for k, v in opts.items() if v is not None}
    return method, {**given, **bound}


def game_dict(cfg: AppConfig) -> dict[str, Any]:
    """The game's dict with the top-level overrides applied."""
    game = dict(cfg.game)
    game.pop("defaults", None)
    for key in ("attacker_budget", "defender_budget", "utility_price", "mode", "levers"):
        value = getattr(cfg, key)
        if value is not None:
            game[key] = list(value) if key == "levers" and not isinstance(value, str) else value
    return game


# ----------------------------------------------------------------------------- sweeps
@dataclasses.dataclass
class AxisConfig:
    """One swept parameter of ``conf/sweep/*.yaml`` (see :mod:`minimax.sweep`).

    ``param`` names what changes: ``attacker_budget``, ``defender_budget``, ``utility_price``;
    ``channels.FIELD`` (every channel) or ``channels.SEL.FIELD`` where SEL is a channel index,
    a channel name (``agent_app/text``) or a flow (``agent_app``). Values are ``values`` (a
    list) or ``num`` points from ``start`` to ``stop`` (``scale``: linear or log). ``op``:
    ``set`` the field to the value, or ``scale`` (multiply) the game's own value by it.
    """

    param: str = MISSING
    values: list[float] | None = None
    start: float | None = None
    stop: float | None = None
    num: int | None = None
    scale: str = "linear"
    op: str = "set"


@dataclasses.dataclass
class SweepConfig:
    """``conf/sweep/*.yaml``: which points to solve and how to batch them.

    ``kind``: ``grid`` (Cartesian product of the axes, first axis slowest) or ``zip`` (axes
    of equal length taken together: a list of points). ``options`` are solver options applied
    on top of ``solver`` for this sweep only (``starts``, ``steps``, ``seed``; lower-bound
    resolution ``bisect_s``, ``boxes``, ``refine``, ``rounds``, ``nu_steps``, ... -- see
    :class:`minimax.BoundConfig`). ``chunk_size`` games are solved per vmapped call;
    ``n_jobs`` processes (joblib) solve chunks in parallel. ``shard``/``num_shards``: solve only
    the points with ``index % num_shards == shard`` (one shard per cluster job).
    ``stop_after_chunks`` stops after that many new chunks (simulates an interruption).
    """

    name: str = "sweep"
    kind: str = "grid"
    axes: list[AxisConfig] = dataclasses.field(default_factory=list)
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    chunk_size: int = 256
    n_jobs: int = 1
    shard: int = 0
    num_shards: int = 1
    figure: bool = True
    stop_after_chunks: int | None = None


@dataclasses.dataclass
class SweepAppConfig:
    """``conf/sweep.yaml``: base game, solver and sweep (``python -m minimax.sweep``)."""

    game: Any = dataclasses.field(default_factory=dict)
    solver: SolverConfig = dataclasses.field(default_factory=SolverConfig)
    sweep: SweepConfig = dataclasses.field(default_factory=SweepConfig)
