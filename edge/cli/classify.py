"""``nemg classify PATH... [--json]``: the live pipeline over recording files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--model", type=Path, help="bundle (default: active or shipped)")
    parser.add_argument("--trusted", type=Path, help="trusted keys folder")
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.add_argument("--channel", help="channel index or name")


def load_samples(path: Path, fs: int, uv_per_lsb: float, channel=None):
    """Any importer format -> canonical int16 at the model's rate."""
    try:
        from convert.importers import load_recording
    except ImportError:  # the box: WAV only, resampling needs scipy
        load_recording = None
    if load_recording is None:
        from edge.errors import InputError, MissingExtraError
        from edge.recording import load_wav

        if not path.exists():
            raise InputError(f"{path}: no such file")
        if path.suffix.lower() != ".wav":
            raise MissingExtraError("convert", f"reading {path.suffix} files", "pyedflib/wfdb")
        rec = load_wav(path, 0 if channel is None else channel)
    else:
        rec = load_recording(path, channel)
    return rec.resampled(fs).to_int16(uv_per_lsb)


def classify_file(pipe_factory, path: Path, channel=None) -> dict:
    from edge.pipeline import summarize

    pipe = pipe_factory()
    x = load_samples(path, pipe.fs, pipe.mel.uv_per_lsb, channel)
    need = pipe.win.samples(pipe.mel)
    if x.size < need:
        from edge.errors import InputError

        raise InputError(f"{path}: {x.size / pipe.fs:.3f} s is shorter than one "
                         f"{need / pipe.fs:.1f} s analysis window")
    windows = []
    step = 10 * pipe.fs  # bounded memory for hour-long files; results are chunk-invariant
    for i in range(0, x.size, step):
        windows += pipe.push(x[i : i + step], i)[0]
    pipe.flush()
    b = pipe.bundle
    return {
        "file": str(path),
        "sample_rate_hz": pipe.fs,
        "duration_s": x.size / pipe.fs,
        "model": {"name": b.name, "version": b.version, "sha256": b.sha256},
        "windows": [{"start_s": round(w.start_s, 4), "end_s": round(w.end_s, 4),
                     "label": w.label, "confidence": round(w.confidence, 4),
                     "probabilities": {lab: round(float(p), 4)
                                       for lab, p in zip(pipe.labels, w.probabilities,
                                                         strict=True)}}
                    for w in windows],
        "summary": summarize(windows),
    }


def run(args: argparse.Namespace) -> int:
    from edge.errors import NemgError
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified

    bundle = load_verified(args.model, args.trusted)
    failed = 0
    for path in args.paths:
        try:
            res = classify_file(lambda: Pipeline(bundle), path, args.channel)
        except NemgError as exc:
            msg = str(exc)
            print(f"nemg: error: {msg if str(path) in msg else f'{path}: {msg}'}",
                  file=sys.stderr, flush=True)
            failed += 1
            continue
        if args.json:
            print(json.dumps(res), flush=True)
        else:
            s = res["summary"]
            print(f"{res['file']}: {s['label']} ({s['confidence']:.2f})"
                  f"{'  PATHOLOGICAL' if s['pathological'] else ''} — "
                  f"{res['duration_s']:.1f} s, {len(res['windows'])} windows")
            for w in res["windows"]:
                print(f"  {w['start_s']:7.2f}–{w['end_s']:7.2f} s  {w['label']:<20} "
                      f"{w['confidence']:.2f}")
    return 2 if failed else 0
