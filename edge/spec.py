"""The frozen spec: everything that decides a window's label, in typed objects that travel
with the model.

- :class:`MelConfig` and :class:`WindowConfig` (together :class:`FrontEndSpec`): the
  features' bits and the classifier's view of them. A model is only right on the features
  it was trained on, so the front end is chosen once, at training (``nemg train
  --front-end``, default :data:`DEFAULT_SPEC`), written beside the checkpoint
  (``training.json``), packed into the bundle's manifest, and read back from there by
  everything after: quantisation, evaluation, the model card, the golden vectors, and the
  box's front end and windows.
- :class:`DecisionConfig` (with :class:`RestCheckConfig`): everything between the model's
  probabilities and a label or an event. Chosen when a bundle is packed (default
  :data:`DEFAULT_DECISION`).

Nothing downstream constructs a default of its own: each default is written once, as the
field's default here. In the manifest the front end is ``mel_config`` and ``window`` (the
exact fields) plus ``front_end`` (the same described the way TFLite Micro's front end
states its config, times in ms, for people and other runtimes; its rate is
``mel_config``'s), the decisions ``decision``.

This module is the bottom of the DSP layer: it imports nothing of ``edge`` but errors.
Reading a bundle's spec is :func:`edge.bundle.load_spec`.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, InputError


def _known_fields(cls: type, d: Any) -> dict[str, Any]:
    """``d`` as keyword arguments of dataclass ``cls``: an object holding only its fields
    (a signed manifest can still be malformed; it is refused, never half-read)."""
    if not isinstance(d, dict):
        raise ConfigError(f"{cls.__name__}: expected an object, got {type(d).__name__}")
    unknown = set(d) - {f.name for f in fields(cls)}
    if unknown:
        raise ConfigError(f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}")
    return d


class _Fields:
    """A frozen config written to and read from a manifest as an object of its fields."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, d: dict) -> Any:
        return cls(**_known_fields(cls, d))


def _number(name: str, v: Any, *, low: float = 0.0, positive: bool = True) -> None:
    """Refuse anything but a finite real number above ``low`` (at least ``low`` if not
    ``positive``)."""
    ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v < low or (positive and v == low):
        raise ConfigError(f"{name} must be a number {'>' if positive else '>='} {low:g} "
                          f"(got {v!r})")


def _count(name: str, v: Any) -> None:
    """Refuse anything but a whole number >= 1."""
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ConfigError(f"{name} must be a whole number >= 1 (got {v!r})")


def _rate_range(config: Any, section: str, name: str) -> None:
    """Refuse a field that is not a rising pair of numbers; keep it as a tuple."""
    rates = getattr(config, name)
    if not isinstance(rates, list | tuple) or len(rates) != 2:
        raise ConfigError(f"{section}.{name} must be [low, high] (got {rates!r})")
    for r in rates:
        _number(f"{section}.{name}", r)
    if rates[0] >= rates[1]:
        raise ConfigError(f"{section}.{name} must rise (got {list(rates)})")
    object.__setattr__(config, name, tuple(rates))  # JSON gives a list


