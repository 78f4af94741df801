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
    (or ``noise_factor`` × the template's own baseline noise, whichever is larger) ..."""
    noise_factor: float = 4.0
    """... the noise measured per unit on the template itself: the standard deviation of
    its smoothed first and last eighths (5 ms each of a 40 ms template), where the unit is
    absent and what is left is the others' activity and the electrode's noise the median
    of its discharges kept — a baseline criterion relative to the template's noise, as the
    automatic duration algorithms use on averaged MUAPs (Stålberg et al. 1986; Nandedkar
    et al. 1995). Measured rather than taken from the discharges' spread ÷ √n, which the
    other units' spikes inflate (≈ 5× the median template's noise on the simulators, whose
    template noise is also slow: smoothing does not lower it). The factor is ours, chosen
    with ``slope_share`` on both simulators' units with after-waves and noise added
    (``python -m benches.muap_duration --seeds choose``), never on a real recording."""
    slope_uv_per_ms: float = 10.0
    """... that is also changing by more than this (the fastest slope within
    ``slope_window_ms``): amplitude and slope criteria together, the form of the automatic
    duration algorithms (Stålberg et al. 1986; Nandedkar et al. 1995). A slow shift of
    the baseline — the amplifier high-pass's tail after a MUAP's net area, a monopolar
    needle's far field — is not the MUAP. The value is ours, chosen on the biophysical
    simulator: the smallest that makes a unit's duration the same through a 2 Hz and a
    20 Hz high-pass (median difference 1.2 ms → 0.4 ms) while moving the 2 Hz durations by
    ≤ 0.2 ms; not tuned on any real recording. It decides how far the MUAP's own tail is
    followed (``tail_tolerance``)."""
    slope_share: float = 0.08
    """The MUAP's fast part: departures changing by more than this share of the template's
    own fastest slope. A slow after-wave following the last fast phase — the terminal tail
    that reaches baseline several ms later (McGill & Lateva 1997), which the median of the
    discharges keeps because it is time-locked — changes at a few % of the spike's rate
    and is not the MUAP; a slope criterion relative to the MUAP's own peak slope rejects it
    whatever the unit's size, where a fixed µV/ms lets a large unit's tail through. Chosen
    on the simulators (as ``noise_factor``): 0.06–0.08 gave the smallest errors; 0.08
    halves synth's errors at a cost within the scatter on biosim."""
    tail_tolerance: float = 0.25
    """From the fast part, the duration follows the MUAP's own tail outwards while it
    still meets the baseline and ``slope_uv_per_ms`` criteria and heads to baseline: it
    stops at a baseline crossing, or where the tail turns away from baseline by more than
    this share of the baseline criterion (the start of a slow wave that is not the MUAP's
    decay). Chosen on the simulators with the other two."""
    slope_window_ms: float = 0.5
    """Half-width of the span the slope criteria look at (the peak of a phase, where
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
    "duration_ms": "first to last departure from baseline (MeasureConfig.baseline_uv, "
                   "noise_factor × the template's noise) changing faster than slope_share of "
                   "its peak slope, followed along the MUAP's own tail to baseline "
                   "(slope_uv_per_ms, tail_tolerance); a slow after-wave is not counted",
    "duration_sd_ms": "the duration's uncertainty: half the difference of the durations "
                      "of the medians of the odd and of the even discharges (analysis only)",
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


def _fastest(v: np.ndarray, half: int, fs: float) -> np.ndarray:
    """The fastest slope (µV/ms) within ± ``half`` samples of each sample."""
    from numpy.lib.stride_tricks import sliding_window_view

    rate = np.abs(np.gradient(v)) * fs / 1000.0
    return sliding_window_view(np.pad(rate, half, mode="edge"), 2 * half + 1).max(axis=1)


def _tail(v: np.ndarray, above: np.ndarray, start: int, step: int, tol: float) -> int:
    """From ``start``, the last sample of the MUAP's tail in direction ``step``: ``above``
    and heading to baseline (no crossing; |v| never ``tol`` over its lowest so far)."""
    i, low, sign = start, abs(float(v[start])), np.sign(v[start])
    while 0 <= i + step < v.size and above[i + step]:
        nxt = float(v[i + step])
        if np.sign(nxt) != sign or abs(nxt) > low + tol:
            break
        i += step
        low = min(low, abs(nxt))
    return i


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
    """The measures of one averaged MUAP. ``noise_uv``: the template's noise as the
    decomposition estimates it (the spread of its discharges ÷ √n): turns are at least 3×
    it. The duration's baseline criterion measures the template's noise itself
    (``MeasureConfig.noise_factor``)."""
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
    # (the smoothing's own ends, where it runs off the template, left out)
    inner = k if edge > 2 * k else 0
    rest = np.concatenate([smooth[inner:edge], smooth[v.size - edge: v.size - inner]])
    level = max(c.baseline_uv, c.noise_factor * float(rest.std()))
    if not np.any(np.abs(smooth) > level):
        return {"amplitude_uv": 0.0, "duration_ms": 0.0, "phases": 0, "turns": 0,
                "area_uv_ms": 0.0, "thickness_ms": 0.0, "size_index": None,
                "onset_ms": None, "end_ms": None}
    # the fast part (slope relative to the MUAP's own peak slope), then its own tails
    fastest = _fastest(smooth, max(1, round(c.slope_window_ms * fs / 1000)), fs)
    big = np.abs(smooth) > level
    fast = big & (fastest > max(c.slope_uv_per_ms, c.slope_share * float(fastest.max())))
    on, off = _extent(smooth, fast, max(1, round(c.quiet_ms * fs / 1000)))
    changing = big & (fastest > c.slope_uv_per_ms)
    on = _tail(smooth, changing, on, -1, c.tail_tolerance * level)
    off = _tail(smooth, changing, off, 1, c.tail_tolerance * level)
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


def discharges(x_uv: np.ndarray, fs: float, firings_s: np.ndarray,
               span_ms: tuple[float, float]) -> np.ndarray:
    """The signal ``span_ms`` around each firing that lies wholly inside it (rows)."""
    a, b = round(-span_ms[0] * fs / 1000), round(span_ms[1] * fs / 1000)
    at = np.round(np.asarray(firings_s) * fs).astype(np.int64)
    at = at[(at - a >= 0) & (at + b < x_uv.size)]
    return np.stack([x_uv[i - a: i + b] for i in at]) if at.size else np.zeros((0, a + b))


MIN_DISCHARGES = 16
"""Discharges a median template needs for the analysis's own measures (8 a half for the
split-half uncertainty)."""


def marked_inside(m: dict, n_samples: int, fs: float, shift_ms: float = 0.0) -> bool:
    """Whether :func:`measure` could place the duration's markers (``shift_ms`` later on
    the axis of a template of ``n_samples`` at ``fs``), and inside the part of that
    template that is not its baseline (the first and last eighth, where the noise and the
    baseline are measured): a MUAP that runs into them is longer than the template."""
    if m["onset_ms"] is None:
        return False
    edge_ms = max(1, n_samples // 8) * 1000.0 / fs
    return (m["onset_ms"] + shift_ms >= edge_ms
            and m["end_ms"] + shift_ms <= n_samples * 1000.0 / fs - edge_ms)


def split_half_sd_ms(seg: np.ndarray, fs: float, config: MeasureConfig | None = None
                     ) -> float | None:
    """The uncertainty of a duration (ms) from a unit's discharges ``seg`` (rows, at
    ``fs``): half the difference between the durations of the median of its odd and of its
    even discharges. Two independent halves each carry √2 × the full template's noise, so
    their difference spreads twice as much as the full template's duration does (a
    split-half estimate). None with fewer than 8 discharges a half."""
    if len(seg) < MIN_DISCHARGES:
        return None
    d = [measure(np.median(half, axis=0), fs, config)["duration_ms"]
         for half in (seg[::2], seg[1::2])]
    return round(abs(d[0] - d[1]) / 2, 2)


def duration_sd_ms(x_uv: np.ndarray, fs: float, firings_s: np.ndarray,
                   span_ms: tuple[float, float], config: MeasureConfig | None = None
                   ) -> float | None:
    """:func:`split_half_sd_ms` of the discharges ``span_ms`` around each firing, at the
    file's rate ``fs``."""
    return split_half_sd_ms(discharges(x_uv, fs, firings_s, span_ms), fs, config)


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
