"""The int8 classifier on the box: a TFLite model behind a small, checked interface.

Input: the front end's int8 features [frames, num_mels], as they are (or requantised by
an integer multiply-shift when the model's input quantisation differs; see
:class:`InputRequantizer`). Output: int8 class scores, dequantised to probabilities.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.errors import InputError, IntegrityError
from edge.interpreter import create_interpreter, require_runtime

#: The float model's input is q / 64 for int8 features q: with calibration spanning the
#: int8 range the TFLite quantizer then picks exactly scale 1/64, zero point 0.
FEATURE_INPUT_SCALE = 1.0 / 64.0
FEATURE_INPUT_ZERO_POINT = 0
FEATURE_INPUT_RANGE = (-128 * FEATURE_INPUT_SCALE, 127 * FEATURE_INPUT_SCALE)
"""The float model's input range: the int8 features' whole range at that scale."""


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
    """A loaded int8 TFLite classifier."""

    def __init__(self, model: bytes, labels: list[str], num_threads: int = 1) -> None:
        runtime = require_runtime()
        try:
            self.interpreter = create_interpreter(runtime, model_content=model,
                                                  num_threads=num_threads)
        except (ValueError, RuntimeError) as exc:
            raise IntegrityError(f"the model does not load: {exc}") from None
        self.runtime = runtime
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
        self.requantize = InputRequantizer.for_model(*self.input_quantization)

    @property
    def frames(self) -> int:
        return self.input_shape[1]

    @property
    def num_mels(self) -> int:
        return self.input_shape[2]

    def invoke_int8(self, window: np.ndarray) -> np.ndarray:
        """int8 features [frames, mels] -> int8 output scores [classes]."""
        if window.dtype != np.int8 or window.shape != self.input_shape[1:3]:
            raise InputError(f"window must be int8 {self.input_shape[1:3]}, got "
                             f"{window.dtype} {window.shape}")
        self.interpreter.set_tensor(self._in, self.requantize(window)[None, :, :, None])
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._out)[0].copy()

    def probabilities(self, scores: np.ndarray) -> np.ndarray:
        scale, zp = self.output_quantization
        p = (scores.astype(np.float64) - zp) * scale
        return p / p.sum() if p.sum() > 0 else np.full(p.size, 1.0 / p.size)
