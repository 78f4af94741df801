"""The box's main job: canonical int16 samples -> features -> windows -> int8 model ->
smoothing -> events. The same object serves live streams and files (``nemg classify``), so
both give the same window labels for the same samples.

Data flows one way. Lost samples (a dropped or corrupted frame, an unplugged cable) follow
one policy, :meth:`Pipeline.lost`:

- a gap of at most the bundle's ``max_concealed_gap_ms`` (:class:`edge.spec.DecisionConfig`:
  one or two lost 10 ms frames) is *concealed*: zeros stand in for the missing samples (no
  invented activity), every window that holds them says how many
  (``WindowResult.concealed``), and the gap is still logged as an event;
- a longer gap (or one of unknown length) closes the current segment: the front end is
  reset, buffered frames are dropped, so no window ever spans it; the next window starts
  after it.

Without concealment 1 % of lost frames costs most windows (a 2 s window holds 200 frames);
with it, almost none (``nemg bench pipeline``: ``window_coverage_at_1pct_frame_loss``).

Every number that decides a label or an event (threshold, smoothing, the windows an event
needs, the longest concealed gap, the rest check) is the bundle's
(:attr:`edge.bundle.Bundle.decision`), so a code update never changes labels under an
unchanged bundle.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import numpy as np

from edge.bundle import Bundle
from edge.errors import ConfigError, IntegrityError
from edge.features import MelFrontEnd
from edge.labels import PATHOLOGICAL, UNCERTAIN
from edge.recogniser import Evidence, Recogniser
from edge.rest_check import RestCheck
from edge.spec import DecisionConfig


@dataclass(frozen=True)
class WindowResult:
    """One model decision."""

    index: int
    """Window number in the session."""
    start_sample: int
    """Stream index of the window's first sample."""
    end_sample: int
    """Stream index one past its last sample."""
    start_s: float
    end_s: float
    label: str
    """Top class, or 'uncertain' below the bundle's threshold."""
    confidence: float
    """Top probability."""
    probabilities: np.ndarray
    """Per class, in the bundle's label order."""
    smoothed_label: str
    """Label after posterior smoothing (what events follow)."""
    smoothed_probabilities: np.ndarray
    """The smoothed probabilities behind ``smoothed_label``."""
    latency_s: float = 0.0
    """From the push that delivered the window's last sample to this result."""
    concealed: int = 0
    """Samples of the window that were lost and zero-filled (0: all of it was heard)."""
    unfamiliar: bool = False
    """Its spectrum is unlike the model's training windows (:mod:`edge.calibration`): the
    label is 'uncertain' and the window carries no weight in the smoothing."""
    contracting: bool = False
    """Its top class is abnormal spontaneous activity, but several units fire at voluntary
    rates in the stretch it ends and none backs the call (:mod:`edge.recogniser`; a bundle
    without one: :mod:`edge.rest_check`): the muscle is not at rest, the label is
    'uncertain' and the window carries no weight in the smoothing."""
    evidence: Evidence | None = None
    """What the discharge recogniser heard in the stretch the window ends (None: the
    bundle has no recogniser, or too little signal yet)."""
    criterion: str = ""
    """How the recogniser's evidence entered the label: 'agrees', 'silent', 'contradicts'
    or 'names' (:meth:`edge.recogniser.Evidence.fuse`; '' without evidence)."""


@dataclass(frozen=True)
class Event:
    """A finished stretch of one label, or a gap."""

    kind: str
    """'label' or 'gap'."""
    label: str
    """The label ('gap' for gaps)."""
    start_sample: int
    end_sample: int
    start_s: float
    end_s: float
    confidence: float
    """Mean top probability over the stretch (0 for gaps)."""
    windows: int = 0
    detail: str = ""


