"""``nemg bench features``: fixed-point front end vs float references, same run, one core."""

from __future__ import annotations

from typing import Any

from benches.harness import BenchOptions, measure_interleaved
from edge.features import MelFrontEnd
from edge.mel_reference import Float32MelBaseline, compare_to_reference, reference_log_mel_db
from edge.spec import DEFAULT_SPEC
from rigs.testsignals import examination


def run(opts: BenchOptions) -> dict[str, Any]:
    config = DEFAULT_SPEC.mel
    seconds = 3.0 if opts.quick else 60.0
    x = examination(seconds, config, seed=1)
    fe = MelFrontEnd(config)
    baseline = Float32MelBaseline(config)
    t = measure_interleaved(
        {
            "fixed": lambda: fe.process(x),
            "float64_ref": lambda: reference_log_mel_db(x, config),
            "float32_baseline": lambda: baseline(x),
        },
        repeats=opts.repeats,
        warmup=opts.warmup,
    )
    fixed, ref, base = t["fixed"], t["float64_ref"], t["float32_baseline"]
    acc = compare_to_reference(x, front_end=fe)
    return {
        "signal_seconds": seconds,
        "sample_rate_hz": config.sample_rate_hz,
        "frames": config.num_frames(x.size),
        "realtime_factor": seconds / fixed.cpu_s,
        "ref_realtime_factor": seconds / ref.cpu_s,
        "float32_realtime_factor": seconds / base.cpu_s,
        "speedup_vs_ref": ref.cpu_s / fixed.cpu_s,
        "speedup_vs_float32": base.cpu_s / fixed.cpu_s,
        "cpu_s_fixed": fixed.cpu_s,
        "cpu_s_ref": ref.cpu_s,
        "cpu_s_float32": base.cpu_s,
        **acc,
    }
