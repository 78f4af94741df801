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


def test_a_session_keeps_a_bounded_number_of_windows_and_its_finding_counts_all(
        monkeypatch, tmp_path):
    """A session of any length holds the last KEEP_WINDOWS decisions; its finding and
    window count still cover every window (WindowTally)."""
    import edge.live as live
    from edge.live import LiveSession, PlainView
    from edge.pipeline import Pipeline, summarize
    from edge.runtime import load_verified
    from edge.sources import open_source
    from edge.web.rig import demo_excerpt
    from firmware_host.boards import get_frontend
    from firmware_host.link import FrontEndClient, SerialLink
    from firmware_host.virtual import VirtualFrontEnd

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


def test_a_muap_worker_reports_a_crash_and_never_hangs_the_session():
    """An analysis that fails is raised in the session's thread, not lost; stretches
    queued after it do not block the one who queues them."""
    from edge.muap_live import MAX_PENDING, MuapMonitor, MuapStretch, MuapWorker

    class Broken(MuapMonitor):
        def analyse(self, s):
            raise RuntimeError("analysis bug")

    worker = MuapWorker(Broken(20_000, 0.5))
    stretch = MuapStretch(0, 10, np.zeros(10))
    worker.submit(stretch)
    with pytest.raises(RuntimeError, match="analysis bug"):
        for _ in range(MAX_PENDING + 5):
            worker.submit(stretch)
    with pytest.raises(RuntimeError, match="analysis bug"):
        worker.drain()


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
