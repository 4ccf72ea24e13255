"""The attack taxonomy and the defense catalogue as data (docs/analyses.md §4.2).

An **attack class** k is a pattern of per-channel power caps (which channels of which flows and
modalities it can reach, and how much power it can put on each), a payoff ``mode`` (injection or
jamming) and a weight omega_k. A **defense** j is a fixed investment pattern over
(lever, channel): amounts of noise suppression n, signal enhancement s and bandwidth
restriction b, in the game's budget units, plus the cost it declares.

Both are written in YAML (``conf/taxonomy/*.yaml``, ``conf/defense/*.yaml``) and matched to a
game's channels by ``flow/modality`` patterns with shell wildcards (``agent_app/*``,
``*/image``, ``prediction/text``), so one catalogue serves every game that uses the six flows:

* a class's cap on channel i is ``min(game cap_i, max of the class caps whose pattern matches
  channel i)``, and 0 (no access) where no pattern matches;
* a defense puts on channel i the sum of the amounts of every entry whose pattern matches it.

A defense's declared ``cost`` is checked against the game's cost of its investment,
``sum_i cn_i n_i + cs_i s_i + cb_i b_i``, when a game is given (:func:`defense_cost_check`).
"""

from __future__ import annotations

import fnmatch
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import yaml

from minimax.errors import GameSpecError
from minimax.game import FLOWS, LEVERS, MODES, Defense, Game

CATEGORIES = ("model", "system")


class AttackClass(NamedTuple):
    """One attack class of the taxonomy."""

    name: str  # identifier, e.g. "visual_jailbreak"
    mode: str  # "injection" or "jamming"
    weight: float  # omega_k >= 0, relative frequency x severity
    reach: tuple[tuple[str, float], ...]  # (flow/modality pattern, power cap in [0, inf])
    description: str = ""
    sources: tuple[str, ...] = ()


class Taxonomy(NamedTuple):
    """Flows, axes and attack classes, as loaded from ``conf/taxonomy/*.yaml``."""

    name: str
    flows: dict[str, dict[str, Any]]
    axes: dict[str, dict[str, Any]]
    classes: tuple[AttackClass, ...]

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.classes)


class DefenseSpec(NamedTuple):
    """One catalogue defense: a fixed investment pattern over (lever, channel pattern)."""

    name: str
    category: str  # "model" (model-centric) or "system" (system-level)
    investments: tuple[tuple[str, str, float], ...]  # (flow/modality pattern, lever, amount)
    cost: float  # declared budget units (checked against the game's cost of the investment)
    description: str = ""
    source: str = ""
    adaptive_failure: str = ""  # "yes" | "partial" | "no" | "unknown"
    adaptive_evidence: str = ""
    parameters: str = ""  # why these amounts
    provenance: str = "assumed"  # "measured" (amounts from a validation target) | "assumed"
    provenance_note: str = ""  # measured on which target and how, or assumed from which source


# ----------------------------------------------------------------------------- loading
def _read_yaml(path: str | Path) -> Any:
    path = Path(path)
    if not path.is_file():
        raise GameSpecError(f"{path}: file not found")
    with path.open() as fh:
        return yaml.safe_load(fh)


def _cap(value: Any, where: str) -> float:
    if isinstance(value, str) and value.strip().lower() in (".inf", "inf", "infinity"):
        return math.inf
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GameSpecError(f"{where}: expected a number in [0, inf] or '.inf', got {value!r}")
    if not (value >= 0):
        raise GameSpecError(f"{where}: got {value!r}; expected a power cap in [0, inf]")
    return float(value)


def _check_pattern(pattern: str, where: str) -> None:
    if not isinstance(pattern, str) or pattern.count("/") != 1:
        raise GameSpecError(
            f"{where}: pattern {pattern!r} must read 'flow/modality' (wildcards allowed, e.g. "
            f"'agent_app/*' or '*/image')"
        )
    flow = pattern.split("/")[0]
    if not any(fnmatch.fnmatchcase(f, flow) for f in FLOWS):
        raise GameSpecError(f"{where}: flow part {flow!r} of {pattern!r} matches none of {FLOWS}")