# ---- front end -------------------------------------------------------------------------------
@dataclass(frozen=True)
class MelConfig(_Fields):
    """Everything that determines the features' bits. Part of every model bundle."""

    sample_rate_hz: int = 20_000
    """Samples per second of the int16 input. 20 kHz keeps the 10 kHz anti-alias band of
    needle-EMG amplifiers; fibrillation spikes (1–5 ms) carry energy to several kHz."""

    window_length: int = 512
    """Samples per analysis window (25.6 ms at 20 kHz): holds a whole MUAP (≤ 15 ms) and
    several periods of a 150 Hz complex repetitive or neuromyotonic discharge."""

    fft_length: int = 512
    """FFT size, a power of two ≥ window_length (39 Hz bins at 20 kHz)."""

    hop_length: int = 200
    """Samples between frames (10 ms at 20 kHz): 100 frames/s resolves discharges up to
    ~50 Hz as separate frames and faster trains as spectral harmonics."""

    num_mels: int = 40
    """Mel channels (HTK mel scale, triangular filters)."""

    fmin_hz: float = 20.0
    """Lower edge of the first Mel filter (below: baseline wander, DC)."""

    fmax_hz: float = 8_000.0
    """Upper edge of the last Mel filter (above: amplifier roll-off, little EMG energy)."""

    uv_per_lsb: float = 0.5
    """µV per LSB of the int16 input: the canonical scale every source is brought to
    (±16.4 mV full scale: MUAPs up to 3 mV and most artifacts fit; 3 µV noise is 6 LSB).
    It fixes what a dB means; the integer path itself does not use it."""

    db_min: float = -10.0
    """dB (re 1 LSB² per FFT bin) that maps to int8 -128; the int16 quantisation floor."""

    db_step: float = 0.5
    """dB per int8 step: int8 covers db_min .. db_min + 255·db_step (−10 .. 117.5 dB)."""

    def __post_init__(self) -> None:
        n = self.fft_length
        if n < 16 or n & (n - 1):
            raise ConfigError(f"fft_length must be a power of two >= 16 (got {n})")
        if not 0 < self.window_length <= n:
            raise ConfigError(f"window_length must be in 1..fft_length (got {self.window_length})")
        if not 0 < self.hop_length <= self.window_length:
            raise ConfigError(f"hop_length must be in 1..window_length (got {self.hop_length})")
        if self.sample_rate_hz <= 0 or self.num_mels < 1:
            raise ConfigError("sample_rate_hz and num_mels must be positive")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate_hz / 2:
            raise ConfigError(
                f"need 0 <= fmin_hz < fmax_hz <= Nyquist ({self.sample_rate_hz / 2:g} Hz); "
                f"got {self.fmin_hz:g}..{self.fmax_hz:g}"
            )
        if self.uv_per_lsb <= 0:
            raise ConfigError(f"uv_per_lsb must be positive (got {self.uv_per_lsb})")
        if self.db_step <= 0:
            raise ConfigError(f"db_step must be positive (got {self.db_step})")

    @property
    def num_bins(self) -> int:
        """FFT bins 0..N/2."""
        return self.fft_length // 2 + 1

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate_hz / self.hop_length

    @property
    def db_max(self) -> float:
        """dB that maps to int8 +127."""
        return self.db_min + 255 * self.db_step

    def num_frames(self, num_samples: int) -> int:
        """Frames a one-shot run over ``num_samples`` samples yields (no padding)."""
        if num_samples < self.window_length:
            return 0
        return (num_samples - self.window_length) // self.hop_length + 1

    def int8_to_db(self, q: np.ndarray) -> np.ndarray:
        """Dequantise features to dB (for plots, reports and the float model's input)."""
        return self.db_min + (np.asarray(q, dtype=np.float64) + 128.0) * self.db_step


@dataclass(frozen=True)
class WindowConfig(_Fields):
    """The model's view of the feature stream. Part of every bundle."""

    frames: int = 198
    """Feature frames per window: 198 × 10 ms + 25.6 ms = 2.0 s of signal. Long enough to
    hold one discharge of a 0.5 Hz fibrillation train and several periods of anything
    faster; short enough that a label follows the needle within a few seconds."""

    hop_frames: int = 50
    """Frames between window starts (0.5 s): a decision twice a second."""

    def __post_init__(self) -> None:
        if self.frames < 8 or not 0 < self.hop_frames <= self.frames:
            raise ConfigError(f"bad window: {self.frames} frames, hop {self.hop_frames}")

    def samples(self, mel: MelConfig) -> int:
        """Signal samples one window spans."""
        return (self.frames - 1) * mel.hop_length + mel.window_length

    def seconds(self, mel: MelConfig) -> float:
        return self.samples(mel) / mel.sample_rate_hz

    def hop_seconds(self, mel: MelConfig) -> float:
        return self.hop_frames * mel.hop_length / mel.sample_rate_hz

    def count(self, n_frames: int) -> int:
        """Windows in ``n_frames`` frames."""
        return 0 if n_frames < self.frames else (n_frames - self.frames) // self.hop_frames + 1


