"""One int8 arithmetic wherever the box runs.

The int8 outputs of one ``.tflite`` depend on the kernels that run it: LiteRT's default
kernels (XNNPACK) requantize with other rounding than TFLite's reference kernels, and the
quantized SOFTMAX differs again between x86 and aarch64. So a bundle names the arithmetic
it was validated with (manifest ``arithmetic``), the box runs the model only under it, and
the golden self-test checks it exactly.

:data:`INT8_LOGITS_REF` — the model is cut before its SOFTMAX (int8 logits out) and run
with TFLite's reference kernels (``OpResolverType.BUILTIN_REF``): bit-identical on x86 and
aarch64, in LiteRT and ``tf.lite`` (measured op by op, docs/boards.md). The softmax and
the temperature are a 256-entry float64 table written by the workstation
(``exp(-d · scale / T)``): the box never calls ``exp``; a window's probabilities are table
lookups, one correctly rounded sum (:func:`math.fsum`) and IEEE divisions, the same bits
on every machine and numpy build.

:data:`LEGACY` — bundles packed before the section: the full int8 graph (SOFTMAX inside)
on the runtime's default kernels, the temperature applied by :mod:`edge.calibration`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.errors import IntegrityError

INT8_LOGITS_REF = "int8-logits/tflite-builtin-ref"
"""int8 logits out, TFLite reference kernels, the softmax by the manifest's table."""

LEGACY = "int8-softmax/runtime-default"
"""What a bundle without an ``arithmetic`` section was validated with."""

OP_RESOLVERS: dict[str, str | None] = {INT8_LOGITS_REF: "BUILTIN_REF", LEGACY: None}
"""Arithmetic -> the runtime's ``OpResolverType`` member that reproduces it (None: the
runtime's default)."""

RUNTIMES_COMPUTING: dict[str, tuple[str, ...]] = {INT8_LOGITS_REF: ("litert", "tensorflow"),
                                                  LEGACY: ()}
"""Arithmetic -> the runtimes (``edge.interpreter.RUNTIMES`` keys) whose kernels compute it
(empty: any; the golden self-test decides). tflite-runtime 2.14's reference kernels
requantize with gemmlowp's double rounding where LiteRT 2.3 and TensorFlow 2.21 round once
(``TFLITE_SINGLE_ROUNDING``): its FULLY_CONNECTED logits differ by 1 quantum on 15 of 1678
measured windows, so it is refused before it runs."""

KERNELS: dict[str, str] = {
    INT8_LOGITS_REF: "TFLite reference kernels (BUILTIN_REF, single rounding), softmax by "
                     "the manifest's table",
    LEGACY: "the runtime's default kernels (XNNPACK on LiteRT and tf.lite), quantized "
            "SOFTMAX in the graph",
}
"""Arithmetic -> the kernels it runs on, in words (``nemg info``, messages)."""

TABLE_SIZE = 256
"""Differences of two int8 logits: 0..255."""


def exp_table(scale: float, temperature: float = 1.0) -> tuple[float, ...]:
    """Workstation side: ``exp(-d · scale / T)`` for d = 0..255, the table a bundle holds
    (``scale``: the logits' output quantization scale; ``T``: the calibration
    temperature)."""
    if not (scale > 0 and math.isfinite(scale) and temperature > 0
            and math.isfinite(temperature)):
        raise ValueError(f"exp table: scale {scale} and temperature {temperature} must be "
                         "positive")
    k = scale / temperature
    return tuple(math.exp(-d * k) for d in range(TABLE_SIZE))


@dataclass(frozen=True)
class TableSoftmax:
    """The softmax (temperature included) of int8 logits through a table: exact IEEE
    arithmetic only, so the same float64 bits everywhere."""

    table: tuple[float, ...]

    def __post_init__(self) -> None:
        t = self.table
        if (len(t) != TABLE_SIZE or t[0] != 1.0
                or any(not (isinstance(v, float) and math.isfinite(v)) for v in t)
                or any(not (0.0 <= b <= a) for a, b in itertools.pairwise(t))):
            raise IntegrityError(f"arithmetic: the softmax table must hold {TABLE_SIZE} "
                                 "finite non-increasing values from 1.0")

    def __call__(self, logits: np.ndarray) -> np.ndarray:
        q = [int(v) for v in logits]
        top = max(q)
        e = [self.table[top - v] for v in q]  # the zero point cancels: only differences
        s = math.fsum(e)
        return np.array([v / s for v in e], dtype=np.float64)


@dataclass(frozen=True)
class Arithmetic:
    """How a bundle's int8 outputs become probabilities (manifest ``arithmetic``)."""

    name: str = LEGACY
    softmax_exp_table: tuple[float, ...] = ()
    """:func:`exp_table` for :data:`INT8_LOGITS_REF`; empty for :data:`LEGACY`."""

    def __post_init__(self) -> None:
        if self.name not in OP_RESOLVERS:
            raise IntegrityError(f"arithmetic {self.name!r} is not one this box knows "
                                 f"({', '.join(OP_RESOLVERS)}); update the box")
        if self.name == INT8_LOGITS_REF:
            TableSoftmax(self.softmax_exp_table)  # refuses a malformed table
        elif self.softmax_exp_table:
            raise IntegrityError(f"arithmetic {self.name!r} takes no softmax table")

    @property
    def op_resolver(self) -> str | None:
        """The ``OpResolverType`` member to run the model with (None: the default)."""
        return OP_RESOLVERS[self.name]

    @property
    def runtimes(self) -> tuple[str, ...]:
        """The runtimes that compute this arithmetic (empty: any)."""
        return RUNTIMES_COMPUTING[self.name]

    @property
    def kernels(self) -> str:
        """The kernels it runs on, in words."""
        return KERNELS[self.name]

    @property
    def logits(self) -> bool:
        """The model ends before its softmax (the table does it, temperature included)."""
        return self.name == INT8_LOGITS_REF

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's section (merge it into the manifest)."""
        return {"arithmetic": {"name": self.name,
                               "softmax_exp_table": list(self.softmax_exp_table)}}

    @classmethod
    def from_manifest(cls, m: dict[str, Any]) -> Arithmetic:
        """A manifest's section; :data:`LEGACY` when it has none."""
        d = m.get("arithmetic")
        if d is None:
            return cls()
        if not isinstance(d, dict) or set(d) - {"name", "softmax_exp_table"}:
            raise IntegrityError("arithmetic: expected an object of name and "
                                 "softmax_exp_table")
        table = d.get("softmax_exp_table", [])
        if not isinstance(table, list) or len(table) > TABLE_SIZE:
            raise IntegrityError("arithmetic: softmax_exp_table must be a list of "
                                 f"{TABLE_SIZE} numbers")
        return cls(str(d.get("name")), tuple(v if isinstance(v, float) else float("nan")
                                             for v in table))


LEGACY_ARITHMETIC = Arithmetic()
"""The arithmetic of a bundle without the section (and of a bare model)."""
