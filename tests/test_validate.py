"""Tests of minimax.validate: estimator oracles, attack budgets, defense monotonicity,
the transformers adapter, calibration and a tiny end-to-end run."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("transformers")

from minimax.validate import calibrate as cal  # noqa: E402
from minimax.validate.measure import (  # noqa: E402
    mi_with_ci,
    mutual_information,
    symmetric_channel_mi,
)

CONF = Path(__file__).resolve().parents[1] / "conf"


# ---------------------------------------------------------------- estimator


@pytest.mark.parametrize("k,err", [(10, 0.0), (10, 0.1), (10, 0.5), (4, 0.25), (2, 0.11)])
def test_mi_symmetric_channel_closed_form(k, err):
    rng = np.random.default_rng(0)
    n = 40_000
    x = rng.integers(0, k, n)
    flip = rng.random(n) < err
    y = np.where(flip, (x + rng.integers(1, k, n)) % k, x)
    exact = symmetric_channel_mi(k, err)
    assert mutual_information(x, y, k) == pytest.approx(exact, abs=0.02)


def test_miller_madow_reduces_bias_at_independence():
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 10, 500), rng.integers(0, 10, 500)
    plug, mm = mutual_information(x, y, 10, correct=False), mutual_information(x, y, 10)
    assert plug > 0.08  # ~ 81 / (2 * 500 * ln 2) = 0.117 bits of upward bias
    assert abs(mm) < plug / 3


def test_bootstrap_ci_brackets_estimate_and_resamples_rows():
    rng = np.random.default_rng(2)
    t = np.tile(np.arange(10), (200, 1))
    p = np.where(rng.random(t.shape) < 0.6, t, rng.integers(0, 10, t.shape))
    est = mi_with_ci(t, p, 10, n_boot=100)
    assert est.lo <= est.bits <= est.hi and est.n == 2000
    assert est.bits == pytest.approx(symmetric_channel_mi(10, 0.4 * 0.9), abs=0.08)


# ---------------------------------------------------------------- model fixtures


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    import os

    from minimax.validate.data import load_digits_split
    from minimax.validate.knobs import pixel_order
    from minimax.validate.model import DigitsCLIPConfig, build_digits_clip

    old = os.environ.get("MINIMAX_CACHE")
    os.environ["MINIMAX_CACHE"] = str(tmp_path_factory.mktemp("cache"))  # never ~/.cache
    torch.set_num_threads(1)
    split = load_digits_split(n_attack=32, n_calib=40, n_held=40)
    cfg = DigitsCLIPConfig(epochs=15)
    model = build_digits_clip(split, cfg)
    yield {"split": split, "model": model, "order": pixel_order(split.x_train), "cfg": cfg}
    if old is None:
        os.environ.pop("MINIMAX_CACHE", None)
    else:
        os.environ["MINIMAX_CACHE"] = old


def _batch(lab, n=30):
    x = torch.from_numpy(lab["split"].x_calib[:n])
    return x.repeat_interleave(10, 0), torch.arange(10).repeat(n)


@pytest.mark.slow
def test_model_zero_shot_and_cache(lab):
    from minimax.validate.knobs import class_embeddings
    from minimax.validate.model import build_digits_clip, zero_shot_accuracy

    s = lab["split"]
    acc = zero_shot_accuracy(lab["model"], s.x_calib, s.y_calib, class_embeddings(lab["model"], 1))
    assert acc > 0.85
    again = build_digits_clip(s, lab["cfg"])  # from the cache: identical weights
    for a, b in zip(again.image.parameters(), lab["model"].image.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.slow
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_pgd_respects_budget_and_raises_targeted_success(lab, norm):
    from minimax.validate.attacks import pgd
    from minimax.validate.knobs import Knobs
    from minimax.validate.pipeline import Pipeline

    pipe = Pipeline(lab["model"], Knobs(), lab["order"])
    x, t = _batch(lab)
    eps = 1.0 if norm == "l2" else 0.15
    xa = pgd(pipe, x, t, eps, norm=norm, steps=15, restarts=2)
    d = (xa - x).flatten(1)
    size = d.norm(dim=1) if norm == "l2" else d.abs().max(1).values
    assert float(size.max()) <= eps * (1 + 1e-5)
    assert float(xa.min()) >= 0 and float(xa.max()) <= 1
    clean = (pipe.predict(x, t) == t.numpy()).mean()
    attacked = (pipe.predict(xa, t) == t.numpy()).mean()
    assert attacked > clean + 0.2


def _success(lab, d, power=1.0, model=None):
    from minimax.validate.attacks import pgd
    from minimax.validate.pipeline import Pipeline

    pipe = Pipeline(model or lab["model"], d, lab["order"], seed=0)
    x, t = _batch(lab)
    xa = pgd(pipe, x, t, math.sqrt(power), steps=15, eot=4, seed=0)
    return float((pipe.predict(xa, t) == t.numpy()).mean())


@pytest.mark.slow
@pytest.mark.parametrize(
    "knob,values", [("level", [0.0, 0.3, 0.6]), ("pixel_keep", [1.0, 0.5, 0.3])]
)
def test_defense_knobs_monotonically_reduce_attack(lab, knob, values):
    from minimax.validate.knobs import Knobs

    base = Knobs(purify="noise", draws=4) if knob == "level" else Knobs()
    succ = [_success(lab, base.with_(**{knob: v})) for v in values]
    assert all(b <= a + 0.02 for a, b in zip(succ, succ[1:], strict=False)), succ
    assert succ[-1] < succ[0] - 0.05, succ


@pytest.mark.slow
def test_adversarial_finetuning_reduces_attack(lab):
    from dataclasses import asdict

    from minimax.validate.knobs import Knobs
    from minimax.validate.model import DigitsCLIPConfig, build_digits_clip

    robust = build_digits_clip(
        lab["split"], DigitsCLIPConfig(**{**asdict(lab["cfg"]), "adv_eps": 0.5})
    )
    assert _success(lab, Knobs(), model=robust) < _success(lab, Knobs()) - 0.05


@pytest.mark.slow
def test_token_cap_truncates_and_gcg_lowers_loss(lab):
    from minimax.validate.attacks import defended_image_embeddings, gcg
    from minimax.validate.knobs import Knobs, class_embeddings, targeted_text

    m, s = lab["model"], lab["split"]
    emb = defended_image_embeddings(m, Knobs(), lab["order"], torch.from_numpy(s.x_attack))
    sfx = gcg(m, Knobs(), emb, torch.from_numpy(s.y_attack), 2, steps=2, n_cand=8, topk=16)
    assert set(sfx) == set(range(10)) and all(v.shape == (2,) for v in sfx.values())
    moved = targeted_text(m, Knobs(), sfx)
    capped = targeted_text(m, Knobs(token_cap=0), sfx)
    base = class_embeddings(m, 1)
    assert torch.allclose(capped[3], base, atol=1e-6)
    assert not torch.allclose(moved[3, 3], base[3], atol=1e-4)


# ---------------------------------------------------------------- transformers adapter


def _tiny_clip():
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    cfg = CLIPConfig(
        text_config=dict(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=32,
            eos_token_id=2,
            bos_token_id=1,
            pad_token_id=0,
        ),
        vision_config=dict(
            image_size=8,
            patch_size=4,
            num_channels=1,
            hidden_size=32,
            intermediate_size=37,
            num_hidden_layers=2,
            num_attention_heads=4,
        ),
        projection_dim=16,
    )
    return CLIPModel(cfg)


def test_transformers_clip_adapter():
    from minimax.validate.attacks import pgd
    from minimax.validate.knobs import Knobs, build_prompt_ids
    from minimax.validate.model import TransformersCLIP
    from minimax.validate.pipeline import Pipeline

    class Words(TransformersCLIP):  # a word-hash "tokenizer": no download needed
        def prompt_ids(self, text):
            return [1] + [3 + (sum(map(ord, w)) % 58) for w in text.split()], [2]

    m = Words(_tiny_clip())
    assert m.image_shape == (1, 8, 8)
    x = torch.rand(6, 1, 8, 8)
    z = m.encode_image(x)
    assert z.shape == (6, 16) and torch.allclose(z.norm(dim=-1), torch.ones(6), atol=1e-5)
    ids, mask, pos = build_prompt_ids(m, ["a digit seven", "a zero"], torch.tensor([5, 6]))
    assert pos.shape == (2, 2)
    w = m.input_embedding().weight
    plain = m.encode_text(ids, mask)
    hooked = m.encode_text(ids, mask, embeds=w[ids])
    assert torch.allclose(plain, hooked, atol=1e-6)
    pipe = Pipeline(m, Knobs(ensemble=2), np.arange(64))
    t = torch.arange(6) % 10
    xa = pgd(pipe, x, t, 0.5, steps=3)
    assert float((xa - x).flatten(1).norm(dim=1).max()) <= 0.5 + 1e-5


# ---------------------------------------------------------------- calibration


def test_calibration_recovers_synthetic_channel():
    true = {"B": 2.0, "S": 0.5, "N": 0.25, "alpha": 1.2, "beta": 0.8, "gamma": 0.7, "rho": 0.2}
    conds = [cal.Condition("leg", "leg", "calib", {}, {"b_image": b}) for b in (0.0, 0.5, 1.0)]
    for p in (0.1, 0.3, 1.0, 3.0):
        for lv in ({}, {"n_image": 0.7}, {"s_image": 1.0}, {"b_image": 0.7}):
            conds.append(cal.Condition("adv", "adv", "calib", {"image": p}, lv))
    for c in conds:
        c.bits = cal.predict({"image": true}, c)
    fit, rms = cal.fit_channel(conds, "image")
    assert rms < 1e-3
    held = cal.Condition("h", "adv", "held", {"image": 2.0}, {"n_image": 0.3, "b_image": 0.3})
    assert cal.predict({"image": fit}, held) == pytest.approx(
        cal.predict({"image": true}, held), abs=1e-2
    )
    assert cal.link(1e-6) == pytest.approx(1e-6, rel=1e-3) and cal.link(1e9) <= cal.IMAX


def test_calibrated_game_solves_and_realises():
    from minimax.validate.game_bridge import realise, solve_game
    from minimax.validate.knobs import Knobs, lever_values

    p = {"B": 2.0, "S": 0.5, "N": 0.25, "alpha": 1.2, "beta": 0.3, "gamma": 0.7, "rho": 0.2}
    sol = solve_game({"image": p, "text": {**p, "B": 0.5, "alpha": 1e-6}}, 2.0, 1.0)
    assert sol["lower"] <= sol["upper"] + 1e-9 and sol["gap"] <= 0.05 * max(1.0, sol["value"])
    assert sum(sol["levers"].values()) == pytest.approx(1.0, abs=1e-3)
    units = {"purify": "noise", "n": 0.2, "s": 0.5, "ensemble": 2.0}
    d = realise({"n_image": 0.5, "b_image": 0.4, "b_text": 1.0}, units, 8, Knobs())
    back = lever_values(d, units, 8)
    assert back["n_image"] == pytest.approx(0.5) and back["b_image"] == pytest.approx(0.4)
    assert d.token_cap == 2


@pytest.mark.slow
def test_grid_prescription_agrees_with_the_engine_where_the_model_is_a_game():
    """No caps, no interaction or clean terms: the calibrated model is a ``minimax.Game``.

    The grid minimax of ``prescribe`` (link space) mapped back through the inverse link must
    lie in the engine's certified bracket ``[lower, upper]`` up to the grid's resolution, and
    the engine's allocation, evaluated by the grid attacker, must be no worse than the grid's
    answer by more than that resolution.
    """
    from minimax.validate.game_bridge import prescribe, solve_game

    p = {"B": 2.0, "S": 0.5, "N": 0.25, "alpha": 1.2, "beta": 0.3, "gamma": 0.7, "rho": 0.2}
    params = {"image": dict(p), "text": {**p, "B": 0.5, "alpha": 1e-6}}
    m = _model(params=params, caps={}, link_q=1.0)
    levers = tuple(f"{k}_{c}" for c in ("image", "text") for k in ("n", "s", "b"))
    pres = prescribe(m, levers, 2.0, 1.0, steps=8, split_steps=40)
    raw = -cal.IMAX * math.log(1 - pres.predicted_bits / cal.IMAX)  # inverse link, q = 1
    sol = solve_game(params, 2.0, 1.0)
    assert sol["lower"] <= sol["upper"] + 1e-9
    assert raw >= sol["lower"] - 1e-3  # a grid point cannot beat the certified lower bound
    worst_engine = cal.worst_case(m, sol["levers"], 2.0, grid=40)[0]
    assert pres.predicted_bits <= worst_engine + 0.05  # grid resolution: budget / 8
    raw_engine = -cal.IMAX * math.log(1 - worst_engine / cal.IMAX)
    assert raw_engine == pytest.approx(sol["value"], abs=0.02 + sol["gap"])


def test_prescription_on_deployed_defenses_is_the_brute_force_minimax():
    """With ``deploy`` (a target that rounds levers to its knobs), the prescription is the
    deployed allocation with the least predicted worst case, found here by brute force
    over every deployed allocation and every split, and its levers are deployable."""
    from minimax.validate.empirical import split_grid
    from minimax.validate.game_bridge import lever_grid, prescribe

    p = {"B": 2.0, "S": 0.5, "N": 0.25, "alpha": 1.2, "beta": 0.3, "gamma": 0.7, "rho": 0.2}
    m = _model(params={"image": dict(p), "text": {**p, "B": 0.5}}, caps={}, link_q=1.0)
    levers = ("n_image", "s_image", "s_text")

    def deploy(lv):  # s levers in whole halves (rounded down), noise as asked
        return {k: (math.floor(v * 2 + 1e-9) / 2 if k.startswith("s_") else v)
                for k, v in lv.items()}

    pres = prescribe(m, levers, 2.0, 1.0, steps=8, split_steps=10, deploy=deploy)
    assert deploy(pres.levers) == pres.levers
    grid = lever_grid(levers, 1.0, 8)
    powers = [{c: 2.0 * f[c] for c in ("image", "text")} for f in split_grid(("image", "text"), 10)]
    best = min(max(float(cal.model_predict(m, "adv", pw, deploy(
        {k: float(grid[k][i]) for k in levers}))) for pw in powers)
        for i in range(len(grid["n_image"])))
    assert pres.predicted_bits == pytest.approx(best, abs=1e-12)
    plain = prescribe(m, levers, 2.0, 1.0, steps=8, split_steps=10)
    assert plain.predicted_bits <= best + 1e-12  # rounding can only cost the defender


# ---------------------------------------------------------------- configs and end to end


def _compose(overrides):
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="validate", overrides=overrides)


@pytest.mark.parametrize("preset", ["quick", "full", "synthetic", "checks"])
def test_configs_compose(preset):
    cfg = _compose([f"validate={preset}"])
    assert cfg.validate.name == preset
    assert cfg.validate.target._target_.startswith("minimax.validate.targets.")
    assert cfg.validate.game.grid >= 2 and cfg.validate.budget.defender > 0


def test_checks_preset_is_quick_plus_checks():
    """``validate=checks`` measures exactly the quick preset's cells (same target, so the same
    store keys) and adds the attack-strength checks the quick preset leaves out."""
    quick, checks = _compose([]).validate, _compose(["validate=checks"]).validate
    assert quick.name == "quick" and list(quick.checks) == []
    assert checks.target == quick.target and checks.conditions == quick.conditions
    assert checks.game == quick.game and checks.model == quick.model
    names = [c.name for c in checks.checks]
    assert len(names) >= 3 and any("adv-ft" in n for n in names), names


@pytest.mark.slow
def test_synthetic_end_to_end(tmp_path):
    """The whole pipeline (measure, calibrate, empirical game, report) on the closed form."""
    from minimax.finite import zero_sum
    from minimax.validate.empirical import split_grid
    from minimax.validate.run import run
    from minimax.validate.targets.synthetic import SyntheticTarget

    cfg = _compose(["validate=synthetic", "validate.n_boot=100", "validate.game.grid=5",
                    "validate.game.max_iter=3"]).validate
    res = run(cfg, tmp_path)
    assert res["status"] == "ok" and not res["errors"], res["errors"]
    for f in ("report.md", "allocation.csv", "conditions.csv", "game_table.png",
              "exploitability.png", "convergence.png", "predicted_vs_measured.png"):
        assert (tmp_path / f).exists(), f
    alloc = pd.read_csv(tmp_path / "allocation.csv")
    assert list(alloc.columns[:4]) == ["allocation", "measured_bits", "measured_lo",
                                       "measured_hi"]
    assert {"no defense", "engine prescription", "validated defense"} <= set(alloc.allocation)
    # the synthetic game's exact value: the LP over the exact table of menu x split grid
    t = SyntheticTarget()
    A = [[t.true_bits(k, {c: 2.0 * f[c] for c in t.channels})
          for f in split_grid(t.channels, 5)] for k in t.menu(1.0).values()]
    assert res["game"]["value"] == pytest.approx(zero_sum(A).value, abs=0.04)
    assert res["goal"]["beats_no_defense"]


def test_cli_exits_nonzero_when_the_run_fails(tmp_path):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "minimax.validate", "validate=synthetic",
                        "validate.target._target_=minimax.validate.targets.synthetic.Nope",
                        f"hydra.run.dir={tmp_path}"], capture_output=True, text=True,
                       cwd=CONF.parent, timeout=120)
    assert r.returncode == 1, r.stderr[-2000:]


# ---------------------------------------------------------------- channel model


def _model(**kw):
    p = {"B": 1.0, "S": 1.0, "N": 1.0, "alpha": 1.0, "beta": 0.5, "gamma": 0.7, "rho": 0.2}
    base = dict(channels=("image", "text"), params={"image": dict(p), "text": dict(p)},
                caps={"text": 1.0}, cross={}, kappa=0.0, link_q=1.0, imax=cal.IMAX, rms=0.0,
                n_fit=0, terms=(), blind=False)
    return cal.ChannelModel(**{**base, **kw})


def test_token_cap_is_a_threshold_and_the_attacker_moves_what_it_truncates():
    m = _model()
    b = math.log(4.0)  # cap keeps a quarter of the controllable power: 0.25
    a = cal.effective_power(m, {"image": 0.5, "text": 0.75}, {"b_text": b})
    assert float(a["text"]) == pytest.approx(0.25) and float(a["image"]) == pytest.approx(1.0)
    # below the cap nothing changes (an exp(-gamma b) attenuation would cut it)
    a = cal.effective_power(m, {"image": 0.5, "text": 0.2}, {"b_text": b})
    assert float(a["text"]) == pytest.approx(0.2) and float(a["image"]) == pytest.approx(0.5)
    raw = cal.channel_capacity(m, "text", 0.2, {"b_text": b})
    assert float(raw) == pytest.approx(math.log2(1 + 0.2 / 2.0))  # m = N + S, no attenuation
    lost = cal.effective_power(m._replace(reallocate=False), {"image": 0.5, "text": 0.75},
                               {"b_text": b})
    assert float(lost["image"]) == pytest.approx(0.5)


def test_interaction_terms_closed_form_and_recovered_where_data_demand():
    true = _model(cross={"text<-s_image": 0.8}, kappa=0.5, link_q=2.0)
    ci = cal.channel_capacity(true, "image", 1.0, {"s_image": 1.0})
    ct = cal.channel_capacity(true, "text", 0.5, {"s_image": 1.0})
    assert float(ct) == pytest.approx(math.log2(1 + 0.5 / 2.0) * math.exp(0.8))
    want = cal.link(ci + ct + 0.5 * math.sqrt(ci * ct), q=2.0)
    got = cal.model_predict(true, "adv", {"image": 1.0, "text": 0.5}, {"s_image": 1.0})
    assert float(got) == pytest.approx(float(want))
    conds = [cal.Condition("leg", "leg", "calib", {}, lv)
             for lv in ({}, {"s_image": 1.0}, {"n_image": 1.0})]
    for lv in ({}, {"n_image": 1.0}, {"s_image": 1.0}, {"b_text": 1.0}):
        for p in (0.5, 1.0, 2.0, 4.0):
            conds.append(cal.Condition("i", "adv", "calib", {"image": p}, lv))
            conds.append(cal.Condition("t", "adv", "calib", {"text": p / 2}, lv))
            conds.append(cal.Condition("j", "adv", "calib", {"image": p / 2, "text": p / 4}, lv))
    for c in conds:
        c.bits = cal.predict_condition(true, c)
    fit = cal.fit_model(conds, ("image", "text"), caps={"text": 1.0}, restarts=3)
    assert set(fit.terms) == {"cross", "kappa"} and fit.rms < 0.02
    assert fit.cross["text<-s_image"] == pytest.approx(0.8, abs=0.15)
    plain = cal.fit_model(conds, ("image", "text"), caps={"text": 1.0}, terms=(), restarts=3)
    assert plain.rms > 5 * fit.rms  # without the terms the data cannot be fitted
    blind = cal.fit_model(conds, ("image", "text"), blind=True, restarts=2)
    pa = cal.model_predict(blind, "adv", {"image": 1.0}, {})
    pb = cal.model_predict(blind, "adv", {"image": 1.0}, {"n_image": 1.0, "b_text": 2.0})
    assert float(pa) == pytest.approx(float(pb))  # the baseline ignores every defense


def test_saturating_cross_term_closed_form_and_chosen_where_two_intensities_demand():
    """exp(eta (1 - e^-l)): a lever's boost of another channel that levels off."""
    true = _model(cross={"text<-b_image": 1.5}, link_q=2.0, terms=("crosssat",))
    ct = cal.channel_capacity(true, "text", 0.5, {"b_image": 1.2})
    assert float(ct) == pytest.approx(math.log2(1 + 0.5 / 2.0) * math.exp(1.5 * (1 - math.exp(
        -1.2))))
    conds = [cal.Condition("leg", "leg", "calib", {}, {})]
    for lv in ({}, {"b_image": 0.7}, {"b_image": 1.4}):
        for p in (0.5, 1.0, 2.0):
            conds.append(cal.Condition("i", "adv", "calib", {"image": p}, {}))
            conds.append(cal.Condition("j", "adv", "calib", {"image": p / 2, "text": p / 4},
                                       lv))
    for c in conds:
        c.bits = cal.predict_condition(true, c)
    assert cal.cross_intensities(conds, ("image", "text")) == 2
    assert cal.cross_intensities(conds[:13], ("image", "text")) == 1  # one mask amount
    fit = cal.fit_model(conds, ("image", "text"), caps={"text": 1.0}, restarts=3)
    assert "crosssat" in fit.terms and fit.rms < 0.01
    lin = cal.fit_model(conds, ("image", "text"), caps={"text": 1.0}, terms=("cross",),
                        restarts=3)
    assert lin.rms > 3 * fit.rms  # the exponential form cannot bend at two intensities


