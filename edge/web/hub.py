"""What the live session hands the bedside page: samples, features, the decision.

The session's thread writes (:class:`WebView`, a sink of the session like the terminal's
view); the web server's threads read (:class:`WebHub`). Everything crosses one lock; the
session never waits on a browser. What is held is bounded: the raw samples of the last
:data:`HOLD_S` seconds (for the page's trace and sound, and for the stretch a correction
saves), the features of the last :data:`FEATURE_HOLD_S`.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.eventlog import HeldSamples
from edge.labels import PATHOLOGICAL
from edge.live import SessionState, Sink
from edge.pipeline import Event, WindowResult
from edge.screen import PlainView, evidence_line, evidence_verdict, model_call, muap_line
from wire.link import LinkEvent

if TYPE_CHECKING:
    from edge.live import LiveSession

HOLD_S = 300.0
"""Seconds of raw samples held: the stretch of any event of the last five minutes can be
saved with its correction (12 MB at 20 kHz)."""

MAX_CORRECTION_S = 60.0
"""Longest stretch saved with one correction (its first 60 s): a training recording needs
no more, and a ten-minute run of silence should not cost 24 MB of log."""

FEATURE_HOLD_S = 10.0
"""Seconds of int8 feature frames held for a page that connects (the spectrogram's width)."""

STATE_INTERVAL_S = 0.05
"""The decision panel's state is rebuilt at most this often (the session's view is called
for every 10 ms frame)."""

MAX_BACKLOG_S = 2.0
"""A page that fell behind (a hidden tab, a slow link) is sent at most this much of what it
missed: the screen and the sound are about now, and one message stays small."""

RECENT_EVENTS = 30
"""Events the page lists (older ones are in the review)."""


@dataclass(frozen=True)
class Chunk:
    """Samples as they reached the box."""

    seq: int
    index: int
    """Model-rate stream index of the first sample."""
    pcm: np.ndarray
    arrived: float
    """Wall-clock time (``time.time()``) it reached the hub: the page's latency origin."""


class WebHub:
    """Thread-safe store between one live session and any number of pages."""

    def __init__(self, *, hold_s: float = HOLD_S, feature_hold_s: float = FEATURE_HOLD_S
                 ) -> None:
        self._lock = threading.Lock()
        self._chunks: deque[Chunk] = deque()
        self._held = 0
        self._frames: deque[tuple[int, int, np.ndarray]] = deque()  # (seq, end_index, frames)
        self._frames_held = 0
        self._seq = 0
        self._fseq = 0
        self.hold_s = hold_s
        self.feature_hold_s = feature_hold_s
        self.fs = 0
        self.hop = 1
        self.hold_samples = 0
        self.state: dict[str, Any] = {"live": False}
        """The page's panels: decision, bars, events, link, model, MUAP (JSON-ready)."""
        self.version = 0
        """Bumped whenever ``state`` changes."""
        self.session_id: int | None = None
        self.cpu_s = 0.0
        """Thread CPU time the session spent feeding the hub (``nemg bench web``)."""

    def configure(self, fs: int, hop: int) -> None:
        """The session's model rate and feature hop (samples per frame)."""
        self.fs, self.hop = fs, hop
        self.hold_samples = int(self.hold_s * fs)

    # ---- written by the session -------------------------------------------------------------
    def add_samples(self, pcm: np.ndarray, index: int) -> None:
        if pcm.size == 0:
            return
        pcm, arrived = pcm.copy(), time.time()
        with self._lock:
            self._seq += 1
            self._chunks.append(Chunk(self._seq, index, pcm, arrived))
            self._held += pcm.size
            while self._chunks and self._held - self._chunks[0].pcm.size >= self.hold_samples:
                self._held -= self._chunks.popleft().pcm.size

    def add_frames(self, frames: np.ndarray, end_index: int) -> None:
        if frames.size == 0:
            return
        keep = int(self.feature_hold_s * self.fs / self.hop)
        with self._lock:
            self._fseq += 1
            self._frames.append((self._fseq, end_index, frames.copy()))
            self._frames_held += frames.shape[0]
            while self._frames and self._frames_held - self._frames[0][2].shape[0] >= keep:
                self._frames_held -= self._frames.popleft()[2].shape[0]

    def set_state(self, state: dict[str, Any]) -> None:
        with self._lock:
            self.state = state
            self.version += 1

    # ---- read by the server -----------------------------------------------------------------
    def latest_seq(self) -> tuple[int, int]:
        """(newest sample chunk, newest feature batch): where a new page starts."""
        with self._lock:
            return self._seq, self._fseq

    def since(self, seq: int, fseq: int, version: int) -> dict[str, Any] | None:
        """What a page that has seen ``seq``/``fseq``/``version`` has not (None: nothing)."""
        with self._lock:
            chunks = self._chunks_after(seq)
            frames = [f for f in self._frames if f[0] > fseq]
            state = self.state if self.version != version else None
            v = self.version
        if not chunks and not frames and state is None:
            return None
        msg: dict[str, Any] = {"seq": chunks[-1].seq if chunks else seq,
                               "fseq": frames[-1][0] if frames else fseq, "version": v,
                               "sent": time.time() * 1000}
        if chunks:
            msg["arrived"] = chunks[-1].arrived * 1000
            msg["chunks"] = _merge(chunks)
        if frames:
            msg["frames"] = [[end, f.shape[0], _b64(f.astype(np.int8))]
                             for _, end, f in frames]
        if state is not None:
            msg["state"] = state
        return msg

    def _chunks_after(self, seq: int) -> list[Chunk]:
        if not self._chunks or self._chunks[-1].seq <= seq:
            return []
        first = self._chunks[0].seq
        out = list(self._chunks)[max(0, seq + 1 - first):]
        budget, k = int(MAX_BACKLOG_S * self.fs), len(out)
        while k > 0 and budget > 0:
            k -= 1
            budget -= out[k].pcm.size
        return out[k:]

    def held(self, start: int, end: int, max_s: float = MAX_CORRECTION_S) -> HeldSamples | None:
        """The raw samples of stream ``[start, end)`` (at most its first ``max_s``) as far as
        they are still held; lost samples are zeros and counted. None: none of it."""
        end = min(end, start + int(max_s * self.fs))
        if end <= start:
            return None
        with self._lock:
            parts = [c for c in self._chunks
                     if c.index < end and c.index + c.pcm.size > start]
        if not parts:
            return None
        a = max(start, parts[0].index)
        out = np.zeros(end - a, np.int16)
        have = 0
        for c in parts:
            lo, hi = max(a, c.index), min(end, c.index + c.pcm.size)
            out[lo - a:hi - a] = c.pcm[lo - c.index:hi - c.index]
            have += hi - lo
        return HeldSamples(out, a, (end - start) - have)


def _b64(a: np.ndarray) -> str:
    return base64.b64encode(a.tobytes()).decode("ascii")


def _merge(chunks: list[Chunk]) -> list[list]:
    """Contiguous chunks as one ``[index, base64 int16 LE]`` run each (a gap starts a new
    run, so the page knows where silence belongs)."""
    runs: list[list] = []
    cur: list[np.ndarray] = []
    start = nxt = None
    for c in chunks:
        if cur and c.index != nxt:
            runs.append([start, _b64(np.concatenate(cur).astype("<i2"))])
            cur = []
        if not cur:
            start = c.index
        cur.append(c.pcm)
        nxt = c.index + c.pcm.size
    if cur:
        runs.append([start, _b64(np.concatenate(cur).astype("<i2"))])
    return runs


class WebView(Sink):
    """The live session's view for the bedside page; ``inner`` (the terminal's or the
    plain view) still gets every call, so the terminal keeps its screen."""

    def __init__(self, hub: WebHub, inner: Sink | None = None, *, trial: bool = False
                 ) -> None:
        self.hub = hub
        self.inner = inner or PlainView()
        self.trial = trial
        self._events: deque[dict[str, Any]] = deque(maxlen=RECENT_EVENTS)
        self._last_state = 0.0
        self._last_window = -1
        self._dirty = True
        self._session: LiveSession | None = None
        self._evidence: tuple[WindowResult | None, dict[str, Any] | None] = (None, None)

    def attach(self, session: LiveSession) -> None:
        self._session = session
        self.inner.attach(session)
        p = session.pipeline
        self.hub.configure(p.fs, p.mel.hop_length)
        p.keep_frames = True

    # ---- the view interface -------------------------------------------------------------
    def samples(self, pcm: np.ndarray, index: int) -> None:
        t = time.thread_time()
        self.hub.add_samples(pcm, index)
        self.hub.cpu_s += time.thread_time() - t
        self.inner.samples(pcm, index)

    def features(self, frames: np.ndarray, end_index: int) -> None:
        t = time.thread_time()
        self.hub.add_frames(frames, end_index)
        self.hub.cpu_s += time.thread_time() - t
        self.inner.features(frames, end_index)

    def event(self, ev: Event, logged_id: int | None) -> None:
        self._events.append({
            "id": logged_id, "kind": ev.kind, "label": ev.label, "start_s": ev.start_s,
            "end_s": ev.end_s, "confidence": ev.confidence, "detail": ev.detail,
            "pathological": ev.label in PATHOLOGICAL,
            "correctable": ev.kind == "label" and logged_id is not None})
        self._dirty = True
        self.inner.event(ev, logged_id)

    def link(self, ev: LinkEvent) -> None:
        self._dirty = True
        self.inner.link(ev)

    def update(self, state: SessionState, session: LiveSession, *, force: bool = False
               ) -> None:
        self.inner.update(state, session, force=force)
        now = time.monotonic()
        new_window = state.last is not None and state.last.index != self._last_window
        if not (force or new_window or self._dirty) and now - self._last_state < 0.5:
            return  # the link figures are refreshed twice a second
        if not force and now - self._last_state < STATE_INTERVAL_S:
            return
        t = time.thread_time()
        self._last_state = now
        self._dirty = False
        if state.last is not None:
            self._last_window = state.last.index
        self.hub.session_id = session.log.session_id if session.log else None
        self.hub.set_state(self.snapshot(state, session, live=True))
        self.hub.cpu_s += time.thread_time() - t

    def close(self) -> None:
        if self._session is not None:
            s = self._session
            self.hub.set_state(self.snapshot(s.state, s, live=False))
        self.inner.close()

    # ---- the page's state ---------------------------------------------------------------------
    def snapshot(self, s: SessionState, session: LiveSession, *, live: bool) -> dict[str, Any]:
        p, c = session.pipeline, session.client
        shown = session.shown_decision(s)
        decision = None
        if shown is not None:
            lab, conf, probs = shown
            reason = session.uncertain_reason(s)
            nxt = p.pending()
            decision = {"label": lab, "confidence": conf, "pathological": lab in PATHOLOGICAL,
                        "uncertain_reason": reason, "caveat": session.caveat(s),
                        "at_s": s.last.end_s,
                        "window": s.last.index,
                        "criterion": s.last.criterion or None,
                        "evidence": self._evidence_of(s.last, list(p.labels), p.fs),
                        "probabilities": [round(float(x), 4) for x in probs],
                        "pending": None if nxt is None else {
                            "label": nxt[0], "windows": nxt[1],
                            "needed": p.min_event_windows}}
        b = p.bundle
        return {
            "live": live,
            "session_id": self.hub.session_id,
            "logging": session.log is not None,
            "model": {"name": b.name, "version": b.version, "trial": self.trial},
            "board": session.board.name,
            "sample_rate_hz": p.fs,
            "uv_per_lsb": p.mel.uv_per_lsb,
            "hop_samples": p.mel.hop_length,
            "labels": list(p.labels),
            "pathological_labels": sorted(PATHOLOGICAL & set(p.labels)),
            "decision": decision,
            "events": list(self._events),
            "link": {"state": s.link_note, "rate_sps": s.rate_sps(),
                     "crc_errors": c.stats.crc_errors, "gaps": p.gaps,
                     "samples_lost": p.samples_lost, "flags": s.flag_names(),
                     "logging_stopped": session.log_stopped},
            "signal_s": s.samples / p.fs,
            "muap": None if s.muap is None else {
                "line": muap_line(s.muap), "finding": s.muap.finding, "summary": s.muap.summary,
                "evidence": s.muap.evidence, "start_s": s.muap.start_sample / p.fs,
                "end_s": s.muap.end_sample / p.fs,
                # the newest analysis's units only (its thinned templates and measures, as
                # the event log keeps them) and the limits its reading was made against
                "templates": s.muap.templates, "limits": s.muap.limits},
        }

    def _evidence_of(self, w: WindowResult, labels: list[str], fs: int
                     ) -> dict[str, Any] | None:
        """A window's evidence for the page (None: it has none): its trains with their
        discharges' times (s on the samples' timeline, what the trace marks), the model's
        own call, how the evidence entered the label and the terminal's line for it. Kept
        for the window: the state is rebuilt several times per window."""
        if self._evidence[0] is not w:
            ev = w.evidence
            self._evidence = (w, None if ev is None else ev.to_dict(fs, times=True) | {
                "window": w.index, "call": model_call(w, labels),
                "criterion": w.criterion or None, "verdict": evidence_verdict(w, labels),
                "line": evidence_line(w, labels)})
        return self._evidence[1]
