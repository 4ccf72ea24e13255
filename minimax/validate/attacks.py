"""Targeted attacks on the defended pipeline: APGD, PGD and Square on pixels, GCG on tokens.

Every image attack here maximises the *targeted* objective of a pipeline (a
:class:`~minimax.validate.pipeline.Pipeline` or a mixture of them): ``log p(t | x)``, the
log of the (expected, for randomised or mixed defenses) probability of the attacker's
target.  Attacker power ``P`` is a squared L2 budget ``||delta||_2^2 <= P``; the Linf
threat model uses the radius with the same L2 envelope, ``eps = sqrt(P / d)``.

* :func:`apgd` — Auto-PGD (Croce & Hein 2020, "Reliable evaluation of adversarial
  robustness with an ensemble of diverse parameter-free attacks"): step size ``2 eps``,
  momentum 0.75, checkpoints ``p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} -
  0.03, 0.06)`` at which the step is halved and the iterate restarted from the best point
  when fewer than 75% of the steps since the last checkpoint raised the loss, or when
  neither the step nor the best loss changed.  Losses: cross-entropy (``"ce"``) and the
  targeted difference-of-logits ratio (``"dlr"``).  Randomised defenses are attacked by
  EOT (``eot`` draws per gradient); quantisation by BPDA (identity backward).
* :func:`pgd` — fixed-step PGD (Madry et al. 2018), kept as the baseline APGD must beat.
* :func:`square` — Square attack (Andriushchenko et al. 2020), gradient-free random search
  over square-shaped updates: the gradient-masking check.  If it beats the gradient
  attacks, their gradients are lying.
* :func:`gcg_mixture` — greedy coordinate gradient (Zou et al. 2023, "Universal and
  Transferable Adversarial Attacks on Aligned Language Models") against a mixture of
  *defended* text paths: the attacker controls ``k`` suffix tokens appended to every
  prompt template of its target class; each step takes the gradient of the mixture
  objective with respect to the one-hot tokens through the real transformer, proposes
  ``n_cand`` single-token swaps from the top-``topk`` tokens per position and keeps the
  best if it improves.  Each defense in the mixture sees the suffix through its own
  ensemble and token cap, and the attacker's images through its own image path (tower,
  mask, noise draws), so nothing is transferred from an undefended model.  The suffix is
  universal over the attacker's own images (one per target); in a joint attack those
  images carry the attacker's current perturbations toward the target.
* :func:`gcg` — the single-defense GCG of earlier versions (mean image embedding, no cap).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch.nn import functional as F

from minimax.validate.knobs import (
    Knobs,
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


def gcg(model, defense: Knobs, image_emb: torch.Tensor, labels: torch.Tensor, k: int,
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
    base = class_embeddings(model, defense.ensemble)
    bank = prompt_bank(model, defense.ensemble)
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


def defended_image_embeddings(model, defense: Knobs, order, x: torch.Tensor) -> torch.Tensor:
    """Image embeddings through the defended image path (noise: mean over draws)."""
    pipe = Pipeline(model, defense, order)
    with torch.no_grad():
        draws = defense.draws if defense.randomised else 1
        z = sum(model.encode_image(purify(x, defense, pipe.mask, pipe.gen)) for _ in range(draws))
    return F.normalize(z, dim=-1)




# ---------------------------------------------------------------- APGD


def target_margin(lp: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``log p(t) - max_{c != t} log p(c)`` per row: > 0 exactly when the target wins."""
    rows = torch.arange(len(targets))
    other = lp.clone()
    other[rows, targets] = float("-inf")
    return lp[rows, targets] - other.max(-1).values