def test_clean_cost_of_noise_own_clean_link_and_mask_noise_closed_form():
    """The clean-input terms and the mask's noise, each against its formula written out."""
    p = {"B": 1.5, "S": 2.0, "N": 0.5, "alpha": 0.3, "beta": 0.5, "gamma": 0.0, "rho": 0.0,
         "nu": 0.4, "V": 0.2, "c": 0.1}
    m = _model(params={"image": dict(p), "text": dict(p)}, link_q=2.0, link_q_leg=5.0)
    # clean bits under noise n: SNR S / (N e^(nu n)), through the clean link (q = 5)
    got = cal.model_predict(m, "leg", {}, {"n_image": 2.0})
    raw = 1.5 * math.log2(1 + 2.0 / (0.5 * math.exp(0.8)))
    assert float(got) == pytest.approx(cal.IMAX * (1 - math.exp(-(raw / cal.IMAX) ** 5)))
    # a pixel mask keeping k = e^-b adds (1/k - 1)(V + c a) of noise to both
    k = 0.4
    b = -math.log(k)
    raw_leg = 1.5 * math.log2(1 + 2.0 / (0.5 + (1 / k - 1) * 0.2))
    assert float(cal.model_predict(m, "leg", {}, {"b_image": b})) == pytest.approx(
        cal.IMAX * (1 - math.exp(-(raw_leg / cal.IMAX) ** 5)))
    a = 3.0
    want = 1.5 * math.log2(1 + a / (0.5 + 2.0 + (1 / k - 1) * (0.2 + 0.1 * a)))
    assert float(cal.channel_capacity(m, "image", a, {"b_image": b})) == pytest.approx(want)
    # the attacker's own perturbation is masked too: capacity is bounded as a -> infinity
    ceiling = 1.5 * math.log2(1 + 1 / (0.1 * (1 / k - 1)))
    big = float(cal.channel_capacity(m, "image", 1e9, {"b_image": b}))
    assert big == pytest.approx(ceiling, rel=1e-6)
    # without the mask terms (V = c = 0) nothing changes at b = 0 and the old form returns
    assert float(cal.channel_capacity(m, "image", a, {})) == pytest.approx(
        1.5 * math.log2(1 + a / 2.5))


