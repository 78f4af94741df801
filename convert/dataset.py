"""Training windows: corpus recordings -> the box's int8 features -> labelled windows.

Features come from ``edge.features.MelFrontEnd``, the code the box runs: train what you
deploy. A window's label comes from the recording's spans by priority, so a discharge
keeps its label over the background it sits on (a fasciculation in a quiet window is a
fasciculation window; an end-plate background under fibrillations is a fibrillation
window):

    pathological  >  insertional, artifact  >  end_plate, motor_unit  >  silence

within the highest tier that overlaps the window by at least ``min_overlap_s`` (or by the
whole of a shorter span), the label with the most overlap wins.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from convert.augment import AugmentConfig, Augmenter
from convert.corpus import CorpusItem, synth_pcm
from convert.synth import quiet_spans_as
from edge.acquire.files import recording_at_rate
from edge.features import MelFrontEnd, float_to_int16
from edge.labels import LABELS, PATHOLOGICAL
from edge.spec import MelConfig, WindowConfig
from nemg_common.executor import Executor, executor

TIERS: tuple[frozenset[str], ...] = (
    frozenset(PATHOLOGICAL),
    frozenset({"insertional", "artifact"}),
    frozenset({"end_plate", "motor_unit"}),
    frozenset({"silence"}),
)
#: Backgrounds a discharge may sit on (mixed under pathological recordings).
MIXTURE_LABELS = ("end_plate", "motor_unit")


def window_label(spans, t0: float, t1: float, min_overlap_s: float = 0.2) -> str:
    overlap: dict[str, float] = {}
    whole: set[str] = set()
    for a, b, lab in spans:
        o = min(b, t1) - max(a, t0)
        if o > 0:
            overlap[lab] = overlap.get(lab, 0.0) + o
            if a >= t0 and b <= t1:
                whole.add(lab)
    for tier in TIERS:
        cands = {lab: o for lab, o in overlap.items()
                 if lab in tier and (o >= min_overlap_s or lab in whole)}
        if cands:
            return max(cands, key=cands.get)
    return max(overlap, key=overlap.get) if overlap else "silence"


@dataclass
class WindowSet:
    """Windows ready for training: x int8 [n, frames, mels], y class index, group id."""

    x: np.ndarray
    y: np.ndarray
    group: np.ndarray

    def __len__(self) -> int:
        return int(self.y.size)

    def float_input(self) -> np.ndarray:
        """What the float model sees (:func:`edge.classifier.features_as_float`)."""
        from edge.classifier import features_as_float

        return features_as_float(self.x)[..., None]

    @staticmethod
    def concat(sets: list[WindowSet]) -> WindowSet:
        return WindowSet(np.concatenate([s.x for s in sets]), np.concatenate([s.y for s in sets]),
                         np.concatenate([s.group for s in sets]))


def windows_of(pcm: np.ndarray, spans, mel: MelConfig, win: WindowConfig, fe: MelFrontEnd,
               first_frame: int = 0, time_scale: float = 1.0):
    """(int8 windows, label indices) of one recording's int16 signal."""
    feats = fe.process(pcm)[first_frame:]
    n = win.count(feats.shape[0])
    if n == 0:
        return np.zeros((0, win.frames, mel.num_mels), np.int8), np.zeros(0, np.int64)
    starts = np.arange(n) * win.hop_frames
    idx = starts[:, None] + np.arange(win.frames)
    xs = feats[idx]
    frame_s = mel.hop_length / mel.sample_rate_hz
    dur = win.seconds(mel)
    scaled = [(a * time_scale, b * time_scale, lab) for a, b, lab in spans]
    ys = np.array([LABELS.index(window_label(scaled, t, t + dur))
                   for t in (starts + first_frame) * frame_s])
    return xs, ys


def background_of(item: CorpusItem) -> str | None:
    """What a pathological recording's discharges sit on: 'none', 'end_plate' or
    'motor_unit' (from the corpus manifest, else its spans); None for a normal class."""
    if item.label not in PATHOLOGICAL:
        return None
    if item.mixture:
        return item.mixture
    found = [lab for _, _, lab in item.spans if lab in MIXTURE_LABELS]
    return found[0] if found else "none"


Background = tuple[str, np.ndarray]
"""(label, µV signal) of a background-class recording, for mixing under discharges."""