def _objective(lp: torch.Tensor, targets: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-row objective the attacker maximises: ``log p(t)`` or the targeted DLR.

    Targeted DLR (Croce & Hein 2020, eq. 7, with the strongest other class in place of the
    true one): ``(z_t - max_{c != t} z_c) / (z_(1) - (z_(3) + z_(4)) / 2)``, ``z`` the
    log-probabilities sorted decreasingly as ``z_(i)``; invariant to shifts and scales.
    """
    rows = torch.arange(len(targets))
    if loss == "ce":
        return lp[rows, targets]
    zs = lp.sort(-1, descending=True).values
    return target_margin(lp, targets) / (zs[:, 0] - 0.5 * (zs[:, 2] + zs[:, 3]) + 1e-12)


def apgd_checkpoints(steps: int) -> list[int]:
    """Iterations at which APGD checks its step size: ``ceil(p_j * steps)``, j >= 1."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(q * steps - 1e-9) for q in p[1:] if q <= 1 + 1e-9} - {0})


def _rows(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.view(-1, *[1] * (x.ndim - 1))


def _direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    return grad / _rows(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)


def _check_norm(norm: str) -> None:
    if norm not in ("l2", "linf"):
        raise ValueError(f"norm={norm!r}; expected 'l2' or 'linf'")


def _random_start(x: torch.Tensor, eps: float, norm: str, g: torch.Generator) -> torch.Tensor:
    if norm == "linf":
        delta = eps * (2 * torch.rand(x.shape, generator=g) - 1)
    else:
        delta = torch.randn(x.shape, generator=g)
        delta = eps * delta / _rows(delta.flatten(1).norm(dim=1).clamp_min(1e-12), x)
    return _project(delta, x, eps, norm)


class ImageAttackResult(NamedTuple):
    """Adversarial images and how the attack got there."""

    x_adv: torch.Tensor      # (n, C, H, W) in [0, 1], inside the ball around x
    margin: torch.Tensor     # (n,) attacker's estimate of the target margin at x_adv
    trace: list[float]       # mean margin of the iterates, all runs in sequence


def apgd(pipe, x: torch.Tensor, targets: torch.Tensor, eps: float, norm: str = "l2",
         steps: int = 100, restarts: int = 1, eot: int | None = None,
         losses: Sequence[str] = ("ce", "dlr"), seed: int = 0) -> ImageAttackResult:
    """Targeted APGD with ``restarts`` runs per loss in ``losses``; keeps the best per image.

    The first restart starts at ``x``, the others at a random point of the ball.  On a
    deterministic pipeline each image keeps the iterate with the largest target margin
    seen over every iteration, restart and loss.  On a randomised one a margin estimated
    from ``eot`` draws is noisy, and the maximum over hundreds of iterates would keep the
    luckiest draw (a winner's curse measured at -4 to -8 points of success against noise
    0.4 here); instead each run offers two candidates, its last iterate and its best-loss
    iterate, and the winner per image is chosen on fresh draws (``4 eot``).
    """
    _check_norm(norm)
    bad = [v for v in losses if v not in ("ce", "dlr")]
    if bad:
        raise ValueError(f"losses={list(losses)}; expected a subset of ('ce', 'dlr')")
    n = len(x)
    noisy = bool(getattr(pipe, "randomised", False))
    sel_draws = 4 * (eot or 8)
    best_x = x.clone()
    with torch.no_grad():
        best_m = target_margin(pipe.log_probs(x, targets, sel_draws if noisy else eot), targets)
    trace: list[float] = []
    if eps <= 0 or steps <= 0:
        return ImageAttackResult(best_x, best_m, trace)
    g = torch.Generator().manual_seed(seed)
    checks = set(apgd_checkpoints(steps))

    def evaluate(z: torch.Tensor, loss: str):
        z = z.detach().requires_grad_(True)
        lp = pipe.log_probs(z, targets, eot)
        f = _objective(lp, targets, loss)
        (grad,) = torch.autograd.grad(f.sum(), z)
        return f.detach(), grad, target_margin(lp.detach(), targets)

    def offer(z: torch.Tensor, m: torch.Tensor | None) -> None:
        if m is None:  # randomised: re-estimate on fresh draws before comparing
            with torch.no_grad():
                m = target_margin(pipe.log_probs(z, targets, sel_draws), targets)
        better = m > best_m
        best_x[better] = z[better].detach()
        best_m[better] = m[better]

    for loss in losses:
        for r in range(restarts):
            cur = x.clone() if r == 0 else x + _random_start(x, eps, norm, g)
            f, grad, m = evaluate(cur, loss)
            eta = torch.full((n,), 2.0 * eps)
            f_best, x_loss_best, g_best = f.clone(), cur.clone(), grad.clone()
            f_best_ckpt = f_best.clone()
            reduced_ckpt = torch.zeros(n, dtype=torch.bool)
            n_up = torch.zeros(n)
            last_ckpt = 0
            prev = cur.clone()
            for k in range(1, steps + 1):
                with torch.no_grad():
                    z = x + _project(cur + _rows(eta, x) * _direction(grad, norm) - x, x, eps,
                                     norm)
                    if k > 1:  # momentum 0.75 (Croce & Hein 2020, eq. 2)
                        z = 0.75 * z + 0.25 * cur + 0.25 * (cur - prev)
                        z = x + _project(z - x, x, eps, norm)
                prev = cur
                cur = z
                f_new, grad, m = evaluate(cur, loss)
                if not noisy:
                    offer(cur, m)
                trace.append(float(m.mean()))
                n_up += (f_new > f).float()
                f = f_new
                up = f > f_best
                f_best = torch.where(up, f, f_best)
                x_loss_best[up] = cur[up]
                g_best[up] = grad[up]
                if k in checks:
                    osc = n_up <= 0.75 * (k - last_ckpt)
                    stall = ~reduced_ckpt & (f_best_ckpt >= f_best)
                    halve = osc | stall
                    eta = torch.where(halve, eta / 2, eta)
                    cur = torch.where(_rows(halve, x), x_loss_best, cur)
                    grad = torch.where(_rows(halve, x), g_best, grad)
                    f = torch.where(halve, f_best, f)
                    reduced_ckpt, f_best_ckpt = halve, f_best.clone()
                    n_up.zero_()
                    last_ckpt = k
            if noisy:
                offer(cur, None)
                offer(x_loss_best, None)
    return ImageAttackResult(best_x.detach(), best_m, trace)


def pgd_result(pipe, x: torch.Tensor, targets: torch.Tensor, eps: float, norm: str = "l2",
               steps: int = 30, restarts: int = 1, eot: int | None = None,
               seed: int = 0) -> ImageAttackResult:
    """:func:`pgd` wrapped as an :class:`ImageAttackResult` (margin of the returned images)."""
    xa = pgd(pipe, x, targets, eps, norm, steps, restarts, eot, seed=seed)
    with torch.no_grad():
        m = target_margin(pipe.log_probs(xa, targets, eot), targets)
    return ImageAttackResult(xa, m, [float(m.mean())])


# ---------------------------------------------------------------- Square attack


def _p_schedule(p_init: float, it: int, n_iters: int) -> float:
    """Fraction of pixels a square covers at iteration ``it`` (Andriushchenko et al., App. A)."""
    it = int(it / n_iters * 10000)
    for thr, div in ((8000, 512), (6000, 256), (4000, 128), (2000, 64), (1000, 32),
                     (500, 16), (200, 8), (50, 4), (10, 2)):
        if it > thr:
            return p_init / div
    return p_init


def _pseudo_gaussian(h: int, w: int) -> torch.Tensor:
    """Concentric rectangles weighted ``1 / (r + 1)^2``, unit L2 norm (the paper's bump)."""
    d = torch.zeros(h, w)
    ch, cw = h // 2, w // 2
    for r in range(max(h, w)):
        d[max(ch - r, 0): min(ch + r + 1, h), max(cw - r, 0): min(cw + r + 1, w)] += 1.0 / (
            r + 1) ** 2
    return d / d.norm().clamp_min(1e-12)


def _square_bump(s: int, g: torch.Generator) -> torch.Tensor:
    """``s x s`` update: two halves of opposite sign, randomly transposed, unit L2 norm."""
    d = torch.zeros(s, s)
    d[: s // 2] = _pseudo_gaussian(s // 2, s)
    d[s // 2:] = -_pseudo_gaussian(s - s // 2, s)
    d = d / d.norm().clamp_min(1e-12)
    return d.T if float(torch.rand(1, generator=g)) > 0.5 else d


def square(pipe, x: torch.Tensor, targets: torch.Tensor, eps: float, norm: str = "l2",
           queries: int = 1000, eot: int | None = None, p_init: float | None = None,
           seed: int = 0) -> ImageAttackResult:
    """Targeted Square attack (Andriushchenko et al. 2020, Algorithms 2 and 3).

    Random search that only queries ``log p(t | x)``: at each iteration a square window of
    side ``s`` (shrinking with the schedule of ``p``, the fraction of pixels it covers)
    gets a new update, ``+-eps`` for Linf, or for L2 a pseudo-Gaussian bump that takes the
    mass of the window and of a second window (set to zero) so the norm stays ``eps``; the
    candidate is kept per image when it raises the objective.  Images whose target already
    wins stop.  Returns the best images found and the trace of the mean margin.
    """
    _check_norm(norm)
    g = torch.Generator().manual_seed(seed)
    n, c, h, w = x.shape
    with torch.no_grad():
        f0 = pipe.log_probs(x, targets, eot)
    if eps <= 0 or queries <= 0:
        return ImageAttackResult(x.clone(), target_margin(f0, targets), [])
    p_init = p_init or (0.1 if norm == "l2" else 0.05)
    # initialisation: vertical stripes of +-eps (Linf) / a grid of +-bumps rescaled to eps (L2)
    if norm == "linf":
        delta = eps * torch.randint(0, 2, (n, c, 1, w), generator=g).float().mul(2).sub(1)
        delta = delta.expand(n, c, h, w).clone()
    else:
        s0 = max(2, h // 5)
        delta = torch.zeros_like(x)
        for i in range(0, h - s0 + 1, s0):
            for j in range(0, w - s0 + 1, s0):
                sign = torch.randint(0, 2, (n, c, 1, 1), generator=g).float().mul(2).sub(1)
                delta[:, :, i:i + s0, j:j + s0] += _square_bump(s0, g) * sign
        delta = eps * delta / _rows(delta.flatten(1).norm(dim=1).clamp_min(1e-12), x)
    xb = (x + delta).clamp(0, 1)
    with torch.no_grad():
        lp = pipe.log_probs(xb, targets, eot)
    fb = lp[torch.arange(n), targets]
    mb = target_margin(lp, targets)
    trace = [float(mb.mean())]
    for it in range(queries):
        act = mb <= 0
        if not act.any():
            trace.append(float(mb.mean()))
            continue
        idx = act.nonzero().squeeze(1)
        xa, xc = x[idx], xb[idx]
        dc = xc - xa
        p = _p_schedule(p_init, it, queries)
        if norm == "linf":
            s = min(max(int(round(math.sqrt(p * h * w))), 1), h - 1)
            i, j = (int(torch.randint(0, h - s + 1, (1,), generator=g)),
                    int(torch.randint(0, w - s + 1, (1,), generator=g)))
            new = dc.clone()
            sign = torch.randint(0, 2, (len(idx), c, 1, 1), generator=g).float().mul(2).sub(1)
            new[:, :, i:i + s, j:j + s] = eps * sign
        else:
            s = max(int(round(math.sqrt(p * h * w))), 3)
            s = min(s + (s % 2 == 0), h - 1)
            i, j = (int(torch.randint(0, h - s + 1, (1,), generator=g)),
                    int(torch.randint(0, w - s + 1, (1,), generator=g)))
            i2, j2 = (int(torch.randint(0, h - s + 1, (1,), generator=g)),
                      int(torch.randint(0, w - s + 1, (1,), generator=g)))
            m1 = torch.zeros(1, 1, h, w)
            m1[..., i:i + s, j:j + s] = 1
            m2 = torch.zeros(1, 1, h, w)
            m2[..., i2:i2 + s, j2:j2 + s] = 1
            both = torch.maximum(m1, m2)
            n_win = (dc * m1).flatten(2).norm(dim=2).view(-1, c, 1, 1)
            n_img = dc.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
            n_both = (dc * both).flatten(2).norm(dim=2).view(-1, c, 1, 1)
            sign = torch.randint(0, 2, (len(idx), c, 1, 1), generator=g).float().mul(2).sub(1)
            upd = _square_bump(s, g).view(1, 1, s, s) * sign
            upd = upd + dc[:, :, i:i + s, j:j + s] / (n_win + 1e-10)
            mass = ((eps ** 2 - n_img ** 2).clamp_min(0) / c + n_both ** 2).sqrt()
            upd = upd / upd.flatten(2).norm(dim=2).view(-1, c, 1, 1).clamp_min(1e-12) * mass
            new = dc.clone()
            new[:, :, i2:i2 + s, j2:j2 + s] = 0
            new[:, :, i:i + s, j:j + s] = upd
            new = eps * new / _rows(new.flatten(1).norm(dim=1).clamp_min(1e-12), x)
        xn = (xa + new).clamp(0, 1)
        with torch.no_grad():
            lp = pipe.log_probs(xn, targets[idx], eot)
        fn = lp[torch.arange(len(idx)), targets[idx]]
        better = fn > fb[idx]
        sel = idx[better]
        xb[sel] = xn[better]
        fb[sel] = fn[better]
        mb[sel] = target_margin(lp, targets[idx])[better]
        trace.append(float(mb.mean()))
    return ImageAttackResult(xb, mb, trace)


# ---------------------------------------------------------------- GCG against a mixture


class TextSide(NamedTuple):
    """One defense of a mixture as the text attack sees it."""

    weight: float               # probability the defender draws this defense
    model: object               # DualEncoder that embeds the prompts (and made image_emb)
    text_id: object             # hashable: sides with equal text_id share one text path
    ensemble: int               # prompt templates averaged per class
    cap: int | None             # untrusted-token cap (None: no cap)
    image_emb: torch.Tensor     # (T or 1, n, draws, D) attacker images, defended image path


class GCGResult(NamedTuple):
    suffixes: dict[int, torch.Tensor]  # target -> (k,) token ids
    loss: list[float]                  # mean objective over targets after each step (nats)


def _prompt_batch(model, ensemble: int, kk: int):
    """Prompt ids of every (target, template) with ``kk`` suffix slots, padded right.

    Returns ids and mask ``(T, E, L)`` and the slot positions ``(T, E, kk)``.
    """
    bank = prompt_bank(model, ensemble)
    n_t = len(bank[0])
    texts = [row[t] for t in range(n_t) for row in bank]
    ids, mask, pos = build_prompt_ids(model, texts, torch.zeros(kk, dtype=torch.long))
    return (ids.view(n_t, ensemble, -1), mask.view(n_t, ensemble, -1),
            pos.view(n_t, ensemble, kk))


def _autocast(screen: torch.dtype | None):
    """CPU autocast to ``screen`` (a no-op context for ``None``: float32 throughout)."""
    return torch.autocast("cpu", dtype=screen or torch.bfloat16, enabled=screen is not None)


class _TextGroup:
    """Sides sharing a text path, ensemble and effective suffix length ``kk``."""

    def __init__(self, side: TextSide, kk: int) -> None:
        self.model, self.ensemble, self.kk = side.model, side.ensemble, kk
        self.ids, self.mask, self.pos = _prompt_batch(side.model, side.ensemble, kk)
        self.base = class_embeddings(side.model, side.ensemble)  # (T, D)
        self.sides: list[TextSide] = []

    def embed(self, cands: torch.Tensor, screen: torch.dtype | None = None) -> torch.Tensor:
        """Class-``t`` embeddings for candidate suffixes ``(T, c, k)`` -> ``(T, c, D)``.

        ``screen``: run the text tower under CPU autocast to this dtype (e.g.
        ``torch.bfloat16``); pooling and normalisation stay in float32."""
        T, c = cands.shape[:2]
        if self.kk == 0:
            return self.base[:, None].expand(T, c, -1)
        E, L = self.ids.shape[1:]
        ids = self.ids[:, None].expand(T, c, E, L).clone()
        tok = cands[..., : self.kk][:, :, None].expand(T, c, E, self.kk)
        ids.scatter_(3, self.pos[:, None].expand(T, c, E, self.kk), tok)
        mask = self.mask[:, None].expand(T, c, E, L)
        with torch.no_grad(), _autocast(screen):
            e = self.model.encode_text(ids.reshape(-1, L), mask.reshape(-1, L))
        return F.normalize(e.float().view(T, c, E, -1).mean(2), dim=-1)

    def embed_onehot(self, onehot: torch.Tensor, w_emb: torch.Tensor) -> torch.Tensor:
        """Differentiable class-``t`` embeddings for one-hot suffixes ``(T, k, V)`` -> (T, D)."""
        if self.kk == 0:
            return self.base
        T, E, L = self.ids.shape
        emb = w_emb[self.ids].clone()  # (T, E, L, W)
        sfx = (onehot[:, : self.kk] @ w_emb)[:, None].expand(T, E, self.kk, -1)
        ti = torch.arange(T).view(T, 1, 1).expand(T, E, self.kk)
        ei = torch.arange(E).view(1, E, 1).expand(T, E, self.kk)
        emb = emb.index_put((ti, ei, self.pos), sfx.to(emb.dtype))
        e = self.model.encode_text(self.ids.view(-1, L), self.mask.view(-1, L),
                                   embeds=emb.view(T * E, L, -1))
        return F.normalize(e.float().view(T, E, -1).mean(1), dim=-1)


def _side_terms(side: TextSide, base: torch.Tensor, scale: float):
    """Per side: image embeddings and the log-sum-exp of the non-target class logits."""
    img = side.image_emb  # (T|1, n, R, D)
    T = base.shape[0]
    logits = scale * img @ base.T  # (T|1, n, R, T)
    logits = logits.expand(T, *logits.shape[1:])
    eye = torch.eye(T, dtype=torch.bool).view(T, 1, 1, T)
    others = torch.logsumexp(logits.masked_fill(eye, float("-inf")), dim=-1)  # (T, n, R)
    return img, others


def _mixture_loss(groups, terms, e_per_group, keep_w: torch.Tensor, scale: float):
    """``-sum_n w_tn log sum_i w_i E_draws p_i(t | x_n)`` for class-``t`` embeddings.

    ``e_per_group[g]`` is ``(T, c, D)``; returns the objective per (target, candidate).
    """
    prob = 0.0
    for g, group in enumerate(groups):
        for side in group.sides:
            img, others = terms[id(side)]
            s = scale * torch.einsum("tnrd,tcd->tcnr", img.expand(len(keep_w), -1, -1, -1),
                                     e_per_group[g])
            logp = s - torch.logaddexp(s, others[:, None])
            prob = prob + side.weight * logp.exp().mean(-1)  # (T, c, n)
    return -(keep_w[:, None] * torch.log(prob.clamp_min(1e-30))).sum(-1)


def _combine_swaps(sfx: torch.Tensor, cand: torch.Tensor, lc: torch.Tensor, cur: torch.Tensor,
                   where: torch.Tensor, sizes: Sequence[int]) -> torch.Tensor:
    """Candidates that apply the ``m`` best improving single swaps at distinct positions.

    For each target, single-token swaps are ranked by their loss; the best swap per
    position among those that beat the current suffix is kept, and for each ``m`` in
    ``sizes`` the ``m`` best are applied together (Jia et al. 2024, "Improved Techniques
    for Optimization-Based Jailbreaking", multi-coordinate updating).  Where fewer than
    ``m`` improve, the candidate is the current suffix itself (never accepted: no gain).
    """
    T, c, k = cand.shape
    out = sfx[:, None].repeat(1, len(sizes), 1)
    order = lc.argsort(1)
    for t in range(T):
        used: dict[int, int] = {}
        for j in order[t].tolist():
            if float(lc[t, j]) >= float(cur[t]):
                break
            pos = int(where[t, j])
            if pos not in used:
                used[pos] = int(cand[t, j, pos])
        items = list(used.items())
        for i, m in enumerate(sizes):
            if len(items) >= m:
                for pos, tok in items[:m]:
                    out[t, i, pos] = tok
    return out


def gcg_mixture(sides: Sequence[TextSide], labels: torch.Tensor, k: int, steps: int = 40,
                n_cand: int = 64, topk: int = 64, seed: int = 0,
                init: dict[int, torch.Tensor] | None = None,
                combine: Sequence[int] = (2, 4), prune: bool = True,
                screen: torch.dtype | None = None, verify: int = 2) -> GCGResult:
    """Universal ``k``-token suffix per target against a mixture of defended text paths.

    The objective is the mixture's expected targeted log-likelihood over the attacker's
    images of other classes, ``sum_n log sum_i w_i E_draws p_i(t | x_n)``, with each side's
    cap applied to the suffix (a side with cap ``c < k`` sees the first ``c`` tokens).
    Weights ``side.weight`` should sum to 1.  ``init`` warm-starts (truncated or padded).
    ``combine``: also try the ``m`` best improving swaps together, for each ``m`` (two
    more forward batches of one suffix per target; ``()`` for plain GCG).
    ``prune``: skip the forward batch of a combined size at which no target has enough
    improving swaps (every such candidate is the current suffix, whose loss is known and
    never accepted); the result is the unpruned one (``prune=False``) up to float rounding.
    Candidate scoring runs under ``torch.inference_mode``.
    ``screen``: score every candidate with the text tower in this lower precision (e.g.
    ``torch.bfloat16``, about 3x cheaper on CPUs with bf16 instructions; the token
    gradient that proposes the candidates too), then rescore the
    ``verify`` best per target in float32 and accept the best of those only if its float32
    objective beats the current suffix's: the objective, the trace and every acceptance
    stay exact; only the ranking of candidates is approximate.  ``None``: float32 throughout.
    """
    if k <= 0:
        return GCGResult({}, [])
    if not sides:
        raise ValueError("gcg_mixture needs at least one TextSide")
    g = torch.Generator().manual_seed(seed)
    model0 = sides[0].model
    w_emb = model0.input_embedding().weight.detach()
    allowed = model0.candidate_tokens()
    block = torch.ones(w_emb.shape[0], dtype=torch.bool)
    block[allowed] = False
    scale = float(model0.logit_scale)
    groups: dict[tuple, _TextGroup] = {}
    for side in sides:
        kk = k if side.cap is None else min(k, int(side.cap))
        key = (side.text_id, side.ensemble, kk)
        if key not in groups:
            groups[key] = _TextGroup(side, kk)
        groups[key].sides.append(side)
    glist = list(groups.values())
    terms = {id(s): _side_terms(s, grp.base, scale) for grp in glist for s in grp.sides}
    T = glist[0].base.shape[0]
    keep = (labels[None, :] != torch.arange(T)[:, None]).to(w_emb.dtype)  # (T, n)
    keep_w = keep / keep.sum(1, keepdim=True).clamp_min(1.0)

    sfx = torch.full((T, k), int(allowed[len(allowed) // 2]), dtype=torch.long)
    for t, ids in (init or {}).items():
        m = min(k, int(ids.numel()))
        sfx[t, :m] = ids[:m]

    def losses(cands: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
        with torch.inference_mode():
            return _mixture_loss(glist, terms, [grp.embed(cands, dtype) for grp in glist],
                                 keep_w, scale)

    cur = losses(sfx[:, None])[:, 0]
    trace = [float(cur.mean())]
    rows = torch.arange(T)[:, None]
    for _ in range(steps):
        onehot = F.one_hot(sfx, w_emb.shape[0]).to(w_emb.dtype).requires_grad_(True)
        with _autocast(screen):
            e = [grp.embed_onehot(onehot, w_emb)[:, None] for grp in glist]
        total = _mixture_loss(glist, terms, e, keep_w, scale).sum()
        (grad,) = torch.autograd.grad(total, onehot)
        grad = grad.masked_fill(block, float("inf"))
        top = (-grad).topk(topk, dim=-1).indices  # (T, k, topk)
        where = torch.randint(k, (T, n_cand), generator=g)
        pick = torch.randint(topk, (T, n_cand), generator=g)
        cand = sfx[:, None].repeat(1, n_cand, 1)
        cand.scatter_(2, where[..., None], top[rows, where, pick][..., None])
        lc = losses(cand, screen)
        # the current suffix's objective on the candidates' scale
        ref = cur if screen is None else losses(sfx[:, None], screen)[:, 0]
        if combine and k > 1:  # multi-coordinate: merge the best improving swaps
            combo = _combine_swaps(sfx, cand, lc, ref, where, combine)
            if prune:  # a size where every target's combination is its current suffix
                combo = combo[:, (combo != sfx[:, None]).any(-1).any(0)]
            if combo.shape[1]:
                cand = torch.cat([cand, combo], 1)
                lc = torch.cat([lc, losses(combo, screen)], 1)
        if screen is not None:  # rescore the best few in float32
            top_v = lc.topk(min(verify, lc.shape[1]), dim=1, largest=False).indices
            cand = cand[rows, top_v]
            lc = losses(cand)
        j = lc.argmin(1)
        best = lc[torch.arange(T), j]
        better = best < cur
        sfx = torch.where(better[:, None], cand[torch.arange(T), j], sfx)
        cur = torch.where(better, best, cur)
        trace.append(float(cur.mean()))
    return GCGResult({t: sfx[t].clone() for t in range(T)}, trace)


def plateaued(before: float, after: float, tol: float, atol: float = 0.0,
              floor: float = 0.0) -> bool:
    """Did a chunk of GCG steps stop paying (docs/validation.md §5.3)?

    The objective is a negative log-likelihood in nats (>= 0).  A plateau is any of: the
    chunk's relative gain ``(before - after) / before`` below ``tol``; its absolute gain
    ``before - after`` below ``atol`` nats (an objective already near 0 keeps a large
    relative gain while nothing is left to win); the objective at or below ``floor``
    (:func:`reached_floor`: every target already the attacker's most likely answer).
    ``before <= 0`` (nothing left to gain) counts as a plateau.
    """
    if before <= 0 or after <= floor:
        return True
    gain = before - after
    return gain < atol or gain / before < tol


def reached_floor(labels: torch.Tensor, n_targets: int) -> float:
    """The objective below which every target already wins on the attacker's images, nats.

    The objective is ``(1/T) sum_t sum_n w_tn l_tn`` with ``w_tn = 1/n_t`` over the ``n_t``
    attacker images not of class ``t`` and ``l_tn = -ln p(t | x_n) >= 0``, so every
    ``l_tn <= T max_t n_t`` times the objective.  Below ``ln 2 / (T max_t n_t)`` every
    ``p(t | x_n) > 1/2`` (the mixture's and draws' expected probability; for one
    deterministic side, target ``t`` is the top answer on every attacker image), so more
    steps cannot raise the attacker's own success rate.
    """
    n_t = (labels[None, :] != torch.arange(n_targets)[:, None]).sum(1)
    worst = int(n_t.max()) if n_targets > 0 else 0
    return math.log(2.0) / (n_targets * worst) if worst > 0 else 0.0


def gcg_plateau(sides: Sequence[TextSide], labels: torch.Tensor, k: int, steps: int,
                chunk: int, extra: int, tol: float, seed: int = 0,
                init: dict[int, torch.Tensor] | None = None, atol: float = 0.0,
                **kw) -> GCGResult:
    """:func:`gcg_mixture` for ``steps``, then up to ``extra`` more steps in chunks of
    ``chunk`` until a chunk plateaus (:func:`plateaued`: relative gain below ``tol``; with
    ``atol > 0`` also an absolute gain below ``atol`` nats or the objective below
    :func:`reached_floor`).  ``extra = 0`` is the fixed budget; ``tol = atol = 0`` with
    ``extra > 0`` runs every extra step.  Each chunk continues from the previous
    suffixes with its own candidate draws (seed ``seed + 1009 j``).
    """
    res = gcg_mixture(sides, labels, k, steps=steps, seed=seed, init=init, **kw)
    sfx, trace = res.suffixes, list(res.loss)
    floor = reached_floor(labels, len(sfx)) if sfx and atol > 0 else 0.0
    chunk, done, j = max(int(chunk), 1), 0, 0
    while k > 0 and done < extra:
        if plateaued(trace[max(len(trace) - 1 - chunk, 0)], trace[-1], tol, atol, floor):
            break
        j += 1
        n = min(chunk, extra - done)
        res = gcg_mixture(sides, labels, k, steps=n, seed=seed + 1009 * j, init=sfx, **kw)
        sfx, trace, done = res.suffixes, trace + list(res.loss[1:]), done + n
    return GCGResult(sfx, trace)


def image_side_embeddings(pipe, x: torch.Tensor, draws: int) -> torch.Tensor:
    """Unit image embeddings through a pipeline's defended image path, ``(n, R, D)``.

    ``R = draws`` noise draws for a randomised defense, else 1.
    """
    r = draws if pipe.randomised else 1
    with torch.no_grad():
        z = [pipe.model.encode_image(purify(x, pipe.d, pipe.mask, pipe.gen)) for _ in range(r)]
    return torch.stack(z, 1)
