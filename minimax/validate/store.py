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

A target whose results can change under the same configuration (new code builds its model
differently) names what it builds in a ``fingerprint`` attribute (e.g. the digits towers'
build version).  The store writes it beside the identity's results the first time and
refuses to reuse them under another fingerprint, so a store filled by older code is never
read as measurements of the new model.

Several processes may share one store (:mod:`minimax.validate.parallel`): a result is
computed under a per-key file lock (a second process waits, then reads it) and written
to a temporary file of its own before it is renamed into place, so nobody reads a
partial file.
"""

from __future__ import annotations

import hashlib
import os
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
        self.identity = identity
        self._id = repr(identity)
        self._att_keys: dict[int, tuple[str, Attack]] = {}
        self.hits = 0
        self.misses = 0
        self._check_fingerprint(getattr(target, "fingerprint", None))

    def _check_fingerprint(self, fp: Any) -> None:
        if fp is None:
            return
        path = self._root / f"fingerprint-{call_key(self._id)}.txt"
        if path.exists():
            old = path.read_text()
            if old != repr(fp):
                raise ValueError(
                    f"validate.store={self._root}: its results for this target configuration "
                    f"were measured on {old}, this code builds {fp!r}; use a new store (or "
                    f"remove this one) to measure the new model")
            return
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(repr(fp))
        os.replace(tmp, path)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._t, name)

    @property
    def root(self) -> Path:
        return self._root

    def _load(self, path: Path):
        import torch

        try:
            return torch.load(path, weights_only=False)
        except Exception:  # a torn file (a run killed before the rename): measure again
            path.unlink(missing_ok=True)
            return None

    def _load_or(self, key: str, make):
        import torch
        from filelock import FileLock

        path = self._root / f"{key}.pt"
        if path.exists() and (out := self._load(path)) is not None:
            self.hits += 1
            return out
        locks = self._root / ".locks"
        locks.mkdir(exist_ok=True)
        with FileLock(str(locks / f"{key}.lock")):
            if path.exists() and (out := self._load(path)) is not None:  # made meanwhile
                self.hits += 1
                return out
            out = make()
            tmp = path.with_name(f"{key}.{os.getpid()}.tmp")
            torch.save(out, tmp)
            tmp.replace(path)
        self.misses += 1
        return out

    # keys of the three calls (docs/validation.md §5.7)
    def attack_key(self, mixture: Sequence[tuple[float, Any]], power: Mapping[str, float],
                   split: str, seed: int, options: Mapping[str, Any] | None = None) -> str:
        return call_key(self._id, "attack", [(float(w), d) for w, d in mixture],
                        sorted(dict(power).items()), split, int(seed),
                        sorted(dict(options or {}).items()))

    def evaluate_key(self, attack_key: str, knobs: Any, split: str, seed: int) -> str:
        return call_key(self._id, "evaluate", attack_key, knobs, split, int(seed))

    def clean_key(self, knobs: Any, split: str, seed: int) -> str:
        return call_key(self._id, "clean", knobs, split, int(seed))

    def _call_keys(self, call: Any) -> list[str]:
        """Store keys of every result of a :class:`minimax.validate.parallel.Call`."""
        if call.kind == "clean":
            return [self.clean_key(k, call.split, call.seed) for k in call.evaluate]
        a = self.attack_key(call.mixture, call.power or {}, call.split, call.seed, call.options)
        return [a, *(self.evaluate_key(a, k, call.split, call.seed) for k in call.evaluate)]

    def call_id(self, call: Any) -> str:
        """One key naming every result of ``call`` (equal calls, equal ids)."""
        return call_key(*self._call_keys(call))

    def has(self, call: Any) -> bool:
        """Is every result of ``call`` already stored?"""
        return all((self._root / f"{k}.pt").exists() for k in self._call_keys(call))

    def attack(self, mixture: Sequence[tuple[float, Any]], power: Mapping[str, float], *,
               split: str, seed: int, options: Mapping[str, Any] | None = None) -> Attack:
        key = self.attack_key(mixture, power, split, seed, options)
        att = self._load_or(key, lambda: self._t.attack(mixture, power, split=split, seed=seed,
                                                        options=options))
        self._att_keys[id(att)] = (key, att)  # the reference keeps the id from being reused
        return att

    def evaluate(self, attack: Attack, knobs: Any, *, split: str, seed: int) -> Outcome:
        entry = self._att_keys.get(id(attack))
        if entry is None or entry[1] is not attack:  # not made here: nothing to key it on
            return self._t.evaluate(attack, knobs, split=split, seed=seed)
        key = self.evaluate_key(entry[0], knobs, split, seed)
        return self._load_or(key, lambda: self._t.evaluate(attack, knobs, split=split,
                                                           seed=seed))

    def clean(self, knobs: Any, *, split: str, seed: int) -> Outcome:
        key = self.clean_key(knobs, split, seed)
        return self._load_or(key, lambda: self._t.clean(knobs, split=split, seed=seed))