@dataclass(frozen=True)
class FreshRecording:
    """A training recording synthesised when its epoch needs it — a new patient, never
    written to disk, exactly as ``nemg data synth`` would have stored it (int16 at the
    corpus's µV per LSB). See ``TrainConfig.fresh_share``."""

    label: str
    rng_seed: tuple[int, ...]
    """``convert.corpus.recording_seed`` of an index the corpus does not hold."""
    duration_s: float
    uv_per_lsb: float
    mixture_share: float | None = None
    patient_overrides: tuple[tuple[str, object], ...] = ()
    seed: int = -1
    """Group key (negative: never a corpus recording's)."""

    def signal(self, fs: int) -> tuple[np.ndarray, list, str | None]:
        """(µV signal, label spans, mixture background or None)."""
        pcm, s = synth_pcm(self.label, list(self.rng_seed), fs, self.duration_s,
                           self.uv_per_lsb, dict(self.patient_overrides), self.mixture_share)
        return pcm * self.uv_per_lsb, s.spans, s.patient.mixture if s.patient else None


@dataclass(frozen=True)
class Condition:
    """A test condition applied to every recording before the front end (the robustness
    part of an evaluation report), seeded per recording so the windows do not depend on
    how the recordings are split between worker processes."""

    snr_db: float | None = None
    """White noise at this SNR relative to the recording's RMS (None: no noise): the
    discharges are what must stay recognisable."""
    gain_db: float = 0.0
    """Level change after the noise (a mis-set or unknown front-end gain)."""
    seed: int = 0

    def apply(self, uv: np.ndarray, recording_seed: int) -> np.ndarray:
        if self.snr_db is not None:
            rng = np.random.default_rng([self.seed, recording_seed & 0xFFFFFFFF])
            rms = float(np.sqrt(np.mean(uv**2)))
            uv = uv + rng.normal(0, rms / 10 ** (self.snr_db / 20), uv.size)
        return uv * 10 ** (self.gain_db / 20)


def _item_windows(item: CorpusItem | FreshRecording, mel: MelConfig, win: WindowConfig,
                  fe: MelFrontEnd, augment_seed: int | None, aug: AugmentConfig | None,
                  backgrounds: list[Background], condition: Condition | None = None):
    if isinstance(item, FreshRecording):
        uv, spans, mixture = item.signal(mel.sample_rate_hz)
        background = None if item.label not in PATHOLOGICAL else (mixture or "none")
    else:
        uv = recording_at_rate(item.load(), mel.sample_rate_hz, mel.uv_per_lsb).samples_uv
        spans, background = item.spans, background_of(item)
    if condition is not None:
        uv = condition.apply(uv, item.seed)
    first = 0
    scale = 1.0
    if augment_seed is not None:
        a = Augmenter(hash((augment_seed, item.seed)) & 0xFFFFFFFF, mel.sample_rate_hz, aug)
        bg = None
        if backgrounds:
            bg = backgrounds[int(a.rng.integers(len(backgrounds)))]
        mixable = background == "none"  # a discharge on nothing yet
        uv = a(uv, background=bg[1] if bg is not None and mixable else None, shift=False)
        if a.last_background:
            # The quiet stretches between discharges now show the background's class,
            # as in a synthesised mixture (convert.synth): the label follows the signal.
            spans = quiet_spans_as(spans, bg[0])
        scale = a.last_time_scale
        first = int(a.rng.integers(win.hop_frames))
    pcm = float_to_int16(uv, lsb=mel.uv_per_lsb)
    x, y = windows_of(pcm, spans, mel, win, fe, first, scale)
    return x, y, np.full(y.size, item.seed)


# Worker processes keep their background signals between calls (loaded once per set).
_WORKER_BACKGROUNDS: dict[tuple, list[Background]] = {}


def _worker_build(args, shared: tuple[list[CorpusItem], MelConfig]):
    items, mel, win, augment_seed, aug, condition = args
    bg_items, bg_mel = shared
    key = (tuple(str(i.path) for i in bg_items), repr(bg_mel))
    if key not in _WORKER_BACKGROUNDS:
        _WORKER_BACKGROUNDS.clear()
        _WORKER_BACKGROUNDS[key] = load_backgrounds(bg_items, bg_mel)
    fe = MelFrontEnd(mel)
    return [_item_windows(i, mel, win, fe, augment_seed, aug, _WORKER_BACKGROUNDS[key],
                          condition) for i in items]


