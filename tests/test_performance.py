"""What keeps the box inside its budget: memory that does not grow with a session, work off
the decision path, and the benchmarks that measure both (their figures are not asserted
here: no test depends on how fast the machine is)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import run_nemg


def test_peak_memory_is_the_measured_process_own_not_its_parent():
    """ru_maxrss survives exec: a child of a process that once held 600 MB reads 600 MB.
    The box's figure is its own (VmHWM)."""
    big = np.ones(600 * 2**20 // 8)  # touched: resident
    child = subprocess.run(
        [sys.executable, "-c", "from edge.procmem import peak_rss_mb; print(peak_rss_mb())"],
        capture_output=True, text=True, check=True)
    assert big.sum() > 0
    assert float(child.stdout) < 200


def test_without_proc_the_peak_memory_falls_back_to_getrusage_in_megabytes(
        monkeypatch, tmp_path):
    from edge import procmem

    here = procmem.peak_rss_mb()
    monkeypatch.setattr(procmem, "_STATUS", tmp_path / "no-such-status")
    assert procmem.rss_mb() is None
    assert here * 0.5 <= procmem.peak_rss_mb() <= here * 2 + 50  # MB, not kB or GB


def test_a_session_keeps_a_bounded_number_of_windows_and_its_finding_counts_all(
        monkeypatch, tmp_path):
    """A session of any length holds the last KEEP_WINDOWS decisions; its finding and
    window count still cover every window (WindowTally)."""
    import edge.live as live
    from edge.live import LiveSession
    from edge.pipeline import Pipeline, summarize
    from edge.runtime import load_verified
    from edge.screen import PlainView
    from rigs.sources import open_source
    from rigs.web_rig import demo_excerpt
    from wire.boards import get_frontend
    from wire.link import FrontEndClient, SerialLink
    from wire.virtual import VirtualFrontEnd

    monkeypatch.setattr(live, "KEEP_WINDOWS", 8)
    seen: dict[int, object] = {}

    class Collect(PlainView):
        def update(self, state, session, *, force=False):
            if state.last is not None:
                seen[state.last.index] = state.last

    fe1 = get_frontend("nemg-fe1")
    wav, _ = demo_excerpt(tmp_path / "exam.wav", 0.0, 20.0)
    with VirtualFrontEnd(fe1, open_source(str(wav), fe1, loop=False), fast=True) as vfe:
        link = SerialLink(vfe.path)
        link.open()
        session = LiveSession(Pipeline(load_verified()), FrontEndClient(link, reconnect=False),
                              fe1, view=Collect())
        summary = session.run(until=vfe.finished.is_set)
    assert len(session.state.windows) == len(session.state.latencies) == 8
    assert summary["windows"] == len(seen) > 30
    assert [w.index for w in session.state.windows] == sorted(seen)[-8:]
    assert summary["finding"] == summarize(seen[i] for i in sorted(seen))


def test_a_crashed_muap_analysis_is_raised_after_the_session_closed_down(tmp_path):
    """An analysis that fails is not lost: the session raises it, but only after it has
    logged its end, closed its screen and its port, and queued stretches never block."""
    import io

    from conftest import contraction_wav

    from edge.eventlog import open_for_session
    from edge.live import LiveSession
    from edge.muap_live import MAX_PENDING, MuapMonitor, MuapStretch, MuapWorker
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified
    from edge.screen import PlainView
    from rigs.sources import open_source
    from wire.boards import get_frontend
    from wire.link import FrontEndClient, SerialLink
    from wire.virtual import VirtualFrontEnd

    class Broken(MuapMonitor):
        def analyse(self, s):
            raise RuntimeError("analysis bug")

    worker = MuapWorker(Broken(20_000, 0.5))
    for _ in range(MAX_PENDING + 5):  # never blocks once the worker has failed
        worker.submit(MuapStretch(0, 10, np.zeros(10)))
    assert worker.drain() == [] and str(worker.failed) == "analysis bug"

    class View(PlainView):
        closed = False

        def close(self):
            View.closed = True

    fe1 = get_frontend("nemg-fe1")
    wav = contraction_wav(tmp_path / "c.wav", 12.0)
    log = open_for_session(tmp_path / "events.db")
    pipe = Pipeline(load_verified())
    with VirtualFrontEnd(fe1, open_source(str(wav), fe1, loop=False), fast=True) as vfe:
        link = SerialLink(vfe.path)
        link.open()
        session = LiveSession(pipe, FrontEndClient(link), fe1, log=log, view=View(io.StringIO()),
                              muap=Broken(pipe.fs, pipe.mel.uv_per_lsb, window_s=4.0))
        with pytest.raises(RuntimeError, match="analysis bug"):
            session.run(until=vfe.finished.is_set)
        assert View.closed and not link.is_open
    ended = [s for s in log.sessions() if s["id"] == log.session_id]
    assert ended and ended[0]["ended"] is not None and ended[0]["summary"] is not None


def test_the_pi_budget_benchmark_reports_both_runs_and_the_long_session():
    out = json.loads(run_nemg("bench", "pi", "--quick", "--json", check=True,
                              timeout=600).stdout.splitlines()[-1])
    assert out["pi4_slowdown"] > 1
    for run in ("session", "session_with_page"):
        r = out["pi_budget"][run]
        assert isinstance(r["keeps_real_time"], bool) and r["windows"] > 0
        assert 0 < r["peak_rss_mb"] < 1000
    assert out["pi_budget"]["session_with_page"]["page_bytes_read"] > 0
    hour = out["long_session"]
    assert hour["signal_s"] >= 120 and len(hour["rss_mb_per_minute"]) >= 2
