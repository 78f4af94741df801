"""This process's memory, as the kernel counts it (Linux ``/proc/self/status``).

``VmHWM`` is the process's own high-water mark: unlike ``getrusage``'s ``ru_maxrss``, which
survives ``exec``, it does not report what a parent held before it (a benchmark that ran
TensorFlow, then started the box's process, would otherwise read TensorFlow's peak).
Elsewhere ``ru_maxrss`` is the best there is.
"""

from __future__ import annotations

import functools
import resource
import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")


def _status_mb(field: str) -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MB)."""
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    kb = 1024 if sys.platform == "darwin" else 1  # ru_maxrss: bytes on macOS, kB elsewhere
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / kb / 1024


def rss_mb() -> float | None:
    """Resident memory of this process now (MB; None where the kernel does not say)."""
    return _status_mb("VmRSS")


def release_free_memory() -> None:
    """Hand memory the allocator holds but no object uses back to the system (glibc's
    ``malloc_trim``; nothing elsewhere). After a big transient job — a MUAP analysis — so
    a long session's resident memory follows what it holds, not what it once needed."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    try:
        import ctypes

        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None
