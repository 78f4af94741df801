"""Temperature and familiarity of an int8 model (:func:`calibrate`), fitted on the
workstation the way ``make model`` and ``nemg bundle calibrate`` both fit them; the
:class:`~edge.calibration.Calibration` itself, and how the box applies it, are the box's."""

from __future__ import annotations

import convert  # noqa: F401
from convert.dataset import WindowBuilder, background_items
from convert.evaluate import WORKERS, int8_probabilities, int8_scores
from convert.train import RECIPE_AUGMENT, log
from edge.calibration import Calibration, fit_calibration
from edge.classifier import Classifier
from edge.labels import LABELS
from edge.spec import FrontEndSpec

CALIBRATION_AUGMENT_SEED = 90_210
"""Seed of the augmented pass the familiarity is fitted on (not an epoch's)."""


def calibrate(model: bytes, train_items, val_items, val_windows, spec: FrontEndSpec,
              ) -> Calibration:
    """Temperature and familiarity of an int8 model. The temperature is fitted on the
    validation windows as they are; the familiarity on windows augmented as in training
    (``RECIPE_AUGMENT``: other rates, filters, noise, mains, backgrounds): familiar is what
    the model was trained on, not only what the simulators wrote."""
    clf = Classifier(model, list(LABELS))
    probs = int8_probabilities(clf, int8_scores(clf, val_windows))
    with WindowBuilder(spec.mel, spec.window, aug=RECIPE_AUGMENT,
                       background_items=background_items(train_items),
                       workers=WORKERS) as b:
        seen = b.build(train_items, augment_seed=CALIBRATION_AUGMENT_SEED)
        seen_val = b.build(val_items, augment_seed=CALIBRATION_AUGMENT_SEED + 1)
    cal = fit_calibration(seen.x, seen_val.x, probs, val_windows.y)
    log(f"  temperature {cal.temperature:g}, unfamiliar above {cal.unfamiliar_above:g}")
    return cal
