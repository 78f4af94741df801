"""``nemg demo``: the shipped int8 model classifying a virtual front end, live."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", action="store_true", help="stream faster than real time")
    parser.add_argument("--model", type=Path, help="bundle (default: the shipped model)")
    parser.add_argument("--plain", action="store_true", help="line output, no live screen")
    parser.add_argument("--log", type=Path, help="event log to record the session in "
                        "(default $NEMG_LOG_DB or ~/.local/share/nemg/events.db)")
    parser.add_argument("--no-log", action="store_true", help="do not record the session")
    from edge.cli.run import add_recording_options, add_web_options

    add_recording_options(parser)
    add_web_options(parser)


def run(args: argparse.Namespace) -> int:
    import sys

    from edge.cli.run import check_web, recording_sinks
    from edge.paths import default_db
    from rigs.demo import run_demo

    check_web(args)
    run_demo(fast=args.fast, model=args.model, plain=args.plain,
             log_path=None if args.no_log else args.log or default_db(),
             web=args.web, web_token=args.web_token,
             linger=bool(args.web) and sys.stdin.isatty(), sinks=recording_sinks(args))
    return 0
