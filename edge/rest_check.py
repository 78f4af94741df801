"""Is the muscle at rest? Calls of abnormal spontaneous activity made during a contraction
are withheld.

Spontaneous activity is judged with the muscle at rest. Several motor units firing
independently at voluntary rates mean it is contracting, and then a call of spontaneous
activity is most often voluntary MUAPs misread (real recordings of healthy muscles are
called fibrillation at a low level, CRD at 10 kHz: see docs/generalisation.md). So before
a window whose top class is one of :data:`CHECKED_LABELS` is labelled, the stretch of
signal ending with it is decomposed (:func:`edge.muap.decompose`, ``exact=True``) and the
independent units firing at voluntary rates counted; at :data:`MIN_VOLUNTARY_UNITS` or
more, the window is labelled ``uncertain`` (``WindowResult.contracting``), carries no
weight in the smoothing, and the finding says why.

**Bit-exact.** The decomposition runs on the box's own int16 samples at the model rate in
its exact mode (integer and dyadic arithmetic only: the same units on every IEEE-754
machine), and every rule here is an integer comparison, so the label stays the same on
every box for the same input. Keyed to sample indices: which stretches are checked
depends only on the stream and the model's outputs, never on block sizes or time.

Cost: about 4 ms of one workstation core per 3 s stretch of spontaneous activity
(most stop once fewer than :data:`MIN_VOLUNTARY_UNITS` units can fire; ``nemg bench rest``:
``check_s_per_stretch``), more on a busy contraction (``nemg bench muap``:
``rest_check_realtime_factor``); at most one check per :data:`RECHECK_S` of signal, and
only while abnormal activity is the top class (docs/performance.md).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from edge.labels import PATHOLOGICAL, UNCERTAIN
from edge.muap import DecompositionConfig, decompose, steady_intervals, time_locked

#: Calls a contraction undermines: every abnormal spontaneous discharge is judged at rest.
#: (End-plate activity, a normal finding, is not checked: its irregular spikes decompose
#: into several "units".)
CHECKED_LABELS = PATHOLOGICAL

#: Findings that carry the rest check's note: a call it let through, or 'uncertain'
#: (what it withheld becomes).
NOTED_LABELS = PATHOLOGICAL | {UNCERTAIN}

STRETCH_S = 3.0
"""Seconds decomposed per check: a unit at 5 Hz fires 15 times (the seeding needs 8)."""

MIN_STRETCH_S = 2.0
"""Shortest stretch checked by default (the first windows of a stream or after a gap);
the pipeline checks down to one window's length (``RestCheck.min_stretch``)."""

RECHECK_S = 1.0
"""A check stands for the windows ending within this after it (bounded CPU: two windows
per check at a 0.5 s hop)."""

VOLUNTARY_RATE_HZ = (5, 30)
"""Firing rates of voluntarily active units, from recruitment onset (about 5 Hz, Petajan
1991) to a moderate contraction."""

LOCK_WINDOW_MS = 100.0
"""Units whose discharges keep one offset (± ``DecompositionConfig.lock_ms``) within this
are one generator: the fibres of a complex repetitive discharge fire time-locked in a loop
(complexes up to 100 ms); independent motor units do not."""

MIN_VOLUNTARY_UNITS = 5
"""Independent units at voluntary rates that make a stretch a contraction. Chosen on
simulation alone: the smallest count at which at most 1 % of 3 s stretches of abnormal
spontaneous activity are withheld — 672 stretches (each class of :data:`CHECKED_LABELS`,
12 recordings of 12 s from each of ``convert.synth`` and ``convert.biosim``, seed 77):
5 were (0.7 %; at 4, 2.1 %). On a held-out draw (seed 78) 2 of 672 (0.3 %), and 36 of 96
stretches of simulated voluntary recordings were recognised (those holding fewer units
give nothing to go on). Not tuned on any real recording."""

MAX_CHECK_SEGMENTS = 1500
"""Spikes the shapes are learnt from per check (bounds a check's memory and time on the
box: the clustering is O(n²); the matching still sees every spike)."""

KEEP_CHECKS = 64
"""Checks remembered (bounded memory in a session of hours)."""

DETAIL_PREFIX = "caveat: "
"""How an event's ``detail`` carries the rest check's note (the event log, the page)."""


def voluntary_rates(samples: np.ndarray, fs: int, *, at_least: int = 0) -> list[float]:
    """Firing rates (Hz) of the independent units of int16 ``samples`` that fire at
    voluntary rates. Which units count is decided in integers (bit-exact); the rates
    themselves are for people to read. ``at_least``: the caller asks only whether this
    many fire; none are returned when fewer do, and the decomposition stops as soon as
    that is clear (much less work on most stretches of spontaneous activity)."""
    c = DecompositionConfig(max_cluster_segments=MAX_CHECK_SEGMENTS)
    units = decompose(samples, fs, c, exact=True, stop_below=at_least)
    trains = [u.firings for u in units]
    energy = [float(u.shape @ u.shape) for u in units]
    tol, window = round(c.lock_ms * fs / 1000), round(LOCK_WINDOW_MS * fs / 1000)
    while (twin := time_locked(trains, energy, tol, window)) is not None:
        del trains[twin], energy[twin]
    lo, hi = VOLUNTARY_RATE_HZ
    rates = []
    for f in trains:
        isi = steady_intervals(f)
        n, total = isi.size, int(isi.sum())
        if n and lo * total <= fs * n <= hi * total:  # lo ≤ fs / mean interval ≤ hi
            rates.append(fs * n / total)
    return rates if len(rates) >= at_least else []


