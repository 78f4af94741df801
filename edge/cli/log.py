"""``nemg log list|show|export``: the box's event log."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.cli import option_anywhere


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="sessions")
    s = sub.add_parser("show", help="events of a session")
    s.add_argument("session", type=int)
    e = sub.add_parser("export", help="events as CSV")
    e.add_argument("session", type=int, nargs="?", help="one session (default: all)")
    e.add_argument("--csv", action="store_true", help="CSV (the only format; for clarity)")
    option_anywhere(parser, list(sub.choices.values()), "--db", type=Path, default=None,
                    help="event log (default $NEMG_LOG_DB or ~/.local/share/nemg/events.db)")


def run(args: argparse.Namespace) -> int:
    from edge.eventlog import default_db, open_existing

    log = open_existing(args.db or default_db())
    if args.action == "list":
        for s in log.sessions():
            summary = json.loads(s["summary"]) if s["summary"] else {}
            finding = summary.get("finding", {}).get("label", "-")
            print(f"{s['id']:>4}  {s['started']}  {s['events']:>4} events  {finding:<20} "
                  f"{s['model_name']} {s['model_version']}  {s['source']}")
    elif args.action == "show":
        for ev in log.events(args.session):
            print(f"{ev['start_s']:8.2f}–{ev['end_s']:8.2f} s  {ev['kind']:<5} "
                  f"{ev['label']:<20} {ev['confidence']:.2f}  {ev['detail'] or ''}")
    else:
        import sys

        log.export_csv(args.session, sys.stdout)
    return 0
