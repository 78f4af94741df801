"""Online, seeded augmentation of training signals (µV, float64).

Each transform models a way a real examination differs from the synthetic one: level
(±6 dB: needle type, calibration), where the window starts, more amplifier or needle
noise, mains at another strength or frequency, a background under the discharge, a faster
or slower discharge, another amplifier's bandwidth. ``Augmenter(seed)`` draws the same
sequence for the same seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import signal as sps


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of each transform; probability ``p_*`` that it is applied."""

    gain_db: tuple[float, float] = (-6.0, 6.0)
    """Level uncertainty of a calibrated front end: needle type (a monopolar needle
    records up to about twice a concentric one's amplitude) and calibration. Not ±20 dB:
    amplitude is diagnostic — it separates a 100 µV fibrillation from a 1 mV
    fasciculation or a voluntary unit — and the box knows its µV per LSB (boards/*.toml).
    Files of unknown gain must be given their scale (``nemg classify --scale-uv``) or the
    model fine-tuned on them."""
    p_gain: float = 0.5
    shift_s: float = 0.5
    """Maximum time shift (circular) of the window's content."""
    noise_snr_db: tuple[float, float] = (10.0, 40.0)
    """White noise at this SNR relative to the signal's RMS."""
    p_noise: float = 0.4
    mains_snr_db: tuple[float, float] = (0.0, 30.0)
    """50 or 60 Hz hum (with harmonics) at this SNR."""
    p_mains: float = 0.3
    background_gain: tuple[float, float] = (0.2, 1.0)
    """Scale of a background recording (end-plate noise, voluntary units) mixed under a
    discharge ..."""
    detectable_snr: float = 4.0
    """... but the discharge recording's peak stays at least this many times the mixed
    background's RMS — the synthesiser's rule for a true label (convert.synth
    DETECTABLE_SNR): a discharge the examiner could not hear would be mislabelled."""
    p_background: float = 0.25
    rate_stretch: tuple[float, float] = (0.9, 1.1)
    """Time-scale factor (firing rate and waveform duration together)."""
    p_stretch: float = 0.3
    highpass_hz: tuple[float, float] = (2.0, 500.0)
    """Amplifier high-pass corner, drawn log-uniformly: clinical settings are 2–20 Hz, but
    archives hold recordings made at 100–500 Hz (single-fibre and quantitative settings)."""
    lowpass_hz: tuple[float, float] = (3000.0, 9500.0)
    """Amplifier low-pass corner (at 20 kHz; a file recorded at a lower rate is band-limited
    by ``p_source_rate`` as well)."""
    p_bandwidth: float = 0.4
    source_rates_hz: tuple[float, ...] = (4000.0, 8000.0, 10_000.0, 12_000.0, 16_000.0)
    """Rates real archives record at (PhysioNet emgdb 4 kHz, EMGlab 10 kHz, 16 kHz boards):
    a recording made at one of them holds nothing above its Nyquist frequency."""
    p_source_rate: float = 0.0
    """Share of recordings read as if recorded at one of ``source_rates_hz``: down and back
    up through the box's own fixed-point resampler, so training sees exactly what ``nemg
    classify`` makes of such a file. 0 (the default) draws nothing: make model's bits stay."""