@dataclass(frozen=True)
class FrontEndSpec:
    """The features' bits and the classifier's view of them."""

    mel: MelConfig = field(default_factory=MelConfig)
    """Fixed-point log-Mel front end (rate, analysis window and hop, Mel bands, int8 map)."""
    window: WindowConfig = field(default_factory=WindowConfig)
    """Frames per classifier window and frames between decisions."""

    def describe(self) -> dict[str, Any]:
        """The spec in TFLite Micro's terms (ms, Hz, dB): derived, for reading only."""
        m, w = self.mel, self.window
        ms = 1000.0 / m.sample_rate_hz
        return {
            "sample_rate_hz": m.sample_rate_hz,
            "window_size_ms": round(m.window_length * ms, 4),
            "window_step_ms": round(m.hop_length * ms, 4),
            "fft_length": m.fft_length,
            "num_channels": m.num_mels,
            "lower_band_limit_hz": m.fmin_hz,
            "upper_band_limit_hz": m.fmax_hz,
            "uv_per_lsb": m.uv_per_lsb,
            "int8_db_range": [m.db_min, m.db_max],
            "classifier_window_s": round(w.seconds(m), 4),
            "decision_every_s": round(w.hop_seconds(m), 4),
        }

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's (and training.json's) sections. The rate is stated once, in
        ``mel_config``: the description beside it leaves it out."""
        described = {k: v for k, v in self.describe().items() if k != "sample_rate_hz"}
        return {"mel_config": self.mel.to_dict(), "window": self.window.to_dict(),
                "front_end": described}

    @classmethod
    def from_manifest(cls, m: dict[str, Any]) -> FrontEndSpec:
        """From a bundle manifest or a checkpoint's ``training.json``. Older ones also
        state the rate at the top and in ``front_end``: those copies must agree."""
        try:
            spec = cls(MelConfig.from_dict(m["mel_config"]), WindowConfig.from_dict(m["window"]))
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"no usable front-end spec ({exc})") from None
        described = m.get("front_end")
        copies = [m.get("sample_rate_hz"),
                  described.get("sample_rate_hz") if isinstance(described, dict) else None]
        if any(c is not None and c != spec.mel.sample_rate_hz for c in copies):
            raise ConfigError(f"the manifest states more than one sample rate "
                              f"({spec.mel.sample_rate_hz} in mel_config, also {copies})")
        return spec

    @classmethod
    def load(cls, path: Path) -> FrontEndSpec:
        """The spec of a checkpoint (.h5 or its folder: its training.json) or a JSON file
        holding ``mel_config`` and ``window``. A bundle's: :func:`edge.bundle.load_spec`."""
        path = Path(path)
        if path.suffix == ".nemg":
            raise InputError(f"{path}: a bundle's front end is read by edge.bundle.load_spec")
        if path.suffix == ".h5" or path.is_dir():
            path = (path if path.is_dir() else path.parent) / "training.json"
        if not path.is_file():
            raise InputError(f"{path}: no such file (a front-end spec comes from a bundle, a "
                             "checkpoint's training.json or a JSON spec)")
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: not a readable JSON spec ({exc})") from None
        try:
            return cls.from_manifest(d)
        except ConfigError as exc:
            raise InputError(f"{path}: {exc}") from None


DEFAULT_SPEC = FrontEndSpec()
"""The spec a new model is trained with unless ``--front-end`` says otherwise: the one
place a default front end exists."""


