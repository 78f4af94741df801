"""MUAP analysis in the live session: when the classifier has followed ``motor_unit`` for
``window_s`` of unbroken signal, the last ``window_s`` are decomposed and measured
(:func:`edge.muap.analyse`), and the site's summary becomes an event (kind ``muap``) in the
event log and on the screen — the electromyographer's voluntary-activity step, done while
the needle is still in the muscle.

What is analysed is keyed to the stream's sample indices, never to the clock: the same
signal gives the same summaries on any machine speed. The analysis runs in the session's
own thread, so a window of ``window_s`` costs about ``window_s / 20`` s of processing on a
Pi 4 core (``nemg bench muap``: decomposition ≥ 20× real time) — the front end's buffer
holds that.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass

import numpy as np

from edge.pipeline import Event

VOLUNTARY = "motor_unit"
"""The label after which a MUAP analysis is due (edge.labels.LABELS)."""

DECISION_LAG_S = 5.0
"""How far a decision may trail the newest sample pushed (a 2 s window, the batching)."""

MUAP_WINDOW_S = 8.0
"""Seconds of steady voluntary activity one analysis needs (5–30 s is the clinical span;
8 s hold 60+ discharges of a unit at 8 Hz)."""


@dataclass
class MuapResult:
    """One site summary of the live session."""

    start_sample: int
    end_sample: int
    finding: str
    summary: dict
    evidence: list[str]

    def line(self) -> str:
        s = self.summary
        if not s.get("units"):
            return f"MUAP: no steady unit found → {self.finding}"
        return (f"MUAP: {s['units']} units · {s['mean_amplitude_uv']:.0f} µV · "
                f"{s['mean_duration_ms']:.1f} ms · {s['polyphasic_share']:.0%} polyphasic · "
                f"{s['mean_firing_rate_hz']:.0f} Hz → {self.finding}")


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
        self.results: list[MuapResult] = []

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
        Returns a new site summary when one is due."""
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
        return self._analyse(window_end)

    def _analyse(self, end: int) -> MuapResult:
        from edge.errors import InputError
        from edge.muap import analyse

        x = np.concatenate(list(self._blocks))
        x = x[x.size - self.need - (self._end - end): x.size - (self._end - end)]
        uv = x.astype(np.float64) * self.uv_per_lsb
        start = end - self.need
        self._done_until = end
        try:
            res = analyse(uv, self.fs, muscle=self.muscle, age=self.age)
            out = MuapResult(start, end, res["interpretation"]["finding"], res["summary"],
                             res["interpretation"]["evidence"])
        except InputError as exc:  # clipping: say so, do not guess
            out = MuapResult(start, end, "indeterminate", {"units": 0}, [str(exc)])
        self.results.append(out)
        return out

    def event(self, r: MuapResult) -> Event:
        """The summary as an event-log entry (kind ``muap``, label = the finding)."""
        return Event("muap", r.finding, r.start_sample, r.end_sample, r.start_sample / self.fs,
                     r.end_sample / self.fs, 0.0, 0,
                     json.dumps({"summary": r.summary, "evidence": r.evidence}))
