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
    parser.add_argument("--scale-uv", type=float, metavar="UV",
                        help="µV per sample unit for files that record no scale (an integer "
                             "WAV's LSB, or 1.0 of a float WAV); amplitude is diagnostic, "
                             "so an unscaled file is classified at an assumed level")


def load_samples(path: Path, fs: int, uv_per_lsb: float, channel=None,
                 scale_uv: float | None = None):
    """Any importer format -> canonical int16 at the model's rate. A file without a
    recorded scale takes ``scale_uv``, or is read at the nominal scale with a warning."""
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
    if not rec.scale_known:
        if scale_uv is not None:
            rec = rec.with_unit_uv(scale_uv)
        else:
            print(f"nemg: warning: {path}: records no µV scale; assumed "
                  f"{rec.assumed_unit_uv:g} µV per unit (pass --scale-uv: amplitudes are "
                  f"diagnostic and the model tolerates about ±6 dB of level error)",
                  file=sys.stderr, flush=True)
    return rec.resampled(fs).to_int16(uv_per_lsb)


def classify_file(pipe_factory, path: Path, channel=None, scale_uv: float | None = None) -> dict:
    from edge.pipeline import summarize

    pipe = pipe_factory()
    x = load_samples(path, pipe.fs, pipe.mel.uv_per_lsb, channel, scale_uv)
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

    if args.scale_uv is not None and not args.scale_uv > 0:
        from edge.errors import ConfigError

        raise ConfigError("--scale-uv must be a positive number of µV")
    bundle = load_verified(args.model, args.trusted)
    failed = 0
    for path in args.paths:
        try:
            res = classify_file(lambda: Pipeline(bundle), path, args.channel, args.scale_uv)
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
