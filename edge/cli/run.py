"""``nemg run``: classify a front end live."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--board", default="nemg-fe1", help="front-end profile")
    parser.add_argument("--port", required=True, help="device path, pty or pyserial URL")
    parser.add_argument("--model", type=Path, help="bundle (default: active or shipped)")
    parser.add_argument("--trusted", type=Path, help="trusted keys folder")
    parser.add_argument("--log", type=Path, help="event log database")
    parser.add_argument("--no-log", action="store_true", help="do not record events")
    parser.add_argument("--duration", type=float, metavar="S", help="stop after S seconds")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads")
    parser.add_argument("--capture-minutes", type=float, default=0.0,
                        help="keep the last N minutes of raw signal (WAV beside the log)")
    parser.add_argument("--plain", action="store_true", help="line output, no live screen")
    parser.add_argument("--no-muap", action="store_true",
                        help="no MUAP analysis of steady voluntary stretches (by default one "
                             "runs after every 8 s the classifier follows motor_unit)")
    parser.add_argument("--muscle", help="muscle examined, for the MUAP reference values")
    parser.add_argument("--age", type=float, help="the patient's age, recorded with them")


def run(args: argparse.Namespace) -> int:
    from edge.eventlog import default_db, open_for_session
    from edge.live import LiveSession, PlainView, TerminalView, use_terminal_view
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified
    from firmware_host.boards import get_frontend
    from firmware_host.link import FrontEndClient, SerialLink

    board = get_frontend(args.board)
    bundle = load_verified(args.model, args.trusted, num_threads=args.threads)
    pipe = Pipeline(bundle, num_threads=args.threads)
    log = None if args.no_log else open_for_session(args.log or default_db())
    view = TerminalView() if (use_terminal_view(sys.stdout) and not args.plain) else PlainView()
    link = SerialLink(args.port, baudrate=board.baudrate)
    link.open()
    client = FrontEndClient(link)
    from edge.muap_live import MuapMonitor

    muap = None if args.no_muap else MuapMonitor(pipe.fs, pipe.mel.uv_per_lsb,
                                                 muscle=args.muscle, age=args.age)
    session = LiveSession(pipe, client, board, log=log, view=view,
                          capture_minutes=args.capture_minutes,
                          capture_dir=(log.path.parent / "captures") if log else None,
                          muap=muap)
    summary = session.run(duration_s=args.duration)
    print(json.dumps(summary))
    return 0
