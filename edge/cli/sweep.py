"""``nemg sweep CONFIG --out DIR [--ray [ADDRESS]] [--bundle-out B --key K --version V]``:
the bundle's decision parameters searched on Ray Tune (:func:`convert.sweep.run_sweep`),
each trial scored on settings the model was not tuned to; the table and the choice in
DIR/sweep.json and sweep.md, and optionally a bundle re-signed with the choice."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge.cli.options import add_ray_option


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", type=Path, help="sweep file (TOML; docs/cluster.md)")
    parser.add_argument("--out", type=Path, required=True,
                        help="folder for sweep.json, sweep.md and Ray Tune's trial records")
    add_ray_option(parser)
    parser.add_argument("--bundle-out", type=Path, metavar="BUNDLE",
                        help="also write the bundle with the chosen decision, re-signed, the "
                             "sweep's table in its model card")
    parser.add_argument("--key", type=Path, help="with --bundle-out: Ed25519 private key (PEM)")
    parser.add_argument("--version", help="with --bundle-out: MAJOR.MINOR.PATCH")


def run(args: argparse.Namespace) -> int:
    import json

    from convert.sweep import chosen_bundle, run_sweep
    from edge.errors import ConfigError

    if args.bundle_out is not None and (args.key is None or args.version is None):
        raise ConfigError("--bundle-out needs --key and --version")
    result = run_sweep(args.config, args.out)
    summary = {"out": str(args.out), "trials": len(result["trials"]),
               "choice": result["choice"], "rule": result["rule"]}
    if args.bundle_out is not None:
        m = chosen_bundle(result, args.bundle_out, key_path=args.key, version=args.version)
        summary["bundle"] = {"path": str(args.bundle_out), "version": m["version"]}
    print(json.dumps(summary))
    return 0
