"""Convex (cvxpy) formulations of the channel game's convex cases (docs/solution-concepts.md §2.4).

When the defender's levers keep ``L(., a)`` convex for every attack, the game is convex-concave
and ``V = max_a min_x L = min_x max_a L``. That holds for

* injection mode with levers in {n, s}: ``W log2(1 + a eta(n) / (N + sigma(s) S))`` is
  ``logistic`` of a convex function (DCP: ``cp.logistic(log a - alpha n - cp.log(...))``) and the
  utility term is ``-log`` of an affine function;
* injection mode with only lever b when bandwidth restriction costs no utility
  (``lambda u_i rho_i = 0``): the loss is a positive multiple of ``kappa(b)``, convex;
* jamming mode with only lever s: ``-log(1 + sigma(s) S / (N + a))`` is ``-log`` of an affine
  function.

:func:`solve_convex` runs an outer-approximation (cutting-plane) method on the attacks: the
master problem ``min_x max_{j <= J} L(x, a_j)`` over the attacks found so far is a convex program
(rebuilt with the distinct cuts each round: parameter slots holding duplicate
cuts make the conic problem degenerate and stall the interior-point solver) whose value is a
lower bound on V (``max_j L(x, a_j) <= max_a L(x, a)``); the attacker's exact best response to the
master's defense adds the next cut and gives an exact upper bound. It stops when the two meet.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from minimax.channel import capacity, payoff
from minimax.errors import SolverError
from minimax.game import Defense, Game
from minimax.projection import project_defense
from minimax.response import best_response_attack


def convexity(game: Game) -> tuple[bool, str]:
    """Whether ``L(., a)`` is convex in the defender's enabled levers for every a, and why."""
    levers = set(game.levers)
    if game.mode == "injection":
        if levers <= {"n", "s"}:
            return True, "injection game with levers n, s only: convex-concave"
        if levers == {"b"} and float(jnp.max(game.utility_price * game.u * game.rho)) == 0.0:
            return True, "bandwidth-only injection game whose restriction costs no utility"
        return False, ("bandwidth restriction together with other levers (or with a utility "
                       "cost) makes L non-convex in the defense")
    if levers <= {"s"}:
        return True, "jamming game with lever s only: convex-concave"
    return False, "in jamming mode L is non-convex in n and in b"


