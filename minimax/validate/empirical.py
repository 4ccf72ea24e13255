"""The empirical game on a real target, grown by double oracle (PSRO).

The calibrated channel game *predicts* the defense to deploy; this module *measures* it.
Rows are realisable defenses (the target's menu, always with ``"no defense"``, the
channel game's prescription, and rows the channel game proposes as the game grows);
columns are attacker pure strategies, each a concrete :class:`~minimax.validate.target.Attack`
optimised by the target (a split of the attacker's power over channels, and a recipe);
the loss in cell ``(i, j)`` is the measured ``I(T; answer)`` of attack ``j`` against defense
``i`` on the held units, plus the priced clean-accuracy cost of defense ``i``:

    A_ij = bits_ij + lambda (L_none - L_i)_+

(``L`` = legitimate bits ``I(truth; answer)`` on clean inputs, ``lambda`` = the game's
``utility_price``), or, with a stated constraint ``max_clean_drop``, rows losing more
than that many legitimate bits are left out of the game (they stay in the table).

The restricted game is solved exactly (:func:`minimax.finite.zero_sum`, an LP).  The
loss of a defender mixture ``x`` against column ``j`` is ``sum_i x_i A_ij``: the attacker
does not see the draw, so the measured channel is the mixture of the rows' channels, and
mutual information is convex in the channel, so this average is an upper bound on the
mixture's bits (conservative for the defender).

**Double oracle** (McMahan et al. 2003; PSRO, Lanctot et al. 2017).  Each iteration:

1. solve the restricted game: defender mixture ``x``, attacker mixture ``y``;
2. attacker oracle: ``target.attack`` against the mixture ``x`` at every split of a fine
   grid (which always contains the split the calibrated game predicts) and every
   recipe; every candidate is measured against every row and added as a column;
3. defender oracle: the calibrated channel game proposes the lever allocation that best
   answers ``y`` (:func:`propose` callback), realised by ``target.realise``; a new row gets
   its own white-box best-response columns (each row does: a pure row is judged against
   an attacker who adapts to it);
4. gains of the new strategies, paired over the bootstrap replicates (same units, same
   attack seeds): ``g_att = max_new x.A_j - max_old x.A_j`` and
   ``g_def = min_old (A y)_i - min_new (A y)_i``.  Stop when neither gain's CI lies above 0
   (the measured exploitability is inside its paired-bootstrap CI), when the oracles
   propose nothing new, or after ``max_iter`` iterations.

Output: the validated defense ``x`` (pure or mixed) with its worst-case bits over every
column measured and a CI; the exploitability trace; the table; and, for every row, its
worst-case bits and the paired difference to ``x`` (the regret of choosing that row),
in particular the channel game's one-shot prescription's regret.

**Workers.**  With a ``prefetch`` callback (:class:`minimax.validate.parallel.Prefetcher`)
each batch of independent cells (the initial rows' best-response columns, one iteration's
attacker-oracle columns, a proposed row's cells and columns) is first computed by worker
processes into the measurement store; the loop below then reads them back, so the game
is the one the serial loop measures, cell by cell.

Caveat: ``x`` is chosen on the same cells that then score it, so its worst case is
in-sample (optimistic by the selection noise); the paired CIs say how large that noise is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from minimax.finite import zero_sum
from minimax.serial import namedtuple_to_dict
from minimax.validate.measure import Bits, bootstrap_weights, outcome_bits
from minimax.validate.parallel import Call, attack_call, clean_call
from minimax.validate.target import Attack, Target

log = logging.getLogger(__name__)
SUPPORT = 1e-6  # mixture weights below this are not attacked


class Row(NamedTuple):
    """A defense of the empirical game."""

    name: str                 # "no defense", "engine prescription", menu or oracle name
    knobs: Any                # what target.evaluate takes
    levers: dict[str, float]  # the game's lever amounts the knobs realise
    origin: str               # "menu" | "engine" | "alternative" | "oracle <iteration>"
    clean: Bits               # legitimate bits I(truth; answer) on clean held inputs
    cost: float               # priced clean-accuracy cost, bits (lambda (L_none - L)_+)
    in_game: bool             # False where a clean-accuracy constraint excludes it


class Column(NamedTuple):
    """An attacker pure strategy of the empirical game."""

    label: str                # recipe and power per channel
    power: dict[str, float]   # attacker power per channel, target units
    recipe: str               # target recipe name
    against: str              # what it was optimised against: a row name or "mixture <it>"
    attack: Attack


class TraceStep(NamedTuple):
    """One double-oracle iteration, bits per query."""

    iteration: int
    n_rows: int
    n_cols: int
    value: float           # restricted game value (loss of x against y)
    gain_attacker: float   # max over new columns of x.A_j minus over old columns
    gain_att_lo: float
    gain_att_hi: float
    gain_defender: float   # min over old rows of (A y)_i minus over new rows
    gain_def_lo: float
    gain_def_hi: float
    exploitability: float  # gain_attacker_+ + gain_defender_+
    expl_lo: float
    expl_hi: float
    added: str             # what the oracles added
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """Plain Python of every field (docs/solution-concepts.md §2.10)."""
        return namedtuple_to_dict(self)


class RowScore(NamedTuple):
    """A row's measured worst case and its paired regret against the validated defense."""

    name: str
    worst: float        # max_j A_ij, bits
    worst_lo: float
    worst_hi: float
    worst_column: str   # the column attaining it
    regret: float       # worst - worst(x), paired
    regret_lo: float
    regret_hi: float
    vs_best_pure: float  # worst - worst of the best pure row in the game, paired
    vs_best_lo: float
    vs_best_hi: float

    def to_dict(self) -> dict[str, Any]:
        """Plain Python of every field (docs/solution-concepts.md §2.10)."""
        return namedtuple_to_dict(self)


