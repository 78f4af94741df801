"""A site's summary over its units and its interpretation (within normal limits,
neurogenic, myopathic or indeterminate) against the reference values in
``edge/data/muap_reference.json``."""

from __future__ import annotations

import numpy as np

from edge.muap.measures import MeasureConfig
from edge.muap.reference import PAIRS, SINGLE_PAIRS, reference_values
from edge.muap.validity import MERGED, UNCERTAIN

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


def summarize_muscle(sites: list[list[dict]]) -> dict:
    """A muscle's summary over the units of several needle sites (how QEMG gathers the
    ~20 MUAPs a mean needs: a few from each site): the means and outliers over every
    measured unit; recruitment, a per-site figure (units firing together), as the median
    of the sites' ratios."""
    summary = summarize_site([u for units in sites for u in units])
    ratios = [s["recruitment_ratio"] for s in map(summarize_site, sites) if s["units"]]
    summary["sites"] = len(sites)
    if ratios:
        summary["recruitment_ratio"] = round(float(np.median(ratios)), 2)
        summary["site_recruitment_ratios"] = ratios
    return summary


FULL_BAND_RATE_HZ = 10_000
"""Reference MUAP amplitudes are measured with the band a MUAP's spike needs (sampling
≥ 10 kHz; a 5 kHz low-pass already lowers amplitudes: ../shared/reference/discharges.md).
A file sampled slower under-reads amplitude: only a *high* amplitude is evidence then."""


def interpret(summary: dict, muscle: str | None = None, age: float | None = None,
              sample_rate_hz: float = FULL_BAND_RATE_HZ,
              reference: tuple[str, dict] | None = None) -> dict:
    """Within normal limits / neurogenic / myopathic / indeterminate, with the evidence,
    never stronger than it: one mean outside its limit is named as such, conflicting
    evidence or too few units give 'indeterminate'. ``reference``: a lab's own (name,
    limits) (:func:`edge.muap.reference.load_reference`) instead of the shipped table's
    for ``muscle``."""
    name, ref = reference or reference_values(muscle)
    evidence: list[str] = []
    narrow = sample_rate_hz < FULL_BAND_RATE_HZ
    if reference is not None:
        evidence.append(f"reference {name!r}: {ref['source']}")
    elif name == "any" and muscle:
        evidence.append(f"no sourced reference values for {muscle!r}: generic limb limits")
    if age is not None:
        evidence.append(_age_line(age, ref))
    n = summary.get("units", 0)
    flagged = summary.get("units_flagged", {})
    if any(flagged.values()):
        evidence.append(f"{summary['units_found']} unit(s) found, {n} measured: "
                        f"{flagged.get(MERGED, 0)} merged and {flagged.get(UNCERTAIN, 0)} "
                        "uncertain not measured (docs/muap.md)")
    if n < MIN_UNITS:
        return {"finding": "indeterminate", "reference": name, "limits": limits_of(ref),
                "evidence": [*evidence, f"{n} unit(s) measured: at least {MIN_UNITS} are "
                                            "needed"]}
    if n < UNITS_FOR_A_MEAN:
        evidence.append(f"{n} units measured: a provisional reading (about "
                        f"{UNITS_FOR_A_MEAN} are asked for a mean)")
    # each sign keyed by its measure: a finding needs MIN_CONCORDANT measures that agree.
    # A measure is one parameter of the units: the mean and the outlier count of the same
    # parameter (duration, amplitude) are two views of one measure, not two that agree.
    neuro: dict[str, list[str]] = {}
    myo: dict[str, list[str]] = {}
    amp, dur, poly = (summary["mean_amplitude_uv"], summary["mean_duration_ms"],
                      summary["polyphasic_share"])
    (a_lo, a_hi), (d_lo, d_hi), (_, p_hi) = (ref["amplitude_uv"], ref["duration_ms"],
                                             ref["polyphasic_share"])
    if dur > d_hi:
        _sign(neuro, "duration", f"mean duration {dur:g} ms above the upper limit {d_hi:g} ms")
    if amp > a_hi:
        _sign(neuro, "amplitude", f"mean amplitude {amp:g} µV above the upper limit {a_hi:g} µV")
    if dur < d_lo:
        _sign(myo, "duration", f"mean duration {dur:g} ms below the lower limit {d_lo:g} ms")
    if amp < a_lo and narrow:
        evidence.append(f"mean amplitude {amp:g} µV below {a_lo:g} µV not counted: at "
                        f"{sample_rate_hz:g} Hz the MUAP's spike is cut, amplitude under-read")
    elif amp < a_lo:
        _sign(myo, "amplitude", f"mean amplitude {amp:g} µV below the lower limit {a_lo:g} µV")
    ratio, reduced = summary["recruitment_ratio"], ref["recruitment"]["reduced_above"]
    if ratio > reduced:
        _sign(neuro, "recruitment", f"recruitment ratio {ratio:g} above {reduced:g}: few units "
                                    "firing fast")
    _outliers(summary, ref, narrow, neuro, myo)
    nonspecific = ""
    if poly > p_hi:  # polyphasia is not specific: it backs the side the units' size shows
        line = f"polyphasic share {poly:.0%} above {p_hi:.0%}"
        if neuro.keys() & {"duration", "amplitude"}:
            _sign(neuro, "polyphasia", line)
        elif myo.keys() & {"duration", "amplitude"}:
            _sign(myo, "polyphasia", line)
        else:
            nonspecific = f"{line}, with units of normal size: abnormal, neither " \
                          "neurogenic nor myopathic on its own"
    if neuro and myo:
        finding = "indeterminate"
        evidence += [*_lines(neuro), *_lines(myo), "neurogenic and myopathic signs together"]
    elif max(len(neuro), len(myo)) >= MIN_CONCORDANT:
        finding = "neurogenic" if neuro else "myopathic"
        evidence += _lines(neuro or myo)
    elif neuro or myo:
        finding = "indeterminate"
        evidence += [*_lines(neuro or myo),
                     f"one measure only: a {'neurogenic' if neuro else 'myopathic'} reading "
                     f"needs {MIN_CONCORDANT} independent measures that agree"]
    elif nonspecific:
        finding = "indeterminate"
        evidence.append(nonspecific)
    else:
        finding = "normal"
        evidence.append(f"mean amplitude {amp:g} µV, duration {dur:g} ms, polyphasic "
                        f"{poly:.0%}, recruitment ratio {ratio:g}: within the limits")
    return {"finding": finding, "reference": name, "limits": limits_of(ref),
            "evidence": evidence}