def test_clean_cost_of_fine_tuning_closed_form_and_identified():
    """Clean SNR (1 + beta s) S / (N e^(nu n + mu s)): the fine-tuning radius's clean cost."""
    p = {"B": 1.5, "S": 2.0, "N": 0.5, "alpha": 0.3, "beta": 0.5, "gamma": 0.0, "rho": 0.0,
         "nu": 0.4, "mu": 0.7}
    m = _model(params={"image": dict(p), "text": dict(p)}, link_q=2.0, link_q_leg=5.0)
    got = cal.model_predict(m, "leg", {}, {"s_image": 2.0, "n_image": 1.0})
    raw = 1.5 * math.log2(1 + (1 + 0.5 * 2.0) * 2.0 / (0.5 * math.exp(0.4 + 1.4)))
    assert float(got) == pytest.approx(cal.IMAX * (1 - math.exp(-(raw / cal.IMAX) ** 5)))
    # the attack side is unchanged by mu
    m0 = m._replace(params={"image": {**p, "mu": 0.0}, "text": dict(p)})
    assert float(cal.model_predict(m, "adv", {"image": 1.0}, {"s_image": 2.0})) == (
        pytest.approx(float(cal.model_predict(m0, "adv", {"image": 1.0}, {"s_image": 2.0}))))
    # fitted only where clean conditions cross two fine-tuning radii
    leg = [cal.Condition("c", "leg", "calib", {}, {"s_image": s}) for s in (0.0, 1.0)]
    adv = [cal.Condition("a", "adv", "calib", {"image": 1.0}, {"s_image": 1.0})]
    names = cal._free_names([*leg, *adv], ("image",), {}, False, set())
    assert "image.mu" not in names
    leg.append(cal.Condition("c", "leg", "calib", {}, {"s_image": 2.0}))
    assert "image.mu" in cal._free_names([*leg, *adv], ("image",), {}, False, set())


