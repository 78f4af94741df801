"""Recordings no threshold was chosen on: a held-out setting of the biophysical simulator,
and discharges over a background, from both simulators (issue 29).

**Held-out setting** (:data:`HELDOUT_SETTING`): ``convert/biosim.py`` with another needle
(monopolar only, a smaller exposed tip), another muscle (smaller, slower fibres in smaller
motor-unit territories) and another amplifier (a band outside both simulators' 2–20 Hz /
5–10 kHz, more noise and mains). Nothing in the project is tuned on it: it measures how a
choice made on synth and biosim carries to a lab that records differently.

**Over background** (:func:`background_corpus`): every pathological class over end-plate
noise or a single voluntary unit, alternately. Each file is labelled with its discharge
over its whole length: the benchmark asks whether the recording is flagged pathological.

Both corpora are written by :func:`convert.biosim.biosim_corpus`, in the corpus format every
workstation command reads (``wav/*.wav`` + ``labels.csv`` + ``manifest.json``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from convert import biosim, synth
from convert.biosim import BioRecording, Firing
from edge.errors import InputError
from edge.labels import LABELS, PATHOLOGICAL
from edge.spec import DEFAULT_SPEC

FS = DEFAULT_SPEC.mel.sample_rate_hz

#: The held-out setting: which needle biosim records with, and which entries of
#: ``biosim.PARAMS`` (section -> key -> value) it replaces. Every range lies inside human
#: physiology and clinical practice, but apart from what either simulator draws.
HELDOUT_SETTING: dict[str, Any] = {
    "needle": "monopolar",  # biosim: 70 % concentric; synth has no needle model
    "params": {
        "electrode": {
            "monopolar_share": 1.0,
            # Exposed tip ≈ 0.17 mm² (radius 0.23 mm), the small end of Teflon-coated
            # monopolar needles; biosim's is ≈ 0.28 mm² (radius 0.3 mm).
            "monopolar_tip_radius_mm": 0.23,
        },
        # Another muscle: a small (facial, intrinsic hand) or a child's muscle. Fibres
        # 30–50 µm across where biosim's limb fibres are 40–70 µm (normal diameters grow
        # with age and differ by muscle: Dubowitz & Sewry, Muscle Biopsy); conduction
        # slows with fibre diameter (Håkansson 1956), here 2.5–3.5 m/s, inside the
        # 1.5–6.5 m/s Stålberg (1966) measured in human muscle (biosim: 3–5 m/s).
        "fibre": {"radius_um": (15.0, 25.0), "cv_m_per_s": (2.5, 3.5)},
        # Smaller territories (3–7 mm across; biosim: 4–10 mm) whose smaller fibres pack
        # more densely (4–8 per mm²; biosim: 3–6).
        "motor_unit": {"territory_radius_mm": (1.5, 3.5),
                       "fibre_density_per_mm2": (4.0, 8.0)},
        # Another filter: a high-pass of 25–50 Hz (a mains-heavy room; clinical needle EMG
        # uses 2–20 Hz, AANEM) and a low-pass of 2.5–4 kHz (an older or a portable
        # amplifier; clinical 5–10 kHz); more amplifier noise and mains than biosim's
        # 1.5–6 µV and 0–15 µV.
        "amplifier": {"highpass_hz": (25.0, 50.0), "lowpass_hz": (2500.0, 4000.0),
                      "noise_uv_rms": (4.0, 10.0), "mains_uv": (5.0, 30.0)},
    },
}

HELDOUT_SEED_TAG = 29_071  # the held-out corpus's streams, apart from biosim's own
BACKGROUND_SEED_TAG = 29_072  # the background corpus's streams
BACKGROUNDS = ("end_plate", "motor_unit")
"""What a discharge sits on: end-plate noise or a single voluntary unit."""
SIMULATORS = ("synth", "biosim")
DISCHARGES = tuple(lab for lab in LABELS if lab in PATHOLOGICAL)
"""The pathological classes, in LABELS order."""

# biosim's background: a voluntary unit is the first unit of a threshold contraction
# (excitation 1: exactly one unit recruited, the smallest by the size principle), at
# 0.2–2 mm from the needle as biosim's spontaneous units are. It peaks at 0.2–1.1 mV, about
# 0.3 of biosim's voluntary MUAPs near the needle (median ≈ 2.5 mV), as synth scales its
# mixture unit by 0.3. It fires at an onset rate of 6–12 Hz (Milner-Brown et al. 1973).
_UNIT_DISTANCE_MM = (0.2, 2.0)
_UNIT_RATE_HZ = (6.0, 12.0)


@contextmanager
def biosim_params(overrides: dict[str, dict[str, Any]]) -> Iterator[None]:
    """Run a block with entries of ``biosim.PARAMS`` replaced (section -> key -> value).
    Each overridden section is swapped for a modified deep copy and the original object
    put back on exit, whatever happens in the block. Not thread-safe: PARAMS is module
    state that biosim reads at call time."""
    params = biosim.PARAMS
    for section, values in overrides.items():  # a typo must not pass silently
        unknown = set(values) - set(params.get(section, {}))
        if section not in params or unknown:
            raise KeyError(f"biosim.PARAMS has no {section!r} {sorted(unknown)}")
    saved = {section: params[section] for section in overrides}
    try:
        for section, values in overrides.items():
            params[section] = {**copy.deepcopy(saved[section]), **copy.deepcopy(values)}
        yield
    finally:
        params.update(saved)


def heldout_simulate(label: str, *, fs: int = FS, duration_s: float = 4.0,
                     rng: np.random.Generator) -> BioRecording:
    """One biosim recording of ``label`` in the held-out setting (:data:`HELDOUT_SETTING`);
    deterministic for a given ``rng`` state; ``biosim.PARAMS`` is left as it was."""
    with biosim_params(HELDOUT_SETTING["params"]):
        r = biosim.simulate(label, fs=fs, duration_s=duration_s, rng=rng,
                            needle=HELDOUT_SETTING["needle"])
    r.info["setting"] = "heldout"
    return r


def _own_stream(tag: int, rng: np.random.Generator, *extra: int) -> np.random.Generator:
    """A stream of its own seeded from ``rng``: biosim_corpus seeds every recording as biosim
    does, and the same stream under other parameters would repeat biosim's draws."""
    return np.random.default_rng([tag, *extra, *rng.integers(0, 2**32, 2).tolist()])


