"""A measurement store: a target whose attacks and answers are kept on disk.

:class:`StoredTarget` wraps any target (:class:`~minimax.validate.target.Target`) and keeps
every ``attack``, ``evaluate`` and ``clean`` result in a directory, keyed by a hash of the
target's own configuration and the call's arguments (docs/validation.md §5.7).  A second
run of the pipeline with the same store re-measures nothing it has measured before: only
new cells (a new engine prescription's row, a new double-oracle column) call the target.
So a change of the channel model is re-fitted and re-scored on the same measurements in
minutes.  The targets here seed every draw from their arguments (attack, data split and
noise streams), so a stored result equals a fresh one; a target whose results depend on
call order must not be stored.

Keys hash ``repr`` of the arguments: defense knobs and mixtures must have a deterministic
``repr`` (dataclasses and named tuples do).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from minimax.validate.target import Attack, Outcome


def call_key(*parts: Any) -> str:
    """Stable 20-hex-digit key of ``repr`` of ``parts``."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()[:20]


class StoredTarget:
    """``target`` with its results kept under ``root`` (see the module docstring).

    ``identity``: anything whose ``repr`` pins the target (its config and seed); results of
    another identity are never reused.  ``hits`` / ``misses`` count stored and new results.
    Every other attribute is the wrapped target's.
    """

    def __init__(self, target: Any, root: str | Path, identity: Any) -> None:
        self._t = target
        self._root = Path(root)
        self._root.mkdir(parents=True, exist_ok=True)
        self._id = repr(identity)
        self._att_keys: dict[int, tuple[str, Attack]] = {}
        self.hits = 0
        self.misses = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)

    def _load_or(self, key: str, make):
        import torch

        path = self._root / f"{key}.pt"
        if path.exists():
            try:
                out = torch.load(path, weights_only=False)
                self.hits += 1
                return out
            except Exception:  # a torn file (killed run): measure again
                path.unlink(missing_ok=True)
        out = make()
        tmp = path.with_suffix(".tmp")
        torch.save(out, tmp)
        tmp.replace(path)
        self.misses += 1
        return out

    def attack(self, mixture: Sequence[tuple[float, Any]], power: Mapping[str, float], *,
               split: str, seed: int, options: Mapping[str, Any] | None = None) -> Attack:
        key = call_key(self._id, "attack", [(float(w), d) for w, d in mixture],
                       sorted(dict(power).items()), split, int(seed),
                       sorted(dict(options or {}).items()))
        att = self._load_or(key, lambda: self._t.attack(mixture, power, split=split, seed=seed,
                                                        options=options))
        self._att_keys[id(att)] = (key, att)  # the reference keeps the id from being reused
        return att

    def evaluate(self, attack: Attack, knobs: Any, *, split: str, seed: int) -> Outcome:
        entry = self._att_keys.get(id(attack))
        if entry is None or entry[1] is not attack:  # not made here: nothing to key it on
            return self._t.evaluate(attack, knobs, split=split, seed=seed)
        key = call_key(self._id, "evaluate", entry[0], knobs, split, int(seed))
        return self._load_or(key, lambda: self._t.evaluate(attack, knobs, split=split,
                                                           seed=seed))

    def clean(self, knobs: Any, *, split: str, seed: int) -> Outcome:
        key = call_key(self._id, "clean", knobs, split, int(seed))
        return self._load_or(key, lambda: self._t.clean(knobs, split=split, seed=seed))
