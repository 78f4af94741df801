"""``nemg boards``: the supported front ends and hosts."""

from __future__ import annotations

import argparse
import json


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per board")


def run(args: argparse.Namespace) -> int:
    from wire.boards import FrontEndProfile, all_boards, describe

    for name, board in all_boards().items():
        if args.json:
            print(json.dumps(describe(board)))
        elif isinstance(board, FrontEndProfile):
            print(f"{name:<18} front end  {board.adc_bits}-bit {board.sample_rate_hz} Hz "
                  f"{board.uv_per_lsb:g} µV/LSB {board.transport}  {board.description}")
        else:
            print(f"{name:<18} host       {board.threads} threads  {board.description}")
    return 0
