"""The combined target: names, one budget, one power, bits summed over the parts' flows.

Parts are closed-form synthetic targets (:mod:`minimax.validate.targets.synthetic`), so
every composed number is checked against the parts measured on their own and against
their exact bits.
"""

import itertools

import numpy as np
import pytest

from minimax.validate.measure import (
    bootstrap_weights,
    max_bits,
    mi_from_counts,
    outcome_bits,
    unit_counts,
)
from minimax.validate.target import Target
from minimax.validate.targets.combined import (
    CombinedKnobs,
    CombinedOutcome,
    CombinedTarget,
    combine,
)
from minimax.validate.targets.synthetic import SyntheticTarget

UNITS = {"vis": 1.0, "mem": 4.0}


def _parts(n_units=300):
    return {"vis": SyntheticTarget(n_classes=10, n_units=n_units, w_text=0.6),
            "mem": SyntheticTarget(n_classes=6, n_units=n_units, w_image=0.4, w_text=1.5)}


@pytest.fixture()
def target():
    return CombinedTarget(_parts(), UNITS)


def test_names_are_prefixed_and_levers_round_trip(target):
    assert isinstance(target, Target)
    assert target.channels == ("vis_image", "vis_text", "mem_image", "mem_text")
    assert target.levers == ("n_vis_image", "b_vis_text", "n_mem_image", "b_mem_text")
    assert max_bits(target.n_classes) == pytest.approx(np.log2(10) + np.log2(6))
    ask = {"n_vis_image": 0.5, "b_mem_text": 1.0}
    k = target.realise(ask)
    assert k.of("vis") == target.parts["vis"].realise({"n_image": 0.5})
    assert k.of("mem") == target.parts["mem"].realise({"b_text": 1.0})
    assert target.lever_values(k) == {"n_vis_image": 0.5, "b_vis_text": 0.0,
                                      "n_mem_image": 0.0, "b_mem_text": 1.0}


def test_bad_input_names_the_field():
    with pytest.raises(ValueError, match="power_units"):
        CombinedTarget(_parts(), {"vis": 1.0})
    with pytest.raises(ValueError, match="without '_'"):
        CombinedTarget({"a_b": SyntheticTarget(), "c": SyntheticTarget()}, {"a_b": 1, "c": 1})
    with pytest.raises(ValueError, match=">= 2 parts"):
        CombinedTarget({"a": SyntheticTarget()}, {"a": 1})
    t = CombinedTarget(_parts(), UNITS)
    with pytest.raises(ValueError, match="n_image"):
        t.realise({"n_image": 1.0})
    with pytest.raises(ValueError, match="power channels"):
        t.attack([(1.0, t.realise({}))], {"image": 1.0}, split="held", seed=0)
    with pytest.raises(TypeError, match="CombinedKnobs"):
        t.clean(t.parts["vis"].realise({}), split="held", seed=0)
    uneven = CombinedTarget({"vis": SyntheticTarget(n_units=30),
                             "mem": SyntheticTarget(n_units=20)}, UNITS)
    with pytest.raises(ValueError, match="units"):
        uneven.clean(uneven.realise({}), split="held", seed=0)


def test_bits_are_the_sum_of_the_parts_measured_alone(target):
    """Same attacks, same units, same weights: estimate and replicates add exactly."""
    mix = [(0.7, target.realise({"n_vis_image": 0.5})),
           (0.3, target.realise({"b_mem_text": 1.0}))]
    power = {"vis_image": 0.6, "vis_text": 0.4, "mem_text": 0.25}
    att = target.attack(mix, power, split="held", seed=3)
    row = mix[0][1]
    out = target.evaluate(att, row, split="held", seed=3)
    assert isinstance(out, CombinedOutcome)
    w = bootstrap_weights(300, 200, 0)
    got = outcome_bits(out, w)
    vis, mem = target.parts["vis"], target.parts["mem"]
    # each part alone: its marginal mixture, its share of the power in its own units
    a_v = vis.attack([(0.7, row.of("vis")), (0.3, mix[1][1].of("vis"))],
                     {"image": 0.6, "text": 0.4}, split="held", seed=3)
    a_m = mem.attack([(0.7, row.of("mem")), (0.3, mix[1][1].of("mem"))], {"text": 1.0},
                     split="held", seed=3)
    o_v = vis.evaluate(a_v, row.of("vis"), split="held", seed=3)
    o_m = mem.evaluate(a_m, row.of("mem"), split="held", seed=3)
    b_v, b_m = outcome_bits(o_v, w), outcome_bits(o_m, w)
    assert got.bits == pytest.approx(b_v.bits + b_m.bits, abs=1e-12)
    np.testing.assert_allclose(got.boot, b_v.boot + b_m.boot, atol=1e-12)
    # the sum of independent Miller-Madow estimates, from counts
    est = sum(float(np.clip(mi_from_counts(unit_counts(o.sent, o.answers, o.n_classes)
                                           .sum(0), o.n_classes), 0, np.log2(o.n_classes)))
              for o in (o_v, o_m))
    assert got.bits == pytest.approx(est, abs=1e-12)
    lo, hi = np.quantile(b_v.boot + b_m.boot, [0.025, 0.975])
    assert (got.lo, got.hi) == pytest.approx((lo, hi), abs=1e-12)
    # and the exact bits of the two flows, within sampling error
    exact = vis.true_bits(row.of("vis"), {"image": 0.6, "text": 0.4}) + mem.true_bits(
        row.of("mem"), {"text": 1.0})
    assert got.lo - 0.05 <= exact <= got.hi + 0.05
    assert att.power == pytest.approx(power)


