"""``nemg bench muap``: the MUAP analysis against truth we did not write, and its speed.

- **R00108** (EMGlab, K. McGill; ``../shared/data/real/``, not committed; skipped when
  absent): a real biceps recording with an expert decomposition (8 units, 659 firings).
  Units found vs annotated, and per expert unit the agreement of its firings with the unit
  matched to it (one to one, best F1 first): a firing agrees when within ±0.5 ms of the
  expert's once one constant offset per unit is allowed (the two fiducial points — our
  spike peak, the expert's mark — differ by a fixed lag; searched within ±3 ms).
- **Simulated units** (``convert.biosim.simulate_contraction``: healthy, myopathic and
  neurogenic muscles, 10 kHz, concentric needle): firing agreement as above (offset
  searched within ±8 ms: the wave travels from the end-plate to the needle first), and
  for each matched unit the error of its measures against the unit's noiseless potential.
  A unit is *findable* when its potential peaks ≥ 300 µV (smaller ones sit in the
  background of the others).
- **Dense contractions** (:mod:`benches.dense_muap`: 5–20 active units from both
  simulators, healthy, myopathic and neurogenic, test seeds): units found, merged and
  split, for every unit the decomposition reports (``dense``) and for the units it
  measures (``dense_measured``: those :mod:`edge.muap.validity` calls valid).
- **Simulated patients** (:func:`_patients`: a muscle of each simulator, healthy,
  myopathic or neurogenic, examined at sites (each a dense contraction of 6–10 units) until
  about 20 units are measured, as QEMG asks, at most 8;
  test seeds): how often the reading is right, indeterminate or wrong — of one site and of
  the muscle against the generic limb limits, and of the muscle against the simulator's
  own reference made from healthy control subjects.
- **emgdb** (tibialis anterior; healthy, myopathy, neuropathy): the interpretation of each.
- **Speed and memory**: decomposition real-time factor on one core (R00108, or a simulated
  recording); peak memory of decomposing a dense recording of 10 s and of 60 s.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from benches.harness import BenchOptions

FINDABLE_UV = 300.0
TOLERANCE_S = 0.5e-3


def firing_agreement(found: np.ndarray, truth: np.ndarray, max_shift_s: float,
                     tol_s: float = TOLERANCE_S) -> dict[str, float]:
    """F1, sensitivity and PPV of ``found`` against ``truth`` (times in s) at the best
    constant offset within ± ``max_shift_s`` (each truth firing matched once)."""
    if not found.size or not truth.size:
        return {"f1": 0.0, "sensitivity": 0.0, "ppv": 0.0, "offset_ms": 0.0}
    best, shift = -1, 0.0
    for sh in np.arange(-max_shift_s, max_shift_s + 1e-9, tol_s / 5):
        m = _matched(found + sh, truth, tol_s)
        if m > best:
            best, shift = m, sh
    return {"f1": 2 * best / (found.size + truth.size), "sensitivity": best / truth.size,
            "ppv": best / found.size, "offset_ms": round(-shift * 1e3, 2)}


def _matched(a: np.ndarray, b: np.ndarray, tol: float) -> int:
    """Greedy one-to-one matches of sorted times within ``tol``."""
    i = j = m = 0
    while i < a.size and j < b.size:
        d = a[i] - b[j]
        if abs(d) <= tol:
            m, i, j = m + 1, i + 1, j + 1
        elif d < 0:
            i += 1
        else:
            j += 1
    return m


def match_units(found: list[np.ndarray], truth: dict[Any, np.ndarray],
                max_shift_s: float) -> dict[Any, tuple[int, dict]]:
    """truth unit -> (found index, agreement), one to one, best F1 first."""
    scores = [(firing_agreement(f, t, max_shift_s), i, k)
              for i, f in enumerate(found) for k, t in truth.items()]
    scores.sort(key=lambda s: -s[0]["f1"])
    out: dict[Any, tuple[int, dict]] = {}
    used: set[int] = set()
    for agr, i, k in scores:
        if agr["f1"] <= 0.3 or i in used or k in out:
            continue
        out[k] = (i, agr)
        used.add(i)
    return out


def _r00108(data: Path) -> dict[str, Any] | None:
    from edge.muap.analysis import analyse
    from edge.muap.interpretation import interpret
    from edge.readers import load_recording

    hea = data / "R00108.hea"
    eaf = data / "R00108.eaf"
    if not (hea.is_file() and eaf.is_file()):
        return None
    rec = load_recording(hea)
    truth = read_eaf(eaf)
    # one decomposition, as nemg muap makes it, for the matching and for the reading
    # (R00108: biceps brachii of a 25-year-old, normal): against the generic limb limits,
    # and against the shipped biceps values — those are concentric-needle values, and
    # R00108 was recorded with a monopolar needle (larger MUAPs)
    reading = analyse(rec.samples_uv, rec.sample_rate_hz, age=25)
    units = reading["units"]
    m = match_units([np.asarray(u["firings_s"]) for u in units], truth, 3e-3)
    f1 = [m[k][1]["f1"] if k in m else 0.0 for k in truth]
    biceps = interpret(reading["summary"], "biceps", 25, rec.sample_rate_hz)
    return {"finding": reading["interpretation"]["finding"],
            "mean_duration_ms": reading["summary"].get("mean_duration_ms"),
            "mean_amplitude_uv": reading["summary"].get("mean_amplitude_uv"),
            "evidence": reading["interpretation"]["evidence"],
            "finding_against_biceps_concentric": biceps["finding"],
            "evidence_against_biceps_concentric": biceps["evidence"],
            "expert_units": len(truth), "expert_firings": int(sum(t.size for t in truth.values())),
            "units_found": len(units), "units_measured": reading["summary"]["units"],
            "expert_units_matched": len(m),
            "median_firing_f1": float(np.median(f1)),
            "per_unit": {str(k): {kk: round(v, 3) for kk, v in m[k][1].items()} if k in m
                         else None for k in sorted(truth)}}


def measured(units: list, x_uv: np.ndarray) -> list:
    """The units :func:`edge.muap.analysis.analyse` measures: those its validity check
    calls valid."""
    from edge.muap.validity import VALID, train_validity

    rms = float(np.std(x_uv))
    return [u for u in units if train_validity(u.firings_s, float(np.ptp(u.template_fine_uv)),
                                               rms)["verdict"] == VALID]


def measured_decomposition(x_uv: np.ndarray, fs: int) -> list[np.ndarray]:
    """The trains of the units the box measures (for :func:`dense_section`)."""
    from edge.muap.decomposition import decompose

    return [u.firings_s for u in measured(decompose(x_uv, fs), x_uv)]


def _memory(quick: bool) -> dict[str, Any]:
    """Peak memory (tracemalloc, MB) of decomposing a dense recording of 10 s and 60 s
    (15 healthy units, biosim): what the bound grows with."""
    import tracemalloc

    from convert.dense import dense_contraction
    from edge.muap.decomposition import decompose

    out = {}
    for seconds in (3.0,) if quick else (10.0, 60.0):
        rec = dense_contraction("biosim", 15, "healthy", np.random.default_rng([33, 60]),
                                duration_s=seconds)
        tracemalloc.start()
        decompose(rec.signal_uv, rec.fs)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[f"{seconds:g}_s"] = round(peak / 2**20, 1)
    return out


def read_eaf(path: Path) -> dict[int, np.ndarray]:
    """EMGlab annotation: unit -> sorted firing times (s) from ``time unit chan`` lines."""
    text = path.read_text(encoding="ascii", errors="replace")
    body = text.split("<emglab_spike_events>")[1].split("</emglab_spike_events>")[0]
    out: dict[int, list[float]] = {}
    for line in body.splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.lstrip().startswith("<"):
            out.setdefault(int(float(parts[1])), []).append(float(parts[0]))
    return {k: np.sort(np.array(v)) for k, v in sorted(out.items())}


def _simulated(n_per_pool: int, seed: int = 4242) -> dict[str, Any]:
    from convert.biosim import simulate_contraction, unit_potential
    from edge.muap.decomposition import decompose
    from edge.muap.measures import measure

    fs = 10_000
    rows, findable, found_findable, f1s = [], 0, 0, []
    for pool in ("healthy", "myopathic", "neurogenic"):
        for k in range(n_per_pool):
            rng = np.random.default_rng([seed, k, len(pool)])
            rec = simulate_contraction(fs=fs, duration_s=8.0, rng=rng, pool=pool,
                                       excitation=2.5)
            truth_f = {g: np.array(sorted(f.t_s for f in rec.firings if f.generator == g))
                       for g in rec.units}
            # silence before, as a template window has (the potential starts at the
            # end-plate discharge)
            truth_v = {g: np.concatenate([np.zeros(fs // 50), unit_potential(u, fs, rec.info)])
                       for g, u in rec.units.items()}
            big = {g for g, v in truth_v.items() if np.ptp(v) >= FINDABLE_UV
                   and truth_f[g].size >= 8}
            units = decompose(rec.signal_uv, fs)
            m = match_units([u.firings_s for u in units], {g: truth_f[g] for g in big}, 8e-3)
            findable += len(big)
            found_findable += len(m)
            for g, (i, agr) in m.items():
                f1s.append(agr["f1"])
                got = measure(units[i].template_fine_uv, units[i].analysis_rate_hz,
                              noise_uv=units[i].template_noise_uv)
                want = measure(truth_v[g], fs)
                rows.append({"pool": pool, "f1": agr["f1"],
                             "amplitude_error": got["amplitude_uv"] / want["amplitude_uv"] - 1,
                             "duration_error_ms": got["duration_ms"] - want["duration_ms"],
                             "phases_exact": got["phases"] == want["phases"]})
    amp = np.abs([r["amplitude_error"] for r in rows])
    dur = np.abs([r["duration_error_ms"] for r in rows])
    return {"recordings": 3 * n_per_pool, "findable_units": findable,
            "findable_units_found": found_findable,
            "median_firing_f1": float(np.median(f1s)) if f1s else 0.0,
            "median_amplitude_error": float(np.median(amp)) if rows else None,
            "median_duration_error_ms": float(np.median(dur)) if rows else None,
            "phases_exact_share": float(np.mean([r["phases_exact"] for r in rows]))
            if rows else None, "units_measured": len(rows)}


PATIENT_SEED = 30_029
"""Seeds of the simulated patients (none was looked at when a rule was chosen)."""
CONTROL_SEED = 30_011
"""Seeds of each simulator's healthy control subjects (its "lab" reference)."""
CONTROLS = 20
"""Control subjects per simulator, as a reference study has (``--quick``: the fewest a lab
reference takes)."""
MAX_SITES = 8
"""A simulated muscle is examined as QEMG asks: the needle is moved to a new site (each a
dense contraction of 6–10 units) until about 20 MUAPs are measured
(:data:`edge.muap.interpretation.UNITS_FOR_A_MEAN`), at most this many sites."""

