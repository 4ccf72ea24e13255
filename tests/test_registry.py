"""The method registry (minimax.methods) is the one source of which methods exist and which
options each reads: the solver configs, the config schema, solve, solve_batch, the sweep and
the app all agree with it, and an option a method would ignore is a named error."""

from __future__ import annotations

import dataclasses
import inspect

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

import minimax
from minimax.app import run
from minimax.config import SolverConfig, SweepAppConfig, validate_config
from minimax.convex import solve_convex
from minimax.double_oracle import solve_mixed
from minimax.errors import GameSpecError, SolverError
from minimax.methods import METHODS, ConvexOptions, MixedOptions, readers
from minimax.runtime import conf_dir
from minimax.sweep import sweep_solver

CONF = conf_dir()
COMMON = {"method", "gap_tol", "bound"}


def _game() -> minimax.Game:
    return minimax.Game.create(mode="injection", attacker_budget=4.0, defender_budget=1.0,
                               B=[1.0], S=[1.0], N=[1.0], w=[1.0], u=[0.0], rho=[0.0],
                               alpha=[1.0], beta=[1.0], gamma=[1.0], levers=["b"])


def _compose(primary: str, overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name=primary, overrides=overrides)


# ----------------------------------------------------------------------------- one source
def test_every_solver_yaml_lists_exactly_its_methods_options_with_the_registry_defaults():
    files = {p.stem: yaml.safe_load(p.read_text()) for p in (CONF / "solver").glob("*.yaml")}
    assert set(files) == set(METHODS)
    for name, data in files.items():
        spec = METHODS[name]
        assert data["method"] == name
        assert data["gap_tol"] is None and "bound" not in data  # bound: {} by default
        own = {k: v for k, v in data.items() if k not in COMMON}
        assert own == spec.options()._asdict(), name


def test_the_config_schema_holds_the_options_of_every_method_and_nothing_else():
    keys = {f.name for f in dataclasses.fields(SolverConfig)}
    union = {k for m in METHODS.values() for k in m.options._fields}
    assert keys == union | COMMON


def test_option_records_agree_with_the_functions_they_call():
    for record, fun in ((ConvexOptions, solve_convex), (MixedOptions, solve_mixed)):
        params = inspect.signature(fun).parameters
        for key, default in record()._asdict().items():
            assert params[key].default == default, (record.__name__, key)


def test_batched_methods_are_those_solve_batch_runs():
    games = [_game(), _game().replace(attacker_budget=3.0)]
    for name, spec in METHODS.items():
        if spec.batched:
            continue
        with pytest.raises(SolverError, match="is not batched"):
            minimax.solve_batch(games, method=name)
    assert {m.name for m in METHODS.values() if m.batched} == {
        "auto", "gradient", "gda", "extragradient", "optimistic"}


# ----------------------------------------------------------------------------- refused options
@pytest.mark.parametrize("method", ["gda", "extragradient", "optimistic"])
@pytest.mark.parametrize("option", ["starts", "seed"])
def test_saddle_methods_refuse_starts_and_seed(method, option):
    """These kernels read neither; both used to be accepted and ignored."""
    with pytest.raises(SolverError, match=rf"method='{method}': unknown option\(s\) "
                                          rf"\['{option}'\].*read by \['auto', 'gradient'"):
        minimax.solve(_game(), method=method, **{option: 3})
    with pytest.raises(SolverError, match=option):
        minimax.solve_batch([_game()], method=method, **{option: 3})


def test_an_option_no_method_reads_is_named():
    with pytest.raises(SolverError, match=r"\['stepz'\].*read by no method"):
        minimax.solve(_game(), steps=3, stepz=3)
    assert readers("tol") == ["convex"] and readers("boxes") == list(METHODS)


def test_convex_reaches_max_cuts():
    """``solve_convex(max_cuts=)`` was unreachable from ``solve`` ("unknown option")."""
    with pytest.raises(SolverError, match="solver option max_cuts: got 0; expected an integer"):
        minimax.solve(_game(), method="convex", max_cuts=0)


