"""``nemg demo``: the main job on the embedded default, end to end, no hardware.

Starts the virtual front end on a pty in the background, playing a scripted ~60 s
examination (every class, silence and artifacts between), runs the live pipeline against
it with the shipped model, shows the live view, then scores each scripted segment.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from edge.pipeline import WindowResult, summarize

DATA = Path(__file__).with_name("data")
DEMO_WAV = DATA / "demo-exam.wav"
DEMO_LABELS = DATA / "demo-exam.labels.csv"

#: (class, seconds): what the examiner finds, needle position by needle position.
DEMO_SCRIPT: tuple[tuple[str, float], ...] = (
    ("silence", 4.0),
    ("insertional", 4.0),
    ("fibrillation", 6.0),
    ("positive_sharp_wave", 6.0),
    ("fasciculation", 6.0),
    ("complex_repetitive", 5.0),
    ("myotonic", 5.0),
    ("myokymic", 6.0),
    ("neuromyotonic", 5.0),
    ("end_plate", 5.0),
    ("motor_unit", 5.0),
    ("artifact", 4.0),
)


def segments() -> list[tuple[float, float, str]]:
    out, t = [], 0.0
    for label, sec in DEMO_SCRIPT:
        out.append((t, t + sec, label))
        t += sec
    return out


def score(windows: list[WindowResult]) -> list[dict]:
    """Per scripted segment: the finding over windows that lie inside it."""
    rows = []
    for a, b, label in segments():
        inside = [w for w in windows if w.start_s >= a - 1e-6 and w.end_s <= b + 1e-6]
        heard = summarize(inside)["label"] if inside else "-"
        rows.append({"start_s": a, "end_s": b, "expected": label, "heard": heard,
                     "windows": len(inside), "ok": heard == label})
    return rows


def run_demo(*, fast: bool = False, model: Path | None = None, plain: bool = False,
             out: TextIO = sys.stdout, log_path: Path | None = None,
             web: str | None = None, web_token: str | None = None,
             linger: bool = False, sinks: Sequence = ()) -> dict:
    """``log_path``: the event log the session is recorded in (None: not recorded).
    ``web``: also serve the bedside page there; ``linger``: keep serving it after the
    examination, for review and corrections, until interrupted; ``sinks``: the session's
    own (:class:`edge.live.Sink`: the exam recording)."""
    from edge.eventlog import open_for_session
    from edge.live import LiveSession
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified
    from edge.screen import make_view
    from rigs.sources import open_source
    from wire.boards import get_frontend
    from wire.link import FrontEndClient, SerialLink
    from wire.virtual import VirtualFrontEnd

    board = get_frontend("nemg-fe1")
    bundle = load_verified(model)
    print(f"model {bundle.name} {bundle.version} verified and self-tested "
          f"({'DEVELOPMENT key' if bundle.manifest.get('development_key') else 'signed'})",
          file=out, flush=True)
    source = open_source(str(DEMO_WAV), board, loop=False)
    vfe = VirtualFrontEnd(board, source, fast=fast)
    vfe.start()
    print(f"virtual front end {board.name} on {vfe.path}\nplaying a "
          f"{sum(s for _, s in DEMO_SCRIPT):.0f} s scripted examination"
          f"{' (fast)' if fast else ''}", file=out, flush=True)
    link = SerialLink(vfe.path, baudrate=board.baudrate)
    link.open()
    total = len(source)
    view = make_view(out, plain=plain)
    log = open_for_session(log_path) if log_path else None
    screen = None
    if web:
        from edge.web.server import start_web

        screen, view = start_web(web, token=web_token, log_path=log.path if log else None,
                                 inner=view, announce=sys.stderr)
    session = LiveSession(Pipeline(bundle), FrontEndClient(link, reconnect=False), board,
                          view=view, log=log, source="demo", sinks=sinks)
    done = threading.Event()

    def finished() -> bool:
        if vfe.finished.is_set() and session.state.samples >= total:
            done.set()
        return done.is_set() or vfe.error is not None

    try:
        summary = session.run(until=finished)
    finally:
        vfe.stop()
        if screen is not None and not linger:
            screen.stop()
    rows = score(session.state.windows)
    ok = sum(r["ok"] for r in rows)
    print("\nscripted segment          heard                 windows", file=out)
    for r in rows:
        print(f"  {r['start_s']:5.1f}–{r['end_s']:5.1f} s {r['expected']:<20} "
              f"{r['heard']:<20} {r['windows']:>3}  {'✓' if r['ok'] else '✗'}", file=out)
    print(f"{ok}/{len(rows)} segments named correctly · {summary['windows']} windows\n"
          f"gaps {summary['gaps']} · CRC errors {summary['crc_errors']} · decision latency "
          f"p50 {summary['decision_latency_ms_p50']:.1f} ms", file=out, flush=True)
    summary["segments"] = rows
    summary["segments_correct"] = ok
    if screen is not None and linger:
        print(f"the page stays on {screen.url} for review and corrections; Ctrl-C stops it",
              file=out, flush=True)
        try:
            screen.stopping.wait()
        except KeyboardInterrupt:
            pass
        finally:
            screen.stop()
    return summary
