"""``nemg demo``: the main job on the embedded default (lands with the runtime issue)."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--fast", action="store_true", help="stream faster than real time")


def run(args: argparse.Namespace) -> int:
    print(
        "nemg demo: not available yet — the live runtime and the default model have not "
        "landed (issues 5 and 7). Try 'nemg info' or 'nemg bench features --json'.",
        file=sys.stderr,
    )
    return 1