def test_clean_noise_cost_recovered_and_needed():
    """Clean bits that fall with the noise lever: fitted by nu, missed without it."""
    p = {"B": 1.2, "S": 1.0, "N": 0.05, "alpha": 0.4, "beta": 0.0, "gamma": 0.0, "rho": 0.0,
         "nu": 0.6}
    true = _model(params={"image": dict(p), "text": dict(p)}, link_q=2.5, link_q_leg=6.0,
                  caps={})
    conds = [cal.Condition("leg", "leg", "calib", {}, {"n_image": n})
             for n in (0.0, 1.0, 2.0, 3.0, 4.0)]
    conds += [cal.Condition("i", "adv", "calib", {"image": a}, lv)
              for a in (0.25, 0.5, 1.0, 2.0, 4.0) for lv in ({}, {"n_image": 2.0})]
    for c in conds:
        c.bits = float(cal.predict_condition(true, c))
    fit = cal.fit_model(conds, ("image",), terms=(), restarts=4)
    assert fit.rms < 0.02
    held = cal.Condition("h", "leg", "held", {}, {"n_image": 2.5})
    assert cal.predict_condition(fit, held) == pytest.approx(
        cal.predict_condition(true, held), abs=0.03)
    old = true._replace(params={"image": {**p, "nu": 0.0}, "text": dict(p)})
    assert abs(cal.predict_condition(old, held) - cal.predict_condition(true, held)) > 0.3


