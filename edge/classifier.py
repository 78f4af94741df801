"""The int8 classifier on the box: a TFLite model behind a small, checked interface.

Input: the front end's int8 features [frames, num_mels], as they are (or requantised by
an integer multiply-shift when the model's input quantisation differs; see
:class:`InputRequantizer`). Output: int8 scores — under the bundle's arithmetic
(:mod:`edge.arithmetic`) either int8 logits, turned into probabilities by the manifest's
softmax table, or (legacy) the graph's own quantized softmax, dequantised.

Every caller that turns int8 outputs into the probabilities the box decides on — the
pipeline, the bundle's self-test, the workstation's evaluation and calibration — goes
through :meth:`Classifier.calibrated_probabilities`, so there is one path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edge.arithmetic import LEGACY_ARITHMETIC, Arithmetic, TableSoftmax
from edge.errors import ConfigError, InputError, IntegrityError
from edge.interpreter import RUNTIME_TITLES, create_interpreter, require_runtime

if TYPE_CHECKING:
    from edge.calibration import Calibration

#: The float model's input is q / 64 for int8 features q: with calibration spanning the
#: int8 range the TFLite quantizer then picks exactly scale 1/64, zero point 0.
FEATURE_INPUT_SCALE = 1.0 / 64.0
FEATURE_INPUT_ZERO_POINT = 0
FEATURE_INPUT_RANGE = (-128 * FEATURE_INPUT_SCALE, 127 * FEATURE_INPUT_SCALE)
"""The float model's input range: the int8 features' whole range at that scale."""
SOFTMAX_OUTPUT_QUANTIZATION = (1.0 / 256.0, -128)
"""(scale, zero point) TFLite fixes for an int8 SOFTMAX's output: what a full graph ends in
and a logits graph does not."""


def features_as_float(q: np.ndarray) -> np.ndarray:
    """What the float model sees for int8 features ``q`` (exact: the scale is 2⁻⁶)."""
    return np.asarray(q).astype(np.float32) * np.float32(FEATURE_INPUT_SCALE)


@dataclass(frozen=True)
class InputRequantizer:
    """Integer map from feature int8 (scale 1/64, zp 0) to the model's input int8.

    q' = clamp(((q · M) >> 30) + zp), with M = round(scale_f / scale_m · 2^30), rounded
    half up; identity when the model's quantisation already matches. Deterministic."""

    multiplier: int
    zero_point: int

    @classmethod
    def for_model(cls, scale: float, zero_point: int) -> InputRequantizer:
        return cls(round(FEATURE_INPUT_SCALE / scale * (1 << 30)), int(zero_point))

    @property
    def identity(self) -> bool:
        return self.multiplier == 1 << 30 and self.zero_point == FEATURE_INPUT_ZERO_POINT

    def __call__(self, q: np.ndarray) -> np.ndarray:
        if self.identity:
            return q
        v = (q.astype(np.int64) * self.multiplier + (1 << 29)) >> 30
        return np.clip(v + self.zero_point, -128, 127).astype(np.int8)


