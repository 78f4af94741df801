"""``nemg bench cluster``: the per-recording work on Ray against the local path, in the same
run — corpus synthesis and classification throughput with 1 and 2 worker processes, the
cost of one task, and what starting Ray costs.

Each Ray figure comes from a fresh single-machine cluster of 1 or 2 CPUs (``ray.init``
with ``num_cpus``: a raylet and its worker processes, as ``ray start --head`` makes). The
process is not pinned to one CPU here: two workers need two. The corpora and outputs are
checked to be the same bytes on both paths (a throughput of wrong results is no figure).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

PER_CLASS = 17
"""Recordings per class: 17 × 12 classes = 204, the issue's "at least 200"."""
DURATION_S = 6.0
"""Seconds per recording: the corpus default (`nemg data synth`)."""
SEED = 3600
TRIVIAL_TASKS = 400
"""Tasks timed for the per-task overhead (each does nothing)."""


def _throughput(n: int, seconds: float) -> float:
    return round(n / seconds, 2) if seconds > 0 else float("inf")


def _synth(out: Path, ex) -> float:
    """Seconds to write the corpus ``out`` on ``ex``."""
    from convert.corpus import synth_corpus

    t0 = time.perf_counter()
    synth_corpus(out, PER_CLASS, SEED, duration_s=DURATION_S, ex=ex)
    return time.perf_counter() - t0


def _classify(files: list[Path], bundle, ex) -> tuple[float, str]:
    """Seconds to classify ``files`` on ``ex`` (``nemg classify --json``'s own task) and
    the output."""
    from edge.offline import classify_one

    args = argparse.Namespace(json=True, channel=None, scale_uv=None,
                              evidence_everywhere=False)
    t0 = time.perf_counter()
    out = "".join(text for _, text in ex.map(classify_one, files, shared=(bundle, args)))
    return time.perf_counter() - t0, out


def run(opts) -> dict[str, Any]:
    from benches.harness import _allowed_cpus
    from convert.corpus import read_corpus, synth_corpus
    from edge.labels import LABELS
    from edge.runtime import load_verified
    from nemg_common.executor import LocalExecutor, RayExecutor

    global PER_CLASS
    if opts.quick:
        PER_CLASS = 2
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(_allowed_cpus()))  # undo ``nemg bench``'s pinning
    bundle = load_verified()
    out: dict[str, Any] = {"recordings": 12 * PER_CLASS, "recording_s": DURATION_S,
                           "cpus": len(_allowed_cpus())}
    with tempfile.TemporaryDirectory() as d:
        ref: Path | None = None
        ref_text = None
        for where in ("local", "ray"):
            for workers in (1, 2):
                key = f"{where}_{workers}"
                if where == "ray":
                    t0 = time.perf_counter()
                    ex = RayExecutor.start_local(workers)
                    started = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    list(ex.map(abs, range(workers)))  # workers start (Python, imports)
                    first = time.perf_counter() - t0
                    t0 = time.perf_counter()
                    list(ex.map(abs, range(TRIVIAL_TASKS)))
                    per_task = (time.perf_counter() - t0) / TRIVIAL_TASKS
                    out[f"{key}_start_s"] = round(started, 3)
                    out[f"{key}_first_task_s"] = round(first, 3)
                    out[f"{key}_task_overhead_ms"] = round(1000 * per_task, 3)
                else:
                    ex = LocalExecutor(workers)
                    list(ex.map(abs, range(2 * workers)))  # the pool starts
                corpus = Path(d) / key
                with ex:
                    # the workers import the simulators before the clock starts
                    synth_corpus(Path(d) / f"{key}-warm", 1, SEED, duration_s=DURATION_S,
                                 labels=LABELS[:8], ex=ex)
                    s = _synth(corpus, ex)
                    files = [i.path for i in read_corpus(corpus)]
                    _classify(files[:2 * workers], bundle, ex)  # the bundle reaches workers
                    c, text = _classify(files, bundle, ex)
                if isinstance(ex, RayExecutor):
                    ex.shutdown()
                out[f"{key}_synth_recordings_per_s"] = _throughput(len(files), s)
                out[f"{key}_classify_recordings_per_s"] = _throughput(len(files), c)
                if ref is None:
                    ref, ref_text = corpus, text
                else:
                    _same(ref, corpus)
                    if text.replace(str(corpus), str(ref)) != ref_text:
                        raise AssertionError(f"{key}: classification differs from local_1")
    for what in ("synth", "classify"):
        for where in ("local", "ray"):
            out[f"{where}_{what}_speedup_2_workers"] = round(
                out[f"{where}_2_{what}_recordings_per_s"]
                / out[f"{where}_1_{what}_recordings_per_s"], 3)
    per_rec = 1 / out["ray_1_synth_recordings_per_s"]
    out["ray_synth_core_hours_per_million_recordings"] = round(per_rec * 1e6 / 3600, 1)
    out["same_bytes_everywhere"] = True
    return out


def _same(a: Path, b: Path) -> None:
    for f in sorted(a.rglob("*")):
        if f.is_file() and f.read_bytes() != (b / f.relative_to(a)).read_bytes():
            raise AssertionError(f"{b}: {f.relative_to(a)} differs from the local corpus")
