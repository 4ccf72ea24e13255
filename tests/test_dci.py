"""DCI (docs §4.2) against independent brute-force best responses, and the shipped data."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import yaml
from scipy.optimize import minimize_scalar

import minimax
from minimax.analysis import (
    AttackClass,
    DefenseSpec,
    Taxonomy,
    class_caps,
    dci,
    defense_cost_check,
    load_catalogue,
    load_taxonomy,
)

ROOT = Path(__file__).resolve().parents[1]

# two channels: prediction/image (model level) and agent_app/text (system level)
CH = dict(
    B=[2.0, 1.0],
    S=[1.0, 2.0],
    N=[1.0, 0.5],
    w=[1.0, 1.5],
    u=[1.0, 1.0],
    rho=[0.5, 0.2],
    alpha=[1.0, 0.5],
    beta=[0.5, 0.5],
    gamma=[0.5, 1.5],
)


def _game() -> minimax.Game:
    return minimax.Game.create(
        mode="injection",
        attacker_budget=1.0,
        defender_budget=1.0,
        flows=["prediction", "agent_app"],
        modalities=["image", "text"],
        names=["prediction/image", "agent_app/text"],
        **CH,
    )


TAX = Taxonomy(
    "t",
    {},
    {},
    (
        AttackClass("adv_image", "injection", 1.0, (("prediction/*", math.inf),)),
        AttackClass("both", "injection", 2.0, (("*/*", math.inf),)),
        AttackClass("sponge", "jamming", 0.5, (("prediction/image", math.inf),)),
    ),
)
CAT = (
    DefenseSpec("purify", "model", (("prediction/image", "n", 1.0),), 1.0),
    DefenseSpec("sandbox", "system", (("agent_app/*", "b", 1.0),), 1.0),
    DefenseSpec("align", "model", (("*/*", "s", 0.5),), 1.0),
)
POWERS = np.array([0.5, 3.0, 40.0, 2e3])


def _factors(x):
    n, s, b = (np.asarray(v, float) for v in x)
    a = np.asarray(CH["alpha"])
    return np.exp(-a * n), 1 + np.asarray(CH["beta"]) * s, np.exp(-np.asarray(CH["gamma"]) * b)


def _injection_harm(x, reach, p):
    """max over the attacker's power split (brute force on the budget line) of sum w Cadv."""
    eta, sigma, kappa = _factors(x)
    m = (np.asarray(CH["N"]) + sigma * np.asarray(CH["S"])) / eta
    c = np.asarray(CH["w"]) * np.asarray(CH["B"]) * kappa
    if reach.sum() == 1:
        i = int(np.argmax(reach))
        return c[i] * math.log2(1 + p / m[i])

    def neg(a0):
        return -(c[0] * math.log2(1 + a0 / m[0]) + c[1] * math.log2(1 + (p - a0) / m[1]))

    grid = np.linspace(0, p, 2001)
    k = int(np.argmin([neg(a) for a in grid]))
    lo, hi = grid[max(k - 1, 0)], grid[min(k + 1, len(grid) - 1)]
    res = minimize_scalar(neg, bounds=(lo, hi), method="bounded", options={"xatol": 1e-12})
    return -min(res.fun, neg(0.0), neg(p))


def _jamming_harm(x, p):
    """Jamming on channel 0 only: all power on it (harm increases in a), minus L(x, 0)."""
    eta, sigma, kappa = _factors(x)
    leg = np.asarray(CH["B"]) * kappa ** np.asarray(CH["rho"])
    sn = sigma[0] * CH["S"][0]
    return (
        CH["w"][0]
        * leg[0]
        * (math.log2(1 + sn / CH["N"][0]) - math.log2(1 + sn / (CH["N"][0] + eta[0] * p)))
    )


def _vector(name):
    x = {
        "purify": ([1, 0], [0, 0], [0, 0]),
        "sandbox": ([0, 0], [0, 0], [0, 1]),
        "align": ([0, 0], [0.5, 0.5], [0, 0]),
        "none": ([0, 0], [0, 0], [0, 0]),
    }[name]
    return x


def _expected():
    classes = {
        "adv_image": (np.array([1, 0]), "injection", 1.0),
        "both": (np.array([1, 1]), "injection", 2.0),
        "sponge": (np.array([1, 0]), "jamming", 0.5),
    }
    out = {}
    for d in ("purify", "sandbox", "align"):
        per = {}
        for k, (reach, mode, _) in classes.items():
            covers = []
            for p in POWERS:
                f = (
                    (lambda x, p=p, reach=reach: _injection_harm(x, reach, p))
                    if mode == "injection"
                    else (lambda x, p=p: _jamming_harm(x, p))
                )
                covers.append(1 - f(_vector(d)) / f(_vector("none")))
            per[k] = np.array(covers)
        total = sum(w for *_, w in classes.values())
        out[d] = (per, sum(w * per[k].mean() for k, (*_, w) in classes.items()) / total)
    return out


