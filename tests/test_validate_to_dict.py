"""The validation's result records have a ``to_dict`` of plain Python that survives JSON and
rebuilds the record field for field (docs/solution-concepts.md §2.10)."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("torch")

from minimax.validate.calibrate import Prediction, Score, score  # noqa: E402
from minimax.validate.empirical import RowScore, TraceStep  # noqa: E402
from minimax.validate.game_bridge import Prescription  # noqa: E402
from minimax.validate.measure import Bits, Difference, MIEstimate, mi_with_ci  # noqa: E402


def _rebuilt(result):
    d = json.loads(json.dumps(result.to_dict()))
    assert sorted(d) == sorted(result._fields), type(result).__name__
    return type(result)(**d)


def _equal(a, b) -> bool:
    if isinstance(a, tuple) and hasattr(a, "_fields"):
        return all(_equal(getattr(a, f), getattr(b, f)) for f in a._fields)
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True)
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def test_measurement_records_round_trip():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    x = np.where(rng.random(200) < 0.7, y, rng.integers(0, 4, 200))
    est = mi_with_ci(x, y, 4, n_boot=50)
    assert isinstance(est, MIEstimate)
    back = _rebuilt(est)
    assert _equal(back, est) and back.lo <= back.bits <= back.hi
    bits = Bits(1.25, 1.0, 1.5, np.linspace(1.0, 1.5, 7))
    back = _rebuilt(bits)
    assert _equal(back, bits) and isinstance(back.boot, list)
    for rec in (Difference(0.25, -0.01, 0.4), score([1.0, 2.0, 3.5], [1.1, 2.2, 3.0]),
                Score(0, float("nan"), float("nan"))):
        assert _equal(_rebuilt(rec), rec)


def test_game_records_round_trip():
    step = TraceStep(1, 13, 30, 2.5, 0.05, -0.04, 0.1, 0.0, 0.0, 0.0, 0.05, 0.0, 0.1,
                     "column auto", 12.5)
    row = RowScore("no defense", 2.8, 2.7, 3.0, "auto image=1", 0.3, 0.16, 0.33, 0.1, 0.0, 0.2)
    pres = Prescription({"n_image": 1.0}, 2.4, {"image": 1.0, "text": 0.0}, 2.9)
    pred = Prediction(*(Score(9, 0.9, 0.15),) * 6, allocations=[{"name": "a", "measured": 2.0}])
    for rec in (step, row, pres):
        assert _equal(_rebuilt(rec), rec)
    d = json.loads(json.dumps(pred.to_dict()))
    assert Prediction(**{k: Score(**v) if k != "allocations" else v for k, v in d.items()}) == pred
