"""What the box's probabilities mean, and when it must not answer at all.

Two things travel in the bundle (``manifest["calibration"]``), fitted by ``make model`` on
validation recordings (never on a test set):

- **Temperature** ``T``: so that a top probability of 0.8 is right about 80 % of the time.
  A bundle of int8 logits (:data:`edge.arithmetic.INT8_LOGITS_REF`) holds it inside its
  softmax table (``exp(-d · scale / T)``), so here it is only a record the self-test checks
  the table against. A legacy bundle's int8 softmax outputs are raised to ``1/T`` and
  renormalised here; being quantised (steps of 1/256), each is floored at half a step
  before its logarithm: an output of 0 means "below 1/256", not "impossible".
- **Familiarity**: how unlike the training windows a window's spectrum is. Each window is
  summarised by the mean and the spread over time of each Mel band (int8 features, so the
  summary is exact); the score is the root-mean-square z-score of that summary against the
  training windows'. Above ``threshold`` (a high quantile of validation windows' scores)
  the window is *unfamiliar*: its answer is reported as ``uncertain`` and carries no
  weight in the smoothing the events follow. A recording unlike anything trained must not
  come out as a positive sharp wave at 0.7.

Both are pure numpy and deterministic (element-wise float64 on exact integer sums), so a
box and a workstation make the same decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.errors import IntegrityError

#: Floor of a quantised probability before its logarithm: half the int8 output's step.
PROBABILITY_FLOOR = 0.5 / 256


def window_summary(window: np.ndarray) -> np.ndarray:
    """Mean and standard deviation over time of each Mel band of an int8 window
    [frames, mels] -> float64 [2 · mels]."""
    x = window.astype(np.float64)
    return np.concatenate([x.mean(axis=0), x.std(axis=0)])


@dataclass(frozen=True)
class Calibration:
    """Temperature and familiarity of one model (identity: ``Calibration()``)."""

    temperature: float = 1.0
    """Divides the log-probabilities (> 1 softens an over-confident model)."""
    summary_mean: tuple[float, ...] = ()
    """Mean of :func:`window_summary` over the training windows (empty: no check)."""
    summary_scale: tuple[float, ...] = ()
    """Its standard deviation (floored at 1 int8 step)."""
    unfamiliar_above: float = math.inf
    """Familiarity score above which a window is unfamiliar."""

    def __post_init__(self) -> None:
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise IntegrityError(f"calibration: temperature {self.temperature} is not positive")
        if len(self.summary_mean) != len(self.summary_scale):
            raise IntegrityError("calibration: summary mean and scale differ in length")
        if any(not (s > 0) for s in self.summary_scale):
            raise IntegrityError("calibration: a summary scale is not positive")
        if not self.unfamiliar_above > 0:
            raise IntegrityError("calibration: the unfamiliarity threshold is not positive")

    def probabilities(self, probs: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of quantised softmax outputs ``probs`` (any leading
        shape, classes last)."""
        if self.temperature == 1.0:
            return probs
        lp = np.log(np.maximum(probs, PROBABILITY_FLOOR)) / self.temperature
        e = np.exp(lp - lp.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)

    def familiarity(self, window: np.ndarray) -> float:
        """RMS z-score of the window's summary (0 when there is nothing to compare)."""
        if not self.summary_mean:
            return 0.0
        z = (window_summary(window) - np.asarray(self.summary_mean)) / np.asarray(
            self.summary_scale)
        return float(np.sqrt(np.mean(z * z)))

    def unfamiliar(self, window: np.ndarray) -> bool:
        return self.familiarity(window) > self.unfamiliar_above

    def to_dict(self) -> dict:
        return {"temperature": self.temperature,
                "summary_mean": list(self.summary_mean),
                "summary_scale": list(self.summary_scale),
                "unfamiliar_above": (None if math.isinf(self.unfamiliar_above)
                                     else self.unfamiliar_above)}

    @classmethod
    def from_dict(cls, d: dict | None, num_mels: int) -> Calibration:
        """From a manifest (``None``: a bundle from before calibration, the identity)."""
        if d is None:
            return cls()
        try:
            mean = tuple(float(v) for v in d.get("summary_mean", ()))
            scale = tuple(float(v) for v in d.get("summary_scale", ()))
            above = d.get("unfamiliar_above")
            c = cls(float(d.get("temperature", 1.0)), mean, scale,
                    math.inf if above is None else float(above))
        except (TypeError, ValueError, AttributeError) as exc:
            raise IntegrityError(f"calibration: {exc}") from None
        if mean and len(mean) != 2 * num_mels:
            raise IntegrityError(f"calibration: summary of {len(mean)} values for "
                                 f"{num_mels} Mel bands")
        return c


def fit_temperature(probs: np.ndarray, y: np.ndarray) -> float:
    """The temperature minimising the negative log-likelihood of labels ``y`` (golden-
    section search over 0.25–8 in log T)."""
    lo, hi = math.log(0.25), math.log(8.0)

    def nll(log_t: float) -> float:
        p = Calibration(math.exp(log_t)).probabilities(probs)
        return float(-np.mean(np.log(np.maximum(p[np.arange(y.size), y], 1e-12))))

    g = (math.sqrt(5) - 1) / 2
    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    fa, fb = nll(a), nll(b)
    for _ in range(40):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - g * (hi - lo)
            fa = nll(a)
        else:
            lo, a, fa = a, b, fb
            b = lo + g * (hi - lo)
            fb = nll(b)
    return round(math.exp((lo + hi) / 2), 4)


#: Share of validation windows allowed to be called unfamiliar (the threshold's quantile).
UNFAMILIAR_VALIDATION_SHARE = 0.01


def fit_calibration(train_windows: np.ndarray, val_windows: np.ndarray,
                    val_probs: np.ndarray, val_y: np.ndarray) -> Calibration:
    """Temperature on the validation windows' outputs; familiarity from the training
    windows' summaries, its threshold at the validation windows' 99th percentile."""
    summaries = np.stack([window_summary(w) for w in train_windows])
    # rounded here, so the calibration evaluated is the one the manifest carries
    mean = np.round(summaries.mean(axis=0), 4)
    scale = np.round(np.maximum(summaries.std(axis=0), 1.0), 4)
    base = Calibration(1.0, tuple(mean.tolist()), tuple(scale.tolist()))
    scores = np.array([base.familiarity(w) for w in val_windows])
    above = float(np.quantile(scores, 1 - UNFAMILIAR_VALIDATION_SHARE))
    return Calibration(fit_temperature(val_probs, val_y), base.summary_mean,
                       base.summary_scale, round(above, 4))
