"""The defended zero-shot pipeline an attacker faces end to end.

``Pipeline(model, defence, order, suffixes)`` is image -> bandwidth mask -> purifier ->
image tower, scored against class prompts (ensembled, with the attacker's token-capped
suffix on the target class).  Randomised purification averages class probabilities over
``draws`` noise draws, both when predicting and, as expectation over transformation
(EOT, Athalye et al. 2018), inside the attack's loss.
"""

from __future__ import annotations

import numpy as np
import torch

from minimax.validate.defences import Defence, pixel_mask, purify, targeted_text


class Pipeline:
    def __init__(self, model, defence: Defence, order: np.ndarray,
                 suffixes: dict[int, torch.Tensor] | None = None, seed: int = 0) -> None:
        self.model = model
        self.d = defence
        self.mask = (pixel_mask(order, defence.pixel_keep, model.image_shape)
                     if defence.pixel_keep < 1 else None)
        self.text = targeted_text(model, defence, suffixes)  # (targets, classes, D)
        self.gen = torch.Generator().manual_seed(seed)

    def log_probs(self, x: torch.Tensor, targets: torch.Tensor, draws: int | None = None):
        """``log E_draws softmax(scale <f(purify(x)), g(t_c)>)``, shape ``(n, classes)``."""
        draws = (draws or self.d.draws) if self.d.randomised else 1
        text = self.text[targets]  # (n, classes, D)
        probs = 0.0
        for _ in range(draws):
            z = self.model.encode_image(purify(x, self.d, self.mask, self.gen))
            logits = self.model.logit_scale * torch.einsum("nd,ncd->nc", z, text)
            probs = probs + torch.softmax(logits, -1) / draws
        return torch.log(probs.clamp_min(1e-30))

    def predict(self, x: torch.Tensor, targets: torch.Tensor, batch: int = 2048) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch):
                out.append(self.log_probs(x[i : i + batch], targets[i : i + batch]).argmax(-1))
        return torch.cat(out).numpy()
