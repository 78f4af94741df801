"""``nemg muap FILE... [--muscle M] [--age A] [--reference LAB.json] [--one-muscle] [--json]
[-o report.png]``: quantitative MUAP analysis of steady voluntary contractions (edge/muap/).

Any importer format and rate. Each file is analysed on its own: a bad one gets its own
``nemg: error:`` line and the others go on. With ``--one-muscle`` the files are needle
sites of one muscle, and the muscle is also read from all their units together (the ~20
MUAPs a mean needs come from several sites). At most ``MAX_ANALYSED_S`` of a file are read
(a needle site's contraction lasts 5–30 s; memory stays bounded).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

MAX_ANALYSED_S = 60.0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH")
    parser.add_argument("--muscle", help="muscle examined (e.g. 'tibialis anterior'): its "
                                         "reference values, where the repository has them")
    parser.add_argument("--age", type=float, help="the patient's age in years")
    parser.add_argument("--reference", type=Path, metavar="LAB.json",
                        help="the lab's own reference values (nemg muap-reference) instead "
                             "of the shipped table's")
    parser.add_argument("--one-muscle", action="store_true",
                        help="the files are sites of one muscle: read the muscle from all "
                             "their units too (with --json: a last object, kind 'muscle')")
    parser.add_argument("--json", action="store_true", help="one JSON object per file")
    parser.add_argument("--channel", help="channel index or name")
    parser.add_argument("--scale-uv", type=float, metavar="UV",
                        help="µV per sample unit for files that record no scale (amplitudes "
                             "are the analysis: without it the scale is estimated)")
    parser.add_argument("-o", "--out", type=Path, metavar="PNG",
                        help="report picture (templates with their duration markers and "
                             "measures, duration–amplitude plot against the reference, "
                             "recruitment plot, finding, firing raster, rates); with several "
                             "files, the file's name is added; with --one-muscle also "
                             "STEM-muscle.png, the muscle's reading")


def load_uv(path: Path, channel=None, scale_uv: float | None = None):
    """(µV samples at the file's own rate, rate, the ``input`` report): at most
    :data:`MAX_ANALYSED_S` of the file are read."""
    from edge.acquire.files import read_scaled
    from edge.fileio import check_regular
    from edge.readers import open_recording

    check_regular(path)
    reader = open_recording(path, channel)
    rec, report = read_scaled(reader, scale_uv, MAX_ANALYSED_S)
    if rec.samples_uv.size < reader.frames:
        report["analysed_s"] = MAX_ANALYSED_S
        print(f"nemg: note: {path}: the first {MAX_ANALYSED_S:g} s of "
              f"{reader.duration_s:.0f} s analysed", file=sys.stderr, flush=True)
    return rec.samples_uv, rec.sample_rate_hz, {"sample_rate_hz": rec.sample_rate_hz,
                                                **report}


def analyse_file(path: Path, *, muscle=None, age=None, channel=None,
                 scale_uv: float | None = None,
                 reference: tuple[str, dict] | None = None) -> dict[str, Any]:
    """One site's analysis, as ``nemg muap --json`` writes it."""
    from edge.errors import InputError
    from edge.muap.analysis import analyse

    x, fs, report = load_uv(path, channel, scale_uv)
    try:
        res = analyse(x, fs, muscle=muscle, age=age, reference=reference)
    except InputError as exc:
        raise InputError(f"{path}: {exc}") from None
    return {"file": str(path), "sample_rate_hz": fs, "duration_s": round(x.size / fs, 3),
            "input": report, "muscle": muscle, "age": age, **res}


def _text(res: dict[str, Any]) -> str:
    s, i = res["summary"], res["interpretation"]
    lines = [f"{res['file']}: {i['finding'].upper()} — {s['units']} unit(s), "
             f"{res['duration_s']:.1f} s at {res['sample_rate_hz']:g} Hz"]
    for u in res["units"]:
        if not u["measured"]:
            v = u["validity"]
            lines.append(f"  unit {u['id']:>2}: {v['verdict'].upper()}, not measured: "
                         f"{v['reason']} ({len(u['firings_s'])} firings)")
            continue
        sd = u.get("duration_sd_ms")  # the duration's split-half uncertainty
        spread = "" if sd is None else f" ± {sd:.1f}"
        lines.append(f"  unit {u['id']:>2}: {u['amplitude_uv']:7.0f} µV  {u['duration_ms']:5.1f} ms"
                     f"{spread}  {u['phases']} phases  {u['turns']:>2} turns  "
                     f"{u['firing_rate_hz']:5.1f} Hz  ({len(u['firings_s'])} firings)")
    return "\n".join([*lines, *_reading(s, i)]) + "\n"


def _reading(s: dict[str, Any], i: dict[str, Any]) -> list[str]:
    lines = []
    if s["units"]:
        lines.append(f"  mean {s['mean_amplitude_uv']:.0f} µV, {s['mean_duration_ms']:.1f} ms, "
                     f"polyphasic {s['polyphasic_share']:.0%}, recruitment ratio "
                     f"{s['recruitment_ratio']:g}")
    return lines + [f"  - {e}" for e in i["evidence"]]


def _muscle_text(res: dict[str, Any]) -> str:
    s, i = res["summary"], res["interpretation"]
    head = (f"muscle{' (' + res['muscle'] + ')' if res['muscle'] else ''}, "
            f"{len(res['sites'])} site(s): {i['finding'].upper()} — {s['units']} unit(s) "
            "measured")
    return "\n".join([head, *_reading(s, i)]) + "\n"


def run(args: argparse.Namespace) -> int:
    from edge.cli.failures import report_failure

    if args.scale_uv is not None and not 0 < args.scale_uv < float("inf"):
        from edge.errors import ConfigError

        raise ConfigError("--scale-uv must be a positive number of µV")
    from edge.muap.reference import load_reference

    # a bad lab file stops before any analysis
    reference = load_reference(args.reference) if args.reference else None
    failed, sites = 0, []
    for path in args.paths:
        try:
            res = analyse_file(path, muscle=args.muscle, age=args.age, channel=args.channel,
                               scale_uv=args.scale_uv, reference=reference)
            if args.out:
                from edge.muap_report import write_report

                out = args.out if len(args.paths) == 1 else args.out.with_name(
                    f"{args.out.stem}-{path.stem}{args.out.suffix}")
                write_report(res, out)
                res["report"] = str(out)
            sys.stdout.write(json.dumps(res) + "\n" if args.json else _text(res))
            sys.stdout.flush()
            sites.append(res)
        except Exception as exc:  # one bad file never stops the others
            failed += report_failure(path, exc, args.debug)
    if args.one_muscle and sites:
        from edge.muap.analysis import read_muscle

        res = {"kind": "muscle", "muscle": args.muscle, "age": args.age,
               "sites": [r["file"] for r in sites],
               **read_muscle(sites, muscle=args.muscle, age=args.age, reference=reference)}
        if args.out:
            from edge.muap_report import write_muscle_report

            out = args.out.with_name(f"{args.out.stem}-muscle{args.out.suffix}")
            write_muscle_report(res, sites, out)
            res["report"] = str(out)
        sys.stdout.write(json.dumps(res) + "\n" if args.json else _muscle_text(res))
    return 2 if failed else 0
