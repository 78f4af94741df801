"""``nemg run``: classify a front end live."""

from __future__ import annotations

import argparse
import json
import os
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
    add_recording_options(parser)
    add_web_options(parser)


def add_recording_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-recording", action="store_true",
                        help="do not record the examination's signal (by default the whole "
                             "exam is kept beside the event log, in recordings/)")
    parser.add_argument("--recording-budget-mb", type=float, metavar="MB",
                        help="stop recording once it holds MB megabytes (default: no limit "
                             "but the disk's; 1 MB is 25 s at 20 kHz)")


def recording_sinks(args: argparse.Namespace) -> list:
    """The session's exam recording beside its event log
    (:class:`edge.exam_recording.ExamRecorder`), unless ``--no-recording``; a bad budget is
    refused here, before anything is opened."""
    if args.no_recording:
        return []
    from edge.errors import ConfigError
    from edge.exam_recording import MB, ExamRecorder

    mb = args.recording_budget_mb
    if mb is not None and not mb > 0:
        raise ConfigError(f"--recording-budget-mb {mb:g}: must be above 0")
    return [ExamRecorder(budget_bytes=None if mb is None else int(mb * MB))]


def add_web_options(parser: argparse.ArgumentParser) -> None:
    from edge.web.server import DEFAULT_LISTEN

    parser.add_argument("--web", nargs="?", const=DEFAULT_LISTEN, metavar="HOST:PORT",
                        help=f"also serve the bedside page (default {DEFAULT_LISTEN}: this "
                             "box's own screen; another address needs --web-token)")
    parser.add_argument("--web-token", default=os.environ.get("NEMG_WEB_TOKEN"),
                        metavar="TOKEN",
                        help="the page's token when --web listens on a network (default "
                             "$NEMG_WEB_TOKEN); open the page once as /?token=TOKEN")


def check_web(args: argparse.Namespace) -> None:
    """Refuse a network page without a token before anything is opened."""
    args.web_token = args.web_token or None  # NEMG_WEB_TOKEN="" is no token
    if args.web:
        from edge.web.server import check_token, parse_listen

        check_token(parse_listen(args.web)[0], args.web_token)


def open_web(args: argparse.Namespace, view, log_path: Path | None, model: Path | None,
             out=sys.stderr):
    """(server or None, the view the session uses)."""
    if not args.web:
        return None, view
    from edge.runtime import on_trial
    from edge.web.server import start_web

    return start_web(args.web, token=args.web_token, log_path=log_path, inner=view,
                     trial=on_trial(model), announce=out)


def run(args: argparse.Namespace) -> int:
    from edge.eventlog import default_db, open_for_session
    from edge.live import LiveSession
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified
    from edge.screen import make_view
    from wire.boards import get_frontend
    from wire.link import FrontEndClient, SerialLink

    check_web(args)
    sinks = recording_sinks(args)
    board = get_frontend(args.board)
    bundle = load_verified(args.model, args.trusted, num_threads=args.threads)
    pipe = Pipeline(bundle, num_threads=args.threads)
    log = None if args.no_log else open_for_session(args.log or default_db())
    view = make_view(sys.stdout, plain=args.plain)
    link = SerialLink(args.port, baudrate=board.baudrate)
    link.open()
    client = FrontEndClient(link)
    from edge.muap_live import MuapMonitor

    muap = None if args.no_muap else MuapMonitor(pipe.fs, pipe.mel.uv_per_lsb,
                                                 muscle=args.muscle, age=args.age)
    screen, view = open_web(args, view, log.path if log else None, args.model)
    try:
        session = LiveSession(pipe, client, board, log=log, view=view,
                              capture_minutes=args.capture_minutes,
                              capture_dir=(log.path.parent / "captures") if log else None,
                              muap=muap, sinks=sinks)
        summary = session.run(duration_s=args.duration)
    finally:
        if screen is not None:
            screen.stop()
    print(json.dumps(summary))
    return 0
