"""``nemg classify PATH... [--json]``: the live pipeline over recording files.

Files are streamed: a WAV (of any rate) is read a block at a time, and each file's
output is spooled (to disk past a few MB) and written only once the file is done, so an
hours-long recording needs bounded memory, and a file that fails half-way prints one error
line and no half a result. Every bad file gets its own ``nemg: error:`` line; the others are
still classified.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

BLOCK_S = 10
"""Seconds of signal pushed through the pipeline at a time (results do not depend on it)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--model", type=Path, help="bundle (default: active or shipped)")
    parser.add_argument("--trusted", type=Path, help="trusted keys folder")
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.add_argument("--channel", help="channel index or name")
    parser.add_argument("--scale-uv", type=float, metavar="UV",
                        help="µV per sample unit for files that record no scale (an integer "
                             "WAV's LSB, or 1.0 of a float WAV); amplitude is diagnostic, "
                             "so without it the scale is estimated from the noise floor")


@dataclass(frozen=True)
class SampleStream:
    """A file's canonical int16 samples at the model's rate, block by block."""

    total: int
    """Samples at the model's rate."""
    input: dict[str, Any]
    """What was read: the file's own rate, the band it can hold (half that rate, at most
    half the model's), and which µV scale was used and how (``recorded``, ``given`` by
    --scale-uv, ``estimated`` from the noise floor, or ``assumed``)."""
    blocks: Callable[[], Iterator[np.ndarray]]


def _scale_used(path: Path, known: bool, assumed_uv: float | None, scale_uv: float | None,
                units: Callable[[], np.ndarray], fs: float) -> tuple[dict[str, Any], float]:
    """(the ``input`` report's scale entries, the factor for the assumed µV). A file with
    no recorded scale takes ``scale_uv``, else the scale that puts its noise floor at the
    amplifier's (:func:`edge.readers.recording.estimate_unit_uv`), else the nominal one."""
    from edge.readers.recording import NOISE_FLOOR_UV, estimate_unit_uv

    if known:
        return {"scale": "recorded"}, 1.0
    if scale_uv is not None:
        return {"scale": "given", "uv_per_unit": scale_uv}, scale_uv / assumed_uv
    estimated = estimate_unit_uv(units(), fs)
    if estimated is not None:
        print(f"nemg: warning: {path}: records no µV scale; estimated {estimated:.4g} µV per "
              f"unit from its noise floor (set to {NOISE_FLOOR_UV:g} µV RMS, a needle "
              "amplifier's); pass --scale-uv if you know it", file=sys.stderr, flush=True)
        return {"scale": "estimated", "uv_per_unit": estimated}, estimated / assumed_uv
    print(f"nemg: warning: {path}: records no µV scale and has no noise floor to estimate it "
          f"from; assumed {assumed_uv:g} µV per unit (pass --scale-uv)", file=sys.stderr,
          flush=True)
    return {"scale": "assumed", "uv_per_unit": assumed_uv}, 1.0