EXPECTED = {"healthy": "normal", "myopathic": "myopathic", "neurogenic": "neurogenic"}


def _muscle_sites(sim: str, si: int, pool: str, seed: int, k: int) -> list[dict]:
    """The analyses of one simulated muscle's sites, until :data:`UNITS_FOR_A_MEAN` units
    are measured or :data:`MAX_SITES` sites are read (the first site keeps the seeds of
    the single-site patients of earlier runs: its reading is comparable)."""
    from convert.dense import dense_contraction
    from edge.muap.analysis import analyse
    from edge.muap.interpretation import UNITS_FOR_A_MEAN

    out: list[dict] = []
    measured = 0
    while measured < UNITS_FOR_A_MEAN and len(out) < MAX_SITES:
        s = len(out)
        key = [seed, si, len(pool), k] + ([s] if s else [])
        rec = dense_contraction(sim, 6 + (k + s) % 5, pool, np.random.default_rng(key),
                                duration_s=10.0)
        out.append(analyse(rec.signal_uv, rec.fs))
        measured += out[-1]["summary"]["units"]
    return out


def _tally(got: list[str], want: str) -> dict[str, Any]:
    return {"right": got.count(want) / len(got),
            "indeterminate": got.count("indeterminate") / len(got),
            "wrong": sum(g not in (want, "indeterminate") for g in got) / len(got),
            "findings": got}