@dataclass(frozen=True)
class Check:
    """One stretch decomposed."""

    end: int
    """Stream index one past the stretch's last sample."""
    rates_hz: tuple[float, ...]
    """Firing rates of its independent units at voluntary rates (none when fewer than
    :data:`MIN_VOLUNTARY_UNITS` fire: only a contraction's are shown)."""

    @property
    def contracting(self) -> bool:
        return len(self.rates_hz) >= MIN_VOLUNTARY_UNITS


@dataclass
class RestCheck:
    """Fed the stream's samples (:meth:`push`), asked about each window whose top class is
    checked (:meth:`check`), trimmed after (:meth:`trim`). Remembers what it found for the
    notes (:meth:`note`)."""

    fs: int
    min_stretch: int = 0
    """Shortest stretch checked, samples (0: :data:`MIN_STRETCH_S`)."""
    checks: deque[Check] = field(default_factory=lambda: deque(maxlen=KEEP_CHECKS))
    withheld: Counter[str] = field(default_factory=Counter)
    """Top class -> windows withheld (labelled 'uncertain') because of a contraction."""
    made: int = 0
    """Checks made so far."""
    _tail: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    _tail_start: int = 0

    @property
    def stretch(self) -> int:
        return round(STRETCH_S * self.fs)

    def reset(self, start: int) -> None:
        """A new segment begins at stream index ``start`` (nothing before a gap counts)."""
        self._tail, self._tail_start = np.zeros(0, np.int16), start

    def push(self, samples: np.ndarray, start: int) -> None:
        """Contiguous int16 ``samples`` from stream index ``start``, held until
        :meth:`trim` (the windows decided on them may end anywhere in them)."""
        if start != self._tail_start + self._tail.size:
            self.reset(start)
        self._tail = np.concatenate([self._tail, samples]) if self._tail.size else samples

    def trim(self) -> None:
        """Keep only the segment's last :data:`STRETCH_S` (after a push's windows)."""
        drop = self._tail.size - self.stretch
        if drop > 0:
            self._tail = self._tail[drop:].copy()
            self._tail_start += drop

    def check(self, end: int) -> Check | None:
        """The check that stands for a window ending at stream index ``end``: the last one
        if it ended within :data:`RECHECK_S` before, else a new one on the stretch ending
        at ``end``. None when less than ``min_stretch`` of it is here."""
        last = self.checks[-1] if self.checks else None
        if last is not None and 0 <= end - last.end < round(RECHECK_S * self.fs):
            return last
        a = max(self._tail_start, end - self.stretch)
        shortest = self.min_stretch or round(MIN_STRETCH_S * self.fs)
        if end > self._tail_start + self._tail.size or end - a < shortest:
            return None
        x = self._tail[a - self._tail_start: end - self._tail_start]
        chk = Check(end, tuple(voluntary_rates(x, self.fs, at_least=MIN_VOLUNTARY_UNITS)))
        self.checks.append(chk)
        self.made += 1
        return chk

    def withholds(self, label: str, end: int) -> bool:
        """Whether a window whose top class is ``label``, ending at stream index ``end``,
        is withheld: ``label`` is checked and its stretch holds a contraction (counted in
        :attr:`withheld`)."""
        if label not in CHECKED_LABELS:
            return False
        check = self.check(end)
        if check is None or not check.contracting:
            return False
        self.withheld[label] += 1
        return True

    def note(self, since: int | None = None, until: int | None = None) -> dict | None:
        """What the check found in contracting stretches ending after ``since`` and at
        most at ``until`` (stream indices), with the windows withheld so far; None when
        none was contracting."""
        busy = [c for c in self.checks if c.contracting
                and (since is None or c.end > since) and (until is None or c.end <= until)]
        if not busy:
            return None
        rates = [r for c in busy for r in c.rates_hz]
        units = int(np.median([len(c.rates_hz) for c in busy]))
        calls = " or ".join(lab.replace("_", " ") for lab, _ in self.withheld.most_common(2))
        return {"kind": "voluntary_activity", "units": units,
                "rates_hz": [round(min(rates), 1), round(max(rates), 1)],
                "windows_withheld": dict(self.withheld),
                "text": f"not at rest: {units} units firing at {min(rates):.0f}–"
                        f"{max(rates):.0f} Hz (voluntary activity); "
                        f"{'calls of ' + calls if calls else 'calls'} withheld — "
                        f"judge spontaneous activity at rest"}
