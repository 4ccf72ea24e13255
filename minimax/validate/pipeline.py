"""The defended zero-shot pipeline an attacker faces end to end.

``Pipeline(model, defense, order, suffixes)`` is image -> bandwidth mask -> purifier ->
image tower, scored against class prompts (ensembled, with the attacker's token-capped
suffix on the target class).  Randomised purification averages class probabilities over
``draws`` noise draws, both when predicting and, as expectation over transformation
(EOT, Athalye et al. 2018), inside the attack's loss.

``MixturePipeline([(w_1, pipe_1), ...])`` is a *mixed* defense seen by an attacker who
does not know which pure defense will be drawn: its class probabilities are the
mixture ``p(c | x) = sum_i w_i p_i(c | x)``, so an attack that maximises ``log p(t | x)``
maximises its expected targeted success over the defender's draw.  A one-component
mixture is exactly its component.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from minimax.validate.knobs import Knobs, pixel_mask, purify, targeted_text


class Pipeline:
    def __init__(self, model, defense: Knobs, order: np.ndarray,
                 suffixes: dict[int, torch.Tensor] | None = None, seed: int = 0) -> None:
        self.model = model
        self.d = defense
        self.mask = (pixel_mask(order, defense.pixel_keep, model.image_shape)
                     if defense.pixel_keep < 1 else None)
        self.text = targeted_text(model, defense, suffixes)  # (targets, classes, D)
        self.gen = torch.Generator().manual_seed(seed)

    @property
    def randomised(self) -> bool:
        return self.d.randomised

    def log_probs(self, x: torch.Tensor, targets: torch.Tensor, draws: int | None = None):
        """``log E_draws softmax(scale <f(purify(x)), g(t_c)>)``, shape ``(n, classes)``."""
        draws = (draws or self.d.draws) if self.d.randomised else 1
        text = self.text[targets]  # (n, classes, D)
        n = len(x)
        # all draws in one batch: (draws * n) rows through the tower, then averaged
        xr = x.repeat(draws, *[1] * (x.ndim - 1)) if draws > 1 else x
        z = self.model.encode_image(purify(xr, self.d, self.mask, self.gen)).view(draws, n, -1)
        logits = self.model.logit_scale * torch.einsum("rnd,ncd->rnc", z, text)
        probs = torch.softmax(logits, -1).mean(0)
        return torch.log(probs.clamp_min(1e-30))

    def predict(self, x: torch.Tensor, targets: torch.Tensor, batch: int = 2048) -> np.ndarray:
        return _predict(self, x, targets, batch)


class MixturePipeline:
    """Expected class probabilities over a mixture of defended pipelines (weights sum to 1)."""

    def __init__(self, parts: Sequence[tuple[float, Pipeline]]) -> None:
        if not parts:
            raise ValueError("MixturePipeline needs at least one (weight, pipeline) part")
        w = np.array([float(p[0]) for p in parts])
        if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"mixture weights={w.tolist()}; expected finite, >= 0, sum > 0")
        keep = w > 0  # a part the defender never draws does not enter the expectation
        self.weights = (w[keep] / w.sum()).tolist()
        self.parts = [p[1] for p, k in zip(parts, keep, strict=True) if k]

    @property
    def randomised(self) -> bool:
        return any(p.randomised for p in self.parts)

    def log_probs(self, x: torch.Tensor, targets: torch.Tensor, draws: int | None = None):
        """``log sum_i w_i p_i(c | x)``, shape ``(n, classes)``; ``draws`` is each part's EOT."""
        if len(self.parts) == 1:
            return self.parts[0].log_probs(x, targets, draws)
        lp = torch.stack([p.log_probs(x, targets, draws) for p in self.parts])
        w = torch.tensor(self.weights, dtype=lp.dtype).log().view(-1, 1, 1)
        return torch.logsumexp(lp + w, dim=0)

    def predict(self, x: torch.Tensor, targets: torch.Tensor, batch: int = 2048) -> np.ndarray:
        return _predict(self, x, targets, batch)


def _predict(pipe, x: torch.Tensor, targets: torch.Tensor, batch: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out.append(pipe.log_probs(x[i : i + batch], targets[i : i + batch]).argmax(-1))
    return torch.cat(out).numpy()
