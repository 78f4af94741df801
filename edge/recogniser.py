"""The discharge recogniser: what fires, how, and what each potential looks like — the
evidence a clinician uses beside the CNN's reading of the Mel image.

A stretch of the box's int16 samples (the bundle's ``recogniser.stretch_s``, ending with a
window) is decomposed into **trains** (:func:`edge.muap.decomposition.decompose`, exact
mode: one generator each, a fibre or a motor unit). Each train is measured:

- **firing**: discharges, rate (the median interval's), regularity (the spread of its
  intervals: interquartile range ÷ 1.349 ÷ median, a CV that a missed or an extra
  discharge does not inflate), pattern (steady, bursts, waxing/waning, decrementing,
  time-locked);
- **shape**, on its median potential: duration (where it leaves the baseline by a tenth of
  its peak or three noise deviations), phases, the sign of the initial deflection, and
  peak-to-peak amplitude.

Each train then meets the criteria of the classes it can belong to (docs/evidence.md has
the literature and where each threshold was chosen): a slow metronome-regular train is a
denervated fibre (brief: fibrillation; long: positive sharp wave); a time-locked one a
complex repetitive discharge; a fast waxing/waning one myotonic; a very fast one
neuromyotonic; a bursting one myokymic; a semi-regular one at 5–30 Hz a voluntary unit.
Several independent voluntary trains — or the rest check's contraction, counted by its own
decomposition — make the stretch **voluntary activity**.

**Fusion** (:meth:`Evidence.fuse`), in one sentence: *a call of abnormal spontaneous
activity made over voluntary activity that no train backs is withheld (``uncertain``, both
reasons shown); where the CNN is unsure and the trains alone name one discharge, that is
the label (``override``, the bundle's); otherwise the CNN's call stands.* It subsumes the
rest check (:mod:`edge.rest_check`), which a bundle without a ``recogniser`` section still
decides with.

**Bit-exact.** The decomposition is exact (integers and dyadic values only); every
decision here compares integers or single correctly-rounded products, so the label is the
same on every box for the same input. Keyed to sample indices, like the rest check.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from edge.labels import PATHOLOGICAL, UNCERTAIN
from edge.muap.decomposition import (
    DecompositionConfig,
    decompose,
    locked_together,
    robust_sigma,
    time_locked,
)
from edge.rest_check import DEFAULT_REST, voluntary_note, voluntary_rates
from edge.spec import RecogniserConfig, RestCheckConfig
from edge.stretch import KeepsStretch, StretchBuffer

KEEP_LOOKS = 64
"""Looks remembered (bounded memory in a session of hours)."""

#: Classes a train's firing and shape can back, in the order its reasons are given.
TRAIN_CLASSES = ("fibrillation", "positive_sharp_wave", "complex_repetitive", "myotonic",
                 "neuromyotonic", "myokymic", "motor_unit")


@dataclass(frozen=True)
class Train:
    """One generator's discharges in a stretch, measured."""

    firings: int
    rate_hz: float
    """From the median interval."""
    regularity_cv: float
    """Interquartile spread of the intervals ÷ 1.349 ÷ their median."""
    pattern: str
    """'steady', 'irregular', 'time-locked', 'bursts', 'waxing/waning' or 'decrementing'."""
    duration_ms: float
    phases: int
    initial: str
    """Sign of the potential's first deflection: '+' or '-'."""
    amplitude_uv: float
    """Peak to peak of the median potential."""
    backs: tuple[str, ...]
    """Classes whose criteria it meets (:data:`TRAIN_CLASSES` order)."""
    times: tuple[int, ...] = ()
    """Stream indices of its discharges (what a trace marks)."""

    def describe(self) -> str:
        backs = "/".join(b.replace("_", " ") for b in self.backs) or "no class"
        return (f"{self.rate_hz:.1f} Hz, CV {100 * self.regularity_cv:.0f} %, {self.pattern}, "
                f"{self.duration_ms:.1f} ms, {self.phases} phases, initially {self.initial}, "
                f"{self.amplitude_uv:.0f} µV, {self.firings} firings ({backs})")

    def to_dict(self, fs: int | None = None) -> dict:
        """For JSON; with ``fs``, the discharges' times too (s from the stream's start)."""
        times = {"times_s": [round(t / fs, 5) for t in self.times]} if fs else {}
        return times | {"firings": self.firings, "rate_hz": round(self.rate_hz, 2),
                "regularity_cv": round(self.regularity_cv, 4), "pattern": self.pattern,
                "duration_ms": round(self.duration_ms, 2), "phases": self.phases,
                "initial": self.initial, "amplitude_uv": round(self.amplitude_uv, 1),
                "backs": list(self.backs)}


