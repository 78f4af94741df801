"""A labelled corpus on disk: ``wav/*.wav`` (int16, scale recorded), ``labels.csv``
(file, start_s, end_s, label) and ``manifest.json`` (seed, parameters, per-file patient).

Deterministic per seed: file ``<label>_<i>`` depends only on (seed, label, i), so a larger
``--per-class`` keeps the smaller corpus as its prefix.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from convert.synth import PARAMS, Synthesized, make_patient, patient_dict, synthesize
from edge.errors import InputError
from edge.labels import LABELS, PATHOLOGICAL, check_label
from edge.readers import Recording, load_wav
from edge.readers.recording import uv_to_int16
from edge.readers.wav import write_wav
from edge.spec import DEFAULT_SPEC

SYNTH_VERSION = 2  # 2: a discharge must stand out of its mixture background too


@dataclass(frozen=True)
class CorpusItem:
    """One recording of a corpus."""

    path: Path
    label: str
    """The recording's primary class."""
    spans: tuple[tuple[float, float, str], ...]
    seed: int
    """Group key: recordings ("patients") never straddle a train/test split."""
    mixture: str | None = None
    """Background the discharges sit on ('end_plate' / 'motor_unit'), when the corpus
    manifest says (synthetic corpora); None if none or unknown."""
    discharge_snr: float | None = None
    """Discharge peak ÷ RMS of what it sits on (amplifier noise and any mixture), when
    the manifest says (synthetic discharges: never below convert.synth.DETECTABLE_SNR)."""

    def load(self) -> Recording:
        return load_wav(self.path)


def recording_seed(seed: int, label: str, index: int) -> list[int]:
    return [seed, LABELS.index(label), index]


