"""``nemg muap-reference SUBJECT... --name NAME --out LAB.json``: a laboratory's own MUAP
reference values, measured by ``nemg muap`` on its control subjects
(:func:`edge.muap.reference.reference_from_controls`; the rule is in that module's doc).

Each SUBJECT is one healthy control: a folder of its needle sites' recordings (one
muscle, a steady weak contraction each), or a single recording. A bad file gets its own
``nemg: error:`` line and the subject goes on with its other sites; the file is written
(atomically) only when at least ``MIN_CONTROLS`` subjects have enough measured units.
``nemg muap --reference LAB.json`` then reads patients against it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("subjects", nargs="+", type=Path, metavar="SUBJECT",
                        help="a control subject: a folder of its sites' recordings, or one "
                             "recording")
    parser.add_argument("--name", required=True,
                        help="what the reference is (e.g. 'biceps, our lab, 20-60 y')")
    parser.add_argument("--source", default="",
                        help="how the controls were recorded (needle, filters, ages)")
    parser.add_argument("--ages", metavar="LO-HI",
                        help="the controls' youngest and oldest age in years (e.g. 20-60): a "
                             "patient outside is read with that said")
    parser.add_argument("--out", type=Path, required=True, metavar="LAB.json")
    parser.add_argument("--channel", help="channel index or name")
    parser.add_argument("--scale-uv", type=float, metavar="UV",
                        help="µV per sample unit for files that record no scale")


def run(args: argparse.Namespace) -> int:
    from edge.cli.classify import recording_paths
    from edge.cli.failures import report_failure
    from edge.cli.muap import analyse_file
    from edge.errors import ConfigError
    from edge.fileio import write_atomic
    from edge.muap.reference import reference_from_controls

    if not 0 < len(args.name) <= 80:
        raise ConfigError("--name must be 1–80 characters")
    ages = _ages(args.ages)
    failed, subjects = 0, []
    for subject in args.subjects:
        units: list[dict] = []
        sites = recording_paths([subject])
        for path in sites:
            try:
                res = analyse_file(path, channel=args.channel, scale_uv=args.scale_uv)
                units += [u for u in res["units"] if u["measured"]]
            except Exception as exc:  # one bad site never stops the others
                failed += report_failure(path, exc, args.debug)
        print(f"{subject}: {len(sites)} site(s), {len(units)} unit(s) measured",
              file=sys.stderr, flush=True)
        subjects.append(units)
    ref = reference_from_controls(subjects, name=args.name, source=args.source, ages=ages)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, (json.dumps(ref, indent=1) + "\n").encode())
    c = ref["controls"]
    print(f"{args.out}: {args.name!r} from {c['subjects']} controls ({c['units']} units; "
          f"{c['left_out']} left out with too few): mean amplitude "
          f"{ref['amplitude_uv'][0]:g}–{ref['amplitude_uv'][1]:g} µV, duration "
          f"{ref['duration_ms'][0]:g}–{ref['duration_ms'][1]:g} ms, polyphasic ≤ "
          f"{ref['polyphasic_share'][1]:.0%}; single MUPs "
          f"{ref['single_duration_ms'][0]:g}–{ref['single_duration_ms'][1]:g} ms, "
          f"{ref['single_amplitude_uv'][0]:g}–{ref['single_amplitude_uv'][1]:g} µV")
    return 2 if failed else 0


def _ages(text: str | None) -> tuple[float, float] | None:
    from edge.errors import ConfigError
    from edge.muap.reference import MAX_AGE

    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split("-"))
    except ValueError:
        raise ConfigError(f"--ages {text!r}: give the youngest and oldest as LO-HI") from None
    if not 0 <= lo <= hi <= MAX_AGE:
        raise ConfigError(f"--ages {text!r}: need 0 ≤ youngest ≤ oldest ≤ {MAX_AGE:g}")
    return lo, hi
