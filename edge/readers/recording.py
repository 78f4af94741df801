"""A recording in µV, and WAV loading: the part of the importers the box needs
(numpy only). EDF, WFDB and CSV live in ``edge.readers.importers`` (workstation extra).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge.errors import InputError

#: µV per one unit of each physical dimension we accept.
UNITS_UV: dict[str, float] = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}

#: Scale assumed for a WAV without a recorded one: its int16 full scale is our canonical
#: ±16.4 mV (0.5 µV/LSB). Unknown gain: the model tolerates about ±6 dB of it, so the user
#: is warned and can state the scale (``nemg classify --scale-uv``).
NOMINAL_WAV_FULL_SCALE_UV = 32768 * 0.5

SUFFIXES = (".wav", ".edf", ".bdf", ".hea", ".csv", ".txt", ".tsv")

#: An unscaled file (a WAV from another program) is brought to the level at which its
#: noise floor is this many µV RMS: the floor of :func:`noise_floor` is the needle
#: amplifier's (a few µV RMS) in nearly every recording, so it fixes the unknown gain
#: where the peak (anything from −30 to −3 dBFS in exported audio) cannot. The value is
#: the median of :func:`noise_floor` over the training synthesiser's recordings at their
#: true scale (tests/test_real.py measures it again).
NOISE_FLOOR_UV = 6.5
FLOOR_FRAME_MS, FLOOR_QUANTILE = 5.0, 10
FLOOR_MAX_S = 60.0
"""Seconds an estimate reads at the most (bounded memory for long files)."""

#: Below this a file cannot hold needle EMG (MUAP and fibrillation energy reaches several
#: kHz); refusing it also bounds what resampling to the model's rate may allocate.
MIN_SAMPLE_RATE_HZ = 2000


@dataclass(frozen=True)
class Recording:
    """One channel of a recording, in µV, with its provenance."""

    samples_uv: np.ndarray
    """float64 samples in microvolts."""
    sample_rate_hz: float
    """Samples per second."""
    unit: str
    """The file's own unit ('uV', 'mV', 'V', or 'adc' for WAV integers)."""
    scale_known: bool
    """False when the gain was assumed (a WAV without a recorded scale)."""
    channel: str
    """Channel name or index as the file calls it."""
    source: str
    """File it came from."""
    annotations: list[tuple[float, float, str]] = field(default_factory=list)
    """(start_s, end_s, label) spans."""
    assumed_unit_uv: float | None = None
    """When ``scale_known`` is False: the µV one unit of the file's samples was assumed
    to stand for (see :meth:`with_unit_uv`)."""

    @property
    def duration_s(self) -> float:
        return self.samples_uv.size / self.sample_rate_hz

    def microvolts(self) -> np.ndarray:
        return self.samples_uv

    def with_unit_uv(self, unit_uv: float) -> Recording:
        """The same file with its assumed scale replaced by a known one: one unit of the
        samples (an integer step, or 1.0 of a float WAV) is ``unit_uv`` µV."""
        if self.scale_known or self.assumed_unit_uv is None:
            return self
        if not (unit_uv > 0 and math.isfinite(unit_uv)):
            raise InputError(f"scale must be a positive number of µV, not {unit_uv}")
        return replace(self, samples_uv=self.samples_uv * (unit_uv / self.assumed_unit_uv),
                       scale_known=True, assumed_unit_uv=None)

    def resampled(self, rate_hz: int, uv_per_lsb: float) -> Recording:
        """At ``rate_hz`` the way the box brings a file there: canonical int16 at
        ``uv_per_lsb`` at the file's own rate, then the fixed-point resampler
        (:mod:`edge.resample`), back in µV. Training and ``nemg classify`` see the same
        bits; a recording already at ``rate_hz`` is returned as it is."""
        if math.isclose(self.sample_rate_hz, rate_hz):
            return self
        from edge.resample import resample_int16

        y = resample_int16(self.to_int16(uv_per_lsb), self.sample_rate_hz, rate_hz)
        return replace(self, samples_uv=y.astype(np.float64) * uv_per_lsb,
                       sample_rate_hz=float(rate_hz))

    def to_int16(self, uv_per_lsb: float) -> np.ndarray:
        """Canonical int16 for the front end (saturating: a clipped source stays clipped)."""
        return uv_to_int16(self.samples_uv, uv_per_lsb)


