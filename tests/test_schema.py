"""The Game schema (minimax.schema) is the one source of the game's fields, defaults and
ranges: from_dict, create, to_dict, the validated replace and view, and the sweep's defaults
all read it, and nothing in the repository builds a game around its checks."""

from __future__ import annotations

import inspect
import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import minimax
from minimax.errors import GameSpecError
from minimax.schema import BY_ATTR, CHANNEL_FIELDS, FIELDS, REQUIRED, TOP_FIELDS, dict_default
from minimax.sweep import apply_param

ROOT = Path(__file__).resolve().parents[1]
MINIMAL = {"mode": "injection", "attacker_budget": 2.0, "defender_budget": 1.0, "channels": [
    {"name": "c0", "flow": "memory", "modality": "text", "B": 1.0, "S": 2.0, "N": 0.5,
     "w": 1.0, "u": 0.5, "rho": 0.3, "alpha": 1.0, "beta": 0.5, "gamma": 1.0},
    {"name": "c1", "flow": "prediction", "modality": "image", "B": 2.0, "S": 1.0, "N": 1.0,
     "w": 0.5, "u": 1.0, "rho": 0.0, "alpha": 0.5, "beta": 2.0, "gamma": 1.5}]}


def _full() -> dict:
    """A game dict giving every field a value other than its default."""
    chans = [{**MINIMAL["channels"][0], "cap": 3.0, "cost_n": 2.0, "cost_s": 0.5,
              "cost_b": 1.5},
             {**MINIMAL["channels"][1], "cap": math.inf, "cost_n": 1.0, "cost_s": 3.0,
              "cost_b": 0.25}]
    return {**MINIMAL, "name": "full", "mode": "jamming", "effect": "rational",
            "levers": ["n", "b"], "utility_price": 0.75, "channels": chans}


# ----------------------------------------------------------------------------- round trips
def test_every_field_round_trips_through_to_dict_and_from_dict():
    d = _full()
    game = minimax.Game.from_dict(d)
    out = game.to_dict()
    assert out == d
    assert set(out) == {f.key for f in TOP_FIELDS} | {"channels"}
    assert all(set(ch) == {f.key for f in CHANNEL_FIELDS} for ch in out["channels"])
    again = minimax.Game.from_dict(out)
    for f in FIELDS:
        a, b = getattr(game, f.attr), getattr(again, f.attr)
        if f.kind in ("channel", "scalar"):
            assert np.array_equal(np.asarray(a), np.asarray(b)), f.attr
        else:
            assert a == b, f.attr


# ----------------------------------------------------------------------------- one source
def test_defaults_come_from_the_schema_everywhere():
    """from_dict, create, the dataclass and the sweep fill in the schema's defaults; a second
    copy of a default that drifts from the schema fails here."""
    from_dict = minimax.Game.from_dict(MINIMAL).to_dict()
    required = {f.attr: [ch[f.key] for ch in MINIMAL["channels"]] for f in CHANNEL_FIELDS
                if f.kind == "channel" and f.default is REQUIRED}
    created = minimax.Game.create(mode="injection", attacker_budget=2.0, defender_budget=1.0,
                                  **required).to_dict()
    params = inspect.signature(minimax.Game.create).parameters
    optional = [f for f in FIELDS if f.default is not REQUIRED]
    assert {f.attr for f in optional} == {"name", "effect", "levers", "utility_price", "names",
                                          "flows", "modalities", "cap", "cost_n", "cost_s",
                                          "cost_b"}
    for f in optional:
        if f.kind == "channel":
            assert [ch[f.key] for ch in from_dict["channels"]] == [f.default] * 2
            assert [ch[f.key] for ch in created["channels"]] == [f.default] * 2
            assert params[f.attr].default is None  # None = the schema's default
            swept = {"channels": [{}], "mode": "injection"}
            apply_param(swept, f"channels.0.{f.attr}", 2.0, op="scale")
            assert swept["channels"][0][f.attr] == 2.0 * f.default
        elif f.kind == "label":
            assert dict_default(f) is REQUIRED  # labels are required in a game dict
            assert [ch[f.key] for ch in created["channels"]] == [
                f.default.format(i=i) for i in range(2)]
        else:
            expect = list(f.default) if f.attr == "levers" else f.default
            assert from_dict[f.key] == created[f.key] == expect, f.attr
            assert params[f.attr].default == f.default, f.attr
    swept = {"mode": "injection", "channels": [{}]}
    apply_param(swept, "utility_price", 3.0, op="scale")
    assert swept["utility_price"] == 3.0 * BY_ATTR["utility_price"].default
    with pytest.raises(GameSpecError, match="op=scale of 'attacker_budget'.*no default"):
        apply_param({"channels": []}, "attacker_budget", 2.0, op="scale")


