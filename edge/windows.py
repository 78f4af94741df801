"""Analysis windows: how many feature frames the model sees, and how often it decides."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from edge.errors import ConfigError
from edge.features import MelConfig


@dataclass(frozen=True)
class WindowConfig:
    """The model's view of the feature stream. Part of every bundle."""

    frames: int = 198
    """Feature frames per window: 198 × 10 ms + 25.6 ms = 2.0 s of signal. Long enough to
    hold one discharge of a 0.5 Hz fibrillation train and several periods of anything
    faster; short enough that a label follows the needle within a few seconds."""

    hop_frames: int = 50
    """Frames between window starts (0.5 s): a decision twice a second."""

    def __post_init__(self) -> None:
        if self.frames < 8 or not 0 < self.hop_frames <= self.frames:
            raise ConfigError(f"bad window: {self.frames} frames, hop {self.hop_frames}")

    def samples(self, mel: MelConfig) -> int:
        """Signal samples one window spans."""
        return (self.frames - 1) * mel.hop_length + mel.window_length

    def seconds(self, mel: MelConfig) -> float:
        return self.samples(mel) / mel.sample_rate_hz

    def hop_seconds(self, mel: MelConfig) -> float:
        return self.hop_frames * mel.hop_length / mel.sample_rate_hz

    def count(self, n_frames: int) -> int:
        """Windows in ``n_frames`` frames."""
        return 0 if n_frames < self.frames else (n_frames - self.frames) // self.hop_frames + 1

    def to_dict(self) -> dict:
        return asdict(self)