def _tag_manifest(out: Path, manifest: dict[str, Any], **fields: Any) -> dict[str, Any]:
    manifest = {**fields, **{k: v for k, v in manifest.items() if k != "kind"}}
    (Path(out) / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def heldout_corpus(out, per_class: int, seed: int, *, duration_s: float = 4.0,
                   labels: tuple[str, ...] = LABELS,
                   progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """A corpus of the held-out setting (``biosim_corpus``'s format; manifest ``"setting":
    "heldout"`` with the setting itself); returns the manifest. Recording ``i`` of a class
    depends on (seed, class, i) alone, and differs from biosim's recording of the same."""
    if per_class < 1:
        raise InputError("--per-class must be at least 1")

    def simulate(label: str, *, fs: int, duration_s: float, rng: np.random.Generator):
        return heldout_simulate(label, fs=fs, duration_s=duration_s,
                                rng=_own_stream(HELDOUT_SEED_TAG, rng))

    m = biosim.biosim_corpus(out, per_class, seed, duration_s=duration_s, labels=labels,
                             progress=progress, simulate=simulate)
    return _tag_manifest(out, m, kind="nemg-heldout-corpus", setting="heldout",
                         simulator="biosim", heldout_setting=HELDOUT_SETTING)


# ---- discharges over a background -------------------------------------------------------
def _one_of(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{what} must be one of {', '.join(allowed)} (got {value!r})")


def _synth_over(label: str, background: str, fs: int, duration_s: float,
                rng: np.random.Generator) -> BioRecording:
    """synth's own mixture, its kind chosen: the patient is drawn as with
    ``mixture_share=1.0`` (same stream) and only which background it got is set."""
    p = replace(synth.make_patient(rng, mixture=True), mixture=background)
    s = synth.synthesize(label, fs=fs, duration_s=duration_s, rng=rng, patient=p)
    return BioRecording(label, fs, s.signal_uv, [], [Firing(e.t, e.generator) for e in s.events],
                        {"patient": synth.patient_dict(p),
                         "discharge_peak_uv": s.info["discharge_peak_uv"],
                         "background_rms_uv": s.info["background_rms_uv"]})


def _biosim_background(background: str, needle: str, amp: dict[str, Any], fs: int,
                       duration_s: float, rng: np.random.Generator) -> np.ndarray:
    """biosim's background alone, in µV: through the discharge recording's filter band,
    without noise or mains (the discharge's recording carries the amplifier's)."""
    same_band = {"highpass_hz": (amp["highpass_hz"],) * 2, "lowpass_hz": (amp["lowpass_hz"],) * 2,
                 "noise_uv_rms": (0.0, 0.0), "mains_uv": (0.0, 0.0)}
    if background == "end_plate":  # miniature end-plate potentials only, no spikes
        with biosim_params({"amplifier": same_band, "end_plate": {"spike_fibres": (0, 0)}}):
            return biosim.simulate("end_plate", fs=fs, duration_s=duration_s, rng=rng,
                                   needle=needle).signal_uv
    rate = float(rng.uniform(*_UNIT_RATE_HZ))
    with biosim_params({"amplifier": same_band,
                        "voluntary": {"min_rate_hz": rate, "unit_distance_mm": _UNIT_DISTANCE_MM}}):
        return biosim.simulate_contraction(fs=fs, duration_s=duration_s, rng=rng,
                                           excitation=1.0, needle=needle).signal_uv


def _biosim_over(label: str, background: str, fs: int, duration_s: float,
                 rng: np.random.Generator) -> BioRecording:
    """biosim's discharge recording plus a separately simulated background (same needle
    kind, same filter band) added in µV. As synth's rule that a labelled discharge peaks at
    least ``synth.DETECTABLE_SNR`` times the RMS of what it sits on, the background is
    scaled down where it would bury the discharge (the examiner would move the needle)."""
    r = biosim.simulate(label, fs=fs, duration_s=duration_s, rng=rng)
    bg = _biosim_background(background, r.info["needle"], r.info, fs, duration_s, rng)
    peak = float(np.max(np.abs(r.signal_uv)))
    bg_rms = float(np.sqrt(np.mean(bg**2)))
    gain = min(1.0, peak / (synth.DETECTABLE_SNR * bg_rms)) if bg_rms > 0 else 1.0
    info = {**r.info, "patient": {"mixture": background}, "background_gain": gain,
            "discharge_peak_uv": peak,
            "background_rms_uv": float(np.hypot(r.info["noise_uv_rms"], gain * bg_rms))}
    return replace(r, signal_uv=r.signal_uv + gain * bg, info=info)


def over_background(label: str, background: str, *, simulator: str, fs: int = FS,
                    duration_s: float = 4.0, rng: np.random.Generator) -> BioRecording:
    """One recording of the discharge ``label`` over ``background`` ('end_plate': miniature
    end-plate potentials; 'motor_unit': one voluntary unit) from ``simulator`` ('synth' or
    'biosim'), in µV, labelled ``label`` over its whole length. ``info`` holds the
    background (``patient.mixture``), the discharge's peak and the RMS it sits on.

    synth: its own mixture (``synthesize`` with the background forced; the unit is one of
    its voluntary units ×0.3). biosim: the discharge's ``simulate`` plus a background
    simulated on its own (end-plate noise without spikes, or a threshold contraction's
    single unit, see ``_UNIT_DISTANCE_MM``) through the same filter band, added in µV."""
    _one_of("discharge", label, DISCHARGES)
    _one_of("background", background, BACKGROUNDS)
    _one_of("simulator", simulator, SIMULATORS)
    over = _synth_over if simulator == "synth" else _biosim_over
    r = over(label, background, fs, duration_s, rng)
    r.spans = [(0.0, duration_s, label)]
    r.info = {"simulator": simulator, "background": background, **r.info,
              "discharge_snr": r.info["discharge_peak_uv"] / r.info["background_rms_uv"]}
    return r


def background_kind(label: str, index: int) -> str:
    """The background of recording ``index`` of ``label``: alternating, and shifted by
    class so that one recording per class still holds both."""
    return BACKGROUNDS[(index + DISCHARGES.index(label)) % len(BACKGROUNDS)]


def background_corpus(out, simulator: str, per_class: int, seed: int, *,
                      duration_s: float = 4.0,
                      progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """``per_class`` recordings of every pathological class over a background
    (:func:`background_kind`, :func:`over_background`), in ``biosim_corpus``'s format;
    returns the manifest (``"setting": "background"``, each file's ``background``).
    Recording ``i`` of class ``c`` depends on (seed, c, i, simulator) alone."""
    _one_of("simulator", simulator, SIMULATORS)
    if per_class < 1:
        raise InputError("--per-class must be at least 1")
    written: dict[str, int] = {}

    def simulate(label: str, *, fs: int, duration_s: float, rng: np.random.Generator):
        # biosim_corpus writes a class's recordings in index order (checked below)
        i = written[label] = written.get(label, -1) + 1
        own = _own_stream(BACKGROUND_SEED_TAG, rng, SIMULATORS.index(simulator))
        return over_background(label, background_kind(label, i), simulator=simulator, fs=fs,
                               duration_s=duration_s, rng=own)

    m = biosim.biosim_corpus(out, per_class, seed, duration_s=duration_s, labels=DISCHARGES,
                             progress=progress, simulate=simulate)
    if any(f["background"] != background_kind(f["label"], f["index"]) for f in m["files"]):
        raise RuntimeError("biosim_corpus no longer writes a class's recordings in order")
    return _tag_manifest(out, m, kind="nemg-background-corpus", setting="background",
                         simulator=simulator, backgrounds=list(BACKGROUNDS))


def setting_recording(setting: str, label: str, i: int, seed: int,
                      duration_s: float) -> np.ndarray:
    """Recording ``i`` of ``label`` in ``setting`` (``biosim``, ``heldout``, ``synth``,
    ``background_synth`` or ``background_biosim``), µV at :data:`FS`; depends on (seed,
    label, i) alone."""
    rng = np.random.default_rng([seed, LABELS.index(label), i])
    if setting == "biosim":
        from convert.biosim import simulate
        return simulate(label, fs=FS, duration_s=duration_s, rng=rng).signal_uv
    if setting == "heldout":
        return heldout_simulate(label, fs=FS, duration_s=duration_s, rng=rng).signal_uv
    if setting == "synth":
        from convert.synth import synthesize
        return synthesize(label, fs=FS, duration_s=duration_s, rng=rng).signal_uv
    sim = setting.removeprefix("background_")
    return over_background(label, background_kind(label, i), simulator=sim, fs=FS,
                           duration_s=duration_s, rng=rng).signal_uv
