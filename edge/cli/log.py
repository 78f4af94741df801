"""``nemg log list|show|export|report|save-usb``: the box's event log, and the exam as it
leaves the box (EDF+, the printable report, a USB stick: docs/exam.md)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.cli.options import option_anywhere


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sub.add_parser("list", help="sessions")
    s = sub.add_parser("show", help="events of a session")
    s.add_argument("session", type=int)
    e = sub.add_parser("export", help="events as CSV, a session as EDF+, or clinicians' "
                                      "corrections as a training corpus")
    e.add_argument("session", type=int, nargs="?", help="one session (default: all)")
    how = e.add_mutually_exclusive_group()
    how.add_argument("--csv", action="store_true", help="events as CSV on stdout (default)")
    how.add_argument("--dataset", type=Path, metavar="DIR",
                     help="the corrections and confirmations made on the bedside page, with "
                          "their raw samples, as a corpus folder (wav/ + labels.csv) that "
                          "'nemg train --data DIR --init-from MODEL' fine-tunes on")
    how.add_argument("--edf", type=Path, metavar="OUT.edf",
                     help="the session's recorded signal (µV) with its events, corrections "
                          "and muscle as EDF+ annotations, for EDFbrowser, MNE or a cart's "
                          "review software")
    e.add_argument("--patient", metavar="CODE",
                   help="with --edf: the hospital's patient code for the EDF+ patient field "
                        "(default: anonymous, 'X X X X')")
    r = sub.add_parser("report", help="a session's printable A4 report (HTML, or PDF with "
                                      "Chromium)")
    r.add_argument("session", type=int)
    r.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.html|OUT.pdf",
                   help="the report; .pdf prints it with headless Chromium")
    u = sub.add_parser("save-usb", help="a session's EDF+ and report onto the USB stick")
    u.add_argument("session", type=int)
    u.add_argument("--to", type=Path, default=None, metavar="MOUNT",
                   help="where the stick is mounted (default /media/nemg-usb: "
                        "deploy/media-nemg\\x2dusb.mount)")
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
        judged = {c["event_id"]: c for c in log.corrections(args.session)}
        for ev in log.events(args.session):
            c = judged.get(ev["id"])
            mark = "" if c is None else "  [confirmed]" if c["confirmed"] else \
                f"  [corrected: {c['label']}]"
            print(f"{ev['start_s']:8.2f}–{ev['end_s']:8.2f} s  {ev['kind']:<5} "
                  f"{ev['label']:<20} {ev['confidence']:.2f}  {ev['detail'] or ''}{mark}")
    elif args.action == "report":
        from edge.exam_report import write_report

        print(write_report(log, args.session, args.out))
    elif args.action == "save-usb":
        from edge.exam_save import USB_MOUNT, save_exam

        for path in save_exam(log, args.session, args.to or USB_MOUNT):
            print(path)
    elif args.action == "export" and (args.edf is not None or args.patient is not None):
        from edge.errors import ConfigError
        from edge.exam_export import export_edf

        if args.edf is None:
            raise ConfigError("--patient names the patient of an EDF+ export (--edf OUT.edf)")
        if args.session is None:
            raise ConfigError("--edf exports one session: nemg log export SESSION --edf "
                              "OUT.edf")
        n = export_edf(log, log.path, args.session, args.edf, patient=args.patient)
        print(f"{args.edf}: session {args.session}, {n['seconds']:.1f} s at "
              f"{n['sample_rate_hz']} Hz, {n['events']} events and {n['corrections']} "
              f"corrections as {n['annotations']} EDF+ annotations")
    elif args.dataset is not None:
        if args.session is not None:
            log.session(args.session)  # "no session N" before a folder is made
        n = log.export_dataset(args.dataset, args.session)
        print(f"{args.dataset}: {n['recordings']} recordings ({n['corrected']} corrected, "
              f"{n['confirmed']} confirmed)"
              + (f"; {n['without_samples']} judged after the box no longer held their "
                 "samples, not written" if n["without_samples"] else ""))
        if n["recordings"] == 0:
            from edge.errors import InputError

            raise InputError(f"{args.dataset}: no corrections with samples to export")
    else:
        import sys

        log.export_csv(args.session, sys.stdout)
    return 0