def taxonomy_from_dict(d: Mapping[str, Any], name: str = "taxonomy") -> Taxonomy:
    """Build a :class:`Taxonomy` from its YAML mapping (see ``conf/taxonomy/mfm.yaml``)."""
    for key in ("flows", "axes", "classes"):
        if key not in d:
            raise GameSpecError(f"taxonomy {name}: missing key '{key}'")
    flows = dict(d["flows"])
    if set(flows) != set(FLOWS):
        raise GameSpecError(f"taxonomy {name}.flows: got {sorted(flows)}; expected {FLOWS}")
    classes = []
    for cname, c in dict(d["classes"]).items():
        where = f"taxonomy {name}.classes.{cname}"
        mode = c.get("mode")
        if mode not in MODES:
            raise GameSpecError(f"{where}.mode: got {mode!r}; expected one of {MODES}")
        weight = c.get("weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise GameSpecError(f"{where}.weight: got {weight!r}; expected a number >= 0")
        reach = c.get("reach")
        if not isinstance(reach, Mapping) or not reach:
            raise GameSpecError(f"{where}.reach: expected a mapping 'flow/modality: cap'")
        pairs = []
        for pattern, cap in reach.items():
            _check_pattern(pattern, f"{where}.reach")
            pairs.append((pattern, _cap(cap, f"{where}.reach[{pattern}]")))
        sources = c.get("sources", ())
        if not sources:
            raise GameSpecError(f"{where}.sources: every class cites at least one paper")
        classes.append(AttackClass(
            name=str(cname), mode=mode, weight=float(weight), reach=tuple(pairs),
            description=str(c.get("description", "")).strip(),
            sources=tuple(str(s) for s in sources),
        ))
    return Taxonomy(name=name, flows=flows, axes=dict(d["axes"]), classes=tuple(classes))


def load_taxonomy(path: str | Path) -> Taxonomy:
    """Load ``conf/taxonomy/<name>.yaml``."""
    return taxonomy_from_dict(_read_yaml(path), name=Path(path).stem)


def defense_from_dict(d: Mapping[str, Any], name: str | None = None) -> DefenseSpec:
    """Build a :class:`DefenseSpec` from its YAML mapping (see ``conf/defense/*.yaml``)."""
    name = str(d.get("name", name or "defense"))
    where = f"defense {name}"
    category = d.get("category")
    if category not in CATEGORIES:
        raise GameSpecError(f"{where}.category: got {category!r}; expected one of {CATEGORIES}")
    inv = d.get("investments")
    if not isinstance(inv, Mapping) or not inv:
        raise GameSpecError(f"{where}.investments: expected a mapping "
                            f"'flow/modality: {{n: amount, s: amount, b: amount}}'")
    triples = []
    for pattern, levers in inv.items():
        _check_pattern(pattern, f"{where}.investments")
        if not isinstance(levers, Mapping):
            raise GameSpecError(f"{where}.investments[{pattern}]: expected {{lever: amount}}")
        for lever, amount in levers.items():
            if lever not in LEVERS:
                raise GameSpecError(f"{where}.investments[{pattern}]: unknown lever {lever!r}; "
                                    f"expected one of {LEVERS}")
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or not (
                    math.isfinite(amount) and amount >= 0):
                raise GameSpecError(f"{where}.investments[{pattern}].{lever}: got {amount!r}; "
                                    f"expected a finite amount >= 0 (budget units)")
            triples.append((pattern, lever, float(amount)))
    cost = d.get("cost")
    if isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0:
        raise GameSpecError(f"{where}.cost: got {cost!r}; expected a number >= 0")
    for key in ("source", "adaptive_failure"):
        if not d.get(key):
            raise GameSpecError(f"{where}.{key}: required (cite the paper / say yes|partial|no)")
    if d["adaptive_failure"] not in ("yes", "partial", "no", "unknown"):
        raise GameSpecError(f"{where}.adaptive_failure: got {d['adaptive_failure']!r}; expected "
                            f"yes, partial, no or unknown")
    prov = d.get("provenance") or {}
    if not isinstance(prov, Mapping):
        raise GameSpecError(f"{where}.provenance: expected a mapping {{status: measured|assumed,"
                            f" note: ...}}")
    status = str(prov.get("status", "assumed"))
    if status not in ("measured", "assumed"):
        raise GameSpecError(f"{where}.provenance.status: got {status!r}; expected measured or "
                            f"assumed")
    note = str(prov.get("note", "") or ("assumed from: " + str(d["source"]).strip())).strip()
    return DefenseSpec(
        name=name, category=category, investments=tuple(triples), cost=float(cost),
        provenance=status, provenance_note=note,
        description=str(d.get("description", "")).strip(), source=str(d["source"]).strip(),
        adaptive_failure=str(d["adaptive_failure"]),
        adaptive_evidence=str(d.get("adaptive_evidence", "")).strip(),
        parameters=str(d.get("parameters", "")).strip(),
    )


def load_catalogue(path: str | Path | Iterable[str | Path]) -> tuple[DefenseSpec, ...]:
    """Load every ``*.yaml`` in a directory (sorted by name), or the given files."""
    if isinstance(path, (str, Path)):
        root = Path(path)
        if not root.is_dir():
            raise GameSpecError(f"{root}: expected a directory of defense YAML files")
        files = sorted(root.glob("*.yaml"))
    else:
        files = [Path(p) for p in path]
    if not files:
        raise GameSpecError(f"{path}: no defense files found")
    specs = tuple(defense_from_dict(_read_yaml(f), name=f.stem) for f in files)
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise GameSpecError(f"catalogue: duplicate defense names {names}")
    return specs


# ----------------------------------------------------------------------------- matching
def channel_labels(game: Game) -> tuple[str, ...]:
    """``flow/modality`` of every channel, the string patterns are matched against."""
    return tuple(f"{f}/{m}" for f, m in zip(game.flows, game.modalities, strict=True))


def _matches(labels: Sequence[str], pattern: str) -> np.ndarray:
    return np.array([fnmatch.fnmatchcase(lab, pattern) for lab in labels])


def class_caps(game: Game, cls: AttackClass) -> np.ndarray:
    """(K,) power caps of class ``cls`` on ``game``: min(game cap, class cap); 0 if unreached."""
    labels = channel_labels(game)
    caps = np.zeros(game.num_channels)
    for pattern, cap in cls.reach:
        caps = np.where(_matches(labels, pattern), np.maximum(caps, cap), caps)
    return np.minimum(caps, np.asarray(game.cap, dtype=float))


def defense_vector(game: Game, spec: DefenseSpec) -> Defense:
    """The investment (n, s, b), each (K,), that ``spec`` puts on ``game``'s channels."""
    labels = channel_labels(game)
    x = {lv: np.zeros(game.num_channels) for lv in LEVERS}
    for pattern, lever, amount in spec.investments:
        x[lever] = x[lever] + amount * _matches(labels, pattern)
    return Defense(**x)


def investment_cost(game: Game, defense: Defense) -> float:
    """sum_i cn_i n_i + cs_i s_i + cb_i b_i in budget units."""
    return float(np.sum(np.asarray(game.cost_n) * np.asarray(defense.n)
                        + np.asarray(game.cost_s) * np.asarray(defense.s)
                        + np.asarray(game.cost_b) * np.asarray(defense.b)))


def defense_cost_check(game: Game, spec: DefenseSpec, rtol: float = 1e-9) -> float:
    """The game's cost of ``spec``'s investment; raises if it differs from the declared cost."""
    cost = investment_cost(game, defense_vector(game, spec))
    if not math.isclose(cost, spec.cost, rel_tol=rtol, abs_tol=1e-12):
        raise GameSpecError(
            f"defense {spec.name}.cost: declared {spec.cost}, but its investments cost {cost:.6g} "
            f"on game {game.name!r} (sum of amount x unit cost over matched channels); fix the "
            f"declared cost or the amounts"
        )
    return cost