class Augmenter:
    def __init__(self, seed: int, fs: int, config: AugmentConfig | None = None) -> None:
        self.rng = np.random.default_rng(seed)
        self.fs = fs
        self.c = config or AugmentConfig()

    def _rms(self, x: np.ndarray) -> float:
        return float(np.sqrt(np.mean(x * x))) + 1e-9

    def gain(self, x, db=None):
        db = self.rng.uniform(*self.c.gain_db) if db is None else db
        return x * 10 ** (db / 20)

    def shift(self, x):
        k = int(self.rng.uniform(-self.c.shift_s, self.c.shift_s) * self.fs)
        return np.roll(x, k)

    def noise(self, x, snr_db=None):
        snr = self.rng.uniform(*self.c.noise_snr_db) if snr_db is None else snr_db
        return x + self.rng.normal(0, self._rms(x) / 10 ** (snr / 20), x.size)

    def mains(self, x, snr_db=None):
        snr = self.rng.uniform(*self.c.mains_snr_db) if snr_db is None else snr_db
        f0 = self.rng.choice([50.0, 60.0])
        t = np.arange(x.size) / self.fs
        hum = sum(0.5 ** h * np.sin(2 * np.pi * f0 * (h + 1) * t + self.rng.uniform(0, 6.3))
                  for h in range(4))
        return x + hum * self._rms(x) / 10 ** (snr / 20) / self._rms(hum)

    def background(self, x, bg) -> tuple[np.ndarray, bool]:
        """``x`` with ``bg`` mixed under it, and whether it was: not when the background
        would have to be scaled below half its lowest gain to keep the discharge audible
        (a barely-there background would not earn its label on the quiet spans)."""
        g = self.rng.uniform(*self.c.background_gain)
        start = int(self.rng.integers(0, max(1, bg.size - x.size)))
        seg = np.resize(bg[start : start + x.size], x.size)
        g = min(g, float(np.max(np.abs(x))) / (self.c.detectable_snr * self._rms(seg)))
        if g < self.c.background_gain[0] / 2:
            return x, False
        return x + g * seg, True

    def stretch(self, x, factor=None):
        f = self.rng.uniform(*self.c.rate_stretch) if factor is None else factor
        n = x.size
        y = sps.resample_poly(x, 1000, round(1000 * f))
        return np.resize(y, n) if y.size < n else y[:n]

    def source_rate(self, x, rate=None):
        """``x`` as the box reads it back from a file recorded at ``rate``."""
        from edge.readers.recording import uv_to_int16
        from edge.resample import resample_int16

        rate = float(self.rng.choice(self.c.source_rates_hz)) if rate is None else rate
        lsb = 0.5  # canonical µV per LSB: the box's own arithmetic, int16 at each rate
        q = uv_to_int16(x, lsb)
        y = resample_int16(resample_int16(q, self.fs, rate), rate, self.fs)
        return np.resize(y, x.size).astype(np.float64) * lsb

    def bandwidth(self, x):
        hp = math.exp(self.rng.uniform(*np.log(self.c.highpass_hz)))
        lp = min(self.rng.uniform(*self.c.lowpass_hz), 0.45 * self.fs)
        sos = sps.butter(2, [hp, lp], "bandpass", fs=self.fs, output="sos")
        return sps.sosfilt(sos, x)

    def __call__(self, x: np.ndarray, background: np.ndarray | None = None,
                 shift: bool = True) -> np.ndarray:
        """A random combination (each transform with its probability). The time scale
        the stretch applied is left in ``last_time_scale`` (labels move with it), whether a
        background was mixed in ``last_background`` (its class fills the quiet spans); pass
        ``shift=False`` when labels are time-aligned spans."""
        c, r = self.c, self.rng
        y = x
        self.last_time_scale = 1.0
        self.last_background = False
        if r.random() < c.p_stretch:
            f = r.uniform(*c.rate_stretch)
            y = self.stretch(y, f)
            self.last_time_scale = 1.0 / f  # content at t moves to t / f
        if background is not None and r.random() < c.p_background:
            y, self.last_background = self.background(y, background)
        if r.random() < c.p_bandwidth:
            y = self.bandwidth(y)
        if c.p_source_rate and r.random() < c.p_source_rate:  # no draw when off
            y = self.source_rate(y)
        if r.random() < c.p_noise:
            y = self.noise(y)
        if r.random() < c.p_mains:
            y = self.mains(y)
        if shift:
            y = self.shift(y)
        if r.random() < c.p_gain:
            y = self.gain(y)
        return y
