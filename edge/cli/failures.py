"""How the CLI reports what went wrong: one line per failure, never a traceback (unless
``--debug``)."""

from __future__ import annotations

import sys
from pathlib import Path


def describe_exception(exc: BaseException, limit: int = 300) -> str:
    """``Type: text`` on one line and at most ``limit`` characters, however long the text
    (an exception can carry a whole model's bytes)."""
    text = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def report_failure(path: Path, exc: Exception, debug: bool) -> int:
    """One ``nemg: error:`` line naming the file (for a batch that goes on); 1. An
    internal error is re-raised under ``--debug``."""
    from edge.errors import NemgError

    if isinstance(exc, BrokenPipeError):  # the reader went away (``| head``): stop the batch
        raise exc
    if isinstance(exc, NemgError):
        msg = str(exc)
        print(f"nemg: error: {msg if str(path) in msg else f'{path}: {msg}'}",
              file=sys.stderr, flush=True)
        return 1
    if debug:
        raise exc
    print(f"nemg: error: {path}: internal error ({describe_exception(exc)}); "
          "rerun with --debug for details", file=sys.stderr, flush=True)
    return 1
