"""Game construction: the dict schema round-trips, and every class of bad input is named."""

import copy
import math

import numpy as np
import pytest

import minimax
from minimax import GameSpecError

BASE = {
    "mode": "injection",
    "attacker_budget": 5.0,
    "defender_budget": 2.0,
    "utility_price": 0.0,
    "channels": [
        {
            "name": "prediction/image",
            "flow": "prediction",
            "modality": "image",
            "B": 1.0,
            "S": 2.0,
            "N": 0.5,
            "w": 1.0,
            "u": 1.0,
            "rho": 0.3,
            "alpha": 1.0,
            "beta": 0.5,
            "gamma": 1.0,
            "cap": math.inf,
            "cost_n": 1,
            "cost_s": 1,
            "cost_b": 1,
        },
        {
            "name": "memory/text",
            "flow": "memory",
            "modality": "text",
            "B": 2.0,
            "S": 1.0,
            "N": 1.0,
            "w": 1.5,
            "u": 0.5,
            "rho": 0.0,
            "alpha": 0.5,
            "beta": 0.5,
            "gamma": 2.0,
        },
    ],
}


def with_channel(field, value, index=0):
    d = copy.deepcopy(BASE)
    d["channels"][index][field] = value
    return d


def with_top(field, value):
    d = copy.deepcopy(BASE)
    d[field] = value
    return d


def test_round_trip():
    game = minimax.Game.from_dict(BASE)
    again = minimax.Game.from_dict(game.to_dict())
    assert again.to_dict() == game.to_dict()
    assert game.num_channels == 2
    assert game.names == ("prediction/image", "memory/text")
    assert float(game.cap[1]) == math.inf  # optional keys default
    assert float(game.cost_b[1]) == 1.0


def test_yaml_inf_string_is_accepted():
    game = minimax.Game.from_dict(with_channel("cap", ".inf"))
    assert float(game.cap[0]) == math.inf


@pytest.mark.parametrize("field", ["B", "S", "N"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0.0])
def test_bad_power_or_bandwidth(field, value):
    with pytest.raises(GameSpecError, match=rf"channels\[0\] \(prediction/image\)\.{field}"):
        minimax.Game.from_dict(with_channel(field, value))


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_rho_outside_unit_interval(value):
    with pytest.raises(GameSpecError, match=r"\.rho: got .*expected in \[0, 1\]"):
        minimax.Game.from_dict(with_channel("rho", value, index=1))


@pytest.mark.parametrize("field", ["attacker_budget", "defender_budget", "utility_price"])
@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf")])
def test_bad_budgets(field, value):
    with pytest.raises(GameSpecError, match=rf"game\.{field}: got"):
        minimax.Game.from_dict(with_top(field, value))


@pytest.mark.parametrize("field", ["w", "u"])
def test_negative_weights(field):
    with pytest.raises(GameSpecError,
                       match=rf"\.{field}: got -1.0; expected in \[0, 1e\+06\]"):
        minimax.Game.from_dict(with_channel(field, -1.0))


@pytest.mark.parametrize("field", ["alpha", "beta", "gamma", "cost_n", "cost_s", "cost_b"])
def test_non_positive_effectiveness_or_cost(field):
    with pytest.raises(GameSpecError,
                       match=rf"\.{field}: got 0.0; expected in \[1e-06, 1e\+06\] \(the supp"):
        minimax.Game.from_dict(with_channel(field, 0.0))


def test_negative_cap():
    with pytest.raises(GameSpecError, match=r"\.cap: got -1.0"):
        minimax.Game.from_dict(with_channel("cap", -1.0))


def test_unknown_mode():
    with pytest.raises(GameSpecError, match=r"game\.mode: unknown mode 'stealing'"):
        minimax.Game.from_dict(with_top("mode", "stealing"))


def test_unknown_flow():
    with pytest.raises(GameSpecError, match=r"channels\[0\].*flow: unknown flow 'vision'"):
        minimax.Game.from_dict(with_channel("flow", "vision"))


