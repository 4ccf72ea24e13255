"""The bundled dual encoder (8x8 digits, MiniLM text tower) as a validation target.

Channels ``("image", "text")``.  Attacker power: the squared L2 radius of the image
perturbation (``P_image``, pixels in [0, 1]) and ``token_power`` per suffix token the
attacker appends to every prompt template of its target class (``P_text = token_power *
k``).  Levers and knobs (:mod:`minimax.validate.knobs`):

=========  ================================  =================================
lever      knob                              lever amount
=========  ================================  =================================
n_image    Gaussian noise std (EOT-averaged)  ``std / units["n"]``
s_image    adversarial fine-tuning radius     ``adv_eps / units["s"]``
b_image    pixel mask, fraction kept          ``-ln(pixel_keep)``
s_text     prompt ensemble size               ``(ensemble - 1) / units["ensemble"]``
b_text     untrusted-token cap                ``ln(k_max / token_cap)``
=========  ================================  =================================

**Menu** (:meth:`DigitsTarget.menu`): "no defense", each lever alone at the whole budget,
and six half-and-half pairs (noise+mask, fine-tuning+cap, noise+fine-tuning,
fine-tuning+mask, mask+cap, noise+cap): at most 12 rows.  Knobs are rounded *down* to
what is realisable (fine-tuning radii to the ``s_grid`` the tower cache holds, ensembles
to integers, caps up to the next integer) so every row's lever sum is <= the budget;
rows that coincide after rounding are kept once.

**Attack** (:meth:`DigitsTarget.attack`): the attacker oracle, against a mixture of
defenses ``[(weight, Knobs), ...]`` (the objective is the mixture's expected targeted
log-probability ``log sum_i w_i p_i(t | x)``; a one-defense mixture is the plain attack):

1. *cap-aware budget*: ``k = floor(P_text / token_power)`` tokens are requested; a cap
   keeps ``c`` of them in every defense of the mixture (``c`` = the largest cap drawn;
   no cap = all), so the attacker buys ``min(k, c)`` tokens and moves the rest of its text
   power (and any remainder below one token) to the image;
2. *text* (when tokens are bought): GCG (:func:`~minimax.validate.attacks.gcg_mixture`)
   against every defended text path of the mixture (its ensemble, its cap) on the
   attacker's own images through every defended image path (its tower, mask, noise
   draws): never transferred from the undefended model;
3. *joint* (tokens and image power): ``rounds`` alternations on one objective: image
   attack on the attacker's images toward each target under the current suffix, then
   ``text_steps / rounds`` GCG steps on those perturbed images; finally
4. *image*: the image attack on the evaluation images under the final suffix.

``options`` (unknown keys raise ``ValueError``):

* ``recipe``: ``"auto"`` (``"apgd"``; against a randomised defense fixed-step PGD-EOT
  alone, which measured stronger there than the best per image of APGD and PGD, see
  ``random_scale``), ``"apgd"`` (APGD-CE then APGD-DLR, best per image), ``"apgd-ce"``,
  ``"apgd-dlr"``, ``"pgd"`` (fixed-step PGD, the baseline), ``"square"`` (gradient-free;
  ``steps`` counts its queries);
* ``steps``, ``restarts``: image-attack iterations and restarts per loss;
* ``eot``: noise draws per gradient against randomised defenses;
* ``random_scale``: an integer ``f >= 1``: against a randomised defense (noise
  purification anywhere in the mixture) the image attack runs ``f`` times ``steps`` and
  ``eot`` (the noise makes each step's gradient an estimate; docs/validation.md §5.3);
* ``text_steps``, ``n_cand``, ``topk``: GCG steps, candidates per step, top tokens;
* ``text_max``, ``text_tol``: after ``text_steps``, GCG's last round continues in chunks of
  ``text_steps / 2`` steps while a chunk lowers its objective by at least the fraction
  ``text_tol``, up to ``text_max`` steps in all (:func:`~minimax.validate.attacks.gcg_plateau`;
  ``text_max = 0``: the fixed budget ``text_steps``);
* ``text_atol``: also stop when a chunk lowers the objective by less than ``text_atol``
  nats, or once it is below the floor at which every target already wins on every
  attacker image (:func:`~minimax.validate.attacks.reached_floor`); ``0``: off;
* ``text_alone``: an integer ``f >= 1``: text alone (no image power) runs GCG at ``f`` times
  ``text_steps`` and ``text_max`` and ``1/f`` times ``text_tol`` and ``text_atol``
  (:func:`gcg_budget`): with no image perturbation the suffix is the whole attack and
  against a fine-tuned image tower it keeps gaining after the joint attacks' plateau;
* ``text_screen``: ``"float32"``, ``"bfloat16"`` or ``"auto"`` (bfloat16 where the CPU has
  bf16 instructions): the precision in which GCG ranks its candidates; the ``text_verify``
  best per target are rescored in float32 and only a float32 gain is accepted
  (:func:`~minimax.validate.attacks.gcg_mixture`);
* ``rounds``: joint alternations; ``norm``: ``"l2"`` or ``"linf"`` (Linf radius with the
  same L2 envelope, ``sqrt(P / 64)``).

Defaults (:data:`ATTACK_DEFAULTS`) are the budgets at which bits stopped moving within
their CI in ``experiments/validate_attack_convergence.py`` (results in
``experiments/results/validate_attack_convergence.md``; 50 images x 10 targets, P_image = 1
unless stated): APGD 50 -> 100 steps moved bits by -0.004 to +0.056 under no defense,
noise 0.2, fine-tuning 0.5 and mask 0.37; 1 -> 4 restarts by <= 0.02; EOT 16 -> 32 draws by
+0.057 (noise 0.2) and -0.004 (noise 0.4); joint rounds 2 -> 4 by +0.01; Square (1000
queries) stayed below APGD under every defense; an unbounded attack (P = 64) reached 100%
targeted success under every image defense.  GCG is the slow part: in the joint attack
(P_image = 0.5, 8 tokens) 16 -> 32 steps still added +0.06 to +0.2 bits (inside the CI of
about +-0.35); text alone with 8 tokens stays below 0.1 bits.  Cost on 2 busy cores, 50
images: an image attack 2-4 s deterministic, ~25 s against noise (EOT 16, APGD + PGD); a
joint attack with 32 GCG steps 60-220 s (an ensemble of 3 templates triples the text cost).

**Evaluate**: the defended system answers every evaluation image under the attack toward
each of the ten targets; noise draws are seeded by ``seed`` (the attack's own draws use
another stream, so the attacker never sees the draws it is scored on).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from typing import Any, NamedTuple

import numpy as np
import torch

from minimax.validate import attacks as atk
from minimax.validate.data import load_digits_split
from minimax.validate.game_bridge import realise as realise_levers
from minimax.validate.knobs import Knobs, lever_values, pixel_order
from minimax.validate.model import MODEL_VERSION, DigitsCLIPConfig, build_digits_clip
from minimax.validate.pipeline import MixturePipeline, Pipeline
from minimax.validate.target import Attack, Outcome

K = 10
LEVERS = ("n_image", "s_image", "b_image", "s_text", "b_text")
SPLITS = ("calib", "held", "attack")
RECIPES = ("auto", "apgd", "apgd-ce", "apgd-dlr", "pgd", "square")
# Converged budgets on 2 CPU cores (experiments/results/validate_attack_convergence.md).
ATTACK_DEFAULTS: dict[str, Any] = {
    "recipe": "auto", "steps": 50, "restarts": 1, "eot": 16, "text_steps": 32,
    "n_cand": 16, "topk": 64, "rounds": 2, "norm": "l2", "text_max": 0, "text_tol": 0.0,
    "text_atol": 0.0, "text_alone": 1, "text_screen": "auto", "text_verify": 2,
    "random_scale": 1,
}
SCREENS = {"float32": None, "bfloat16": torch.bfloat16}
DEFAULT_UNITS = {"purify": "noise", "n": 0.2, "n_max": 0.8, "s": 0.5, "s_grid": 0.25,
                 "ensemble": 2.0, "keep_min": 0.2}
MENU_PAIRS = (("n_image", "b_image"), ("s_image", "b_text"), ("n_image", "s_image"),
              ("s_image", "b_image"), ("b_image", "b_text"), ("n_image", "b_text"))


def gcg_budget(o: Mapping[str, Any], alone: bool) -> dict[str, Any]:
    """GCG's budget for one text stage: ``o`` as given for a joint attack; for text alone
    (no image power) ``text_alone`` = f times the minimum and maximum steps and 1/f the
    plateau thresholds (docs/validation.md §5.3).  Nothing else changes."""
    f = int(o["text_alone"]) if alone else 1
    if f == 1:
        return dict(o)
    return {**o, "text_steps": o["text_steps"] * f, "text_max": o["text_max"] * f,
            "text_tol": o["text_tol"] / f, "text_atol": o["text_atol"] / f}


def screen_dtype(name: str) -> torch.dtype | None:
    """GCG's candidate-screening precision: ``"auto"`` is bfloat16 where the CPU has
    native bf16 instructions (oneDNN reports support), else float32 (``None``)."""
    if name == "auto":
        name = "bfloat16" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else "float32"
    return SCREENS[name]


class DigitsPayload(NamedTuple):
    """What :meth:`DigitsTarget.evaluate` applies."""

    split: str                           # evaluation images the deltas belong to
    x_adv: torch.Tensor                  # (n * 10, 1, 8, 8): image i toward target t at i*10+t
    suffixes: dict[int, torch.Tensor]    # target -> (k,) token ids (empty: no text attack)
    tokens: int                          # suffix length bought


def describe(d: Knobs) -> str:
    """A short row name for a defense: its non-default knobs, or ``"no defense"``."""
    parts = []
    if d.purify != "none" and d.level > 0:
        parts.append(f"{d.purify} {d.level:.2g}")
    if d.adv_eps > 0:
        parts.append(f"adv-ft {d.adv_eps:g}")
    if d.pixel_keep < 1:
        parts.append(f"mask {d.pixel_keep:.2f}")
    if d.ensemble > 1:
        parts.append(f"ensemble {d.ensemble}")
    if d.token_cap is not None:
        parts.append(f"cap {d.token_cap}")
    return " + ".join(parts) or "no defense"


class DigitsTarget:
    """The digits dual encoder under the five levers; see the module docstring."""

    name = "digits"
    n_classes = K
    channels = ("image", "text")
    levers = LEVERS

    #: what a stored result was measured on (minimax.validate.store): the towers' build
    fingerprint: str | None = f"digits towers v{MODEL_VERSION}"

    def __init__(self, *, seed: int = 0, data: Mapping[str, int] | None = None,
                 model: Mapping[str, Any] | None = None,
                 units: Mapping[str, Any] | None = None, k_max: int = 8,
                 token_power: float = 0.125, draws: int = 8,
                 attack_defaults: Mapping[str, Any] | None = None) -> None:
        if token_power <= 0 or not math.isfinite(token_power):
            raise ValueError(f"token_power={token_power}; expected a finite value > 0")
        if k_max < 1:
            raise ValueError(f"k_max={k_max}; expected an integer >= 1")
        data = {"n_attack": 64, "n_calib": 100, "n_held": 100, **dict(data or {})}
        self.seed = int(seed)
        self.split = load_digits_split(seed=self.seed, **data)
        self.model_cfg = DigitsCLIPConfig(**dict(model or {}))
        self._set_attack_settings(units, k_max, token_power, draws, attack_defaults)
        self._models: dict[float, Any] = {}
        self._text_cache: dict[tuple, tuple[dict[int, torch.Tensor], list[float]]] = {}

    def _set_attack_settings(self, units, k_max, token_power, draws, attack_defaults) -> None:
        """Lever units, text budget, smoothing draws, attack defaults and the pixel order."""
        self.units = {**DEFAULT_UNITS, **dict(units or {})}
        self.k_max = int(k_max)
        self.token_power = float(token_power)
        self.draws = int(draws)
        self.defaults = self._options(attack_defaults, base=ATTACK_DEFAULTS)
        self.order = pixel_order(self.split.x_train)

    @classmethod
    def from_config(cls, cfg) -> DigitsTarget:
        """Build from a validation config (``seed``, ``data``, ``model``, ``levers``, ``text``)."""
        text = cfg.get("text", {}) or {}
        return cls(seed=int(cfg.get("seed", 0)), data=dict(cfg.get("data", {}) or {}),
                   model=dict(cfg.get("model", {}) or {}),
                   units=dict(cfg.get("levers", {}) or {}),
                   k_max=int(text.get("k_max", 8)),
                   token_power=float(text.get("token_power", 0.125)),
                   draws=int(cfg.get("draws", 8)),
                   attack_defaults=dict(cfg.get("attack_options", {}) or {}))

    # ------------------------------------------------------------ model and data

    def model(self, adv_eps: float):
        """The (cached) tower fine-tuned at radius ``adv_eps`` (0: the base model)."""
        adv_eps = float(adv_eps)
        if adv_eps not in self._models:
            from filelock import FileLock

            from minimax.validate._cache import cache_dir, config_hash

            mc = DigitsCLIPConfig(**{**asdict(self.model_cfg), "adv_eps": adv_eps})
            # one process trains a missing tower; the others wait and read it from the cache
            lock = cache_dir() / f"digits-build-{config_hash(asdict(mc))}.lock"
            with FileLock(str(lock)):
                self._models[adv_eps] = build_digits_clip(self.split, mc)
        return self._models[adv_eps]

    def images(self, split: str) -> tuple[torch.Tensor, np.ndarray]:
        if split not in SPLITS:
            raise ValueError(f"split={split!r}; expected one of {SPLITS}")
        return (torch.from_numpy(getattr(self.split, f"x_{split}")),
                getattr(self.split, f"y_{split}"))

    def _text_id(self, adv_eps: float) -> float:
        """Towers whose text path equals the base model's share one text id (0.0)."""
        m, base = self.model(adv_eps), self.model(0.0)
        same = all(torch.equal(a, b) for a, b in zip(m.text_proj.parameters(),
                                                     base.text_proj.parameters(), strict=True))
        return 0.0 if same and m.text is base.text else float(adv_eps)

    # ------------------------------------------------------------ levers and menu

    def realise(self, levers: Mapping[str, float]) -> Knobs:
        bad = sorted(set(levers) - set(LEVERS))
        if bad:
            raise ValueError(f"levers {bad} are not levers of the digits target {LEVERS}")
        return realise_levers(dict(levers), self.units, self.k_max, Knobs(draws=self.draws))

    def lever_values(self, knobs: Knobs) -> dict[str, float]:
        return lever_values(knobs, self.units, self.k_max)

    def realise_within(self, levers: Mapping[str, float]) -> Knobs:
        """Like :meth:`realise` but rounding every knob so no lever exceeds its request."""
        u = self.units
        n = min(levers.get("n_image", 0.0) * u["n"], u.get("n_max", 1.0))
        grid = u.get("s_grid", 0.25)
        s_eps = math.floor(levers.get("s_image", 0.0) * u["s"] / grid + 1e-9) * grid
        keep = float(np.clip(math.exp(-levers.get("b_image", 0.0)), u.get("keep_min", 0.1), 1))
        ens = int(np.clip(1 + math.floor(levers.get("s_text", 0.0) * u["ensemble"] + 1e-9), 1, 5))
        cap = math.ceil(self.k_max * math.exp(-levers.get("b_text", 0.0)) - 1e-9)
        return Knobs(purify=u.get("purify", "noise") if n > 0 else "none", level=float(n),
                       draws=self.draws, pixel_keep=keep, adv_eps=float(s_eps), ensemble=ens,
                       token_cap=None if cap >= self.k_max else cap)

    def menu(self, budget: float) -> dict[str, Knobs]:
        """No defense, each lever alone at ``budget``, six half-half pairs (lever sum <= budget)."""
        if not budget >= 0 or not math.isfinite(budget):
            raise ValueError(f"budget={budget}; expected a finite value >= 0")
        asks: list[dict[str, float]] = [{}]
        asks += [{lv: budget} for lv in LEVERS]
        asks += [{a: budget / 2, b: budget / 2} for a, b in MENU_PAIRS]
        out: dict[str, Knobs] = {}
        seen = set()
        for ask in asks:
            d = self.realise_within(ask)
            if d.key() in seen or sum(self.lever_values(d).values()) > budget + 1e-9:
                continue
            seen.add(d.key())
            out[describe(d)] = d
        return out

    # ------------------------------------------------------------ the attacker oracle

    def _options(self, options: Mapping[str, Any] | None,
                 base: Mapping[str, Any] | None = None) -> dict[str, Any]:
        base = dict(base if base is not None else self.defaults)
        bad = sorted(set(options or {}) - set(ATTACK_DEFAULTS))
        if bad:
            raise ValueError(f"attack options {bad} unknown; expected keys of "
                             f"{sorted(ATTACK_DEFAULTS)}")
        out = {**base, **dict(options or {})}
        if out["recipe"] not in RECIPES:
            raise ValueError(f"options['recipe']={out['recipe']!r}; expected one of {RECIPES}")
        if out["norm"] not in ("l2", "linf"):
            raise ValueError(f"options['norm']={out['norm']!r}; expected 'l2' or 'linf'")
        zero_ok = ("steps", "text_steps", "text_max")
        if out["text_screen"] not in (*SCREENS, "auto"):
            raise ValueError(f"options['text_screen']={out['text_screen']!r}; expected one of "
                             f"{[*SCREENS, 'auto']}")
        for key in ("steps", "restarts", "eot", "text_steps", "n_cand", "topk", "rounds",
                    "text_max", "text_alone", "text_verify", "random_scale"):
            v = out[key]
            if isinstance(v, bool) or int(v) != v or v < (0 if key in zero_ok else 1):
                raise ValueError(f"options[{key!r}]={v!r}; expected an integer >= "
                                 f"{0 if key in zero_ok else 1}")
            out[key] = int(v)
        for key in ("text_tol", "text_atol"):
            tol = out[key]
            if isinstance(tol, bool) or not (float(tol) >= 0 and math.isfinite(float(tol))):
                raise ValueError(f"options[{key!r}]={tol!r}; expected a finite number >= 0")
            out[key] = float(tol)
        return out

    def _mixture(self, mixture: Sequence[tuple[float, Knobs]]) -> list[tuple[float, Knobs]]:
        mix = [(float(w), d) for w, d in mixture]
        if not mix or any(not isinstance(d, Knobs) for _, d in mix):
            raise ValueError("mixture must be a non-empty sequence of (weight, Knobs)")
        w = np.array([m[0] for m in mix])
        if (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"mixture weights={w.tolist()}; expected finite, >= 0, sum > 0")
        return [(wi / w.sum(), d) for wi, d in mix if wi > 0]

    def budget_split(self, mixture: Sequence[tuple[float, Knobs]],
                     power: Mapping[str, float]) -> tuple[float, int]:
        """Cap-aware budget: (image power, tokens) the attacker actually spends.

        Tokens beyond the largest cap in the mixture are never bought; their power and any
        remainder below one token move to the image.
        """
        bad = sorted(set(power) - set(self.channels))
        if bad:
            raise ValueError(f"power channels {bad} unknown; expected {self.channels}")
        p_img, p_txt = float(power.get("image", 0.0)), float(power.get("text", 0.0))
        if not (p_img >= 0 and p_txt >= 0 and math.isfinite(p_img) and math.isfinite(p_txt)):
            raise ValueError(f"power={dict(power)}; expected finite values >= 0")
        k = int(math.floor(p_txt / self.token_power + 1e-9))
        caps = [d.token_cap for _, d in self._mixture(mixture)]
        if all(c is not None for c in caps):
            k = min(k, max(caps))
        return p_img + (p_txt - k * self.token_power), k

    def _pipes(self, mix, suffixes, seed: int) -> MixturePipeline:
        return MixturePipeline([(w, Pipeline(self.model(d.adv_eps), d, self.order, suffixes,
                                             seed=seed)) for w, d in mix])

    def _image_attack(self, pipe, x, t, eps: float, o: dict, seed: int) -> atk.ImageAttackResult:
        r, norm = o["recipe"], o["norm"]
        steps, eot = o["steps"], o["eot"]
        if pipe.randomised:
            steps, eot = steps * o["random_scale"], eot * o["random_scale"]
        if r == "pgd" or (r == "auto" and pipe.randomised and eps > 0):
            # against randomised defenses APGD's step-size rule reads noisy losses, and
            # picking per image between it and PGD on estimated margins lost to PGD alone by
            # 0.05 bits at noise 0.4 (docs/validation.md §5.3): fixed steps average the noise
            return atk.pgd_result(pipe, x, t, eps, norm, steps, o["restarts"], eot, seed=seed)
        if r == "square":
            return atk.square(pipe, x, t, eps, norm, queries=steps, eot=eot, seed=seed)
        losses = {"apgd-ce": ("ce",), "apgd-dlr": ("dlr",)}.get(r, ("ce", "dlr"))
        return atk.apgd(pipe, x, t, eps, norm, steps, o["restarts"], eot, losses, seed=seed)

    def _eps(self, p_img: float, norm: str) -> float:
        d = int(np.prod(self.model(0.0).image_shape))
        return math.sqrt(p_img) if norm == "l2" else math.sqrt(p_img / d)

    def text_sides(self, mix, x_att: torch.Tensor, per_target: bool, eot: int,
                   seed: int) -> list[atk.TextSide]:
        """The mixture's defenses as GCG sees them, on attacker images ``x_att``.

        ``per_target``: ``x_att`` is ``(n_a * 10, ...)``, image ``i`` perturbed toward target
        ``t`` at row ``i * 10 + t``; else ``(n_a, ...)`` clean images shared by all targets.
        """
        sides = []
        for w, d in mix:
            p = Pipeline(self.model(d.adv_eps), d, self.order, seed=seed)
            z = atk.image_side_embeddings(p, x_att, eot)  # (rows, R, D)
            z = z.view(-1, self.n_classes, *z.shape[1:]).transpose(0, 1) if per_target else z[None]
            sides.append(atk.TextSide(w, p.model, self._text_id(d.adv_eps), d.ensemble,
                                      d.token_cap, z))
        return sides

    def inner_options(self, o: Mapping[str, Any]) -> dict[str, Any]:
        """Image attack on the attacker's own images inside a joint round.

        It only has to put the suffix's images where the final attack will take them, so it
        runs the cheaper half: APGD-CE (or the recipe's own optimiser for ``pgd`` and
        ``square``), half the steps, one restart, a quarter of the EOT draws.
        """
        rec = o["recipe"] if o["recipe"] in ("pgd", "square", "apgd-dlr") else "apgd-ce"
        return {**o, "recipe": rec, "steps": max(1, o["steps"] // 2), "restarts": 1,
                "eot": max(1, o["eot"] // 4)}

    @staticmethod
    def _text_key(mix, k: int, eps: float, o: Mapping[str, Any]) -> tuple:
        return (tuple((round(w, 12), d.key()) for w, d in mix), k, round(eps, 12),
                tuple(sorted(o.items())))

    def work_key(self, mixture: Sequence[tuple[float, Knobs]], power: Mapping[str, float],
                 options: Mapping[str, Any] | None = None) -> tuple | None:
        """Attacks with equal keys share their text stage (one GCG run, cached in this
        process): a parallel runner measures them in one process.  ``None``: no text."""
        o = self._options(options)
        mix = self._mixture(mixture)
        p_img, k = self.budget_split(mix, power)
        return self._text_key(mix, k, self._eps(p_img, o["norm"]), o) if k > 0 else None

    def _text_stage(self, mix, k: int, eps: float, o: dict, seed: int):
        """Suffixes co-optimised with the attacker's own image perturbations (cached)."""
        key = (*self._text_key(mix, k, eps, o), seed)
        if key in self._text_cache:
            return self._text_cache[key]
        xa, ya = self.images("attack")
        K = self.n_classes
        x_rep, t_rep = xa.repeat_interleave(K, 0), torch.arange(K).repeat(len(xa))
        rounds = o["rounds"] if eps > 0 else 1
        o = gcg_budget(o, alone=eps <= 0)
        per = math.ceil(o["text_steps"] / rounds)
        sfx: dict[int, torch.Tensor] | None = None
        trace: list[float] = []
        for r in range(rounds):
            x_att = xa
            if eps > 0:
                pipe = self._pipes(mix, sfx, seed=seed * 7919 + 101 + r)
                x_att = self._image_attack(pipe, x_rep, t_rep, eps, self.inner_options(o),
                                           seed + r).x_adv
            sides = self.text_sides(mix, x_att, eps > 0, o["eot"], seed * 7919 + 202 + r)
            extra = o["text_max"] - o["text_steps"] if r == rounds - 1 else 0
            res = atk.gcg_plateau(sides, torch.from_numpy(ya), k, steps=per,
                                  chunk=max(1, math.ceil(o["text_steps"] / 2)),
                                  extra=max(extra, 0), tol=o["text_tol"], atol=o["text_atol"],
                                  n_cand=o["n_cand"], topk=o["topk"], seed=seed + 31 * r,
                                  init=sfx, screen=screen_dtype(o["text_screen"]),
                                  verify=o["text_verify"])
            sfx = res.suffixes
            trace += res.loss
        self._text_cache[key] = (sfx or {}, trace)
        return self._text_cache[key]

    def attack_images(self, mix, suffixes: dict[int, torch.Tensor], split: str, p_img: float,
                      options: Mapping[str, Any], seed: int) -> atk.ImageAttackResult:
        """Image attack on ``split``'s images toward every target, under fixed suffixes."""
        o = self._options(options)
        x, _ = self.images(split)
        K = self.n_classes
        xx, tt = x.repeat_interleave(K, 0), torch.arange(K).repeat(len(x))
        pipe = self._pipes(self._mixture(mix), suffixes, seed=seed * 7919 + 303)
        return self._image_attack(pipe, xx, tt, self._eps(p_img, o["norm"]), o, seed)

    def attack(self, mixture: Sequence[tuple[float, Knobs]], power: Mapping[str, float], *,
               split: str, seed: int, options: Mapping[str, Any] | None = None) -> Attack:
        """The attacker oracle against ``mixture`` with ``power``; see the module docstring."""
        t0 = time.perf_counter()
        o = self._options(options)
        mix = self._mixture(mixture)
        p_img, k = self.budget_split(mix, power)
        self.images(split)  # a bad split fails before any work
        sfx: dict[int, torch.Tensor] = {}
        text_trace: list[float] = []
        if k > 0:
            sfx, text_trace = self._text_stage(mix, k, self._eps(p_img, o["norm"]), o, seed)
        res = self.attack_images(mix, sfx, split, p_img, o, seed)
        label = f"{o['recipe']} P_img={p_img:.3g} k={k}" + (
            "" if len(mix) == 1 else f" vs mixture of {len(mix)}")
        trace = {"image_margin": res.trace, "text_loss": text_trace,
                 "attacker_success": [float((res.margin > 0).float().mean())],
                 "seconds": [time.perf_counter() - t0]}
        return Attack(label, {"image": p_img, "text": k * self.token_power},
                      DigitsPayload(split, res.x_adv, sfx, k), trace)

    # ------------------------------------------------------------ answers

    def evaluate(self, attack: Attack, knobs: Knobs, *, split: str, seed: int) -> Outcome:
        pay = attack.payload
        if not isinstance(pay, DigitsPayload):
            raise ValueError(f"attack.payload is {type(pay).__name__}; expected DigitsPayload")
        if pay.split != split:
            raise ValueError(f"attack was optimised on split {pay.split!r}; evaluate(split="
                             f"{split!r}) needs an attack on those images")
        pipe = Pipeline(self.model(knobs.adv_eps), knobs, self.order, pay.suffixes, seed=seed)
        K = self.n_classes
        n = len(pay.x_adv) // K
        t = torch.arange(K).repeat(n)
        pred = pipe.predict(pay.x_adv, t)
        return Outcome(t.numpy().reshape(n, K), pred.reshape(n, K), K)

    def clean(self, knobs: Knobs, *, split: str, seed: int) -> Outcome:
        x, y = self.images(split)
        pipe = Pipeline(self.model(knobs.adv_eps), knobs, self.order, seed=seed)
        pred = pipe.predict(x, torch.zeros(len(x), dtype=torch.long))
        return Outcome(y.reshape(-1, 1), pred.reshape(-1, 1), self.n_classes)
