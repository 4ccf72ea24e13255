"""Defense Coverage Index (docs/analyses.md §4.2).

A catalogue defense j is a *fixed* investment x_j; an attack class k restricts the attacker to
its power caps and payoff mode. Against a ladder of attacker powers P_1 < ... < P_T the adaptive
attacker best-responds exactly (water-filling / jamming KKT, :func:`minimax.phi`), and

    V_k(j, P)      = max_{a in A_k(P)} L_k(x_j, a) - L_k(x_j, 0)     (weighted bits per query)
    cover_j(k, P)  = 1 - V_k(j, P) / V_k(none, P)
    DCI_j          = sum_k omega_k mean_t cover_j(k, P_t) / sum_k omega_k,

with ``L_k`` the payoff of class k's mode at ``utility_price = 0``. ``V`` is the harm the
*attack* adds. In injection mode ``L(x, 0) = 0``, so V is exactly the attacker's best-response
value of docs §4.2 and cover lies in [0, 1]. In jamming mode ``L(x, 0)`` is the legitimate
capacity the defense itself removes (bandwidth restriction cuts legitimate bandwidth on every
channel it touches, reached or not); subtracting it keeps that self-inflicted loss out of the
coverage of an attack that may not even reach the channel. It is reported instead, with every
defense's cost in legitimate capacity, as ``utility_loss``. Jamming cover is reported raw and
can be negative: at high SNR signal enhancement makes each unit of jamming noise *more*
damaging, ``log(1 + sigma S/N) - log(1 + sigma S/(N + a))`` grows with sigma.

Breakdowns: ``per_class[j, k] = mean_t cover_j(k, P_t)``; ``curve[j, t]`` is the omega-weighted
cover at P_t (the decay of coverage with attacker power); ``per_flow[j, f]`` repeats the DCI with
every class restricted to the channels of flow f (classes that cannot reach f are left out of
that flow's weights), which tells *where* a defense covers without the adaptive attacker's
displacement to other flows blurring it.

Every value is computed in one ``vmap`` over (scenario x power) games and defenses; nothing is
ranked by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from minimax.analysis._specs import (
    DefenseSpec,
    Taxonomy,
    class_caps,
    defense_vector,
    investment_cost,
)
from minimax.channel import legitimate_capacity, payoff
from minimax.errors import GameSpecError
from minimax.game import FLOWS, Defense, Game
from minimax.response import phi
from minimax.serial import namedtuple_to_dict


class DCIResult(NamedTuple):
    """DCI of a catalogue against a taxonomy, with its breakdowns. J defenses, C classes,
    F flows, T powers; values in weighted bits per query, powers in the game's power units."""

    defenses: tuple[str, ...]  # (J,) catalogue order
    categories: tuple[str, ...]  # (J,) "model" | "system"
    classes: tuple[str, ...]  # (C,) classes reachable in the game
    flows: tuple[str, ...]  # (F,) the six flows
    powers: np.ndarray  # (T,) attacker budgets P_t
    weights: np.ndarray  # (C,) omega_k
    dci: np.ndarray  # (J,) in [0, 1] for injection-only taxonomies (jamming: see module doc)
    per_class: np.ndarray  # (J, C) mean_t cover_j(k, P_t)
    per_flow: np.ndarray  # (J, F) flow-restricted DCI; nan where no class reaches the flow
    curve: np.ndarray  # (J, T) omega-weighted cover at each P_t
    cover: np.ndarray  # (J, C, T) cover_j(k, P_t)
    value: np.ndarray  # (J, C, T) V_k(j, P_t)
    value_none: np.ndarray  # (C, T) V_k(none, P_t)
    cost: np.ndarray  # (J,) budget units actually invested (after any rescaling)
    utility_loss: np.ndarray  # (J,) sum_i u_i Cleg_i lost to the defense, bits per query
    skipped: tuple[str, ...]  # classes that reach no channel of the game (left out)
    equal_budget: bool  # whether every defense was rescaled to the game's defender budget
    provenance: tuple[str, ...] = ()  # (J,) "measured on T" | "assumed from S" (provenance_label)

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python dict (JSON-serialisable; NaN where no class reaches a flow)."""
        return namedtuple_to_dict(self)

    def ranking(self) -> np.ndarray:
        """Indices of the defenses, highest DCI first (ties keep catalogue order)."""
        return np.argsort(-self.dci, kind="stable")

    def table(self) -> list[dict[str, object]]:
        """Rows ranked by DCI: name, category, DCI, cover at the lowest/highest power, decay,
        cost and utility loss (plain Python values, ready for CSV/Markdown)."""
        rows = []
        for rank, j in enumerate(self.ranking(), start=1):
            rows.append({
                "rank": rank, "defense": self.defenses[j], "category": self.categories[j],
                "dci": float(self.dci[j]), "cover_low_P": float(self.curve[j, 0]),
                "cover_high_P": float(self.curve[j, -1]),
                "decay": float(self.curve[j, 0] - self.curve[j, -1]),
                "cost": float(self.cost[j]), "utility_loss_bits": float(self.utility_loss[j]),
                "provenance": self.provenance[j] if self.provenance else "assumed",
            })
        return rows

    def category_curve(self) -> dict[str, np.ndarray]:
        """Mean cover-vs-power curve of each category, {"model": (T,), "system": (T,)}."""
        cats = np.asarray(self.categories)
        return {c: self.curve[cats == c].mean(axis=0) for c in sorted(set(self.categories))}


def provenance_label(spec: DefenseSpec) -> str:
    """Where a catalogue row's lever amounts come from, in a few words.

    ``"measured on the <name> target"`` for a row whose amounts come from a validation
    target (the phrase "measured on ... target" of its provenance note), ``"assumed from
    <first citation>"`` (the source up to its first year) for a row set by hand.
    """
    import re

    if spec.provenance == "measured":
        m = re.search(r"measured on (?:the )?([\w-]+(?: [\w-]+)?) target", spec.provenance_note)
        return f"measured on the {m.group(1)} target" if m else "measured"
    m = re.match(r"\s*(.+?\b(?:19|20)\d\d)\b", spec.source)
    return f"assumed from {m.group(1)}" if m else "assumed"


def _stack(game: Game, caps: np.ndarray, powers: np.ndarray, mode: str) -> Game:
    """A batched game of shape (S*T,): scenario caps (S, K) x powers (T,), utility_price 0."""
    s, k = caps.shape
    t = powers.shape[0]
    view = game.replace(mode=mode).view()
    g = s * t
    leaves = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(v, (g,) + jnp.shape(v)), view)
    return leaves.replace(
        cap=jnp.asarray(np.repeat(caps, t, axis=0).reshape(g, k)),
        attacker_budget=jnp.asarray(np.tile(powers, s)),
        utility_price=jnp.zeros(g),
    )


def _attack_harm(game: Game, defense: Defense) -> jax.Array:
    """max_a L(x, a) - L(x, 0): the loss the adaptive attacker adds to the defended system."""
    return phi(game, defense) - payoff(game, defense, jnp.zeros_like(game.B))


@jax.jit
def _values(games: Game, defenses: Defense) -> jax.Array:
    """(G, J) attack harm of every stacked game against every defense."""
    per_game = jax.vmap(_attack_harm, in_axes=(None, 0))
    return jax.vmap(per_game, in_axes=(0, None))(games, defenses)


def dci(game: Game, catalogue: Sequence[DefenseSpec], taxonomy: Taxonomy,
        powers: Sequence[float], *, equal_budget: bool = False) -> DCIResult:
    """Defense Coverage Index of every catalogue defense on ``game`` (docs/analyses.md §4.2).

    ``powers`` is the ladder of attacker budgets (power units); ``equal_budget=True`` rescales
    every defense so its cost equals ``game.defender_budget`` (a like-for-like comparison;
    otherwise each defense is applied as catalogued, at its own cost).

    >>> import minimax
    >>> from minimax.analysis import AttackClass, DefenseSpec, Taxonomy, dci
    >>> g = minimax.Game.create(mode="injection", attacker_budget=1.0, defender_budget=1.0,
    ...     B=[1.0], S=[1.0], N=[1.0], w=[1.0], u=[0.0], rho=[0.0], alpha=[1.0], beta=[1.0],
    ...     gamma=[1.0], flows=["agent_app"], modalities=["tool"])
    >>> tax = Taxonomy("t", {}, {}, (AttackClass("hijack", "injection", 1.0, (("*/*", 1e9),)),))
    >>> cat = [DefenseSpec("sandbox", "system", (("agent_app/*", "b", 1.0),), 1.0)]
    >>> r = dci(g, cat, tax, [1.0, 100.0])
    >>> round(float(r.dci[0]), 6)  # bandwidth restriction: 1 - e^{-1} at every power
    0.632121
    """
    if game.batch_shape:
        raise GameSpecError("dci: expected one game, got a stacked game")
    powers = np.asarray(powers, dtype=float)
    if powers.ndim != 1 or powers.size == 0 or np.any(~np.isfinite(powers)) or np.any(
            powers <= 0):
        raise GameSpecError(f"dci.powers: got {powers.tolist()}; expected a non-empty list of "
                            f"finite attacker budgets > 0")
    if not catalogue:
        raise GameSpecError("dci.catalogue: empty; give at least one defense")
    k = game.num_channels
    xs = [defense_vector(game, spec) for spec in catalogue]
    costs = np.array([investment_cost(game, x) for x in xs])
    if equal_budget:
        scale = np.where(costs > 0, float(game.defender_budget) / np.where(costs > 0, costs, 1),
                         0.0)
        xs = [Defense(*(np.asarray(v) * c for v in x)) for x, c in zip(xs, scale, strict=True)]
        costs = costs * scale
    none = Defense(np.zeros(k), np.zeros(k), np.zeros(k))
    stacked = Defense(*(jnp.asarray(np.stack([np.asarray(getattr(x, lv)) for x in [none, *xs]]))
                        for lv in ("n", "s", "b")))

    classes, caps, skipped = [], [], []
    for cls in taxonomy.classes:
        c = class_caps(game, cls)
        if np.any((c > 0) & (np.asarray(game.w) > 0)):
            classes.append(cls)
            caps.append(c)
        else:
            skipped.append(cls.name)
    if not classes:
        raise GameSpecError(f"dci: no attack class of taxonomy {taxonomy.name!r} reaches a "
                            f"channel of game {game.name!r}; check the reach patterns")
    flows = np.asarray(game.flows)
    scenarios = []  # (class index, flow index or -1, caps)
    for ci, c in enumerate(caps):
        scenarios.append((ci, -1, c))
        for fi, f in enumerate(FLOWS):
            cf = np.where(flows == f, c, 0.0)
            if np.any((cf > 0) & (np.asarray(game.w) > 0)):
                scenarios.append((ci, fi, cf))

    t = powers.size
    values = np.full((len(scenarios), t, len(xs) + 1), np.nan)
    for mode in ("injection", "jamming"):
        idx = [i for i, (ci, _, _) in enumerate(scenarios) if classes[ci].mode == mode]
        if not idx:
            continue
        batch = _stack(game, np.stack([scenarios[i][2] for i in idx]), powers, mode)
        out = np.asarray(_values(batch, stacked)).reshape(len(idx), t, len(xs) + 1)
        values[idx] = out

    cover_all = 1.0 - values[..., 1:] / values[..., :1]  # (S, T, J)
    weights = np.array([c.weight for c in classes])
    j_count, c_count = len(xs), len(classes)
    cover = np.zeros((j_count, c_count, t))
    value = np.zeros((j_count, c_count, t))
    value_none = np.zeros((c_count, t))
    flow_sum = np.zeros((j_count, len(FLOWS)))
    flow_w = np.zeros(len(FLOWS))
    for si, (ci, fi, _) in enumerate(scenarios):
        if fi < 0:
            cover[:, ci, :] = cover_all[si].T
            value[:, ci, :] = values[si, :, 1:].T
            value_none[ci] = values[si, :, 0]
        else:
            flow_sum[:, fi] += weights[ci] * cover_all[si].mean(axis=0)
            flow_w[fi] += weights[ci]
    total = weights.sum()
    if total <= 0:
        raise GameSpecError("dci: the reachable classes have total weight 0")
    per_class = cover.mean(axis=2)
    dci_values = per_class @ weights / total
    curve = np.einsum("jct,c->jt", cover, weights) / total
    with np.errstate(invalid="ignore", divide="ignore"):
        per_flow = np.where(flow_w > 0, flow_sum / np.where(flow_w > 0, flow_w, 1.0), np.nan)

    leg_game = game.replace(mode="injection")
    base_leg = float(np.sum(np.asarray(game.u) * np.asarray(legitimate_capacity(leg_game, none))))
    utility_loss = np.array([
        base_leg - float(np.sum(np.asarray(game.u) * np.asarray(
            legitimate_capacity(leg_game, Defense(*(jnp.asarray(v) for v in x))))))
        for x in xs
    ])
    return DCIResult(
        defenses=tuple(s.name for s in catalogue), categories=tuple(s.category for s in catalogue),
        provenance=tuple(provenance_label(s) for s in catalogue),
        classes=tuple(c.name for c in classes), flows=FLOWS, powers=powers, weights=weights,
        dci=dci_values, per_class=per_class, per_flow=per_flow, curve=curve, cover=cover,
        value=value, value_none=value_none, cost=costs, utility_loss=utility_loss,
        skipped=tuple(skipped), equal_budget=equal_budget,
    )
