"""The measurement store: a second run re-measures nothing it has measured."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from minimax.validate.store import StoredTarget  # noqa: E402
from minimax.validate.targets.synthetic import SyntheticTarget  # noqa: E402


class Counting(SyntheticTarget):
    """The synthetic target, counting the calls that reach it."""

    calls = 0

    def attack(self, *a, **k):
        Counting.calls += 1
        return super().attack(*a, **k)

    def evaluate(self, *a, **k):
        Counting.calls += 1
        return super().evaluate(*a, **k)

    def clean(self, *a, **k):
        Counting.calls += 1
        return super().clean(*a, **k)


def _measure(t):
    d = t.realise({"n_image": 0.5})
    a = t.attack([(1.0, d)], {"image": 1.0, "text": 0.5}, split="held", seed=2)
    return (t.evaluate(a, d, split="held", seed=2), t.evaluate(a, t.realise({}), split="held",
                                                                seed=2),
            t.clean(d, split="held", seed=2))


def test_store_reuses_every_result_and_keys_on_identity(tmp_path):
    Counting.calls = 0
    first = StoredTarget(Counting(), tmp_path, ("synthetic", 0))
    out1 = _measure(first)
    assert Counting.calls == 4 and first.misses == 4 and first.hits == 0
    again = StoredTarget(Counting(), tmp_path, ("synthetic", 0))
    out2 = _measure(again)
    assert Counting.calls == 4 and again.hits == 4 and again.misses == 0  # nothing re-measured
    for o1, o2 in zip(out1, out2, strict=True):
        assert np.array_equal(o1.sent, o2.sent) and np.array_equal(o1.answers, o2.answers)
    other = StoredTarget(Counting(), tmp_path, ("synthetic", 1))  # another seed: measured
    _measure(other)
    assert Counting.calls == 8 and other.hits == 0
    assert other.levers == ("n_image", "b_text")  # everything else is the target's



def test_store_refuses_results_measured_on_another_build(tmp_path):
    class Built(Counting):
        fingerprint = "towers v3"

    Counting.calls = 0
    first = StoredTarget(Built(), tmp_path, ("synthetic", 0))
    _measure(first)
    again = StoredTarget(Built(), tmp_path, ("synthetic", 0))  # same build: reused
    _measure(again)
    assert again.hits == 4 and Counting.calls == 4
    Built.fingerprint = "towers v4"  # new code builds another model for the same config
    with pytest.raises(ValueError, match=r"validate.store=.*towers v3.*towers v4"):
        StoredTarget(Built(), tmp_path, ("synthetic", 0))
    StoredTarget(Built(), tmp_path, ("synthetic", 1))  # another identity: its own record


def test_targets_name_their_build():
    from minimax.validate.model import MODEL_VERSION
    from minimax.validate.targets.combined import CombinedTarget
    from minimax.validate.targets.digits import DigitsTarget
    from minimax.validate.targets.hf_clip import HFClipTarget

    assert DigitsTarget.fingerprint == f"digits towers v{MODEL_VERSION}"
    assert HFClipTarget.fingerprint is None
    units = {"vision": 1.0, "agent": 1.0}
    plain = CombinedTarget({"vision": SyntheticTarget(), "agent": SyntheticTarget()}, units)
    assert plain.fingerprint is None
    built = SyntheticTarget()
    built.fingerprint = "towers v3"
    both = CombinedTarget({"vision": built, "agent": SyntheticTarget()}, units)
    assert both.fingerprint == (("vision", "towers v3"), ("agent", None))


def test_seeds_table_reads_every_seed_and_averages(tmp_path):
    import json

    from minimax.validate.report import main as seeds_main

    runs = []
    for seed, worst, mae in ((0, 2.5, 0.10), (1, 2.7, 0.20)):
        d = tmp_path / f"seed{seed}"
        d.mkdir()
        goal = {"validated_worst": worst, "validated_lo": worst - 0.2,
                "validated_hi": worst + 0.2, "engine_regret": [0.1, 0.0, 0.2],
                "no_defense_minus_validated": [0.3, 0.1, 0.4], "engine_rank_among_pure": 1,
                "n_pure_rows": 12, "status": "max_iter" if seed else "converged"}
        trace = [{"exploitability": 0.8, "expl_lo": 0.5, "expl_hi": 0.9}]
        (d / "summary.json").write_text(json.dumps(
            {"seed": seed, "status": "ok", "goal": goal, "game": {"trace": trace},
             "heldout": {"model": {"mae": mae}, "blind": {"mae": 0.4}},
             "checks": [{"check": "joint", "delta": 0.05, "delta_lo": -0.1,
                         "delta_hi": 0.2}]}))
        runs.append(str(d))
    seeds_main([str(tmp_path), *runs])
    md = (tmp_path / "seeds.md").read_text()
    assert "| 2.600 (0.141) |" in md  # mean (sd) of 2.5 and 2.7
    assert "| 0.150 (0.071) |" in md  # held-out MAE
    assert "+0.050 [-0.100, +0.200]" in md and "1 of 12" in md
    # a double oracle stopped by its iteration cap says so beside its worst case
    assert "| double oracle: status | converged | max_iter |" in md
    assert "0.800 [0.500, 0.900]" in md


def test_refit_reproduces_a_kept_run_from_its_files():
    """The kept quick run's held-out score, recomputed from its CSV and JSON alone."""
    import json
    from pathlib import Path

    from minimax.validate.refit import rescore

    run = Path(__file__).resolve().parents[1] / "experiments/results/validate_quick/earlier/seed1"
    kept = json.loads((run / "summary.json").read_text())
    r = rescore(run, terms=tuple(kept["model"]["terms"]), restarts=3)
    assert r["held"]["mae"] == pytest.approx(kept["heldout"]["model"]["mae"], abs=1e-6)
    assert r["held_blind"]["mae"] == pytest.approx(kept["heldout"]["blind"]["mae"], abs=1e-6)
    assert r["allocations"]["n"] == len(kept["decision"]["allocations"])
    assert r["allocations"]["spearman"] == pytest.approx(
        kept["decision"]["decision"]["spearman"], abs=1e-6)