def noise_floor(x: np.ndarray, fs: float) -> float:
    """RMS of the quietest frames: the 10th percentile over 5 ms frames of the RMS about
    each frame's mean (the amplifier's noise between discharges)."""
    n = max(1, int(fs * FLOOR_FRAME_MS / 1000))
    frames = x[: x.size // n * n].reshape(-1, n)
    if frames.shape[0] == 0:
        return 0.0
    frames = frames - frames.mean(axis=1, keepdims=True)
    return float(np.percentile(np.sqrt((frames**2).mean(axis=1)), FLOOR_QUANTILE))


def estimate_unit_uv(units: np.ndarray, fs: float) -> float | None:
    """µV per sample unit that puts ``units``' noise floor at :data:`NOISE_FLOOR_UV`, or
    None when there is no floor to measure (digital silence)."""
    floor = noise_floor(np.asarray(units[: int(FLOOR_MAX_S * fs)], dtype=np.float64), fs)
    return NOISE_FLOOR_UV / floor if floor > 0 else None


def uv_to_int16(uv: np.ndarray, uv_per_lsb: float) -> np.ndarray:
    """µV -> canonical int16, rounded and saturating (a clipped source stays clipped): the
    one arithmetic every reader, simulator and augmentation shares, so they agree bit for
    bit."""
    return np.clip(np.round(uv / uv_per_lsb), -32768, 32767).astype(np.int16)


def check_rate(path: Path, rate: float) -> None:
    if not (rate > 0 and math.isfinite(rate)):
        raise InputError(f"{path}: invalid sample rate {rate}")
    if rate < MIN_SAMPLE_RATE_HZ:
        raise InputError(f"{path}: {rate:g} Hz is too low to hold needle EMG (at least "
                         f"{MIN_SAMPLE_RATE_HZ} Hz)")


def check_finite(path: Path, x: np.ndarray, rate: float, first_index: int = 0) -> None:
    bad = ~np.isfinite(x)
    if bad.any():
        i = first_index + int(np.flatnonzero(bad)[0])
        where = f"{i / rate:.4f} s" if rate > 0 else f"sample {i}"
        raise InputError(f"{path}: {int(bad.sum())} NaN/infinite sample(s), first at {where}")


def check_samples(path: Path, x: np.ndarray, rate: float) -> None:
    if x.size == 0:
        raise InputError(f"{path}: empty (no samples)")
    check_finite(path, x, rate)
    check_rate(path, rate)


def unit_to_uv(path: Path, unit: str) -> float:
    u = unit.strip().lower().replace(" ", "")
    if u not in UNITS_UV:
        raise InputError(f"{path}: unit {unit!r} is not a voltage (expected uV, mV or V)")
    return UNITS_UV[u]


def pick_channel(path: Path, n: int, channel: int | str, names: list[str]) -> int:
    if isinstance(channel, str) and not channel.isdigit():
        if channel not in names:
            raise InputError(f"{path}: no channel {channel!r} (has: {', '.join(names)})")
        return names.index(channel)
    i = int(channel)
    if not 0 <= i < n:
        raise InputError(f"{path}: channel {i} does not exist ({n} channel(s))")
    return i


# ---- WAV ---------------------------------------------------------------------------------
def wav_scale(info) -> tuple[float, bool]:
    """(µV per sample unit, whether the file records it) of a :class:`~edge.readers.wav.WavInfo`."""
    if info.is_float:  # float WAV: ±1.0 is full scale; unknown gain
        return NOMINAL_WAV_FULL_SCALE_UV, False
    if info.uv_per_lsb is not None:
        return info.uv_per_lsb, True
    return NOMINAL_WAV_FULL_SCALE_UV / (1 << (info.bits - 1)), False


def wav_channel(path: Path, info, channel: int | str) -> int:
    return pick_channel(path, info.channels, channel, [str(i) for i in range(info.channels)])


def load_wav(path: Path, channel: int | str = 0) -> Recording:
    from edge.readers.wav import read_frames, wav_info

    info = wav_info(path)
    check_rate(path, info.sample_rate_hz)
    ch = wav_channel(path, info, channel)
    x = read_frames(info, 0, info.frames)[:, ch].astype(np.float64)
    scale, known = wav_scale(info)
    check_samples(path, x, info.sample_rate_hz)
    return Recording(x * scale, float(info.sample_rate_hz), "float" if info.is_float else "adc",
                     known, str(ch), str(path), assumed_unit_uv=None if known else scale)


