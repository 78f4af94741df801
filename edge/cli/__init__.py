"""``nemg``: one command line, each subcommand a thin layer over an importable API.

Each subcommand lives in its own module with ``configure(parser)`` (argparse only, no heavy
imports) and ``run(args) -> int``. Only the chosen subcommand's module is imported, so
``nemg --help`` and the box's commands never load TensorFlow.

Errors a user can act on (:class:`edge.errors.NemgError`) print one line and exit non-zero;
``--debug`` (or ``NEMG_DEBUG=1``) shows the traceback of anything else.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from edge import __version__
from edge.cli.failures import describe_exception
from edge.console import filtered_stderr
from edge.errors import MissingExtraError, NemgError


@dataclass(frozen=True)
class Command:
    """One ``nemg`` subcommand."""

    name: str
    """What the user types."""

    help: str
    """One line for ``nemg --help``."""

    module: str
    """Module with ``configure(parser)`` and ``run(args) -> int``."""

    extra: str = "edge"
    """The pyproject extra the command needs (named in the error if it is missing)."""

    native_chatter: bool = False
    """It loads TensorFlow, whose C++ start-up lines are filtered off stderr."""


COMMANDS: tuple[Command, ...] = (
    Command("demo", "classify a scripted examination from a virtual front end, live",
            "edge.cli.demo"),
    Command("run", "classify a front end live", "edge.cli.run"),
    Command("classify", "classify recording files with the live pipeline",
            "edge.cli.classify"),
    Command("muap", "quantitative MUAP analysis of a voluntary contraction",
            "edge.cli.muap"),
    Command("muap-reference", "a lab's own MUAP reference values from control subjects",
            "edge.cli.muap_reference"),
    Command("log", "list, show or export the event log", "edge.cli.log"),
    Command("info", "versions, TFLite runtime and platform of this installation",
            "edge.cli.info"),
    Command("features", "compute fixed-point Mel features of a signal file",
            "edge.cli.features"),
    Command("boards", "list the supported front ends and hosts", "edge.cli.boards"),
    Command("frontend", "virtual front end (simulate) and device info", "edge.cli.frontend"),
    Command("data", "synthesise, inspect and show labelled recordings", "edge.cli.data",
            "convert"),
    Command("train", "train or fine-tune a classifier on a corpus", "edge.cli.train",
            "convert", native_chatter=True),
    Command("quantize", "checkpoint -> full-int8 TFLite (PTQ or QAT)", "edge.cli.quantize",
            "convert", native_chatter=True),
    Command("evaluate", "evaluation report of a model on held-out data", "edge.cli.evaluate",
            "convert", native_chatter=True),
    Command("keys", "generate signing keys", "edge.cli.keys", "convert"),
    Command("bundle", "pack, verify or inspect a signed model bundle", "edge.cli.bundle"),
    Command("model", "the on-box model store: status, history, confirm, rollback",
            "edge.cli.model"),
    Command("flash", "install a signed bundle locally or over serial", "edge.cli.flash"),
    Command("flash-server", "receive bundles over serial (box maintenance mode)",
            "edge.cli.flash_server"),
    Command("sweep", "search the decision's parameters on Ray Tune (workstation, cluster)",
            "edge.cli.sweep", "cluster", native_chatter=True),
    Command("bench", "run benchmarks and print JSON", "edge.cli.bench",
            native_chatter=True),
)

# Third-party top-level modules that belong to an extra, for a clear "install X" error.
_EXTRA_OF_MODULE = {
    "tensorflow": "convert", "tf_keras": "convert", "tensorflow_model_optimization": "convert",
    "scipy": "convert", "matplotlib": "convert", "pyedflib": "convert", "wfdb": "convert",
    "serial": "edge", "cryptography": "edge", "numpy": "edge", "ray": "cluster",
}


def build_parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(
        prog="nemg",
        description="nemg-edge: names the spontaneous discharge under an EMG needle.",
        formatter_class=argparse.RawDescriptionHelpFormatter,  # one command per line
    )
    parser.add_argument("--version", action="version", version=f"nemg-edge {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    sub = parser.add_subparsers(
        dest="command",
        metavar="COMMAND",
        title="commands",
        description="\n".join(f"{c.name:<12} {c.help}" for c in COMMANDS),
        help=argparse.SUPPRESS,  # the description lists them; no stray 'COMMAND' line
    )
    return parser, sub


def _missing_extra(exc: ModuleNotFoundError, what: str) -> MissingExtraError | None:
    top = (exc.name or "").split(".")[0]
    if top in _EXTRA_OF_MODULE:
        return MissingExtraError(_EXTRA_OF_MODULE[top], what, top)
    return None


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, sub = build_parser()
    # Find the subcommand first so only its module is imported and configured.
    by_name = {c.name: c for c in COMMANDS}
    debug = "--debug" in argv or os.environ.get("NEMG_DEBUG") == "1"
    name = next((a for a in argv if not a.startswith("-")), None)
    try:
        if name is not None and name not in by_name:
            parser.error(f"unknown command {name!r} (see 'nemg --help')")
        cmd = by_name.get(name)
        try:  # importing, configuring or running a command may need an extra's module
            if cmd is not None:
                module = importlib.import_module(cmd.module)
                module.configure(sub.add_parser(cmd.name, help=cmd.help,
                                                description=cmd.help))
            args = parser.parse_args(argv)
            if args.command is None:
                parser.print_help()
                return 2
            logging.basicConfig(
                level=logging.INFO if args.verbose else logging.WARNING,
                format="%(levelname)s %(name)s: %(message)s",
            )
            if getattr(args, "ray", None) is not None:
                from nemg_common.executor import configure, ray_address

                configure(ray_address(args.ray))
            with filtered_stderr() if cmd.native_chatter else contextlib.nullcontext():
                return int(module.run(args) or 0)
        except ModuleNotFoundError as exc:  # a dependency of an extra that is not installed
            missing = _missing_extra(exc, f"'nemg {cmd.name}'") if cmd else None
            if missing is None:
                raise
            raise missing from None
    except NemgError as exc:
        print(f"nemg: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nemg: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # ``nemg classify … | head``: quietly, and no flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug, not bad input: one line unless asked for more
        if debug:
            raise
        print(f"nemg: internal error: {describe_exception(exc)} (rerun with --debug for "
              "details)", file=sys.stderr)
        return 70


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
