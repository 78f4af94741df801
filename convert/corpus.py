"""A labelled corpus on disk: ``wav/*.wav`` (int16, scale recorded), ``labels.csv``
(file, start_s, end_s, label) and ``manifest.json`` (seed, parameters, per-file patient).

Deterministic per seed: file ``<label>_<i>`` depends only on (seed, label, i), so a larger
``--per-class`` keeps the smaller corpus as its prefix.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from convert.synth import PARAMS, Synthesized, make_patient, patient_dict, synthesize
from edge.errors import InputError
from edge.fileio import write_atomic
from edge.labels import LABELS, PATHOLOGICAL, check_label
from edge.readers import Recording, load_wav
from edge.readers.recording import uv_to_int16
from edge.readers.wav import wav_bytes
from edge.spec import DEFAULT_SPEC
from nemg_common.executor import Executor, executor

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


PARTIAL_DIR = ".partial"
"""Inside a corpus being written: one record per finished recording and the run's
parameters. A re-run after a crash keeps what they vouch for; removed when the corpus is
complete (labels.csv and manifest.json written)."""


@dataclass(frozen=True)
class Synthesised:
    """One recording a worker made and wrote (``wav/<name>``, atomically)."""

    name: str
    """File name under ``wav/``."""
    sha256: str
    """Of the whole WAV file."""
    rows: list[tuple]
    """Its labels.csv rows."""
    entry: dict
    """Its manifest entry."""


def write_wav_atomic(wav_dir: Path, name: str, pcm: np.ndarray, sample_rate_hz: int,
                     uv_per_lsb: float) -> str:
    """``wav_dir/name`` written whole or not at all (a worker killed half-way, a task
    run twice); returns its sha256."""
    data = wav_bytes(pcm, sample_rate_hz, uv_per_lsb)
    write_atomic(wav_dir / name, data)
    return hashlib.sha256(data).hexdigest()


def write_corpus(out: Path, head: dict, jobs: list, make: Callable[[Any, Path], Synthesised], *,
                 ex: Executor, progress: Callable[[int, int], None] | None = None,
                 resume: bool = True) -> dict:
    """Make each job's recording on ``ex`` (local processes or a cluster; the caller
    closes it): ``make(job, wav_dir)`` writes ``wav/<name>`` atomically (every worker sees
    ``out``: this machine, or a shared filesystem). Then labels.csv and manifest.json
    (``head`` plus the files' entries, in job order). Each recording gets a record under
    :data:`PARTIAL_DIR` as it comes back, so a re-run of a crashed run with the same
    ``head`` (and ``resume``) makes only the missing recordings; the corpus is the same
    bytes either way."""
    wav_dir, partial = out / "wav", out / PARTIAL_DIR
    wav_dir.mkdir(parents=True, exist_ok=True)
    partial.mkdir(exist_ok=True)
    stamp = json.dumps(head, sort_keys=True)
    run = partial / "run.json"
    if not resume or (run.is_file() and run.read_text() != stamp):
        for old in partial.glob("*.json"):  # another corpus was being written here
            old.unlink()
    write_atomic(run, stamp.encode())
    done: dict[int, Synthesised] = {}
    for k, job in enumerate(jobs):
        if (s := _finished(out, job_name(job))) is not None:
            done[k] = s
    todo = [job for k, job in enumerate(jobs) if k not in done]
    if progress and done:
        progress(len(done), len(jobs))
    made = iter(ex.map(make, todo, shared=wav_dir, chunksize=4))
    for k in range(len(jobs)):
        if k in done:
            continue
        s = next(made)
        write_atomic(partial / f"{s.name}.json", json.dumps(
            {"rows": s.rows, "entry": s.entry, "sha256": s.sha256}).encode())
        done[k] = s
        if progress:
            progress(len(done), len(jobs))
    rows = [r for k in range(len(jobs)) for r in done[k].rows]
    with (out / "labels.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["file", "start_s", "end_s", "label"])
        w.writerows(rows)
    manifest = {**head, "files": [done[k].entry for k in range(len(jobs))]}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    shutil.rmtree(partial, ignore_errors=True)
    return manifest


def job_name(job) -> str:
    """A corpus job's WAV name: every job starts (label, index, ...)."""
    return f"{job[0]}_{job[1]:04d}.wav"


def _finished(out: Path, name: str) -> Synthesised | None:
    """A recording a previous run wrote whole (its record, and a WAV of the bytes the
    record vouches for); None otherwise."""
    rec, wav = out / PARTIAL_DIR / f"{name}.json", out / "wav" / name
    if not (rec.is_file() and wav.is_file()):
        return None
    try:
        r = json.loads(rec.read_text())
        if hashlib.sha256(wav.read_bytes()).hexdigest() != r["sha256"]:
            return None
        return Synthesised(name, r["sha256"], [tuple(x) for x in r["rows"]], r["entry"])
    except (ValueError, KeyError, TypeError, OSError):
        return None


def synth_corpus(out: Path, per_class: int, seed: int, *,
                 sample_rate_hz: int = DEFAULT_SPEC.mel.sample_rate_hz,
                 duration_s: float = 6.0, uv_per_lsb: float = DEFAULT_SPEC.mel.uv_per_lsb,
                 labels: tuple[str, ...] = LABELS,
                 progress: Callable[[int, int], None] | None = None,
                 patient_overrides: dict | None = None,
                 mixture_share: float | None = None, workers: int = 1,
                 ex: Executor | None = None) -> dict:
    """Write a synthetic corpus; returns the manifest. ``patient_overrides`` fixes
    Patient fields for every recording (a domain shift: another amplifier, mains...);
    ``mixture_share`` overrides how many discharge recordings sit on end-plate noise or a
    voluntary unit (a training corpus may hold more of these hard cases than a clinic);
    ``workers`` processes synthesise, or ``ex`` (the corpus does not depend on it, nor on a
    cluster doing it: :func:`write_corpus`)."""
    if mixture_share is not None and not 0.0 <= mixture_share <= 1.0:
        raise InputError(f"mixture share must be in 0..1 (got {mixture_share})")
    if per_class < 1:
        raise InputError("--per-class must be at least 1")
    for lab in labels:
        check_label(lab)
    head = {
        "kind": "nemg-synthetic-corpus", "synth_version": SYNTH_VERSION, "seed": seed,
        "per_class": per_class, "sample_rate_hz": sample_rate_hz, "duration_s": duration_s,
        "uv_per_lsb": uv_per_lsb, "labels": list(labels), "params": _jsonable(PARAMS),
        "patient_overrides": patient_overrides or {},
        "mixture_share": (PARAMS["background"]["mixture_share"] if mixture_share is None
                          else mixture_share),
    }
    # each recording depends on (seed, label, index) alone: same files for any workers
    jobs = [(label, i, seed, sample_rate_hz, duration_s, uv_per_lsb, patient_overrides,
             mixture_share) for label in labels for i in range(per_class)]
    if ex is not None:
        return write_corpus(out, head, jobs, _synth_one, ex=ex, progress=progress)
    with executor(workers) as own:
        return write_corpus(out, head, jobs, _synth_one, ex=own, progress=progress)


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


def _synth_one(job, wav_dir: Path) -> Synthesised:
    """Synthesise and write one recording (in a worker)."""
    (label, i, seed, sample_rate_hz, duration_s, uv_per_lsb, patient_overrides,
     mixture_share) = job
    pcm, s = synth_pcm(label, recording_seed(seed, label, i), sample_rate_hz, duration_s,
                       uv_per_lsb, patient_overrides, mixture_share)
    name = job_name(job)
    rows = [(f"wav/{name}", round(a, 4), round(b, 4), lab) for a, b, lab in s.spans
            if round(b, 4) > round(a, 4)]  # an empty span labels nothing
    entry = {"file": f"wav/{name}", "label": label, "index": i,
             "events": len(s.events), "clipped": int((np.abs(pcm) >= 32767).sum()),
             "patient": patient_dict(s.patient)}
    if label in PATHOLOGICAL and s.info.get("background_rms_uv"):
        entry["discharge_snr"] = round(s.info["discharge_peak_uv"] / s.info["background_rms_uv"],
                                       3)
    return Synthesised(name, write_wav_atomic(wav_dir, name, pcm, sample_rate_hz, uv_per_lsb),
                       rows, entry)


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