# ----------------------------------------------------------------------------- replace
@pytest.mark.parametrize("changes,message", [
    ({"rho": [0.5, 1.5]}, r"game\.channels\[1\] \(c1\)\.rho: got 1\.5; expected in \[0, 1\]"),
    ({"N": 0.0}, r"game\.channels\[0\] \(c0\)\.N: got 0\.0; expected in \[1e-06"),
    ({"defender_budget": -1.0}, r"game\.defender_budget: got -1\.0; expected a finite number"),
    ({"mode": "flooding"}, r"game\.mode: unknown mode 'flooding'"),
    ({"effect": "linear"}, r"game\.effect: unknown effect map 'linear'"),
    ({"levers": ["x"]}, r"game\.levers: \['x'\] is not a non-empty set"),
    ({"flows": ["memory", "dreams"]}, r"game\.channels\[1\] \(c1\)\.flow: unknown flow 'dreams'"),
    ({"names": ["only-one"]}, r"game\.name: expected 2 labels, got 1"),
    ({"B": [1.0, 2.0, 3.0]}, r"game\.B: expected 2 values \(one per channel\), got shape \(3,\)"),
    ({"gamma_": 1.0}, r"game\.replace: unknown field\(s\) \['gamma_'\]"),
])
def test_replace_rechecks_and_names_the_field(changes, message):
    game = minimax.Game.from_dict(MINIMAL)
    with pytest.raises(GameSpecError, match=message):
        game.replace(**changes)


def test_replace_changes_any_field_and_keeps_the_rest():
    game = minimax.Game.from_dict(MINIMAL)
    new = game.replace(mode="jamming", names=["a", "b"], cap=[1.0, math.inf], utility_price=2)
    assert (new.mode, new.names, float(new.utility_price)) == ("jamming", ("a", "b"), 2.0)
    assert np.asarray(new.cap).tolist() == [1.0, math.inf]
    assert new.to_dict()["channels"][0]["B"] == 1.0 and new.flows == game.flows
    assert new.cap.dtype == jnp.float64


def test_replace_checks_a_stacked_game_and_names_the_batch_entry():
    """Stacked games (the analyses' ladders) are built by replace too, and checked."""
    view = minimax.Game.from_dict(MINIMAL).view()
    stacked = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(v, (3,) + jnp.shape(v)), view)
    ok = stacked.replace(attacker_budget=[1.0, 2.0, 4.0], cap=np.zeros((3, 2)))
    assert np.asarray(ok.attacker_budget).tolist() == [1.0, 2.0, 4.0]
    with pytest.raises(GameSpecError, match=r"game\[2\]\.attacker_budget: got 2000000000\.0"):
        stacked.replace(attacker_budget=[1.0, 2.0, 2e9])
    cap = np.zeros((3, 2))
    cap[1, 0] = -1.0
    with pytest.raises(GameSpecError, match=r"game\[1\]\.channels\[0\] \(channel0\)\.cap"):
        stacked.replace(cap=cap)


def test_view_drops_only_the_labels():
    game = minimax.Game.from_dict(_full())
    view = game.view()
    assert (view.names, view.flows, view.modalities, view.name) == ((), (), (), "")
    assert (view.mode, view.effect, view.levers) == (game.mode, game.effect, game.levers)
    assert jax.tree_util.tree_structure(view) == jax.tree_util.tree_structure(
        minimax.Game.from_dict({**_full(), "name": "other"}).view())


def test_no_module_builds_a_game_around_the_checks():
    """``dataclasses.replace`` skips every construction check; games change by
    ``Game.replace`` (checked) or ``Game.view`` (labels only)."""
    offenders = []
    for path in [*ROOT.glob("minimax/**/*.py"), *ROOT.glob("experiments/**/*.py"),
                 *ROOT.glob("tests/**/*.py")]:
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"dataclasses\.replace\(", line):
                offenders.append(f"{path.relative_to(ROOT)}:{i}: {line.strip()}")
    assert offenders == []
