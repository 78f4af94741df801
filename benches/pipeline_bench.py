"""``nemg bench pipeline``: bytes on a pty -> events, one core.

The virtual front end streams the scripted exam ``--fast`` from another process (pinned to
another core where there is one); this process — pinned to one core — reads the pty,
decodes, computes features, runs the int8 model and smooths. ``realtime_factor`` is signal
seconds per CPU second of this process; ``decision_latency_ms`` runs from the push that
delivered a window's last sample to its decision. Peak RSS is measured in a fresh process
that imports only what the box imports.

With ``NEMG_BENCH_PROFILE=1`` the child also reports where its time goes (cProfile,
cumulative) and the lines holding its memory at the end (tracemalloc): slower, so not a
timing run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from benches.harness import BenchOptions, box_and_front_end_cpus

CHILD = r"""
import json, os, sys, time
cpu = int(sys.argv[2])
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {cpu})
from edge.live import LiveSession
from edge.pipeline import Pipeline
from edge.procmem import peak_rss_mb
from edge.runtime import load_verified
from edge.screen import PlainView
from wire.boards import get_frontend
from wire.link import FrontEndClient, SerialLink
import io
board = get_frontend("nemg-fe1")
pipe = Pipeline(load_verified())
link = SerialLink(sys.argv[1]); link.open()
seconds = float(sys.argv[3])
session = LiveSession(pipe, FrontEndClient(link, reconnect=False), board,
                      view=PlainView(io.StringIO()))
need = int(seconds * board.sample_rate_hz)
profile = os.environ.get("NEMG_BENCH_PROFILE") == "1"
if profile:
    import cProfile, pstats, tracemalloc
    prof = cProfile.Profile()
    tracemalloc.start(8)
    prof.enable()
c0, w0 = time.process_time(), time.perf_counter()
s = session.run(until=lambda: session.state.samples >= need)
cpu_s, wall_s = time.process_time() - c0, time.perf_counter() - w0
s.update(cpu_s=cpu_s, wall_s=wall_s,
         peak_rss_mb=peak_rss_mb(),
         tf_loaded="tensorflow" in sys.modules)
if profile:
    prof.disable()
    st = pstats.Stats(prof).stats
    top = sorted(st.items(), key=lambda kv: -kv[1][3])[:15]
    s["profile_cumulative_s"] = [[f"{k[0].split('/')[-1]}:{k[1]}({k[2]})", round(v[3], 4)]
                                 for k, v in top]
    snap = tracemalloc.take_snapshot().statistics("lineno")[:10]
    s["memory_held_kb"] = [[str(m.traceback[0]), round(m.size / 1024, 1)] for m in snap]
print(json.dumps(s))
"""


def window_coverage(session, total_samples: int) -> float:
    """Windows a session decided over those a loss-free stream of ``total_samples`` gives."""
    p = session.pipeline
    need, hop = p.win.samples(p.mel), p.win.hop_frames * p.mel.hop_length
    expected = (total_samples - need) // hop + 1 if total_samples >= need else 0
    return p.windows_done / expected if expected else 0.0


def coverage_under_loss(drop_rate: float, seconds: float, seed: int = 0) -> dict[str, Any]:
    """The scripted exam through a virtual front end that drops ``drop_rate`` of its
    frames (fast: the figure does not depend on timing)."""
    import io

    import numpy as np

    from edge.live import LiveSession
    from edge.pipeline import Pipeline
    from edge.readers import load_wav
    from edge.runtime import load_verified
    from edge.screen import PlainView
    from rigs.demo import DEMO_WAV
    from wire.boards import get_frontend
    from wire.link import FrontEndClient, SerialLink
    from wire.virtual import Faults, SampleSource, VirtualFrontEnd

    board = get_frontend("nemg-fe1")
    x = load_wav(DEMO_WAV).to_int16(board.uv_per_lsb)
    x = np.tile(x, -(-int(seconds * board.sample_rate_hz) // x.size))
    src = SampleSource(x[: int(seconds * board.sample_rate_hz)], loop=False)
    with VirtualFrontEnd(board, src, fast=True, faults=Faults(drop_rate=drop_rate, seed=seed)
                         ) as vfe:
        link = SerialLink(vfe.path)
        link.open()
        session = LiveSession(Pipeline(load_verified()), FrontEndClient(link, reconnect=False),
                              board, view=PlainView(io.StringIO()))
        deadline = time.monotonic() + 600

        def done() -> bool:
            heard = session.state.samples + session.pipeline.samples_lost
            return (vfe.finished.is_set() and heard >= vfe.stats.sent_until
                    - vfe.source_origin) or time.monotonic() > deadline

        s = session.run(until=done)
    return {"coverage": window_coverage(session, len(src)), "gaps": s["gaps"],
            "concealed": session.pipeline.gaps_concealed,
            "windows_with_concealed_samples": sum(w.concealed > 0
                                                  for w in session.state.windows)}


LONG_FILE_CHILD = r"""
import os, sys
from edge.cli import main
from edge.procmem import peak_rss_mb
with open(os.devnull, "w") as out:
    sys.stdout = out
    rc = main(["classify", "--json", sys.argv[1]])
    sys.stdout = sys.__stdout__
