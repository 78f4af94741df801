"""A site's summary over its units and its interpretation (within normal limits,
neurogenic, myopathic or indeterminate) against the reference values in
``edge/data/muap_reference.json``."""

from __future__ import annotations

import numpy as np

from edge.muap.measures import MeasureConfig
from edge.muap.validity import MERGED, UNCERTAIN

REFERENCE_FILE = "muap_reference.json"
MIN_UNITS = 3
"""Fewer units than this: no interpretation (a site's mean needs several MUAPs)."""


def reference_values(muscle: str | None) -> tuple[str, dict]:
    """(name, limits) for ``muscle`` from ``edge/data/muap_reference.json``; the generic
    limb limits when the muscle has no sourced entry."""
    import json
    from importlib import resources

    table = json.loads(resources.files("edge").joinpath("data", REFERENCE_FILE).read_text())
    key = (muscle or "").strip().lower().replace(" ", "_").replace("-", "_")
    if key in table["muscles"]:
        return key, {**table["muscles"][key], "recruitment": table["recruitment"]}
    return "any", {**table["any"], "recruitment": table["recruitment"]}


def summarize_site(units: list[dict]) -> dict:
    """Mean measures over the units measured (those the decomposition could trust:
    :mod:`edge.muap.validity`), the polyphasic share and recruitment; how many units were
    found, and each one's verdict."""
    found = {"units_found": len(units),
             "units_flagged": {v: sum(u.get("validity", {}).get("verdict") == v for u in units)
                               for v in (MERGED, UNCERTAIN)},
             "unit_verdicts": [{"id": u["id"], **{k: u["validity"][k] for k in
                                                  ("verdict", "ptp_to_rms")}}
                               for u in units if "validity" in u]}
    units = [u for u in units if u.get("measured", True)]
    if not units:
        return {"units": 0, **found}
    rates = [u["firing_rate_hz"] for u in units]
    return {
        **found,
        "units": len(units),
        "mean_amplitude_uv": round(float(np.mean([u["amplitude_uv"] for u in units])), 1),
        "mean_duration_ms": round(float(np.mean([u["duration_ms"] for u in units])), 2),
        "polyphasic_share": round(float(np.mean([u["phases"] >= MeasureConfig.polyphasic_phases
                                                 for u in units])), 3),
        "mean_firing_rate_hz": round(float(np.mean(rates)), 2),
        "max_firing_rate_hz": round(float(np.max(rates)), 2),
        "recruitment_ratio": round(float(np.mean(rates)) / len(units), 2),
    }


FULL_BAND_RATE_HZ = 10_000
"""Reference MUAP amplitudes are measured with the band a MUAP's spike needs (sampling
≥ 10 kHz; a 5 kHz low-pass already lowers amplitudes: ../shared/reference/discharges.md).
A file sampled slower under-reads amplitude: only a *high* amplitude is evidence then."""


def interpret(summary: dict, muscle: str | None = None, age: float | None = None,
              sample_rate_hz: float = FULL_BAND_RATE_HZ) -> dict:
    """Within normal limits / neurogenic / myopathic / indeterminate, with the evidence,
    never stronger than it: one mean outside its limit is named as such, conflicting
    evidence or too few units give 'indeterminate'."""
    name, ref = reference_values(muscle)
    evidence: list[str] = []
    narrow = sample_rate_hz < FULL_BAND_RATE_HZ
    if name == "any" and muscle:
        evidence.append(f"no sourced reference values for {muscle!r}: generic limb limits")
    if age is not None:
        evidence.append(f"age {age:g}: the reference values are not age-stratified")
    n = summary.get("units", 0)
    flagged = summary.get("units_flagged", {})
    if any(flagged.values()):
        evidence.append(f"{summary['units_found']} unit(s) found, {n} measured: "
                        f"{flagged.get(MERGED, 0)} merged and {flagged.get(UNCERTAIN, 0)} "
                        "uncertain not measured (docs/muap.md)")
    if n < MIN_UNITS:
        return {"finding": "indeterminate", "reference": name,
                "evidence": [*evidence, f"{n} unit(s) measured: at least {MIN_UNITS} are "
                                            "needed"]}
    neuro, myo = [], []
    amp, dur, poly = (summary["mean_amplitude_uv"], summary["mean_duration_ms"],
                      summary["polyphasic_share"])
    (a_lo, a_hi), (d_lo, d_hi), (_, p_hi) = (ref["amplitude_uv"], ref["duration_ms"],
                                             ref["polyphasic_share"])
    if dur > d_hi:
        neuro.append(f"mean duration {dur:g} ms above the upper limit {d_hi:g} ms")
    if amp > a_hi:
        neuro.append(f"mean amplitude {amp:g} µV above the upper limit {a_hi:g} µV")
    if dur < d_lo:
        myo.append(f"mean duration {dur:g} ms below the lower limit {d_lo:g} ms")
    if amp < a_lo and narrow:
        evidence.append(f"mean amplitude {amp:g} µV below {a_lo:g} µV not counted: at "
                        f"{sample_rate_hz:g} Hz the MUAP's spike is cut, amplitude under-read")
    elif amp < a_lo:
        myo.append(f"mean amplitude {amp:g} µV below the lower limit {a_lo:g} µV")
    ratio, reduced = summary["recruitment_ratio"], ref["recruitment"]["reduced_above"]
    if ratio > reduced:
        neuro.append(f"recruitment ratio {ratio:g} above {reduced:g}: few units firing fast")
    if poly > p_hi:
        (myo if dur <= d_hi else neuro).append(
            f"polyphasic share {poly:.0%} above {p_hi:.0%}")
    if neuro and myo:
        finding = "indeterminate"
        evidence += neuro + myo + ["neurogenic and myopathic signs together"]
    elif neuro:
        finding, evidence = "neurogenic", evidence + neuro
    elif myo:
        finding, evidence = "myopathic", evidence + myo
    else:
        finding = "normal"
        evidence.append(f"mean amplitude {amp:g} µV, duration {dur:g} ms, polyphasic "
                        f"{poly:.0%}, recruitment ratio {ratio:g}: within the limits")
    return {"finding": finding, "reference": name, "evidence": evidence}