@dataclass
class _OpenRun:
    """A stretch of one smoothed label, growing window by window (bounded memory)."""

    label: str
    start_sample: int
    end_sample: int
    smooth_sum: np.ndarray
    """Sum of the windows' smoothed probabilities."""
    windows: int = 0

    def add(self, smooth: np.ndarray, end: int) -> None:
        self.smooth_sum = self.smooth_sum + smooth
        self.windows += 1
        self.end_sample = end

    def absorb(self, other: _OpenRun) -> None:
        """Take over a stretch too short to be an event of its own."""
        self.smooth_sum = self.smooth_sum + other.smooth_sum
        self.windows += other.windows
        self.end_sample = other.end_sample


class Pipeline:
    """Feed it samples (and gaps); it returns window results and finished events."""

    def __init__(self, bundle: Bundle, *, num_threads: int = 1,
                 decision: DecisionConfig | None = None,
                 uncertain_threshold: float | None = None,
                 smoothing_windows: int | None = None,
                 max_concealed_gap_ms: float | None = None,
                 rest_check: bool = True, self_test: bool = True,
                 evidence_always: bool = False) -> None:
        """Decides as the bundle says (:attr:`Bundle.decision`). For experiments,
        ``decision`` replaces the bundle's and the other keywords one value of it; a
        ``rest_check`` of False turns the recogniser (or an older bundle's rest check) off:
        the model's labels alone. ``self_test``: the bundle's decision path must first
        reproduce its golden labels (:func:`check_decision_golden`, once per bundle).
        ``evidence_always``: the recogniser looks at every window, not only where its
        evidence can change the label (a file classified offline, a benchmark); the
        labels are the same either way."""
        if not bundle.verified:
            raise ConfigError("the pipeline only runs verified bundles")
        if self_test:
            check_decision_golden(bundle)
        self.bundle = bundle
        self.mel = bundle.mel_config
        self.win = bundle.window_config
        self.labels = bundle.labels
        self.classifier = bundle.classifier(num_threads)
        self.calibration = bundle.calibration
        if (self.classifier.frames, self.classifier.num_mels) != (self.win.frames,
                                                                  self.mel.num_mels):
            raise ConfigError("bundle window does not match its model's input")
        overrides = {k: v for k, v in (("uncertain_threshold", uncertain_threshold),
                                       ("smoothing_windows", smoothing_windows),
                                       ("max_concealed_gap_ms", max_concealed_gap_ms))
                     if v is not None}
        self.decision = d = replace(decision or bundle.decision, **overrides)
        """What decides labels and events: the bundle's unless overridden."""
        self.threshold = d.uncertain_threshold
        self.smoothing = d.smoothing_windows
        self.min_event_windows = d.min_event_windows
        self.fs = self.mel.sample_rate_hz
        self.max_concealed = int(d.max_concealed_gap_ms * self.fs / 1000)
        """Longest loss in samples that is concealed rather than closing the window."""
        self._concealed_spans: deque[tuple[int, int]] = deque()  # stream [start, end)
        self.front_end = MelFrontEnd(self.mel)
        self.recogniser = (Recogniser(self.fs, self.mel.uv_per_lsb,
                                      self.win.samples(self.mel), d.recogniser, d.rest_check)
                           if rest_check and d.recogniser is not None else None)
        """The discharge recogniser whose evidence is fused into each label (None: the
        bundle has none, or it is turned off — the model's labels alone)."""
        self.evidence_always = evidence_always
        self.rest = (RestCheck(self.fs, self.win.samples(self.mel), d.rest_check)
                     if rest_check and self.recogniser is None else None)
        """A bundle without a recogniser: withholds calls of spontaneous activity during
        a contraction (None: subsumed by the recogniser, or off)."""
        self._frames = np.zeros((0, self.mel.num_mels), dtype=np.int8)
        self._frames_dropped = 0  # frames of this segment already slid out of the buffer
        self._segment_start = 0  # stream index where the current segment began
        self._next_index = 0  # stream index of the next sample expected
        self._next_window = 0  # frame (in segment) where the next window starts
        self._recent: deque[np.ndarray] = deque(maxlen=self.smoothing)
        self._run: _OpenRun | None = None
        self._candidate: _OpenRun | None = None  # a new label not yet held long enough
        self._last_followed: tuple[str, np.ndarray, int] | None = None
        self.windows_done = 0
        self.samples_in = 0
        self.gaps = 0
        self.samples_lost = 0
        self.gaps_concealed = 0
        """Gaps zero-filled (also counted in ``gaps`` and ``samples_lost``)."""
        self.keep_frames = False
        """Keep each new feature frame for :meth:`take_frames` (a screen's spectrogram)."""
        self._kept: list[np.ndarray] = []

    # ---- input ------------------------------------------------------------------------
    def push(self, samples: np.ndarray, index: int | None = None
             ) -> tuple[list[WindowResult], list[Event]]:
        """Contiguous canonical int16 samples starting at stream ``index`` (default: right
        after the previous push). A jump in ``index`` is treated as a gap."""
        t_in = time.perf_counter()
        events: list[Event] = []
        if index is not None and index != self._next_index:
            lost = index - self._next_index
            if lost < 0:
                raise ConfigError(f"stream went backwards ({index} < {self._next_index})")
            if lost <= self.max_concealed:
                events.append(self._conceal(lost, "index jump"))
                samples = np.concatenate([np.zeros(lost, np.int16), samples])
                self.samples_in -= lost  # the zeros are pushed below, not received
            else:
                events += self.gap(lost, "index jump")
        self.samples_in += samples.size
        for guard in self._guards:
            guard.push(samples, self._next_index)
        self._next_index += samples.size
        new = self.front_end.push(samples)
        if new.size and self.keep_frames:
            self._kept.append(new)
        if new.size:
            self._frames = np.concatenate([self._frames, new]) if self._frames.size else new
        results: list[WindowResult] = []
        w = self.win
        while self._next_window + w.frames <= self._frames_dropped + self._frames.shape[0]:
            a = self._next_window - self._frames_dropped
            window = self._frames[a : a + w.frames]
            results.append(self._decide(window, t_in, events))
            self._next_window += w.hop_frames
        for guard in self._guards:
            guard.trim()
        drop = self._next_window - self._frames_dropped  # frames no window needs any more
        if drop > 0:
            self._frames = self._frames[drop:]
            self._frames_dropped += drop
        return results, events

    def take_frames(self) -> np.ndarray:
        """The int8 feature frames computed since the last call (``keep_frames``): exactly
        what the model's windows are cut from."""
        if not self._kept:
            return np.zeros((0, self.mel.num_mels), np.int8)
        out = np.concatenate(self._kept) if len(self._kept) > 1 else self._kept[0]
        self._kept.clear()
        return out

    def samples_needed(self) -> int:
        """Samples still to arrive before the next window can be decided. A live caller
        batches that many and pushes once: one call per decision, no added latency."""
        w, hop = self.win, self.mel.hop_length
        last = self._segment_start + (self._next_window + w.frames - 1) * hop \
            + self.mel.window_length
        return max(1, last - self._next_index)

    def lost(self, lost: int | None, reason: str = "gap"
             ) -> tuple[list[WindowResult], list[Event]]:
        """Samples were lost (``None``: unknown how many): concealed if short, else the
        segment is closed (the module's policy)."""
        if lost is not None and 0 < lost <= self.max_concealed:
            ev = self._conceal(lost, reason)
            results, events = self.push(np.zeros(lost, np.int16))
            self.samples_in -= lost  # stand-ins, not received
            return results, [ev, *events]
        return [], self.gap(lost, reason)

    def _conceal(self, lost: int, reason: str) -> Event:
        """Count and record a loss that zeros will stand in for (pushed by the caller)."""
        start = self._next_index
        self.gaps += 1
        self.gaps_concealed += 1
        self.samples_lost += lost
        self._concealed_spans.append((start, start + lost))
        return Event("gap", "gap", start, start + lost, start / self.fs,
                     (start + lost) / self.fs, 0.0,
                     detail=f"{reason}: {lost} samples, concealed (zero-filled)")

    def gap(self, lost: int | None, reason: str = "gap") -> list[Event]:
        """Samples were lost (``None``: unknown how many). Closes the segment."""
        events = self._close_run()
        start = self._next_index
        n = lost or 0
        self._next_index += n
        self.gaps += 1
        self.samples_lost += n
        events.append(Event("gap", "gap", start, self._next_index, start / self.fs,
                            self._next_index / self.fs, 0.0,
                            detail=f"{reason}: {'unknown' if lost is None else lost} samples"))
        self._new_segment()
        return events

    def flush(self) -> list[Event]:
        """End of stream: close the open label run."""
        return self._close_run()

    # ---- internals ------------------------------------------------------------------------
    def _new_segment(self) -> None:
        self.front_end.reset()
        self._frames = np.zeros((0, self.mel.num_mels), dtype=np.int8)
        self._frames_dropped = 0
        self._next_window = 0
        self._segment_start = self._next_index
        self._recent.clear()
        self._concealed_spans.clear()
        for guard in self._guards:
            guard.reset(self._next_index)

    def _decide(self, window: np.ndarray, t_in: float, events: list[Event]) -> WindowResult:
        scores = self.classifier.invoke_int8(window)
        probs = self.classifier.calibrated_probabilities(scores, self.calibration)
        top = int(np.argmax(probs))
        conf = float(probs[top])
        hop = self.mel.hop_length
        start = self._segment_start + self._next_window * hop
        end = start + self.win.samples(self.mel)
        unfamiliar = self.calibration.unfamiliar(window)
        evidence, criterion = None, ""
        rec = self.recogniser
        if rec is not None and not unfamiliar and (self.evidence_always
                                                   or self._evidence_counts(top, conf)):
            evidence = rec.look(end)
        if unfamiliar:
            contracting = False
        elif evidence is not None:
            label, criterion = evidence.fuse(self.labels[top], conf >= self.threshold,
                                             self.recogniser.config.override)
            contracting = criterion == "contradicts"
            if contracting:
                self.recogniser.withheld[self.labels[top]] += 1
        else:
            contracting = self.rest is not None and self.rest.withholds(self.labels[top], end)
        if evidence is None or unfamiliar:
            confident = conf >= self.threshold and not unfamiliar and not contracting
            label = self.labels[top] if confident else UNCERTAIN
        # an answer on a window unlike any trained, or on a contraction that it calls
        # spontaneous activity, is no evidence for or against a label; a discharge the
        # trains alone named counts for it, as the window's label does
        if unfamiliar or contracting:
            self._recent.append(np.full(probs.size, 1.0 / probs.size))
        elif criterion == "names":
            self._recent.append(np.eye(probs.size)[self.labels.index(label)])
        else:
            self._recent.append(probs)
        smooth = np.mean(self._recent, axis=0)
        s_top = int(np.argmax(smooth))
        smoothed = self.labels[s_top] if smooth[s_top] >= self.threshold else UNCERTAIN
        spans = self._concealed_spans
        while spans and spans[0][1] <= start:  # windows only move forward
            spans.popleft()
        concealed = sum(max(0, min(b, end) - max(a, start)) for a, b in spans)
        res = WindowResult(self.windows_done, start, end, start / self.fs, end / self.fs,
                           label, conf, probs, smoothed, smooth, time.perf_counter() - t_in,
                           concealed, unfamiliar, contracting, evidence, criterion)
        self.windows_done += 1
        self._follow(smoothed, smooth, start, end, events)
        return res

    def _follow(self, label: str, smooth: np.ndarray, start: int, end: int,
                events: list[Event]) -> None:
        """Events are runs of one smoothed label. A new label is a candidate until it has
        held for ``min_event_windows``; one that does not is taken into the current run.
        A change is placed mid-window: the window that first shows the new label holds
        it in roughly its second half."""
        run, cand = self._run, self._candidate
        zero = np.zeros_like(smooth)
        if run is None:
            self._run = run = _OpenRun(label, start, end, zero)
            target = run
        elif label == run.label:
            if cand is not None:
                run.absorb(cand)
                self._candidate = None
            target = run
        else:
            if cand is not None and cand.label != label:
                run.absorb(cand)
                cand = None
            if cand is None:
                self._candidate = cand = _OpenRun(label, start + (end - start) // 2, end, zero)
            target = cand
        target.add(smooth, end)
        if cand is not None and cand.windows >= self.min_event_windows:
            events += self._close_run(until=cand.start_sample)
            self._run, self._candidate = cand, None

    def _close_run(self, until: int | None = None) -> list[Event]:
        """The open run as an event: up to ``until`` (a promoted candidate takes over
        there), or to its end, a pending candidate taken in."""
        r = self._run
        self._run = None
        if r is None:
            return []
        if until is None and self._candidate is not None:
            r.absorb(self._candidate)
        if until is None:
            self._candidate = None
        end = r.end_sample if until is None else until
        mean = r.smooth_sum / r.windows
        self._last_followed = (r.label, mean, r.windows)
        conf = float(mean[self.labels.index(r.label)] if r.label in self.labels
                     else mean.max())
        line = (self.recogniser.event_line(r.label, r.start_sample, end)
                if self.recogniser is not None and r.label != UNCERTAIN else "")
        return [Event("label", r.label, r.start_sample, end, r.start_sample / self.fs,
                      end / self.fs, conf, r.windows, line)]

    def _evidence_counts(self, top: int, confidence: float) -> bool:
        """Whether the recogniser's evidence can change this window's label: a call of
        spontaneous activity (withheld over voluntary activity no train backs), or, with
        ``override``, a call the CNN is not confident of. Elsewhere the box need not look
        (a look costs 2–100 ms of a core: docs/performance.md)."""
        return self.labels[top] in PATHOLOGICAL or (
            self.recogniser.config.override and confidence < self.threshold)

    @property
    def _guards(self) -> tuple:
        """What keeps the stretch before each window: the recogniser or the rest check."""
        return tuple(g for g in (self.recogniser, self.rest) if g is not None)

    def caveat(self, since: int | None = None, until: int | None = None) -> dict | None:
        """Why calls were withheld between stream indices ``since`` and ``until``: the
        voluntary activity heard (None: none was)."""
        guard = self.recogniser or self.rest
        return guard.note(since=since, until=until) if guard is not None else None

    @property
    def next_index(self) -> int:
        """Stream index of the next sample expected (one past everything pushed or lost)."""
        return self._next_index

    def followed(self) -> tuple[str, np.ndarray, int] | None:
        """The stretch the events follow: (its label, the mean of its windows' smoothed
        probabilities so far, its windows) — what its event will record. Once the stream
        ended (or a gap closed it): the last event's. None before the first window."""
        r = self._run
        if r is not None and r.windows:
            return r.label, r.smooth_sum / r.windows, r.windows
        return self._last_followed

    @property
    def followed_since(self) -> int | None:
        """Stream index where the open stretch the events follow began (None: none open)."""
        return self._run.start_sample if self._run is not None else None

    def pending(self) -> tuple[str, int] | None:
        """A new label not yet held for ``min_event_windows``: (label, windows so far)."""
        c = self._candidate
        return (c.label, c.windows) if c is not None else None

    @property
    def current_label(self) -> str | None:
        """The label the events follow: the open run's, or once the stream has ended (or a
        gap closed it), the last event's. What a screen shows as the finding."""
        followed = self.followed()
        return followed[0] if followed is not None else None


#: How a window's criterion is stored in a bundle's golden labels (index).
GOLDEN_CRITERIA = ("", "agrees", "silent", "contradicts", "names")


def decide_golden(bundle: Bundle, samples: np.ndarray) -> dict[str, np.ndarray]:
    """What the bundle's own decision path decides on each window of int16 ``samples``:
    the golden labels a bundle carries (``decision_*`` arrays of golden.npz)."""
    pipe = Pipeline(bundle, self_test=False, evidence_always=True)
    windows = pipe.push(samples, 0)[0]
    index = {lab: i for i, lab in enumerate(bundle.labels)}
    return {"decision_samples": samples,
            "decision_labels": np.array([index.get(w.label, -1) for w in windows], np.int8),
            "decision_criteria": np.array([GOLDEN_CRITERIA.index(w.criterion)
                                           for w in windows], np.int8),
            "decision_backs": np.array([sum(1 << index[b] for b in w.evidence.backed)
                                        if w.evidence is not None else 0 for w in windows],
                                       np.int64)}


def check_decision_golden(bundle: Bundle) -> dict | None:
    """The bundle's decision path on its golden signal must decide every window as when it
    was packed (labels, criteria, the classes the evidence backs), on this box: raises
    IntegrityError naming the first window that differs. None for a bundle without golden
    labels (packed before the recogniser: its rest check has its own golden tests).
    Checked once per bundle object."""
    if bundle.decision_checked is not None:
        return bundle.decision_checked or None
    g = bundle.golden()
    if "decision_samples" not in g:
        if bundle.decision.recogniser is not None:
            raise IntegrityError(f"{bundle.source}: self-test failed: a recogniser in its "
                                 f"decisions but no golden labels for it")
        bundle.decision_checked = {}
        return None
    got = decide_golden(bundle, g["decision_samples"])
    for key in ("decision_labels", "decision_criteria", "decision_backs"):
        want, have = g[key], got[key]
        if want.shape != have.shape or not np.array_equal(want, have):
            i = int(np.flatnonzero(want != have)[0]) if want.shape == have.shape else "count"
            raise IntegrityError(f"{bundle.source}: self-test failed: the decision path "
                                 f"differs from its golden labels ({key}, window {i})")
    bundle.decision_checked = {"windows": int(got["decision_labels"].size)}
    return bundle.decision_checked


@dataclass
class WindowTally:
    """What a file's or a session's finding needs of its windows, in memory that does not
    grow with their number: each confident label's windows and summed confidence, and the
    windows withheld because the muscle was contracting."""

    windows: Counter[str] = field(default_factory=Counter)
    confidence: dict[str, float] = field(default_factory=dict)
    withheld: int = 0

    def add(self, w: WindowResult) -> None:
        """One decided window (anything with ``label``, ``confidence``, ``contracting``)."""
        self.withheld += bool(getattr(w, "contracting", False))
        if w.label != UNCERTAIN:
            self.windows[w.label] += 1
            self.confidence[w.label] = self.confidence.get(w.label, 0.0) + w.confidence

    def finding(self, min_share: float = 0.2) -> dict:
        """A dominant finding: the most frequent pathological label if it holds at least
        ``min_share`` of the confident windows (and 2 windows), else the most frequent
        label. Abnormal activity in a fifth of an examination is the finding, even when
        silence fills the rest. Windows withheld because the muscle was contracting are
        'uncertain', yet they are heard, as silence is: they count in that fifth's whole,
        and when they outnumber the most frequent label the finding is 'uncertain' (not
        at rest), not what a few other windows said."""
        counts, total = self.windows, sum(self.windows.values())
        if not total:
            return {"label": UNCERTAIN, "confidence": 0.0, "pathological": False}
        patho = {lab: n for lab, n in counts.items() if lab in PATHOLOGICAL}
        if patho:
            lab = max(patho, key=patho.get)
            if patho[lab] >= max(2, min_share * (total + self.withheld)):
                return self._of(lab)
        top = max(counts, key=counts.get)
        if self.withheld > counts[top]:
            return {"label": UNCERTAIN, "confidence": 0.0, "pathological": False}
        return self._of(top)

    def _of(self, label: str) -> dict:
        return {"label": label, "confidence": self.confidence[label] / self.windows[label],
                "pathological": label in PATHOLOGICAL}


def summarize(windows: Iterable[WindowResult], min_share: float = 0.2) -> dict:
    """A file's dominant finding (:meth:`WindowTally.finding`) from its windows."""
    tally = WindowTally()
    for w in windows:
        tally.add(w)
    return tally.finding(min_share)