def test_dci_matches_brute_force_best_responses():
    r = dci(_game(), CAT, TAX, POWERS)
    exp = _expected()
    assert r.classes == ("adv_image", "both", "sponge")
    for j, d in enumerate(r.defenses):
        per, total = exp[d]
        for c, k in enumerate(r.classes):
            np.testing.assert_allclose(r.cover[j, c], per[k], rtol=1e-7, atol=1e-10)
        assert r.dci[j] == pytest.approx(total, rel=1e-7, abs=1e-10)
    # ranking is computed: sorted by DCI, descending
    assert [row["defense"] for row in r.table()] == [
        r.defenses[j] for j in np.argsort(-r.dci, kind="stable")
    ]
    assert all(a["dci"] >= b["dci"] for a, b in zip(r.table(), r.table()[1:], strict=False))


def test_dci_closed_forms_one_channel_classes():
    """Single-channel classes: noise suppression decays (spec 6), bandwidth holds at 1-e^{-g d}."""
    r = dci(_game(), CAT, TAX, POWERS)
    m0 = CH["N"][0] + CH["S"][0]
    c_adv = r.cover[r.defenses.index("purify"), r.classes.index("adv_image")]
    np.testing.assert_allclose(
        c_adv, 1 - np.log1p(POWERS * math.exp(-1.0) / m0) / np.log1p(POWERS / m0), rtol=1e-10
    )
    assert np.all(np.diff(c_adv) < 0)
    # per-flow breakdown: class "both" restricted to agent_app is one channel with b = 1
    sandbox = r.defenses.index("sandbox")
    agent = r.flows.index("agent_app")
    assert r.per_flow[sandbox, agent] == pytest.approx(1 - math.exp(-1.5), rel=1e-10)
    assert math.isnan(r.per_flow[sandbox, r.flows.index("memory")])


def test_dci_equal_budget_rescales_and_skips_unreachable():
    tax = TAX._replace(
        classes=TAX.classes
        + (AttackClass("audio", "injection", 1.0, (("prediction/audio", math.inf),)),)
    )
    r = dci(_game().replace(defender_budget=2.0), CAT, tax, POWERS, equal_budget=True)
    assert r.skipped == ("audio",)
    np.testing.assert_allclose(r.cost, 2.0)


def test_shipped_taxonomy_and_catalogue():
    tax = load_taxonomy(ROOT / "conf/taxonomy/mfm.yaml")
    cat = load_catalogue(ROOT / "conf/defense")
    game = minimax.Game.from_dict(yaml.safe_load((ROOT / "conf/game/mfm_default.yaml").read_text()))
    assert len(cat) >= 15
    assert {"model", "system"} == {s.category for s in cat}
    for spec in cat:
        defense_cost_check(game, spec)  # declared cost = game cost of the investment
        assert spec.source and spec.adaptive_failure in ("yes", "partial", "no", "unknown")
    required = {
        "adversarial_examples",
        "jailbreak_prompts",
        "visual_jailbreaks",
        "direct_prompt_injection",
        "indirect_prompt_injection",
        "data_poisoning_backdoors",
        "membership_inference_inversion",
        "model_extraction",
        "agent_hijacking_tools",
        "multi_agent_contagion",
        "memory_poisoning",
        "cross_modal_misalignment",
    }
    assert required <= set(tax.class_names)
    for c in tax.classes:
        assert c.sources and np.any(class_caps(game, c) > 0), c.name
    # data poisoning inherits the game's cap on the learning flow
    poison = tax.classes[tax.class_names.index("data_poisoning_backdoors")]
    caps = class_caps(game, poison)
    assert set(caps[caps > 0]) == {2.0}


@pytest.mark.slow
def test_default_game_dci_runs_and_is_in_range():
    tax = load_taxonomy(ROOT / "conf/taxonomy/mfm.yaml")
    cat = load_catalogue(ROOT / "conf/defense")
    game = minimax.Game.from_dict(yaml.safe_load((ROOT / "conf/game/mfm_default.yaml").read_text()))
    r = dci(game, cat, tax, np.geomspace(1, 1e6, 7))
    injection = [i for i, c in enumerate(tax.classes) if c.mode == "injection"]
    assert np.all(r.cover[:, injection] >= -1e-12) and np.all(r.cover[:, injection] <= 1 + 1e-12)
    # weighted-sum identity between the breakdowns
    np.testing.assert_allclose(r.dci, r.curve.mean(axis=1), rtol=1e-12)


def test_provenance_label_names_the_target_or_the_source():
    """Each DCI row says where its amounts come from: the validation target a measured row was
    measured on, the first citation of an assumed row (its source up to the year)."""
    from minimax.analysis import load_catalogue
    from minimax.analysis._dci import provenance_label
    from minimax.analysis._specs import DefenseSpec

    base = DefenseSpec(name="x", category="system", investments=(), cost=0.0,
                       source="Xiang et al. 2024, Certifiably Robust RAG (arXiv:2405.15556)")
    assert provenance_label(base) == "assumed from Xiang et al. 2024"
    measured = base._replace(provenance="measured",
                             provenance_note="b measured on the agent-memory target: ...")
    assert provenance_label(measured) == "measured on the agent-memory target"
    assert provenance_label(base._replace(source="")) == "assumed"
    labels = {s.name: provenance_label(s) for s in load_catalogue(ROOT / "conf/defense")}
    assert labels["perplexity_filter"] == "measured on the agent-memory target"
    assert labels["randomized_smoothing"] == "measured on the bundled digits target"
    assert labels["sandboxing"] == "assumed from Wu et al. 2025"