def limits_of(ref: dict) -> dict:
    """The limits a reading was made against, as the report and the page draw them:
    [lower, upper] of a site's mean amplitude, duration and polyphasic share, the
    single-MUP limits where the reference has them, and the recruitment ratio's limit."""
    return {**{k: list(ref[k]) for k in (*PAIRS, *SINGLE_PAIRS) if k in ref},
            "recruitment_reduced_above": ref["recruitment"]["reduced_above"]}


def _age_line(age: float, ref: dict) -> str:
    """What the patient's age does to the reading: MUAP duration and amplitude rise with
    age (Howard et al. 1988), and only a lab reference made from controls of known ages
    can say whether its limits are age-matched."""
    if "ages" not in ref:
        return (f"age {age:g}: the reference values are not age-stratified (duration and "
                "amplitude rise with age)")
    lo, hi = ref["ages"]
    if lo <= age <= hi:
        return f"age {age:g}: within the controls' {lo:g}–{hi:g} years"
    return (f"age {age:g}: outside the controls' {lo:g}–{hi:g} years — the limits are not "
            "age-matched (duration and amplitude rise with age)")


def _sign(side: dict[str, list[str]], measure: str, line: str) -> None:
    side.setdefault(measure, []).append(line)


def _lines(side: dict[str, list[str]]) -> list[str]:
    return [line for lines in side.values() for line in lines]


def _outliers(summary: dict, ref: dict, narrow: bool, neuro: dict[str, list[str]],
              myo: dict[str, list[str]]) -> None:
    """The outlier method, where the muscle has single-MUP limits: more than
    ``outliers.more_than`` units above a parameter's limit is a neurogenic sign of that
    parameter (duration, amplitude), below it a myopathic one — the same measure as the
    parameter's mean, not another (a narrow band under-reads amplitude: low amplitudes
    are not counted then)."""
    if "unit_durations_ms" not in summary:
        return
    limit = ref["outliers"]["more_than"]
    for measure, values, key, unit in (
            ("duration", summary["unit_durations_ms"], "single_duration_ms", "ms"),
            ("amplitude", summary["unit_amplitudes_uv"], "single_amplitude_uv", "µV")):
        if key not in ref:  # a lab file may give one parameter's limits only
            continue
        lo, hi = ref[key]
        high = sum(v > hi for v in values)
        low = 0 if measure == "amplitude" and narrow else sum(v < lo for v in values)
        if high > limit:
            _sign(neuro, measure, f"{high} units' {measure} above the single-MUP limit "
                                  f"{hi:g} {unit}")
        if low > limit:
            _sign(myo, measure, f"{low} units' {measure} below the single-MUP limit "
                                f"{lo:g} {unit}")
