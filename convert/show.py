"""``nemg data show``: waveform + spectrogram (+ label spans) of a recording, as a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.readers import Recording, load_labels, load_recording

COLORS = {
    "fibrillation": "#d62728", "positive_sharp_wave": "#ff7f0e", "fasciculation": "#9467bd",
    "complex_repetitive": "#8c564b", "myotonic": "#e377c2", "myokymic": "#bcbd22",
    "neuromyotonic": "#17becf", "end_plate": "#2ca02c", "insertional": "#1f77b4",
    "motor_unit": "#7f7f7f", "silence": "#dddddd", "artifact": "#000000",
}


def spans_for(path: Path) -> list[tuple[float, float, str]]:
    """Spans from the recording's sidecar or its corpus's labels.csv."""
    for candidate in (path.parent / "labels.csv", path.parent.parent / "labels.csv"):
        if candidate.is_file():
            return load_labels(candidate, path.name)
    return []


def show(path: Path, out: Path, start_s: float = 0.0, seconds: float | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rec: Recording = load_recording(path)
    spans = rec.annotations or spans_for(path)
    fs = rec.sample_rate_hz
    a = int(start_s * fs)
    b = rec.samples_uv.size if seconds is None else min(rec.samples_uv.size, a + int(seconds * fs))
    x = rec.samples_uv[a:b]
    t = start_s + np.arange(x.size) / fs
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 6), sharex=True,
                                   gridspec_kw={"height_ratios": [1, 1]})
    ax1.plot(t, x, lw=0.5, color="k")
    ax1.set_ylabel("µV" + ("" if rec.scale_known else " (assumed gain)"))
    for s, e, lab in spans:
        if e < t[0] or s > t[-1]:
            continue
        ax1.axvspan(max(s, t[0]), min(e, t[-1]), color=COLORS.get(lab, "y"), alpha=0.15)
        ax1.text(max(s, t[0]), ax1.get_ylim()[1], lab, fontsize=7, va="top")
    nfft = 512 if fs >= 8000 else 256
    ax2.specgram(x, NFFT=nfft, Fs=fs, noverlap=nfft // 2, xextent=(t[0], t[-1]), cmap="magma",
                 scale="dB", vmin=-40)
    ax2.set_ylabel("Hz")
    ax2.set_xlabel("s")
    fig.suptitle(f"{path.name} — {fs:g} Hz, {rec.duration_s:.2f} s, channel {rec.channel}")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
