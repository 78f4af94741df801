"""What both simulators return: a recording in µV with the spans of its truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SimulatedRecording:
    """A simulated recording; each simulator adds its own ground truth."""

    label: str
    """The class it was drawn as."""
    fs: int
    """Sample rate in Hz."""
    signal_uv: np.ndarray
    """The signal in µV."""
    spans: list[tuple[float, float, str]]
    """(start_s, end_s, label) of what it holds."""