def _patients(per_cell: int, controls: int) -> dict[str, Any]:
    """Each simulator's patients, a muscle examined at sites until ~20 units are measured
    (:func:`_muscle_sites`), read
    three ways: ``site`` (its first site alone, generic limb limits: the earlier figure),
    ``muscle_generic`` (all sites' units, generic limits) and ``muscle_lab`` (all sites'
    units against the simulator's own "lab" reference, made by
    :func:`edge.muap.reference.reference_from_controls` from ``controls`` healthy control
    subjects drawn on other seeds — how a clinic makes its own reference values).
    Right, indeterminate and wrong shares per pool and reading."""
    from convert.dense import SIMULATORS
    from edge.muap.analysis import read_muscle
    from edge.muap.reference import checked_reference, reference_from_controls

    out: dict[str, Any] = {}
    for si, sim in enumerate(SIMULATORS):
        subjects = [[u for r in _muscle_sites(sim, si, "healthy", CONTROL_SEED, k)
                     for u in r["units"] if u["measured"]] for k in range(controls)]
        lab_doc = reference_from_controls(subjects, name=f"{sim} controls")
        lab = checked_reference(lab_doc, f"{sim} controls")
        part: dict[str, Any] = {"lab_reference": lab_doc}
        readings = {"site": [], "muscle_generic": [], "muscle_lab": []}
        for pool, want in EXPECTED.items():
            got: dict[str, list[str]] = {r: [] for r in readings}
            units, sites_read = [], []
            for k in range(per_cell):
                sites = _muscle_sites(sim, si, pool, PATIENT_SEED, k)
                got["site"].append(sites[0]["interpretation"]["finding"])
                got["muscle_generic"].append(read_muscle(sites)["interpretation"]["finding"])
                muscle = read_muscle(sites, reference=lab)
                got["muscle_lab"].append(muscle["interpretation"]["finding"])
                units.append(muscle["summary"]["units"])
                sites_read.append(len(sites))
            part[pool] = {"expected": want, "units_measured": units, "sites": sites_read,
                          **{r: _tally(g, want) for r, g in got.items()}}
            for r in readings:
                readings[r].append(part[pool][r]["right"])
        part["right"] = {r: float(np.mean(v)) for r, v in readings.items()}
        out[sim] = part
    return out


