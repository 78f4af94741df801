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

from dataclasses import dataclass

import numpy as np

from convert.augment import AugmentConfig, Augmenter
from convert.corpus import CorpusItem
from edge.features import MelConfig, MelFrontEnd, float_to_int16
from edge.labels import LABELS, PATHOLOGICAL
from edge.windows import WindowConfig

TIERS: tuple[frozenset[str], ...] = (
    frozenset(PATHOLOGICAL),
    frozenset({"insertional", "artifact"}),
    frozenset({"end_plate", "motor_unit"}),
    frozenset({"silence"}),
)
BACKGROUND_LABELS = ("silence", "end_plate", "motor_unit")


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
        """What the float model sees: q / 64 (see edge.model.FEATURE_INPUT_SCALE)."""
        return (self.x.astype(np.float32) / 64.0)[..., None]

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


def build_windows(items: list[CorpusItem], mel: MelConfig, win: WindowConfig, *,
                  augment_seed: int | None = None, aug: AugmentConfig | None = None,
                  backgrounds: list[np.ndarray] | None = None) -> WindowSet:
    """All windows of ``items``; with ``augment_seed``, each recording is augmented first
    (seeded by the seed and the recording) and its windows start at a random phase."""
    fe = MelFrontEnd(mel)
    xs, ys, gs = [], [], []
    for item in items:
        rec = item.load().resampled(mel.sample_rate_hz)
        uv = rec.samples_uv
        first = 0
        scale = 1.0
        if augment_seed is not None:
            a = Augmenter(hash((augment_seed, item.seed)) & 0xFFFFFFFF, mel.sample_rate_hz, aug)
            bg = None
            if backgrounds:
                bg = backgrounds[int(a.rng.integers(len(backgrounds)))]
            uv = a(uv, background=bg, shift=False)
            scale = a.last_time_scale
            first = int(a.rng.integers(win.hop_frames))
        pcm = float_to_int16(uv, lsb=mel.uv_per_lsb)
        x, y = windows_of(pcm, item.spans, mel, win, fe, first, scale)
        xs.append(x)
        ys.append(y)
        gs.append(np.full(y.size, item.seed))
    return WindowSet(np.concatenate(xs), np.concatenate(ys), np.concatenate(gs))


def background_signals(items: list[CorpusItem], limit: int = 24) -> list[np.ndarray]:
    """µV signals of background-class recordings, for mixing under others."""
    out = []
    for item in items:
        if item.label in BACKGROUND_LABELS and len(out) < limit:
            out.append(item.load().samples_uv)
    return out


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
