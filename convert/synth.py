"""Physiologically grounded synthesis of labelled needle-EMG recordings.

No public corpus of resting needle-EMG discharges exists, so the model learns from
recordings synthesised from published electrophysiology. Every number that shapes a class
lives in :data:`PARAMS` with its source; docs/discharges.md is the same table for humans.

A recording is one "patient" (needle distance, amplifier, mains, morphology jitter, rate
drift) with one primary generator (the class) over a background (amplifier noise, mains
with harmonics, baseline wander) that may contain end-plate noise or voluntary MUAPs
(a mixture: the discharge's label is kept over its spans). Labels are spans
(start, end, label) covering the file; events (each discharge's time, amplitude,
duration) are kept so tests can measure the physiology.

Deterministic: recording ``i`` of class ``c`` under seed ``s`` depends only on (s, c, i).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import signal as sps

from convert.simulated import SimulatedRecording
from edge.labels import LABELS
from edge.spec import DEFAULT_SPEC

#: name -> (low, high) or value, with the source. Units in the key name.
PARAMS: dict[str, dict[str, Any]] = {
    "fibrillation": {
        "duration_ms": (1.0, 5.0),  # StatPearls; AANEM glossary
        "amplitude_uv": (20.0, 200.0),  # StatPearls
        "rate_hz": (0.5, 15.0),  # StatPearls: regular 0.5–15 Hz
        "interval_cv": (0.005, 0.05),  # "regular": chosen (not found as a number)
        "irregular_share": 0.1, "irregular_cv": (0.2, 0.4),  # "irregular forms exist"
        "slowing_share": 0.25, "slow_to": (0.4, 0.8),  # "may slow gradually before stopping"
        "generators": (1, 3),
        "triphasic_share": 0.3,  # bi- or triphasic, initially positive
    },
    "positive_sharp_wave": {
        "duration_ms": (10.0, 30.0),  # StatPearls
        "amplitude_uv": (20.0, 200.0),  # "similar to fibrillation"
        "rate_hz": (0.5, 15.0),  # regular 0.5–15 Hz
        "interval_cv": (0.01, 0.06),
        "positive_phase_ms": (1.0, 3.0),  # sharp positive onset: chosen
        "negative_ratio": (0.15, 0.4),  # long negative phase, smaller: chosen
        "generators": (1, 3),
    },
    "fasciculation": {
        "duration_ms": (12.6, 4.4, 2.8, 23.9),  # mean, sd, min, max (JNNP tables)
        "amplitude_uv": (561.0, 367.0, 123.0, 1480.0),  # mean, sd, min, max
        "phases_mean": 3.25, "polyphasic_share": (0.10, 0.23),  # JNNP tables
        "rate_hz": (0.2, 2.0),  # irregular, slow: rate not found; chosen, per unit
        "units": (1, 3),
        "event_margin_s": 0.15,  # label span around each discharge
    },
    "complex_repetitive": {
        "spikes": (3, 8), "spike_ms": (1.0, 3.0),  # polyphasic complex of several spikes
        "amplitude_uv": (100.0, 1000.0),  # neuromuscular.wustl.edu
        "rate_hz": (5.0, 150.0), "typical_rate_hz": (30.0, 40.0),  # most often 30–40 Hz
        "typical_share": 0.6,
        "run_s": (1.0, 4.0),  # abrupt onset and stop
        "amplitude_jitter": 0.01,  # "identical" complexes
    },
    "myotonic": {
        "rate_hz": (20.0, 80.0),  # AANEM: 20–80 Hz, waxing and waning
        "peak_rate_hz": (30.0, 80.0), "rate_depth": (1.4, 2.5),  # peak / trough: chosen
        "spike_ms": (1.0, 5.0), "wave_ms": (5.0, 20.0),  # spike <5 ms or positive wave
        "positive_wave_share": 0.5,
        "amplitude_uv": (50.0, 400.0),  # waxes and wanes; range chosen
        "amplitude_min_ratio": (0.2, 0.5),  # envelope depth: chosen
        "run_s": (0.8, 3.0),  # chosen
    },
    "myokymic": {
        "muaps_per_burst": (2, 10),  # bursts of a few MUAPs (Gutmann 1991)
        "intraburst_rate_hz": (30.0, 60.0),  # not found; chosen
        "burst_rate_hz": (0.5, 5.0),  # recur semi-rhythmically, "several per second"
        "burst_cv": (0.05, 0.2),
        "amplitude_uv": (150.0, 1000.0),  # MUAP-like
        "duration_ms": (5.0, 12.0),
    },
    "neuromyotonic": {
        "rate_hz": (150.0, 300.0),  # > 150 Hz, up to ~300 (JNNP 2001;70:406)
        "train_s": (0.5, 2.0),
        "final_amplitude_ratio": (0.3, 0.7),  # decrementing amplitude: depth chosen
        "amplitude_uv": (100.0, 1000.0),
        "duration_ms": (2.0, 6.0),
        "pause_s": (0.3, 1.5),
    },
    "end_plate": {
        "mepp_rate_hz": (200.0, 1500.0),  # "seashell" noise: rate chosen
        "mepp_amplitude_uv": (10.0, 50.0),  # 10–50 µV, commonly quoted
        "mepp_ms": (0.5, 2.0),  # monophasic negative
        "spike_share": 0.6,  # end-plate spikes present
        "spike_rate_hz": (5.0, 50.0),  # irregular
        "spike_amplitude_uv": (100.0, 300.0), "spike_ms": (2.0, 4.0),  # initially negative
    },
    "insertional": {
        "burst_s": (0.3, 0.5), "long_burst_s": (0.5, 2.0), "long_share": 0.1,
        "spike_rate_hz": (100.0, 400.0), "amplitude_uv": (50.0, 500.0),
        "movement_uv": (200.0, 1000.0),  # needle-movement transient preceding the burst
        "bursts": (1, 2),
    },
    "motor_unit": {
        "duration_ms": (2.0, 15.0), "amplitude_uv": (300.0, 3000.0),
        "polyphasic_share": (0.10, 0.15),
        "onset_interval_ms": (132.0, 32.0),  # mean, sd: first unit's onset rate
        "recruitment_interval_ms": (90.0, 19.0),  # next unit recruited at this interval
        "max_rate_hz": (12.0, 20.0), "interval_cv": (0.05, 0.2),
        "units": (1, 6),
        # A threshold contraction: the examiner asks for the least force that brings in a
        # unit, so one or two of the first (smallest) units fire near their onset rate,
        # and a clinic's low-force MUAPs can be small: 100–600 µV peak (issue 17; size
        # principle, Henneman 1957; onset rates, Milner-Brown et al. 1973)
        "threshold_share": 0.3, "threshold_units": (1, 2),
        "threshold_amplitude_uv": (100.0, 600.0),
    },
    "silence": {},
    "artifact": {
        "movement_uv": (200.0, 2000.0), "movement_ms": (50.0, 300.0),
        "pop_uv": (1000.0, 5000.0), "pop_tau_ms": (5.0, 50.0),
        "cable_hz": (1.0, 20.0), "cable_uv": (100.0, 1000.0), "cable_s": (0.3, 1.5),
        "kinds": (1, 3),
    },
    "background": {
        "noise_uv_rms": (3.0, 10.0),  # amplifier 3–4 µV, ≈10 µV with the needle
        "mains_hz": (50.0, 60.0), "mains_uv": (0.0, 25.0), "harmonic_decay": (0.2, 0.6),
        "wander_uv": (0.0, 50.0), "wander_hz": (0.1, 1.0),
        "highpass_hz": (2.0, 20.0), "lowpass_hz": (5000.0, 10000.0),  # 2 Hz–10 kHz
        "mixture_share": 0.25,  # discharge over end-plate noise or MUAP activity
    },
    "patient": {
        "distance": (0.0, 1.0),  # needle–generator distance (normalised)
        "amplitude_loss": 0.7,  # at distance 1: amplitude × (1 - 0.7)
        "lowpass_near_hz": 9000.0, "lowpass_far_hz": 2500.0,  # high-frequency loss
        "morph_jitter": (0.02, 0.1),  # per-discharge amplitude sd (relative)
        "rate_drift": (-0.2, 0.2),  # relative rate change over the recording
    },
}


@dataclass(frozen=True)
class Patient:
    """Per-recording variability."""

    distance: float
    """Needle–generator distance, 0 (at the fibre) .. 1 (far)."""
    amplitude_factor: float
    """Discharge amplitude multiplier from distance."""
    lowpass_hz: float
    """Tissue low-pass of discharges from distance."""
    morph_jitter: float
    """Relative sd of each discharge's amplitude."""
    rate_drift: float
    """Relative firing-rate change from start to end of the recording."""
    noise_uv_rms: float
    mains_hz: float
    mains_uv: float
    harmonic_decay: float
    wander_uv: float
    wander_hz: float
    highpass_hz: float
    lowpass_hz_amp: float
    mixture: str | None
    """'end_plate' or 'motor_unit' background under the discharge, or None."""


