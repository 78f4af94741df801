"""``nemg bench web``: the bedside page on a live session, measured from the page's side.

A stretch of the demo examination plays in real time from the virtual front end; a headless
Chromium shows the page and listens. Reported:

- ``latency_ms_p50``/``p95``: from a sample reaching the box (the hub's clock) to the
  frame that draws it (the page's clock; one machine, one clock);
- ``audio_latency_ms_p50``/``p95``: from a sample reaching the box to when WebAudio plays
  it (the page's scheduling lead plus the context's output latency);
- ``frames_per_s``: frames the page drew with new data, per second while the signal played;
- ``server_cpu_s_per_signal_s``: CPU time of the server's stream threads plus the session's
  feeding of the hub, per second of signal (share of one core); beside it, the same for the
  classifying session itself (front end to events, the reference of this run) and their
  ratio.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benches.harness import BenchOptions


@contextlib.contextmanager
def _children_on_every_cpu() -> Iterator[None]:
    """The browser is the page's machine, not the box: it does not share the benchmark's
    pinned core (children inherit the affinity of the thread that starts them)."""
    if not hasattr(os, "sched_getaffinity"):
        yield
        return
    mine = os.sched_getaffinity(0)
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    try:
        yield
    finally:
        os.sched_setaffinity(0, mine)


def _pct(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(q / 100 * len(xs)))], 2)


def run(opts: BenchOptions) -> dict[str, Any]:
    from rigs.web_rig import LiveRig, browser, demo_excerpt, offline_page

    seconds = 6.0 if opts.quick else 20.0
    with tempfile.TemporaryDirectory() as tmp:
        wav, _ = demo_excerpt(Path(tmp) / "bench.wav", 4.0, 4.0 + seconds)
        with contextlib.ExitStack() as stack:
            with _children_on_every_cpu():
                b = stack.enter_context(browser())
            rig = stack.enter_context(LiveRig(wav, Path(tmp)))
            page, foreign = offline_page(b, rig.url, width=1920, height=1080)
            page.wait_for_function("window.nemg.stats.messages > 0", timeout=30_000)
            page.click("#listen")
            t0 = page.evaluate("performance.now()")
            frames0 = page.evaluate("window.nemg.stats.frames")
            page.evaluate("window.nemg.stats.latencies.length = 0")
            summary = rig.wait(seconds * 4 + 60)
            stats = page.evaluate("window.nemg.stats")
            t1 = page.evaluate("performance.now()")
            web_cpu = rig.screen.cpu_s + rig.hub.cpu_s
            session_cpu = rig.session_cpu_s - rig.hub.cpu_s
    signal_s = summary["signal_seconds"]
    lat = stats["latencies"]
    alat = stats["audio"]["latencies"]
    played_s = max(1e-9, (t1 - t0) / 1000)
    return {
        "signal_s": round(signal_s, 2),
        "latency_ms_p50": _pct(lat, 50), "latency_ms_p95": _pct(lat, 95),
        "latency_samples": len(lat),
        "audio_latency_ms_p50": _pct(alat, 50), "audio_latency_ms_p95": _pct(alat, 95),
        "audio_restarts": stats["audio"]["restarts"],
        "frames_per_s": round((stats["frames"] - frames0) / played_s, 1),
        "messages": stats["messages"],
        "server_cpu_s_per_signal_s": round(web_cpu / signal_s, 4),
        "session_cpu_s_per_signal_s": round(session_cpu / signal_s, 4),
        "server_to_session_cpu_ratio": round(web_cpu / max(1e-9, session_cpu), 3),
        "foreign_requests": len(foreign),
        "mean_latency_ms": round(statistics.fmean(lat), 2) if lat else None,
        "targets": {"frames_per_s": ">= 10", "latency_ms": "<= 200",
                    "audio_latency_ms": "<= 150"},
    }
