"""``nemg model init|status|history|confirm|rollback|install|boot-check``: the model store."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.cli.options import option_anywhere
from edge.paths import default_store

STORE_HELP = ("store root (default $NEMG_STORE, else /var/lib/nemg if it is a store, else "
              "~/.local/share/nemg/store)")


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    i = sub.add_parser("init", help="create a store")
    i.add_argument("--board", default="nemg-fe1")
    i.add_argument("--trust", type=Path, action="append", default=[], metavar="KEY.pub",
                   help="trusted public key (repeatable)")
    i.add_argument("--confirm-policy", choices=["self-test", "manual"], default="self-test")
    sub.add_parser("status", help="active slot, version, trial state")
    sub.add_parser("history", help="every transition")
    sub.add_parser("confirm", help="make the model on trial permanent")
    r = sub.add_parser("rollback", help="go back to the previous slot")
    r.add_argument("--reason", default="requested by user")
    ins = sub.add_parser("install", help="install a bundle file (same as nemg flash --store)")
    ins.add_argument("bundle", type=Path)
    ins.add_argument("--allow-downgrade", action="store_true")
    sub.add_parser("boot-check", help="at start: confirm or roll back a trial model")
    option_anywhere(parser, list(sub.choices.values()), "--store", type=Path, default=None,
                    help=STORE_HELP)


def run(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from edge.errors import InputError
    from edge.store import ModelStore

    root = args.store or default_store()
    if args.action == "init":
        s = ModelStore.init(root, board=args.board, trusted=args.trust,
                            confirm_policy=args.confirm_policy)
        print(json.dumps({"store": str(root), **s.config}))
        return 0
    store = ModelStore(root)
    store.config  # noqa: B018 - clear error if this is not a store
    if args.action == "status":
        print(json.dumps(asdict(store.status())))
    elif args.action == "history":
        for h in store.history():
            print(json.dumps(h))
    elif args.action == "confirm":
        print(json.dumps(asdict(store.confirm())))
    elif args.action == "rollback":
        print(json.dumps(asdict(store.rollback(args.reason))))
    elif args.action == "install":
        if not args.bundle.is_file():
            raise InputError(f"{args.bundle}: no such file")
        st = store.install(args.bundle.read_bytes(), allow_downgrade=args.allow_downgrade,
                           source=args.bundle.name)
        print(json.dumps(asdict(st)))
    else:
        st, what = store.boot_check()
        print(json.dumps({**asdict(st), "boot_check": what}))
    return 0
