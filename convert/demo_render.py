"""Render the demo's scripted examination to ``rigs/data/demo-exam.wav`` + labels.

The box has no scipy, so the scripted exam is rendered once here, with the real
synthesiser, and shipped. One patient throughout (same amplifier, mains and noise);
each segment is a new needle position.

    python -m convert.demo_render
"""

from __future__ import annotations

import csv
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from convert.synth import make_patient, synthesize
from edge.features import float_to_int16
from edge.readers.wav import write_wav
from edge.spec import DEFAULT_SPEC
from rigs.demo import DEMO_LABELS, DEMO_SCRIPT, DEMO_WAV


def render(out_wav: Path = DEMO_WAV, out_labels: Path = DEMO_LABELS, seed: int = 2026) -> None:
    mel = DEFAULT_SPEC.mel  # a recording at the rate and scale new models train on
    rng = np.random.default_rng(seed)
    base = replace(make_patient(rng, mixture=False), mains_uv=8.0, noise_uv_rms=5.0)
    parts, rows, t = [], [], 0.0
    for label, seconds in DEMO_SCRIPT:
        p = replace(base, distance=float(rng.uniform(0.0, 0.6)),
                    amplitude_factor=1.0, lowpass_hz=float(rng.uniform(6000, 9000)))
        # Exploring with the needle: one step (and one insertional burst) a second, so
        # the segment is insertional activity throughout, not one burst then silence.
        steps = [1.0] * round(seconds) if label == "insertional" else [seconds]
        for dur in steps:
            s = synthesize(label, fs=mel.sample_rate_hz, duration_s=dur, rng=rng, patient=p)
            parts.append(s.signal_uv)
            rows += [(round(t + a, 4), round(t + b, 4), lab) for a, b, lab in s.spans]
            t += dur
    pcm = float_to_int16(np.concatenate(parts), mel.uv_per_lsb)
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    write_wav(out_wav, pcm, mel.sample_rate_hz, mel.uv_per_lsb)
    with out_labels.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["start_s", "end_s", "label"])
        w.writerows(rows)
    print(f"wrote {out_wav} ({t:.0f} s) and {out_labels}", file=sys.stderr)


if __name__ == "__main__":
    render()
