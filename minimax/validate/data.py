"""Data for the validation model: scikit-learn's 8x8 digits and the class prompts.

Images are scaled to [0, 1] (the raw digits take values 0..16), shape ``(n, 1, 8, 8)``.
The split is fixed by a seed: a training set for the image tower, an attacker set (the
images a universal text attack is optimised on) and two disjoint evaluation sets, one
for calibration conditions and one for held-out conditions.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

CLASS_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

# Templates the image tower is trained against (all of them, contrastively).
TRAIN_TEMPLATES = (
    "a photo of the digit {}.",
    "a handwritten {}.",
    "the number {}.",
    "an image of the digit {}.",
    "a scan of a handwritten {}.",
    "a low resolution picture of the number {}.",
)
# The zero-shot prompt used at evaluation; prompt ensembling adds the others in order.
EVAL_TEMPLATES = (
    "a picture of the digit {}",
    "a drawing of the number {}",
    "a digit {} written by hand",
    "a blurry photo of a {}",
    "the handwritten number {}",
)


def class_prompts(model) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Class names and evaluation templates of ``model``'s zero-shot classifier.

    A model carries its own as ``class_names`` / ``templates`` attributes (a user's CLIP);
    the bundled digits model uses :data:`CLASS_NAMES` and :data:`EVAL_TEMPLATES`.
    """
    return (tuple(getattr(model, "class_names", None) or CLASS_NAMES),
            tuple(getattr(model, "templates", None) or EVAL_TEMPLATES))


class Split(NamedTuple):
    x_train: np.ndarray   # (n, 1, 8, 8) float32 in [0, 1]
    y_train: np.ndarray   # (n,) int64 class labels 0..9
    x_attack: np.ndarray  # attacker's own images (universal text suffixes are fit on these)
    y_attack: np.ndarray
    x_calib: np.ndarray   # evaluation images for calibration conditions
    y_calib: np.ndarray
    x_held: np.ndarray    # evaluation images for held-out conditions
    y_held: np.ndarray


def load_digits_split(
    n_attack: int = 64, n_calib: int = 150, n_held: int = 150, seed: int = 0
) -> Split:
    """Fixed split of scikit-learn's digits (1,797 images) into four disjoint sets."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]
    y = d.target.astype(np.int64)
    perm = np.random.default_rng(seed).permutation(len(y))
    n_eval = n_attack + n_calib + n_held
    if n_eval > len(y) - 500:
        raise ValueError(
            f"n_attack + n_calib + n_held = {n_eval} leaves fewer than 500 training images "
            f"out of {len(y)}; reduce the evaluation sizes."
        )
    i_att, i_cal, i_held, i_tr = np.split(
        perm, [n_attack, n_attack + n_calib, n_eval]
    )
    return Split(x[i_tr], y[i_tr], x[i_att], y[i_att], x[i_cal], y[i_cal], x[i_held], y[i_held])
