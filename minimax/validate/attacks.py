"""Targeted attacks on the defended pipeline: PGD on pixels, GCG on prompt tokens.

* :func:`pgd` — projected gradient descent (Madry et al. 2018) on the targeted
  cross-entropy of the *full* pipeline, L2 or Linf ball intersected with the pixel box
  [0, 1], with random restarts (the best restart per sample is kept).  Attacker power
  ``P`` is the squared L2 budget ``||delta||_2^2 <= P``.  Gradients go through the
  purifier: exactly for blur and masks, by BPDA (identity backward) for quantisation, and
  by EOT over noise draws for randomised smoothing.
* :func:`gcg` — greedy coordinate gradient (Zou et al. 2023, "Universal and Transferable
  Adversarial Attacks on Aligned Language Models"): the attacker controls ``k`` suffix
  tokens appended to the prompt(s) of its target class; each step takes the gradient of
  the loss with respect to the one-hot tokens through the real transformer, proposes
  ``n_cand`` single-token swaps from the top-``topk`` tokens per position and keeps the
  best.  The suffix is universal over the attacker's own images (one per target).
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from minimax.validate.defences import (
    Defence,
    build_prompt_ids,
    class_embeddings,
    prompt_bank,
    purify,
)
from minimax.validate.pipeline import Pipeline


def _project(delta: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "l2":
        n = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *[1] * (x.ndim - 1))
        delta = delta * (eps / n).clamp(max=1.0)
    else:
        delta = delta.clamp(-eps, eps)
    return (x + delta).clamp(0, 1) - x


def pgd(pipe: Pipeline, x: torch.Tensor, targets: torch.Tensor, eps: float, norm: str = "l2",
        steps: int = 30, restarts: int = 1, eot: int | None = None, step_scale: float = 2.5,
        seed: int = 0) -> torch.Tensor:
    """Targeted PGD; returns adversarial images with ``||x_adv - x|| <= eps`` in ``norm``.

    ``eot`` is the number of noise draws averaged per gradient for a randomised pipeline
    (default: the pipeline's own ``draws``).
    """
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm={norm!r}; expected 'l2' or 'linf'")
    if eps <= 0 or steps <= 0:
        return x.clone()
    g = torch.Generator().manual_seed(seed)
    alpha = step_scale * eps / steps
    best = x.clone()
    best_loss = torch.full((len(x),), float("inf"))
    for r in range(restarts):
        if r == 0:
            delta = torch.zeros_like(x)
        else:
            delta = torch.randn(x.shape, generator=g)
            if norm == "linf":
                delta = eps * (2 * torch.rand(x.shape, generator=g) - 1)
            delta = _project(delta * eps, x, eps, norm)
        for _ in range(steps):
            delta.requires_grad_(True)
            loss = F.nll_loss(pipe.log_probs(x + delta, targets, eot), targets)
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                if norm == "l2":
                    gn = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
                    delta = delta - alpha * grad / gn
                else:
                    delta = delta - alpha * grad.sign()
                delta = _project(delta, x, eps, norm)
        with torch.no_grad():
            lp = pipe.log_probs(x + delta, targets, eot)
            per = F.nll_loss(lp, targets, reduction="none")
            per = per - 1e3 * (lp.argmax(-1) == targets)  # success beats any loss value
            better = per < best_loss
            best[better] = (x + delta)[better]
            best_loss = torch.where(better, per, best_loss)
    return best.detach()


def gcg(model, defence: Defence, image_emb: torch.Tensor, labels: torch.Tensor, k: int,
        steps: int = 8, n_cand: int = 32, topk: int = 64, seed: int = 0,
        init: dict[int, torch.Tensor] | None = None) -> dict[int, torch.Tensor]:
    """Universal ``k``-token suffix per target class (GCG); returns ``{target: ids (k,)}``.

    ``image_emb`` are the attacker's images already through the defended image path,
    ``(n, D)`` unit vectors; ``labels`` their classes (images of the target class itself
    are left out of the loss).  ``init`` warm-starts from shorter suffixes (padded).
    """
    if k <= 0:
        return {}
    g = torch.Generator().manual_seed(seed)
    w_emb = model.input_embedding().weight.detach()
    allowed = model.candidate_tokens()
    block = torch.ones(w_emb.shape[0], dtype=torch.bool)
    block[allowed] = False
    base = class_embeddings(model, defence.ensemble)
    bank = prompt_bank(model, defence.ensemble)
    filler = int(allowed[len(allowed) // 2])
    logits0 = model.logit_scale * image_emb @ base.T  # (n, classes)
    out = {}
    for t in range(base.shape[0]):
        keep = labels != t
        lg = logits0[keep]
        tgt = torch.full((int(keep.sum()),), t)
        texts = [row[t] for row in bank]
        sfx = torch.full((k,), filler, dtype=torch.long)
        if init and t in init and init[t].numel():
            m = min(k, init[t].numel())
            sfx[:m] = init[t][:m]

        def loss_of(cls_emb, lg=lg, tgt=tgt, keep=keep, t=t):
            # cls_emb: (c, D) candidate embeddings of class t -> loss per candidate (c,)
            s_t = model.logit_scale * image_emb[keep] @ cls_emb.T  # (n, c)
            logits = lg[None].repeat(cls_emb.shape[0], 1, 1)
            logits[:, :, t] = s_t.T
            return F.cross_entropy(logits.transpose(1, 2), tgt[None].expand(len(cls_emb), -1),
                                   reduction="none").mean(-1)

        def embed(cands, texts=texts):  # (c, k) -> (c, D)
            rows = [build_prompt_ids(model, texts, c_) for c_ in cands]
            ids = torch.cat([r[0] for r in _pad(rows)])
            mask = torch.cat([r[1] for r in _pad(rows)])
            with torch.no_grad():
                e = model.encode_text(ids, mask).view(len(cands), len(texts), -1)
            return F.normalize(e.mean(1), dim=-1)

        cur = float(loss_of(embed(sfx[None]))[0])
        for _ in range(steps):
            ids, mask, pos = build_prompt_ids(model, texts, sfx)
            onehot = F.one_hot(sfx, w_emb.shape[0]).to(w_emb.dtype).requires_grad_(True)
            emb = w_emb[ids].clone()
            emb[torch.arange(len(texts))[:, None], pos] = (onehot @ w_emb)[None]
            e = F.normalize(model.encode_text(ids, mask, embeds=emb).mean(0), dim=-1)
            (grad,) = torch.autograd.grad(loss_of(e[None])[0], onehot)
            grad[:, block] = float("inf")
            top = (-grad).topk(topk, dim=1).indices  # (k, topk)
            cand = sfx[None].repeat(n_cand, 1)
            where = torch.randint(k, (n_cand,), generator=g)
            pick = torch.randint(topk, (n_cand,), generator=g)
            cand[torch.arange(n_cand), where] = top[where, pick]
            losses = loss_of(embed(cand))
            j = int(losses.argmin())
            if float(losses[j]) < cur:
                cur, sfx = float(losses[j]), cand[j].clone()
        out[t] = sfx
    return out


def _pad(rows):
    L = max(r[0].shape[1] for r in rows)
    return [(F.pad(i, (0, L - i.shape[1])), F.pad(m, (0, L - m.shape[1]))) for i, m, _ in rows]


def defended_image_embeddings(model, defence: Defence, order, x: torch.Tensor) -> torch.Tensor:
    """Image embeddings through the defended image path (noise: mean over draws)."""
    pipe = Pipeline(model, defence, order)
    with torch.no_grad():
        draws = defence.draws if defence.randomised else 1
        z = sum(model.encode_image(purify(x, defence, pipe.mask, pipe.gen)) for _ in range(draws))
    return F.normalize(z, dim=-1)


