"""The standard measures of one MUAP (:func:`measure`), made on a unit's averaged
wide-band template with the definitions of Stålberg et al. 1986 (J Clin Neurophysiol
3:313) and Sonoo & Stålberg 1993 (size index), see :data:`MEASURES`; and a unit's
firing rate and regularity."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.muap.decomposition import Unit, steady_intervals
from edge.muap.validity import VALID


@dataclass(frozen=True)
class MeasureConfig:
    """Criteria of the measures (Stålberg et al. 1986, J Clin Neurophysiol 3:313)."""

    baseline_uv: float = 10.0
    """Duration runs from the first to the last departure from baseline by more than this
    (or 3× the template's own edge noise, whichever is larger) ..."""
    slope_uv_per_ms: float = 10.0
    """... that is also changing by more than this (the fastest slope within
    ``slope_window_ms``): amplitude and slope criteria together, the form of the automatic
    duration algorithms (Stålberg et al. 1986; Nandedkar et al. 1995). A slow shift of
    the baseline — the amplifier high-pass's tail after a MUAP's net area, a monopolar
    needle's far field — is not the MUAP. The value is ours, chosen on the biophysical
    simulator: the smallest that makes a unit's duration the same through a 2 Hz and a
    20 Hz high-pass (median difference 1.2 ms → 0.4 ms) while moving the 2 Hz durations by
    ≤ 0.2 ms; not tuned on any real recording."""
    slope_window_ms: float = 0.5
    """Half-width of the span the slope criterion looks at (the peak of a phase, where
    the slope is zero, belongs to the MUAP)."""
    turn_uv: float = 25.0
    """A turn is a change of direction by at least this much on both sides."""
    phase_uv: float = 20.0
    """A phase must reach this far from baseline to count (noise crossings do not)."""
    polyphasic_phases: int = 5
    """Phases at which a MUAP is polyphasic (more than four)."""
    quiet_ms: float = 3.0
    """The MUAP ends where the template stays within the baseline band this long."""
    smooth_ms: float = 0.5
    """Moving average the onset and end are judged on (not the amplitude or phases)."""


MEASURES = {
    "amplitude_uv": "peak-to-peak of the template within its duration",
    "duration_ms": "first to last departure from baseline (MeasureConfig.baseline_uv) that "
                   "is still changing (MeasureConfig.slope_uv_per_ms)",
    "phases": "baseline crossings within the duration + 1, each phase ≥ phase_uv",
    "turns": "changes of direction ≥ turn_uv on both sides",
    "area_uv_ms": "integral of |template| over the duration",
    "thickness_ms": "area ÷ amplitude (Nandedkar et al. 1988)",
    "size_index": "2·log10(amplitude in mV) + thickness (Sonoo & Stålberg 1993)",
    "onset_ms, end_ms": "where the duration starts and ends, from the template's start",
}


def _turns(v: np.ndarray, min_uv: float) -> int:
    """Direction changes with ≥ ``min_uv`` excursions on both sides (hysteresis)."""
    turns, direction = 0, 0
    lo = hi = ext = float(v[0])
    for s in v[1:]:
        s = float(s)
        if direction == 0:
            lo, hi = min(lo, s), max(hi, s)
            if s - lo >= min_uv:
                direction, ext = 1, s
            elif hi - s >= min_uv:
                direction, ext = -1, s
        elif (s - ext) * direction > 0:
            ext = s  # still going the same way
        elif abs(s - ext) >= min_uv:
            turns += 1
            direction, ext = -direction, s
    return turns


def _active(v: np.ndarray, level: float, slope: float, half: int, fs: float) -> np.ndarray:
    """Samples departing from baseline by more than ``level`` (µV) whose neighbourhood of
    ± ``half`` samples changes by more than ``slope`` (µV/ms) somewhere."""
    from numpy.lib.stride_tricks import sliding_window_view

    rate = np.abs(np.gradient(v)) * fs / 1000.0
    fastest = sliding_window_view(np.pad(rate, half, mode="edge"), 2 * half + 1).max(axis=1)
    return (np.abs(v) > level) & (fastest > slope)


def _extent(v: np.ndarray, above: np.ndarray, gap: int) -> tuple[int, int]:
    """First and last ``above`` sample reached from the main peak of ``v`` without a run of
    ``gap`` samples that are not: the MUAP, not a stray bump of the baseline."""
    peak = int(np.argmax(np.abs(v)))
    on = off = peak
    quiet = 0
    for i in range(peak - 1, -1, -1):
        quiet = 0 if above[i] else quiet + 1
        if quiet >= gap:
            break
        if above[i]:
            on = i
    quiet = 0
    for i in range(peak + 1, v.size):
        quiet = 0 if above[i] else quiet + 1
        if quiet >= gap:
            break
        if above[i]:
            off = i
    return on, off


def measure(template_uv: np.ndarray, fs: float, config: MeasureConfig | None = None,
            noise_uv: float = 0.0) -> dict[str, float]:
    """The measures of one averaged MUAP. ``noise_uv``: the template's own noise (the
    spread of its discharges ÷ √n); the baseline criterion is at least 3× it."""
    c = config or MeasureConfig()
    v = np.asarray(template_uv, dtype=np.float64)
    edge = max(1, v.size // 8)
    # the baseline may differ before and after (a slow tail, the others' activity): a
    # straight line between the two edges' medians
    before, after = float(np.median(v[:edge])), float(np.median(v[-edge:]))
    v = v - np.interp(np.arange(v.size), [edge / 2, v.size - edge / 2], [before, after])
    # where the MUAP starts and ends is judged on the template smoothed over smooth_ms:
    # its slow tails outlast the others' fast spikes that make the template's noise
    k = max(1, round(c.smooth_ms * fs / 1000))
    smooth = np.convolve(v, np.ones(k) / k, mode="same")
    rest = np.concatenate([smooth[:edge], smooth[-edge:]])
    level = max(c.baseline_uv, 3 * float(rest.std()), 3 * noise_uv / math.sqrt(k))
    if not np.any(np.abs(smooth) > level):
        return {"amplitude_uv": 0.0, "duration_ms": 0.0, "phases": 0, "turns": 0,
                "area_uv_ms": 0.0, "thickness_ms": 0.0, "size_index": None,
                "onset_ms": None, "end_ms": None}
    active = _active(smooth, level, c.slope_uv_per_ms,
                     max(1, round(c.slope_window_ms * fs / 1000)), fs)
    on, off = _extent(smooth, active, max(1, round(c.quiet_ms * fs / 1000)))
    w = v[on: off + 1]
    amp = float(np.ptp(w))
    ms = 1000.0 / fs
    # phases: sign changes between excursions that reach phase_uv
    signs = []
    # phases last ≥ 1 ms: counted on the smoothed template, its own noise 3× below
    ws = smooth[on: off + 1]
    for s in np.sign(ws[np.abs(ws) >= max(c.phase_uv, level)]):
        if not signs or s != signs[-1]:
            signs.append(s)
    area = float(np.abs(w).sum() * ms)
    thick = area / amp if amp else 0.0
    return {"amplitude_uv": round(amp, 1), "duration_ms": round((off - on + 1) * ms, 2),
            "phases": len(signs), "turns": _turns(w, max(c.turn_uv, 3 * noise_uv)),
            "area_uv_ms": round(area, 1), "thickness_ms": round(thick, 3),
            "size_index": round(2 * math.log10(amp / 1000) + thick, 3) if amp else None,
            "onset_ms": round(on * ms, 2), "end_ms": round(off * ms, 2)}


def firing_stats(firings_s: np.ndarray) -> dict[str, float]:
    """Mean firing rate (1 / mean interval, missed discharges — intervals over twice the
    median — left out) and the intervals' coefficient of variation."""
    if len(firings_s) < 2:
        return {"firing_rate_hz": 0.0, "isi_cv": float("nan")}
    isi = steady_intervals(firings_s)
    return {"firing_rate_hz": round(float(1 / isi.mean()), 2),
            "isi_cv": round(float(isi.std() / isi.mean()), 3)}


def unit_dict(u: Unit, fs: float, validity: dict | None = None) -> dict:
    """A unit as ``nemg muap --json`` writes it (``fs``: the file's rate). With its
    ``validity`` (:func:`edge.muap.validity.train_validity`): a unit flagged merged or
    uncertain is not measured (its template and firings only, and why)."""
    measured = validity is None or validity["verdict"] == VALID
    return {"id": u.id, "firings_s": [round(float(t), 5) for t in u.firings_s],
            **(measure(u.template_fine_uv, u.analysis_rate_hz, noise_uv=u.template_noise_uv)
               if measured else {}),
            **firing_stats(u.firings_s),
            "template_uv": [round(float(v), 1) for v in u.template_uv],
            "template_rate_hz": fs, "measured": measured,
            **({"validity": validity} if validity is not None else {})}