@dataclass(frozen=True)
class Event:
    """One discharge the synthesiser placed."""

    t: float
    """Onset, seconds."""
    amplitude_uv: float
    """Peak absolute amplitude before distance loss."""
    duration_ms: float
    generator: int
    """Which generator (fibre, unit, complex) fired."""


@dataclass
class Synthesized(SimulatedRecording):
    """A recording in µV with its truth: every event and the patient it came from."""

    events: list[Event] = field(default_factory=list)
    patient: Patient | None = None
    info: dict[str, Any] = field(default_factory=dict)


# ---- primitives ----------------------------------------------------------------------
def _u(rng: np.random.Generator, lo_hi: tuple[float, float]) -> float:
    return float(rng.uniform(*lo_hi))


def _truncnorm(rng: np.random.Generator, spec: tuple[float, float, float, float]) -> float:
    mean, sd, lo, hi = spec
    for _ in range(100):
        v = rng.normal(mean, sd)
        if lo <= v <= hi:
            return float(v)
    return float(np.clip(mean, lo, hi))


def spike(fs: int, duration_ms: float, amplitude: float, phases: int = 2,
          initial_sign: float = 1.0) -> np.ndarray:
    """A bi/tri/polyphasic spike: a Gaussian derivative (order phases-1) normalised to
    peak |amplitude|, first phase of ``initial_sign``, lasting ``duration_ms``."""
    n = max(3, round(duration_ms * 1e-3 * fs))
    t = np.linspace(-3.0, 3.0, n)
    order = max(1, phases - 1)
    h = np.polynomial.hermite_e.hermeval(t, [0] * order + [1]) * np.exp(-t * t / 2)
    h = h / np.max(np.abs(h))
    first = h[np.argmax(np.abs(h) > 0.3)]
    return amplitude * initial_sign * np.sign(first) * h