def test_no_channels():
    with pytest.raises(GameSpecError, match="no channels"):
        minimax.Game.from_dict(with_top("channels", []))


@pytest.mark.parametrize("key", ["mode", "attacker_budget", "defender_budget", "channels"])
def test_missing_top_level_key(key):
    d = copy.deepcopy(BASE)
    del d[key]
    with pytest.raises(GameSpecError, match=f"missing required key '{key}'"):
        minimax.Game.from_dict(d)


def test_missing_channel_key():
    d = copy.deepcopy(BASE)
    del d["channels"][1]["gamma"]
    with pytest.raises(GameSpecError, match=r"channels\[1\] \(memory/text\).*missing.*'gamma'"):
        minimax.Game.from_dict(d)


@pytest.mark.parametrize("value", ["lots", None, True, [1.0]])
def test_wrong_type(value):
    with pytest.raises(GameSpecError, match=r"channels\[0\] \(prediction/image\)\.B: expected"):
        minimax.Game.from_dict(with_channel("B", value))


def test_wrong_type_of_channels_and_labels():
    with pytest.raises(GameSpecError, match="expected a list of channel mappings"):
        minimax.Game.from_dict(with_top("channels", "prediction"))
    with pytest.raises(GameSpecError, match=r"\.name: expected a non-empty string"):
        minimax.Game.from_dict(with_channel("name", 3))
    with pytest.raises(GameSpecError, match="expected a mapping"):
        minimax.Game.from_dict([1, 2])


def test_unknown_keys_are_rejected_not_ignored():
    with pytest.raises(GameSpecError, match=r"unknown key\(s\) \['bandwith'\]"):
        minimax.Game.from_dict(with_channel("bandwith", 1.0))
    with pytest.raises(GameSpecError, match=r"unknown key\(s\) \['budget'\]"):
        minimax.Game.from_dict(with_top("budget", 1.0))


def test_bad_levers_and_effect():
    with pytest.raises(GameSpecError, match="game.levers"):
        minimax.Game.from_dict(with_top("levers", ["n", "x"]))
    with pytest.raises(GameSpecError, match="game.levers"):
        minimax.Game.from_dict(with_top("levers", []))
    with pytest.raises(GameSpecError, match="game.effect: unknown effect map 'linear'"):
        minimax.Game.from_dict(with_top("effect", "linear"))


def test_bad_defense():
    game = minimax.Game.from_dict(BASE)
    with pytest.raises(GameSpecError, match=r"defense.n: got \[-1.0, 0.0\]"):
        minimax.best_response(game, {"n": [-1.0, 0.0]})
    with pytest.raises(GameSpecError, match="defense.s: expected 2 values"):
        minimax.best_response(game, {"s": [1.0, 0.0, 0.0]})
    with pytest.raises(GameSpecError, match=r"defense: unknown lever\(s\) \['q'\]"):
        minimax.best_response(game, {"q": [1.0, 0.0]})


def test_nothing_is_clipped_silently():
    d = with_channel("rho", 1.0000001)
    with pytest.raises(GameSpecError):
        minimax.Game.from_dict(d)


def test_replace_validates():
    game = minimax.Game.from_dict(BASE)
    assert float(game.replace(attacker_budget=7.0).attacker_budget) == 7.0
    np.testing.assert_allclose(game.replace(gamma=[3.0, 4.0]).gamma, [3.0, 4.0])
    with pytest.raises(GameSpecError):
        game.replace(N=-1.0)
    with pytest.raises(GameSpecError, match="unknown field"):
        game.replace(colour=1)


def test_default_game_config_loads():
    import yaml

    from minimax.runtime import conf_dir

    d = yaml.safe_load((conf_dir() / "game" / "mfm_default.yaml").read_text())
    game = minimax.Game.from_dict(d)
    assert game.num_channels == 12
    assert set(game.flows) == set(minimax.FLOWS)
    assert set(game.modalities) == {"text", "image"}
