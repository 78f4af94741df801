"""A live session: acquisition -> pipeline -> sinks.

Shared by ``nemg run`` (a real port) and ``nemg demo`` (the virtual front end). The front
end's samples come from :mod:`edge.acquire.board` (scaled, at the model's rate, with
explicit gaps); the session batches them into one pipeline call per decision and hands
what comes out to its sinks: the event log (first, so an event is durable before it is
shown), the MUAP analysis, the raw-signal capture and the view (a terminal, a pipe, the
bedside page: :mod:`edge.screen`, :mod:`edge.web.hub`). A command adds sinks of its own
(the exam recording, :mod:`edge.exam_recording`) with ``sinks=``.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from edge.acquire.board import Block, BoardStream, Gap
from edge.errors import ConfigError
from edge.eventlog import EventLog, SessionLog
from edge.labels import UNCERTAIN
from edge.muap_live import MuapMonitor, MuapResult, MuapWorker
from edge.pipeline import Event, Pipeline, WindowResult, WindowTally
from edge.procmem import peak_rss_mb
from edge.readers.wav import write_wav
from edge.rest_check import DETAIL_PREFIX, NOTED_LABELS
from wire.boards import FrontEndProfile
from wire.link import FrontEndClient, LinkEvent
from wire.protocol import Flag


def check_board(pipeline: Pipeline, board: FrontEndProfile) -> None:
    """Refuse a board the pipeline's model was not made for."""
    why = pipeline.bundle.board_mismatch(board.name, board.sample_rate_hz)
    if why:
        b = pipeline.bundle
        raise ConfigError(f"model {b.name} {b.version}: {why}")


KEEP_WINDOWS = 240
"""Window results a session holds for its screens and callers: the last 2 minutes at a
0.5 s hop. Memory does not grow with a session's length; its finding counts every window
(:class:`~edge.pipeline.WindowTally`). (With 10 minutes the box's resident memory crept
up for 10 minutes: long-lived results between a MUAP analysis's transient arrays keep the
allocator's pages; ``nemg bench pi``.)"""


@dataclass
class SessionState:
    """What the view shows."""

    started: float = field(default_factory=time.monotonic)
    last: WindowResult | None = None
    events: deque = field(default_factory=lambda: deque(maxlen=6))
    windows: deque[WindowResult] = field(default_factory=lambda: deque(maxlen=KEEP_WINDOWS))
    """The last :data:`KEEP_WINDOWS` decisions."""
    tally: WindowTally = field(default_factory=WindowTally)
    """Every decision's part in the session's finding."""
    samples: int = 0
    """Samples received from the front end (at its own rate)."""
    link_note: str = "connecting"
    flags: Flag = Flag.NONE
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=KEEP_WINDOWS))
    """Decision latencies (s) of the last :data:`KEEP_WINDOWS` windows."""
    muap: MuapResult | None = None
    """The newest MUAP site summary (``--muap``)."""

    def rate_sps(self) -> float:
        """Samples per second received since the session started (wall clock)."""
        el = time.monotonic() - self.started
        return self.samples / el if el > 0 else 0.0

    def flag_names(self) -> list[str]:
        """The front end's status flags seen so far that a screen shows."""
        return [f.name.lower() for f in (Flag.CLIPPING, Flag.ELECTRODE_OFF) if self.flags & f]


class Sink:
    """What a session hands on, and when. Every method is a no-op here: a sink overrides
    what it takes. Views (:mod:`edge.screen`, :class:`edge.web.hub.WebView`) are sinks."""

    failed: BaseException | None = None
    """An error the sink's own thread hit: the session stops, closes down, then raises it."""

    def attach(self, session: LiveSession) -> None:
        """Called once, when the session is made."""

    def samples(self, pcm: np.ndarray, index: int) -> None:
        """Canonical samples at the model's rate as they arrive (stream ``index``)."""

    def features(self, frames: np.ndarray, end_index: int) -> None:
        """New int8 feature frames; the last one ends at stream ``end_index``."""

    def decided(self, results: list[WindowResult]) -> list[Event]:
        """New decisions; returns finished events of the sink's own, for every sink."""
        return []

    def event(self, ev: Event, logged_id: int | None) -> None:
        """An event, once the log took it (``logged_id``; None: not logged)."""

    def link(self, ev: LinkEvent) -> None:
        """A change of the link's state (a pulled cable, a hung device)."""

    def update(self, state: SessionState, session: LiveSession, *, force: bool = False
               ) -> None:
        """After everything the front end sent; ``force``: the final state."""

    def finish(self) -> list[Event]:
        """The stream ended: the sink's events still owed (waited for)."""
        return []

    def summarize(self, summary: dict) -> None:
        """Add the sink's own figures to the session's summary (after :meth:`finish`)."""

    def close(self) -> None:
        """The session is over (also after an error)."""


