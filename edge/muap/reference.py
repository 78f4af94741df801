"""The reference values a site or a muscle is read against: the sourced table shipped in
``edge/data/muap_reference.json`` (by muscle), or a laboratory's own file made from its
control subjects with :func:`reference_from_controls` (``nemg muap-reference``).

A laboratory's own controls are what clinical QEMG asks for: durations depend on the
needle, the filters and the duration rule (../shared/reference/qemg.md [DKN97]: compare
only against references taken the same way), so values measured with *this* analysis on
the lab's healthy subjects beat a table measured with another. The rule is fixed and
sourced, not fitted:

- **limits of a muscle's mean** (amplitude, duration): the controls' means ± 2 SD
  (Keypoint's table; [NOR]);
- **single-MUP (outlier) limits**: each control's 3rd-lowest and 3rd-highest of its first
  20 MUPs, then their mean ∓ 2 SD over the controls (Keypoint's rule; [NOR], Stålberg,
  Bischoff & Falck 1994). A control with fewer MUPs gives the same quantiles (12.5 % and
  87.5 %) of the MUPs it has;
- **polyphasic share**: up to the controls' mean + 2 SD, never tighter than the generic
  limb limit (a share of 5–20 MUPs a subject is too coarse to set a tighter one);
- recruitment and the outlier count keep the shipped, sourced rules.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import numpy as np

from edge.errors import InputError

REFERENCE_FILE = "muap_reference.json"
LAB_FORMAT = "nemg-muap-reference/1"
MAX_LAB_FILE_BYTES = 64 * 1024
"""A lab's reference file is a few hundred bytes: anything larger is refused unread."""
MIN_CONTROLS = 5
"""Controls a lab reference needs: a mean ± 2 SD of fewer subjects is no limit."""
MIN_CONTROL_UNITS = 3
"""Measured MUPs a control needs to count (its mean, and its outer quantiles)."""
KEYPOINT_MUPS = 20
"""Keypoint's outlier limits use each control's first 20 MUPs ..."""
OUTLIER_RANK = 3
"""... and their 3rd-lowest and 3rd-highest values."""
SD_FACTOR = 2.0
"""Limits are mean ± 2 SD (Keypoint; the shipped table's own convention)."""
PAIRS = ("amplitude_uv", "duration_ms", "polyphasic_share")
SINGLE_PAIRS = ("single_amplitude_uv", "single_duration_ms")
MAX_AGE = 130.0
UPPER_BOUND = {"amplitude_uv": 1e5, "duration_ms": 100.0, "polyphasic_share": 1.0,
               "single_amplitude_uv": 1e5, "single_duration_ms": 100.0, "ages": MAX_AGE}
"""Largest value a limit (or the controls' oldest age) may have (a file past these is not
a MUAP reference)."""


@functools.cache
def _shipped_text() -> str:
    from importlib import resources

    return resources.files("edge").joinpath("data", REFERENCE_FILE).read_text()


def shipped_table() -> dict:
    """``edge/data/muap_reference.json`` (read once a process; a new dict each call)."""
    return json.loads(_shipped_text())


def _rules(table: dict) -> dict:
    return {"recruitment": table["recruitment"], "outliers": table["outliers"]}


def reference_values(muscle: str | None) -> tuple[str, dict]:
    """(name, limits) for ``muscle`` from the shipped table; the generic limb limits when
    the muscle has no sourced entry."""
    table = shipped_table()
    key = (muscle or "").strip().lower().replace(" ", "_").replace("-", "_")
    key = table.get("aliases", {}).get(key, key)
    if key in table["muscles"]:
        return key, {**table["muscles"][key], **_rules(table)}
    return "any", {**table["any"], **_rules(table)}


def _pair(doc: dict, key: str, where: str) -> list[float]:
    v = doc.get(key)
    if (not isinstance(v, list) or len(v) != 2
            or not all(isinstance(x, int | float) and not isinstance(x, bool)
                       and math.isfinite(x) for x in v)
            or not 0 <= v[0] <= v[1] <= UPPER_BOUND[key]):
        raise InputError(f"{where}: {key!r} must be [lower, upper] with "
                         f"0 ≤ lower ≤ upper ≤ {UPPER_BOUND[key]:g}")
    return [float(v[0]), float(v[1])]


def load_reference(path: Path) -> tuple[str, dict]:
    """(name, limits) of a lab's reference file (:func:`reference_from_controls`'s
    output). Bounded and checked before use: a bad file is one :class:`InputError`."""
    from edge.fileio import read_regular_file

    path = Path(path)
    data = read_regular_file(path, MAX_LAB_FILE_BYTES, "MUAP reference file")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError(f"{path}: not a MUAP reference file (not JSON)") from None
    return checked_reference(doc, str(path))


