"""Every Hydra config composes (as lightning-hydra-template's tests/test_configs.py checks).

* every option of every group that ``config.yaml`` uses, and every ``conf/experiment/*.yaml``,
  composed against ``config.yaml`` (experiments are ``# @package _global_`` deltas selected
  with ``experiment=NAME``; ``- experiment: null`` comes after ``_self_`` so they override it);
* ``sweep.yaml`` with every option of its groups, validated against its structured schema;
* YAML files of groups no primary config here uses (others' work) at least parse.

``${hydra:...}`` interpolations do not resolve under ``compose``; configs are validated with
``resolve=False`` where a hydra node is involved.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from minimax.config import AppConfig, ConfigError, SweepAppConfig, validate_config
from minimax.runtime import conf_dir

CONF = conf_dir()


def _groups(primary: str) -> list[str]:
    defaults = yaml.safe_load((CONF / primary).read_text()).get("defaults", [])
    groups = []
    for item in defaults:
        if isinstance(item, dict):
            groups.extend(k for k in item if not k.startswith(("override", "hydra")))
    return groups


def _options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _compose(primary: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=primary, overrides=overrides)


APP_CASES = [(g, o) for g in _groups("config.yaml") if g != "experiment" for o in _options(g)]
SWEEP_CASES = [(g, o) for g in _groups("sweep.yaml") for o in _options(g)]
EXPERIMENTS = _options("experiment")


@pytest.mark.parametrize(("group", "option"), APP_CASES)
def test_app_group_options_compose(group, option):
    cfg = _compose("config.yaml", [f"{group}={option}"])
    validate_config(cfg, AppConfig)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_experiments_compose(name):
    cfg = _compose("config.yaml", [f"experiment={name}"])
    assert cfg is not None
    if name.startswith(("grid_", "sweep_")):  # ours: presets of the app itself
        validate_config(cfg, AppConfig)


@pytest.mark.parametrize(("group", "option"), SWEEP_CASES)
def test_sweep_group_options_compose(group, option):
    cfg = _compose("sweep.yaml", [f"{group}={option}"])
    app = validate_config(cfg, SweepAppConfig)
    assert app.sweep.chunk_size >= 1


def test_all_yaml_parses():
    for path in sorted(CONF.rglob("*.yaml")):
        yaml.safe_load(path.read_text())


LAUNCHERS = {
    "joblib_local": "hydra_plugins.hydra_joblib_launcher",
    "ray_local": "hydra_plugins.hydra_ray_launcher",
    "slurm": "hydra_plugins.hydra_submitit_launcher",
}


def test_every_launcher_config_is_known():
    assert sorted(LAUNCHERS) == _options("hydra/launcher")


@pytest.mark.parametrize("name", sorted(LAUNCHERS))
def test_launcher_configs_compose(name):
    # optional extra 'sweep' (pyproject): without the plugin the config cannot compose
    pytest.importorskip(LAUNCHERS[name], reason="optional extra 'sweep' not installed")
    for primary in ("config.yaml", "sweep.yaml"):
        GlobalHydra.instance().clear()
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(
                config_name=primary, overrides=[f"hydra/launcher={name}"], return_hydra_config=True
            )
        assert cfg.hydra.launcher._target_.startswith("hydra_plugins.")


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("+sweep.chunk_sise=3", "chunk_sise"),
        ("sweep.chunk_size=many", "chunk_size"),
        ("+sweep.axes.0.nmu=3", "nmu"),
    ],
)
def test_sweep_schema_names_bad_key(override, needle):
    cfg = _compose("sweep.yaml", [override])
    with pytest.raises(ConfigError, match=needle):
        validate_config(cfg, SweepAppConfig)


def test_app_schema_names_bad_key():
    cfg = _compose("config.yaml", ["+solver.stepz=3"])
    with pytest.raises(ConfigError, match="stepz"):
        validate_config(cfg, AppConfig)


def test_missing_value_fails_at_start():
    cfg = _compose("sweep.yaml", [])
    OmegaConf.update(cfg, "sweep.axes", [{"num": 3}], force_add=True)
    with pytest.raises(ConfigError, match="param"):
        validate_config(cfg, SweepAppConfig)


def test_conf_dir_is_the_checkout():
    assert (Path(CONF) / "config.yaml").is_file()
