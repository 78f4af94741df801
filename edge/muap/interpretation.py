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

UNITS_FOR_A_MEAN = 20
"""Clinical QEMG asks for about 20 MUAPs a muscle for a mean: in biceps the 95 % limits of
the mean duration are 6.6–14.2 ms with 5 MUAPs and 7.4–13.0 ms with 20, and myopathy was
supported in 2 of 10 patients with 5 against 9 of 10 with 20 (../shared/reference/qemg.md
[SmpSz]). Fewer give a provisional reading, said so; the outlier count needs fewer
(Stålberg, Bischoff & Falck 1994)."""

MIN_CONCORDANT = 2
"""Independent measures that must agree before a site reads neurogenic or myopathic (one
measure alone is named in the evidence, the reading stays indeterminate: clinicians agree
on reinnervation patterns only 60 % of the time, and one mean moves with the needle)."""


def reference_values(muscle: str | None) -> tuple[str, dict]:
    """(name, limits) for ``muscle`` from ``edge/data/muap_reference.json``; the generic
    limb limits when the muscle has no sourced entry."""
    import json
    from importlib import resources

    table = json.loads(resources.files("edge").joinpath("data", REFERENCE_FILE).read_text())
    key = (muscle or "").strip().lower().replace(" ", "_").replace("-", "_")
    key = table.get("aliases", {}).get(key, key)
    rules = {"recruitment": table["recruitment"], "outliers": table["outliers"]}
    if key in table["muscles"]:
        return key, {**table["muscles"][key], **rules}
    return "any", {**table["any"], **rules}


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
        "unit_amplitudes_uv": [round(float(u["amplitude_uv"]), 1) for u in units],
        "unit_durations_ms": [round(float(u["duration_ms"]), 2) for u in units],
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
    if n < UNITS_FOR_A_MEAN:
        evidence.append(f"{n} units measured: a provisional reading (about "
                        f"{UNITS_FOR_A_MEAN} are asked for a mean)")
    # each sign keyed by its measure: a finding needs MIN_CONCORDANT measures that agree
    neuro: dict[str, str] = {}
    myo: dict[str, str] = {}
    amp, dur, poly = (summary["mean_amplitude_uv"], summary["mean_duration_ms"],
                      summary["polyphasic_share"])
    (a_lo, a_hi), (d_lo, d_hi), (_, p_hi) = (ref["amplitude_uv"], ref["duration_ms"],
                                             ref["polyphasic_share"])
    if dur > d_hi:
        neuro["duration"] = f"mean duration {dur:g} ms above the upper limit {d_hi:g} ms"
    if amp > a_hi:
        neuro["amplitude"] = f"mean amplitude {amp:g} µV above the upper limit {a_hi:g} µV"
    if dur < d_lo:
        myo["duration"] = f"mean duration {dur:g} ms below the lower limit {d_lo:g} ms"
    if amp < a_lo and narrow:
        evidence.append(f"mean amplitude {amp:g} µV below {a_lo:g} µV not counted: at "
                        f"{sample_rate_hz:g} Hz the MUAP's spike is cut, amplitude under-read")
    elif amp < a_lo:
        myo["amplitude"] = f"mean amplitude {amp:g} µV below the lower limit {a_lo:g} µV"
    ratio, reduced = summary["recruitment_ratio"], ref["recruitment"]["reduced_above"]
    if ratio > reduced:
        neuro["recruitment"] = f"recruitment ratio {ratio:g} above {reduced:g}: few units " \
                               "firing fast"
    _outliers(summary, ref, narrow, neuro, myo)
    nonspecific = ""
    if poly > p_hi:  # polyphasia is not specific: it backs the side the units' size shows
        line = f"polyphasic share {poly:.0%} above {p_hi:.0%}"
        if neuro.keys() & {"duration", "amplitude", "outliers"}:
            neuro["polyphasia"] = line
        elif myo.keys() & {"duration", "amplitude", "outliers"}:
            myo["polyphasia"] = line
        else:
            nonspecific = f"{line}, with units of normal size: abnormal, neither " \
                          "neurogenic nor myopathic on its own"
    if neuro and myo:
        finding = "indeterminate"
        evidence += [*neuro.values(), *myo.values(), "neurogenic and myopathic signs together"]
    elif max(len(neuro), len(myo)) >= MIN_CONCORDANT:
        finding = "neurogenic" if neuro else "myopathic"
        evidence += [*(neuro or myo).values()]
    elif neuro or myo:
        finding = "indeterminate"
        evidence += [*(neuro or myo).values(),
                     f"one measure only: a {'neurogenic' if neuro else 'myopathic'} reading "
                     f"needs {MIN_CONCORDANT} independent measures that agree"]
    elif nonspecific:
        finding = "indeterminate"
        evidence.append(nonspecific)
    else:
        finding = "normal"
        evidence.append(f"mean amplitude {amp:g} µV, duration {dur:g} ms, polyphasic "
                        f"{poly:.0%}, recruitment ratio {ratio:g}: within the limits")
    return {"finding": finding, "reference": name, "evidence": evidence}


def _outliers(summary: dict, ref: dict, narrow: bool, neuro: dict[str, str],
              myo: dict[str, str]) -> None:
    """The outlier method, where the muscle has single-MUP limits: more than
    ``outliers.more_than`` units above them is a neurogenic sign, below them a myopathic
    one (a narrow band under-reads amplitude: low amplitudes are not counted then)."""
    if "single_duration_ms" not in ref or "unit_durations_ms" not in summary:
        return
    (a_lo, a_hi), (d_lo, d_hi) = ref["single_amplitude_uv"], ref["single_duration_ms"]
    amps, durs = summary["unit_amplitudes_uv"], summary["unit_durations_ms"]
    high = sum(a > a_hi or d > d_hi for a, d in zip(amps, durs, strict=True))
    low = sum((a < a_lo and not narrow) or d < d_lo for a, d in zip(amps, durs, strict=True))
    limit = ref["outliers"]["more_than"]
    if high > limit:
        neuro["outliers"] = (f"{high} units above the single-MUP limits ({d_hi:g} ms, "
                             f"{a_hi:g} µV)")
    if low > limit:
        myo["outliers"] = (f"{low} units below the single-MUP limits ({d_lo:g} ms, "
                           f"{a_lo:g} µV)")
