"""``nemg bench crosssim``: the shipped model on the independent biophysical simulator.

The model trains on ``convert/synth.py`` only; ``convert/biosim.py`` computes its signals
from fibre and needle physics (no shared waveform code), so this is the figure on data the
model was not tuned to. Two conditions, the same recordings:

- **scaled**: the files' µV scale recorded, as a box's own captures are;
- **unscaled**: each file at a random peak of −30…−3 dBFS and no recorded scale, read at the
  assumed nominal scale, as a clinic's exported audio is;
- **estimated**: the same unscaled files at the scale the box estimates from their noise
  floor (:func:`edge.readers.recording.estimate_unit_uv`: what ``nemg classify`` does with them).

Reported: int8 macro-F1, per-class recall, ECE, and the share of windows that are wrong
with a top probability ≥ 0.8 ("confidently wrong").

**Three ways** (:mod:`convert.threeway`: the CNN alone, the discharge recogniser alone, the
box fusing them) on every simulated setting, none of which any threshold was chosen on
(the recogniser's were chosen on other draws of the first two: docs/evidence.md):

- ``biosim``: the independent biophysical simulator;
- ``heldout``: its held-out setting (:data:`convert.heldout.HELDOUT_SETTING`: another
  needle, muscle and filter) that no choice uses;
- ``synth``: a fresh draw of the simulator the model trained on (in-domain: the reference);
- ``background_synth`` / ``background_biosim``: every discharge over end-plate noise or a
  voluntary unit (:func:`convert.heldout.background_corpus`): is the recording flagged
  pathological?
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benches.harness import BenchOptions
from edge.labels import LABELS

UNSCALED_PEAK_DBFS = (-30.0, -3.0)


def _unscaled_copy(src: Path, dst: Path, seed: int) -> None:
    """The corpus with each WAV at a random peak level and no recorded scale."""
    import shutil
    import wave

    from edge.readers import load_wav

    shutil.copytree(src, dst)
    rng = np.random.default_rng(seed)
    for p in sorted((dst / "wav").glob("*.wav")):
        rec = load_wav(p)
        x = rec.samples_uv
        peak = 10 ** (rng.uniform(*UNSCALED_PEAK_DBFS) / 20) * 32767
        pcm = np.round(x / max(np.abs(x).max(), 1e-9) * peak).astype("<i2")
        with wave.open(str(p), "wb") as w:  # plain PCM: a WAV from another program
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(int(rec.sample_rate_hz))
            w.writeframes(pcm.tobytes())


def _estimated_copy(src: Path, dst: Path) -> None:
    """The unscaled corpus at the scale the box estimates for each file."""
    import shutil

    from edge.readers import load_wav
    from edge.readers.recording import estimate_unit_uv, uv_to_int16
    from edge.readers.wav import write_wav

    shutil.copytree(src, dst)
    for p in sorted((dst / "wav").glob("*.wav")):
        rec = load_wav(p)
        units = rec.samples_uv / rec.assumed_unit_uv
        unit_uv = estimate_unit_uv(units, rec.sample_rate_hz) or rec.assumed_unit_uv
        pcm = uv_to_int16(units * unit_uv, 0.5)
        write_wav(p, pcm, int(rec.sample_rate_hz), 0.5)


def _score(bundle, corpus: Path) -> dict[str, Any]:
    """The bundle on a corpus as the box decides: its front end, calibration and
    familiarity check."""
    from convert.corpus import read_corpus
    from convert.evaluate import evaluate

    rep = evaluate(bundle.model_bytes, read_corpus(corpus), None, spec=bundle.spec,
                   calibration=bundle.calibration, arithmetic=bundle.arithmetic,
                   robustness=False, workers=2)
    return {k: rep[k] for k in ("macro_f1_int8", "ece_int8", "confidently_wrong_share",
                                "unfamiliar_share", "windows")} | {
        "recall": {k: round(v["recall"], 3) for k, v in rep["per_class_int8"].items()}}


#: setting -> (seed, classes): the draws the three-way figures are taken on
SETTINGS: dict[str, tuple[int, str]] = {
    "biosim": (111, "all"), "heldout": (113, "all"), "synth": (115, "all"),
    "background_synth": (117, "pathological"), "background_biosim": (119, "pathological")}

def _windows(job: tuple[str, str, int, int, float], bundle) -> tuple[str, list]:
    """One recording through the box's pipeline (in a worker; the bundle sent once)."""
    from convert.heldout import setting_recording
    from edge.pipeline import Pipeline
    from edge.readers.recording import uv_to_int16

    setting, label, i, seed, duration_s = job
    x = uv_to_int16(setting_recording(setting, label, i, seed, duration_s),
                    bundle.mel_config.uv_per_lsb)
    return label, Pipeline(bundle, evidence_always=True).push(x, 0)[0]


