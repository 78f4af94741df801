"""How far :func:`edge.muap.measures.measure` reads a MUAP's duration from the truth on
templates that carry slow after-waves and noise, as real ones do (issue 30, item 1).

Recordings of :func:`convert.dense.dense_contraction` (both simulators, healthy, myopathic
and neurogenic pools, :data:`UNITS` active units, :data:`DURATION_S` each). Each is drawn
twice from one seed: as it is, and with :func:`convert.dense.with_after_wave` drawing the
same random numbers but adding nothing (:func:`clean_twin`), so the same units fire at the
same times and their potentials are known **before** the after-wave was added. A unit's
**true duration** (:func:`true_duration_ms`) is Stålberg's definition on that noiseless
potential: from the first to the last departure from baseline by more than
:data:`TRUE_BASELINE_UV` that still changes by more than :data:`TRUE_SLOPE_UV_PER_MS`
(the amplifier high-pass's slow tail is not the MUAP), fixed here so that it does not move
when ``measure`` does.

Two readings are compared with it, per unit:

- **(a) true template + after-wave + noise**: the unit's potential with its after-wave
  (the recording's own truth potential), placed as a decomposition places a template (its
  largest peak at the firing, ``DecompositionConfig.template_ms`` around it), plus the
  noise a median template of N discharges carries: the median of N segments of the same
  recording at random times (the other units' activity, the tissue and amplifier noise,
  none of it time-locked to the unit), N drawn from :data:`DISCHARGES`; at the analysis
  rate, with ``noise_uv`` computed as the decomposition computes it. Units countable in
  the sense of :mod:`benches.dense_muap` (≥ 20 firings, peak-to-peak ≥ 2.5 × the
  recording's RMS: those a decomposition can find).
- **(b) decomposed**: the templates :func:`edge.muap.decomposition.decompose` finds, matched
  to truth by their firings (:func:`benches.dense_muap.score`, F1 ≥ 0.8) and measured
  only when :mod:`edge.muap.validity` calls them valid (as ``nemg muap`` does).

Reported per simulator, pool and reading: units, median and 90th percentile of the
absolute error and the median signed error (ms). :data:`SEEDS`: "choose" is the draw the
measure's parameters were chosen on, "held_out" the one reported; both differ from
``benches.muap_bench.PATIENT_SEED`` and ``benches.dense_muap.SEEDS``.

``python -m benches.muap_duration [--seeds choose|held_out] [--quick]``: JSON on stdout
(about a minute of CPU on one core; ``--quick``: one recording per cell).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any
from unittest import mock

import numpy as np

from convert import dense
from convert.dense import POOLS, SIMULATORS, DenseContraction, dense_contraction

SEEDS = {"choose": 30_101, "held_out": 30_307}
"""The two draws: each recording's generator is seeded by (this, simulator, pool, index)."""
UNITS = (6, 8, 10)
"""Active units of each cell's recordings (one recording each)."""
DURATION_S = 10.0
DISCHARGES = (20, 50)
"""Discharges a template of reading (a) is the median of (uniform, inclusive)."""
TRUE_BASELINE_UV = 10.0
"""Stålberg et al. 1986's baseline criterion, on the noiseless potential."""
TRUE_SLOPE_UV_PER_MS = 10.0
"""The slope a departure must still have within ±``TRUE_SLOPE_WINDOW_MS`` (the amplifier
high-pass's tail after a MUAP's net area is not the MUAP: ``MeasureConfig``'s value)."""
TRUE_SLOPE_WINDOW_MS = 0.5
TRUE_GAP_MS = 3.0
"""A stretch of this long below the criteria ends the MUAP (a late component beyond it is a
satellite, outside the duration: Stålberg et al. 1986)."""

READINGS = ("a", "a0", "b")
"""(a) with after-wave and noise, (a0) the same noise without the after-wave (what the
after-wave alone costs is the difference), (b) decomposed."""

MeasureFn = Callable[[np.ndarray, float, float], float]
"""(template µV, rate Hz, template noise µV) -> duration ms."""


