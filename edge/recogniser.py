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
Several independent voluntary trains make the stretch **voluntary activity**.

**Fusion** (:meth:`Evidence.fuse`), in one sentence: *a call of abnormal spontaneous
activity made where the recogniser hears voluntary activity and no train that backs the
call is withheld (``uncertain``, both reasons shown); otherwise the CNN's call stands.*
(With ``override``, a discharge that the trains alone name also becomes the label where
the CNN is not confident.) It subsumes the rest check (:mod:`edge.rest_check`), which a
bundle without a ``recogniser`` section still uses.

**Bit-exact.** The decomposition is exact (integers and dyadic values only); every
decision here compares integers or single correctly-rounded products, so the label is the
same on every box for the same input. Keyed to sample indices, like the rest check.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

from edge.labels import PATHOLOGICAL, UNCERTAIN
from edge.muap.decomposition import DecompositionConfig, decompose, robust_sigma, time_locked
from edge.rest_check import voluntary_note
from edge.spec import RecogniserConfig
from edge.stretch import StretchBuffer

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

    def describe(self) -> str:
        backs = "/".join(b.replace("_", " ") for b in self.backs) or "no class"
        return (f"{self.firings} firings at {self.rate_hz:.1f} Hz, CV "
                f"{100 * self.regularity_cv:.0f} %, {self.pattern}, {self.duration_ms:.1f} ms, "
                f"{self.phases} phases, initially {self.initial}, {self.amplitude_uv:.0f} µV "
                f"({backs})")

    def to_dict(self) -> dict:
        return {"firings": self.firings, "rate_hz": round(self.rate_hz, 2),
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
            return "no train of 4 or more discharges"
        lead = (f"voluntary activity: {self.voluntary_trains} units at voluntary rates; "
                if self.voluntary else "")
        return lead + "; ".join(t.describe() for t in self.trains[:3])

    def to_dict(self) -> dict:
        return {"stretch_s": [self.start, self.end], "voluntary": self.voluntary,
                "voluntary_trains": self.voluntary_trains,
                "backs": sorted(self.backed), "names": self.named,
                "trains": [t.to_dict() for t in self.trains], "text": self.reason()}


def _quartiles(v: np.ndarray) -> tuple[int, int, int]:
    s = np.sort(v)
    n = s.size - 1
    return int(s[n // 4]), int(s[n // 2]), int(s[(3 * n) // 4])


def _thirds(v: np.ndarray) -> tuple[float, float, float]:
    """Medians of a sequence's first, middle and last third (integers: exact)."""
    k = v.size // 3
    return (float(np.median(v[:k])), float(np.median(v[k:v.size - k])),
            float(np.median(v[v.size - k:])))


def _shape(t: np.ndarray, sigma: float, fs: int) -> tuple[float, int, str]:
    """Duration (ms), phases and initial sign of a median potential (half-integers)."""
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
                  fs: int, uv_per_lsb: float, c: RecogniserConfig) -> Train:
    """One train's firing and shape, and the classes it backs (integer decisions)."""
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
    a1, _, a3 = _thirds(amps)
    r1, _, r3 = _thirds(isi)
    ratio = c.wax_wane_ratio
    waxing = max(a1, a3) >= ratio * min(a1, a3) or max(r1, r3) >= ratio * min(r1, r3)
    decrementing = a1 >= ratio * a3 and r1 <= r3 * ratio
    gaps = int(np.count_nonzero(isi >= c.burst_gap_ratio * q2))
    bursts = gaps >= 1 and isi.size - gaps >= 2 * gaps and fs >= c.fast_rate_hz * q2
    duration, phases, initial = _shape(template, sigma, fs)
    brief = duration <= c.brief_ms
    vlo, vhi = c.voluntary_rate_hz
    voluntary = (vlo * q2 <= fs <= vhi * q2 and not regular
                 and spread <= round(1000 * c.voluntary_max_cv * 1349) * q2 / 1000)
    backs = []
    if slow and regular:
        backs.append("fibrillation" if brief else "positive_sharp_wave")
    if locked:
        backs.append("complex_repetitive")
    fast = fs >= c.fast_rate_hz * q2
    if fast and waxing and not locked:
        backs.append("myotonic")
    if fs >= c.very_fast_rate_hz * q2:
        backs.append("neuromyotonic")
    if bursts:
        backs.append("myokymic")
    if voluntary:
        backs.append("motor_unit")
    pattern = ("time-locked" if locked else "bursts" if bursts
               else "decrementing" if decrementing and fast
               else "waxing/waning" if waxing and fast
               else "steady" if regular or voluntary else "irregular")
    return Train(int(firings.size), rate, spread / 1349 / q2, pattern, duration, phases,
                 initial, float(np.ptp(template)) * uv_per_lsb, tuple(backs))


def recognise(x: np.ndarray, fs: int, uv_per_lsb: float, c: RecogniserConfig,
              start: int = 0) -> Evidence:
    """The evidence in int16 samples ``x`` at ``fs`` (stream index ``start`` of its
    first sample)."""
    dc = DecompositionConfig(detect_sigma=c.detect_sigma, min_seed=c.min_firings,
                             refractory_ms=c.refractory_ms, min_rate_hz=1e-9,
                             max_isi_cv=1e9, max_cluster_segments=c.max_segments,
                             template_ms=(-10.0, 30.0))
    units = [u for u in decompose(x, fs, dc, exact=True)
             if u.firings is not None and u.firings.size >= c.min_firings]
    sigma = robust_sigma(x, integers=True)
    trains = [measure_train(u.firings, u.template_uv, x, sigma, fs, uv_per_lsb, c)
              for u in units]
    # voluntary trains that keep one offset are one generator (a complex's fibres)
    vol = [(list(u.firings), float(np.ptp(u.template_uv)))
           for u, t in zip(units, trains, strict=True) if "motor_unit" in t.backs]
    fir, energy = [f for f, _ in vol], [e for _, e in vol]
    tol, window = max(1, round(0.25e-3 * fs)), round(c.complex_span_ms * fs / 1000)
    while (twin := time_locked(fir, energy, tol, window)) is not None:
        del fir[twin], energy[twin]
    return Evidence(start + x.size, start, tuple(trains), len(fir),
                    len(fir) >= c.min_voluntary_trains)


@dataclass
class Recogniser:
    """Fed the stream's samples (:meth:`push`), asked for the evidence behind each window
    (:meth:`look`), trimmed after (:meth:`trim`); remembers its recent looks."""

    fs: int
    uv_per_lsb: float
    min_stretch: int
    """Shortest stretch looked at, samples (one window: the first windows of a segment)."""
    config: RecogniserConfig
    looks: deque[Evidence] = field(default_factory=lambda: deque(maxlen=KEEP_LOOKS))
    made: int = 0
    """Looks made so far."""
    withheld: Counter[str] = field(default_factory=Counter)
    """CNN call -> windows withheld ('uncertain') because the evidence contradicted it
    (counted by the pipeline, which fuses)."""
    _buffer: StretchBuffer = field(init=False)
    _segment_start: int = 0

    def __post_init__(self) -> None:
        self._buffer = StretchBuffer(round(self.config.stretch_s * self.fs))

    def reset(self, start: int) -> None:
        """A new segment begins at stream index ``start``: no look before it stands."""
        self._buffer.reset(start)
        self._segment_start = start

    def push(self, samples: np.ndarray, start: int) -> None:
        self._buffer.push(samples, start)

    def trim(self) -> None:
        self._buffer.trim()

    def look(self, end: int) -> Evidence | None:
        """The evidence for a window ending at stream index ``end``: the last look if it
        ended within ``recheck_s`` before, else a new one. None when less than
        ``min_stretch`` is here."""
        last = self.looks[-1] if self.looks else None
        if (last is not None and last.start >= self._segment_start
                and 0 <= end - last.end < round(self.config.recheck_s * self.fs)):
            return last
        x = self._buffer.stretch_ending(end, self.min_stretch)
        if x is None:
            return None
        ev = recognise(x, self.fs, self.uv_per_lsb, self.config, end - x.size)
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
                              [t.rate_hz for e in busy for t in e.trains
                               if "motor_unit" in t.backs], self.withheld,
                              " (no train backs them)")
