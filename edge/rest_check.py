"""Is the muscle at rest? Calls of abnormal spontaneous activity made during a contraction
are withheld.

Spontaneous activity is judged with the muscle at rest. Several motor units firing
independently at voluntary rates mean it is contracting, and then a call of spontaneous
activity is most often voluntary MUAPs misread (real recordings of healthy muscles are
called fibrillation at a low level, CRD at 10 kHz: see docs/generalisation.md). So before
a window whose top class is one of :data:`CHECKED_LABELS` is labelled, the stretch of
signal ending with it is decomposed (:func:`edge.muap.decomposition.decompose`,
``exact=True``) and the
independent units firing at voluntary rates counted; at ``min_voluntary_units`` or more
(the bundle's :class:`edge.spec.RestCheckConfig`, like every number here), the window is
labelled ``uncertain`` (``WindowResult.contracting``), carries no weight in the smoothing,
and the finding says why.

**Bit-exact.** The decomposition runs on the box's own int16 samples at the model rate in
its exact mode (integer and dyadic arithmetic only: the same units on every IEEE-754
machine), and every rule here is an integer comparison, so the label stays the same on
every box for the same input. Keyed to sample indices: which stretches are checked
depends only on the stream and the model's outputs, never on block sizes or time.

Cost: about 4 ms of one workstation core per 3 s stretch of spontaneous activity
(most stop once fewer than ``min_voluntary_units`` units can fire; ``nemg bench rest``:
``check_s_per_stretch``), more on a busy contraction (``nemg bench muap``:
``rest_check_realtime_factor``); at most one check per ``recheck_s`` of signal, and
only while abnormal activity is the top class (docs/performance.md).
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from edge.labels import PATHOLOGICAL, UNCERTAIN
from edge.muap.decomposition import DecompositionConfig, decompose, steady_intervals, time_locked
from edge.spec import DEFAULT_DECISION, RestCheckConfig
from edge.stretch import KeepsStretch, StretchBuffer

#: Calls a contraction undermines: every abnormal spontaneous discharge is judged at rest.
#: (End-plate activity, a normal finding, is not checked: its irregular spikes decompose
#: into several "units".)
CHECKED_LABELS = PATHOLOGICAL

#: Findings that carry the rest check's note: a call it let through, or 'uncertain'
#: (what it withheld becomes).
NOTED_LABELS = PATHOLOGICAL | {UNCERTAIN}

DEFAULT_REST = DEFAULT_DECISION.rest_check
"""What a bundle without its own rest-check section decides with."""

KEEP_CHECKS = 64
"""Checks remembered (bounded memory in a session of hours)."""

DETAIL_PREFIX = "caveat: "
"""How an event's ``detail`` carries the rest check's note (the event log, the page)."""


def voluntary_rates(samples: np.ndarray, fs: int, *, at_least: int = 0,
                    config: RestCheckConfig = DEFAULT_REST) -> list[float]:
    """Firing rates (Hz) of the independent units of int16 ``samples`` that fire at
    voluntary rates (``config``'s). Which units count is decided in integers (bit-exact);
    the rates themselves are for people to read. ``at_least``: the caller asks only
    whether this many fire; none are returned when fewer do, and the decomposition stops
    as soon as that is clear (much less work on most stretches of spontaneous activity)."""
    c = DecompositionConfig(max_cluster_segments=config.max_check_segments)
    units = decompose(samples, fs, c, exact=True, stop_below=at_least)
    trains = [u.firings for u in units]
    energy = [float(u.shape @ u.shape) for u in units]
    tol, window = round(c.lock_ms * fs / 1000), round(config.lock_window_ms * fs / 1000)
    while (twin := time_locked(trains, energy, tol, window)) is not None:
        del trains[twin], energy[twin]
    lo, hi = config.voluntary_rate_hz
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
    ``RestCheckConfig.min_voluntary_units`` fire: only a contraction's are shown)."""

    @property
    def contracting(self) -> bool:
        return bool(self.rates_hz)  # rates are kept only when enough units fire


@dataclass
class RestCheck(KeepsStretch):
    """Fed the stream's samples (:meth:`push`), asked about each window whose top class is
    checked (:meth:`check`), trimmed after (:meth:`trim`). Remembers what it found for the
    notes (:meth:`note`)."""

    fs: int
    min_stretch: int = 0
    """Shortest stretch checked, samples (0: ``config.min_stretch_s``)."""
    config: RestCheckConfig = DEFAULT_REST
    """What makes a stretch a contraction, and how much is checked (the bundle's)."""
    checks: deque[Check] = field(default_factory=lambda: deque(maxlen=KEEP_CHECKS))
    withheld: Counter[str] = field(default_factory=Counter)
    """Top class -> windows withheld (labelled 'uncertain') because of a contraction."""
    made: int = 0
    """Checks made so far."""
    _buffer: StretchBuffer = field(init=False)

    def __post_init__(self) -> None:
        self._buffer = StretchBuffer(self.stretch)

    @property
    def stretch(self) -> int:
        return round(self.config.stretch_s * self.fs)

    def check(self, end: int) -> Check | None:
        """The check that stands for a window ending at stream index ``end``: the last one
        if it ended within ``config.recheck_s`` before, else a new one on the stretch
        ending at ``end``. None when less than ``min_stretch`` of it is here."""
        c = self.config
        last = self.checks[-1] if self.checks else None
        if last is not None and 0 <= end - last.end < round(c.recheck_s * self.fs):
            return last
        x = self._buffer.stretch_ending(end, self.min_stretch or round(c.min_stretch_s * self.fs))
        if x is None:
            return None
        rates = voluntary_rates(x, self.fs, at_least=c.min_voluntary_units, config=c)
        chk = Check(end, tuple(rates))
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
        return voluntary_note([len(c.rates_hz) for c in busy],
                              [r for c in busy for r in c.rates_hz], self.withheld)


def voluntary_note(units: list[int], rates: list[float], withheld: Counter[str],
                   why: str = "") -> dict:
    """The caveat on findings made over voluntary activity: units per look, their rates,
    the calls withheld, and ``why`` they were (after the calls)."""
    n = int(np.median(units))
    calls = " or ".join(lab.replace("_", " ") for lab, _ in withheld.most_common(2))
    return {"kind": "voluntary_activity", "units": n,
            "rates_hz": [round(min(rates), 1), round(max(rates), 1)],
            "windows_withheld": dict(withheld),
            "text": f"not at rest: {n} units firing at {min(rates):.0f}–"
                    f"{max(rates):.0f} Hz (voluntary activity); "
                    f"{'calls of ' + calls if calls else 'calls'} withheld{why} — "
                    f"judge spontaneous activity at rest"}
