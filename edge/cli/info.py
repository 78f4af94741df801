"""``nemg info``: what this installation is and which runtime it will use."""

from __future__ import annotations

import argparse
import json
import platform
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def collect() -> dict[str, str]:
    """Versions and platform facts (the importable API behind ``nemg info``)."""
    import numpy

    from edge import __version__
    from edge.interpreter import describe_runtime

    return {
        "nemg_edge": __version__,
        "python": platform.python_version(),
        "platform": f"{platform.system()} {platform.machine()}",
        "numpy": numpy.__version__,
        "tflite_runtime": describe_runtime(),
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info))
    else:
        for key, value in info.items():
            print(f"{key:<15} {value}")
    sys.stdout.flush()
    return 0
