"""Temperature and familiarity of an int8 model (:func:`calibrate`), fitted on the
workstation the way ``make model`` and ``nemg bundle calibrate`` both fit them; the
:class:`~edge.calibration.Calibration` itself, and how the box applies it, are the box's.

The temperature is fitted on the int8 logits the bundle will carry, under its arithmetic
(:mod:`edge.arithmetic`: the graph cut before its SOFTMAX, TFLite's reference kernels): it
minimises the negative log-likelihood of the softmax table ``exp_table(scale, T)`` — the
very table :func:`convert.packing.pack` then writes and the box looks up."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

import convert  # noqa: F401
from convert.dataset import WindowBuilder, background_items
from convert.evaluate import WORKERS, int8_probabilities, int8_scores
from convert.packing import logits_model, logits_scale, packing_arithmetic
from convert.train import RECIPE_AUGMENT, log
from edge.arithmetic import exp_table
from edge.calibration import Calibration, fit_calibration
from edge.classifier import Classifier
from edge.labels import LABELS
from edge.spec import FrontEndSpec

TEMPERATURE_RANGE = (0.25, 8.0)
"""Where the temperature is searched (as :func:`edge.calibration.fit_temperature`)."""


def fit_logit_temperature(logits: np.ndarray, y: np.ndarray, scale: float) -> float:
    """The temperature minimising the negative log-likelihood of labels ``y`` under the
    softmax table of int8 ``logits`` [windows, classes] (output scale ``scale``), in
    float64; bounded search in log T, rounded to 4 places as the manifest carries it."""
    from scipy.optimize import minimize_scalar

    d = logits.astype(np.int64).max(axis=1, keepdims=True) - logits.astype(np.int64)
    rows = np.arange(y.size)

    def nll(log_t: float) -> float:
        e = np.asarray(exp_table(scale, math.exp(log_t)))[d]  # the zero point cancels
        # a table entry underflows to 0 only beyond exp(-745): the floor keeps the log
        return float(np.mean(np.log(e.sum(axis=1)) - np.log(np.maximum(e[rows, y], 1e-300))))

    lo, hi = (math.log(v) for v in TEMPERATURE_RANGE)
    res = minimize_scalar(nll, bounds=(lo, hi), method="bounded", options={"xatol": 1e-7})
    return round(math.exp(float(res.x)), 4)

CALIBRATION_AUGMENT_SEED = 90_210
"""Seed of the augmented pass the familiarity is fitted on (not an epoch's)."""


def calibrate(model: bytes, train_items, val_items, val_windows, spec: FrontEndSpec,
              ) -> Calibration:
    """Temperature and familiarity of an int8 model. The temperature is fitted on the
    validation windows as they are; the familiarity on windows augmented as in training
    (``RECIPE_AUGMENT``: other rates, filters, noise, mains, backgrounds): familiar is what
    the model was trained on, not only what the simulators wrote. ``model``: the int8
    classifier, cut before its SOFTMAX here if it still has one (as the bundle will)."""
    logits = logits_model(model)
    clf = Classifier(logits, list(LABELS), arithmetic=packing_arithmetic(logits))
    scores = int8_scores(clf, val_windows)
    temperature = fit_logit_temperature(scores, val_windows.y, logits_scale(logits))
    with WindowBuilder(spec.mel, spec.window, aug=RECIPE_AUGMENT,
                       background_items=background_items(train_items),
                       workers=WORKERS) as b:
        seen = b.build(train_items, augment_seed=CALIBRATION_AUGMENT_SEED)
        seen_val = b.build(val_items, augment_seed=CALIBRATION_AUGMENT_SEED + 1)
    # the familiarity is edge's fit; its temperature (fitted on quantized softmax
    # outputs) is replaced by the one fitted on the logits
    cal = dataclasses.replace(
        fit_calibration(seen.x, seen_val.x, int8_probabilities(clf, scores), val_windows.y),
        temperature=temperature)
    log(f"  temperature {cal.temperature:g}, unfamiliar above {cal.unfamiliar_above:g}")
    return cal
