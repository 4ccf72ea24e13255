"""Defenses on the zero-shot pipeline, one knob per lever of the game.

================  =========================================  ==============================
lever (game)      defense (knob)                             lever value from the knob
================  =========================================  ==============================
n  noise, image   input purification: ``noise`` randomised   ``n = knob / unit_n``
                  smoothing (std, logits averaged over draws;
                  attacked with EOT), ``blur`` Gaussian blur
                  (std in pixels; differentiable),
                  ``quantize`` (levels; attacked with BPDA)
s  signal, image  adversarial fine-tuning of the image       ``s = adv_eps / unit_s``
                  tower (PGD-L2 radius ``adv_eps``)
b  bandwidth,     pixel mask: accept only the fraction        ``b = -ln(pixel_keep)``
   image          ``pixel_keep`` of pixels with the highest
                  variance on training data, zero the rest
s  signal, text   prompt ensembling over ``ensemble``         ``s = (ensemble - 1) / unit_e``
                  templates
b  bandwidth,     cap on untrusted suffix tokens             ``b = ln(k_max / token_cap)``
   text           (``token_cap``; longer suffixes truncated)
================  =========================================  ==============================

The text channel has no noise lever here (a SmoothLLM-style token perturbation was out of
time); its alpha is fixed near zero in the game so the defender gains nothing there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.nn import functional as F

from minimax.validate.data import class_prompts


@dataclass(frozen=True)
class Knobs:
    """Concrete defense settings of the digits pipeline (the table above maps each to a lever).

    Distinct from the game's lever vector :class:`minimax.Defense`: ``Knobs`` are what a
    deployment sets (a noise std, a pixel fraction, a token cap); ``lever_values`` converts them
    to lever amounts in the game's units (docs/validation.md §5.1).
    """

    purify: str = "none"      # "none" | "noise" | "blur" | "quantize"
    level: float = 0.0        # noise std | blur std (px) | quantisation levels (0 = off)
    draws: int = 8            # randomised smoothing: draws averaged per prediction
    pixel_keep: float = 1.0   # fraction of pixels accepted, in (0, 1]
    adv_eps: float = 0.0      # adversarial fine-tuning radius of the image tower (L2)
    ensemble: int = 1         # prompt templates averaged per class
    token_cap: int | None = None  # max untrusted suffix tokens accepted

    def key(self) -> str:
        return (f"{self.purify}{self.level:g}|keep{self.pixel_keep:g}|adv{self.adv_eps:g}"
                f"|ens{self.ensemble}|cap{self.token_cap}")

    @property
    def randomised(self) -> bool:
        return self.purify == "noise" and self.level > 0

    def with_(self, **kw) -> Knobs:
        return replace(self, **kw)


def _blur_kernel(std: float) -> torch.Tensor:
    r = torch.arange(-2, 3, dtype=torch.float32)
    g = torch.exp(-0.5 * (r / max(std, 1e-6)) ** 2)
    g = g / g.sum()
    return (g[:, None] * g[None, :])[None, None]


class _QuantizeBPDA(torch.autograd.Function):
    """Forward: round to ``levels`` grey levels; backward: identity (BPDA, Athalye 2018)."""

    @staticmethod
    def forward(ctx, x, levels):
        return torch.round(x * (levels - 1)) / (levels - 1)

    @staticmethod
    def backward(ctx, g):
        return g, None


def pixel_order(x_train: np.ndarray) -> np.ndarray:
    """Pixel indices sorted by decreasing variance over the training images."""
    return np.argsort(-x_train.reshape(len(x_train), -1).var(0), kind="stable")


def pixel_mask(order: np.ndarray, keep: float, shape) -> torch.Tensor:
    n = len(order)
    m = np.zeros(n, np.float32)
    m[order[: max(1, int(round(keep * n)))]] = 1.0
    return torch.from_numpy(m).view(1, *shape)


def purify(x: torch.Tensor, d: Knobs, mask: torch.Tensor | None,
           generator: torch.Generator | None = None) -> torch.Tensor:
    """The image pre-processing of the defended pipeline (bandwidth mask, then purifier)."""
    if mask is not None:
        x = x * mask
    if d.purify == "none" or d.level <= 0:
        return x
    if d.purify == "blur":
        c = x.shape[1]
        k = _blur_kernel(d.level).repeat(c, 1, 1, 1)
        return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="replicate"), k, groups=c)
    if d.purify == "quantize":
        return _QuantizeBPDA.apply(x, float(d.level))
    if d.purify == "noise":
        eps = torch.randn(x.shape, generator=generator)
        return x + d.level * eps
    raise ValueError(f"Knobs.purify={d.purify!r}; expected 'none', 'noise', 'blur', 'quantize'")


def prompt_bank(model, ensemble: int) -> list[list[str]]:
    """Class prompts per template: ``[template][class]`` for the first ``ensemble`` templates."""
    names, templates = class_prompts(model)
    if not 1 <= ensemble <= len(templates):
        raise ValueError(f"ensemble={ensemble}; expected 1..{len(templates)}")
    return [[t.format(c) for c in names] for t in templates[:ensemble]]


def build_prompt_ids(model, texts: list[str], suffix: torch.Tensor | None):
    """Tokenise ``texts`` with ``suffix`` ids (``(k,)``) between body and end; pad right.

    Returns ids ``(n, L)``, mask ``(n, L)`` and the suffix positions ``(n, k)``.
    """
    k = 0 if suffix is None else int(suffix.numel())
    rows, pos = [], []
    for t in texts:
        body, end = model.prompt_ids(t)
        sfx = [] if suffix is None else [int(v) for v in suffix]
        rows.append(body + sfx + end)
        pos.append(list(range(len(body), len(body) + k)))
    L = max(map(len, rows))
    ids = torch.zeros(len(rows), L, dtype=torch.long)
    mask = torch.zeros(len(rows), L, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask, torch.tensor(pos, dtype=torch.long).view(len(rows), k)


def class_embeddings(model, ensemble: int) -> torch.Tensor:
    """Zero-shot classifier weights ``(10, D)``: mean of unit template embeddings, renormed."""
    bank = prompt_bank(model, ensemble)
    flat = [t for row in bank for t in row]
    ids, mask, _ = build_prompt_ids(model, flat, None)
    with torch.no_grad():
        e = model.encode_text(ids, mask).view(ensemble, len(bank[0]), -1)
    return F.normalize(e.mean(0), dim=-1)


def capped(suffix: torch.Tensor | None, cap: int | None) -> torch.Tensor | None:
    """The untrusted-token cap: keep the first ``cap`` suffix tokens."""
    if suffix is None or cap is None or suffix.numel() <= cap:
        return suffix
    return None if cap == 0 else suffix[:cap]


def targeted_text(model, d: Knobs, suffixes: dict[int, torch.Tensor] | None) -> torch.Tensor:
    """Classifier weights per attacker target ``(10 targets, 10 classes, D)``.

    For target ``t`` the attacker's suffix ``suffixes[t]`` is appended to every template of
    class ``t`` (the untrusted slot of that prompt), after the defender's token cap.
    """
    base = class_embeddings(model, d.ensemble)
    out = base.expand(base.shape[0], -1, -1).clone()
    if not suffixes:
        return out
    bank = prompt_bank(model, d.ensemble)
    for t, sfx in suffixes.items():
        sfx = capped(sfx, d.token_cap)
        if sfx is None:
            continue
        ids, mask, _ = build_prompt_ids(model, [row[t] for row in bank], sfx)
        with torch.no_grad():
            out[t, t] = F.normalize(model.encode_text(ids, mask).mean(0), dim=-1)
    return out


def lever_values(d: Knobs, units: dict[str, float], k_max: int) -> dict[str, float]:
    """Map defense knobs to the game's lever levels (see the module table)."""
    n = d.level / units["n"] if d.purify == units.get("purify", "noise") else 0.0
    return {
        "n_image": n,
        "s_image": d.adv_eps / units["s"],
        "b_image": -math.log(d.pixel_keep),
        "s_text": (d.ensemble - 1) / units["ensemble"],
        "b_text": 0.0 if d.token_cap is None else math.log(k_max / max(d.token_cap, 1e-9)),
    }