class EmpiricalGame(NamedTuple):
    """Result of :func:`solve_empirical` (see the module docstring)."""

    rows: list[Row]
    columns: list[Column]
    table: np.ndarray        # (m, n) measured bits
    table_lo: np.ndarray     # (m, n) CI lower ends
    table_hi: np.ndarray     # (m, n) CI upper ends
    loss: np.ndarray         # (m, n) bits + priced clean cost
    x: np.ndarray            # (m,) validated defender mixture (0 on rows out of the game)
    y: np.ndarray            # (n,) attacker equilibrium mixture of the restricted game
    value: float             # worst-case loss of x over every column, bits
    value_lo: float
    value_hi: float
    trace: list[TraceStep]
    scores: list[RowScore]   # per row, worst case and regret against x
    status: str              # "converged" | "no new strategies" | "max_iter"

    def score(self, name: str) -> RowScore:
        for s in self.scores:
            if s.name == name:
                return s
        raise KeyError(f"no row named {name!r}; rows: {[r.name for r in self.rows]}")

    def defense(self) -> dict[str, float]:
        """The validated defense: row name -> probability (support only)."""
        return {r.name: float(w) for r, w in zip(self.rows, self.x, strict=True) if w > SUPPORT}

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status, "defense": self.defense(),
            "value": self.value, "value_lo": self.value_lo, "value_hi": self.value_hi,
            "rows": [{"name": r.name, "levers": r.levers, "origin": r.origin,
                      "knobs": repr(r.knobs), "legit_bits": r.clean.bits,
                      "legit_lo": r.clean.lo, "legit_hi": r.clean.hi, "cost": r.cost,
                      "in_game": r.in_game, "weight": float(w)}
                     for r, w in zip(self.rows, self.x, strict=True)],
            "columns": [{"label": c.label, "power": c.power, "recipe": c.recipe,
                         "against": c.against, "weight": float(w),
                         "trace": {k: list(map(float, v)) for k, v in c.attack.trace.items()}}
                        for c, w in zip(self.columns, self.y, strict=True)],
            "table": self.table.tolist(), "table_lo": self.table_lo.tolist(),
            "table_hi": self.table_hi.tolist(), "loss": self.loss.tolist(),
            "trace": [t._asdict() for t in self.trace],
            "scores": [s._asdict() for s in self.scores],
        }