def checked_reference(doc: object, where: str) -> tuple[str, dict]:
    """(name, limits) of a lab reference's content, every field checked (``where``
    names it in the error)."""
    if not isinstance(doc, dict) or doc.get("format") != LAB_FORMAT:
        raise InputError(f"{where}: not a MUAP reference file (format is not {LAB_FORMAT!r})")
    name = doc.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 80:
        raise InputError(f"{where}: 'name' must be a short text")
    ref = {k: _pair(doc, k, where) for k in PAIRS}
    ref |= {k: _pair(doc, k, where) for k in SINGLE_PAIRS if k in doc}
    ref["source"] = str(doc.get("source", ""))[:500]
    if doc.get("ages") is not None:  # the controls' youngest and oldest, in years
        ref["ages"] = _pair(doc, "ages", where)
    return name, {**ref, **_rules(shipped_table())}


def control_measures(units: list[dict]) -> dict:
    """One control subject's figures from its measured units (all its sites, in the order
    they were found): the means, the polyphasic share and its outer quantiles."""
    from edge.muap.measures import MeasureConfig

    amp = np.array([u["amplitude_uv"] for u in units], dtype=np.float64)
    dur = np.array([u["duration_ms"] for u in units], dtype=np.float64)
    first = slice(0, KEYPOINT_MUPS)
    q = ((OUTLIER_RANK - 0.5) / KEYPOINT_MUPS, 1 - (OUTLIER_RANK - 0.5) / KEYPOINT_MUPS)
    return {"units": len(units), "mean_amplitude_uv": float(amp.mean()),
            "mean_duration_ms": float(dur.mean()),
            "polyphasic_share": float(np.mean([u["phases"] >= MeasureConfig.polyphasic_phases
                                               for u in units])),
            "amplitude_quantiles_uv": [float(x) for x in np.quantile(amp[first], q)],
            "duration_quantiles_ms": [float(x) for x in np.quantile(dur[first], q)]}


def reference_from_controls(subjects: list[list[dict]], *, name: str, source: str = "",
                            ages: tuple[float, float] | None = None) -> dict:
    """A lab reference file's content from control subjects (each: its measured units,
    pooled over its sites), by the rule in the module doc; ``ages``: the controls' youngest
    and oldest (a patient outside them is read with that said). Subjects with fewer than
    :data:`MIN_CONTROL_UNITS` units are left out; fewer than :data:`MIN_CONTROLS` left
    is an :class:`InputError`."""
    rows = [control_measures(s) for s in subjects if len(s) >= MIN_CONTROL_UNITS]
    if len(rows) < MIN_CONTROLS:
        raise InputError(f"{len(rows)} control subject(s) with ≥ {MIN_CONTROL_UNITS} measured "
                         f"units: at least {MIN_CONTROLS} are needed for mean ± 2 SD limits")

    def spread(key: str, i: int | None = None) -> tuple[float, float]:
        v = np.array([r[key] if i is None else r[key][i] for r in rows])
        return float(v.mean()), float(v.std(ddof=1))

    def band(key: str) -> list[float]:
        m, s = spread(key)
        return [round(max(0.0, m - SD_FACTOR * s), 3), round(m + SD_FACTOR * s, 3)]

    (a_lo, a_lo_sd), (a_hi, a_hi_sd) = spread("amplitude_quantiles_uv", 0), \
        spread("amplitude_quantiles_uv", 1)
    (d_lo, d_lo_sd), (d_hi, d_hi_sd) = spread("duration_quantiles_ms", 0), \
        spread("duration_quantiles_ms", 1)
    poly_m, poly_s = spread("polyphasic_share")
    generic_poly = shipped_table()["any"]["polyphasic_share"][1]
    return {
        "format": LAB_FORMAT, "name": name,
        "source": source or f"{len(rows)} control subjects measured by nemg muap "
                            "(mean ± 2 SD; Keypoint's outlier rule)",
        "amplitude_uv": band("mean_amplitude_uv"),
        "duration_ms": band("mean_duration_ms"),
        "polyphasic_share": [0.0, round(min(1.0, max(generic_poly,
                                                     poly_m + SD_FACTOR * poly_s)), 3)],
        "single_amplitude_uv": [round(max(0.0, a_lo - SD_FACTOR * a_lo_sd), 1),
                                round(a_hi + SD_FACTOR * a_hi_sd, 1)],
        "single_duration_ms": [round(max(0.0, d_lo - SD_FACTOR * d_lo_sd), 2),
                               round(d_hi + SD_FACTOR * d_hi_sd, 2)],
        **({"ages": [float(ages[0]), float(ages[1])]} if ages else {}),
        "controls": {"subjects": len(rows), "left_out": len(subjects) - len(rows),
                     "units": int(sum(r["units"] for r in rows))},
    }
