"""Tests of the attacker oracle: APGD, Square, mixture GCG and the digits target."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")
pytest.importorskip("transformers")

from minimax.validate import attacks as atk  # noqa: E402
from minimax.validate.knobs import Knobs  # noqa: E402
from minimax.validate.measure import mi_with_ci  # noqa: E402

K = 10
TOL_BITS = 0.1  # noise allowance on bits between two budgets, same images and seed


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    import os

    from minimax.validate.targets import DigitsTarget

    old = os.environ.get("MINIMAX_CACHE")
    os.environ["MINIMAX_CACHE"] = str(tmp_path_factory.mktemp("cache"))  # never ~/.cache
    torch.set_num_threads(1)
    t = DigitsTarget(data={"n_attack": 32, "n_calib": 40, "n_held": 40}, model={"epochs": 15},
                     attack_defaults={"steps": 20, "eot": 4, "text_steps": 4, "n_cand": 8,
                                      "topk": 32, "rounds": 1})
    t.model(0.0)
    yield t
    if old is None:
        os.environ.pop("MINIMAX_CACHE", None)
    else:
        os.environ["MINIMAX_CACHE"] = old


def _bits(t, a, d, seed=0):
    o = t.evaluate(a, d, split="calib", seed=seed)
    return mi_with_ci(o.sent, o.answers, K, 50, seed=0), float((o.sent == o.answers).mean())


def _batch(t, n=40):
    x, _ = t.images("calib")
    x = x[:n]
    return x.repeat_interleave(K, 0), torch.arange(K).repeat(len(x))


# ---------------------------------------------------------------- building blocks


def test_apgd_checkpoints_match_the_paper():
    # p = 0, .22, .41, .57, .70, .80, .87, .93, .99 (Croce & Hein 2020, sec. 3.2)
    assert atk.apgd_checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


def test_dlr_is_positive_exactly_when_target_wins():
    lp = torch.log_softmax(torch.tensor([[3.0, 1.0, 0.5, 0.0], [1.0, 3.0, 0.5, 0.0]]), -1)
    t = torch.tensor([0, 0])
    dlr = atk._objective(lp, t, "dlr")
    assert dlr[0] > 0 > dlr[1]
    # shift and scale invariant: (z_t - z_other) / (z_1 - (z_3 + z_4) / 2)
    assert float(dlr[0]) == pytest.approx((3 - 1) / (3 - 0.25), rel=1e-5)


def test_mixture_pipeline_is_the_weighted_probability(target):
    from minimax.validate.pipeline import MixturePipeline, Pipeline

    x, tt = _batch(target, 5)
    m = target.model(0.0)
    p1 = Pipeline(m, Knobs(), target.order)
    p2 = Pipeline(m, Knobs(pixel_keep=0.5), target.order)
    mix = MixturePipeline([(0.3, p1), (0.7, p2)])
    with torch.no_grad():
        want = torch.log(0.3 * p1.log_probs(x, tt).exp() + 0.7 * p2.log_probs(x, tt).exp())
        assert torch.allclose(mix.log_probs(x, tt), want, atol=1e-5)
        same = MixturePipeline([(0.25, p1), (0.75, p1)])
        assert torch.allclose(same.log_probs(x, tt), p1.log_probs(x, tt), atol=1e-5)
    with pytest.raises(ValueError, match="weights"):
        MixturePipeline([(-1.0, p1)])


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_image_attacks_respect_the_ball_and_the_box(target, norm):
    from minimax.validate.pipeline import Pipeline

    pipe = Pipeline(target.model(0.0), Knobs(), target.order)
    x, tt = _batch(target, 10)
    eps = 1.0 if norm == "l2" else 0.125
    for r in (atk.apgd(pipe, x, tt, eps, norm, steps=10),
              atk.square(pipe, x, tt, eps, norm, queries=50)):
        d = (r.x_adv - x).flatten(1)
        size = d.norm(dim=1) if norm == "l2" else d.abs().max(1).values
        assert float(size.max()) <= eps * (1 + 1e-5)
        assert float(r.x_adv.min()) >= 0 and float(r.x_adv.max()) <= 1


# ---------------------------------------------------------------- the target


def test_digits_target_protocol_menu_and_options(target):
    from minimax.validate.target import Target

    assert isinstance(target, Target)
    menu = target.menu(1.0)
    assert "no defense" in menu and menu["no defense"] == Knobs(draws=target.draws)
    assert 6 <= len(menu) <= 12
    for name, d in menu.items():
        assert sum(target.lever_values(d).values()) <= 1.0 + 1e-9, name
    assert len({d.key() for d in menu.values()}) == len(menu)
    assert target.menu(0.0) == {"no defense": menu["no defense"]}
    d = target.realise({"b_text": 1.0, "n_image": 0.5})
    assert d.token_cap == 2 and d.level == pytest.approx(0.1)
    with pytest.raises(ValueError, match="stepz"):
        target.attack([(1.0, Knobs())], {"image": 1.0}, split="calib", seed=0,
                      options={"stepz": 3})
    with pytest.raises(ValueError, match="recipe"):
        target.attack([(1.0, Knobs())], {"image": 1.0}, split="calib", seed=0,
                      options={"recipe": "fgsm"})
    with pytest.raises(ValueError, match="split"):
        target.attack([(1.0, Knobs())], {"image": 1.0}, split="test", seed=0)
    with pytest.raises(ValueError, match="audio"):
        target.attack([(1.0, Knobs())], {"audio": 1.0}, split="calib", seed=0)
    with pytest.raises(ValueError, match="text_atol"):
        target.attack([(1.0, Knobs())], {"image": 1.0}, split="calib", seed=0,
                      options={"text_atol": -0.1})


def test_cap_aware_budget_moves_truncated_tokens_to_the_image(target):
    tau = target.token_power
    cap2 = Knobs(token_cap=2)
    assert target.budget_split([(1.0, cap2)], {"image": 0.5, "text": 8 * tau}) == (
        pytest.approx(0.5 + 6 * tau), 2)
    # a mixture with an uncapped defense keeps every token
    assert target.budget_split([(0.5, cap2), (0.5, Knobs())],
                               {"image": 0.5, "text": 8 * tau})[1] == 8
    a = target.attack([(1.0, cap2)], {"image": 0.5, "text": 8 * tau}, split="calib", seed=0,
                      options={"text_steps": 2})
    assert a.payload.tokens == 2 and all(s.numel() == 2 for s in a.payload.suffixes.values())
    assert a.power["image"] == pytest.approx(0.5 + 6 * tau)
    assert a.power["text"] == pytest.approx(2 * tau)
    x, _ = target.images("calib")
    dx = (a.payload.x_adv - x.repeat_interleave(K, 0)).flatten(1).norm(dim=1)
    assert float(dx.max()) <= math.sqrt(0.5 + 6 * tau) * (1 + 1e-5)
    assert float(dx.max()) > math.sqrt(0.5) * 1.05  # the freed power was spent on the image


def test_unbounded_attack_reaches_full_targeted_success(target):
    a = target.attack([(1.0, Knobs())], {"image": 64.0}, split="calib", seed=0)
    m, succ = _bits(target, a, Knobs())
    assert succ >= 0.99 and m.bits > 3.1


@pytest.mark.slow
def test_attack_strength_more_budget_never_lowers_bits(target):
    p = {"image": 1.0}
    none, noise = Knobs(), Knobs(purify="noise", level=0.3, draws=8)
    weak = _bits(target, target.attack([(1, none)], p, split="calib", seed=0,
                                       options={"steps": 1}), none)[0].bits
    for d, lo_opt, hi_opt in [(none, {"steps": 5}, {"steps": 40}),
                              (none, {"restarts": 1}, {"restarts": 3}),
                              (noise, {"eot": 1}, {"eot": 8})]:
        lo = _bits(target, target.attack([(1, d)], p, split="calib", seed=0,
                                         options=lo_opt), d)[0]
        hi = _bits(target, target.attack([(1, d)], p, split="calib", seed=0,
                                         options=hi_opt), d)[0]
        assert hi.bits >= lo.bits - TOL_BITS, (d.key(), lo_opt, hi_opt, lo, hi)
    # the comparison can fail: one step is far weaker than forty
    strong = _bits(target, target.attack([(1, none)], p, split="calib", seed=0,
                                         options={"steps": 40}), none)[0].bits
    assert strong > weak + 2 * TOL_BITS


@pytest.mark.slow
def test_apgd_at_least_as_strong_as_pgd_and_square_never_stronger(target):
    for d in (Knobs(), Knobs(pixel_keep=0.5)):
        bits = {}
        for recipe, steps in (("auto", 20), ("pgd", 20), ("square", 300)):
            a = target.attack([(1, d)], {"image": 0.7}, split="calib", seed=0,
                              options={"recipe": recipe, "steps": steps})
            bits[recipe] = _bits(target, a, d)[0]
        ap, pg, sq = bits["auto"], bits["pgd"], bits["square"]
        assert ap.bits >= pg.bits - 0.05, (d.key(), ap, pg)
        assert sq.bits <= ap.bits + (ap.hi - ap.bits), (d.key(), sq, ap)


@pytest.mark.slow
def test_gcg_bfloat16_ranking_accepts_only_float32_gains(target):
    """With ``screen=bfloat16`` the trace is float32: it never rises, and its last value is
    the float32 objective of the returned suffixes (evaluated afresh, 0 steps); the float32
    objective of the first suffix before any step equals the unscreened start."""
    xa, ya = target.images("attack")
    y = torch.from_numpy(ya)
    sides = target.text_sides([(1.0, Knobs(ensemble=2))], xa, False, 1, seed=0)
    res = atk.gcg_mixture(sides, y, 3, steps=4, n_cand=8, topk=32, screen=torch.bfloat16)
    exact = atk.gcg_mixture(sides, y, 3, steps=0, init=res.suffixes).loss[0]
    start = atk.gcg_mixture(sides, y, 3, steps=0).loss[0]
    assert res.loss[0] == pytest.approx(start, rel=1e-6)
    assert all(b <= a + 1e-6 for a, b in zip(res.loss, res.loss[1:], strict=False))
    assert res.loss[-1] == pytest.approx(exact, rel=1e-5)
    assert res.loss[-1] < res.loss[0]


@pytest.mark.slow
def test_gcg_against_an_ensemble_beats_a_transferred_suffix(target):
    ens = Knobs(ensemble=3)
    xa, ya = target.images("attack")
    y = torch.from_numpy(ya)
    adaptive = target.text_sides([(1.0, ens)], xa, False, 1, seed=0)
    plain = target.text_sides([(1.0, Knobs())], xa, False, 1, seed=0)
    k, steps = 2, 3
    sfx_a = atk.gcg_mixture(adaptive, y, k, steps=steps, n_cand=8, topk=32).suffixes
    sfx_t = atk.gcg_mixture(plain, y, k, steps=steps, n_cand=8, topk=32).suffixes
    # the objective under the ensemble defense of each suffix (0 steps = evaluate only)
    loss_a = atk.gcg_mixture(adaptive, y, k, steps=0, init=sfx_a).loss[0]
    loss_t = atk.gcg_mixture(adaptive, y, k, steps=0, init=sfx_t).loss[0]
    loss_0 = atk.gcg_mixture(adaptive, y, k, steps=0).loss[0]
    # GCG is a heuristic: "beats or equals" up to 1% of the objective at 3 steps
    assert loss_a <= loss_t * 1.01 and loss_a < loss_0 - 0.5, (loss_a, loss_t, loss_0)
    # and measured: the defended system's answers under each suffix (text only)
    from minimax.validate.target import Attack
    from minimax.validate.targets import DigitsPayload

    x, _ = target.images("calib")
    xx = x.repeat_interleave(K, 0)
    a = Attack("adaptive", {}, DigitsPayload("calib", xx, sfx_a, k), {})
    t = Attack("transfer", {}, DigitsPayload("calib", xx, sfx_t, k), {})
    sa, st = _bits(target, a, ens)[1], _bits(target, t, ens)[1]
    assert sa >= st - 0.03  # 400 queries: a 3-point allowance for noise


@pytest.mark.slow
def test_mixture_attack_on_a_single_defense_is_the_plain_attack(target):
    d = Knobs(pixel_keep=0.6)
    p = {"image": 0.5, "text": 2 * target.token_power}
    plain = target.attack([(1.0, d)], p, split="calib", seed=0, options={"text_steps": 2})
    split_mix = target.attack([(0.4, d), (0.6, d)], p, split="calib", seed=0,
                              options={"text_steps": 2})
    for t in range(K):
        assert torch.equal(plain.payload.suffixes[t], split_mix.payload.suffixes[t])
    # equal up to float rounding of log(0.4 p + 0.6 p), which can flip an APGD step-size
    # decision for a few images: most rows identical, answers agree
    diff = (plain.payload.x_adv - split_mix.payload.x_adv).flatten(1).abs().max(1).values
    assert float((diff < 1e-3).float().mean()) >= 0.9
    o1 = target.evaluate(plain, d, split="calib", seed=0)
    o2 = target.evaluate(split_mix, d, split="calib", seed=0)
    assert np.mean(o1.answers != o2.answers) <= 0.02
    with pytest.raises(ValueError, match="split"):
        target.evaluate(plain, d, split="held", seed=0)


def test_plateaued_is_the_relative_gain_of_a_chunk():
    assert atk.plateaued(2.0, 1.95, 0.03)          # 2.5% < 3%
    assert not atk.plateaued(2.0, 1.9, 0.03)       # 5% >= 3%
    assert not atk.plateaued(2.0, 2.0, 0.0)        # tol 0: never a plateau
    assert atk.plateaued(0.0, 0.0, 0.0)            # nothing left to gain


def test_plateaued_absolute_gain_and_floor():
    # 0.004 nats is 50% of 0.008: the relative rule goes on, the absolute one stops
    assert not atk.plateaued(0.008, 0.004, 0.03)
    assert atk.plateaued(0.008, 0.004, 0.03, atol=0.005)
    assert not atk.plateaued(0.008, 0.002, 0.03, atol=0.005)   # gained 0.006 >= 0.005
    assert atk.plateaued(2.0, 1.0, 0.03, atol=0.005, floor=1.0)  # at the floor
    assert not atk.plateaued(2.0, 1.0, 0.03, atol=0.005, floor=0.5)


def test_reached_floor_is_the_closed_form_and_bounds_every_term():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    # targets 0, 1, 2 keep 4, 5, 3 images not of their class: ln 2 / (3 * 5)
    assert atk.reached_floor(labels, 3) == pytest.approx(math.log(2) / 15, rel=1e-15)
    # the objective (1/T) sum_t sum_n w_tn l_tn at the floor never lets a term exceed ln 2,
    # and the bound is tight: all loss on one image of the largest group
    keep = (labels[None, :] != torch.arange(3)[:, None]).double()
    w = keep / keep.sum(1, keepdim=True)
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        lt = torch.rand(3, 6, generator=g, dtype=torch.float64) ** 8 * keep
        lt *= atk.reached_floor(labels, 3) / float((w * lt).sum(1).mean())
        assert float(lt.max()) <= math.log(2) + 1e-12
    one = torch.zeros(3, 6, dtype=torch.float64)
    one[1, 0] = math.log(2)
    assert float((w * one).sum(1).mean()) == pytest.approx(atk.reached_floor(labels, 3))


def test_gcg_plateau_extends_while_the_objective_falls(target):
    xa, ya = target.images("attack")
    y = torch.from_numpy(ya[:8])
    sides = target.text_sides([(1.0, Knobs())], xa[:8], False, 1, seed=0)
    kw = {"n_cand": 4, "topk": 16, "seed": 3, "combine": ()}
    fixed = atk.gcg_mixture(sides, y, 2, steps=1, **kw)
    same = atk.gcg_plateau(sides, y, 2, steps=1, chunk=1, extra=0, tol=0.5, **kw)
    assert same.loss == fixed.loss  # no extra steps: the fixed budget, bit for bit
    every = atk.gcg_plateau(sides, y, 2, steps=1, chunk=1, extra=2, tol=0.0, **kw)
    assert len(every.loss) == 1 + 2 + 1 and every.loss[-1] <= fixed.loss[-1]
    assert every.loss[:2] == fixed.loss  # the extension continues the same run
    # a gain threshold no chunk can reach (100%) stops at the minimum budget
    stop = atk.gcg_plateau(sides, y, 2, steps=1, chunk=1, extra=2, tol=1.0, **kw)
    assert stop.loss == fixed.loss
    # an absolute gain no chunk can reach stops there too (``every`` ran with atol = 0)
    big = atk.gcg_plateau(sides, y, 2, steps=1, chunk=1, extra=2, tol=0.0, atol=1e9, **kw)
    assert big.loss == fixed.loss


@pytest.mark.slow
def test_gcg_pruned_combinations_give_the_unpruned_run(target):
    """Skipping a combined size no target can fill is exact: same suffixes, same objective
    trace (to float rounding), on a fixed seed long enough for sizes to be skipped."""
    xa, ya = target.images("attack")
    y = torch.from_numpy(ya[:6])
    sides = target.text_sides([(1.0, Knobs())], xa[:6], False, 1, seed=0)
    kw = {"n_cand": 4, "topk": 8, "seed": 5, "combine": (2, 4)}
    calls = []
    orig = sides[0].model.encode_text

    def counting(ids, mask, embeds=None):
        calls.append(ids.shape[0])
        return orig(ids, mask, embeds)

    sides[0].model.encode_text = counting
    try:
        full = atk.gcg_mixture(sides, y, 4, steps=5, prune=False, **kw)
        n_full, calls[:] = sum(calls), []
        fast = atk.gcg_mixture(sides, y, 4, steps=5, prune=True, **kw)
        n_fast = sum(calls)
    finally:
        del sides[0].model.encode_text
    for t in full.suffixes:
        assert torch.equal(full.suffixes[t], fast.suffixes[t])
    np.testing.assert_allclose(fast.loss, full.loss, rtol=1e-6, atol=1e-7)
    assert n_fast < n_full  # some combined size was skipped (fewer sequences encoded)


def test_text_alone_budget_scales_only_attacks_without_image_power(target):
    """``text_alone = f``: f times GCG's minimum and maximum steps and 1/f its plateau
    thresholds for text alone, the joint attack's budget untouched."""
    from minimax.validate.targets.digits import gcg_budget

    o = {"text_steps": 32, "text_max": 128, "text_tol": 0.03, "text_atol": 0.005,
         "text_alone": 2, "steps": 30}
    assert gcg_budget(o, alone=True) == {**o, "text_steps": 64, "text_max": 256,
                                         "text_tol": 0.015, "text_atol": 0.0025}
    assert gcg_budget(o, alone=False) == o and gcg_budget({**o, "text_alone": 1}, True) == {
        **o, "text_alone": 1}
    tiny = {"text_steps": 2, "text_max": 0, "n_cand": 2, "topk": 4, "text_alone": 3}
    att = target.attack([(1.0, Knobs())], {"text": 1.0}, split="calib", seed=0, options=tiny)
    assert len(att.trace["text_loss"]) == 1 + 6  # the initial objective, then 3 x 2 steps
    with pytest.raises(ValueError, match="text_alone"):
        target.attack([(1.0, Knobs())], {"text": 1.0}, split="calib", seed=0,
                      options={"text_alone": 0})


def test_random_scale_multiplies_the_image_budget_only_against_randomised_defenses(target):
    """``random_scale = f``: against noise purification the ``auto`` image attack is fixed-step
    PGD-EOT at f times ``steps`` and ``eot`` (the same images as ``pgd`` given that budget);
    against a deterministic defense ``f`` changes nothing."""
    x, t = _batch(target, 8)
    eps = target._eps(0.7, "l2")
    def run(knobs, **over):  # a fresh pipeline each time: its noise draws start alike
        pipe = target._pipes([(1.0, knobs)], {}, seed=5)
        return target._image_attack(pipe, x, t, eps, {**o, **over}, seed=1).x_adv

    noise, mask = Knobs(purify="noise", level=0.4, draws=4), Knobs(pixel_keep=0.5)
    o = target._options({"steps": 3, "eot": 2, "random_scale": 2})
    scaled = run(noise)
    assert torch.equal(scaled, run(noise, recipe="pgd", random_scale=1, steps=6, eot=4))
    assert not torch.equal(scaled, run(noise, random_scale=1))
    assert torch.equal(run(mask), run(mask, random_scale=1))
    with pytest.raises(ValueError, match="random_scale"):
        target._options({"random_scale": 0})
