"""Structured schema of the Hydra app's configuration, checked once at start-up.

Hydra composes plain YAML from ``conf/``; :func:`validate_config` merges the result into the
dataclasses below (``OmegaConf.structured``), so an unknown key, a wrong type or a missing
(``???``) value fails at start with a message that names it, before any solving.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from minimax.errors import GameSpecError


@dataclasses.dataclass
class SolverConfig:
    """``conf/solver/*.yaml``: which method and its options (see :func:`minimax.solve`)."""

    method: str = "auto"
    starts: int = 16
    steps: int = 300
    learning_rate: float = 0.1
    final_learning_rate: float = 1e-9
    seed: int = 0
    tol: float = 1e-8
    max_iter: int = 200


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


def solver_options(solver: SolverConfig) -> tuple[str, dict[str, Any]]:
    """The method name and the keyword options that method accepts."""
    opts = dataclasses.asdict(solver)
    method = opts.pop("method")
    if method == "convex":
        keep = ("tol", "max_iter")
    else:
        keep = ("starts", "steps", "learning_rate", "final_learning_rate", "seed")
    return method, {k: opts[k] for k in keep}


def game_dict(cfg: AppConfig) -> dict[str, Any]:
    """The game's dict with the top-level overrides applied."""
    game = dict(cfg.game)
    game.pop("defaults", None)
    for key in ("attacker_budget", "defender_budget", "utility_price", "mode", "levers"):
        value = getattr(cfg, key)
        if value is not None:
            game[key] = list(value) if key == "levers" and not isinstance(value, str) else value
    return game