# ---- decisions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class RestCheckConfig(_Fields):
    """The rest check (:mod:`edge.rest_check`): when a stretch is a voluntary contraction,
    so that calls of spontaneous activity in it are withheld. Chosen on simulation alone."""

    stretch_s: float = 3.0
    """Seconds decomposed per check: a unit at 5 Hz fires 15 times (the seeding needs 8)."""
    min_stretch_s: float = 2.0
    """Shortest stretch checked by default (the first windows of a stream or after a gap);
    the pipeline checks down to one window's length (``RestCheck.min_stretch``)."""
    recheck_s: float = 1.0
    """A check stands for the windows ending within this after it (bounded CPU: two
    windows per check at a 0.5 s hop)."""
    voluntary_rate_hz: tuple[float, float] = (5, 30)
    """Firing rates of voluntarily active units, from recruitment onset (about 5 Hz,
    Petajan 1991) to a moderate contraction."""
    lock_window_ms: float = 100.0
    """Units whose discharges keep one offset (± ``DecompositionConfig.lock_ms``) within
    this are one generator: the fibres of a complex repetitive discharge fire time-locked
    in a loop (complexes up to 100 ms); independent motor units do not."""
    min_voluntary_units: int = 5
    """Independent units at voluntary rates that make a stretch a contraction. Chosen on
    simulation alone: the smallest count at which at most 1 % of 3 s stretches of abnormal
    spontaneous activity are withheld — 672 stretches (each checked class, 12 recordings
    of 12 s from each of the two simulators, template and bio, seed 77): 5 were
    (0.7 %; at 4, 2.1 %). On a held-out draw (seed 78) 2 of 672 (0.3 %), and 36 of 96
    stretches of simulated voluntary recordings were recognised (those holding fewer units
    give nothing to go on). Not tuned on any real recording."""
    max_check_segments: int = 1500
    """Spikes the shapes are learnt from per check (bounds a check's memory and time on
    the box: the clustering is O(n²); the matching still sees every spike)."""

    def __post_init__(self) -> None:
        for name in ("stretch_s", "min_stretch_s", "recheck_s", "lock_window_ms"):
            _number(f"rest_check.{name}", getattr(self, name))
        if self.min_stretch_s > self.stretch_s:
            raise ConfigError(f"rest_check.min_stretch_s {self.min_stretch_s} exceeds "
                              f"stretch_s {self.stretch_s}")
        _rate_range(self, "rest_check", "voluntary_rate_hz")
        _count("rest_check.min_voluntary_units", self.min_voluntary_units)
        _count("rest_check.max_check_segments", self.max_check_segments)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "voluntary_rate_hz": list(self.voluntary_rate_hz)}


LOOK_EVERY_S_BEFORE_GRID = 0.0
"""The look step of a recogniser packed before :attr:`RecogniserConfig.look_every_s`
(1.6.0): a look at every window's end."""


