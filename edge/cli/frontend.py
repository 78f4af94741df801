"""``nemg frontend simulate|info``: the virtual front end, and asking a device who it is."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    sim = sub.add_parser("simulate", help="a pty that behaves like the device")
    sim.add_argument("--board", default="nemg-fe1", help="front-end profile")
    sim.add_argument("--source", default="scenario:exam",
                     help="sine[:HZ[:UV]], ramp, scenario:KIND, or a recording file")
    sim.add_argument("--fast", action="store_true", help="stream as fast as the reader reads")
    sim.add_argument("--once", action="store_true", help="play the source once, then stop")
    sim.add_argument("--link", help="also symlink the pty here (stable across reconnects)")
    sim.add_argument("--drop-rate", type=float, default=0.0, help="drop this share of frames")
    sim.add_argument("--corrupt-rate", type=float, default=0.0,
                     help="flip a bit in this share of bytes")
    sim.add_argument("--disconnect-after", type=float, metavar="S",
                     help="pull the cable once after S seconds of signal (counted in frames, "
                          "so it is the same sample however fast the reader is)")
    sim.add_argument("--reconnect-delay", type=float, default=0.5, metavar="S",
                     help="seconds of signal the cable stays out (those samples are lost)")
    sim.add_argument("--duration", type=float, metavar="S", help="exit after S seconds")
    sim.add_argument("--seed", type=int, default=0, help="fault generator seed")
    info = sub.add_parser("info", help="print what a device reports")
    info.add_argument("--port", required=True, help="device path, pty path or pyserial URL")
    info.add_argument("--json", action="store_true")
    info.add_argument("--timeout", type=float, default=1.0, metavar="S")


def _check_rate(name: str, value: float) -> None:
    from edge.errors import ConfigError

    if not 0.0 <= value < 1.0:
        raise ConfigError(f"--{name} must be in [0, 1), got {value}")


def simulate(args: argparse.Namespace) -> int:
    from rigs.sources import open_source
    from wire.boards import get_frontend
    from wire.virtual import Faults, VirtualFrontEnd

    _check_rate("drop-rate", args.drop_rate)
    _check_rate("corrupt-rate", args.corrupt_rate)
    profile = get_frontend(args.board)
    source = open_source(args.source, profile, loop=not args.once)
    frame_s = profile.samples_per_frame / profile.sample_rate_hz
    faults = Faults(drop_rate=args.drop_rate, corrupt_rate=args.corrupt_rate,
                    disconnect_after_frames=None if args.disconnect_after is None
                    else max(1, round(args.disconnect_after / frame_s)),
                    disconnect_frames=max(1, round(args.reconnect_delay / frame_s)),
                    seed=args.seed)
    vfe = VirtualFrontEnd(profile, source, fast=args.fast, faults=faults, link_path=args.link,
                          on_event=lambda m: print(f"# {m}", file=sys.stderr, flush=True))
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    path = vfe.start()
    print(path, flush=True)  # first stdout line: what to open
    end = None if args.duration is None else time.monotonic() + args.duration
    try:
        while not stop["now"] and (end is None or time.monotonic() < end):
            if vfe.error is not None:
                raise vfe.error
            if args.once and vfe.finished.is_set():
                time.sleep(0.5)  # let the reader drain the pty
                break
            time.sleep(0.05)
    except KeyboardInterrupt:
        pass
    finally:
        vfe.stop()
    s = vfe.stats
    print(f"# sent {s.frames_sent} frames ({s.samples_sent} samples), dropped "
          f"{len(s.dropped)}, corrupted {len(s.corrupted)}, disconnects {s.disconnects}",
          file=sys.stderr)
    return 0


def info(args: argparse.Namespace) -> int:
    from wire.link import FrontEndClient, SerialLink

    with SerialLink(args.port) as link:
        client = FrontEndClient(link, reconnect=False)
        rep = client.info(timeout_s=args.timeout)
        rtt = client.ping(timeout_s=args.timeout)
    d = {"port": args.port, "device_id": rep.device_id,
         "firmware": ".".join(map(str, rep.firmware)), "board_id": rep.board_id,
         "sample_rate_hz": rep.sample_rate_hz, "adc_bits": rep.adc_bits,
         "uv_per_lsb": rep.uv_per_lsb, "channels": rep.channels, "ping_ms": rtt * 1000}
    if args.json:
        print(json.dumps(d))
    else:
        for k, v in d.items():
            print(f"{k:<15} {v}")
    return 0


def run(args: argparse.Namespace) -> int:
    return simulate(args) if args.action == "simulate" else info(args)
