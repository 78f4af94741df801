"""MUAP analysis in the live session: when the classifier has followed ``motor_unit`` for
``window_s`` of unbroken signal, the last ``window_s`` are decomposed and measured
(:func:`edge.muap.analysis.analyse`), and the site's summary becomes an event (kind ``muap``) in the
event log and on the screen — the electromyographer's voluntary-activity step, done while
the needle is still in the muscle.

What is analysed is keyed to the stream's sample indices, never to the clock: the same
signal gives the same summaries on any machine speed. Which stretch is due is decided in
the session's thread (:meth:`MuapMonitor.due`); the analysis itself (about ``window_s / 20``
s of a Pi 4 core: ``nemg bench muap``) runs on a :class:`MuapWorker` thread, so decisions do
not wait for it; its summary becomes an event when it is done.
"""

from __future__ import annotations

import json
import queue
import threading
from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edge.pipeline import Event
from edge.procmem import release_free_memory

VOLUNTARY = "motor_unit"
"""The label after which a MUAP analysis is due (edge.labels.LABELS)."""

DECISION_LAG_S = 5.0
"""How far a decision may trail the newest sample pushed (a 2 s window, the batching)."""

MUAP_WINDOW_S = 8.0
"""Seconds of steady voluntary activity one analysis needs (5–30 s is the clinical span;
8 s hold 60+ discharges of a unit at 8 Hz)."""

KEEP_RESULTS = 100
"""Site summaries a session holds (the event log keeps every one)."""

MAX_PENDING = 2
"""Stretches waiting for the worker; a session that gets further ahead (a file played
faster than real time) waits for it rather than drop one: memory stays bounded, and the
same signal gives the same summaries."""


@dataclass(frozen=True)
class MuapStretch:
    """A stretch due for analysis: stream indices and its samples in µV."""

    start_sample: int
    end_sample: int
    uv: np.ndarray


@dataclass
class MuapResult:
    """One site summary of the live session."""

    start_sample: int
    end_sample: int
    finding: str
    summary: dict
    evidence: list[str]
    templates: list[dict] = field(default_factory=list)
    """Each unit's template and measures for the report and the page
    (:func:`report_templates`), kept in the log's event."""
    limits: dict | None = None
    """The limits the reading was made against (``interpretation["limits"]``:
    :func:`edge.muap.interpretation.limits_of`); None when there were none."""


REPORT_TEMPLATE_POINTS = 100
"""Points a unit's template keeps in the event log (its 40 ms at 2.5 kHz: the report's
small drawing, not a measure)."""