@dataclass(frozen=True)
class RecogniserConfig(_Fields):
    """The discharge recogniser (:mod:`edge.recogniser`): how a stretch is decomposed into
    trains, the firing and shape criteria each class's trains meet (docs/evidence.md gives
    their sources), and how its evidence enters the label. Chosen on the two simulators
    alone (docs/evidence.md says how); never on a real recording."""

    stretch_s: float = RestCheckConfig.stretch_s
    """Seconds decomposed per look, ending with the window looked at (the rest check's,
    which it subsumes)."""
    detect_sigma: float = 6.0
    """Spikes: peaks of the sharpened signal above this many noise deviations."""
    min_firings: int = 4
    """A train needs this many discharges in the stretch (three intervals)."""
    refractory_ms: float = 3.0
    """Shortest interval one generator fires at: a neuromyotonic unit at 300 Hz."""
    max_segments: int = 1000
    """Spikes the shapes are learnt from per look (bounds its time and memory; the
    matching still sees every spike)."""
    slow_rate_hz: tuple[float, float] = (0.5, 16.0)
    """Fibrillations and positive sharp waves fire at 0.5–15 Hz."""
    regular_cv: float = 0.08
    """At most this spread of intervals (quartile CV) is a denervated fibre's metronome
    regularity; voluntary units fire with 10–30 %."""
    brief_ms: float = 6.0
    """A fibrillation's potential lasts 1–5 ms; a positive sharp wave's 10–30 ms."""
    locked_cv: float = 0.02
    """A complex repetitive discharge repeats time-locked: intervals within 2 %."""
    locked_min_hz: float = 4.0
    """... at 5–150 Hz ..."""
    complex_min_phases: int = 4
    """... and is a complex of several spikes: this many phases, or other trains of the
    stretch firing time-locked with it (its loop's other fibres). A single fibre firing
    as regularly is a fibrillation."""
    fast_rate_hz: float = 20.0
    """Myotonic discharges fire at 20–150 Hz ..."""
    smooth_jump: float = 0.25
    """... as one fibre or unit does: the median change between successive intervals at
    most this share of the median interval (its rate drifts; several units merged into
    one train jump at random). Asked of every fast train (myotonic, neuromyotonic,
    myokymic)."""
    wax_wane_ratio: float = 1.3
    """... waxing and waning in rate or amplitude by at least this factor."""
    very_fast_rate_hz: float = 120.0
    """Neuromyotonic discharges fire at 150–300 Hz."""
    burst_gap_ratio: float = 4.0
    """Myokymic bursts: an interval this many times the train's median separates two."""
    voluntary_rate_hz: tuple[float, float] = RestCheckConfig.voluntary_rate_hz
    """Voluntary units fire semi-regularly from recruitment onset (about 5 Hz) to a
    moderate contraction (the rest check's range) ..."""
    voluntary_max_cv: float = 0.5
    """... with an interval spread above ``regular_cv`` and at most this."""
    min_voluntary_trains: int = 2
    """Independent voluntary trains that make a stretch voluntary activity: a call of
    spontaneous activity that no train of the stretch backs is then withheld."""
    complex_span_ms: float = 100.0
    """Voluntary trains keeping one offset within this are one generator: the fibres of
    a complex repetitive discharge's loop (complexes up to 100 ms), not several units."""
    override: bool = True
    """Where the CNN is not confident and the recogniser's trains name one discharge
    alone, that discharge is the label (chosen on both simulators: docs/evidence.md)."""
    look_every_s: float = 1.0
    """Looks fall on a grid of this step, from the end of a segment's first window; a
    window takes the last look at or before its end (its stretch then ends up to one
    step before the window does). Two windows a look at a 0.5 s hop: a look costs 2–100
    ms of a core (docs/performance.md). 0: a look at every window's end, as bundles
    packed before 1.6.1 decide (:data:`LOOK_EVERY_S_BEFORE_GRID`)."""

    def __post_init__(self) -> None:
        for name in ("stretch_s", "detect_sigma", "refractory_ms",
                     "regular_cv", "brief_ms", "locked_cv", "locked_min_hz", "fast_rate_hz",
                     "wax_wane_ratio", "very_fast_rate_hz", "burst_gap_ratio",
                     "voluntary_max_cv", "complex_span_ms", "smooth_jump"):
            _number(f"recogniser.{name}", getattr(self, name))
        _number("recogniser.look_every_s", self.look_every_s, positive=False)
        for name in ("slow_rate_hz", "voluntary_rate_hz"):
            _rate_range(self, "recogniser", name)
        for name in ("min_firings", "max_segments", "min_voluntary_trains",
                     "complex_min_phases"):
            _count(f"recogniser.{name}", getattr(self, name))
        if not isinstance(self.override, bool):
            raise ConfigError("recogniser.override must be true or false")

    @classmethod
    def from_dict(cls, d: dict) -> RecogniserConfig:
        """A manifest's recogniser; one packed before the look grid looks at every
        window, as it did (a code update never changes an unchanged bundle's labels)."""
        return cls(**{"look_every_s": LOOK_EVERY_S_BEFORE_GRID, **_known_fields(cls, d)})

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "slow_rate_hz": list(self.slow_rate_hz),
                "voluntary_rate_hz": list(self.voluntary_rate_hz)}