def _stored_cells():
    import json

    data = Path(__file__).parent / "data"
    meta = json.loads((data / "validate_cells.json").read_text())
    df = pd.read_csv(data / "validate_cells.csv", keep_default_na=False)
    lev = [c for c in df.columns if c[:2] in ("n_", "s_", "b_")]
    conds = [cal.Condition(r.label, r.kind, r.split,
                           {ch: float(r[f"P_{ch}"]) for ch in meta["channels"]},
                           {k: float(r[k]) for k in lev}, float(r.bits), float(r.lo),
                           float(r.hi), {"allocation": r.allocation})
             for _, r in df.iterrows()]
    return meta, conds


@pytest.mark.slow
def test_decision_level_score_on_stored_measurements():
    """Predicted vs measured worst case across 8 allocations measured on the digits model.

    Stored: the calibration, held-out and allocation cells of a kept quick run (see
    tests/data/validate_cells.json for the source).  Each allocation is predicted by the
    model recalibrated on the calibration conditions plus the *other* allocations' cells.
    """
    from scipy.stats import rankdata

    meta, conds = _stored_cells()
    calib = [c for c in conds if c.split == "calib"]
    held = [c for c in conds if c.split == "held"]
    cells = [c for c in conds if c.split == "game"]
    kw = dict(channels=meta["channels"], power=meta["power"], caps=meta["caps"],
              reallocate=meta["reallocate"])
    pr = cal.prediction_report(calib, held, cells, **kw)
    rows = pr.allocations
    assert len(rows) == 8
    # an independent rank correlation (Pearson of ranks) of the same numbers
    pred = rankdata([r["predicted_recalibrated"] for r in rows])
    meas = rankdata([r["measured"] for r in rows])
    assert pr.recalibrated.spearman == pytest.approx(np.corrcoef(pred, meas)[0, 1])
    assert pr.recalibrated.mae == pytest.approx(
        np.mean([abs(r["predicted_recalibrated"] - r["measured"]) for r in rows]))
    # measured: the recalibrated model with interaction terms ranks the defenses
    assert pr.recalibrated.spearman >= 0.8 > pr.blind_recalibrated.spearman
    assert pr.recalibrated.mae <= 0.15 < pr.blind_recalibrated.mae
    assert np.isnan(pr.blind_decision.spearman)  # a defense-blind model cannot rank at all
    assert held and pr.held.n == len(held) and any(c.kind == "leg" for c in held)
    # ...and the test can fail: without interaction terms the same procedure does not rank
    flat = cal.prediction_report(calib, held, cells, terms=(), **kw)
    assert flat.recalibrated.spearman < 0.5


