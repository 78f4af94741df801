"""``nemg bench resample``: alias rejection, pass-band ripple and speed of the fixed-point
resampler, with scipy's ``resample_poly`` timed in the same run (on a workstation)."""

from __future__ import annotations

from typing import Any

import numpy as np

from benches.harness import BenchOptions, measure_interleaved
from edge.resample import ratio, resample_int16
from edge.spec import DEFAULT_SPEC

RATES = (4000, 16_000, 23_437.5, 44_100, 48_000)
OUT = DEFAULT_SPEC.mel.sample_rate_hz


def _gain_db(y: np.ndarray, f: float, fs: float, amplitude: float) -> float:
    """Amplitude of the tone ``f`` in ``y`` (least squares: no partial-cycle bias)."""
    t = np.arange(y.size) / fs
    basis = np.stack([np.sin(2 * np.pi * f * t), np.cos(2 * np.pi * f * t)], axis=1)
    coef, *_ = np.linalg.lstsq(basis, y.astype(np.float64), rcond=None)
    return float(20 * np.log10(np.hypot(*coef) / amplitude + 1e-12))


def quality(rate: float) -> dict[str, float]:
    """Pass-band ripple up to 0.8 of the lower Nyquist (the model's 8 kHz at 20 kHz), and
    the rejection of every tone that would fold back into that band."""
    t = np.arange(int(rate)) / rate
    amp = 10_000.0

    def out(f: float) -> np.ndarray:
        x = np.round(amp * np.sin(2 * np.pi * f * t)).astype(np.int16)
        return resample_int16(x, rate, OUT)[2000:-2000]

    band_top = 0.8 * min(rate, OUT) / 2
    band = [_gain_db(out(f), f, OUT, amp) for f in np.linspace(50, band_top, 9)]
    res = {"passband_ripple_db": max(band) - min(band)}
    if rate / 2 > OUT / 2:  # tones above the output's Nyquist fold to OUT − f
        folds = np.linspace(OUT - band_top, rate / 2 * 0.99, 9)
        res["alias_rejection_db"] = -max(_gain_db(out(f), OUT - f, OUT, amp) for f in folds)
    return res


def run(opts: BenchOptions) -> dict[str, Any]:
    seconds = 2.0 if opts.quick else 30.0
    rng = np.random.default_rng(0)
    per_rate: dict[str, Any] = {}
    for rate in RATES:
        x = rng.normal(0, 3000, int(rate * seconds)).astype(np.int16)
        cands = {"nemg": lambda x=x, rate=rate: resample_int16(x, rate, OUT)}
        try:
            from scipy.signal import resample_poly

            up, down = ratio(rate, OUT)
            xf = x.astype(np.float64)
            cands["scipy_resample_poly"] = lambda xf=xf, up=up, down=down: \
                resample_poly(xf, up, down)
        except ImportError:  # a box: ours alone
            pass
        t = measure_interleaved(cands, repeats=opts.repeats, warmup=opts.warmup)
        row = {"realtime_factor": seconds / t["nemg"].cpu_s, **quality(rate)}
        if "scipy_resample_poly" in t:
            row["speed_vs_scipy"] = t["scipy_resample_poly"].cpu_s / t["nemg"].cpu_s
        per_rate[f"{rate:g}"] = row
    return {
        "to_hz": OUT,
        "alias_rejection_db_min": min(r["alias_rejection_db"] for r in per_rate.values()
                                      if "alias_rejection_db" in r),
        "passband_ripple_db_max": max(r["passband_ripple_db"] for r in per_rate.values()),
        "realtime_factor_min": min(r["realtime_factor"] for r in per_rate.values()),
        "rates": per_rate,
    }