class WindowBuilder:
    """Builds the windows of a list of recordings, optionally augmented, in ``workers``
    processes (or on the configured cluster: :func:`nemg_common.executor.executor`). The
    result does not depend on where: each recording's augmentation is seeded by (epoch
    seed, recording) alone. Use as a context manager (or ``close``)."""

    def __init__(self, mel: MelConfig, win: WindowConfig, *, aug: AugmentConfig | None = None,
                 background_items: list[CorpusItem] | None = None, workers: int = 1) -> None:
        self.mel, self.win, self.aug = mel, win, aug
        self.background_items = list(background_items or [])
        self.workers = max(1, workers)
        self._backgrounds: list[Background] | None = None
        self._executor: Executor | None = None
        self._shared = (self.background_items, mel)

    def _local_backgrounds(self) -> list[Background]:
        if self._backgrounds is None:
            self._backgrounds = load_backgrounds(self.background_items, self.mel)
        return self._backgrounds

    def build(self, items: list[CorpusItem], augment_seed: int | None = None,
              condition: Condition | None = None) -> WindowSet:
        """All windows of ``items``; with ``augment_seed``, each recording is augmented
        first and its windows start at a random phase; with ``condition``, each is
        degraded by it first (a test condition, not training variety)."""
        return self.submit(items, augment_seed, condition)()

    def submit(self, items: list[CorpusItem], augment_seed: int | None = None,
               condition: Condition | None = None) -> Callable[[], WindowSet]:
        """Start :meth:`build` in the worker processes and return at once; calling the
        result waits for the windows. The trainer prepares the next epoch's windows
        while the network trains on this one's. With one worker, nothing starts early."""
        if self._executor is None:
            self._executor = executor(self.workers)
        ex = self._executor
        if ex.where == "local" and (ex.workers == 1 or len(items) < 2 * ex.workers):
            def local() -> WindowSet:
                fe = MelFrontEnd(self.mel)
                bgs = self._local_backgrounds() if augment_seed is not None else []
                return self._concat([_item_windows(i, self.mel, self.win, fe, augment_seed,
                                                   self.aug, bgs, condition) for i in items])
            return local
        n = -(-len(items) // (4 * ex.workers))  # a few chunks per worker
        chunks = [items[k:k + n] for k in range(0, len(items), n)]
        pending = ex.submit(_worker_build, [(c, self.mel, self.win, augment_seed, self.aug,
                                             condition) for c in chunks], shared=self._shared)
        return lambda: self._concat([p for chunk in pending() for p in chunk])

    def _concat(self, parts) -> WindowSet:
        if not parts:
            return WindowSet(np.zeros((0, self.win.frames, self.mel.num_mels), np.int8),
                             np.zeros(0, np.int64), np.zeros(0, np.int64))
        return WindowSet(np.concatenate([p[0] for p in parts]),
                         np.concatenate([p[1] for p in parts]),
                         np.concatenate([p[2] for p in parts]))

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()  # a prefetched epoch nobody will train on is dropped
            self._executor = None

    def __enter__(self) -> WindowBuilder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def build_windows(items: list[CorpusItem], mel: MelConfig, win: WindowConfig, *,
                  augment_seed: int | None = None, aug: AugmentConfig | None = None,
                  background_items: list[CorpusItem] | None = None,
                  condition: Condition | None = None, workers: int = 1) -> WindowSet:
    """All windows of ``items`` (see :class:`WindowBuilder`)."""
    with WindowBuilder(mel, win, aug=aug, background_items=background_items,
                       workers=workers) as b:
        return b.build(items, augment_seed, condition)


def background_items(items: list[CorpusItem], limit: int | None = None) -> list[CorpusItem]:
    """Recordings to mix under discharges: end-plate noise and voluntary motor units in
    equal shares (what a needle picks up when the patient is not fully at rest), at most
    ``limit`` (default: every one — a few backgrounds reused all the time are learnt by
    heart instead of as a class)."""
    per_label = [[i for i in items if i.label == label] for label in MIXTURE_LABELS]
    k = min(len(g) for g in per_label)
    if limit is not None:
        k = min(k, limit // 2)
    return [i for g in per_label for i in g[:k]]


def load_backgrounds(items: list[CorpusItem], mel: MelConfig) -> list[Background]:
    # float32: every worker holds them all (192 × 4 s is 60 MB, not 120)
    return [(i.label, recording_at_rate(i.load(), mel.sample_rate_hz, mel.uv_per_lsb)
             .samples_uv.astype(np.float32)) for i in items]


def split_by_recording(items: list[CorpusItem], val_fraction: float, seed: int):
    """Train / validation split by recording ("patient"), stratified by class: no
    recording has windows on both sides."""
    rng = np.random.default_rng(seed)
    train, val = [], []
    for label in LABELS:
        group = [i for i in items if i.label == label]
        rng.shuffle(group)
        k = round(len(group) * val_fraction)
        k = min(max(k, 1), len(group) - 1) if len(group) >= 2 else 0
        val += group[:k]
        train += group[k:]
    return train, val
