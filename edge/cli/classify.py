"""``nemg classify PATH... [--json]``: the live pipeline over recording files
(:func:`edge.offline.classify_file`).

Files are streamed: every format is read a block at a time, and each file's
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
from pathlib import Path
from typing import TextIO


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
    parser.add_argument("--evidence-everywhere", action="store_true",
                        help="the discharge recogniser looks at every window (its evidence on "
                             "each; slower), not only where it can change the label (calls of "
                             "spontaneous activity, unsure calls); the labels are the same")


def _write_result(path: Path, pipe_factory, args: argparse.Namespace, out: TextIO) -> None:
    """One file's output, spooled: nothing reaches ``out`` unless the whole file worked."""
    from edge.offline import classify_file

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
                            on_window=as_json if args.json else as_text,
                            evidence_always=args.evidence_everywhere)
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
    from edge.cli.failures import report_failure
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
