"""Worker processes measure the independent cells; the result is the serial path's, cell by cell."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from minimax.validate.parallel import attack_call, n_workers  # noqa: E402
from minimax.validate.store import StoredTarget  # noqa: E402
from minimax.validate.targets.synthetic import SyntheticTarget  # noqa: E402


def _compose(overrides):
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    conf = Path(__file__).resolve().parents[1] / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        return compose(config_name="validate", overrides=overrides).validate


def _game(target, prefetch=None):
    from minimax.validate.empirical import solve_empirical

    rows = [("no defense", target.realise({}), "menu"),
            *((n, k, "menu") for n, k in target.menu(1.0).items() if n != "no defense")]
    return solve_empirical(target, rows, power=2.0, grid=4, row_grid=1, n_boot=50, seed=0,
                           max_iter=2, prefetch=prefetch,
                           propose=lambda ymix, cells: {"n_image": 1.5, "b_text": 0.5})


def test_prefetched_game_equals_the_serial_game_cell_by_cell(tmp_path):
    """Every cell of the double oracle is computed ahead (here in this process, as a worker
    would) and only read back by the loop; the game is the serial one, bit for bit."""
    from minimax.validate import parallel

    serial = _game(SyntheticTarget())
    st = StoredTarget(SyntheticTarget(), tmp_path, ("synthetic", 0))
    # the "worker": its own target on the same store, as a spawned worker builds it
    parallel._TARGETS[repr(("local",))] = StoredTarget(SyntheticTarget(), tmp_path,
                                                       ("synthetic", 0))
    batches = []

    def prefetch(calls, what):
        batches.append(what)
        assert all(r[1] is None for r in parallel.run_calls(("local",), calls))

    game = _game(st, prefetch)
    parallel._TARGETS.clear()
    assert batches[:3] == ["best responses to each row", "attacker oracle 1", "proposed row"]
    assert st.misses == 0 and st.hits > 0  # the loop measured nothing itself
    np.testing.assert_array_equal(serial.table, game.table)
    np.testing.assert_array_equal(serial.x, game.x)
    assert [c.label for c in serial.columns] == [c.label for c in game.columns]
    assert [t.exploitability for t in serial.trace] == [t.exploitability for t in game.trace]


@pytest.mark.slow
def test_two_worker_processes_fill_the_store_and_report_failures(tmp_path):
    """Real spawned workers: the stored results equal in-process ones, a failing call is
    reported without losing the others."""
    from omegaconf import OmegaConf

    from minimax.validate.parallel import Prefetcher, clean_call

    cfg = OmegaConf.create({"target": {"_target_":
                                       "minimax.validate.targets.synthetic.SyntheticTarget"},
                            "workers": 2})
    ident = ("synthetic", 0)
    st = StoredTarget(SyntheticTarget(), tmp_path, ident)
    d = st.realise({"n_image": 0.5})
    calls = [attack_call(f"P={p}", [(1.0, d)], {"image": p, "text": 0.5}, "held", 0, {}, (d,))
             for p in (0.5, 1.0, -1.0, 2.0)] + [clean_call("clean", d, "held", 0)]
    pre = Prefetcher(cfg, 0, st, 2)
    try:
        pre(calls, "test")
    finally:
        pre.close()
    assert pre.computed == 4 and [f[0] for f in pre.failed] == ["P=-1.0"]
    assert "power must map" in pre.failed[0][1]
    ref = SyntheticTarget()
    for p in (0.5, 1.0, 2.0):
        a = st.attack([(1.0, d)], {"image": p, "text": 0.5}, split="held", seed=0, options={})
        got = st.evaluate(a, d, split="held", seed=0)
        want = ref.evaluate(ref.attack([(1.0, d)], {"image": p, "text": 0.5}, split="held",
                                       seed=0, options={}), d, split="held", seed=0)
        np.testing.assert_array_equal(got.answers, want.answers)
    assert st.misses == 0  # every result came from the workers


def test_store_keys_of_a_call_are_those_the_store_writes(tmp_path):
    st = StoredTarget(SyntheticTarget(), tmp_path, ("synthetic", 0))
    d = st.realise({"n_image": 0.5})
    c = attack_call("x", [(1.0, d)], {"image": 1.0, "text": 0.5}, "held", 3, {}, (d,))
    assert not st.has(c)
    a = st.attack([(1.0, d)], {"text": 0.5, "image": 1.0}, split="held", seed=3, options={})
    assert not st.has(c)  # the evaluation is missing
    st.evaluate(a, d, split="held", seed=3)
    assert st.has(c) and st.misses == 2
    assert st.call_id(c) == st.call_id(c._replace(label="y"))  # the label is not the call
    assert st.call_id(c) != st.call_id(c._replace(seed=4))


@pytest.mark.parametrize("bad", [0, -1, 1.5, "two", True])
def test_workers_bad_value_names_the_field(bad):
    with pytest.raises(ValueError, match="validate.workers"):
        n_workers({"workers": bad})
    assert n_workers({}) == 1 and n_workers({"workers": 2}) == 2


def test_a_check_against_its_own_base_budget():
    """A check's ``base`` options replace the defaults as its baseline (4x vs 2x)."""
    from omegaconf import OmegaConf

    from minimax.validate.run import Measurer, _checks

    cfg = OmegaConf.create({"n_boot": 50, "checks": [
        {"name": "weak vs weak", "defense": {}, "power": {"image": 1.0},
         "base": {"recipe": "weak"}, "options": {"recipe": "weak"}},
        {"name": "auto vs weak", "defense": {}, "power": {"image": 1.0},
         "base": {"recipe": "weak"}, "options": {"recipe": "auto"}}]})
    t = SyntheticTarget()
    m = Measurer(t, cfg, 0)
    res = {"errors": []}
    same, stronger = _checks(m, cfg, res)
    assert not res["errors"]
    assert same["delta"] == 0.0 and same["base"] == {"recipe": "weak"}
    _, weak = m.adv({}, {"image": 1.0}, "held", {"recipe": "weak"})
    _, auto = m.adv({}, {"image": 1.0}, "held", {})
    assert stronger["bits"] == weak.bits and stronger["bits_stronger"] == auto.bits
    assert stronger["delta"] > 0  # the closed form: the strong recipe has twice the rate
