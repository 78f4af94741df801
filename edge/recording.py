"""A recording in µV, and WAV loading: the part of the importers the box needs
(numpy only). EDF, WFDB and CSV live in ``convert.importers`` (workstation extra).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from edge.errors import InputError, MissingExtraError

#: µV per one unit of each physical dimension we accept.
UNITS_UV: dict[str, float] = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}

#: Scale assumed for a WAV without a recorded one: its int16 full scale is our canonical
#: ±16.4 mV (0.5 µV/LSB). Unknown gain: the model tolerates about ±6 dB of it, so the user
#: is warned and can state the scale (``nemg classify --scale-uv``).
NOMINAL_WAV_FULL_SCALE_UV = 32768 * 0.5

SUFFIXES = (".wav", ".edf", ".bdf", ".hea", ".csv", ".txt", ".tsv")


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

    def resampled(self, rate_hz: int) -> Recording:
        """Band-limited resampling to ``rate_hz`` (scipy ``resample_poly``: polyphase
        FIR with a Kaiser-windowed anti-alias filter at the lower Nyquist)."""
        if math.isclose(self.sample_rate_hz, rate_hz):
            return self
        try:
            from scipy.signal import resample_poly
        except ImportError:
            raise MissingExtraError("convert", f"resampling {self.source} from "
                                    f"{self.sample_rate_hz:g} to {rate_hz} Hz", "scipy") from None

        ratio = Fraction(rate_hz) / Fraction(self.sample_rate_hz).limit_denominator(10**6)
        ratio = ratio.limit_denominator(2000)
        y = resample_poly(self.samples_uv, ratio.numerator, ratio.denominator)
        return replace(self, samples_uv=y, sample_rate_hz=float(rate_hz))

    def to_int16(self, uv_per_lsb: float) -> np.ndarray:
        """Canonical int16 for the front end (saturating: a clipped source stays clipped)."""
        return np.clip(np.round(self.samples_uv / uv_per_lsb), -32768, 32767).astype(np.int16)


def check_samples(path: Path, x: np.ndarray, rate: float) -> None:
    if x.size == 0:
        raise InputError(f"{path}: empty (no samples)")
    bad = ~np.isfinite(x)
    if bad.any():
        raise InputError(f"{path}: {int(bad.sum())} NaN/infinite sample(s), first at "
                         f"{int(np.flatnonzero(bad)[0]) / rate:.4f} s")
    if not (rate > 0 and math.isfinite(rate)):
        raise InputError(f"{path}: invalid sample rate {rate}")


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
def load_wav(path: Path, channel: int | str = 0) -> Recording:
    from edge.wavio import read_wav

    w = read_wav(path)
    n_ch = w.samples.shape[1]
    ch = pick_channel(path, n_ch, channel, [str(i) for i in range(n_ch)])
    x = w.samples[:, ch].astype(np.float64)
    if w.is_float:
        # float WAV: ±1.0 is full scale; unknown gain
        scale, known = NOMINAL_WAV_FULL_SCALE_UV, False
    elif w.uv_per_lsb is not None:
        scale, known = w.uv_per_lsb, True
    else:
        scale, known = NOMINAL_WAV_FULL_SCALE_UV / (1 << (w.bits - 1)), False
    check_samples(path, x, w.sample_rate_hz)
    return Recording(x * scale, float(w.sample_rate_hz), "adc" if not w.is_float else "float",
                     known, str(ch), str(path), assumed_unit_uv=None if known else scale)


