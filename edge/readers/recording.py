"""A recording in µV, the streaming reader every format implements, and the checks and
scale helpers they share (numpy only).

A reader (:class:`SignalReader`) knows a file's rate, length, unit and scale from its
header and hands out one channel's samples in order, a block at a time: an hours-long file
needs no more memory than a block. :meth:`SignalReader.load` reads the whole channel into a
:class:`Recording` for callers that want it at once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
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

READ_SAMPLES = 1 << 17
"""Samples (per channel) a reader reads from its file at a time: 1 MiB of float64."""

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
        raise nonfinite_error(path, int(bad.sum()), first_index + int(np.flatnonzero(bad)[0]),
                              rate)


def nonfinite_error(path: Path, count: int, first: int, rate: float) -> InputError:
    """The error for ``count`` NaN/infinite samples, the first at index ``first``."""
    where = f"{first / rate:.4f} s" if rate > 0 else f"sample {first}"
    return InputError(f"{path}: {count} NaN/infinite sample(s), first at {where}")


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


class SignalReader:
    """One channel of a recording file, read in order a block at a time.

    Subclasses (one per format) parse and check the header when they are made (a header
    that promises more than the file holds is refused before anything is allocated) and
    implement :meth:`unit_blocks`; µV are ``units · unit_uv``, the arithmetic
    :class:`Recording` always had."""

    def __init__(self, path: Path, sample_rate_hz: float, frames: int, *, unit: str,
                 unit_uv: float, scale_known: bool, channel: str,
                 annotations: list[tuple[float, float, str]] | None = None) -> None:
        if frames <= 0:
            raise InputError(f"{path}: empty (no samples)")
        check_rate(path, sample_rate_hz)
        self.path = path
        self.sample_rate_hz = float(sample_rate_hz)
        self.frames = frames
        """Samples in the channel."""
        self.unit = unit
        """The file's own unit ('uV', 'mV', 'V', 'adc' or 'float' for WAV, 'unknown')."""
        self.unit_uv = unit_uv
        """µV per unit of :meth:`unit_blocks` (recorded, or assumed when not
        ``scale_known``)."""
        self.scale_known = scale_known
        self.channel = channel
        self.annotations = list(annotations or [])
        """(start_s, end_s, label) spans the file itself carries."""

    @property
    def assumed_unit_uv(self) -> float | None:
        """The µV one unit was assumed to stand for, when the file records no scale."""
        return None if self.scale_known else self.unit_uv

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate_hz

    def unit_blocks(self) -> Iterator[np.ndarray]:
        """The channel's samples in the file's units, in order, in pieces of at most
        :data:`READ_SAMPLES` (exactly :attr:`frames` of them)."""
        raise NotImplementedError

    def blocks(self, size: int = READ_SAMPLES, limit: int | None = None
               ) -> Iterator[np.ndarray]:
        """float64 µV in blocks of ``size`` (the last one shorter), each checked finite;
        the first ``limit`` samples only, if given."""
        start, end = 0, self.frames if limit is None else min(limit, self.frames)
        for units in _rechunk(self.path, self.unit_blocks(), size, end):
            uv = units * self.unit_uv
            check_finite(self.path, uv, self.sample_rate_hz, start)
            start += uv.size
            yield uv

    def head_units(self, count: int) -> np.ndarray:
        """The first ``count`` samples in the file's units (for a scale estimate)."""
        parts = list(_rechunk(self.path, self.unit_blocks(), count, min(count, self.frames)))
        return parts[0] if parts else np.zeros(0)

    def load(self, limit: int | None = None) -> Recording:
        """The whole channel (or its first ``limit`` samples) as a :class:`Recording`."""
        n = self.frames if limit is None else min(limit, self.frames)
        x, at = np.empty(n), 0
        for uv in self.blocks(limit=n):
            x[at : at + uv.size] = uv
            at += uv.size
        return Recording(x, self.sample_rate_hz, self.unit, self.scale_known, self.channel,
                         str(self.path), list(self.annotations), self.assumed_unit_uv)


def _rechunk(path: Path, pieces: Iterator[np.ndarray], size: int, total: int
             ) -> Iterator[np.ndarray]:
    """``total`` samples of ``pieces`` again, in blocks of exactly ``size`` (the last one
    shorter); the file shrinking under the reader is an error, not a short result."""
    buf: list[np.ndarray] = []
    have = done = 0
    try:
        for piece in pieces:
            piece = piece[: total - done - have]
            buf.append(piece)
            have += piece.size
            while have >= size or (have and done + have == total):
                joined = np.concatenate(buf) if len(buf) > 1 else buf[0]
                out, rest = joined[:size], joined[size:]
                buf, have = ([rest], rest.size) if rest.size else ([], 0)
                done += out.size
                yield out
            if done == total:
                return
    finally:
        if hasattr(pieces, "close"):
            pieces.close()  # a generator holding a file: closed now, not at collection
    if done < total:
        raise InputError(f"{path}: ended early while it was read (did it shrink?)")