def test_double_oracle_from_the_config_refuses_tol_and_reads_bound(tmp_path):
    """``solver=double_oracle`` used to drop ``tol`` and ``bound`` silently. Both fail before
    any solving: ``tol`` is not its option (its tolerance is ``gap_tol``), and the ``bound``
    options reach its certificate (an invalid combination is refused by name)."""
    cfg = _compose("config.yaml", ["game=single_channel", "solver=double_oracle",
                                   "+solver.tol=1e-3", "print_table=false"])
    with pytest.raises(SolverError, match=r"method='double_oracle': unknown option\(s\) "
                                          r"\['tol'\]"):
        run(cfg, tmp_path)
    cfg = _compose("config.yaml", ["game=single_channel", "solver=double_oracle",
                                   "+solver.bound={boxes: 7, refine: 2}", "print_table=false"])
    with pytest.raises(SolverError, match="boxes=7, refine=2"):
        run(cfg, tmp_path)


def test_solve_refuses_the_mixed_method_by_name():
    with pytest.raises(SolverError, match="solve_mixed"):
        minimax.solve(_game(), method="double_oracle")


def test_the_sweep_reads_the_registry():
    def app(solver: str, options: dict) -> SweepAppConfig:
        cfg = _compose("sweep.yaml", [f"solver={solver}"])
        app = validate_config(cfg, SweepAppConfig)
        app.sweep.options = options
        return app

    assert sweep_solver(app("gradient", {"starts": 4}))["starts"] == 4
    # gradient options on a convex sweep used to be dropped silently
    with pytest.raises(GameSpecError, match=r"sweep.options.starts: method='convex' does not "
                                            r"read this option"):
        sweep_solver(app("convex", {"starts": 4}))
    with pytest.raises(GameSpecError, match="gives mixed defenses"):
        sweep_solver(app("double_oracle", {}))
    saddle = sweep_solver(app("gda", {"boxes": 12, "refine": 3}))
    assert saddle["boxes"] == 12 and "starts" not in saddle and "seed" not in saddle


def test_the_docs_table_of_options_is_the_registry():
    """docs/solution-concepts.md §2.9.1 lists every method's options with its defaults."""
    text = (CONF.parent / "docs" / "solution-concepts.md").read_text()
    text = text.split("### 2.9.1")[1].split("\n## ")[0]  # this subsection only
    rows = {line.split("|")[1].strip(" `"): line for line in text.splitlines()
            if line.startswith("| `") and line.count("|") == 4}
    assert set(rows) == set(METHODS)
    for name, spec in METHODS.items():
        listed = rows[name].split("|")[3]
        assert rows[name].split("|")[2].strip() == ("yes" if spec.batched else "no"), name
        expect = [f"`{k}={v!r}`" if isinstance(v, str) else f"`{k}={v:g}`"
                  if isinstance(v, float) else f"`{k}={v}`"
                  for k, v in spec.options()._asdict().items()]
        assert listed.strip() == ", ".join(expect), name


def test_the_aggregate_keeps_bound_options_as_columns(tmp_path):
    """A job's ``solver.bound`` mapping (empty, or set with ``+solver.bound=...``) becomes
    ``solver.bound.KEY`` columns, and the table is written to Parquet."""
    import json

    from minimax.sweep import aggregate, write_table

    for name, bound in (("0", {}), ("1", {"boxes": 12, "refine": 3})):
        job = tmp_path / "runs" / name
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({
            "game": {"name": "g", "mode": "injection", "attacker_budget": 1.0 + int(name),
                     "defender_budget": 1.0},
            "solver": {"method": "gradient", "starts": 4, "bound": bound}}))
        (job / "result.json").write_text(json.dumps({"solution": {
            "status": "certified", "value": 1.0, "upper": 1.0, "lower": 0.5, "gap": 0.5,
            "seconds": 0.1, "iterations": 4, "method": "gradient", "defense": {},
            "attack": {}}}))
    table = aggregate([tmp_path / "runs"]).set_index("job")
    assert table.loc["1", "solver.bound.boxes"] == 12 and table.loc["0", "solver.starts"] == 4
    assert "solver.bound" not in table.columns
    write_table(table.reset_index(), tmp_path / "report", figure=False)
    assert (tmp_path / "report" / "results.parquet").stat().st_size > 0