def _emgdb(data: Path) -> dict[str, Any]:
    from edge.muap.analysis import analyse
    from edge.readers import load_two_columns

    out = {}
    for name, want in (("emg_healthy.txt", "normal"), ("emg_myopathy.txt", "myopathic"),
                       ("emg_neuropathy.txt", "neurogenic")):
        p = data / name
        if not p.is_file():
            continue
        rec = load_two_columns(p, "mV")
        res = analyse(rec.samples_uv, rec.sample_rate_hz, muscle="tibialis anterior")
        out[name] = {"expected": want, "finding": res["interpretation"]["finding"],
                     "units": res["summary"]["units"], "summary": res["summary"],
                     "evidence": res["interpretation"]["evidence"]}
    return out


def run(opts: BenchOptions) -> dict[str, Any]:
    from benches.dense_muap import current_decomposition, dense_section
    from benches.harness import pin_to_one_cpu
    from benches.real_bench import real_data_dir
    from edge.muap.decomposition import decompose
    from edge.muap.reference import MIN_CONTROLS

    pin_to_one_cpu()
    data = real_data_dir()
    r108 = _r00108(data)
    sim = _simulated(1 if opts.quick else 3)
    patients = _patients(1 if opts.quick else 6, MIN_CONTROLS if opts.quick else CONTROLS)
    dense = dense_section(current_decomposition, quick=opts.quick)
    dense_measured = dense_section(measured_decomposition, quick=opts.quick)
    for d in (dense, dense_measured):
        d.pop("recordings")  # per-recording rows: python -m benches.dense_muap has them
        d.pop("recordings_units_columns")
    emg = _emgdb(data)
    if (data / "R00108.hea").is_file():
        from edge.readers import load_recording

        rec = load_recording(data / "R00108.hea")
        x, fs = rec.samples_uv, rec.sample_rate_hz
    else:
        from convert.biosim import simulate_contraction

        r = simulate_contraction(rng=np.random.default_rng(1))
        x, fs = r.signal_uv, r.fs
    times = []
    for _ in range(1 if opts.quick else 3):
        t0 = time.process_time()
        decompose(x, fs)
        times.append(time.process_time() - t0)
    from convert.biosim import simulate_contraction
    from edge.readers.recording import uv_to_int16
    from edge.rest_check import voluntary_rates
    from edge.spec import DEFAULT_DECISION, DEFAULT_SPEC

    STRETCH_S = DEFAULT_DECISION.rest_check.stretch_s
    mel = DEFAULT_SPEC.mel
    # the rest check's worst case: a contraction called abnormal, checked at the model rate
    busy = uv_to_int16(simulate_contraction(
        fs=mel.sample_rate_hz, duration_s=STRETCH_S, pool="healthy", excitation=3.0,
        rng=np.random.default_rng([5, 2])).signal_uv, mel.uv_per_lsb)
    check = []
    for _ in range(1 if opts.quick else 3):
        t0 = time.process_time()
        voluntary_rates(busy, mel.sample_rate_hz)
        check.append(time.process_time() - t0)
    return {"r00108": r108 if r108 is not None else "skipped: ../shared/data/real/R00108.* "
            "absent", "simulated": sim, "patients": patients, "dense": dense,
            "dense_measured": dense_measured,
            "decomposition_peak_mb": _memory(opts.quick), "emgdb": emg,
            "rest_check_s_per_stretch": float(np.median(check)),
            "rest_check_realtime_factor": STRETCH_S / float(np.median(check)),
            "emgdb_correct": sum(v["finding"] == v["expected"] for v in emg.values()),
            "decomposition_realtime_factor": x.size / fs / float(np.median(times))}