class Classifier:
    """A loaded int8 TFLite classifier, run under one arithmetic (:mod:`edge.arithmetic`):
    its op resolver picks the kernels, its table (int8-logits models) makes probabilities."""

    def __init__(self, model: bytes, labels: list[str], num_threads: int = 1,
                 arithmetic: Arithmetic = LEGACY_ARITHMETIC) -> None:
        runtime = require_runtime()
        if arithmetic.runtimes and runtime.name not in arithmetic.runtimes:
            raise ConfigError(
                f"validated with int8 arithmetic {arithmetic.name!r}, which "
                f"{runtime.title} does not compute (use "
                f"{' or '.join(RUNTIME_TITLES[r] for r in arithmetic.runtimes)})")
        try:
            self.interpreter = create_interpreter(runtime, op_resolver=arithmetic.op_resolver,
                                                  model_content=model,
                                                  num_threads=num_threads)
        except ConfigError:
            raise
        except (ValueError, RuntimeError) as exc:
            raise IntegrityError(f"the model does not load: {exc}") from None
        self.runtime = runtime
        self.arithmetic = arithmetic
        """How int8 outputs become probabilities, and on which kernels."""
        inp = self.interpreter.get_input_details()[0]
        out = self.interpreter.get_output_details()[0]
        if inp["dtype"] != np.int8 or out["dtype"] != np.int8:
            raise IntegrityError(f"model tensors must be int8 (input {inp['dtype'].__name__}, "
                                 f"output {out['dtype'].__name__})")
        self.input_shape = tuple(int(d) for d in inp["shape"])  # (1, frames, mels, 1)
        if len(self.input_shape) != 4 or self.input_shape[0] != 1 or self.input_shape[3] != 1:
            raise IntegrityError(f"unexpected input shape {self.input_shape}")
        if int(out["shape"][-1]) != len(labels):
            raise IntegrityError(f"model has {int(out['shape'][-1])} outputs but "
                                 f"{len(labels)} labels")
        self.labels = list(labels)
        self._in, self._out = inp["index"], out["index"]
        self.input_quantization = (float(inp["quantization"][0]), int(inp["quantization"][1]))
        self.output_quantization = (float(out["quantization"][0]), int(out["quantization"][1]))
        # a logits model read as softmax outputs (or the reverse) gives nonsense that the
        # golden int8 vectors cannot see: refused here
        if arithmetic.logits == (self.output_quantization == SOFTMAX_OUTPUT_QUANTIZATION):
            scale, zp = self.output_quantization
            expected, found = (("int8 logits", "a SOFTMAX's") if arithmetic.logits
                               else ("a SOFTMAX output", "not a SOFTMAX's"))
            raise IntegrityError(f"arithmetic {arithmetic.name!r} expects {expected}, but "
                                 f"the model's output (scale {scale:.6g}, zero point {zp}) "
                                 f"is {found}")
        self.requantize = InputRequantizer.for_model(*self.input_quantization)
        self._softmax = (TableSoftmax(arithmetic.softmax_exp_table) if arithmetic.logits
                         else None)

    @property
    def frames(self) -> int:
        return self.input_shape[1]

    @property
    def num_mels(self) -> int:
        return self.input_shape[2]

    def invoke_int8(self, window: np.ndarray) -> np.ndarray:
        """int8 features [frames, mels] -> int8 outputs [classes] (logits or softmax,
        as the arithmetic says)."""
        if window.dtype != np.int8 or window.shape != self.input_shape[1:3]:
            raise InputError(f"window must be int8 {self.input_shape[1:3]}, got "
                             f"{window.dtype} {window.shape}")
        self.interpreter.set_tensor(self._in, self.requantize(window)[None, :, :, None])
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out)[0].copy()

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        """The model's probabilities of one window's int8 outputs: the table softmax of
        int8 logits (temperature included), or a legacy graph's softmax dequantised
        (temperature not applied). Decisions use :meth:`calibrated_probabilities`."""
        if self._softmax is not None:
            return self._softmax(scores)
        scale, zp = self.output_quantization
        p = (scores.astype(np.float64) - zp) * scale
        return p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / p.size)

    def calibrated_probabilities(self, scores: np.ndarray,
                                 calibration: Calibration) -> np.ndarray:
        """The probabilities the box decides on, from int8 outputs ``scores`` ([classes],
        or [windows, classes] row by row): THE one path from int8 outputs to calibrated
        probabilities, for the pipeline, the self-test and the workstation's evaluation
        and calibration alike.

        Under :data:`edge.arithmetic.INT8_LOGITS_REF` this is the manifest's table softmax,
        which already holds the temperature: ``calibration.temperature`` is not applied
        again. Under :data:`edge.arithmetic.LEGACY` it is ``calibration.probabilities`` of
        the dequantised softmax (today's bits). Familiarity
        (``calibration.unfamiliar``) is separate and unchanged."""
        if scores.ndim == 2:
            return np.stack([self.calibrated_probabilities(s, calibration) for s in scores])
        p = self.probabilities(scores)
        return p if self.arithmetic.logits else calibration.probabilities(p)

    def table_mismatch(self, calibration: Calibration) -> str | None:
        """Why an int8-logits model's softmax table is not ``exp(-d · scale / T)`` for its
        logits' output scale and the calibration's temperature ``T`` (to 1e-9; None when
        it is, or for a legacy model). A check only: probabilities never call ``exp``."""
        if not self.arithmetic.logits:
            return None
        scale, t = self.output_quantization[0], calibration.temperature
        step = self.arithmetic.softmax_exp_table[1]
        got = -math.log(step) if step > 0 else math.inf
        if math.isclose(got, scale / t, rel_tol=1e-9):
            return None
        return (f"its softmax table steps by exp(-{got:.9g}), but the logits' scale "
                f"{scale:.9g} over the calibration's temperature {t} is {scale / t:.9g}")