def split_grid(channels: Sequence[str], n: int,
               extra: Sequence[Mapping[str, float]] = ()) -> list[dict[str, float]]:
    """Fractions of the attacker's power per channel on a simplex grid of ``n`` steps.

    ``extra`` splits (e.g. the calibrated game's predicted best response) are always added.

    >>> [s["image"] for s in split_grid(("image", "text"), 2)]
    [0.0, 0.5, 1.0]
    """
    if n < 1:
        raise ValueError(f"split grid needs n >= 1 steps; got {n}")
    out: list[dict[str, float]] = []

    def rec(i: int, left: int, acc: list[int]) -> None:
        if i == len(channels) - 1:
            out.append({c: v / n for c, v in zip(channels, [*acc, left], strict=True)})
            return
        for v in range(left + 1):
            rec(i + 1, left - v, [*acc, v])

    rec(0, n, [])
    for e in extra:
        s = sum(max(float(e.get(c, 0.0)), 0.0) for c in channels)
        if s <= 0:
            continue
        f = {c: max(float(e.get(c, 0.0)), 0.0) / s for c in channels}
        if all(max(abs(f[c] - g[c]) for c in channels) > 1e-9 for g in out):
            out.append(f)
    return out


def _unique(channels: Sequence[str], splits: Sequence[Mapping[str, float]]
            ) -> list[dict[str, float]]:
    """``splits`` normalised to fractions, duplicates dropped (no grid)."""
    out: list[dict[str, float]] = []
    for e in splits:
        s = sum(max(float(e.get(c, 0.0)), 0.0) for c in channels)
        f = {c: max(float(e.get(c, 0.0)), 0.0) / s for c in channels} if s > 0 else None
        if f and all(max(abs(f[c] - g[c]) for c in channels) > 1e-9 for g in out):
            out.append(f)
    return out


def _key(levers: Mapping[str, float]) -> tuple:
    return tuple(sorted((k, round(float(v), 6)) for k, v in levers.items()))


class _Game:
    """The growing table: rows, columns, cells with their paired bootstrap replicates."""

    def __init__(self, target: Target, split: str, seed: int, n_boot: int, level: float,
                 price: float, max_drop: float | None) -> None:
        self.t, self.split, self.seed = target, split, seed
        self.n_boot, self.level, self.price, self.max_drop = n_boot, level, price, max_drop
        self.rows: list[Row] = []
        self.cols: list[Column] = []
        self.cells: dict[tuple[int, int], Bits] = {}
        self.w_adv: np.ndarray | None = None
        self.w_clean: np.ndarray | None = None
        self.none_legit: float | None = None

    def _bits(self, outcome, clean: bool) -> Bits:
        u = int(np.asarray(outcome.sent).shape[0])
        attr = "w_clean" if clean else "w_adv"
        w = getattr(self, attr)
        if w is None:  # one resampling for every cell: the comparisons are paired
            w = bootstrap_weights(u, self.n_boot, self.seed + (1 if clean else 0))
            setattr(self, attr, w)
        return outcome_bits(outcome, w, self.level)

    def has_row(self, levers: Mapping[str, float]) -> int | None:
        k = _key(levers)
        return next((i for i, r in enumerate(self.rows) if _key(r.levers) == k), None)

    def add_row(self, name: str, knobs: Any, origin: str) -> int:
        levers = self.t.lever_values(knobs)
        clean = self._bits(self.t.clean(knobs, split=self.split, seed=self.seed), clean=True)
        if self.none_legit is None:
            none = self.t.realise({})
            self.none_legit = (clean.bits if _key(levers) == _key(self.t.lever_values(none))
                               else self._bits(self.t.clean(none, split=self.split,
                                                            seed=self.seed), True).bits)
        drop = max(self.none_legit - clean.bits, 0.0)
        in_game = self.max_drop is None or drop <= self.max_drop + 1e-12
        self.rows.append(Row(name, knobs, levers, origin, clean, self.price * drop, in_game))
        i = len(self.rows) - 1
        for j in range(len(self.cols)):
            self._cell(i, j)
        return i

    def add_column(self, col: Column) -> int:
        self.cols.append(col)
        j = len(self.cols) - 1
        for i in range(len(self.rows)):
            self._cell(i, j)
        return j

    def _cell(self, i: int, j: int) -> None:
        out = self.t.evaluate(self.cols[j].attack, self.rows[i].knobs, split=self.split,
                              seed=self.seed)
        self.cells[i, j] = self._bits(out, clean=False)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        m, n = len(self.rows), len(self.cols)
        est = np.array([[self.cells[i, j].bits for j in range(n)] for i in range(m)])
        lo = np.array([[self.cells[i, j].lo for j in range(n)] for i in range(m)])
        hi = np.array([[self.cells[i, j].hi for j in range(n)] for i in range(m)])
        boot = np.stack([np.stack([self.cells[i, j].boot for j in range(n)], -1)
                         for i in range(m)], -2)  # (B, m, n)
        cost = np.array([r.cost for r in self.rows])
        return est, lo, hi, est + cost[:, None], boot + cost[None, :, None]

    def table_cells(self) -> list[tuple[dict[str, float], dict[str, float], float, str]]:
        """``(row levers, column power, bits, row name)`` of every measured cell."""
        return [(self.rows[i].levers, self.cols[j].power, b.bits, self.rows[i].name)
                for (i, j), b in self.cells.items()]

    def active(self) -> np.ndarray:
        return np.array([r.in_game for r in self.rows])


