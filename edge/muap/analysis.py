"""The MUAP analysis of one recording: checked, decomposed, each unit measured, the
site summarised and interpreted (what ``nemg muap`` and the live monitor run)."""

from __future__ import annotations

import numpy as np

from edge.errors import InputError
from edge.muap.decomposition import DecompositionConfig, decompose
from edge.muap.interpretation import interpret, summarize_site
from edge.muap.measures import duration_sd_ms, unit_dict
from edge.muap.validity import DEFAULT_VALIDITY, ValidityConfig, train_validity

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
            validity: ValidityConfig = DEFAULT_VALIDITY) -> dict:
    """Decomposition, each unit's validity, the measures of the valid ones, the site
    summary and its interpretation."""
    check_contraction(x_uv, fs)
    rms = float(np.std(x_uv))
    found = decompose(x_uv, fs, config)
    units = [unit_dict(u, fs, train_validity(u.firings_s, float(np.ptp(u.template_fine_uv)),
                                             rms, validity))
             for u in found]
    span = (config or DecompositionConfig()).template_ms
    for u, d in zip(found, units, strict=True):
        if d["measured"]:  # each measured unit's duration with its uncertainty
            d["duration_sd_ms"] = duration_sd_ms(x_uv, fs, u.firings_s, span)
    summary = summarize_site(units)
    if not units:
        interpretation = {"finding": "indeterminate", "reference": None,
                          "evidence": ["no steadily firing motor unit found: is the muscle "
                                       "contracting, and the needle in it?"]}
    else:
        interpretation = interpret(summary, muscle, age, fs)
    return {"units": units, "summary": summary, "interpretation": interpretation}
