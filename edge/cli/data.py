"""``nemg data synth|show``: the labelled corpus (workstation extra)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from edge.cli.options import add_ray_option


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    s = sub.add_parser("synth", help="synthesise a labelled corpus (WAV + labels.csv)")
    s.add_argument("--out", type=Path, required=True, help="corpus folder")
    s.add_argument("--per-class", type=int, default=20, help="recordings per class")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--sample-rate", type=int, default=None, metavar="HZ",
                   help="default: the front end's rate new models train on")
    s.add_argument("--duration", type=float, default=6.0, metavar="S", help="per recording")
    s.add_argument("--labels", help="comma-separated subset of classes")
    s.add_argument("--workers", type=int, default=2,
                   help="processes synthesising (the corpus does not depend on it, nor on "
                        "--ray); a re-run after a crash makes only what is missing")
    s.add_argument("--simulator", choices=["template", "bio"], default="template",
                   help="template: convert/synth.py (what the model trains on); bio: the "
                        "independent biophysical simulator convert/biosim.py (line-source "
                        "fibres, needle, volume conductor), for cross-simulator validation")
    add_ray_option(s)
    sh = sub.add_parser("show", help="draw waveform + spectrogram of a recording")
    sh.add_argument("file", type=Path)
    sh.add_argument("-o", "--out", type=Path, required=True, help="PNG to write")
    sh.add_argument("--start", type=float, default=0.0, metavar="S")
    sh.add_argument("--seconds", type=float, metavar="S")
    ins = sub.add_parser("inspect", help="what an importer reads from a recording (JSON)")
    ins.add_argument("file", type=Path)
    ins.add_argument("--channel", help="channel index or name")


def run(args: argparse.Namespace) -> int:
    from edge.errors import ConfigError

    if args.action == "synth":
        from convert.corpus import synth_corpus
        from edge.console import Progress
        from edge.labels import LABELS
        from edge.spec import DEFAULT_SPEC

        labels = tuple(x.strip() for x in args.labels.split(",")) if args.labels else LABELS
        if args.sample_rate is None:
            args.sample_rate = DEFAULT_SPEC.mel.sample_rate_hz
        if not 1000 <= args.sample_rate <= 100_000:
            raise ConfigError(f"--sample-rate {args.sample_rate} is outside 1000..100000 Hz")
        if not 0.5 <= args.duration <= 600:
            raise ConfigError(f"--duration {args.duration} is outside 0.5..600 s")
        print(f"synthesising {args.per_class} × {len(labels)} recordings into {args.out}",
              file=sys.stderr)
        if args.simulator == "bio":
            from convert.biosim import biosim_corpus

            m = biosim_corpus(args.out, args.per_class, args.seed,
                              sample_rate_hz=args.sample_rate, duration_s=args.duration,
                              labels=labels, workers=args.workers,
                              progress=Progress("simulating", unit=" recordings").update)
            print(json.dumps({"out": str(args.out), "files": len(m["files"]),
                              "seed": args.seed, "simulator": "bio"}))
            return 0
        m = synth_corpus(args.out, args.per_class, args.seed, sample_rate_hz=args.sample_rate,
                         duration_s=args.duration, labels=labels, workers=args.workers,
                         progress=Progress("synthesising", unit=" recordings").update)
        print(json.dumps({"out": str(args.out), "files": len(m["files"]), "seed": args.seed}))
        return 0
    if args.action == "show":
        from convert.show import show

        out = show(args.file, args.out, args.start, args.seconds)
        print(out)
        return 0
    from edge.readers import load_recording

    rec = load_recording(args.file, args.channel)
    print(json.dumps({"file": str(args.file), "sample_rate_hz": rec.sample_rate_hz,
                      "duration_s": rec.duration_s, "unit": rec.unit,
                      "scale_known": rec.scale_known, "channel": rec.channel,
                      "rms_uv": float((rec.samples_uv ** 2).mean() ** 0.5),
                      "annotations": rec.annotations}))
    return 0
