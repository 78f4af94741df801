"""A live session: front end -> pipeline -> event log and terminal view.

Shared by ``nemg run`` (a real port) and ``nemg demo`` (the virtual front end). The board's
ADC values are scaled to the model's canonical int16 by an integer multiply-shift (exact
for the reference front end, whose scale is the canonical one).
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

import numpy as np

from edge.errors import ConfigError
from edge.eventlog import EventLog, LogWriteError
from edge.labels import PATHOLOGICAL, UNCERTAIN
from edge.muap_live import MuapMonitor, MuapResult, MuapWorker
from edge.pipeline import Event, Pipeline, WindowResult, WindowTally
from edge.procmem import peak_rss_mb
from edge.readers.wav import write_wav
from edge.resample import StreamResampler
from edge.rest_check import DETAIL_PREFIX, NOTED_LABELS
from wire.boards import FrontEndProfile
from wire.link import FrontEndClient, LinkEvent
from wire.protocol import Flag, Gap, Samples


@dataclass(frozen=True)
class BoardScaler:
    """ADC values at the board's µV/LSB -> canonical int16 (saturating)."""

    multiplier: int
    shift: int = 24

    @classmethod
    def between(cls, board_uv_per_lsb: float, model_uv_per_lsb: float) -> BoardScaler:
        return cls(round(board_uv_per_lsb / model_uv_per_lsb * (1 << 24)))

    def __call__(self, adc: np.ndarray) -> np.ndarray:
        if self.multiplier == 1 << self.shift:
            return np.clip(adc, -32768, 32767).astype(np.int16)
        v = (adc.astype(np.int64) * self.multiplier + (1 << (self.shift - 1))) >> self.shift
        return np.clip(v, -32768, 32767).astype(np.int16)


def check_board(pipeline: Pipeline, board: FrontEndProfile) -> None:
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


class PlainView:
    """For pipes and logs: one line per event."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def attach(self, session: LiveSession) -> None:
        """Called once, when the session starts."""

    def samples(self, pcm: np.ndarray, index: int) -> None:
        """Canonical samples at the model's rate as they arrive (stream ``index``)."""

    def features(self, frames: np.ndarray, end_index: int) -> None:
        """New int8 feature frames; the last one ends at stream ``end_index``."""

    def event(self, ev: Event, logged_id: int | None) -> None:
        tag = f"#{logged_id}" if logged_id is not None else ""
        if ev.kind == "gap":
            print(f"{ev.start_s:8.2f} s  GAP {ev.detail} {tag}", file=self.out, flush=True)
        elif ev.kind == "muap":
            print(f"{ev.start_s:8.2f}–{ev.end_s:.2f} s  MUAP {ev.label} {tag}", file=self.out,
                  flush=True)
        else:
            mark = " [pathological]" if ev.label in PATHOLOGICAL else ""
            note = f" ({ev.detail})" if ev.detail else ""
            print(f"{ev.start_s:8.2f}–{ev.end_s:.2f} s  {ev.label:<20} {ev.confidence:.2f}"
                  f"{mark} {tag}{note}", file=self.out, flush=True)

    def link(self, ev: LinkEvent) -> None:
        """A link change, so a pipe or journal shows a pulled cable or a hung device."""
        print(f"          LINK {ev.state}: {ev.detail}", file=self.out, flush=True)

    def update(self, state: SessionState, session: LiveSession, *, force: bool = False
               ) -> None:
        pass

    def close(self) -> None:
        pass


class TerminalView(PlainView):
    """A live screen for an 80×24 terminal, redrawn at most 5 times a second."""

    WIDTH, HEIGHT, BAR = 80, 23, 30

    def __init__(self, out: TextIO = sys.stdout) -> None:
        super().__init__(out)
        self._last_draw = 0.0
        self.out.write("\x1b[?25l\x1b[2J")  # hide cursor, clear

    def event(self, ev: Event, logged_id: int | None) -> None:
        pass  # shown in the "recent events" panel

    def link(self, ev: LinkEvent) -> None:
        pass  # shown in the link line

    def update(self, state: SessionState, session: LiveSession, *, force: bool = False
               ) -> None:
        now = time.monotonic()
        if now - self._last_draw < 0.2 and not force:
            return
        self._last_draw = now
        lines = session.screen_lines(state, self.WIDTH, self.BAR)[: self.HEIGHT]
        lines += [""] * (self.HEIGHT - len(lines))  # a shorter screen clears what was below
        self.out.write("\x1b[H" + "".join(f"{ln[:self.WIDTH]}\x1b[K\n" for ln in lines))
        self.out.flush()

    def close(self) -> None:
        self.out.write("\x1b[?25h\n")
        self.out.flush()


