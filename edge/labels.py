"""The label set: exact strings used everywhere (CLI, corpus, bundles, JSON, event log)."""

from __future__ import annotations

from edge.errors import InputError

LABELS: tuple[str, ...] = (
    "fibrillation",
    "positive_sharp_wave",
    "fasciculation",
    "complex_repetitive",
    "myotonic",
    "myokymic",
    "neuromyotonic",
    "end_plate",
    "insertional",
    "motor_unit",
    "silence",
    "artifact",
)

#: Abnormal spontaneous activity: what makes a finding "pathological".
PATHOLOGICAL: frozenset[str] = frozenset({
    "fibrillation", "positive_sharp_wave", "fasciculation", "complex_repetitive",
    "myotonic", "myokymic", "neuromyotonic",
})

#: Normal findings and backgrounds.
NORMAL: frozenset[str] = frozenset(LABELS) - PATHOLOGICAL

#: Output of the runtime when the model is not confident enough (never a training label).
UNCERTAIN = "uncertain"


def check_label(label: str, where: str = "") -> str:
    """The label itself, or a clear error naming where it came from."""
    if label not in LABELS:
        prefix = f"{where}: " if where else ""
        raise InputError(f"{prefix}unknown label {label!r} (known: {', '.join(LABELS)})")
    return label