print(rc, peak_rss_mb())
"""


FORMATS = ("wav", "edf", "wfdb", "csv")
"""The formats the long-file memory figure is measured for."""
CSV_RATE_HZ = 4000
"""A long CSV is written at an archive's rate (emgdb's): at 20 kHz 3 h of text is 4 GB."""


def write_long_file(folder: Path, fmt: str, hours: float) -> Path:
    """The scripted exam, tiled to ``hours``, as a file of ``fmt`` in ``folder``: WAV, EDF
    (1 s records) and WFDB (format 16) at 20 kHz, written a period at a time; a CSV at
    :data:`CSV_RATE_HZ` (its rows must count up, so they are formatted as they go)."""
    import numpy as np

    from edge.readers import load_wav
    from edge.readers.wav import wav_header
    from edge.resample import resample_int16
    from edge.spec import DEFAULT_SPEC
    from rigs.demo import DEMO_WAV

    fs, lsb = DEFAULT_SPEC.mel.sample_rate_hz, DEFAULT_SPEC.mel.uv_per_lsb
    exam = load_wav(DEMO_WAV).to_int16(lsb)
    n = int(hours * 3600 * fs) // fs * fs  # whole seconds: whole EDF records
    period = exam[: exam.size // fs * fs].astype("<i2")

    def tiled(f, total: int) -> None:
        for i in range(0, total, period.size):
            f.write(period[: min(period.size, total - i)].tobytes())

    if fmt == "wav":
        path = folder / "long.wav"
        with open(path, "wb") as f:
            f.write(wav_header(n, fs, 0.5))
            tiled(f, n)
    elif fmt == "edf":
        path = folder / "long.edf"
        with open(path, "wb") as f:
            fields = [("0", 8), ("X X X X", 80), ("Startdate X X X X", 80), ("01.01.01", 8),
                      ("00.00.00", 8), ("512", 8), ("", 44), (str(n // fs), 8), ("1", 8),
                      ("1", 4), ("EMG", 16), ("", 80), ("uV", 8), ("-16384", 8),
                      ("16383.5", 8), ("-32768", 8), ("32767", 8), ("", 80), (str(fs), 8),
                      ("", 32)]
            f.write("".join(v.ljust(w) for v, w in fields).encode("ascii"))
            tiled(f, n)
    elif fmt == "wfdb":
        path = folder / "long.hea"
        path.write_text(f"long 1 {fs} {n}\nlong.dat 16 2(0)/uV 16 0 0 0 0 emg\n")
        with open(folder / "long.dat", "wb") as f:
            tiled(f, n)
    else:
        path = folder / "long.csv"
        x = resample_int16(exam, fs, CSV_RATE_HZ).astype(np.float64) * 0.5
        total = n // fs * CSV_RATE_HZ
        with open(path, "w") as f:
            f.write("time_s,emg_uV\n")
            for i in range(0, total, x.size):
                k = min(x.size, total - i)
                f.write("".join(map("{:.6f},{:.1f}\n".format,
                                    (i + np.arange(k)) / CSV_RATE_HZ, x[:k])))
    return path


def peak_rss_classify(hours: float, fmt: str = "wav") -> float:
    """Peak resident MB of ``nemg classify --json`` on a file of ``hours`` in ``fmt``
    (:func:`write_long_file`), in a fresh process (VmHWM: its own high-water mark)."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        path = write_long_file(Path(d), fmt, hours)
        child = subprocess.run([sys.executable, "-c", LONG_FILE_CHILD, str(path)],
                               capture_output=True, text=True, timeout=3 * 3600)
    rc, mb = child.stdout.split()
    if rc != "0":
        raise RuntimeError(f"classify of a long {fmt} file failed: "
                           f"{child.stderr.strip()[-500:]}")
    return float(mb)


def run(opts: BenchOptions) -> dict[str, Any]:
    seconds = 10.0 if opts.quick else 60.0
    mine, other = box_and_front_end_cpus()
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
        **{k: s[k] for k in ("profile_cumulative_s", "memory_held_kb") if k in s},
        "process_wall_s": wall,
        "pipeline_cpu": mine,
        "simulator_cpu": other,
        **_loss_and_memory(opts),
    }


def _loss_and_memory(opts: BenchOptions) -> dict[str, Any]:
    loss = coverage_under_loss(0.01, 10.0 if opts.quick else 120.0)
    hours = 0.05 if opts.quick else 3.0
    key = "peak_rss_mb_3h_file" if not opts.quick else "peak_rss_mb_quick_file"
    by_format = {fmt: peak_rss_classify(hours, fmt) for fmt in FORMATS}
    return {
        "window_coverage_at_1pct_frame_loss": loss["coverage"],
        "gaps_at_1pct_frame_loss": loss["gaps"],
        "gaps_concealed_at_1pct_frame_loss": loss["concealed"],
        key: by_format["wav"],
        f"{key}_by_format": by_format,
    }