def muap(rng: np.random.Generator, fs: int, duration_ms: float, amplitude: float,
         phases: int) -> np.ndarray:
    """MUAP-like: triphasic core; polyphasic (≥5 phases) adds late shifted components."""
    core = spike(fs, duration_ms * 0.7, amplitude, 3, initial_sign=1.0)
    if phases <= 4:
        return core if phases >= 3 else spike(fs, duration_ms, amplitude, 2)
    out = np.zeros(int(duration_ms * 1e-3 * fs) + core.size)
    out[: core.size] += core
    for _ in range(phases - 3):
        off = int(rng.uniform(0.3, 0.9) * (out.size - core.size // 2))
        comp = spike(fs, duration_ms * rng.uniform(0.15, 0.3), amplitude * rng.uniform(0.2, 0.5),
                     2, rng.choice([-1.0, 1.0]))
        out[off : off + comp.size] += comp[: out.size - off]
    return out


def positive_sharp_wave(fs: int, duration_ms: float, amplitude: float, positive_ms: float,
                        negative_ratio: float) -> np.ndarray:
    """Sharp positive deflection, then a long, shallow negative phase."""
    n = max(4, round(duration_ms * 1e-3 * fs))
    t = np.arange(n) / fs * 1e3  # ms
    rise = np.clip(t / (0.3 * positive_ms), 0, 1) ** 2
    pos = rise * np.exp(-np.maximum(t - 0.3 * positive_ms, 0) / (0.4 * positive_ms))
    neg_tau = max(duration_ms - positive_ms, 2.0) / 3.0
    neg = (1 - np.exp(-np.maximum(t - positive_ms * 0.6, 0) / (0.3 * positive_ms))) * \
        np.exp(-np.maximum(t - positive_ms, 0) / neg_tau)
    w = pos - negative_ratio * neg
    w *= np.hanning(2 * n)[n:] ** 0.3  # settle to zero at the end
    return amplitude * w / np.max(np.abs(w))


def train(rng: np.random.Generator, rate_hz: float, cv: float, t0: float, t1: float,
          drift: float = 0.0, slow_to: float | None = None) -> np.ndarray:
    """Onset times of a renewal train from t0 to t1; rate drifts linearly by ``drift``
    (relative) or slows to ``slow_to`` × rate and stops there."""
    times = []
    t = t0 + rng.uniform(0, 1.0 / rate_hz)
    span = max(t1 - t0, 1e-9)
    while t < t1:
        times.append(t)
        frac = (t - t0) / span
        r = rate_hz * (1 + drift * frac)
        if slow_to is not None:
            r = rate_hz * (1 - (1 - slow_to) * frac)
        r = max(r, 0.1)
        t += max(0.2 / r, rng.normal(1.0 / r, cv / r))
    return np.array(times)


def place(x: np.ndarray, wave: np.ndarray, t: float, fs: int) -> None:
    i = round(t * fs)
    if i >= x.size or i + wave.size <= 0:
        return
    a, b = max(i, 0), min(i + wave.size, x.size)
    x[a:b] += wave[a - i : b - i]


def _lowpass(x: np.ndarray, fs: int, hz: float, order: int = 1) -> np.ndarray:
    if hz >= 0.45 * fs:
        return x
    sos = sps.butter(order, hz, "low", fs=fs, output="sos")
    return sps.sosfilt(sos, x)


# ---- patient and background ------------------------------------------------------------
def make_patient(rng: np.random.Generator, mixture: bool | None = None,
                 mixture_share: float | None = None) -> Patient:
    """A random patient; ``mixture`` forces (True/False) a mixture background, else it
    comes with probability ``mixture_share`` (default PARAMS). The random stream is the
    same whatever the share, so only the mixture draw changes."""
    p, b = PARAMS["patient"], PARAMS["background"]
    d = _u(rng, p["distance"])
    share = b["mixture_share"] if mixture_share is None else mixture_share
    mix = (rng.random() < share) if mixture is None else mixture
    return Patient(
        distance=d,
        amplitude_factor=1.0 - p["amplitude_loss"] * d,
        lowpass_hz=p["lowpass_near_hz"] + (p["lowpass_far_hz"] - p["lowpass_near_hz"]) * d,
        morph_jitter=_u(rng, p["morph_jitter"]),
        rate_drift=_u(rng, p["rate_drift"]),
        noise_uv_rms=_u(rng, b["noise_uv_rms"]),
        mains_hz=float(rng.choice(b["mains_hz"])),
        mains_uv=_u(rng, b["mains_uv"]),
        harmonic_decay=_u(rng, b["harmonic_decay"]),
        wander_uv=_u(rng, b["wander_uv"]),
        wander_hz=_u(rng, b["wander_hz"]),
        highpass_hz=_u(rng, b["highpass_hz"]),
        lowpass_hz_amp=_u(rng, b["lowpass_hz"]),
        mixture=str(rng.choice(["end_plate", "motor_unit"])) if mix else None,
    )


def background(rng: np.random.Generator, n: int, fs: int, p: Patient) -> np.ndarray:
    t = np.arange(n) / fs
    x = rng.normal(0.0, p.noise_uv_rms, n)
    for h in range(1, 6):
        if p.mains_hz * h >= fs / 2:
            break
        x += p.mains_uv * p.harmonic_decay ** (h - 1) * np.sin(
            2 * np.pi * p.mains_hz * h * t + rng.uniform(0, 2 * np.pi))
    x += p.wander_uv * np.sin(2 * np.pi * p.wander_hz * t + rng.uniform(0, 2 * np.pi))
    return x


def amplifier(x: np.ndarray, fs: int, p: Patient) -> np.ndarray:
    """The amplifier's band: high-pass (2–20 Hz) and low-pass (5–10 kHz)."""
    sos_hp = sps.butter(1, p.highpass_hz, "high", fs=fs, output="sos")
    y = sps.sosfilt(sos_hp, x)
    return _lowpass(y, fs, p.lowpass_hz_amp, order=2)


# ---- class generators: (rng, fs, duration, patient) -> (signal, spans, events) --------
Spans = list[tuple[float, float, str]]


def _jit(rng: np.random.Generator, p: Patient) -> float:
    return max(0.2, 1.0 + rng.normal(0.0, p.morph_jitter))


def gen_fibrillation(rng, fs, dur, p):
    c = PARAMS["fibrillation"]
    x = np.zeros(int(dur * fs))
    events = []
    k = int(rng.integers(c["generators"][0], c["generators"][1] + 1))
    slowing = rng.random() < c["slowing_share"]
    end = dur
    for g in range(k):
        amp = _u(rng, c["amplitude_uv"])
        d_ms = _u(rng, c["duration_ms"])
        phases = 3 if rng.random() < c["triphasic_share"] else 2
        wave = spike(fs, d_ms, amp, phases, initial_sign=1.0)
        rate = _u(rng, c["rate_hz"])
        irregular = rng.random() < c["irregular_share"]
        cv = _u(rng, c["irregular_cv"] if irregular else c["interval_cv"])
        slow_to = _u(rng, c["slow_to"]) if slowing and g == 0 else None
        stop = dur if slow_to is None else dur * rng.uniform(0.7, 1.0)
        if slow_to is not None:
            end = stop
        for t in train(rng, rate, cv, 0.0, stop, p.rate_drift, slow_to):
            place(x, wave * _jit(rng, p), t, fs)
            events.append(Event(t, amp, d_ms, g))
    spans = [(0.0, end, "fibrillation")] + ([(end, dur, "silence")] if end < dur else [])
    return x, spans, events


def gen_positive_sharp_wave(rng, fs, dur, p):
    c = PARAMS["positive_sharp_wave"]
    x = np.zeros(int(dur * fs))
    events = []
    for g in range(int(rng.integers(c["generators"][0], c["generators"][1] + 1))):
        amp, d_ms = _u(rng, c["amplitude_uv"]), _u(rng, c["duration_ms"])
        wave = positive_sharp_wave(fs, d_ms, amp, _u(rng, c["positive_phase_ms"]),
                                   _u(rng, c["negative_ratio"]))
        for t in train(rng, _u(rng, c["rate_hz"]), _u(rng, c["interval_cv"]), 0.0, dur,
                       p.rate_drift):
            place(x, wave * _jit(rng, p), t, fs)
            events.append(Event(t, amp, d_ms, g))
    return x, [(0.0, dur, "positive_sharp_wave")], events


def _phases(rng, polyphasic_share: float, mean: float = 3.25) -> int:
    if rng.random() < polyphasic_share:
        return int(rng.integers(5, 8))
    return int(np.clip(round(rng.normal(mean - 0.2, 0.5)), 2, 4))


def gen_fasciculation(rng, fs, dur, p):
    c = PARAMS["fasciculation"]
    x = np.zeros(int(dur * fs))
    events = []
    poly = _u(rng, c["polyphasic_share"])
    for g in range(int(rng.integers(c["units"][0], c["units"][1] + 1))):
        d_ms, amp = _truncnorm(rng, c["duration_ms"]), _truncnorm(rng, c["amplitude_uv"])
        wave = muap(rng, fs, d_ms, amp, _phases(rng, poly, c["phases_mean"]))
        for t in train(rng, _u(rng, c["rate_hz"]), 1.0, 0.0, dur):  # CV 1: Poisson
            place(x, wave * _jit(rng, p), t, fs)
            events.append(Event(t, amp, d_ms, g))
    if not events:  # a recording labelled fasciculation has at least one
        d_ms, amp = _truncnorm(rng, c["duration_ms"]), _truncnorm(rng, c["amplitude_uv"])
        t = rng.uniform(0.1 * dur, 0.8 * dur)
        place(x, muap(rng, fs, d_ms, amp, 3), t, fs)
        events.append(Event(t, amp, d_ms, 0))
    m = c["event_margin_s"]
    active = [(max(0.0, e.t - m), min(dur, e.t + e.duration_ms / 1e3 + m)) for e in events]
    return x, _spans_from_active(active, dur, "fasciculation"), events


def _spans_from_active(active: list[tuple[float, float]], dur: float, label: str,
                       rest: str = "silence") -> Spans:
    """Merge active intervals into label spans; the rest gets ``rest``."""
    merged: list[list[float]] = []
    for a, b in sorted(active):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    spans: Spans = []
    t = 0.0
    for a, b in merged:
        if a > t:
            spans.append((t, a, rest))
        spans.append((a, b, label))
        t = b
    if t < dur:
        spans.append((t, dur, rest))
    return spans


def _runs(rng, dur: float, run_s: tuple[float, float], pause_s: tuple[float, float]):
    """Non-overlapping (start, end) runs filling the recording with pauses between."""
    runs, t = [], rng.uniform(0.05, 0.4) * min(dur, 2.0)
    while t < dur - 0.2:
        length = min(_u(rng, run_s), dur - t)
        runs.append((t, t + length))
        t += length + _u(rng, pause_s)
    return runs or [(0.0, dur)]


def gen_complex_repetitive(rng, fs, dur, p):
    c = PARAMS["complex_repetitive"]
    x = np.zeros(int(dur * fs))
    events = []
    rate = _u(rng, c["typical_rate_hz"] if rng.random() < c["typical_share"] else c["rate_hz"])
    span_ms = min(30.0, 0.8e3 / rate)
    k = int(rng.integers(c["spikes"][0], c["spikes"][1] + 1))
    cx = np.zeros(max(4, int(span_ms * 1e-3 * fs)))
    base_amp = _u(rng, c["amplitude_uv"])
    for _ in range(k):  # one fixed complex, repeated identically
        s = spike(fs, min(_u(rng, c["spike_ms"]), span_ms / 2), base_amp * rng.uniform(0.3, 1.0),
                  int(rng.integers(2, 4)), rng.choice([-1.0, 1.0]))
        off = int(rng.uniform(0, max(1, cx.size - s.size)))
        cx[off : off + s.size] += s[: cx.size - off]
    cx *= base_amp / max(np.max(np.abs(cx)), 1e-9)
    runs = _runs(rng, dur, c["run_s"], (0.3, 1.5))
    for a, b in runs:
        t = a
        while t < b:  # time-locked: a fixed interval, abrupt start and stop
            place(x, cx * (1 + rng.normal(0, c["amplitude_jitter"])), t, fs)
            events.append(Event(t, base_amp, span_ms, 0))
            t += 1.0 / rate
    spans = _spans_from_active(runs, dur, "complex_repetitive")
    return x, spans, events


def gen_myotonic(rng, fs, dur, p):
    c = PARAMS["myotonic"]
    x = np.zeros(int(dur * fs))
    events = []
    runs = _runs(rng, dur, c["run_s"], (0.2, 1.0))
    for g, (a, b) in enumerate(runs):
        wave_kind = rng.random() < c["positive_wave_share"]
        amp = _u(rng, c["amplitude_uv"])
        if wave_kind:
            d_ms = _u(rng, c["wave_ms"])
            wave = positive_sharp_wave(fs, d_ms, amp, min(2.0, d_ms / 3), 0.3)
        else:
            d_ms = _u(rng, c["spike_ms"])
            wave = spike(fs, d_ms, amp, 2, 1.0)
        hi = _u(rng, c["peak_rate_hz"])
        lo = max(c["rate_hz"][0], hi / _u(rng, c["rate_depth"]))
        depth = _u(rng, c["amplitude_min_ratio"])
        phase = rng.uniform(0.3, 0.7)  # where in the run rate and amplitude peak
        t = a
        while t < b:
            u = (t - a) / (b - a)
            env = math.sin(math.pi * min(u / phase, 1.0) / 2) if u < phase else \
                math.cos(math.pi * (u - phase) / (1 - phase) / 2)
            rate = lo + (hi - lo) * env  # waxes then wanes
            scale = depth + (1 - depth) * env  # amplitude with it
            place(x, wave * scale * _jit(rng, p), t, fs)
            events.append(Event(t, amp * scale, d_ms, g))
            t += 1.0 / rate
    return x, _spans_from_active(runs, dur, "myotonic"), events


def gen_myokymic(rng, fs, dur, p):
    c = PARAMS["myokymic"]
    x = np.zeros(int(dur * fs))
    events = []
    durations = [_u(rng, c["duration_ms"]) for _ in range(int(rng.integers(1, 4)))]
    units = [muap(rng, fs, d, _u(rng, c["amplitude_uv"]), 3) for d in durations]
    burst_rate = _u(rng, c["burst_rate_hz"])
    intra = _u(rng, c["intraburst_rate_hz"])
    k_lo, k_hi = c["muaps_per_burst"]
    bursts = train(rng, burst_rate, _u(rng, c["burst_cv"]), 0.0, dur, p.rate_drift)
    for b_i, t0 in enumerate(bursts):
        t = t0
        for _ in range(int(rng.integers(k_lo, k_hi + 1))):
            u = int(rng.integers(len(units)))
            place(x, units[u] * _jit(rng, p), t, fs)
            events.append(Event(t, float(np.max(np.abs(units[u]))), durations[u], b_i))
            t += max(0.008, rng.normal(1.0 / intra, 0.1 / intra))
    # One myokymic span covers the bursts and the short pauses between them.
    return x, [(0.0, dur, "myokymic")], events


def gen_neuromyotonic(rng, fs, dur, p):
    c = PARAMS["neuromyotonic"]
    x = np.zeros(int(dur * fs))
    events = []
    runs = _runs(rng, dur, c["train_s"], c["pause_s"])
    for g, (a, b) in enumerate(runs):
        amp = _u(rng, c["amplitude_uv"])
        wave = muap(rng, fs, _u(rng, c["duration_ms"]), amp, 2)
        rate = _u(rng, c["rate_hz"])
        final = _u(rng, c["final_amplitude_ratio"])
        t = a
        while t < b:
            scale = final ** ((t - a) / max(b - a, 1e-6))  # decrementing
            place(x, wave * scale, t, fs)
            events.append(Event(t, amp * scale, 3.0, g))
            t += max(1.0 / 320, rng.normal(1.0 / rate, 0.03 / rate))
    return x, _spans_from_active(runs, dur, "neuromyotonic"), events


def _end_plate_activity(rng, fs, n, p, spikes: bool | None = None):
    c = PARAMS["end_plate"]
    x = np.zeros(n)
    dur = n / fs
    events = []
    # miniature end-plate potentials: tiny monophasic negative, very frequent
    rate = _u(rng, c["mepp_rate_hz"])
    count = rng.poisson(rate * dur)
    ts = rng.uniform(0, dur, count)
    amps = rng.uniform(*c["mepp_amplitude_uv"], count)
    d_ms = _u(rng, c["mepp_ms"])
    m = max(3, int(d_ms * 1e-3 * fs))
    mepp = -np.hanning(m + 2)[1:-1]
    idx = (ts * fs).astype(int)
    for i, a in zip(idx, amps, strict=True):
        x[i : i + m] += a * mepp[: n - i]
    has_spikes = (rng.random() < c["spike_share"]) if spikes is None else spikes
    if has_spikes:
        sr = _u(rng, c["spike_rate_hz"])
        for t in train(rng, sr, 0.8, 0.0, dur):  # irregular
            amp, sd_ms = _u(rng, c["spike_amplitude_uv"]), _u(rng, c["spike_ms"])
            place(x, spike(fs, sd_ms, amp, 2, initial_sign=-1.0), t, fs)  # initially negative
            events.append(Event(t, amp, sd_ms, 1))
    return x, events


def gen_end_plate(rng, fs, dur, p):
    x, events = _end_plate_activity(rng, fs, int(dur * fs), p)
    return x, [(0.0, dur, "end_plate")], events


def gen_insertional(rng, fs, dur, p):
    c = PARAMS["insertional"]
    x = np.zeros(int(dur * fs))
    events = []
    active = []
    t = rng.uniform(0.1, 0.4) * dur / max(1, c["bursts"][1])
    for g in range(int(rng.integers(c["bursts"][0], c["bursts"][1] + 1))):
        if t > dur - 0.35:
            break
        length = _u(rng, c["long_burst_s"] if rng.random() < c["long_share"] else c["burst_s"])
        length = min(length, dur - t)
        # the needle moves: a slow transient, then a burst of injury discharges
        mv = _u(rng, c["movement_uv"]) * rng.choice([-1.0, 1.0])
        m = int(0.05 * fs)
        place(x, mv * np.hanning(2 * m)[:m] ** 2 * np.linspace(1, 0.2, m), t, fs)
        rate = _u(rng, c["spike_rate_hz"])
        for ts in np.sort(rng.uniform(t, t + length, rng.poisson(rate * length))):
            decay = 1.0 - 0.7 * (ts - t) / length  # dies away over the burst
            amp = _u(rng, c["amplitude_uv"]) * decay
            d_ms = rng.uniform(1.0, 6.0)
            place(x, spike(fs, d_ms, amp, int(rng.integers(2, 4)), rng.choice([-1.0, 1.0])),
                  ts, fs)
            events.append(Event(float(ts), amp, d_ms, g))
        active.append((t, t + length))
        t += length + rng.uniform(0.8, 2.0)
    return x, _spans_from_active(active, dur, "insertional"), events


def _voluntary(rng, fs, n, p, units: int | None = None):
    c = PARAMS["motor_unit"]
    dur = n / fs
    x = np.zeros(n)
    events = []
    threshold = units is None and rng.random() < c["threshold_share"]
    span = c["threshold_units"] if threshold else c["units"]
    k = units or int(rng.integers(span[0], span[1] + 1))
    amplitude = c["threshold_amplitude_uv"] if threshold else c["amplitude_uv"]
    poly = _u(rng, c["polyphasic_share"])
    onset = 1.0 / (max(60.0, rng.normal(*c["onset_interval_ms"])) / 1e3)
    recruit = 1.0 / (max(50.0, rng.normal(*c["recruitment_interval_ms"])) / 1e3)
    t_rec = rng.uniform(0.0, 0.3)
    for u in range(k):
        amp, d_ms = _u(rng, amplitude), _u(rng, c["duration_ms"])
        wave = muap(rng, fs, d_ms, amp, _phases(rng, poly, 3.0))
        max_rate = _u(rng, c["max_rate_hz"])
        cv = _u(rng, c["interval_cv"])
        t = t_rec
        while t < dur:
            frac = min(1.0, (t - t_rec) / max(dur - t_rec, 1e-6))
            r = onset + (max_rate - onset) * frac
            place(x, wave * _jit(rng, p), t, fs)
            events.append(Event(t, amp, d_ms, u))
            t += max(0.03, rng.normal(1.0 / r, cv / r))
        # The next unit joins when this one fires at the recruitment rate (its rate ramps
        # from onset to max_rate over the rest of the recording).
        if onset < recruit < max_rate:
            step = (recruit - onset) / (max_rate - onset) * (dur - t_rec)
        else:
            step = rng.uniform(0.2, 0.6)
        t_rec += max(step, 0.1)
        if t_rec >= dur:
            break
    return x, events


def gen_motor_unit(rng, fs, dur, p):
    x, events = _voluntary(rng, fs, int(dur * fs), p)
    return x, [(0.0, dur, "motor_unit")], events


def gen_silence(rng, fs, dur, p):
    return np.zeros(int(dur * fs)), [(0.0, dur, "silence")], []


def gen_artifact(rng, fs, dur, p):
    c = PARAMS["artifact"]
    n = int(dur * fs)
    x = np.zeros(n)
    events, active = [], []
    kinds = rng.choice(["movement", "pop", "cable"], int(rng.integers(c["kinds"][0],
                                                                      c["kinds"][1] + 1)))
    for g, kind in enumerate(kinds):
        t = rng.uniform(0.05, 0.8) * dur
        if kind == "movement":
            ms = _u(rng, c["movement_ms"])
            m = int(ms * 1e-3 * fs)
            w = _u(rng, c["movement_uv"]) * rng.choice([-1.0, 1.0]) * np.hanning(m) * \
                np.sin(np.linspace(0, rng.uniform(1, 3) * np.pi, m))
            length = ms / 1e3
        elif kind == "pop":
            tau = _u(rng, c["pop_tau_ms"]) * 1e-3
            m = int(5 * tau * fs)
            w = _u(rng, c["pop_uv"]) * rng.choice([-1.0, 1.0]) * np.exp(-np.arange(m) / (tau * fs))
            length = 5 * tau
        else:
            length = _u(rng, c["cable_s"])
            m = int(length * fs)
            tt = np.arange(m) / fs
            w = _u(rng, c["cable_uv"]) * np.hanning(m) * np.sin(
                2 * np.pi * _u(rng, c["cable_hz"]) * tt) * (1 + 0.3 * rng.normal(size=m).cumsum()
                                                             / np.sqrt(m))
        place(x, w, t, fs)
        events.append(Event(t, float(np.max(np.abs(w))), length * 1e3, g))
        active.append((max(0.0, t - 0.05), min(dur, t + length + 0.1)))
    return x, _spans_from_active(active, dur, "artifact"), events


GENERATORS = {
    "fibrillation": gen_fibrillation,
    "positive_sharp_wave": gen_positive_sharp_wave,
    "fasciculation": gen_fasciculation,
    "complex_repetitive": gen_complex_repetitive,
    "myotonic": gen_myotonic,
    "myokymic": gen_myokymic,
    "neuromyotonic": gen_neuromyotonic,
    "end_plate": gen_end_plate,
    "insertional": gen_insertional,
    "motor_unit": gen_motor_unit,
    "silence": gen_silence,
    "artifact": gen_artifact,
}
assert tuple(GENERATORS) == LABELS

# Classes whose discharges must stand out of the noise for the label to be true.
_DETECTABLE = set(LABELS) - {"silence", "end_plate", "artifact"}
DETECTABLE_SNR = 4.0

# Classes whose quiet stretches may carry a mixture background.
_MIXABLE = {"fibrillation", "positive_sharp_wave", "fasciculation", "complex_repetitive",
            "myotonic", "myokymic", "neuromyotonic"}


def quiet_spans_as(spans, background: str) -> list[tuple[float, float, str]]:
    """``spans`` with every silence span relabelled ``background``: a discharge's quiet
    stretches show the class of what it sits on (a mixture, synthesised or augmented)."""
    return [(a, b, background if lab == "silence" else lab) for a, b, lab in spans]


def synthesize(label: str, *, fs: int = DEFAULT_SPEC.mel.sample_rate_hz, duration_s: float = 6.0,
               rng: np.random.Generator | None = None, patient: Patient | None = None,
               with_background: bool = True,
               mixture_share: float | None = None) -> Synthesized:
    """One recording of ``label`` in µV. ``with_background=False`` gives the clean
    generator output (for tests that measure waveforms); ``mixture_share`` overrides how
    often a discharge sits on end-plate noise or a voluntary unit (see make_patient)."""
    if label not in GENERATORS:
        raise ValueError(f"unknown label {label!r}")
    rng = rng or np.random.default_rng()
    p = patient or make_patient(rng, mixture=None if label in _MIXABLE else False,
                                mixture_share=mixture_share)
    x, spans, events = GENERATORS[label](rng, fs, duration_s, p)
    n = x.size
    # discharges lose amplitude and high frequencies with needle distance
    x = _lowpass(x * p.amplitude_factor, fs, p.lowpass_hz)
    mixture = np.zeros(n)
    if with_background and p.mixture == "end_plate":
        mixture = _end_plate_activity(rng, fs, n, p, spikes=False)[0] * p.amplitude_factor
    elif with_background and p.mixture == "motor_unit":
        mixture = _voluntary(rng, fs, n, p, units=1)[0] * 0.3 * p.amplitude_factor
    # A labelled recording is one where the examiner heard the discharge: it peaks at
    # least DETECTABLE_SNR times the RMS of what it sits on, the amplifier noise and any
    # mixture background (else the needle would be moved closer).
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    floor = DETECTABLE_SNR * math.hypot(p.noise_uv_rms, float(np.sqrt(np.mean(mixture**2))))
    if label in _DETECTABLE and 0.0 < peak < floor:
        x *= floor / peak
    if not with_background:
        return Synthesized(label, fs, x, spans, events, p)
    info = {"mixture": p.mixture, "discharge_peak_uv": float(np.max(np.abs(x))),
            "background_rms_uv": floor / DETECTABLE_SNR}
    x = x + mixture
    if p.mixture:  # quiet stretches between discharges show the background's own class
        spans = quiet_spans_as(spans, p.mixture)
    x = amplifier(x + background(rng, n, fs, p), fs, p)
    return Synthesized(label, fs, x, spans, events, p, info)


def patient_dict(p: Patient) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(p).items()}