class MuapSink(Sink):
    """MUAP analysis of voluntary stretches: the monitor sees every sample and decision,
    its analyses run on a :class:`MuapWorker` thread while the session runs, and each
    site summary comes back as an event (and the state's newest ``muap``)."""

    def __init__(self, monitor: MuapMonitor) -> None:
        self.monitor = monitor
        self._worker: MuapWorker | None = None  # its thread, from the first decision on
        self._state: SessionState | None = None

    @property
    def failed(self) -> BaseException | None:
        return self._worker.failed if self._worker is not None else None

    def attach(self, session: LiveSession) -> None:
        self._state = session.state

    def samples(self, pcm: np.ndarray, index: int) -> None:
        self.monitor.push(pcm, index)

    def decided(self, results: list[WindowResult]) -> list[Event]:
        if self._worker is None:
            self._worker = MuapWorker(self.monitor)
        for r in results:  # every decision: a window called something else blocks
            due = self.monitor.due(r.smoothed_label, r.start_sample, r.end_sample)
            if due is not None:
                self._worker.submit(due)
        return self._done(self._worker.ready())

    def finish(self) -> list[Event]:
        """Every due analysis, before the summary."""
        return self._done(self._worker.drain()) if self._worker is not None else []

    def _done(self, sites: list[MuapResult]) -> list[Event]:
        out = []
        for site in sites:
            r = self.monitor.record(site)
            if self._state is not None:
                self._state.muap = r
            out.append(self.monitor.event(site))
        return out


class Capture(Sink):
    """Keeps the last ``minutes`` of canonical samples; written as a WAV into ``folder``
    when the session closes (named after the log's session)."""

    def __init__(self, minutes: float, folder: Path, fs: int, uv_per_lsb: float) -> None:
        self.folder, self.fs, self.uv_per_lsb = folder, fs, uv_per_lsb
        self.max = int(minutes * 60 * fs)
        self._blocks: deque[np.ndarray] = deque()
        self._held = 0
        self._session: LiveSession | None = None
        self.path: Path | None = None
        """Where the capture was written (None: not yet, or it could not be)."""

    def attach(self, session: LiveSession) -> None:
        self._session = session

    def samples(self, pcm: np.ndarray, index: int) -> None:
        self._blocks.append(pcm)
        self._held += pcm.size
        while self._held - self._blocks[0].size >= self.max:
            self._held -= self._blocks.popleft().size

    def close(self) -> None:
        if not self._held:
            return
        log = self._session.log if self._session is not None else None
        sid = log.session_id if log else int(time.time())
        path = self.folder / f"session-{sid}-last.wav"
        x = np.concatenate(list(self._blocks))[-self.max:]
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_wav(path, x, self.fs, self.uv_per_lsb)
        except OSError as exc:
            with contextlib.suppress(OSError):
                path.unlink()  # no partial capture left behind
            print(f"nemg: warning: capture {path} not written ({exc.strerror})",
                  file=sys.stderr, flush=True)
            return
        self.path = path


