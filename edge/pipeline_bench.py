"""``nemg bench pipeline``: bytes on a pty -> events, one core.

The virtual front end streams the scripted exam ``--fast`` from another process (pinned to
another core where there is one); this process — pinned to one core — reads the pty,
decodes, computes features, runs the int8 model and smooths. ``realtime_factor`` is signal
seconds per CPU second of this process; ``decision_latency_ms`` runs from the push that
delivered a window's last sample to its decision. Peak RSS is measured in a fresh process
that imports only what the box imports.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from edge.bench import BenchOptions

CHILD = r"""
import json, os, resource, sys, time
cpu = int(sys.argv[2])
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {cpu})
from edge.live import LiveSession, PlainView
from edge.pipeline import Pipeline
from edge.runtime import load_verified
from firmware_host.boards import get_frontend
from firmware_host.link import FrontEndClient, SerialLink
import io
board = get_frontend("nemg-fe1")
pipe = Pipeline(load_verified())
link = SerialLink(sys.argv[1]); link.open()
seconds = float(sys.argv[3])
session = LiveSession(pipe, FrontEndClient(link, reconnect=False), board,
                      view=PlainView(io.StringIO()))
need = int(seconds * board.sample_rate_hz)
c0, w0 = time.process_time(), time.perf_counter()
s = session.run(until=lambda: session.state.samples >= need)
cpu_s, wall_s = time.process_time() - c0, time.perf_counter() - w0
s.update(cpu_s=cpu_s, wall_s=wall_s,
         peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
         tf_loaded="tensorflow" in sys.modules)
print(json.dumps(s))
"""


def run(opts: BenchOptions) -> dict[str, Any]:
    seconds = 10.0 if opts.quick else 60.0
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    all_cpus = sorted(range(os.cpu_count() or 1))
    mine = cpus[-1]
    other = next((c for c in all_cpus if c != mine), mine)
    sim = subprocess.Popen([sys.executable, "-m", "edge.cli", "frontend", "simulate",
                            "--source", "scenario:exam", "--fast"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(sim.pid, {other})
        path = sim.stdout.readline().strip()
        t0 = time.perf_counter()
        child = subprocess.run([sys.executable, "-c", CHILD, path, str(mine), str(seconds)],
                               capture_output=True, text=True, timeout=600,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        wall = time.perf_counter() - t0
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    if child.returncode != 0:
        raise RuntimeError(f"pipeline benchmark child failed: {child.stderr.strip()[-500:]}")
    s = json.loads(child.stdout.strip().splitlines()[-1])
    return {
        "signal_seconds": s["signal_seconds"],
        "realtime_factor": s["signal_seconds"] / s["cpu_s"],
        "wall_realtime_factor": s["signal_seconds"] / s["wall_s"],
        "decision_latency_ms_p50": s["decision_latency_ms_p50"],
        "decision_latency_ms_p95": s["decision_latency_ms_p95"],
        "peak_rss_mb": s["peak_rss_mb"],
        "windows": s["windows"],
        "gaps": s["gaps"],
        "crc_errors": s["crc_errors"],
        "tensorflow_loaded": s["tf_loaded"],
        "process_wall_s": wall,
        "pipeline_cpu": mine,
        "simulator_cpu": other,
    }
