"""Decomposition of dense contractions against known firings (issue 33, point 2).

Recordings of :func:`convert.dense.dense_contraction`: 5, 10, 15 and 20 active units,
both simulators (biosim, synth), healthy, myopathic and neurogenic muscles,
:data:`RECORDINGS_PER_CELL` each of :data:`DURATION_S`. Every parameter was chosen on
the simulators' sources, none on a real file. Two disjoint draws (:data:`SEEDS`):
"validation" for choosing a decomposition's parameters, "test" for what is reported.

Scoring (:func:`score`), per recording:

- Firings are compared with :func:`benches.muap_bench.firing_agreement` (±0.5 ms once one
  constant offset per pair is allowed, searched ±8 ms as ``muap_bench`` does for
  simulations) against each truth unit's discharges referred to its potential's largest
  peak (the fiducial a decomposition marks; a neurogenic potential peaks up to ~10 ms
  after the discharge at its end-plate).
- A truth unit is **countable** when it fires ≥ 20 times and its potential's
  peak-to-peak is ≥ 2.5 × the RMS of the whole recording: EMGlab's visibility criterion,
  above which its decomposition was 100 % accurate (McGill, Lateva & Marateb 2005,
  [EMGL05] in shared/reference/qemg.md).
- **Found**: units matched one to one (:func:`benches.muap_bench.match_units`, best F1
  first); a countable unit is found when its match has F1 ≥ 0.8.
- **Merged**: a found unit that claims two or more truth units firing ≥ 20 times; it
  claims truth unit ``t`` when it matches ≥ 50 % of ``t``'s firings at its best offset
  for ``t`` (sensitivity ≥ 0.5). Merged share = merged found units / all found units.
- **Split**: a countable unit of which two or more found units are fragments: a found
  unit whose firings are mostly the unit's (PPV ≥ 0.5) and which holds at least a fifth
  of them (sensitivity ≥ 0.2: a handful of chance coincidences is not a fragment).
  Split share = split countable units / countable units.

Cost (one core, 48 recordings of 10 s): generating them ≈ 10 s CPU, scoring ≈ 3 s for
the decomposition of issue 33's start and ≈ 5 s for a near-perfect one (pairs of trains
that cannot agree are skipped by :func:`most_matches`; a found unit whose firings
coincide with many truth units costs more), besides the decomposition itself. The JSON
reports what a run cost (``cost_cpu_s``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from benches.muap_bench import TOLERANCE_S, firing_agreement, match_units
from convert.dense import POOLS, SIMULATORS, DenseContraction, dense_contraction

DENSITIES = (5, 10, 15, 20)
"""Active units per recording."""
SUMMARY_DENSITIES = (10, 15, 20)
"""The densities the issue's target is stated for."""
SEEDS = {"validation": 33_017, "test": 33_029}
"""The two draws: each recording's generator is seeded by (this, simulator, density,
pool, index), so the two share no recording."""
RECORDINGS_PER_CELL = 2
"""Recordings per (density, simulator, pool): 48 in all."""
DURATION_S = 10.0
QUICK_DENSITIES = (5, 10)
QUICK_DURATION_S = 3.0

MAX_SHIFT_S = 8e-3
"""Offset searched between a found train and a truth train (as ``muap_bench``'s
simulations)."""
MIN_FIRINGS = 20
"""A truth unit firing fewer times is neither countable nor claimed."""
VISIBLE_PTP_RMS = 2.5
"""Countable: peak-to-peak ≥ this × the recording's RMS [EMGL05]."""
FOUND_F1 = 0.8
CLAIM_SENSITIVITY = 0.5
FRAGMENT_PPV = 0.5
FRAGMENT_SENSITIVITY = 0.2
MATCH_FLOOR_F1 = 0.3
"""``match_units`` ignores pairs at this F1 or below: pairs that cannot exceed it are not
scored (see :func:`most_matches`)."""

DecomposeFn = Callable[[np.ndarray, int], Sequence[np.ndarray]]


