"""Self-destruction threshold P*(h) by certified bisection on the attacker's power (docs §4.3).

With harm price h > 0 the best defense's net value at attacker power P is

    net(P) = min_x [ h max_a sum_i w_i Cadv_i(x, a) - sum_i u_i Cleg_i(x) ]      (bits per query)
           = h V(P),   V = the injection-mode minimax value with utility price lambda = 1/h,

and ``P*(h) = inf {P : net(P) > 0}``. ``net`` is non-decreasing in P (the attacker's feasible set
grows, and a min over x of non-decreasing functions is non-decreasing), so one certified sign
at one power decides a whole half-line:

* **upper end** -- if the certified *lower* bound of V(P) is > 0 then net(P) > 0 and P* <= P;
* **lower end** -- if the certified *upper* bound of V(P) (the exact phi of the returned
  defense) is <= 0 then net(P') <= 0 for every P' <= P, so P* >= P. At P = 0 the attacker has
  no power and ``net(0) = -max_x sum u Cleg <= 0``, so 0 is a certified lower end from the start;
* otherwise the certificate's gap straddles 0 at P and P is *undecided*: the bracket cannot
  be closed through it. Undecided powers are kept and reported (``undecided``), never guessed.

Each round evaluates ``points`` powers spread geometrically over the open bracket (over the
parts on either side of the undecided powers) in one vmapped :func:`minimax.solve_batch` call
of fixed batch size (one compilation for the whole search, and for a whole sensitivity sweep,
which runs every (h, P_D) problem in lock-step). It stops when both ends are within a relative
``rtol`` of each other or of the undecided set, or after ``max_rounds`` rounds.

``lower`` converges to the power where the *returned defense's exact value* phi crosses 0, which
is P* itself whenever the solver's defense is optimal (phi is exact; only the solver's
optimality is not certified). ``upper`` needs the certified lower bound to turn positive, so a
loose lower bound widens the bracket from above: then ``undecided`` is non-empty and reports
it. ``power`` is the geometric midpoint of ``lower`` and the first power where the defense's
exact value is positive (``min(upper, undecided[0])``), i.e. of the bracket when nothing is
undecided.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from minimax.errors import GameSpecError
from minimax.game import BUDGET_MAX, Game
from minimax.solution import Solution
from minimax.solver import solve_batch


class ThresholdResult(NamedTuple):
    """P*(h) with its certified bracket ``lower <= P* <= upper`` (attacker power units)."""

    power: float  # point estimate: sqrt(lower * min(upper, undecided[0])) (see module doc)
    lower: float  # certified: net(P) <= 0 for every P <= lower
    upper: float  # certified: net(upper) > 0 (inf: none found up to max_power)
    harm_price: float  # h
    defender_budget: float  # P_D of the game
    solution: Solution | None  # certified minimax at ``upper`` (defense beaten there)
    solution_lower: Solution | None  # certified minimax at ``lower`` (defense still holds)
    undecided: tuple[float, float] | None  # powers whose certificate gap straddles 0
    converged: bool  # bracket (or its parts beside the undecided set) within rtol
    rounds: int
    evaluations: int  # certified solves spent
    history: tuple[tuple[float, float, float], ...]  # (P, lower net, upper net), net = h V

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable; an infinite ``upper`` is ``Infinity``)."""
        return {
            "power": self.power, "lower": self.lower, "upper": self.upper,
            "harm_price": self.harm_price, "defender_budget": self.defender_budget,
            "undecided": list(self.undecided) if self.undecided else None,
            "converged": self.converged, "rounds": self.rounds, "evaluations": self.evaluations,
            "solution": self.solution.to_dict() if self.solution else None,
            "solution_lower": self.solution_lower.to_dict() if self.solution_lower else None,
            "history": [list(h) for h in self.history],
        }


class _Search:
    """Mutable bookkeeping of one bisection (internal; the public result is immutable)."""

    def __init__(self, game: Game, h: float):
        self.game, self.h = game, h
        self.lo, self.hi = 0.0, math.inf
        self.sol_lo: Solution | None = None
        self.sol_hi: Solution | None = None
        self.undecided: list[float] = []
        self.history: list[tuple[float, float, float]] = []

    def gaps(self) -> list[tuple[float, float]]:
        """Open intervals still to search: beside the undecided powers inside (lo, hi)."""
        und = [p for p in self.undecided if self.lo < p < self.hi]
        if not und:
            return [(self.lo, self.hi)]
        return [(self.lo, min(und)), (max(und), self.hi)]