def open_samples(path: Path, fs: int, uv_per_lsb: float, channel=None,
                 scale_uv: float | None = None) -> SampleStream:
    """Any importer format -> canonical int16 at the model's rate. A file without a
    recorded scale takes ``scale_uv``, else the scale estimated from its noise floor.
    Samples become canonical int16 at the file's own rate, then the fixed-point resampler
    (:mod:`edge.resample`) brings them to the model's: the same bits on a box and on a
    workstation. WAVs of any rate are streamed block by block (bounded memory)."""
    from edge.fileio import check_regular
    from edge.readers.recording import FLOOR_MAX_S, uv_to_int16, wav_channel, wav_scale

    check_regular(path)  # no FIFOs or devices: nothing below may block or run away
    if path.suffix.lower() == ".wav":
        from edge.readers.recording import check_finite, check_rate
        from edge.readers.wav import read_frames, wav_info

        info = wav_info(path)
        rate = info.sample_rate_hz
        check_rate(path, rate)
        ch = wav_channel(path, info, 0 if channel is None else channel)
        scale, known = wav_scale(info)
        report, factor = _scale_used(
            path, known, None if known else scale, scale_uv,
            lambda: read_frames(info, 0, int(FLOOR_MAX_S * rate))[:, ch], rate)
        step = BLOCK_S * rate

        def wav_blocks() -> Iterator[np.ndarray]:
            for start in range(0, info.frames, step):
                x = read_frames(info, start, step)[:, ch].astype(np.float64)
                check_finite(path, x, rate, start)
                uv = x * scale  # the same arithmetic as Recording, block by block
                if factor != 1.0:
                    uv = uv * factor
                yield uv_to_int16(uv, uv_per_lsb)

        return _at_model_rate(path, wav_blocks, info.frames, rate, fs, report)
    rec, report = scaled_recording(path, channel, scale_uv)
    x = rec.to_int16(uv_per_lsb)
    step = BLOCK_S * int(rec.sample_rate_hz)
    return _at_model_rate(path, lambda: (x[i : i + step] for i in range(0, x.size, step)),
                          x.size, rec.sample_rate_hz, fs, report)


def _at_model_rate(path: Path, blocks: Callable[[], Iterator[np.ndarray]], n: int,
                   rate: float, fs: int, report: dict[str, Any]) -> SampleStream:
    """Canonical int16 blocks at ``rate`` -> the same at the model's ``fs``."""
    from edge.resample import StreamResampler, output_length

    info = {"sample_rate_hz": float(rate), "band_hz": min(rate, fs) / 2, **report}
    if rate == fs:
        return SampleStream(n, info, blocks)
    if rate < fs:
        print(f"nemg: note: {path}: recorded at {rate:g} Hz, so it holds nothing above "
              f"{rate / 2:g} Hz; the model was trained on {fs} Hz recordings (a narrower "
              "band than it knows)", file=sys.stderr, flush=True)
    StreamResampler(rate, fs)  # an unusable rate is refused now, not half-way

    def resampled() -> Iterator[np.ndarray]:
        r = StreamResampler(rate, fs)
        for b in blocks():
            yield r.push(b)
        yield r.flush()

    return SampleStream(output_length(n, rate, fs), info, resampled)



def scaled_recording(path: Path, channel=None, scale_uv: float | None = None):
    """(any importer format's recording at the µV scale used, the ``input`` report's scale
    entries): the file's own scale, ``scale_uv``, or the one its noise floor gives."""
    rec = _load_recording(path, channel)
    report, _ = _scale_used(path, rec.scale_known, rec.assumed_unit_uv, scale_uv,
                            lambda: rec.samples_uv / rec.assumed_unit_uv, rec.sample_rate_hz)
    if "uv_per_unit" in report and report["scale"] != "assumed":
        rec = rec.with_unit_uv(report["uv_per_unit"])
    return rec, report


def _load_recording(path: Path, channel):
    """Every importer format (all numpy only: the same on a box and a workstation)."""
    from edge.readers.importers import load_recording

    return load_recording(path, channel)

def load_samples(path: Path, fs: int, uv_per_lsb: float, channel=None,
                 scale_uv: float | None = None) -> np.ndarray:
    """All of a file's canonical int16 samples (for short files and tests)."""
    stream = open_samples(path, fs, uv_per_lsb, channel, scale_uv)
    parts = list(stream.blocks())
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