def most_matches(found: np.ndarray, truth: np.ndarray, max_shift_s: float = MAX_SHIFT_S,
                 tol_s: float = TOLERANCE_S) -> int:
    """An upper bound of the firings :func:`firing_agreement` can match between two sorted
    trains: the most differences ``truth − found`` within ±``max_shift_s`` that one window
    of ``2·tol_s`` holds (a match at offset ``s`` is such a difference within ``s ± tol``).
    Cheap, so that only pairs that may agree are scored (firing_agreement tries every
    offset)."""
    eps = 1e-9
    w = max_shift_s + tol_s + eps
    lo = np.searchsorted(truth, found - w, "left")
    counts = np.searchsorted(truth, found + w, "right") - lo
    total = int(counts.sum())
    if not total:
        return 0
    which = np.repeat(np.arange(found.size), counts)
    within = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    d = np.sort(truth[lo[which] + within] - found[which])
    most = int((np.searchsorted(d, d + 2 * tol_s + eps, "right") - np.arange(d.size)).max())
    return min(most, found.size, truth.size)


def truth_trains(rec: DenseContraction) -> dict[int, np.ndarray]:
    """Each truth unit's discharges referred to its potential's largest peak (s)."""
    return {u: np.asarray(t, dtype=np.float64)
            + int(np.argmax(np.abs(rec.potentials_uv[u]))) / rec.fs
            for u, t in rec.firings_s.items()}


def _match(found: list[np.ndarray], truth: dict[int, np.ndarray],
           bound: dict[tuple[int, int], int]) -> dict[int, tuple[int, dict]]:
    """``match_units`` over all found and truth units, run on each group of units linked
    by pairs that may exceed its F1 floor (pairs across groups it would ignore, so the
    result is the same; each group keeps the order of the units)."""
    parent = {("f", i): ("f", i) for i in range(len(found))}
    parent.update({("t", u): ("t", u) for u in truth})

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for (i, u), b in bound.items():
        if 2 * b / (found[i].size + truth[u].size) > MATCH_FLOOR_F1:
            parent[root(("f", i))] = root(("t", u))
    groups: dict[Any, tuple[list[int], list[int]]] = {}
    for i in range(len(found)):
        groups.setdefault(root(("f", i)), ([], []))[0].append(i)
    for u in truth:
        groups.setdefault(root(("t", u)), ([], []))[1].append(u)
    out: dict[int, tuple[int, dict]] = {}
    for fi, tu in groups.values():
        if fi and tu:  # (only a pair that may match links a found unit to a truth unit)
            m = match_units([found[i] for i in fi], {u: truth[u] for u in tu}, MAX_SHIFT_S)
            out.update({u: (fi[j], agr) for u, (j, agr) in m.items()})
    return out