def _narrow(a: float, b: float, rtol: float) -> bool:
    return a > 0 and math.isfinite(b) and b <= a * (1.0 + rtol)


def _points(search: _Search, count: int, rtol: float, p_min: float, p_max: float,
            p_limit: float) -> list[float]:
    """``count`` powers geometrically inside the open parts of the bracket still to search."""
    parts = [(a, b) for a, b in search.gaps() if not _narrow(a, b, rtol)
             and not (a >= p_limit and not math.isfinite(b))]
    if not parts:
        return []
    per = [count // len(parts) + (1 if i < count % len(parts) else 0) for i in range(len(parts))]
    out = []
    for (a, b), k in zip(parts, per, strict=True):
        if k == 0:
            continue
        if a <= 0 and not math.isfinite(b):
            grid = np.geomspace(p_min, p_max, k)
        elif a <= 0:
            grid = np.geomspace(min(p_min, b * 1e-3), b, k + 1)[:-1]
        elif not math.isfinite(b):
            grid = np.geomspace(a, min(max(p_max, a * 1e3), p_limit), k + 1)[1:]
        else:
            grid = np.geomspace(a, b, k + 2)[1:-1]
        out.extend(float(p) for p in grid)
    return out


def _problem_game(game: Game, h: float) -> Game:
    if not (isinstance(h, (int, float)) and math.isfinite(h) and h > 0):
        raise GameSpecError(f"self_destruction_threshold.harm_price: got {h!r}; expected a "
                            f"finite number > 0 (bits of harm per bit of legitimate value)")
    return game.replace(mode="injection", utility_price=1.0 / h)


def threshold_search(games: Sequence[Game], harm_prices: Sequence[float], *, points: int = 8,
                     rtol: float = 1e-6, max_rounds: int = 40, p_min: float = 1e-6,
                     p_max: float = 1e9, p_limit: float = BUDGET_MAX["attacker_budget"],
                     **solver_options: Any) -> list[ThresholdResult]:
    """P*(h) for several (game, h) problems of one shape, searched in lock-step.

    The first round spreads powers over [p_min, p_max]; while no power is certified above the
    threshold the search climbs by factors of 1e3 per round up to ``p_limit``, and reports
    ``upper = inf`` (P* > lower >= p_limit, or no threshold) if it gets there. ``p_limit`` is
    at most the largest supported attacker budget (``minimax.game.BUDGET_MAX``, 1e9).

    All problems share one compiled batch of ``points * len(games)`` certified solves per
    round. ``solver_options`` go to :func:`minimax.solve_batch` (e.g. ``starts``, ``steps``).
    """
    if len(games) != len(harm_prices) or not games:
        raise GameSpecError("threshold_search: give one harm price per game (and >= 1 game)")
    if points < 1 or not (0 < p_min < p_max <= p_limit):
        raise GameSpecError(f"threshold_search: points={points}, p_min={p_min}, p_max={p_max}, "
                            f"p_limit={p_limit}; expected points >= 1 and "
                            f"0 < p_min < p_max <= p_limit")
    if p_limit > BUDGET_MAX["attacker_budget"]:
        raise GameSpecError(f"threshold_search.p_limit: got {p_limit:g}; expected at most "
                            f"{BUDGET_MAX['attacker_budget']:g}, the largest supported attacker "
                            f"budget (docs/supported-ranges.md)")
    searches = [_Search(_problem_game(g, float(h)), float(h))
                for g, h in zip(games, harm_prices, strict=True)]
    rounds = evaluations = 0
    for _ in range(max_rounds):
        plan = [_points(s, points, rtol, p_min, p_max, p_limit) for s in searches]
        if not any(plan):
            break
        batch, owners = [], []
        for i, (s, ps) in enumerate(zip(searches, plan, strict=True)):
            # pad to a fixed batch size (no recompilation); padded entries are ignored
            pad = [ps[-1] if ps else float(s.game.attacker_budget)] * (points - len(ps))
            for j, p in enumerate(ps + pad):
                batch.append(s.game.replace(attacker_budget=float(p)))
                owners.append((i, float(p), j < len(ps)))
        sols = solve_batch(batch, **solver_options)
        rounds += 1
        evaluations += sum(1 for *_, live in owners if live)
        for (i, p, live), sol in zip(owners, sols, strict=True):
            if not live:
                continue
            s = searches[i]
            lo_net, up_net = s.h * sol.lower, s.h * sol.upper
            s.history.append((p, lo_net, up_net))
            if lo_net > 0:
                if p < s.hi:
                    s.hi, s.sol_hi = p, sol
            elif up_net <= 0:
                if p > s.lo:
                    s.lo, s.sol_lo = p, sol
            else:
                s.undecided.append(p)
        for s in searches:  # an undecided power outside (lo, hi) is decided by monotonicity
            s.undecided = [p for p in s.undecided if s.lo < p < s.hi]
    results = []
    for s in searches:
        und = sorted(s.undecided)
        done = all(_narrow(a, b, rtol) for a, b in s.gaps()) or (
            s.lo >= p_limit and not math.isfinite(s.hi))
        top = min(und[0], s.hi) if und else s.hi
        if math.isfinite(top):
            power = math.sqrt(s.lo * top) if s.lo > 0 else top
        else:
            power = math.inf
        results.append(ThresholdResult(
            power=power, lower=s.lo, upper=s.hi, harm_price=s.h,
            defender_budget=float(s.game.defender_budget), solution=s.sol_hi,
            solution_lower=s.sol_lo, undecided=(und[0], und[-1]) if und else None,
            converged=bool(done), rounds=rounds, evaluations=evaluations,
            history=tuple(sorted(s.history)),
        ))
    return results


def self_destruction_threshold(game: Game, harm_price: float, *, points: int = 8,
                               rtol: float = 1e-6, max_rounds: int = 40, p_min: float = 1e-6,
                               p_max: float = 1e9, p_limit: float = BUDGET_MAX["attacker_budget"],
                               **solver_options: Any) -> ThresholdResult:
    """The attacker power P*(h) beyond which even the best defense leaves negative net value.

    ``net(P) = min_x [h max_a sum_i w_i Cadv_i - sum_i u_i Cleg_i]`` (bits per query) is solved
    as ``h`` times the certified injection-mode minimax value at ``utility_price = 1/h``; the
    returned bracket ``lower <= P* <= upper`` is certified as explained in the module
    docstring (certified lower bound > 0 => above, certified upper bound <= 0 => below).

    >>> import minimax
    >>> from minimax.analysis import self_destruction_threshold
    >>> g = minimax.Game.create(mode="injection", attacker_budget=1.0, defender_budget=1.0,
    ...     B=[1.0], S=[1.0], N=[1.0], w=[1.0], u=[1.0], rho=[0.0], alpha=[1.0], beta=[1.0],
    ...     gamma=[1.0], levers=["b"])
    >>> r = self_destruction_threshold(g, 1.0, rtol=1e-4, starts=2, steps=50)
    >>> round(r.power, 2)  # closed form (N + S)(2^{e^{gamma D}} - 1) = 2 (2^e - 1)
    11.16
    """
    return threshold_search([game], [harm_price], points=points, rtol=rtol,
                            max_rounds=max_rounds, p_min=p_min, p_max=p_max,
                            p_limit=p_limit, **solver_options)[0]


def threshold_sweep(game: Game, harm_prices: Sequence[float],
                    defender_budgets: Sequence[float] | None = None,
                    **kwargs: Any) -> list[ThresholdResult]:
    """Sensitivity of P* to h and to the defender budget: one result per (P_D, h) pair,
    budgets outer, prices inner; every problem runs in the same lock-step batches."""
    budgets = [float(game.defender_budget)] if defender_budgets is None else list(
        defender_budgets)
    games, prices = [], []
    for d in budgets:
        g = game.replace(defender_budget=float(d))
        for h in harm_prices:
            games.append(g)
            prices.append(float(h))
    return threshold_search(games, prices, **kwargs)