class LiveSession:
    def __init__(self, pipeline: Pipeline, client: FrontEndClient, board: FrontEndProfile,
                 *, log: EventLog | None = None, view: PlainView | None = None,
                 capture_minutes: float = 0.0, capture_dir: Path | None = None,
                 source: str = "", muap: MuapMonitor | None = None) -> None:
        check_board(pipeline, board)
        self.pipeline = pipeline
        self.client = client
        self.board = board
        self.log = log
        self.view = view or PlainView()
        self.scale = BoardScaler.between(board.uv_per_lsb, pipeline.mel.uv_per_lsb)
        self.resampler: StreamResampler | None = None
        """A board at another rate than the model's is brought to it here (the same
        resampler ``nemg classify`` uses, so live and offline stay bit for bit)."""
        if board.sample_rate_hz != pipeline.fs:
            self.resampler = StreamResampler(board.sample_rate_hz, pipeline.fs)
        self.state = SessionState()
        self.view.attach(self)
        self.muap = muap
        """MUAP analysis of voluntary stretches (None: off)."""
        self._muap_worker: MuapWorker | None = None  # its thread, while the session runs
        self.source = source or client.link.port
        self.capture_dir = capture_dir
        n = int(capture_minutes * 60 * pipeline.fs)
        self._capture: deque[np.ndarray] | None = deque() if n > 0 else None
        self._capture_max = n
        self._captured = 0
        self.events_logged = 0
        """Events the log took this session."""
        self.log_stopped: str | None = None
        """Why event logging stopped mid-session (disk full, read-only), if it did."""
        self._pending: list[np.ndarray] = []  # samples waiting for the next decision
        self._pending_n = 0
        self._pending_index = 0
        self._model_index = 0  # with a resampler: model-rate samples (and losses) so far

    # ---- the loop --------------------------------------------------------------------------
    def run(self, *, duration_s: float | None = None,
            until: Callable[[], bool] | None = None) -> dict:
        p = self.pipeline
        b = p.bundle
        self._to_log("start_session", self.source, self.board.name,
                     {"name": b.name, "version": b.version, "sha256": b.sha256})
        end = None if duration_s is None else time.monotonic() + duration_s
        self.client.start()
        self.state.link_note = "streaming"
        if self.muap is not None:
            self._muap_worker = MuapWorker(self.muap)
        try:
            self._check_device()
            for ev in self.client.events():
                if isinstance(ev, Samples):
                    pcm = self.scale(ev.values)
                    self.state.flags |= ev.flags
                    self.state.samples += pcm.size
                    self._keep(pcm)
                    self._queue(pcm, ev.index)
                elif isinstance(ev, Gap):
                    self._end_segment()
                    self._take(*p.lost(self._at_model_rate(ev.lost), ev.reason))
                    self._show_features()
                elif isinstance(ev, LinkEvent):
                    self.state.link_note = ev.state
                    self.view.link(ev)
                self.view.update(self.state, self)
                if (end is not None and time.monotonic() >= end) or (until and until()):
                    break
                if self._muap_worker is not None and self._muap_worker.failed is not None:
                    break  # raised below, once the session has closed down
        except KeyboardInterrupt:
            self.state.link_note = "stopped by user"
        finally:
            worker, failed = self._muap_worker, None
            try:
                self._end_segment()
                self._emit(p.flush())
                if worker is not None:  # every due analysis, before the summary
                    self._muap_done(worker.drain())
                    failed = worker.failed
                summary = self.summary()
                self._to_log("end_session", summary)
                self.view.update(self.state, self, force=True)  # the final state, always
            finally:  # whatever failed above: the screen, the capture and the port
                self._muap_worker = None
                self.view.close()
                self._write_capture()
                with contextlib.suppress(Exception):
                    self.client.close()
        if failed is not None:  # a MUAP analysis crashed: an internal error, not lost
            raise failed
        return summary

    def _queue(self, pcm: np.ndarray, index: int) -> None:
        """Board samples at stream ``index`` towards the pipeline, at the model's rate."""
        if self.resampler is not None:
            pcm = self.resampler.push(pcm)
            index = self._model_index
            self._model_index += pcm.size
        self.view.samples(pcm, index)
        self._append(pcm, index)
        if self._pending_n >= self.pipeline.samples_needed():
            self._push()

    def _append(self, pcm: np.ndarray, index: int) -> None:
        """Batch samples at model-rate stream ``index`` for the next decision."""
        if not self._pending:
            self._pending_index = index
        self._pending.append(pcm)
        self._pending_n += pcm.size

    def _end_segment(self) -> None:
        """Before a gap: what the resampler still owes of the samples before it, then a
        fresh resampler (no filter spans a gap)."""
        if self.resampler is not None:
            tail = self.resampler.flush()
            if tail.size:
                self._append(tail, self._model_index)
                self._model_index += tail.size
            self.resampler = StreamResampler(self.board.sample_rate_hz, self.pipeline.fs)
        self._push()

    def _at_model_rate(self, lost: int | None) -> int | None:
        """A loss counted in board samples, in model samples (and on the model's axis)."""
        if lost is None or self.resampler is None:
            return lost
        n = round(lost * self.pipeline.fs / self.board.sample_rate_hz)
        self._model_index += n
        return n

    def _check_device(self) -> None:
        """The device must be the board we scale for: its rate and µV per LSB."""
        dev, b = self.client.device, self.board
        if dev is not None and (dev.sample_rate_hz, dev.nv_per_lsb) != (b.sample_rate_hz,
                                                                       b.nv_per_lsb):
            raise ConfigError(f"{self.source}: the device reports {dev.board_id} at "
                              f"{dev.sample_rate_hz} Hz, {dev.uv_per_lsb:g} µV/LSB, but board "
                              f"{b.name} is {b.sample_rate_hz} Hz, {b.uv_per_lsb:g} µV/LSB "
                              "(choose --board to match)")

    def _push(self) -> None:
        """Hand the batched samples to the pipeline (one call per decision)."""
        if not self._pending:
            return
        pcm = np.concatenate(self._pending) if len(self._pending) > 1 else self._pending[0]
        self._pending.clear()
        self._pending_n = 0
        if self.muap is not None:
            self.muap.push(pcm, self._pending_index)
        results, events = self.pipeline.push(pcm, self._pending_index)
        self._take(results, events)
        self._show_features()

    def _show_features(self) -> None:
        frames = self.pipeline.take_frames()
        if frames.size:
            self.view.features(frames, self.pipeline.next_index)

    def _take(self, results: list[WindowResult], events: list[Event]) -> None:
        for r in results:
            self.state.last = r
            self.state.windows.append(r)
            self.state.tally.add(r)
            self.state.latencies.append(r.latency_s)
        self._emit(events)
        worker = self._muap_worker  # there is one while a session with MUAP analysis runs
        if worker is None:
            return
        for r in results:  # every decision: a window called something else blocks
            due = self.muap.due(r.smoothed_label, r.start_sample, r.end_sample)
            if due is not None:
                worker.submit(due)
        self._muap_done(worker.ready())

    def _muap_done(self, sites: list[MuapResult]) -> None:
        """Finished MUAP analyses: shown and logged as events."""
        for site in sites:
            self.state.muap = self.muap.record(site)
            self._emit([self.muap.event(site)])

    def _emit(self, events: list[Event]) -> None:
        for ev in events:
            if ev.kind == "label" and ev.label in NOTED_LABELS:
                cav = self._rest_note(ev.start_sample, ev.end_sample)
                if cav is not None:
                    ev = replace(ev, detail=DETAIL_PREFIX + cav["text"])
            logged_id = self._to_log("log", ev)  # durable before shown
            if logged_id is not None:
                self.events_logged += 1
            self.state.events.append(ev)
            self.view.event(ev, logged_id)

    def _to_log(self, method: str, *args):
        """Call the event log; if it fails (disk full, read-only), say so once and go on
        classifying and showing without it: the box must not stop for its log."""
        if self.log is None:
            return None
        try:
            return getattr(self.log, method)(*args)
        except LogWriteError as exc:
            self.log_stopped = str(exc)
            self.log = None
            print(f"nemg: warning: {exc}; event logging stopped, classification goes on",
                  file=sys.stderr, flush=True)
            return None

    def _keep(self, pcm: np.ndarray) -> None:
        if self._capture is None:
            return
        self._capture.append(pcm)
        self._captured += pcm.size
        while self._captured - self._capture[0].size >= self._capture_max:
            self._captured -= self._capture.popleft().size

    def _write_capture(self) -> Path | None:
        if not self._capture or self.capture_dir is None:
            return None
        sid = self.log.session_id if self.log else int(time.time())
        path = self.capture_dir / f"session-{sid}-last.wav"
        x = np.concatenate(list(self._capture))[-self._capture_max:]
        try:
            self.capture_dir.mkdir(parents=True, exist_ok=True)
            write_wav(path, x, self.pipeline.fs, self.pipeline.mel.uv_per_lsb)
        except OSError as exc:
            with contextlib.suppress(OSError):
                path.unlink()  # no partial capture left behind
            print(f"nemg: warning: capture {path} not written ({exc.strerror})",
                  file=sys.stderr, flush=True)
            return None
        self.capture_path = path
        return path

    # ---- reporting -------------------------------------------------------------------------
    def summary(self) -> dict:
        p, c = self.pipeline, self.client
        lat = np.array(self.state.latencies) * 1000 if self.state.latencies else np.zeros(1)
        finding = self.state.tally.finding()
        return {
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
            "muap": ([{"start_s": r.start_sample / p.fs, "end_s": r.end_sample / p.fs,
                       "finding": r.finding, **r.summary} for r in self.muap.results]
                     if self.muap is not None else None),
        }

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

    def screen_lines(self, s: SessionState, width: int, bar: int) -> list[str]:
        p, c = self.pipeline, self.client
        rate = s.rate_sps()
        head = f" nemg-edge · {p.bundle.name} {p.bundle.version} · {self.board.name}"
        lines = [head.ljust(width, " "), f"  {s.muap.line()}" if s.muap else ""]
        shown = self.shown_decision(s)
        if shown is None:
            lines += ["  listening…", ""]
            probs = np.zeros(len(p.labels))
        else:
            lab, conf, probs = shown
            tag = "  PATHOLOGICAL" if lab in PATHOLOGICAL else ""
            nxt = p.pending()
            lines += [f"  NOW: {lab.upper().replace('_', ' ')}{tag}",
                      f"  at {s.last.end_s:7.1f} s · window {s.last.index} · "
                      f"confidence {conf:.2f}"
                      + (f" · changing? {nxt[0]} ({nxt[1]}/{p.min_event_windows})"
                         if nxt else "")]
        for lab, pr in zip(p.labels, probs, strict=True):
            n = round(pr * bar)
            lines.append(f"  {lab:<20} {'█' * n}{'·' * (bar - n)} {pr:4.2f}")
        lines.append("  recent:")
        for ev in list(s.events)[-4:]:
            what = (ev.detail if ev.kind == "gap" else f"MUAP: {ev.label}" if ev.kind == "muap"
                    else f"{ev.label} ({ev.confidence:.2f})")
            lines.append(f"   {ev.start_s:7.1f}–{ev.end_s:7.1f} s  {what}")
        lines += [""] * (4 - min(4, len(s.events)))
        flags = s.flag_names()
        lines.append(f"  link {s.link_note} · {rate / 1000:5.1f} kS/s · CRC err "
                     f"{c.stats.crc_errors} · gaps {p.gaps} ({p.samples_lost} lost) · "
                     f"{' '.join(flags) or 'ok'}")
        why = self.uncertain_reason(s)
        if why:
            lines.append(f"  (uncertain: {why})")
        cav = self.caveat(s)
        if cav:
            lines.append(f"  caveat: {cav}")
        return lines

    def _rest_note(self, since: int, until: int | None) -> dict | None:
        rest = self.pipeline.rest
        return rest.note(since=since, until=until) if rest is not None else None

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


def use_terminal_view(stream: TextIO) -> bool:
    return stream.isatty() and os.environ.get("TERM", "dumb") != "dumb"
