"""``nemg bench rest``: how the rest check (``edge/rest_check.py``) was chosen, and what it
costs on simulated abnormal spontaneous activity.

Both simulators, each class of ``CHECKED_LABELS`` and the voluntary class, 12 recordings
of 12 s per class and simulator (quick: 1), cut into 3 s stretches, as the box holds
them (int16 at the model rate). Per candidate count of independent units at voluntary
rates: the share of stretches of abnormal activity that would be withheld (the cost) and
of voluntary stretches recognised as a contraction. The count is chosen on the first draw
(:data:`CHOICE_SEED`) as the smallest whose cost is at most :data:`MAX_WITHHELD_SHARE`;
the second draw (:data:`HELD_OUT_SEED`) only reports. Then the whole pipeline with the
shipped model on the held-out draw: windows withheld and findings lost, with and without
the check. No real recording takes part.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import numpy as np

from benches.harness import BenchOptions

CHOICE_SEED, HELD_OUT_SEED = 77, 78
MAX_WITHHELD_SHARE = 0.01
"""Stretches of abnormal spontaneous activity the check may withhold, at most."""
CANDIDATE_COUNTS = (3, 4, 5, 6)
DURATION_S = 12.0


def _recordings(seed: int, per_class: int, fs: int):
    """(simulator, label, int16 samples at ``fs``) for each recording of the draw."""
    from convert import biosim, synth
    from edge.readers.recording import uv_to_int16
    from edge.rest_check import CHECKED_LABELS
    from edge.spec import MelConfig

    labels = [*sorted(CHECKED_LABELS), "motor_unit"]
    for sim in ("synth", "biosim"):
        for k, lab in enumerate(labels):
            for i in range(per_class):
                rng = np.random.default_rng([seed, i, k, sim == "biosim"])
                rec = (synth.synthesize(lab, fs=fs, duration_s=DURATION_S, rng=rng)
                       if sim == "synth"
                       else biosim.simulate(lab, fs=fs, duration_s=DURATION_S, rng=rng))
                yield sim, lab, uv_to_int16(rec.signal_uv, MelConfig().uv_per_lsb)


def _stretch_counts(recs, fs: int) -> tuple[list[tuple[str, str, int]], float]:
    from edge.rest_check import voluntary_rates
    from edge.spec import DEFAULT_DECISION

    STRETCH_S = DEFAULT_DECISION.rest_check.stretch_s

    n = round(STRETCH_S * fs)
    rows, spent = [], 0.0
    for sim, lab, x in recs:
        for a in range(0, x.size - n + 1, n):
            t0 = time.process_time()
            rows.append((sim, lab, len(voluntary_rates(x[a: a + n], fs))))
            spent += time.process_time() - t0
    return rows, spent / max(1, len(rows))


def _table(rows) -> dict[str, Any]:
    out = {}
    for m in CANDIDATE_COUNTS:
        patho = [c for _, lab, c in rows if lab != "motor_unit"]
        vol = [c for _, lab, c in rows if lab == "motor_unit"]
        worst = Counter(f"{sim} {lab}" for sim, lab, c in rows if lab != "motor_unit" and c >= m)
        out[str(m)] = {"abnormal_stretches_withheld": float(np.mean(np.array(patho) >= m)),
                       "voluntary_stretches_recognised": float(np.mean(np.array(vol) >= m)),
                       "withheld_by_class": dict(worst.most_common())}
    return out


def _pipeline(recs, bundle) -> dict[str, Any]:
    """The shipped model's windows on abnormal recordings, with and without the check."""
    from dataclasses import replace

    from edge.labels import PATHOLOGICAL
    from edge.pipeline import Pipeline, summarize

    rest_only = replace(bundle.decision, recogniser=None)

    t: Counter[str] = Counter()
    for _, lab, x in recs:
        if lab == "motor_unit":
            continue
        runs = {}
        for on in (True, False):  # the rest check itself (a bundle without a recogniser)
            pipe = Pipeline(bundle, rest_check=on, decision=rest_only)
            runs[on] = pipe.push(x, 0)[0]
        t["windows"] += len(runs[True])
        t["withheld"] += sum(w.contracting for w in runs[True])
        t["right_alone"] += sum(w.label == lab for w in runs[False])
        t["right_checked"] += sum(w.label == lab for w in runs[True])
        t["files"] += 1
        t["pathological_finding_alone"] += summarize(runs[False])["label"] in PATHOLOGICAL
        t["pathological_finding_checked"] += summarize(runs[True])["label"] in PATHOLOGICAL
    n = max(1, t["windows"])
    return {"abnormal_windows_withheld": t["withheld"] / n,
            "abnormal_window_recall_model_alone": t["right_alone"] / n,
            "abnormal_window_recall_with_check": t["right_checked"] / n,
            "abnormal_files": t["files"],
            "pathological_findings_model_alone": t["pathological_finding_alone"],
            "pathological_findings_with_check": t["pathological_finding_checked"]}


def run(opts: BenchOptions) -> dict[str, Any]:
    from benches.harness import pin_to_one_cpu
    from edge.runtime import load_verified
    from edge.spec import DEFAULT_DECISION, MelConfig

    pin_to_one_cpu()
    fs = MelConfig().sample_rate_hz
    per_class = 1 if opts.quick else 12
    choice_rows, cost = _stretch_counts(_recordings(CHOICE_SEED, per_class, fs), fs)
    choice = _table(choice_rows)
    ok = [m for m in CANDIDATE_COUNTS
          if choice[str(m)]["abnormal_stretches_withheld"] <= MAX_WITHHELD_SHARE]
    held_recs = list(_recordings(HELD_OUT_SEED, per_class, fs))
    held_rows, _ = _stretch_counts(held_recs, fs)
    return {"chosen_min_units": min(ok) if ok else None,
            "shipped_min_units": DEFAULT_DECISION.rest_check.min_voluntary_units,
            "check_s_per_stretch": cost,
            "choice_draw": choice, "held_out_draw": _table(held_rows),
            "held_out_pipeline": _pipeline(held_recs, load_verified())}