def synth_corpus(out: Path, per_class: int, seed: int, *,
                 sample_rate_hz: int = DEFAULT_SPEC.mel.sample_rate_hz,
                 duration_s: float = 6.0, uv_per_lsb: float = DEFAULT_SPEC.mel.uv_per_lsb,
                 labels: tuple[str, ...] = LABELS,
                 progress: Callable[[int, int], None] | None = None,
                 patient_overrides: dict | None = None,
                 mixture_share: float | None = None, workers: int = 1) -> dict:
    """Write a synthetic corpus; returns the manifest. ``patient_overrides`` fixes
    Patient fields for every recording (a domain shift: another amplifier, mains...);
    ``mixture_share`` overrides how many discharge recordings sit on end-plate noise or a
    voluntary unit (a training corpus may hold more of these hard cases than a clinic);
    ``workers`` processes synthesise (the corpus does not depend on it)."""
    if mixture_share is not None and not 0.0 <= mixture_share <= 1.0:
        raise InputError(f"mixture share must be in 0..1 (got {mixture_share})")
    if per_class < 1:
        raise InputError("--per-class must be at least 1")
    for lab in labels:
        check_label(lab)
    wav_dir = out / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    files, rows = [], []
    jobs = [(wav_dir, label, i, seed, sample_rate_hz, duration_s, uv_per_lsb,
             patient_overrides, mixture_share) for label in labels for i in range(per_class)]
    pool = None
    if workers > 1 and len(jobs) >= 2 * workers:
        import multiprocessing as mp

        pool = mp.get_context("spawn").Pool(workers)
    try:
        # each recording depends on (seed, label, index) alone: same files for any workers
        results = pool.imap(_synth_one, jobs, chunksize=4) if pool else map(_synth_one, jobs)
        for done, (file_rows, entry) in enumerate(results, 1):
            rows += file_rows
            files.append(entry)
            if progress:
                progress(done, len(jobs))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    with (out / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "start_s", "end_s", "label"])
        w.writerows(rows)
    manifest = {
        "kind": "nemg-synthetic-corpus", "synth_version": SYNTH_VERSION, "seed": seed,
        "per_class": per_class, "sample_rate_hz": sample_rate_hz, "duration_s": duration_s,
        "uv_per_lsb": uv_per_lsb, "labels": list(labels), "params": _jsonable(PARAMS),
        "patient_overrides": patient_overrides or {},
        "mixture_share": (PARAMS["background"]["mixture_share"] if mixture_share is None
                          else mixture_share),
        "files": files,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return manifest


def synth_pcm(label: str, rng_seed: list[int], fs: int, duration_s: float, uv_per_lsb: float,
              patient_overrides: dict | None = None,
              mixture_share: float | None = None) -> tuple[np.ndarray, Synthesized]:
    """One recording as a corpus stores it: (int16 samples at ``uv_per_lsb``, the
    synthesis with its spans and patient). Depends on ``rng_seed`` alone."""
    rng = np.random.default_rng(rng_seed)
    patient = None
    if patient_overrides:
        patient = replace(make_patient(rng, mixture=False), **patient_overrides)
    s = synthesize(label, fs=fs, duration_s=duration_s, rng=rng, patient=patient,
                   mixture_share=mixture_share)
    pcm = uv_to_int16(s.signal_uv, uv_per_lsb)
    return pcm, s


def _synth_one(job) -> tuple[list[tuple], dict]:
    """Synthesise and write one recording: (its labels.csv rows, its manifest entry)."""
    (wav_dir, label, i, seed, sample_rate_hz, duration_s, uv_per_lsb, patient_overrides,
     mixture_share) = job
    pcm, s = synth_pcm(label, recording_seed(seed, label, i), sample_rate_hz, duration_s,
                       uv_per_lsb, patient_overrides, mixture_share)
    name = f"{label}_{i:04d}.wav"
    write_wav(wav_dir / name, pcm, sample_rate_hz, uv_per_lsb)
    rows = [(f"wav/{name}", round(a, 4), round(b, 4), lab) for a, b, lab in s.spans
            if round(b, 4) > round(a, 4)]  # an empty span labels nothing
    entry = {"file": f"wav/{name}", "label": label, "index": i,
             "events": len(s.events), "clipped": int((np.abs(pcm) >= 32767).sum()),
             "patient": patient_dict(s.patient)}
    if label in PATHOLOGICAL and s.info.get("background_rms_uv"):
        entry["discharge_snr"] = round(s.info["discharge_peak_uv"] / s.info["background_rms_uv"],
                                       3)
    return rows, entry


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [_jsonable(v) for v in obj]
    return obj


def read_corpus(root: Path) -> list[CorpusItem]:
    """Items of a corpus folder (synthetic or imported: any folder with labels.csv whose
    rows name WAV files relative to it)."""
    labels_csv = root / "labels.csv"
    if not labels_csv.is_file():
        raise InputError(f"{root}: no labels.csv (not a corpus folder)")
    spans: dict[str, list[tuple[float, float, str]]] = {}
    with labels_csv.open(newline="") as f:
        for n, row in enumerate(csv.DictReader(f), 2):
            try:
                a, b = float(row["start_s"]), float(row["end_s"])
                lab = check_label(row["label"].strip(), f"{labels_csv} line {n}")
                spans.setdefault(row["file"], []).append((a, b, lab))
            except (KeyError, ValueError, AttributeError):
                raise InputError(f"{labels_csv}: line {n}: need file,start_s,end_s,label") \
                    from None
    manifest = {}
    if (root / "manifest.json").is_file():
        manifest = json.loads((root / "manifest.json").read_text())
    primary = {f["file"]: (f["label"], (f.get("patient") or {}).get("mixture"),
                           f.get("discharge_snr"))
               for f in manifest.get("files", [])}
    items = []
    for k, (file, sp) in enumerate(sorted(spans.items())):
        path = root / file
        if not path.is_file():
            raise InputError(f"{labels_csv}: names {file}, which does not exist")
        mixture = snr = None
        if file in primary:
            label, mixture, snr = primary[file]
        else:  # imported: the label covering most of the file
            dur = {}
            for a, b, lab in sp:
                dur[lab] = dur.get(lab, 0.0) + b - a
            label = max(dur, key=dur.get)
        items.append(CorpusItem(path, label, tuple(sorted(sp)), k, mixture, snr))
    return items
