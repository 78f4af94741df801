"""``nemg classify PATH... [--json] [--out DIR] [--workers N | --ray [ADDRESS]]``: the
live pipeline over recording files and folders of them (:func:`edge.offline.classify_file`).

Files are streamed: every format is read a block at a time, and each file's
output is spooled (to disk past a few MB) and written only once the file is done, so an
hours-long recording needs bounded memory, and a file that fails half-way prints one error
line and no half a result. Every bad file gets its own ``nemg: error:`` line; the others are
still classified. With ``--workers`` or ``--ray`` several files are classified at once
(:mod:`nemg_common.executor`); the output is the same bytes, in the same order. With
``--out`` each file's JSON is written there atomically, and a re-run skips the files whose
result from this bundle is already there (an archive re-classified after a crash).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.cli.options import add_ray_option


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                        help="recording files, or folders (every recording under them)")
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
    parser.add_argument("--out", type=Path, metavar="DIR",
                        help="write each file's JSON to DIR/<file name>.json (atomically) "
                             "instead of printing it; a re-run skips files already done")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes classifying files at once (the output is the same)")
    add_ray_option(parser)


def recording_paths(paths: list[Path]) -> list[Path]:
    """``paths`` with each folder replaced by the recordings under it (sorted; a WFDB
    record once, by its header)."""
    from edge.readers.recording import SUFFIXES

    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file()
                          and f.suffix.lower() in SUFFIXES and f.suffix.lower() != ".dat")
        else:
            out.append(p)
    return out


def _done_before(result: Path, path: Path, sha256: str) -> bool:
    """``result`` holds this file's classification by this bundle (a run that finished it)."""
    try:
        head = json.loads(result.read_text())
        return head["file"] == str(path) and head["model"]["sha256"] == sha256
    except (OSError, ValueError, KeyError, TypeError):
        return False


def run(args: argparse.Namespace) -> int:
    from edge.cli.failures import report_failure
    from edge.errors import ConfigError
    from edge.fileio import write_atomic
    from edge.offline import classify_one, write_result
    from edge.runtime import load_verified
    from nemg_common.executor import executor

    if args.scale_uv is not None and not 0 < args.scale_uv < float("inf"):
        raise ConfigError("--scale-uv must be a positive number of µV")
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    bundle = load_verified(args.model, args.trusted)
    paths = recording_paths(args.paths)
    results: dict[Path, Path] = {}
    if args.out is not None:
        args.json = True  # a result file is the JSON object
        args.out.mkdir(parents=True, exist_ok=True)
        for p in paths:
            r = args.out / f"{p.name}.json"
            if r in results.values():
                raise ConfigError(f"{p}: a second recording named {p.name}: classify each "
                                  "folder to its own --out")
            results[p] = r
        paths = [p for p in paths if not _done_before(results[p], p, bundle.sha256)]
    failed = 0
    if args.out is None and args.workers == 1 and args.ray is None:
        from edge.pipeline import Pipeline

        for path in paths:  # straight to stdout, spooled per file: bounded memory
            try:
                write_result(path, lambda: Pipeline(bundle), args, sys.stdout)
            except Exception as exc:  # one bad file never stops the others
                failed += report_failure(path, exc, args.debug)
        return 2 if failed else 0
    with executor(args.workers) as ex:
        # the bundle and options go to each worker once; files come back in order
        for path, (status, value) in zip(paths, ex.map(classify_one, paths,
                                                       shared=(bundle, args)), strict=True):
            if status == "error":
                failed += report_failure(path, value, args.debug)
            elif args.out is not None:
                write_atomic(results[path], value.encode())
            else:
                sys.stdout.write(value)
                sys.stdout.flush()
    return 2 if failed else 0