def _no_after_wave(v: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
    """``with_after_wave``'s random draws, without the after-wave (the twin stays in step)."""
    a = dense.PARAMS["after_wave"]
    rng.uniform(*a["share_of_ptp"])
    rng.uniform(*a["tau_ms"])
    return np.array(v, dtype=np.float64)


@contextmanager
def _without_after_waves():
    with mock.patch.object(dense, "with_after_wave", _no_after_wave):
        yield


def clean_twin(simulator: str, n_units: int, pool: str, seed: list[int]
               ) -> tuple[DenseContraction, dict[int, np.ndarray]]:
    """The recording drawn from ``seed``, and its units' potentials without after-waves
    (same units, same firings: the twin draws the same random numbers)."""
    rec = dense_contraction(simulator, n_units, pool, np.random.default_rng(seed),
                            duration_s=DURATION_S)
    with _without_after_waves():
        twin = dense_contraction(simulator, n_units, pool, np.random.default_rng(seed),
                                 duration_s=DURATION_S)
    assert all(np.array_equal(rec.firings_s[u], twin.firings_s[u]) for u in rec.firings_s)
    return rec, twin.potentials_uv


def true_span(v: np.ndarray, fs: float) -> tuple[int, int] | None:
    """First and last sample of Stålberg's duration of a noiseless potential (module doc)."""
    from scipy.ndimage import maximum_filter1d

    rate = np.abs(np.gradient(v)) * fs / 1000.0
    half = max(1, round(TRUE_SLOPE_WINDOW_MS * fs / 1000))
    above = (np.abs(v) > TRUE_BASELINE_UV) & (maximum_filter1d(rate, 2 * half + 1)
                                              > TRUE_SLOPE_UV_PER_MS)
    idx = np.flatnonzero(above)
    if not idx.size:
        return None
    # runs closer than the gap are one stretch; the MUAP is the stretch with its peak
    breaks = np.flatnonzero(np.diff(idx) > TRUE_GAP_MS * fs / 1000)
    starts, ends = idx[np.r_[0, breaks + 1]], idx[np.r_[breaks, idx.size - 1]]
    peak = int(np.argmax(np.abs(v)))
    k = int(np.argmin(np.where((starts <= peak) & (ends >= peak), 0,
                               np.minimum(np.abs(starts - peak), np.abs(ends - peak)))))
    return int(starts[k]), int(ends[k])


def true_duration_ms(v: np.ndarray, fs: float) -> float:
    """Stålberg's duration of a noiseless potential (module doc), ms."""
    span = true_span(v, fs)
    return (span[1] - span[0] + 1) * 1000.0 / fs if span else 0.0


def _window(v: np.ndarray, fs: float) -> np.ndarray:
    """``v`` placed as a decomposition's template: its largest peak at the firing,
    ``template_ms`` around it."""
    from edge.muap.decomposition import DecompositionConfig

    lo, hi = DecompositionConfig().template_ms
    a, b = round(-lo * fs / 1000), round(hi * fs / 1000)
    out = np.zeros(a + b)
    peak = int(np.argmax(np.abs(v)))
    src = v[max(0, peak - a): peak + b]
    start = a - min(peak, a)
    out[start: start + src.size] = src
    return out


def _background(x: np.ndarray, width: int, n: int, rng: np.random.Generator
                ) -> tuple[np.ndarray, float]:
    """The median of ``n`` segments of ``x`` at random times, and its noise as the
    decomposition estimates a template's (the segments' spread ÷ √n)."""
    at = rng.integers(0, x.size - width, n)
    segs = np.stack([x[i: i + width] for i in at])
    return np.median(segs, axis=0), float(np.median(segs.std(axis=0))) / np.sqrt(n)


def cases(seeds: str = "held_out", quick: bool = False) -> list[dict[str, Any]]:
    """Every template to measure, with its truth: dicts of simulator, pool, reading
    ("a" or "b"), true_ms, template_uv, fs, noise_uv (see the module doc)."""
    from benches.dense_muap import FOUND_F1, MIN_FIRINGS, VISIBLE_PTP_RMS, score
    from edge.muap.decomposition import ANALYSIS_RATE_HZ, decompose, upsample
    from edge.muap.validity import VALID, train_validity

    out: list[dict[str, Any]] = []
    for si, sim in enumerate(SIMULATORS):
        for pi, pool in enumerate(POOLS):
            for k, n in enumerate(UNITS[:1] if quick else UNITS):
                rec, clean = clean_twin(sim, n, pool, [SEEDS[seeds], si, pi, k])
                fs, x = rec.fs, rec.signal_uv
                up = max(1, -(-ANALYSIS_RATE_HZ // fs))
                x_up = upsample(x, up)  # what the decomposition's templates are cut from
                rms = float(np.sqrt(np.mean(np.square(x))))
                rng = np.random.default_rng([SEEDS[seeds], si, pi, k, 1])
                clean = {u: _window(upsample(v, up), fs * up) for u, v in clean.items()}
                truth = {u: true_duration_ms(v, fs * up) for u, v in clean.items()}
                base = {"simulator": sim, "pool": pool, "units": n, "index": k}
                for u, v in rec.potentials_uv.items():
                    if rec.firings_s[u].size < MIN_FIRINGS or np.ptp(v) < VISIBLE_PTP_RMS * rms:
                        continue
                    t = _window(upsample(v, up), fs * up)
                    noise, noise_uv = _background(x_up, t.size, int(rng.integers(
                        DISCHARGES[0], DISCHARGES[1] + 1)), rng)
                    for reading, w in (("a", t), ("a0", clean[u])):
                        out.append({**base, "reading": reading, "unit": u, "true_ms": truth[u],
                                    "template_uv": w + noise, "fs": fs * up,
                                    "noise_uv": noise_uv, "clean_uv": clean[u]})
                units = decompose(x, fs)
                s = score([f.firings_s for f in units], rec)
                for m in s["units"]:
                    if m["found_unit"] is None or m["f1"] < FOUND_F1:
                        continue
                    f = units[m["found_unit"]]
                    if train_validity(f.firings_s, float(np.ptp(f.template_fine_uv)),
                                      float(np.std(x)))["verdict"] != VALID:
                        continue
                    out.append({**base, "reading": "b", "unit": m["unit"],
                                "true_ms": truth[m["unit"]], "template_uv": f.template_fine_uv,
                                "fs": f.analysis_rate_hz, "noise_uv": f.template_noise_uv})
    return out


def current_measure(template_uv: np.ndarray, fs: float, noise_uv: float) -> float:
    """The project's duration (:func:`edge.muap.measures.measure`)."""
    from edge.muap.measures import measure

    return float(measure(template_uv, fs, noise_uv=noise_uv)["duration_ms"])


def _stats(err: list[float]) -> dict[str, Any]:
    if not err:
        return {"units": 0}
    e = np.asarray(err)
    return {"units": int(e.size), "median_abs_ms": round(float(np.median(np.abs(e))), 2),
            "p90_abs_ms": round(float(np.percentile(np.abs(e), 90)), 2),
            "median_signed_ms": round(float(np.median(e)), 2)}


def evaluate(all_cases: list[dict[str, Any]], measure_fn: MeasureFn = current_measure
             ) -> dict[str, Any]:
    """Errors (measured − true, ms) of ``measure_fn`` on ``all_cases``: per reading, per
    simulator and pool, and over everything."""
    for c in all_cases:
        c["measured_ms"] = measure_fn(c["template_uv"], c["fs"], c["noise_uv"])
        c["error_ms"] = c["measured_ms"] - c["true_ms"]
    out: dict[str, Any] = {}
    for reading in READINGS:
        mine = [c for c in all_cases if c["reading"] == reading]
        part: dict[str, Any] = {"all": _stats([c["error_ms"] for c in mine])}
        for sim in SIMULATORS:
            part[sim] = {pool: _stats([c["error_ms"] for c in mine
                                       if c["simulator"] == sim and c["pool"] == pool])
                         for pool in POOLS}
            part[sim]["all"] = _stats([c["error_ms"] for c in mine if c["simulator"] == sim])
        out[reading] = part
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m benches.muap_duration``: the current duration's errors, JSON."""
    import argparse
    import json

    from benches.harness import pin_to_one_cpu

    ap = argparse.ArgumentParser(prog="python -m benches.muap_duration",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", choices=tuple(SEEDS), default="held_out")
    ap.add_argument("--quick", action="store_true", help="one recording per cell")
    args = ap.parse_args(argv)
    pin_to_one_cpu()
    t0 = time.process_time()
    c = cases(args.seeds, args.quick)
    res = {"seeds": args.seeds, "seed": SEEDS[args.seeds], "units_per_recording": UNITS,
           "discharges_a": DISCHARGES, **evaluate(c),
           "cost_cpu_s": round(time.process_time() - t0, 1)}
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
