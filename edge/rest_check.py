"""Is the muscle at rest? A second opinion on a call of abnormal spontaneous activity.

Spontaneous activity is judged with the muscle at rest. Several motor units firing at
voluntary rates mean it is contracting, and then a call of spontaneous activity is most
often voluntary MUAPs misread (real recordings of healthy muscles are called fibrillation
at a low level, CRD at 10 kHz: see docs/generalisation.md). Stretches of the signal called
one of :data:`CHECKED_LABELS` are decomposed (:func:`edge.muap.decompose`) and the units
firing at voluntary rates counted; when most of the stretches checked hold a contraction,
the file's finding carries a caveat.

The decomposition is float arithmetic (deterministic on one machine, not bit-exact across
machines), so the check **never changes a window's label or the finding's label** — those
stay the bit-exact output of the fixed-point path. It adds a caveat beside them.
Keyed to sample indices: the same windows give the same checks whatever the block size.
Cost: a 3 s stretch of a contraction takes 0.1–0.2 s of one workstation core (``nemg
bench muap``: ``rest_check_realtime_factor``), run in the live session's own thread like
the MUAP monitor's analyses — on a Pi 4 expect decisions to pause for most of a second
every 3 s while a contraction is being called abnormal; a true fibrillation costs a
tenth of that.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from edge.labels import PATHOLOGICAL

#: Calls a contraction undermines: every abnormal spontaneous discharge is judged at rest.
#: (End-plate activity, a normal finding, is not checked: its irregular spikes decompose
#: into several "units".)
CHECKED_LABELS = PATHOLOGICAL

STRETCH_S = 3.0
"""Seconds decomposed per check: a unit at 5 Hz fires 15 times (the seeding needs 8)."""

VOLUNTARY_RATE_HZ = (5.0, 30.0)
"""Firing rates of voluntarily active units, from recruitment onset (about 5 Hz, Petajan
1991) to a moderate contraction."""

MIN_VOLUNTARY_UNITS = 4
"""Units at voluntary rates that make a stretch a contraction. Chosen on simulation alone:
the smallest count at which none of 168 simulated recordings of abnormal spontaneous
activity (each class of :data:`CHECKED_LABELS`, 12 from each of ``convert.synth`` and
``convert.biosim``, 12 s, four stretches each) gets the caveat (at 3, four CRD and PSW
recordings did). Not tuned on any real recording."""

MIN_STRETCHES = 2
"""Stretches checked before a caveat is given (one 3 s stretch of a discharge can
decompose into four "units" — 1 in 25 simulated CRD or myotonic recordings did)."""

MAX_CHECKS = 20
"""Checks per file at most (bounded CPU on an hours-long recording; a live session has
no such cap: it keeps checking, and remembers the last :data:`KEEP_CHECKS`)."""

KEEP_CHECKS = 64
"""Checks remembered per label (bounded memory in a session of hours)."""

DETAIL_PREFIX = "caveat: "
"""How a label event's ``detail`` carries the caveat's text (the event log, the page)."""


def voluntary_rates(x_uv: np.ndarray, fs: float) -> list[float]:
    """Firing rates (Hz) of the units in ``x_uv`` that fire at voluntary rates."""
    from edge.muap import decompose, firing_stats

    lo, hi = VOLUNTARY_RATE_HZ
    rates = [firing_stats(u.firings_s)["firing_rate_hz"] for u in decompose(x_uv, fs)]
    return [r for r in rates if lo <= r <= hi]


@dataclass
class RestCheck:
    """Fed the stream's blocks and the windows decided on them (:meth:`feed`); then
    :meth:`caveat` for the file's finding."""

    fs: int
    uv_per_lsb: float
    max_checks: int | None = MAX_CHECKS
    """Checks at most over the whole stream (None: no cap, as live)."""
    checks: dict[str, deque[tuple[int, list[float]]]] = field(default_factory=dict)
    """label -> (stream index the stretch ends at, its units' voluntary rates) per check,
    the last :data:`KEEP_CHECKS`."""
    made: int = 0
    """Checks made so far."""
    _tail: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    _tail_start: int = 0
    _last_end: int = -(1 << 62)

    @property
    def stretch(self) -> int:
        return round(STRETCH_S * self.fs)

    def feed(self, block: np.ndarray, start: int, windows) -> None:
        """``block``: int16 samples from stream index ``start``; ``windows``: the
        pipeline's results from that push (each with ``label`` and ``end_sample``). A
        window of a checked label ending a full stretch after the last check is checked
        on the stretch that ends with it."""
        if start != self._tail_start + self._tail.size:  # a gap: nothing before it counts
            self._tail, self._tail_start = np.zeros(0, np.int16), start
        buf = np.concatenate([self._tail, block]) if self._tail.size else block
        for w in windows:
            end = w.end_sample
            if (w.label not in CHECKED_LABELS or end - self._last_end < self.stretch
                    or (self.max_checks is not None and self.made >= self.max_checks)):
                continue
            a = end - self.stretch - self._tail_start
            if a < 0 or end - self._tail_start > buf.size:
                continue  # the stretch is not all here (the stream's start, or a gap)
            x = buf[a: end - self._tail_start].astype(np.float64) * self.uv_per_lsb
            self.checks.setdefault(w.label, deque(maxlen=KEEP_CHECKS)).append(
                (end, voluntary_rates(x, self.fs)))
            self._last_end = end
            self.made += 1
        keep = min(buf.size, self.stretch)
        self._tail = buf[buf.size - keep:].copy()
        self._tail_start = start + block.size - keep

    def caveat(self, label: str, since: int | None = None,
               until: int | None = None) -> dict | None:
        """The caveat for a finding of ``label``: most of its stretches checked (those
        ending after ``since`` and at most at ``until``, stream indices) hold a
        contraction. None when they do not, or too little was checked."""
        done = [rates for end, rates in self.checks.get(label, [])
                if (since is None or end > since) and (until is None or end <= until)]
        busy = [r for r in done if len(r) >= MIN_VOLUNTARY_UNITS]
        if len(done) < MIN_STRETCHES or 2 * len(busy) <= len(done):
            return None
        rates = [r for units in busy for r in units]
        units = int(np.median([len(u) for u in busy]))
        return {"kind": "voluntary_activity", "stretches_checked": len(done),
                "stretches_contracting": len(busy), "units": units,
                "rates_hz": [round(min(rates), 1), round(max(rates), 1)],
                "text": f"voluntary activity present ({units} units at "
                        f"{min(rates):.0f}–{max(rates):.0f} Hz, {len(busy)} of {len(done)} "
                        f"stretches): judge spontaneous activity at rest; this "
                        f"{label.replace('_', ' ')} call is not reliable"}