class LiveSession:
    """A front end's samples through a pipeline into an event log, a capture, the MUAP
    analysis and a view, until the stream ends, a limit is reached or it is stopped."""

    def __init__(self, pipeline: Pipeline, client: FrontEndClient, board: FrontEndProfile,
                 *, log: EventLog | None = None, view: Sink | None = None,
                 capture_minutes: float = 0.0, capture_dir: Path | None = None,
                 source: str = "", muap: MuapMonitor | None = None,
                 sinks: Sequence[Sink] = ()) -> None:
        """``view``: a screen (none: nothing shown); ``capture_minutes``: keep that much of
        the signal, written into ``capture_dir``; ``muap``: MUAP analysis (None: off);
        ``sinks``: more sinks, told first (the exam recording: it has the samples before
        they are shown)."""
        check_board(pipeline, board)
        self.pipeline = pipeline
        self.client = client
        self.board = board
        self.source = source or client.link.port
        self.acquire = BoardStream(client, board, pipeline.mel, source=self.source)
        self._log = SessionLog(log)
        self.view = view or Sink()
        self.muap = muap
        """MUAP analysis of voluntary stretches (None: off)."""
        self.state = SessionState()
        self.sinks: list[Sink] = list(sinks)
        """In the order they are told (and closed): the view before the capture is written."""
        if muap is not None:
            self.sinks.append(MuapSink(muap))
        self.sinks.append(self.view)
        if capture_minutes > 0 and capture_dir is not None:
            self.sinks.append(Capture(capture_minutes, capture_dir, pipeline.fs,
                                      pipeline.mel.uv_per_lsb))
        for s in self.sinks:
            s.attach(self)
        self._pending: list[np.ndarray] = []  # samples waiting for the next decision
        self._pending_n = 0
        self._pending_index = 0

    @property
    def log(self) -> EventLog | None:
        """The event log (None: none, or it stopped taking events)."""
        return self._log.log

    @property
    def events_logged(self) -> int:
        """Events the log took this session."""
        return self._log.logged

    @property
    def log_stopped(self) -> str | None:
        """Why event logging stopped mid-session (disk full, read-only), if it did."""
        return self._log.stopped

    # ---- the loop --------------------------------------------------------------------------
    def run(self, *, duration_s: float | None = None,
            until: Callable[[], bool] | None = None) -> dict:
        """Run until the stream ends, ``duration_s`` passed or ``until()`` says so (or
        Ctrl-C); returns the summary."""
        b = self.pipeline.bundle
        self._log.start(self.source, self.board.name,
                        {"name": b.name, "version": b.version, "sha256": b.sha256})
        end = None if duration_s is None else time.monotonic() + duration_s
        self.acquire.start()
        self.state.link_note = "streaming"
        failed: BaseException | None = None
        try:
            for item in self.acquire:
                if isinstance(item, Block):
                    self._block(item)
                elif isinstance(item, Gap):
                    self._push()
                    self._take(*self.pipeline.lost(item.lost, item.reason))
                    self._show_features()
                elif isinstance(item, LinkEvent):
                    self.state.link_note = item.state
                    self._tell("link", item)
                self._tell("update", self.state, self)
                if (end is not None and time.monotonic() >= end) or (until and until()):
                    break
                if self._failed() is not None:
                    break  # raised below, once the session has closed down
        except KeyboardInterrupt:
            self.state.link_note = "stopped by user"
        finally:
            try:
                tail = self.acquire.flush()
                if tail is not None:
                    self._block(tail)
                self._push()
                self._emit(self.pipeline.flush())
                for s in self.sinks:
                    self._emit(s.finish())
                failed = self._failed()
                summary = self.summary()
                self._log.end(summary)
                self._tell("update", self.state, self, force=True)  # the final state, always
            finally:  # whatever failed above: the screen, the capture and the port
                self._close()
        if failed is not None:  # a sink's thread crashed: an internal error, not lost
            raise failed
        return summary

    def _close(self) -> None:
        """Close every sink in order, then the port, each even if one before it raised."""
        with contextlib.ExitStack() as stack:
            stack.callback(self._close_port)  # callbacks run last-in first-out
            for s in reversed(self.sinks):
                stack.callback(s.close)

    def _close_port(self) -> None:
        with contextlib.suppress(Exception):
            self.client.close()

    def _tell(self, method: str, *args, **kwargs) -> None:
        for s in self.sinks:
            getattr(s, method)(*args, **kwargs)

    def _failed(self) -> BaseException | None:
        return next((s.failed for s in self.sinks if s.failed is not None), None)

    def _block(self, b: Block) -> None:
        """Samples from the front end: to the sinks, and batched for the pipeline."""
        self.state.flags |= b.flags
        self.state.samples += b.received
        self._tell("samples", b.pcm, b.index)
        if not self._pending:
            self._pending_index = b.index
        self._pending.append(b.pcm)
        self._pending_n += b.pcm.size
        if self._pending_n >= self.pipeline.samples_needed():
            self._push()

    def _push(self) -> None:
        """Hand the batched samples to the pipeline (one call per decision)."""
        if not self._pending:
            return
        pcm = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._pending_n = 0
        self._take(*self.pipeline.push(pcm, self._pending_index))
        self._show_features()

    def _show_features(self) -> None:
        frames = self.pipeline.take_frames()
        if frames.size:
            self._tell("features", frames, self.pipeline.next_index)

    def _take(self, results: list[WindowResult], events: list[Event]) -> None:
        for r in results:
            self.state.last = r
            self.state.windows.append(r)
            self.state.tally.add(r)
            self.state.latencies.append(r.latency_s)
        self._emit(events)
        for s in self.sinks:
            self._emit(s.decided(results))

    def _emit(self, events: list[Event]) -> None:
        for ev in events:
            if ev.kind == "label" and ev.label in NOTED_LABELS:
                cav = self._rest_note(ev.start_sample, ev.end_sample)
                if cav is not None:
                    ev = replace(ev, detail=DETAIL_PREFIX + cav["text"]
                                 + (f"; {ev.detail}" if ev.detail else ""))
            logged_id = self._log.record(ev)  # durable before shown
            self.state.events.append(ev)
            self._tell("event", ev, logged_id)

    # ---- reporting -------------------------------------------------------------------------
    def summary(self) -> dict:
        """The session's figures, finding and model (what ``nemg run`` prints as JSON), and
        what its sinks add (``recording``: the exam recording, None: none)."""
        p, c = self.pipeline, self.client
        lat = np.array(self.state.latencies) * 1000 if self.state.latencies else np.zeros(1)
        finding = self.state.tally.finding()
        out = {
            "seconds": time.monotonic() - self.state.started,
            "signal_seconds": self.state.samples / p.fs,
            "windows": p.windows_done,
            "finding": finding,
            "gaps": p.gaps,
            "samples_lost": p.samples_lost,
            "crc_errors": c.stats.crc_errors,
            "frames": c.stats.frames,
            "reconnects": c.reconnects,
            "events_logged": self.events_logged,
            "logging_stopped": self.log_stopped,
            "decision_latency_ms_p50": float(np.percentile(lat, 50)),
            "decision_latency_ms_p95": float(np.percentile(lat, 95)),
            "peak_rss_mb": peak_rss_mb(),
            "model": {"name": p.bundle.name, "version": p.bundle.version,
                      "sha256": p.bundle.sha256},
            "muscle": self.muap.muscle if self.muap is not None else None,
            "age": self.muap.age if self.muap is not None else None,
            "muap": ([{"start_s": r.start_sample / p.fs, "end_s": r.end_sample / p.fs,
                       "finding": r.finding, **r.summary} for r in self.muap.results]
                     if self.muap is not None else None),
            "recording": None,
        }
        for s in self.sinks:
            s.summarize(out)
        return out

    def shown_decision(self, s: SessionState) -> tuple[str, float, np.ndarray] | None:
        """What every screen shows as the finding: the label the event log is following,
        and the mean smoothed probabilities of its stretch so far — the confidence its event
        records — as both the headline's figure and the bars, so the two cannot disagree.
        None before the first decision."""
        followed = self.pipeline.followed()
        if s.last is None or followed is None:
            return None
        lab, probs, _ = followed
        conf = float(probs[self.pipeline.labels.index(lab)] if lab in self.pipeline.labels
                     else probs.max())
        return lab, conf, probs

    def _rest_note(self, since: int, until: int | None) -> dict | None:
        return self.pipeline.caveat(since=since, until=until)

    def caveat(self, s: SessionState) -> str | None:
        """The rest check's note beside the finding shown, while it is abnormal
        spontaneous activity or 'uncertain': calls withheld in the stretch being followed
        because the muscle was contracting (None: none)."""
        shown = self.shown_decision(s)
        if shown is None or shown[0] not in NOTED_LABELS:
            return None
        since, until = self.pipeline.followed_since, None
        if since is None:  # the stream ended, or a gap closed it: its event's stretch
            last = next((e for e in reversed(s.events) if e.kind == "label"), None)
            if last is None or last.label != shown[0]:
                return None
            since, until = last.start_sample, last.end_sample
        cav = self._rest_note(since, until)
        return cav["text"] if cav else None

    def uncertain_reason(self, s: SessionState) -> str | None:
        """Why the finding shown is 'uncertain' (None: it is not)."""
        shown = self.shown_decision(s)
        if shown is None or shown[0] != UNCERTAIN:
            return None
        if s.last.unfamiliar:
            return "unlike anything the model was trained on"
        if s.last.contracting:
            return "the muscle is not at rest (voluntary units firing)"
        return "below the model's confidence threshold"