@dataclass(frozen=True)
class Evidence:
    """What the recogniser heard in the stretch ending at stream index ``end``."""

    end: int
    start: int
    trains: tuple[Train, ...]
    voluntary_trains: int
    """Independent trains at voluntary rates and spread."""
    voluntary: bool
    """At least ``min_voluntary_trains`` of them: voluntary activity."""
    voluntary_rates_hz: tuple[float, ...] = ()
    """Their firing rates (for people)."""

    @property
    def backed(self) -> frozenset[str]:
        """Classes at least one train backs (voluntary activity backs ``motor_unit``)."""
        out = {b for t in self.trains for b in t.backs if b != "motor_unit"}
        return frozenset(out | ({"motor_unit"} if self.voluntary else set()))

    @property
    def named(self) -> str | None:
        """The one class the trains alone name, if exactly one: a discharge backed by a
        train and no voluntary activity, or voluntary activity and no discharge."""
        patho = self.backed & PATHOLOGICAL
        if self.voluntary:
            return "motor_unit" if not patho else None
        if {"fibrillation", "positive_sharp_wave"} == patho:
            return None
        return next(iter(patho)) if len(patho) == 1 else None

    def contradicts(self, label: str) -> bool:
        """A call of spontaneous activity over voluntary activity that no train backs."""
        return label in PATHOLOGICAL and self.voluntary and label not in self.backed

    def fuse(self, cnn_label: str, confident: bool, override: bool) -> tuple[str, str]:
        """The box's label from the CNN's top class (``confident``: above the bundle's
        threshold) and this evidence, with the criterion that decided: 'agrees',
        'silent', 'contradicts' or 'names'."""
        if self.contradicts(cnn_label):
            return UNCERTAIN, "contradicts"
        if override and not confident and self.named in PATHOLOGICAL:
            return self.named, "names"  # type: ignore[return-value]
        if cnn_label in self.backed:
            return (cnn_label if confident else UNCERTAIN), "agrees"
        return (cnn_label if confident else UNCERTAIN), "silent"

    def reason(self) -> str:
        """One line for a person: what fired and what it backs."""
        if not self.trains:
            return "no train of discharges found"
        r = self.voluntary_rates_hz
        span = f" ({min(r):.0f}–{max(r):.0f} Hz)" if r else ""
        lead = (f"voluntary activity: {self.voluntary_trains} units at voluntary rates{span}; "
                if self.voluntary else "")
        return lead + "; ".join(t.describe() for t in self.trains[:3])

    def to_dict(self, fs: int, times: bool = False) -> dict:
        """For JSON (``fs``: the stream's rate; ``times``: each discharge's time too)."""
        return {"span_s": [round(self.start / fs, 4), round(self.end / fs, 4)],
                "voluntary": self.voluntary,
                "voluntary_trains": self.voluntary_trains,
                "backs": sorted(self.backed), "names": self.named,
                "trains": [t.to_dict(fs if times else None) for t in self.trains],
                "text": self.reason()}


SAME_SHAPE = 0.9
"""Two trains whose matching shapes correlate at least this much (and whose union fires
as regularly as its parts: :func:`_regular_union`) are one generator the clustering split
by size: a myotonic discharge waxes and wanes, a neuromyotonic one decrements."""


def _spread(f: np.ndarray) -> tuple[int, int]:
    """(interquartile range, median) of a train's intervals: integers."""
    q1, q2, q3 = _quartiles(np.diff(f))
    return q3 - q1, q2


