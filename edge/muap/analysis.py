"""The MUAP analysis of one recording: checked, decomposed, each unit measured, the
site summarised and interpreted (what ``nemg muap`` and the live monitor run)."""

from __future__ import annotations

import numpy as np

from edge.errors import InputError
from edge.muap.decomposition import DecompositionConfig, decompose
from edge.muap.interpretation import interpret, summarize_muscle, summarize_site
from edge.muap.measures import (
    MIN_DISCHARGES,
    discharges,
    duration_sd_ms,
    marked_inside,
    measure,
    split_half_sd_ms,
    unit_dict,
)
from edge.muap.validity import DEFAULT_VALIDITY, UNCERTAIN, ValidityConfig, train_validity

MIN_CONTRACTION_S = 2.0
"""Shortest recording analysed: a unit at 8 Hz fires 16 times (the seeding needs 8)."""


def check_contraction(x_uv: np.ndarray, fs: float, min_s: float = MIN_CONTRACTION_S) -> None:
    """Refuse what cannot be decomposed honestly (too short, or clipped)."""
    if x_uv.size / fs < min_s:
        raise InputError(f"{x_uv.size / fs:.2f} s is too short for MUAP analysis "
                         f"(need ≥ {min_s:g} s of steady contraction; 5–30 s is usual)")
    peak = float(np.max(np.abs(x_uv)))
    if peak > 0 and np.mean(np.abs(x_uv) >= 0.999 * peak) > 0.001:
        raise InputError("the signal is clipped (0.1 % of samples at full scale): "
                         "MUAP amplitudes would be wrong")


def analyse(x_uv: np.ndarray, fs: float, *, muscle: str | None = None,
            age: float | None = None, config: DecompositionConfig | None = None,
            validity: ValidityConfig = DEFAULT_VALIDITY,
            reference: tuple[str, dict] | None = None) -> dict:
    """Decomposition, each unit's validity, the measures of the valid ones, the site
    summary and its interpretation (against ``reference``, a lab's own, when given)."""
    check_contraction(x_uv, fs)
    rms = float(np.std(x_uv))
    found = decompose(x_uv, fs, config)
    units = [unit_dict(u, fs, train_validity(u.firings_s, float(np.ptp(u.template_fine_uv)),
                                             rms, validity))
             for u in found]
    span = (config or DecompositionConfig()).template_ms
    units = [_contained(u, d, x_uv, fs, span) if d["measured"] else d
             for u, d in zip(found, units, strict=True)]
    summary = summarize_site(units)
    interpretation = _no_unit() if not units else interpret(summary, muscle, age, fs,
                                                            reference)
    return {"sample_rate_hz": fs, "units": units, "summary": summary,
            "interpretation": interpretation}


WIDE_SPAN_FACTOR = 2.0
"""Each measured unit is also looked at on a template this many times as wide as the
decomposition's (±40 ms): a MUAP that runs into the ±20 ms template's baseline eighths (a
long neurogenic unit, 20–35 ms) makes that template's own baseline and noise wrong, and is
measured on the wide one."""


def _contained(u, d: dict, x_uv: np.ndarray, fs: float,
               span: tuple[float, float]) -> dict:
    """A measured unit's dict ``d`` as reported, with its duration's uncertainty: measured
    on its template when the MUAP, as a template twice as wide shows it (the median of its
    discharges at the file's rate), lies inside that template's inner part; on the wide
    template when it runs past it; flagged uncertain, unmeasured, when neither can mark
    its duration — a duration the markers cannot be placed on is not a short MUAP."""
    wide = (span[0] * WIDE_SPAN_FACTOR, span[1] * WIDE_SPAN_FACTOR)
    seg = discharges(x_uv, fs, u.firings_s, wide)  # its median, and its halves' medians
    t = np.median(seg, axis=0) if len(seg) >= MIN_DISCHARGES else None
    m = None if t is None else measure(t, fs, noise_uv=u.template_noise_uv)
    n, rate = len(u.template_fine_uv), u.analysis_rate_hz
    narrow_ok = marked_inside(d, n, rate)
    # the wide template's markers, on the narrow template's axis, inside its inner part?
    if m is not None and marked_inside(m, t.size, fs) and not (
            narrow_ok and marked_inside(m, n, rate, shift_ms=wide[0] - span[0])):
        return {**d, **m, "template_uv": [round(float(v), 1) for v in t],
                "template_span_ms": list(wide), "duration_sd_ms": split_half_sd_ms(seg, fs)}
    if narrow_ok:
        return {**d, "duration_sd_ms": duration_sd_ms(x_uv, fs, u.firings_s, span)}
    return unit_dict(u, fs, {**d["validity"], "verdict": UNCERTAIN,
                             "reason": "its duration cannot be marked: the potential "
                                       f"outlasts a {wide[1] - wide[0]:g} ms template or "
                                       "does not stand out of its baseline"})


def _no_unit() -> dict:
    """The reading when no unit was found (a new dict each time: callers may add to it)."""
    return {"finding": "indeterminate", "reference": None,
            "evidence": ["no steadily firing motor unit found: is the muscle contracting, "
                         "and the needle in it?"]}


def read_muscle(sites: list[dict], *, muscle: str | None = None, age: float | None = None,
                reference: tuple[str, dict] | None = None) -> dict:
    """One muscle's reading from the analyses of several of its needle sites
    (:func:`analyse`'s results): the units of every site
    pooled (:func:`edge.muap.interpretation.summarize_muscle`) and interpreted once."""
    summary = summarize_muscle([r["units"] for r in sites])
    if not any(r["units"] for r in sites):
        return {"summary": summary, "interpretation": _no_unit()}
    rate = min(r["sample_rate_hz"] for r in sites)  # one narrow site under-reads amplitude
    return {"summary": summary,
            "interpretation": interpret(summary, muscle, age, rate, reference)}