class ConvexResult(NamedTuple):
    """Raw result of the cutting-plane method."""

    defense: Defense  # (K,) arrays, feasible
    upper: float  # phi(defense), exact
    master_lower: float  # last master value (a lower bound up to the conic solver's tolerance)
    iterations: int  # master solves
    history: list  # (upper, master_lower) per iteration
    # "converged" (bracket within tol), "stalled" (the conic solver failed mid-run) or
    # "budget_exhausted" (max_iter master solves); see minimax.solution.TERMINATIONS
    termination: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable)."""
        return {"defense": self.defense.to_dict(), "upper": float(self.upper),
                "master_lower": float(self.master_lower), "iterations": int(self.iterations),
                "history": [[float(u), float(lo)] for u, lo in self.history],
                "termination": self.termination}


def _master(game: Game, cuts: list[np.ndarray]):
    import cvxpy as cp

    k = game.num_channels
    arr = {f: np.asarray(getattr(game, f), dtype=float) for f in
           ("B", "S", "N", "w", "u", "rho", "alpha", "beta", "gamma", "cost_n", "cost_s",
            "cost_b")}
    lam = float(game.utility_price)
    budget = float(game.defender_budget)
    n, s, b = cp.Variable(k, nonneg=True), cp.Variable(k, nonneg=True), cp.Variable(k,
                                                                                   nonneg=True)
    t = cp.Variable()
    cons = [arr["cost_n"] @ n + arr["cost_s"] @ s + arr["cost_b"] @ b <= budget]
    for lever, var in zip("nsb", (n, s, b), strict=True):
        if lever not in game.levers:
            cons.append(var == 0)
    ln2 = math.log(2.0)
    weight = arr["w"] * arr["B"]
    if game.mode == "injection" and set(game.levers) <= {"n", "s"}:
        log_eta = -cp.multiply(arr["alpha"], n) if game.effect == "exp" else \
            -cp.log(1.0 + cp.multiply(arr["alpha"], n))
        denom = cp.log(arr["N"] + arr["S"] + cp.multiply(arr["beta"] * arr["S"], s))
        utility = lam / ln2 * (arr["u"] * arr["B"]) @ cp.log(
            1.0 + cp.multiply(arr["beta"] * arr["S"] / arr["N"], s) + arr["S"] / arr["N"])
        for a in cuts:
            live = a > 0  # a channel without attack power contributes exactly 0
            if not live.any():
                cons.append(t >= -utility)
                continue
            harm = cp.logistic(np.log(a[live]) + log_eta[live] - denom[live])
            cons.append(t >= (weight[live] / ln2) @ harm - utility)
    elif game.mode == "injection":
        kappa = cp.exp(-cp.multiply(arr["gamma"], b)) if game.effect == "exp" else \
            cp.inv_pos(1.0 + cp.multiply(arr["gamma"], b))
        const = lam * float(np.sum(arr["u"] * capacity(arr["B"], arr["S"], arr["N"])))
        for a in cuts:
            cons.append(t >= (weight * np.log2(1.0 + a / (arr["N"] + arr["S"]))) @ kappa - const)
    else:
        base = float(np.sum(arr["w"] * capacity(arr["B"], arr["S"], arr["N"])))
        for a in cuts:
            cons.append(t >= base - (weight / ln2) @ cp.log(
                arr["N"] + a + arr["S"] + cp.multiply(arr["beta"] * arr["S"], s))
                + float(np.sum(weight / ln2 * np.log(arr["N"] + a))))
    problem = cp.Problem(cp.Minimize(t), cons)
    return problem, (n, s, b)


def solve_convex(game: Game, tol: float = 1e-8, max_iter: int = 200, max_cuts: int = 40,
                 solver: str = "CLARABEL") -> ConvexResult:
    """Cutting-plane solution of a convex game; raises :class:`SolverError` if not convex."""
    import cvxpy as cp

    ok, why = convexity(game)
    if not ok:
        raise SolverError(
            f"method='convex' needs a convex game, but {why} (mode={game.mode!r}, "
            f"levers={list(game.levers)}); use method='gradient' or method='auto'"
        )
    br = jax.jit(best_response_attack)
    value_at = jax.jit(payoff)
    proj = jax.jit(project_defense)
    x = Defense(*(jnp.zeros(game.num_channels),) * 3)
    attack = br(game, x)
    best_x, best_upper = x, float(value_at(game, x, attack))
    cuts = [np.asarray(attack)]
    history, lower, it = [], -np.inf, 0
    termination = "budget_exhausted"
    for it in range(1, max_iter + 1):
        problem, (n, s, b) = _master(game, cuts)
        try:
            with warnings.catch_warnings():
                # OPTIMAL_INACCURATE is handled below: the certificate never trusts the master
                warnings.simplefilter("ignore", UserWarning)
                problem.solve(solver=solver)
        except (cp.error.SolverError, ValueError, ArithmeticError) as err:
            # cvxpy raises its SolverError, or ValueError/ArithmeticError on data it cannot
            # represent; either way the back end failed, not the game
            if it == 1:
                raise SolverError(
                    f"convex master problem: the {solver} back end failed ({type(err).__name__}:"
                    f" {str(err).splitlines()[0] if str(err) else ''}); use method='gradient' "
                    f"(no conic solver), or another cvxpy solver via solver='SCS'/'ECOS'"
                ) from err
            termination = "stalled"
            break  # the solver's accuracy is exhausted; keep the best certified point
        if problem.status not in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE):
            raise SolverError(f"convex master problem: {solver} returned status "
                              f"{problem.status!r}; use method='gradient' (no conic solver)")
        lower = max(lower, float(problem.value))
        x = proj(game, Defense(*(jnp.asarray(np.maximum(v.value, 0.0)) for v in (n, s, b))))
        attack = br(game, x)
        upper = float(value_at(game, x, attack))
        if upper < best_upper:
            best_x, best_upper = x, upper
        history.append((best_upper, lower))
        if best_upper - lower <= tol * max(1.0, abs(best_upper)):
            termination = "converged"
            break
        if len(cuts) >= max_cuts:
            slack = [float(c.dual_value or 0.0) for c in problem.constraints[-len(cuts):]]
            cuts.pop(int(np.argmin(slack)))
        cuts.append(np.asarray(attack))
    return ConvexResult(defense=best_x, upper=best_upper, master_lower=lower, iterations=it,
                        history=history, termination=termination)
