"""``nemg flash-server``: on the box, in maintenance mode: receive and install models."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", type=Path, help="store root (default as 'nemg model')")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial port to listen on (e.g. /dev/ttyGS0)")
    where.add_argument("--pty", action="store_true", help="create a pty and print its path")
    parser.add_argument("--once", action="store_true", help="exit after one install")


def run(args: argparse.Namespace) -> int:
    from edge.paths import default_store
    from edge.store import ModelStore
    from wire.transfer import FlashServer, LinkChannel, PtyChannel

    store = ModelStore(args.store or default_store())
    store.config  # noqa: B018 - clear error if this is not a store
    channel = PtyChannel() if args.pty else LinkChannel(args.port)
    print(channel.path, flush=True)
    server = FlashServer(store, channel, log=lambda m: print(f"# {m}", file=sys.stderr,
                                                            flush=True))
    try:
        server.serve(until=(lambda: server.installs > 0) if args.once else None)
    except KeyboardInterrupt:
        pass
    finally:
        channel.close()
    return 0
