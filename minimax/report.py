"""Readable tables of a solution: per channel, attacker power, defense per lever, and bits."""

from __future__ import annotations

import numpy as np

from minimax.channel import adversarial_capacity, legitimate_capacity
from minimax.game import Defense, Game
from minimax.solution import Solution


def channel_rows(game: Game, sol: Solution) -> list[dict]:
    """One dict per channel: name, flow, modality, attack, n, s, b, adv_bits, leg_bits."""
    x = Defense(*(np.asarray(v) for v in sol.defense))
    adv = np.asarray(adversarial_capacity(game, x, np.asarray(sol.attack)))
    leg = np.asarray(legitimate_capacity(game, x, np.asarray(sol.attack)))
    return [
        {"channel": game.names[i], "flow": game.flows[i], "modality": game.modalities[i],
         "attack": float(sol.attack[i]), "n": float(x.n[i]), "s": float(x.s[i]),
         "b": float(x.b[i]), "adv_bits": float(adv[i]), "leg_bits": float(leg[i])}
        for i in range(game.num_channels)
    ]


_HEADLINE = {"certified": "Certified",
             "gap_above_tol": "Valid bounds, but the gap is above the requested gap_tol"}


def markdown_table(game: Game, sol: Solution) -> str:
    """The solution as a Markdown table plus a certificate line."""
    rows = channel_rows(game, sol)
    adv_label = "adv bits" if game.mode == "injection" else "bits removed"
    head = (f"| channel | attacker power | noise supp. n | signal enh. s | bandwidth restr. b "
            f"| {adv_label} | legit bits |")
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['channel']} | {r['attack']:.4f} | {r['n']:.4f} | {r['s']:.4f} | "
            f"{r['b']:.4f} | {r['adv_bits']:.4f} | {r['leg_bits']:.4f} |"
        )
    total = {k: sum(r[k] for r in rows) for k in ("attack", "n", "s", "b", "adv_bits",
                                                 "leg_bits")}
    lines.append(
        f"| **total** | {total['attack']:.4f} | {total['n']:.4f} | {total['s']:.4f} | "
        f"{total['b']:.4f} | {total['adv_bits']:.4f} | {total['leg_bits']:.4f} |"
    )
    cert = (f"\nGame `{game.name}` ({game.mode}, K={game.num_channels}, P_A="
            f"{float(game.attacker_budget):g}, P_D={float(game.defender_budget):g}, lambda="
            f"{float(game.utility_price):g}). Method `{sol.method}`, {sol.iterations} iterations,"
            f" {sol.seconds:.2f} s.\n\n{_HEADLINE.get(sol.status, sol.status)}: value = upper = "
            f"{sol.upper:.9f}, lower = {sol.lower:.9f}, gap = {sol.gap:.3e}.")
    if sol.reason:
        cert += f"\n\n{sol.reason}."
    return "\n".join(lines) + "\n" + cert + "\n"
