"""``nemg bench real``: the shipped model on real needle recordings it was never tuned to.

The recordings in ``../shared/data/real/`` (see its README) are all **voluntary**
contractions: the honest label of every window is ``motor_unit`` and none is pathological.
Reported per file and overall, three ways (the CNN alone, the discharge recogniser alone,
the box fusing them: :mod:`convert.threeway`): the share of windows called ``motor_unit``,
called any pathological class, and the file's finding; then the same at lower levels
(:data:`LEVELS_DB`): a clinic's voluntary MUAPs at low force can be 100–600 µV, a quarter of
these recordings' (the files' peaks are 0.8–7 mV); and as unscaled files, at the scale the
box estimates from their noise floor (the estimate does not depend on the unknown gain).
The EMGlab recording R00108 may not be committed; it is read where it lies, and a file that
is absent is reported as skipped.
``NEMG_REAL_DATA`` points elsewhere.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from benches.harness import BenchOptions

ROOT = Path(__file__).resolve().parents[1]

#: file -> (how to read it, what it is)
RECORDINGS: dict[str, tuple[str, str]] = {
    "emg_healthy.txt": ("mV", "emgdb tibialis anterior, healthy, concentric, 4 kHz"),
    "emg_myopathy.txt": ("mV", "emgdb tibialis anterior, myopathy, concentric, 4 kHz"),
    "emg_neuropathy.txt": ("mV", "emgdb tibialis anterior, neuropathy, concentric, 4 kHz"),
    "R00108.hea": ("wfdb", "EMGlab biceps, normal, 10 % MVC, monopolar, 10 kHz"),
}


LEVELS_DB = (0, -6, -12)
"""Gains the recordings are also classified at (0 dB: their recorded µV)."""


def real_data_dir() -> Path:
    env = os.environ.get("NEMG_REAL_DATA")
    return Path(env) if env else ROOT.parent / "shared" / "data" / "real"


def load_real(path: Path, how: str):
    from edge.readers import load_recording, load_two_columns

    return load_recording(path) if how == "wfdb" else load_two_columns(path, how)


def _figures(labels: list[str], finding: str) -> dict[str, Any]:
    from edge.labels import PATHOLOGICAL

    counts = Counter(labels)
    n = max(1, len(labels))
    return {"windows": len(labels), "motor_unit_share": counts["motor_unit"] / n,
            "pathological_share": sum(v for k, v in counts.items() if k in PATHOLOGICAL) / n,
            "labels": dict(counts.most_common()), "finding": finding}


def classify_recording(rec, bundle) -> dict[str, Any]:
    """Window labels of a recording through the box's pipeline at the model rate (as
    ``nemg classify`` reads it), with the CNN's and the recogniser's own labels beside the
    box's (:mod:`convert.threeway`)."""
    from types import SimpleNamespace

    from convert.threeway import labels_three_ways
    from edge.pipeline import Pipeline, summarize
    from edge.resample import resample_int16

    pipe = Pipeline(bundle, evidence_always=True)  # int16 at the file's rate, resampled
    x = resample_int16(rec.to_int16(pipe.mel.uv_per_lsb), rec.sample_rate_hz, pipe.fs)
    windows = pipe.push(x, 0)[0]
    note = pipe.caveat()
    out = _figures([w.label for w in windows], summarize(windows)["label"]) | {
        "withheld_not_at_rest": sum(w.contracting for w in windows),
        "caveat": note["text"] if note else None}
    ways = [labels_three_ways(w, bundle.labels, pipe.threshold) for w in windows]
    for way in ("cnn", "recogniser"):
        labs = [v[way][0] for v in ways]
        shown = [SimpleNamespace(label=lab, confidence=w.confidence, contracting=False)
                 for lab, w in zip(labs, windows, strict=True)]
        out[way] = _figures(labs, summarize(shown)["label"])
    return out


