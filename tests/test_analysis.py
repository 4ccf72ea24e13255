"""Asymmetry (docs/analyses.md §4.1) against its closed form, and the experiment presets."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from hydra import compose, initialize_config_dir

import minimax
from minimax.analysis import asymmetry, closed_form_one_channel

ROOT = Path(__file__).resolve().parents[1]
POWERS = np.geomspace(1.0, 1e8, 17)


def test_one_channel_asymmetry_matches_closed_form():
    game = minimax.Game.from_dict(
        yaml.safe_load((ROOT / "conf/game/single_channel.yaml").read_text())
    )
    r = asymmetry(game, POWERS)
    r_model, r_sys = closed_form_one_channel(game, POWERS)
    np.testing.assert_allclose(r.r_model, r_model, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(r.r_sys, r_sys, rtol=1e-10, atol=1e-12)
    # the theorem's shape: model-centric protection decays to 0, system-level is constant
    assert np.all(np.diff(r.r_model) < 0) and r.r_model[-1] < 0.15 < r.r_model[0]
    assert np.ptp(r.r_sys) < 1e-12
    # and decays like alpha D / ln(P / m0)
    m0 = float(game.N[0] + game.S[0])
    big = POWERS > 1e6
    ratio = r.r_model[big] / (2.0 / np.log(POWERS[big] / m0))
    assert np.all(np.abs(ratio - 1) < 0.15)


@pytest.mark.slow
def test_two_channel_asymmetry_certified_against_symmetric_closed_form():
    """Two identical channels: the restricted optima are symmetric (each restricted game is
    convex), so R_model = 1 - ln(1 + P e^{-alpha D/2}/(2 m0)) / ln(1 + P/(2 m0)) and
    R_sys = 1 - e^{-gamma D/2}."""
    game = minimax.Game.create(
        mode="injection",
        attacker_budget=1.0,
        defender_budget=2.0,
        B=[1.0, 1.0],
        S=[2.0, 2.0],
        N=[0.5, 0.5],
        w=[1.0, 1.0],
        u=[1.0, 1.0],
        rho=[0.3, 0.3],
        alpha=[1.0, 1.0],
        beta=[0.5, 0.5],
        gamma=[1.0, 1.0],
    )
    # four powers, both ends of the range: a batch of four compiles one batch size only
    p = np.geomspace(1.0, 1e8, 4)
    r = asymmetry(game, p, starts=4, steps=200)
    m0 = 2.5
    np.testing.assert_allclose(
        r.r_model, 1 - np.log1p(p * math.exp(-1.0) / (2 * m0)) / np.log1p(p / (2 * m0)), rtol=1e-6
    )
    np.testing.assert_allclose(r.r_sys, 1 - math.exp(-1.0), rtol=1e-6)
    assert np.all(r.gap_model < 1e-8) and np.all(r.gap_sys < 1e-8)


PRESETS = ["taxonomy", "dci", "asymmetry", "threshold"]


@pytest.mark.parametrize("name", PRESETS)
def test_experiment_presets_compose(name):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(config_name="config", overrides=[f"experiment={name}"])
    assert cfg.analysis.name == name
    assert cfg.analysis.out_dir == f"experiments/results/{name}"


def test_taxonomy_experiment_writes_tables(tmp_path):
    spec = importlib.util.spec_from_file_location("analyses", ROOT / "experiments/analyses.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        cfg = compose(
            config_name="config", overrides=["experiment=taxonomy", f"analysis.out_dir={tmp_path}"]
        )
    out = mod.run(cfg)
    assert out["classes"] >= 12 and out["defenses"] >= 15
    for f in ("taxonomy.csv", "taxonomy.md", "catalogue.csv", "catalogue.md", "taxonomy_reach.png"):
        assert (tmp_path / f).stat().st_size > 0