LEGACY_DECISION_KEYS = ("uncertain_threshold", "smoothing_windows", "min_event_windows")
"""Top-level manifest keys of bundles packed before the ``decision`` section."""


@dataclass(frozen=True)
class DecisionConfig(_Fields):
    """Everything between the model's probabilities and a label or event: travels in the
    bundle (manifest ``decision``), so a code update never changes labels under an
    unchanged bundle. A bundle written before this section existed reads its top-level
    :data:`LEGACY_DECISION_KEYS` and these defaults for the rest, which are the values it
    was built and measured with."""

    uncertain_threshold: float = 0.5
    """Below this top probability a window is called ``uncertain``."""
    smoothing_windows: int = 3
    """Windows of posterior smoothing behind the label events follow."""
    min_event_windows: int = 3
    """Windows a new smoothed label must hold before it becomes an event (1.5 s at a 0.5 s
    hop): the few windows that straddle a change of activity are not findings of their
    own."""
    max_concealed_gap_ms: float = 25.0
    """Longest loss zero-filled (concealed) rather than closing the window: one or two lost
    10 ms frames (:mod:`edge.pipeline`)."""
    rest_check: RestCheckConfig = field(default_factory=RestCheckConfig)
    """When a call of spontaneous activity is withheld as made during a contraction (a
    bundle without a ``recogniser``; the recogniser subsumes it)."""
    recogniser: RecogniserConfig | None = field(default_factory=RecogniserConfig)
    """The discharge recogniser and its fusion with the CNN (:mod:`edge.recogniser`).
    None for a bundle packed before it existed: its labels stay what they were."""

    def __post_init__(self) -> None:
        t = self.uncertain_threshold
        _number("uncertain_threshold", t)
        if t >= 1:
            raise ConfigError(f"uncertain_threshold {t} must be in (0, 1)")
        _count("smoothing_windows", self.smoothing_windows)
        _count("min_event_windows", self.min_event_windows)
        _number("max_concealed_gap_ms", self.max_concealed_gap_ms, positive=False)
        if not isinstance(self.rest_check, RestCheckConfig):
            raise ConfigError("rest_check must be a RestCheckConfig")
        if self.recogniser is not None and not isinstance(self.recogniser, RecogniserConfig):
            raise ConfigError("recogniser must be a RecogniserConfig")

    def to_dict(self) -> dict[str, Any]:
        d = {**asdict(self), "rest_check": self.rest_check.to_dict()}
        if self.recogniser is None:
            del d["recogniser"]
        else:
            d["recogniser"] = self.recogniser.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> DecisionConfig:
        kw = dict(_known_fields(cls, d))
        if "rest_check" in kw:
            kw["rest_check"] = RestCheckConfig.from_dict(kw["rest_check"])
        if "recogniser" in kw and not isinstance(kw["recogniser"], dict):
            raise ConfigError("decision.recogniser must be an object")
        kw["recogniser"] = (RecogniserConfig.from_dict(kw["recogniser"])
                            if "recogniser" in kw else None)  # older bundles: none
        return cls(**kw)

    def to_manifest(self) -> dict[str, Any]:
        """The manifest's section."""
        return {"decision": self.to_dict()}

    @classmethod
    def from_manifest(cls, m: dict[str, Any]) -> DecisionConfig:
        """From a bundle manifest: its ``decision``, or for an older bundle its top-level
        keys (and the defaults for what it does not state)."""
        if "decision" in m:
            return cls.from_dict(m["decision"])
        return cls(**{k: m[k] for k in LEGACY_DECISION_KEYS if k in m}, recogniser=None)


DEFAULT_DECISION = DecisionConfig()
"""The decisions a bundle is packed with unless told otherwise: the one place a default
decision exists."""