@pytest.mark.slow
def test_tiny_digits_end_to_end(tmp_path, monkeypatch):
    """The quick preset's pipeline on the real digits model, shrunk to seconds."""
    pytest.importorskip("minimax.validate.targets.digits")
    from minimax.validate.run import run

    monkeypatch.setenv("MINIMAX_CACHE", str(tmp_path / "cache"))
    o = [
        "validate.n_boot=50",
        "validate.target.data={n_attack: 8, n_calib: 12, n_held: 12}",
        "validate.target.model.epochs=8",
        "validate.target.draws=2",
        "validate.target.attack_defaults={steps: 4, eot: 2, text_steps: 1, n_cand: 4, "
        "topk: 8, rounds: 1}",
        "validate.conditions.calib=[{defense: {}, power: {image: [0.5, 1, 2]}, "
        "joint: [{image: 0.5, text: 0.5}], clean: true}, {defense: {n_image: 2.0}, "
        "power: {image: [1]}, clean: true}, {defense: {b_text: 1.0}, "
        "joint: [{image: 0.5, text: 0.5}]}]",
        "validate.conditions.held=[{defense: {n_image: 3.0}, power: {image: [1]}, "
        "clean: true}]",
        "validate.game.menu=false",
        "~validate.game.alternatives",
        "+validate.game.alternatives={all noise: {n_image: 1.0}, all cap: {b_text: 1.0}}",
        "validate.game.row_splits=[]",
        "validate.game.grid=1",
        "validate.game.max_iter=1",
        "validate.game.lever_steps=2",
        "validate.model.restarts=1",
        "validate.checks=[]",
        "validate.workers=1",  # workers: tests/test_validate_parallel.py
    ]
    res = run(_compose(o).validate, tmp_path / "out")
    assert res["status"] == "ok" and not res["errors"], res["errors"]
    alloc = pd.read_csv(tmp_path / "out" / "allocation.csv")
    assert {"no defense", "engine prescription"} <= set(alloc.allocation)
    assert ((alloc.measured_lo <= alloc.measured_bits + 1e-12)
            & (alloc.measured_bits <= alloc.measured_hi + 1e-12)).all()
    assert alloc.measured_hi.max() <= math.log2(10) + 1e-12 and alloc.measured_lo.min() >= 0
    assert (tmp_path / "out" / "game_table.png").exists()
