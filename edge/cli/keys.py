"""``nemg keys generate``: an Ed25519 signing key pair."""

from __future__ import annotations

import argparse
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    g = sub.add_parser("generate", help="write NAME.key (private) and NAME.pub")
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--name", required=True)


def run(args: argparse.Namespace) -> int:
    from convert.packing import generate_key
    from edge.bundle import key_id, load_public_key, public_raw

    priv, pub = generate_key(args.out, args.name)
    print(f"private key: {priv} (keep it secret; never put it on a box)")
    print(f"public key:  {pub} (install on boxes as a trusted key)")
    print(f"key id:      {key_id(public_raw(load_public_key(pub)))}")
    return 0
