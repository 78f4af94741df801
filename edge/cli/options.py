"""Options shared by several commands."""

from __future__ import annotations

import argparse
from pathlib import Path


def option_anywhere(parser: argparse.ArgumentParser, actions: list[argparse.ArgumentParser],
                    *flags: str, **kwargs) -> None:
    """Add an option to a command and to each of its actions, so that both
    ``nemg model --store S status`` and ``nemg model status --store S`` work (one
    definition; an action's copy only sets the value when it is given)."""
    parser.add_argument(*flags, **kwargs)
    for action in actions:
        action.add_argument(*flags, **{**kwargs, "default": argparse.SUPPRESS})



def add_front_end_option(parser: argparse.ArgumentParser, help: str) -> None:
    """``--front-end BUNDLE_OR_SPEC``: whose front end (a bundle, a checkpoint's
    training.json or a JSON spec; :func:`edge.bundle.load_spec` reads each)."""
    parser.add_argument("--front-end", type=Path, metavar="BUNDLE_OR_SPEC", help=help)


def add_ray_option(parser: argparse.ArgumentParser) -> None:
    """``--ray [ADDRESS]``: per-recording work on a Ray cluster (workstation extra
    ``cluster``; :mod:`nemg_common.executor`); the results are those of the local path."""
    parser.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                        help="run the per-recording work on the Ray cluster at ADDRESS "
                             "(without one: $RAY_ADDRESS, else 'auto', the cluster started "
                             "on this machine by 'ray start --head'); same results as local")
