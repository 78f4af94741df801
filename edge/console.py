"""What ``nemg`` writes on stderr besides its own messages: progress, and the native
libraries' start-up chatter.

- :class:`Progress`: one status line, redrawn in place on a terminal; in a pipe or a log
  (no terminal) whole lines, one per tenth of the work, never carriage returns.
- :func:`filtered_stderr`: TensorFlow, LiteRT and absl write informational lines to file
  descriptor 2 from C++ (``oneDNN custom operations are on``, ``Could not find cuda
  drivers``, ``Created TensorFlow Lite XNNPACK delegate``…), before and between a command's
  own lines. Within it, those lines are dropped and everything else passes at once.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterator

#: Lines of native start-up chatter (bytes, as they reach file descriptor 2).
NOISE = (
    re.compile(rb"^WARNING: All log messages before absl::InitializeLog\(\) is called"),
    # absl lines from files that only report the machine (no GPU, CPU features); an E
    # from cuda_platform is "failed call to cuInit" on a machine without one
    re.compile(rb"^[IWE]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard|cuda_\w+)"
               rb"\.cc:\d+\] "),
    re.compile(rb"^INFO: Created TensorFlow Lite XNNPACK delegate for CPU\."),
)
_NOISE_START = re.compile(rb"^(W|I|E|WA|WAR|WARN|WARNI|WARNIN|WARNING|INFO|[IWE]\d)")

_stderr_tty: bool | None = None  # whether the real stderr is a terminal, while filtered


def is_noise(line: bytes) -> bool:
    return any(p.match(line.strip()) for p in NOISE)


def stderr_is_tty() -> bool:
    return sys.stderr.isatty() if _stderr_tty is None else _stderr_tty


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Drop native chatter from file descriptor 2 (this process and its children)."""
    global _stderr_tty
    if _stderr_tty is not None or os.environ.get("NEMG_DEBUG") == "1":
        yield
        return
    sys.stderr.flush()
    real = os.dup(2)
    r, w = os.pipe()
    _stderr_tty = os.isatty(real)
    os.dup2(w, 2)
    os.close(w)
    thread = threading.Thread(target=_forward, args=(r, real), daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(real, 2)  # the pipe's last writer is gone: the thread sees its end
        thread.join(timeout=5)
        os.close(real)
        _stderr_tty = None


def _forward(r: int, out: int) -> None:
    pending = b""
    with contextlib.suppress(OSError):
        while chunk := os.read(r, 65536):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            keep = b"".join(ln + b"\n" for ln in lines if not is_noise(ln))
            if pending and not _NOISE_START.match(pending):  # e.g. a \r progress line
                keep, pending = keep + pending, b""
            if keep:
                os.write(out, keep)
        if pending and not is_noise(pending):
            os.write(out, pending)
    os.close(r)


class Progress:
    """``update(done, total)``; the line says ``what`` and, from the rate so far, the time
    left."""

    def __init__(self, what: str, *, unit: str = "", stream=None) -> None:
        self.what = what
        self.unit = unit
        self.stream = stream
        self._t0: float | None = None
        self._tenth = -1

    def update(self, done: int, total: int, extra: str = "") -> None:
        out = self.stream or sys.stderr
        now = time.monotonic()
        if self._t0 is None or done <= 0:
            self._t0 = now
        frac = done / total if total else 1.0
        left = (now - self._t0) / frac * (1 - frac) if frac > 0 else 0.0
        text = f"  {self.what}: {done}/{total}{self.unit} ({frac * 100:3.0f} %), " \
               f"~{left:.0f} s left{extra}"
        tty = stderr_is_tty() if self.stream is None else out.isatty()
        if tty:
            print(f"\r{text}   ", end="\n" if done >= total else "", file=out, flush=True)
        elif int(frac * 10) > self._tenth or done >= total:
            self._tenth = int(frac * 10)
            print(text, file=out, flush=True)