def classify_file(pipe_factory, path: Path, channel=None, scale_uv: float | None = None,
                  on_window: Callable[[dict], None] | None = None) -> dict:
    """Classify one file. Each window's result goes to ``on_window`` as it is decided
    (bounded memory), or, without it, into the returned ``windows`` list."""
    from edge.errors import InputError
    from edge.pipeline import WindowTally

    pipe = pipe_factory()
    stream = open_samples(path, pipe.fs, pipe.mel.uv_per_lsb, channel, scale_uv)
    need = pipe.win.samples(pipe.mel)
    if stream.total < need:
        raise InputError(f"{path}: {stream.total / pipe.fs:.3f} s is shorter than one "
                         f"{need / pipe.fs:.1f} s analysis window")
    windows: list[dict] = []
    emit = on_window or windows.append
    tally = WindowTally()  # the finding's figures, not every window
    index = 0
    for block in stream.blocks():
        results = pipe.push(block, index)[0]
        for w in results:
            tally.add(w)
            emit({"start_s": round(w.start_s, 4), "end_s": round(w.end_s, 4),
                  "label": w.label, "confidence": round(w.confidence, 4),
                  "unfamiliar": w.unfamiliar, "contracting": w.contracting,
                  "probabilities": {lab: round(float(p), 4)
                                    for lab, p in zip(pipe.labels, w.probabilities,
                                                      strict=True)}})
        index += block.size
    pipe.flush()
    b = pipe.bundle
    summary = tally.finding()
    caveat = pipe.rest.note() if pipe.rest is not None else None
    if caveat:
        summary["caveat"] = caveat
    return {
        "file": str(path),
        "sample_rate_hz": pipe.fs,
        "duration_s": stream.total / pipe.fs,
        "model": {"name": b.name, "version": b.version, "sha256": b.sha256},
        "input": stream.input,
        "windows": windows,
        "summary": summary,
    }


def _write_result(path: Path, pipe_factory, args: argparse.Namespace, out: TextIO) -> None:
    """One file's output, spooled: nothing reaches ``out`` unless the whole file worked."""
    with tempfile.SpooledTemporaryFile(max_size=4 << 20, mode="w+") as spool:
        count = [0]

        def as_json(w: dict) -> None:
            spool.write(("" if not count[0] else ", ") + json.dumps(w))
            count[0] += 1

        def as_text(w: dict) -> None:
            spool.write(f"  {w['start_s']:7.2f}–{w['end_s']:7.2f} s  {w['label']:<20} "
                        f"{w['confidence']:.2f}\n")
            count[0] += 1

        res = classify_file(pipe_factory, path, args.channel, args.scale_uv,
                            on_window=as_json if args.json else as_text)
        spool.seek(0)
        head = {k: v for k, v in res.items() if k not in ("windows", "summary")}
        if args.json:
            out.write(json.dumps(head)[:-1] + ', "windows": [')
            shutil.copyfileobj(spool, out)
            out.write(f'], "summary": {json.dumps(res["summary"])}}}\n')
        else:
            s = res["summary"]
            out.write(f"{res['file']}: {s['label']} ({s['confidence']:.2f})"
                      f"{'  PATHOLOGICAL' if s['pathological'] else ''} — "
                      f"{res['duration_s']:.1f} s, {count[0]} windows\n")
            if "caveat" in s:
                out.write(f"  caveat: {s['caveat']['text']}\n")
            shutil.copyfileobj(spool, out)
        out.flush()


def run(args: argparse.Namespace) -> int:
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified

    if args.scale_uv is not None and not 0 < args.scale_uv < float("inf"):
        from edge.errors import ConfigError

        raise ConfigError("--scale-uv must be a positive number of µV")
    bundle = load_verified(args.model, args.trusted)
    failed = 0
    for path in args.paths:
        try:
            _write_result(path, lambda: Pipeline(bundle), args, sys.stdout)
        except Exception as exc:  # one bad file never stops the others
            failed += report_failure(path, exc, args.debug)
    return 2 if failed else 0


def report_failure(path: Path, exc: Exception, debug: bool) -> int:
    """One ``nemg: error:`` line naming the file (for a batch that goes on); 1. An
    internal error is re-raised under ``--debug``."""
    from edge.errors import NemgError

    if isinstance(exc, NemgError):
        msg = str(exc)
        print(f"nemg: error: {msg if str(path) in msg else f'{path}: {msg}'}",
              file=sys.stderr, flush=True)
        return 1
    if debug:
        raise exc
    from edge.cli import describe_exception

    print(f"nemg: error: {path}: internal error ({describe_exception(exc)}); "
          "rerun with --debug for details", file=sys.stderr, flush=True)
    return 1