def three_way(bundle, per_class: int, duration_s: float = 4.0,
              workers: int = 2) -> dict[str, Any]:
    """The CNN alone, the recogniser alone and the box on every setting of
    :data:`SETTINGS`."""
    from convert.threeway import ThreeWayTally
    from edge.labels import PATHOLOGICAL
    from nemg_common.executor import executor

    out: dict[str, Any] = {}
    with executor(workers) as ex:  # local processes, or the cluster of --ray
        for setting, (seed, classes) in SETTINGS.items():
            labels = LABELS if classes == "all" else [lab for lab in LABELS
                                                      if lab in PATHOLOGICAL]
            jobs = [(setting, lab, i, seed, duration_s) for lab in labels
                    for i in range(per_class)]
            tally = ThreeWayTally()
            for truth, windows in ex.map(_windows, jobs, shared=bundle, chunksize=2):
                tally.add(truth, windows, bundle.labels, bundle.decision.uncertain_threshold)
            out[setting] = tally.report()
    return out


def run(opts: BenchOptions) -> dict[str, Any]:
    from convert.biosim import biosim_corpus
    from edge.runtime import load_verified

    bundle = load_verified()
    per_class = 2 if opts.quick else 20
    with tempfile.TemporaryDirectory() as d:
        scaled, unscaled, estimated = (Path(d) / n for n in ("s", "u", "e"))
        biosim_corpus(scaled, per_class, seed=101, duration_s=4.0)
        _unscaled_copy(scaled, unscaled, seed=102)
        _estimated_copy(unscaled, estimated)
        a, b, c = (_score(bundle, x) for x in (scaled, unscaled, estimated))
    ways = three_way(bundle, 1 if opts.quick else 20)
    headline = {f"{way}_{k}_{setting}": ways[setting][way][k]
                for setting in ways for way in ways[setting]
                for k in ("macro_f1", "confidently_wrong_share",
                          "recordings_flagged_pathological")
                if ways[setting][way][k] is not None
                and (k != "recordings_flagged_pathological" or setting.startswith("back"))
                and (k == "recordings_flagged_pathological" or not setting.startswith("back"))}
    return {**headline, "recogniser_in_bundle": bundle.decision.recogniser is not None,
            "three_way": ways, "model": f"{bundle.name} {bundle.version}",
            "test_simulator": "biosim",
            "recordings_per_class": per_class,
            "macro_f1_int8_biosim": a["macro_f1_int8"],
            "macro_f1_int8_biosim_unscaled_assumed": b["macro_f1_int8"],
            "macro_f1_int8_biosim_unscaled_estimated": c["macro_f1_int8"],
            "ece_int8_biosim": a["ece_int8"],
            "confidently_wrong_share_biosim": a["confidently_wrong_share"],
            "confidently_wrong_share_biosim_unscaled_assumed": b["confidently_wrong_share"],
            "confidently_wrong_share_biosim_unscaled_estimated": c["confidently_wrong_share"],
            "scaled": a, "unscaled_assumed": b, "unscaled_estimated": c}