def _ci(v: np.ndarray, level: float) -> tuple[float, float]:
    q = (1 - level) / 2
    lo, hi = np.quantile(v, [q, 1 - q])
    return float(lo), float(hi)


def _solve(g: _Game) -> tuple[np.ndarray, np.ndarray, float]:
    _, _, _, loss, _ = g.arrays()
    act = g.active()
    if not act.any():
        raise ValueError("every row is excluded by max_clean_drop; relax the constraint")
    sol = zero_sum(loss[act])
    x = np.zeros(len(g.rows))
    x[act] = sol.x
    return x, sol.y, float(sol.value)


def solve_empirical(
    target: Target,
    rows: Sequence[tuple[str, Any, str]],
    *,
    power: float,
    grid: int = 10,
    recipes: Sequence[str] = ("auto",),
    predicted_split: Callable[[Mapping[str, float]], Mapping[str, float]] | None = None,
    propose: Callable[[Sequence[tuple[float, Mapping[str, float]]], Sequence[tuple]],
                      Mapping[str, float] | None] | None = None,
    row_grid: int | None = None,
    row_splits: Sequence[Mapping[str, float]] = (),
    split: str = "held",
    seed: int = 0,
    options: Mapping[str, Any] | None = None,
    n_boot: int = 200,
    level: float = 0.95,
    utility_price: float = 0.0,
    max_clean_drop: float | None = None,
    max_iter: int = 5,
    on_step: Callable[[TraceStep], None] | None = None,
    prefetch: Callable[[Sequence[Call], str], None] | None = None,
) -> EmpiricalGame:
    """Measure, solve and grow the empirical game of ``target`` (see the module docstring).

    Args:
      target: the system under test (:class:`~minimax.validate.target.Target`).
      rows: initial rows ``(name, knobs, origin)``; must include ``"no defense"``.
      power: the attacker's total power, split over ``target.channels`` (target units).
      grid: steps of the attacker oracle's split grid over the simplex of channels.
      recipes: attack recipes (target names) crossed with the splits.
      predicted_split: the calibrated game's best-response split (fractions per channel)
        against given lever amounts; it is always on the grid.
      propose: the calibrated game's defender oracle: lever amounts that best answer an
        attacker mixture ``[(weight, power per channel), ...]``, or ``None``; its second
        argument is the table so far, ``[(row levers, column power, bits), ...]``, from
        which it may recalibrate.
      row_grid: split-grid steps of each row's own white-box best response (default
        ``grid``; 0: no grid); the row's predicted split and ``row_splits`` (fractions
        per channel) are always added.
      split, seed: the units the cells are measured on and the attack seed (shared by
        every cell, which makes every comparison paired).
      options: attack options passed to ``target.attack`` (e.g. steps, eot).
      n_boot, level: paired bootstrap replicates and CI level.
      utility_price: bits charged per legitimate bit lost against "no defense".
      max_clean_drop: or a constraint: rows losing more legitimate bits are left out.
      max_iter: double-oracle iterations at most.
      on_step: called with each :class:`TraceStep` (progress logging).
      prefetch: computes a batch of independent calls ahead into the store the target
        reads from (:class:`minimax.validate.parallel.Prefetcher`; module docstring).

    Returns:
      An :class:`EmpiricalGame`.
    """
    if power <= 0:
        raise ValueError(f"power must be > 0 attacker power units; got {power}")
    if not any(name == "no defense" for name, _, _ in rows):
        raise ValueError("rows must include 'no defense' (the baseline every defense must beat)")
    if not recipes:
        raise ValueError("recipes must name at least one attack recipe ('auto')")
    opts = dict(options or {})
    g = _Game(target, split, seed, n_boot, level, utility_price, max_clean_drop)
    chans = tuple(target.channels)
    rgrid = grid if row_grid is None else row_grid

    specs: list[Call] = []  # the call that made each column, to prefetch its cells

    def col_args(mixture, frac, recipe):
        return [(float(w), d) for w, d in mixture], {c: float(power * frac[c]) for c in chans}, \
            {**opts, "recipe": recipe}

    def column(mixture, frac, recipe, against) -> Column:
        mixture, pw, o = col_args(mixture, frac, recipe)
        att = target.attack(mixture, pw, split=split, seed=seed, options=o)
        desc = " ".join(f"{c}={frac[c]:.2f}" for c in chans)
        log.info("column %s %s vs %s: %s", recipe, desc, against, att.label)
        specs.append(attack_call(desc, mixture, pw, split, seed, o))
        # the power the attack actually spent (a cap-aware attacker moves what a cap drops)
        spent = {c: float(att.power.get(c, 0.0)) for c in chans} if att.power else pw
        return Column(f"{recipe} {desc} vs {against}", spent, recipe, against, att)

    def br_fracs(levers: Mapping[str, float]) -> list[dict[str, float]]:
        extra = [*row_splits, *([predicted_split(levers)] if predicted_split else [])]
        fracs = split_grid(chans, rgrid, extra) if rgrid > 0 else _unique(chans, extra)
        if not fracs:
            raise ValueError("each row needs a best-response split: set row_grid >= 1, "
                             "row_splits or predicted_split")
        return fracs

    def best_response_columns(i: int) -> list[str]:
        r = g.rows[i]
        added = []
        for frac in br_fracs(r.levers):
            for rec in recipes:
                added.append(g.cols[g.add_column(column([(1.0, r.knobs)], frac, rec,
                                                        r.name))].label)
        return added

    def calls_of(jobs, knobs_now) -> list[Call]:
        """Calls of new columns ``(mixture, frac)`` evaluated under every row in ``knobs_now``."""
        out = []
        for mixture, frac in jobs:
            for rec in recipes:
                mx, pw, o = col_args(mixture, frac, rec)
                out.append(attack_call(" ".join(f"{c}={frac[c]:.2f}" for c in chans) + f" {rec}",
                                       mx, pw, split, seed, o, knobs_now))
        return out

    def prefetch_row(knobs) -> None:
        """A proposed row: its cells in the existing columns and its own columns."""
        levers = target.lever_values(knobs)
        calls = [clean_call("clean", knobs, split, seed),
                 *(c._replace(evaluate=(knobs,)) for c in specs)]
        calls += calls_of([([(1.0, knobs)], f) for f in br_fracs(levers)],
                          (*[r.knobs for r in g.rows], knobs))
        prefetch(calls, "proposed row")

    unique: dict[tuple, tuple[str, Any, str]] = {}
    for name, knobs, origin in rows:
        k = _key(target.lever_values(knobs))
        if k in unique:
            log.info("row %s realises the same levers as %s; kept once", name, unique[k][0])
            continue
        unique[k] = (name, knobs, origin)
    if prefetch is not None:
        knobs_all = [kn for _, kn, _ in unique.values()]
        prefetch([clean_call("clean", kn, split, seed) for kn in knobs_all]
                 + calls_of([([(1.0, kn)], f) for kn in knobs_all
                             for f in br_fracs(target.lever_values(kn))], knobs_all),
                 "best responses to each row")
    for name, knobs, origin in unique.values():
        g.add_row(name, knobs, origin)
    for i in range(len(g.rows)):
        best_response_columns(i)

    trace: list[TraceStep] = []
    status = "max_iter"
    for it in range(1, max_iter + 1):
        t0 = time.perf_counter()
        x, y, value = _solve(g)
        m_old, n_old = len(g.rows), len(g.cols)
        # attacker oracle: every split x recipe against the defender's mixture
        mix = [(float(w), g.rows[i].knobs) for i, w in enumerate(x) if w > SUPPORT]
        mix_levers = {k: sum(w * g.rows[i].levers.get(k, 0.0) for i, w in enumerate(x))
                      for k in target.levers}
        extra = [predicted_split(mix_levers)] if predicted_split else []
        added = []
        if prefetch is not None:
            prefetch(calls_of([(mix, f) for f in split_grid(chans, grid, extra)],
                              [r.knobs for r in g.rows]), f"attacker oracle {it}")
        for frac in split_grid(chans, grid, extra):
            for rec in recipes:
                added.append(g.cols[g.add_column(column(mix, frac, rec, f"mixture {it}"))].label)
        # defender oracle: the calibrated game's answer to the attacker's mixture
        if propose is not None:
            ymix = [(float(w), g.cols[j].power) for j, w in enumerate(y) if w > SUPPORT]
            lev = propose(ymix, g.table_cells())
            if lev is not None:
                knobs = target.realise(lev)
                levers = target.lever_values(knobs)
                if g.has_row(levers) is None:
                    if prefetch is not None:
                        prefetch_row(knobs)
                    i_new = g.add_row(f"oracle {it}: " + ", ".join(
                        f"{k}={v:.2f}" for k, v in levers.items() if v > 0), knobs,
                        f"oracle {it}")
                    added.append(g.rows[i_new].name)
                    added += best_response_columns(i_new)
        _, _, _, loss, boot = g.arrays()
        act = g.active()
        xp = np.zeros(len(g.rows))
        xp[:m_old] = x
        yp = np.zeros(len(g.cols))
        yp[: len(y)] = y
        # gains of the new strategies over the old ones, paired replicate by replicate
        xa = np.einsum("i,bij->bj", xp, boot)
        xa_est = xp @ loss
        g_att_b = xa[:, n_old:].max(1) - xa[:, :n_old].max(1)
        g_att = float(xa_est[n_old:].max() - xa_est[:n_old].max())
        rows_new = [i for i in range(m_old, len(g.rows)) if act[i]]
        old_act = [i for i in range(m_old) if act[i]]
        ay = np.einsum("bij,j->bi", boot, yp)
        ay_est = loss @ yp
        if rows_new:
            g_def_b = ay[:, old_act].min(1) - ay[:, rows_new].min(1)
            g_def = float(ay_est[old_act].min() - ay_est[rows_new].min())
        else:
            g_def_b, g_def = np.zeros(len(boot)), 0.0
        ex_b = np.maximum(g_att_b, 0) + np.maximum(g_def_b, 0)
        step = TraceStep(it, len(g.rows), len(g.cols), value, g_att, *_ci(g_att_b, level),
                         g_def, *_ci(g_def_b, level), max(g_att, 0) + max(g_def, 0),
                         *_ci(ex_b, level), "; ".join(added), time.perf_counter() - t0)
        trace.append(step)
        if on_step:
            on_step(step)
        if step.gain_att_lo <= 0 and step.gain_def_lo <= 0:
            status = "converged"
            break
        if not added:
            status = "no new strategies"
            break

    x, y, _ = _solve(g)
    est, lo, hi, loss, boot = g.arrays()
    xa_b = np.einsum("i,bij->bj", x, boot).max(1)
    xa = x @ loss
    vlo, vhi = _ci(xa_b, level)
    act = g.active()
    best = min((i for i in range(len(g.rows)) if act[i]), key=lambda i: loss[i].max())
    best_b = boot[:, best, :].max(1)
    scores = []
    for i, r in enumerate(g.rows):
        j = int(np.argmax(loss[i]))
        w_b = boot[:, i, :].max(1)
        scores.append(RowScore(r.name, float(loss[i].max()), *_ci(w_b, level), g.cols[j].label,
                               float(loss[i].max() - xa.max()), *_ci(w_b - xa_b, level),
                               float(loss[i].max() - loss[best].max()),
                               *_ci(w_b - best_b, level)))
    return EmpiricalGame(g.rows, g.cols, est, lo, hi, loss, x, y, float(xa.max()), vlo, vhi,
                         trace, scores, status)
