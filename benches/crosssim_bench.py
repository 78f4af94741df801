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
with a top probability ≥ 0.8 ("confidently wrong"); and on the scaled files what the box
says through its whole pipeline (the rest check withholding calls of spontaneous activity
made during a contraction), beside the pipeline's labels without the check.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from benches.harness import BenchOptions

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


def _box(bundle, corpus: Path) -> dict[str, Any]:
    """What the box says on each recording (``nemg classify``'s path: the pipeline with
    its rest check), beside the model's labels alone: every window of a biosim recording
    holds its recording's class; 'uncertain' is not right, nor confidently wrong."""
    from collections import Counter

    from convert.corpus import read_corpus
    from edge.labels import PATHOLOGICAL
    from edge.pipeline import Pipeline
    from edge.readers import load_wav
    from edge.readers.recording import uv_to_int16

    t: Counter[str] = Counter()
    for item in read_corpus(corpus):
        rec = load_wav(item.path)
        x = uv_to_int16(rec.samples_uv, bundle.mel_config.uv_per_lsb)
        for on, tag in ((True, "box"), (False, "alone")):
            for w in Pipeline(bundle, rest_check=on).push(x, 0)[0]:
                wrong = w.label not in (item.label, "uncertain")
                t[f"{tag}_windows"] += 1
                t[f"{tag}_right"] += w.label == item.label
                t[f"{tag}_confidently_wrong"] += wrong and w.confidence >= 0.8
                if item.label == "motor_unit":
                    t[f"{tag}_voluntary"] += 1
                    t[f"{tag}_voluntary_pathological"] += w.label in PATHOLOGICAL
                t["withheld"] += on and w.contracting
    out = {"withheld_share": t["withheld"] / max(1, t["box_windows"])}
    for tag in ("box", "alone"):
        n = max(1, t[f"{tag}_windows"])
        out[tag] = {"window_accuracy": t[f"{tag}_right"] / n,
                    "confidently_wrong_share": t[f"{tag}_confidently_wrong"] / n,
                    "voluntary_windows_called_pathological":
                        t[f"{tag}_voluntary_pathological"] / max(1, t[f"{tag}_voluntary"])}
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
        box = _box(bundle, scaled)
    return {"model": f"{bundle.name} {bundle.version}", "test_simulator": "biosim",
            "recordings_per_class": per_class,
            "macro_f1_int8_biosim": a["macro_f1_int8"],
            "macro_f1_int8_biosim_unscaled_assumed": b["macro_f1_int8"],
            "macro_f1_int8_biosim_unscaled_estimated": c["macro_f1_int8"],
            "ece_int8_biosim": a["ece_int8"],
            "confidently_wrong_share_biosim": a["confidently_wrong_share"],
            "confidently_wrong_share_biosim_unscaled_assumed": b["confidently_wrong_share"],
            "confidently_wrong_share_biosim_unscaled_estimated": c["confidently_wrong_share"],
            "box_window_accuracy_biosim": box["box"]["window_accuracy"],
            "box_confidently_wrong_share_biosim": box["box"]["confidently_wrong_share"],
            "box_voluntary_windows_called_pathological_biosim":
                box["box"]["voluntary_windows_called_pathological"],
            "scaled": a, "unscaled_assumed": b, "unscaled_estimated": c, "box": box}
