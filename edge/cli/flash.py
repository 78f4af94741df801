"""``nemg flash BUNDLE --store PATH | --port P``: install a model locally or over serial."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--store", type=Path, help="a store on this machine or an SD card")
    where.add_argument("--port", help="serial port of a box running 'nemg flash-server'")
    parser.add_argument("--allow-downgrade", action="store_true")
    parser.add_argument("--timeout", type=float, default=1.0, metavar="S",
                        help="per-chunk reply timeout")


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from edge.errors import InputError

    if not args.bundle.is_file():
        raise InputError(f"{args.bundle}: no such file")
    data = args.bundle.read_bytes()
    if args.store:
        from edge.store import ModelStore

        st = ModelStore(args.store).install(data, allow_downgrade=args.allow_downgrade,
                                            source=args.bundle.name)
        print(json.dumps({"ok": True, **asdict(st)}))
        return 0
    from edge.console import Progress
    from wire.link import SerialLink
    from wire.transfer import FlashClient

    with SerialLink(args.port, read_timeout=0.02) as link:
        res = FlashClient(link, timeout_s=args.timeout,
                          progress=Progress("sending", unit=" bytes").update).send(
            data, args.bundle.name, allow_downgrade=args.allow_downgrade)
    print(json.dumps(res))
    return 0
