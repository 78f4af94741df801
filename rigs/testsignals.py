"""Small EMG-like test signals, numpy only (the box has no scipy or TensorFlow).

For tests, benchmarks and accuracy reports of the front end: spike trains with published
shapes and rates over amplifier noise and mains hum, in µV, quantised to the canonical
int16 scale. The physiologically complete synthesizer (every class, patients,
augmentation) is ``convert.synth``; this module only needs to be realistic enough to
exercise the DSP across the levels and spectra real needle EMG has.
"""

from __future__ import annotations

import numpy as np

from edge.features import float_to_int16
from edge.spec import DEFAULT_SPEC, MelConfig

KINDS = ("fibrillation", "positive_sharp_wave", "motor_unit", "complex_repetitive", "noise")


def _waveform(kind: str, fs: int, rng: np.random.Generator) -> np.ndarray:
    """One discharge in µV."""
    if kind == "fibrillation":  # biphasic, initially positive, 1–5 ms, 20–200 µV
        dur, amp = rng.uniform(1.5e-3, 4e-3), rng.uniform(30, 200)
        t = np.arange(int(dur * fs)) / (dur * fs)
        return amp * np.sin(2 * np.pi * t) * np.hanning(t.size)
    if kind == "positive_sharp_wave":  # sharp positive, long negative, 10–30 ms
        dur, amp = rng.uniform(10e-3, 25e-3), rng.uniform(30, 200)
        t = np.arange(int(dur * fs)) / fs
        return amp * (np.exp(-t / 0.8e-3) - 0.35 * (1 - np.exp(-t / 1e-3)) * np.exp(-t / (dur / 3)))
    if kind in ("motor_unit", "complex_repetitive"):  # triphasic MUAP, 5–12 ms, 0.3–3 mV
        dur, amp = rng.uniform(5e-3, 12e-3), rng.uniform(300, 2500)
        t = np.linspace(-3, 3, int(dur * fs))
        muap = amp * (t**2 - 1) * np.exp(-(t**2) / 2) * -1
        if kind == "complex_repetitive":  # polyphasic complex: a few shifted copies
            muap = 0.3 * muap
            pad = np.zeros(muap.size * 3)
            for k in range(3):
                off = k * muap.size // 2
                pad[off : off + muap.size] += muap * (1 - 0.2 * k)
            return pad
        return muap
    raise ValueError(f"unknown kind {kind!r}")


def _rate(kind: str, rng: np.random.Generator) -> tuple[float, float]:
    """(mean rate Hz, coefficient of variation of the inter-discharge interval)."""
    return {
        "fibrillation": (rng.uniform(2, 15), 0.02),
        "positive_sharp_wave": (rng.uniform(1, 10), 0.03),
        "motor_unit": (rng.uniform(6, 15), 0.15),
        "complex_repetitive": (rng.uniform(20, 60), 0.001),
    }[kind]


def emg_like_uv(kind: str, duration_s: float, fs: int, seed: int = 0,
                noise_uv_rms: float = 5.0, mains_uv: float = 8.0) -> np.ndarray:
    """float64 µV: one discharge type (or just 'noise') over noise and 50 Hz hum."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
    rng = np.random.default_rng(seed)
    n = round(duration_s * fs)
    t = np.arange(n) / fs
    x = rng.normal(0.0, noise_uv_rms, n)
    x += mains_uv * (np.sin(2 * np.pi * 50 * t) + 0.3 * np.sin(2 * np.pi * 150 * t + 1.0))
    if kind == "noise":
        return x
    rate, cv = _rate(kind, rng)
    shape = _waveform(kind, fs, rng)
    pos = rng.uniform(0, 1 / rate)
    while pos < duration_s:
        i = int(pos * fs)
        seg = shape * (1 + 0.03 * rng.normal()) if kind != "complex_repetitive" else shape
        m = min(seg.size, n - i)
        x[i : i + m] += seg[:m]
        pos += max(1e-3, rng.normal(1 / rate, cv / rate))
    return x


def emg_like(kind: str, duration_s: float, config: MelConfig | None = None, seed: int = 0,
             gain_db: float = 0.0) -> np.ndarray:
    """int16 at the canonical scale (config.uv_per_lsb), optionally with a gain."""
    c = config or DEFAULT_SPEC.mel
    x = emg_like_uv(kind, duration_s, c.sample_rate_hz, seed) * 10 ** (gain_db / 20)
    return float_to_int16(x, lsb=c.uv_per_lsb)


def examination(duration_s: float, config: MelConfig | None = None, seed: int = 0) -> np.ndarray:
    """A mixed recording: equal segments of every kind, in order (for benchmarks)."""
    c = config or DEFAULT_SPEC.mel
    seg = duration_s / len(KINDS)
    parts = [emg_like(k, seg, c, seed + i) for i, k in enumerate(KINDS)]
    return np.concatenate(parts)
