"""The front-end spec: everything between samples and the model's input, in one frozen
object that travels with the model.

A model is only right on the features it was trained on. So the spec is chosen once, at
training (``nemg train --front-end``, default :data:`DEFAULT_SPEC`), written beside the
checkpoint (``training.json``), packed into the bundle's manifest, and read back from there
by everything after: quantisation, evaluation, the model card, the golden vectors, and the
box's front end and windows. Nothing downstream constructs a default of its own.

In the manifest it is ``mel_config`` and ``window`` (the exact fields) plus ``front_end``:
the same described the way TFLite Micro's front end states its config — times in ms with
the rate beside them — for people and for other runtimes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, InputError
from edge.features import MelConfig
from edge.windows import WindowConfig


@dataclass(frozen=True)
class FrontEndSpec:
    """The features' bits and the classifier's view of them."""

    mel: MelConfig = field(default_factory=MelConfig)
    """Fixed-point log-Mel front end (rate, analysis window and hop, Mel bands, int8 map)."""
    window: WindowConfig = field(default_factory=WindowConfig)
    """Frames per classifier window and frames between decisions."""

    def describe(self) -> dict[str, Any]:
        """The spec in TFLite Micro's terms (ms, Hz, dB): derived, for reading only."""
        m, w = self.mel, self.window
        ms = 1000.0 / m.sample_rate_hz
        return {
            "sample_rate_hz": m.sample_rate_hz,
            "window_size_ms": round(m.window_length * ms, 4),
            "window_step_ms": round(m.hop_length * ms, 4),
            "fft_length": m.fft_length,
            "num_channels": m.num_mels,
            "lower_band_limit_hz": m.fmin_hz,
            "upper_band_limit_hz": m.fmax_hz,
            "uv_per_lsb": m.uv_per_lsb,
            "int8_db_range": [m.db_min, m.db_max],
            "classifier_window_s": round(w.seconds(m), 4),
            "decision_every_s": round(w.hop_seconds(m), 4),
        }

    def to_manifest(self) -> dict[str, Any]:
        return {"mel_config": self.mel.to_dict(), "window": self.window.to_dict(),
                "front_end": self.describe()}

    @classmethod
    def from_manifest(cls, m: dict[str, Any]) -> FrontEndSpec:
        """From a bundle manifest or a checkpoint's ``training.json``."""
        try:
            return cls(MelConfig.from_dict(m["mel_config"]), WindowConfig(**m["window"]))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"no usable front-end spec ({exc})") from None

    @classmethod
    def load(cls, path: Path) -> FrontEndSpec:
        """The spec of a bundle (.nemg), a checkpoint (.h5 or its folder: its
        training.json) or a JSON file holding ``mel_config`` and ``window``."""
        path = Path(path)
        if path.suffix == ".nemg":
            from edge.bundle import Bundle

            return Bundle.read(path).spec
        if path.suffix == ".h5" or path.is_dir():
            path = (path if path.is_dir() else path.parent) / "training.json"
        if not path.is_file():
            raise InputError(f"{path}: no such file (a front-end spec comes from a bundle, a "
                             "checkpoint's training.json or a JSON spec)")
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable JSON spec ({exc})") from None
        try:
            return cls.from_manifest(d)
        except ConfigError as exc:
            raise InputError(f"{path}: {exc}") from None


@dataclass(frozen=True)
class RestCheckConfig:
    """The rest check (:mod:`edge.rest_check`): when a stretch is a voluntary contraction,
    so that calls of spontaneous activity in it are withheld. Chosen on simulation alone."""

    stretch_s: float = 3.0
    """Seconds decomposed per check: a unit at 5 Hz fires 15 times (the seeding needs 8)."""
    min_stretch_s: float = 2.0
    """Shortest stretch checked by default (the first windows of a stream or after a gap)."""
    recheck_s: float = 1.0
    """A check stands for the windows ending within this after it."""
    voluntary_rate_hz: tuple[float, float] = (5, 30)
    """Firing rates of voluntarily active units (recruitment onset, Petajan 1991, to a
    moderate contraction)."""
    lock_window_ms: float = 100.0
    """Units whose discharges keep one offset within this are one generator."""
    min_voluntary_units: int = 5
    """Independent units at voluntary rates that make a stretch a contraction."""
    max_check_segments: int = 1500
    """Spikes the shapes are learnt from per check (bounds a check's memory and time)."""


@dataclass(frozen=True)
class DecisionConfig:
    """Everything between the model's probabilities and a label or event: travels in the
    bundle (manifest ``decision``), so a code update never changes labels under an
    unchanged bundle. A bundle written before this section existed reads these defaults,
    which are the values it was built and measured with."""

    uncertain_threshold: float = 0.5
    """Below this top probability a window is called ``uncertain``."""
    smoothing_windows: int = 3
    """Windows of posterior smoothing behind the label events follow."""
    min_event_windows: int = 3
    """Windows a new smoothed label must hold before it becomes an event."""
    max_concealed_gap_ms: float = 25.0
    """Longest loss zero-filled (concealed) rather than closing the window."""
    rest_check: RestCheckConfig = field(default_factory=RestCheckConfig)


DEFAULT_DECISION = DecisionConfig()
"""The one place a default decision exists."""

DEFAULT_SPEC = FrontEndSpec()
"""The spec a new model is trained with unless ``--front-end`` says otherwise: the one
place a default front end exists."""