def test_a_part_left_alone_answers_as_on_clean_inputs(target):
    none = target.realise({})
    att = target.attack([(1.0, none)], {"vis_image": 2.0}, split="held", seed=0)
    assert att.payload["mem"] is None
    out = target.evaluate(att, none, split="held", seed=0)
    clean = target.parts["mem"].clean(none.of("mem"), split="held", seed=0)
    mem = out.parts[1]
    k, q = clean.n_classes, clean.answers.shape[1]
    assert mem.sent.shape == (300, q * k)
    assert (mem.sent == np.repeat(np.arange(k), q)).all()    # every query under every target
    assert (mem.answers == np.tile(clean.answers, (1, k))).all()
    w = bootstrap_weights(300, 100, 0)
    assert outcome_bits(mem, w).bits <= 0.01   # the target does not reach the answers
    alone = outcome_bits(out.parts[0], w)
    assert outcome_bits(out, w).bits == pytest.approx(alone.bits + outcome_bits(mem, w).bits)


def test_menu_is_every_combination_within_the_budget(target):
    budget = 1.0
    menu = target.menu(budget)
    assert "no defense" in menu
    sums = {n: sum(target.lever_values(k).values()) for n, k in menu.items()}
    assert max(sums.values()) <= budget + 1e-9
    # brute force: every lever on the parts' 0.5 grid with total <= budget
    grid = [0.0, 0.5, 1.0]
    want = set()
    for v in itertools.product(grid, repeat=4):
        if sum(v) <= budget + 1e-9:
            want.add(tuple(v))
    got = {tuple(target.lever_values(k)[lv] for lv in target.levers) for k in menu.values()}
    assert got == want
    single = [n for n in menu if n.startswith("vis:") and "mem:" not in n]
    split = [n for n in menu if "vis:" in n and "mem:" in n]
    assert single and split


def test_power_units_convert_to_each_parts_own_units(target):
    none = target.realise({})
    att = target.attack([(1.0, none)], {"mem_image": 0.5, "vis_text": 0.25}, split="held",
                        seed=0)
    assert att.payload["mem"].payload["power"] == {"image": 2.0}
    assert att.payload["vis"].payload["power"] == {"text": 0.25}
    assert att.power == {"mem_image": 0.5, "vis_text": 0.25}


def test_options_route_to_their_part(target):
    opts = target._options({"recipe": "weak", "mem": {"steps": 3}})
    assert opts == {"vis": {"recipe": "weak"}, "mem": {"recipe": "weak", "steps": 3}}


def test_composite_outcome_checks_units():
    a = SyntheticTarget(n_units=5)._sample(np.random.default_rng(0), 0.5)
    b = SyntheticTarget(n_classes=4, n_units=6)._sample(np.random.default_rng(1), 0.5)
    with pytest.raises(ValueError, match="units"):
        combine({"a": a, "b": b}, "held")
    c = combine({"a": a, "b": a}, "held")
    assert c.n_classes == 100 and c.sent.shape == (5, 20)
    assert isinstance(CombinedKnobs((("a", 1),)).of("a"), int)


def test_preset_composes_and_names_real_channels_and_levers():
    """``validate=combined``: every condition and check names a channel / lever of the parts."""
    from pathlib import Path

    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.utils import get_class

    conf = Path(__file__).resolve().parents[1] / "conf"
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose(config_name="validate", overrides=["validate=combined"]).validate
    spec = cfg.target
    assert spec._target_.endswith("make_combined_target") and not spec._recursive_
    assert list(spec.order) == ["vision", "agent"] == sorted(spec.parts, reverse=True)
    from minimax.validate.targets.digits import DigitsTarget
    from minimax.validate.targets.memory import MemoryTarget

    assert get_class(spec.parts.vision._target_) is DigitsTarget
    parts = {"vision": DigitsTarget, "agent": MemoryTarget}
    chans = {f"{p}_{c}" for p, cls in parts.items()
             for c in (cls.channels if p == "vision" else MemoryTarget.__dataclass_fields__[
                 "channels"].default)}
    levers = {f"{x}_{c}" for c in chans for x in "nsb"}
    assert chans == {"vision_image", "vision_text", "agent_memory"}
    for split in ("calib", "held"):
        for g in cfg.conditions[split]:
            assert set(g.get("power") or {}) <= chans
            assert all(set(j) <= chans for j in g.get("joint") or [])
            assert set(g.get("defense") or {}) <= levers
    for s in cfg.game.row_splits:
        assert set(s) <= chans
    assert set(cfg.target.caps) <= chans and set(cfg.target.power_units) == set(parts)
    # composite units: as many images per split as memory victims (n_entities / 3)
    data = cfg.target.parts.vision.data
    assert data.n_calib == data.n_held == cfg.target.parts.agent.n_entities // 3


def test_one_lever_rows_menu():
    t = CombinedTarget(_parts(), UNITS, one_lever_rows=True)
    menu = t.menu(1.0)
    for k in menu.values():
        for p, part in t.parts.items():
            assert sum(v > 0 for v in part.lever_values(k.of(p)).values()) <= 1
    got = {tuple(t.lever_values(k)[lv] for lv in t.levers) for k in menu.values()}
    # brute force: at most one lever per part on the 0.5 grid, total <= budget
    want = set()
    for v in itertools.product([0.0, 0.5, 1.0], repeat=4):
        if sum(v) <= 1.0 + 1e-9 and (v[0] == 0 or v[1] == 0) and (v[2] == 0 or v[3] == 0):
            want.add(v)
    assert got == want