def report_templates(units: list[dict]) -> list[dict]:
    """The units of an analysis as the report and the page draw them: id, verdict, whether
    it was measured, the template thinned to at most :data:`REPORT_TEMPLATE_POINTS` points
    (µV, 1 µV steps; point k at ``k × point_ms`` from the template's first sample), where
    its duration starts and ends on that same axis (``onset_ms``, ``end_ms``; None when
    not measured), its amplitude, duration, firing rate and first firing (s from the
    analysed stretch's start: the order of recruitment)."""
    out = []
    for u in units:
        v = u["template_uv"]
        step = max(1, -(-len(v) // REPORT_TEMPLATE_POINTS))
        # the measures' onset and end are ms from the first sample of the template they
        # were made on (the analysis-rate one); the file-rate template is every up-th of its
        # samples from the same first one, so the same ms hold on the thinned axis
        out.append({"id": u["id"], "verdict": u.get("validity", {}).get("verdict", "valid"),
                    "measured": bool(u.get("measured", True)),
                    "template_ms": round(len(v) / u["template_rate_hz"] * 1000, 2),
                    "point_ms": round(step / u["template_rate_hz"] * 1000, 4),
                    "template_uv": [round(float(x)) for x in v[::step]],
                    "onset_ms": u.get("onset_ms"), "end_ms": u.get("end_ms"),
                    "amplitude_uv": u.get("amplitude_uv"), "duration_ms": u.get("duration_ms"),
                    "firing_rate_hz": u.get("firing_rate_hz"),
                    "first_firing_s": u["firings_s"][0] if u.get("firings_s") else None})
    return out


class MuapMonitor:
    """Keeps the last ``window_s`` of model-rate samples; analyses them once the label the
    events follow has been ``motor_unit`` over all of them, then again every ``window_s``
    while it stays so. A gap, or any other label, starts the wait again."""

    def __init__(self, fs: int, uv_per_lsb: float, *, window_s: float = MUAP_WINDOW_S,
                 muscle: str | None = None, age: float | None = None) -> None:
        self.fs, self.uv_per_lsb = fs, uv_per_lsb
        self.need = int(window_s * fs)
        # decisions trail the newest samples by up to a classifier window and a batch:
        # what an analysis needs must still be held when the decision arrives
        self.keep = self.need + int(DECISION_LAG_S * fs)
        self.muscle, self.age = muscle, age
        self._blocks: deque[np.ndarray] = deque()
        self._held = 0
        self._end = 0  # stream index one past the newest sample held
        self._since: int | None = None  # where the current motor_unit stretch began
        self._done_until = 0  # analysed (or ruled out) up to here
        self.results: deque[MuapResult] = deque(maxlen=KEEP_RESULTS)

    def push(self, pcm: np.ndarray, index: int) -> None:
        """Samples at stream ``index`` (contiguous with the last push, or a new segment)."""
        if index != self._end:
            self.reset(index)
        self._blocks.append(np.asarray(pcm, dtype=np.int16))
        self._held += pcm.size
        self._end = index + pcm.size
        while self._blocks and self._held - self._blocks[0].size >= self.keep:
            self._held -= self._blocks.popleft().size

    def reset(self, index: int = 0) -> None:
        self._blocks.clear()
        self._held, self._end = 0, index
        self._since = None
        self._done_until = index

    def decided(self, label: str, window_start: int, window_end: int) -> MuapResult | None:
        """After each decision: its (smoothed) label and the window it was made on.
        Analyses a stretch when one is due, here and now, and returns its site summary
        (what :class:`MuapWorker` does on its own thread)."""
        due = self.due(label, window_start, window_end)
        if due is None:
            return None
        return self.record(self.analyse(due))

    def due(self, label: str, window_start: int, window_end: int) -> MuapStretch | None:
        """After each decision: its (smoothed) label and the window it was made on.
        Returns the stretch to analyse when one is due (a copy: the caller may hand it to
        another thread)."""
        if label != VOLUNTARY:
            # nothing of a window called something else enters an analysis
            self._since = None
            self._done_until = max(self._done_until, window_end)
            return None
        if self._since is None:
            self._since = window_start
        start = max(self._since, self._done_until)
        first_held = self._end - self._held
        if (window_end - start < self.need or window_end - self.need < first_held
                or window_end > self._end):
            return None
        x = np.concatenate(list(self._blocks))
        x = x[x.size - self.need - (self._end - window_end): x.size - (self._end - window_end)]
        self._done_until = window_end
        return MuapStretch(window_end - self.need, window_end,
                           x.astype(np.float64) * self.uv_per_lsb)

    def analyse(self, s: MuapStretch) -> MuapResult:
        """The site summary of a due stretch (no state of the monitor is touched)."""
        from edge.errors import InputError
        from edge.muap.analysis import analyse

        try:
            res = analyse(s.uv, self.fs, muscle=self.muscle, age=self.age)
            i = res["interpretation"]
            return MuapResult(s.start_sample, s.end_sample, i["finding"], res["summary"],
                              i["evidence"], report_templates(res["units"]), i.get("limits"))
        except InputError as exc:  # clipping: say so, do not guess
            return MuapResult(s.start_sample, s.end_sample, "indeterminate", {"units": 0},
                              [str(exc)])

    def record(self, r: MuapResult) -> MuapResult:
        """Keep a finished summary (the last :data:`KEEP_RESULTS`)."""
        self.results.append(r)
        return r

    def event(self, r: MuapResult) -> Event:
        """The summary as an event-log entry (kind ``muap``, label = the finding)."""
        return Event("muap", r.finding, r.start_sample, r.end_sample, r.start_sample / self.fs,
                     r.end_sample / self.fs, 0.0, 0,
                     json.dumps({"summary": r.summary, "evidence": r.evidence,
                                 "templates": r.templates, "limits": r.limits}))


class MuapWorker:
    """Analyses due stretches on its own thread, in the order they were due. A crash of an
    analysis is kept in :attr:`failed` for the session to raise once it has closed down
    cleanly; nothing here raises it, and nothing blocks for good after it."""

    def __init__(self, monitor: MuapMonitor) -> None:
        self.monitor = monitor
        self._jobs: queue.Queue[MuapStretch | None] = queue.Queue(maxsize=MAX_PENDING)
        self._done: list[MuapResult] = []
        self._lock = threading.Lock()
        self.failed: BaseException | None = None
        """The exception an analysis raised (None: none did)."""
        self._thread = threading.Thread(target=self._work, name="nemg-muap", daemon=True)
        self._thread.start()

    def submit(self, stretch: MuapStretch) -> None:
        """Queue a stretch (waits while :data:`MAX_PENDING` are queued; dropped once an
        analysis has failed)."""
        if self.failed is None and self._thread.is_alive():
            self._jobs.put(stretch)

    def ready(self) -> list[MuapResult]:
        """Summaries finished since the last call, in order."""
        with self._lock:
            out, self._done = self._done, []
        return out

    def drain(self) -> list[MuapResult]:
        """Wait for every queued stretch, stop the thread, and return what is left."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        return self.ready()

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            if self.failed is not None:
                continue  # after a crash the queue is only emptied: submit never hangs
            try:
                r = self.monitor.analyse(job)
            except BaseException as exc:  # reported to the session thread, not lost
                self.failed = exc
                continue
            finally:
                release_free_memory()  # an analysis's tens of MB, back to the system
            with self._lock:
                self._done.append(r)
