"""Float references for the fixed-point front end, and the accuracy report against them.

:func:`reference_log_mel_db` is the same config computed in float64 with the exact Hann
window and exact Mel weights: the "ideal" the integer path approximates. It is for tests,
benchmarks and error reports only; nothing on the box classifies with it.
"""

from __future__ import annotations

import math

import numpy as np

from edge.features import MelFrontEnd, check_int16, mel_matrix
from edge.spec import DEFAULT_SPEC, MelConfig


def frame_signal(x: np.ndarray, config: MelConfig) -> np.ndarray:
    n = config.num_frames(x.size)
    view = np.lib.stride_tricks.sliding_window_view(x, config.window_length)
    return view[:: config.hop_length][:n]


def reference_log_mel_db(samples: np.ndarray, config: MelConfig | None = None) -> np.ndarray:
    """float64 log-Mel in dB re 1 LSB² per FFT bin, [frames, num_mels]; -inf for 0 energy."""
    c = config or DEFAULT_SPEC.mel
    x = np.asarray(samples, dtype=np.float64)
    k = np.arange(c.window_length)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * k / c.window_length)
    spec = np.fft.rfft(frame_signal(x, c) * hann, n=c.fft_length, axis=1)
    power = (spec.real**2 + spec.imag**2) / np.sum(hann**2)
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(power @ mel_matrix(c))


class Float32MelBaseline:
    """A typical float pipeline (scipy.signal.stft / librosa style, float32, BLAS Mel):
    the speed a float front end reaches, for the benchmark's comparison."""

    def __init__(self, config: MelConfig | None = None) -> None:
        self.config = c = config or DEFAULT_SPEC.mel
        k = np.arange(c.window_length)
        self.hann = (0.5 - 0.5 * np.cos(2.0 * np.pi * k / c.window_length)).astype(np.float32)
        self.mel = mel_matrix(c).astype(np.float32)
        try:
            import scipy.fft as fft  # float32 FFT, multi-backend
        except ImportError:  # the box has no scipy: numpy's pocketfft (float64 inside)
            fft = np.fft
        self._rfft = fft.rfft

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        c = self.config
        frames = frame_signal(samples.astype(np.float32), c) * self.hann
        spec = self._rfft(frames, n=c.fft_length, axis=1)
        power = (spec.real * spec.real + spec.imag * spec.imag).astype(np.float32)
        return 10.0 * np.log10(power @ self.mel + np.float32(1e-10))


def compare_to_reference(samples: np.ndarray, config: MelConfig | None = None,
                         front_end: MelFrontEnd | None = None) -> dict[str, float]:
    """Accuracy of the fixed-point features against the float64 reference.

    Cells count where the reference lies inside the int8 range (above the floor, below
    saturation): "above the noise floor". Errors are in dB. ``*_q16`` figures are the
    integer pipeline before the int8 step; the plain ones are the int8 features the model
    sees (their 0.5 dB step alone contributes ≤ 0.25 dB max, ~0.125 dB mean).
    SNR is in the log domain, as CMSIS-DSP reports it for its MFCC: signal = reference
    feature above the floor (dB − db_min), noise = fixed − reference.
    """
    fe = front_end or MelFrontEnd(config)
    c = fe.config
    x = check_int16(samples)
    ref = reference_log_mel_db(x, c)
    frames = frame_signal(x, c)
    mel, shift = fe.mel_with_exponent(frames)
    log2 = fe.log2_q16(mel, shift)
    fixed_q16 = fe.db_q16(log2) / 65536.0
    fixed_int8 = c.int8_to_db(fe.to_int8(log2))
    inside = np.isfinite(ref) & (ref > c.db_min + c.db_step) & (ref < c.db_max - c.db_step)
    if not inside.any():
        raise ValueError("no feature cell inside the int8 range: signal too quiet or clipped")
    r = ref[inside]
    err = fixed_int8[inside] - r
    err_q16 = fixed_q16[inside] - r
    sig = np.sum((r - c.db_min) ** 2)

    def snr(e: np.ndarray) -> float:
        p = float(np.sum(e**2))
        return math.inf if p == 0 else 10.0 * math.log10(sig / p)

    return {
        "mean_abs_err_db": float(np.mean(np.abs(err))),
        "max_abs_err_db": float(np.max(np.abs(err))),
        "snr_db": snr(err),
        "mean_abs_err_db_q16": float(np.mean(np.abs(err_q16))),
        "max_abs_err_db_q16": float(np.max(np.abs(err_q16))),
        "snr_db_q16": snr(err_q16),
        "cells_compared": int(inside.sum()),
        "cells_total": int(ref.size),
    }