def score(found_firings_s: list[np.ndarray], rec: DenseContraction) -> dict[str, Any]:
    """How a decomposition's trains (firing times, s) agree with ``rec``'s truth: found,
    merged and split units as in the module doc, and per truth unit its firings,
    peak-to-peak (µV and ÷ the recording's RMS), whether it is countable, and its match."""
    found = [np.sort(np.asarray(f, dtype=np.float64).ravel()) for f in found_firings_s]
    truth = truth_trains(rec)
    rms = float(np.sqrt(np.mean(np.square(rec.signal_uv))))
    ptp = {u: float(np.ptp(v)) for u, v in rec.potentials_uv.items()}
    countable = [u for u in truth if truth[u].size >= MIN_FIRINGS
                 and ptp[u] >= VISIBLE_PTP_RMS * rms]
    bound = {(i, u): most_matches(f, t) for i, f in enumerate(found) for u, t in truth.items()}
    matched = _match(found, truth, bound)
    agreement = {(i, u): agr for u, (i, agr) in matched.items()}

    def agree(i: int, u: int) -> dict[str, float]:
        if (i, u) not in agreement:
            agreement[(i, u)] = firing_agreement(found[i], truth[u], MAX_SHIFT_S)
        return agreement[(i, u)]

    claims = {i: [u for u, t in truth.items() if t.size >= MIN_FIRINGS
                  and bound[(i, u)] >= CLAIM_SENSITIVITY * t.size
                  and agree(i, u)["sensitivity"] >= CLAIM_SENSITIVITY]
              for i in range(len(found))}
    merged = [i for i, c in claims.items() if len(c) >= 2]
    fragments = {u: [i for i in range(len(found))
                     if bound[(i, u)] >= max(FRAGMENT_PPV * found[i].size,
                                             FRAGMENT_SENSITIVITY * truth[u].size, 1)
                     and agree(i, u)["ppv"] >= FRAGMENT_PPV
                     and agree(i, u)["sensitivity"] >= FRAGMENT_SENSITIVITY]
                 for u in countable}
    split = [u for u, f in fragments.items() if len(f) >= 2]
    f1 = {u: matched[u][1]["f1"] if u in matched else 0.0 for u in truth}
    found_countable = [u for u in countable if f1[u] >= FOUND_F1]
    units = []
    for u in truth:
        m = matched.get(u)
        units.append({"unit": u, "firings": int(truth[u].size), "ptp_uv": round(ptp[u], 1),
                      "ptp_rms": round(ptp[u] / rms, 3) if rms else None,
                      "countable": u in countable, "found_unit": m[0] if m else None,
                      "f1": round(f1[u], 3),
                      "sensitivity": round(m[1]["sensitivity"], 3) if m else 0.0,
                      "ppv": round(m[1]["ppv"], 3) if m else 0.0,
                      "fragments": len(fragments.get(u, []))})
    return {"truth_units": len(truth), "countable_units": len(countable),
            "found_units": len(found), "countable_found": len(found_countable),
            "found_share": len(found_countable) / len(countable) if countable else None,
            "countable_f1": [f1[u] for u in countable],
            "median_f1": float(np.median([f1[u] for u in countable])) if countable else None,
            "merged_units": len(merged), "merged_claims": {i: claims[i] for i in merged},
            "merged_share": len(merged) / len(found) if found else 0.0,
            "split_units": len(split),
            "split_share": len(split) / len(countable) if countable else 0.0,
            "signal_rms_uv": round(rms, 2), "units": units}