def _at_level(job: tuple[Path, str, bool, Any], bundle) -> dict[str, Any]:
    """One recording at one level (dB, or "estimated": the scale the box estimates)
    through :func:`classify_recording` (an executor's task)."""
    from dataclasses import replace

    from edge.readers.recording import estimate_unit_uv

    path, how, quick, db = job
    rec = load_real(path, how)
    if quick:
        rec = replace(rec, samples_uv=rec.samples_uv[: int(5 * rec.sample_rate_hz)])
    gain = (estimate_unit_uv(rec.samples_uv, rec.sample_rate_hz) or 1.0
            if db == "estimated" else 10 ** (db / 20))
    r = classify_recording(replace(rec, samples_uv=rec.samples_uv * gain), bundle)
    if db == "estimated":
        r["gain_db"] = round(20 * np.log10(gain), 2)
    return r


def run(opts: BenchOptions) -> dict[str, Any]:
    from edge.labels import PATHOLOGICAL
    from edge.runtime import load_verified
    from nemg_common.executor import executor

    bundle = load_verified()
    root = real_data_dir()
    files: dict[str, Any] = {}
    totals = {db: Counter() for db in (*LEVELS_DB, "estimated")}
    jobs = []
    for name, (how, what) in RECORDINGS.items():
        path = root / name
        if not path.exists():
            files[name] = {"skipped": f"not found in {root}"}
            continue
        rec = load_real(path, how)
        n = min(rec.samples_uv.size, int(5 * rec.sample_rate_hz)) if opts.quick \
            else rec.samples_uv.size
        files[name] = {"what": what, "sample_rate_hz": rec.sample_rate_hz,
                       "duration_s": n / rec.sample_rate_hz}
        jobs += [(name, (path, how, opts.quick, db)) for db in (*LEVELS_DB, "estimated")]
    # each (file, level) is a task: in this process, or on the cluster of --ray
    with executor(1) as ex:
        results = ex.map(_at_level, [job for _, job in jobs], shared=bundle)
        for (name, (_, _, _, db)), r in zip(jobs, results, strict=True):
            key = db if isinstance(db, str) else f"{db:+d}_db" if db else "recorded"
            files[name][key] = r
            t = totals[db]
            t["windows"] += r["windows"]
            t["motor_unit"] += round(r["motor_unit_share"] * r["windows"])
            t["pathological"] += round(r["pathological_share"] * r["windows"])
            t["withheld"] += r["withheld_not_at_rest"]
            t["files_motor_unit"] += r["finding"] == "motor_unit"
            t["files_pathological"] += r["finding"] in PATHOLOGICAL
            for way in ("cnn", "recogniser"):
                alone = r[way]
                t[f"pathological_{way}"] += round(alone["pathological_share"] * r["windows"])
                t[f"files_motor_unit_{way}"] += alone["finding"] == "motor_unit"
                t[f"files_pathological_{way}"] += alone["finding"] in PATHOLOGICAL
            t["files"] += 1
    out: dict[str, Any] = {"model": f"{bundle.name} {bundle.version}",
                           "files_read": totals[0]["files"]}
    for db, t in totals.items():
        key = "" if db == 0 else "_unscaled_estimated" if db == "estimated" \
            else f"_at_{db:+d}_db"
        n = max(1, t["windows"])
        out[f"files_called_motor_unit{key}"] = t["files_motor_unit"]
        out[f"motor_unit_window_share{key}"] = t["motor_unit"] / n
        out[f"pathological_window_share{key}"] = t["pathological"] / n
        out[f"pathological_findings{key}"] = t["files_pathological"]
        out[f"windows_withheld_not_at_rest{key}"] = t["withheld"] / n
        # the CNN alone and the recogniser alone beside the box (convert/threeway.py)
        for way in ("cnn", "recogniser"):
            out[f"files_called_motor_unit_{way}{key}"] = t[f"files_motor_unit_{way}"]
            out[f"pathological_window_share_{way}{key}"] = t[f"pathological_{way}"] / n
            out[f"pathological_findings_{way}{key}"] = t[f"files_pathological_{way}"]
    out["files"] = files
    return out