def _regular_union(both: tuple[int, int], a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Two parts of one train: their union's spread (IQR / median) at most the worse
    part's, and at most twice the better's plus 0.02 (integers)."""
    (u, m), worse, better = both, max(a, b, key=lambda s: s[0] / s[1]), \
        min(a, b, key=lambda s: s[0] / s[1])
    return (u * worse[1] <= worse[0] * m
            and 50 * u * better[1] <= 100 * better[0] * m + better[1] * m)


def join_split_trains(units: list, refractory: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """(firings, wide-band template, shape energy) per generator: the decomposition's
    units, those the clustering split by size joined back (:data:`SAME_SHAPE`)."""
    trains = [(u.firings, u.template_uv, u.shape) for u in units]
    joined = True
    while joined:
        joined = False
        for i in range(len(trains)):
            for j in range(i + 1, len(trains)):
                (fa, ta, sa), (fb, _, sb) = trains[i], trains[j]
                dot = float(sa @ sb)
                if dot <= 0 or dot * dot < SAME_SHAPE ** 2 * float(sa @ sa) * float(sb @ sb):
                    continue
                f = np.union1d(fa, fb)
                if f.size < 4 or np.diff(f).min() < refractory:
                    continue
                if _regular_union(_spread(f), _spread(fa), _spread(fb)):
                    big = ta if np.ptp(ta) >= np.ptp(trains[j][1]) else trains[j][1]
                    trains[i] = (f, big, sa if float(sa @ sa) >= float(sb @ sb) else sb)
                    del trains[j]
                    joined = True
                    break
            if joined:
                break
    return [(f, t, float(s @ s)) for f, t, s in trains]


def _quartiles(v: np.ndarray) -> tuple[int, int, int]:
    s = np.sort(v)
    n = s.size - 1
    return int(s[n // 4]), int(s[n // 2]), int(s[(3 * n) // 4])


def _thirds(v: np.ndarray) -> tuple[float, float, float]:
    """Medians of a sequence's first, middle and last third (integers: exact)."""
    k = v.size // 3
    return (float(np.median(v[:k])), float(np.median(v[k:v.size - k])),
            float(np.median(v[v.size - k:])))


TEMPLATE_MS = (-10.0, 30.0)
"""Span of a train's median potential around each discharge."""


def _shape(t: np.ndarray, sigma: float, fs: int, reach: int) -> tuple[float, int, str]:
    """Duration (ms), phases and initial sign of a median potential (half-integers),
    within ``reach`` samples of its discharge (half the train's interval: a fast train's
    median potential holds its neighbours too)."""
    at = round(-TEMPLATE_MS[0] * fs / 1000)
    t = t[max(0, at - reach): at + reach]
    edge = max(1, t.size // 20)
    t = t - float(np.median(np.concatenate([t[:edge], t[-edge:]])))
    peak = float(np.max(np.abs(t)))
    level = max(0.1 * peak, 3.0 * sigma)
    over = np.flatnonzero(np.abs(t) > level)
    if over.size == 0:
        return 0.0, 0, "+"
    signs = np.sign(t[over])
    phases = 1 + int(np.count_nonzero(signs[1:] != signs[:-1]))
    return (int(over[-1]) - int(over[0]) + 1) * 1000 / fs, phases, \
        "+" if signs[0] > 0 else "-"


def measure_train(firings: np.ndarray, template: np.ndarray, x: np.ndarray, sigma: float,
                  fs: int, uv_per_lsb: float, c: RecogniserConfig, start: int = 0,
                  partnered: bool = False) -> Train:
    """One train's firing and shape, and the classes it backs (integer decisions);
    ``start``: the stream index of ``x[0]``; ``partnered``: another train of the stretch
    fires time-locked with it."""
    isi = np.diff(firings)
    q1, q2, q3 = _quartiles(isi)
    rate = fs / q2
    lo, hi = c.slow_rate_hz
    slow = lo * q2 <= fs <= hi * q2
    spread = 1349 * (q3 - q1)  # regularity ≤ cv  ⇔  (q3 − q1) / 1.349 ≤ cv · q2
    regular = spread <= round(1000 * c.regular_cv * 1349) * q2 / 1000
    locked = spread <= round(1000 * c.locked_cv * 1349) * q2 / 1000 and fs >= c.locked_min_hz * q2
    # per-discharge size: peak to peak within ±1 ms of each firing (integers)
    w = max(1, fs // 1000)
    amps = np.array([int(np.ptp(x[max(0, i - w): i + w + 1])) for i in firings.tolist()])
    ratio, waxing, decrementing = c.wax_wane_ratio, False, False
    if isi.size >= 3:  # a third of the train at least one interval
        a1, _, a3 = _thirds(amps)
        r1, _, r3 = _thirds(isi)
        waxing = max(a1, a3) >= ratio * min(a1, a3) or max(r1, r3) >= ratio * min(r1, r3)
        decrementing = a1 >= ratio * a3 and r1 <= r3 * ratio
    # one generator's rate drifts, merged units' jumps: successive intervals compared where
    # both are near the median (a missed or an extra discharge is not a jump)
    near = (2 * isi >= q2) & (2 * isi <= 3 * q2)
    pairs = near[1:] & near[:-1]
    jumps = np.abs(np.diff(isi))[pairs]
    smooth = jumps.size >= 2 and float(np.median(jumps)) <= c.smooth_jump * q2
    gaps = int(np.count_nonzero(isi >= c.burst_gap_ratio * q2))
    bursts = (gaps >= 2 and isi.size - gaps >= 2 * gaps and fs >= c.fast_rate_hz * q2
              and smooth)
    duration, phases, initial = _shape(template, sigma, fs, q2 // 2)
    brief = duration <= c.brief_ms
    vlo, vhi = c.voluntary_rate_hz
    voluntary = (vlo * q2 <= fs <= vhi * q2 and not regular
                 and spread <= round(1000 * c.voluntary_max_cv * 1349) * q2 / 1000)
    complex_ = partnered or phases >= c.complex_min_phases
    backs = []
    if slow and regular and not complex_:
        backs.append("fibrillation" if brief else "positive_sharp_wave")
    if locked and complex_:
        backs.append("complex_repetitive")
    fast = fs >= c.fast_rate_hz * q2 and smooth
    if fast and waxing and not (locked and complex_):
        backs.append("myotonic")
    if fast and fs >= c.very_fast_rate_hz * q2:
        backs.append("neuromyotonic")
    if bursts:
        backs.append("myokymic")
    if voluntary:
        backs.append("motor_unit")
    pattern = ("time-locked" if locked and complex_ else "bursts" if bursts
               else "decrementing" if decrementing and fast
               else "waxing/waning" if waxing and fast
               else "steady" if regular or voluntary else "irregular")
    return Train(int(firings.size), rate, spread / 1349 / q2, pattern, duration, phases,
                 initial, float(np.ptp(template)) * uv_per_lsb, tuple(backs),
                 tuple((firings + start).tolist()))


def recognise(x: np.ndarray, fs: int, uv_per_lsb: float, c: RecogniserConfig,
              start: int = 0, rest: RestCheckConfig = DEFAULT_REST) -> Evidence:
    """The evidence in int16 samples ``x`` at ``fs`` (stream index ``start`` of its
    first sample). Voluntary activity is ``min_voluntary_trains`` of the recogniser's own
    trains at voluntary rates and spread, or what the rest check calls a contraction
    (``rest``: its decomposition, with a voluntary unit's refractory period, separates a
    contraction's units better than one tuned to fast discharges; its own count)."""
    dc = DecompositionConfig(detect_sigma=c.detect_sigma, min_seed=c.min_firings,
                             refractory_ms=c.refractory_ms, min_rate_hz=1e-9,
                             max_isi_cv=1e9, max_cluster_segments=c.max_segments,
                             template_ms=TEMPLATE_MS)
    units = [u for u in decompose(x, fs, dc, exact=True)
             if u.firings is not None and u.firings.size >= 3]
    gens = [g for g in join_split_trains(units, round(c.refractory_ms * fs / 1000))
            if g[0].size >= c.min_firings]
    sigma = robust_sigma(x, integers=True)
    tol, window = max(1, round(0.25e-3 * fs)), round(c.complex_span_ms * fs / 1000)
    partnered = [any(locked_together(f, g[0], tol, window) for g in gens if g[0] is not f)
                 for f, _, _ in gens]
    trains = [measure_train(f, tmpl, x, sigma, fs, uv_per_lsb, c, start, p)
              for (f, tmpl, _), p in zip(gens, partnered, strict=True)]
    # voluntary trains that keep one offset are one generator (a complex's fibres)
    vol = [(list(f), energy) for (f, _, energy), t in zip(gens, trains, strict=True)
           if "motor_unit" in t.backs]
    fir, energy = [f for f, _ in vol], [e for _, e in vol]
    while (twin := time_locked(fir, energy, tol, window)) is not None:
        del fir[twin], energy[twin]
    # the rest check's count (its own decomposition, its own threshold: subsumed)
    rates = (voluntary_rates(x, fs, at_least=rest.min_voluntary_units, config=rest)
             if len(fir) < c.min_voluntary_trains else [])
    own = [t.rate_hz for t in trains if "motor_unit" in t.backs]
    units = max(len(fir), len(rates))
    return Evidence(start + x.size, start, tuple(trains), units,
                    len(fir) >= c.min_voluntary_trains or bool(rates),
                    tuple(rates if len(rates) > len(fir) else own))


@dataclass
class Recogniser(KeepsStretch):
    """Fed the stream's samples (:meth:`push`), asked for the evidence behind each window
    (:meth:`look`), trimmed after (:meth:`trim`); remembers its recent looks."""

    fs: int
    uv_per_lsb: float
    min_stretch: int
    """Shortest stretch looked at, samples (one window: the first windows of a segment)."""
    config: RecogniserConfig
    rest: RestCheckConfig = DEFAULT_REST
    """How voluntary units are also counted (the bundle's rest check, subsumed)."""
    looks: deque[Evidence] = field(default_factory=lambda: deque(maxlen=KEEP_LOOKS))
    made: int = 0
    """Looks made so far."""
    withheld: Counter[str] = field(default_factory=Counter)
    """CNN call -> windows withheld ('uncertain') because the evidence contradicted it
    (counted by the pipeline, which fuses)."""
    _buffer: StretchBuffer = field(init=False)
    _step: int = field(init=False)
    """The look grid's step, samples (0: none)."""

    def __post_init__(self) -> None:
        self._step = round(self.config.look_every_s * self.fs)
        self._buffer = StretchBuffer(round(self.config.stretch_s * self.fs),
                                     behind=self._step)

    def look_end(self, end: int) -> int:
        """Where the look for a window ending at stream index ``end`` ends: the last
        point of the segment's look grid at or before it (``look_every_s`` apart from
        the end of the segment's first window; every window's end without a grid)."""
        first = self._buffer.segment_start + self.min_stretch
        if self._step == 0 or end <= first:
            return end
        return first + (end - first) // self._step * self._step

    def look(self, end: int) -> Evidence | None:
        """The evidence for a window ending at stream index ``end``: the stretch ending
        at its grid point (:meth:`look_end`), and nothing else (so a window's evidence
        never depends on which other windows were looked at). None when less than
        ``min_stretch`` is here."""
        at = self.look_end(end)
        if self.looks and self.looks[-1].end == at:
            return self.looks[-1]  # the window before took this grid point's look
        x = self._buffer.stretch_ending(at, self.min_stretch)
        if x is None:
            return None
        ev = recognise(x, self.fs, self.uv_per_lsb, self.config, at - x.size, self.rest)
        self.looks.append(ev)
        self.made += 1
        return ev

    def note(self, since: int | None = None, until: int | None = None) -> dict | None:
        """What the looks ending after ``since`` and at most at ``until`` (stream indices)
        heard of voluntary activity, with the windows withheld so far; None when none
        heard any."""
        busy = [e for e in self.looks if e.voluntary
                and (since is None or e.end > since) and (until is None or e.end <= until)]
        if not busy:
            return None
        return voluntary_note([e.voluntary_trains for e in busy],
                              [r for e in busy for r in e.voluntary_rates_hz], self.withheld,
                              " (no train backs them)")

    def event_line(self, label: str, since: int, until: int) -> str:
        """The evidence behind an event of ``label`` over stream indices [since, until):
        the train that backs it best (most discharges), or what contradicted or did not
        back it; '' when no look fell in it."""
        looks = [e for e in self.looks if since < e.end <= until]
        if not looks or label not in TRAIN_CLASSES:
            return ""  # nothing looked at, or a class no train pattern decides
        backing = [t for e in looks for t in e.trains if label in t.backs]
        if label == "motor_unit" and any(e.voluntary for e in looks):
            n = max(e.voluntary_trains for e in looks)
            return f"evidence: voluntary activity, {n} units at voluntary rates"
        if backing:
            best = max(backing, key=lambda t: t.firings)
            return f"evidence: backed by a train of {best.describe()}"
        if label == "motor_unit":
            return ""  # a normal call the recogniser does not contradict
        return f"evidence: no train backs it ({looks[-1].reason()})"