def _aggregate(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Pooled over recordings: shares of all countable / found units, not means of
    per-recording shares."""
    countable = sum(r["score"]["countable_units"] for r in rows)
    truth = sum(r["score"]["truth_units"] for r in rows)
    found = sum(r["score"]["found_units"] for r in rows)
    f1 = [v for r in rows for v in r["score"]["countable_f1"]]
    cpu = sum(r["decompose_cpu_s"] for r in rows)
    seconds = sum(r["duration_s"] for r in rows)

    def share(a: int, b: int) -> float | None:
        return round(a / b, 4) if b else None

    return {"recordings": len(rows), "truth_units": truth, "countable_units": countable,
            "countable_share": share(countable, truth),
            "found_share": share(sum(r["score"]["countable_found"] for r in rows), countable),
            "median_f1": round(float(np.median(f1)), 4) if f1 else None,
            "merged_share": share(sum(r["score"]["merged_units"] for r in rows), found),
            "split_share": share(sum(r["score"]["split_units"] for r in rows), countable),
            "found_units_per_recording": round(found / len(rows), 2) if rows else None,
            "realtime_factor": round(seconds / cpu, 2) if cpu > 0 else None}


def dense_section(decompose_fn: DecomposeFn, *, quick: bool, seeds: str = "test"
                  ) -> dict[str, Any]:
    """Run ``decompose_fn(x_uv, fs) -> [firing times (s) per unit]`` on the dense
    recordings of ``seeds`` ("validation" or "test") and score it: per simulator and
    density, the summary over 10–20 units and per pool (10–20 units), the countable share
    per density, and what the run cost (CPU s). ``quick``: densities 5 and 10, one 3 s
    recording per density and simulator (pools taken in turn), for tests of this code."""
    if seeds not in SEEDS:
        raise ValueError(f"unknown seeds {seeds!r} (one of {', '.join(SEEDS)})")
    seed = SEEDS[seeds]
    densities = QUICK_DENSITIES if quick else DENSITIES
    duration = QUICK_DURATION_S if quick else DURATION_S
    cost = {"generate": 0.0, "decompose": 0.0, "score": 0.0}
    rows = []
    for di, density in enumerate(densities):
        for si, sim in enumerate(SIMULATORS):
            pools = (POOLS[(di + si) % len(POOLS)],) if quick else POOLS
            for pool in pools:
                for k in range(1 if quick else RECORDINGS_PER_CELL):
                    rng = np.random.default_rng([seed, si, density, POOLS.index(pool), k])
                    t0 = time.process_time()
                    rec = dense_contraction(sim, density, pool, rng, duration_s=duration)
                    t1 = time.process_time()
                    trains = list(decompose_fn(rec.signal_uv, rec.fs))
                    t2 = time.process_time()
                    s = score(trains, rec)
                    t3 = time.process_time()
                    cost["generate"] += t1 - t0
                    cost["decompose"] += t2 - t1
                    cost["score"] += t3 - t2
                    rows.append({"simulator": sim, "density": density, "pool": pool,
                                 "index": k, "duration_s": duration,
                                 "decompose_cpu_s": t2 - t1, "score": s})
    out: dict[str, Any] = {"seeds": seeds, "seed": seed, "duration_s": duration,
                           "recordings_per_cell": 1 if quick else RECORDINGS_PER_CELL,
                           "criteria": {"min_firings": MIN_FIRINGS,
                                        "visible_ptp_rms": VISIBLE_PTP_RMS,
                                        "found_f1": FOUND_F1, "max_shift_ms": MAX_SHIFT_S * 1e3,
                                        "claim_sensitivity": CLAIM_SENSITIVITY,
                                        "fragment_ppv": FRAGMENT_PPV,
                                        "fragment_sensitivity": FRAGMENT_SENSITIVITY}}
    for sim in SIMULATORS:
        mine = [r for r in rows if r["simulator"] == sim]
        part: dict[str, Any] = {str(d): _aggregate([r for r in mine if r["density"] == d])
                                for d in densities}
        dense = [r for r in mine if r["density"] in SUMMARY_DENSITIES]
        part["summary_10_20"] = _aggregate(dense)
        part["pools_10_20"] = {p: _aggregate([r for r in dense if r["pool"] == p])
                               for p in POOLS if any(r["pool"] == p for r in dense)}
        out[sim] = part
    out["summary_10_20"] = _aggregate([r for r in rows if r["density"] in SUMMARY_DENSITIES])
    out["countable_share_by_density"] = {
        str(d): _aggregate([r for r in rows if r["density"] == d])["countable_share"]
        for d in densities}
    out["cost_cpu_s"] = {k: round(v, 2) for k, v in cost.items()}
    out["recordings"] = [
        {"simulator": r["simulator"], "density": r["density"], "pool": r["pool"],
         "index": r["index"], **{k: r["score"][k] for k in (
             "countable_units", "countable_found", "found_units", "merged_units",
             "split_units", "signal_rms_uv")},
         "units": [[u["ptp_rms"], u["firings"], u["f1"]] for u in r["score"]["units"]]}
        for r in rows]
    out["recordings_units_columns"] = ["ptp_rms", "firings", "f1"]
    return out


def current_decomposition(x_uv: np.ndarray, fs: int) -> list[np.ndarray]:
    """The project's decomposition (:func:`edge.muap.decomposition.decompose`) as trains."""
    from edge.muap.decomposition import decompose

    return [u.firings_s for u in decompose(x_uv, fs)]


def main(argv: list[str] | None = None) -> int:
    """``python -m benches.dense_muap [--quick] [--seeds validation|test]``: the current
    decomposition on the dense recordings, as JSON on stdout."""
    import argparse
    import json

    from benches.harness import pin_to_one_cpu

    ap = argparse.ArgumentParser(prog="python -m benches.dense_muap",
                                 description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="two densities, 3 s recordings")
    ap.add_argument("--seeds", choices=tuple(SEEDS), default="test")
    args = ap.parse_args(argv)
    pin_to_one_cpu()
    t0 = time.perf_counter()
    res = dense_section(current_decomposition, quick=args.quick, seeds=args.seeds)
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
