"""The whole examination, recorded beside the event log: crash-safe, within a disk budget.

``<log dir>/recordings/session-<id>.i16`` holds the session's canonical samples (int16 at
the model's rate, µV = value × ``uv_per_lsb``: what the pipeline took) as raw
little-endian int16 appended in stream order, the sample at stream index ``i`` at byte
``2 * (i - first_sample)``. Samples never received (a gap; its event is in the log) read
as zeros, so indices stay aligned with the log's events. ``session-<id>.json`` beside it
says what the samples are (rate, µV per LSB, first sample, board, model, start time, the
front end's physical range); it is written atomically (temporary file, fsync, rename) when
the first sample arrives, and again, with the end, when the recording ends.

Crash-safe like the event log: the samples are flushed after every second of signal
(counted in samples, never by the clock) and fsynced right after, and at the end, so after
a SIGKILL everything up to the last such second reads back, after a power cut everything
up to the last fsync (:func:`open_recording`; half a sample at the end is ignored). The
fsync runs on a thread of its own: the session's thread reads the serial port itself, and
a slow card holding it there for tens of milliseconds could overflow the port's buffer.

Like the event log too, a recording that cannot be written (a full disk, a read-only card)
or that has spent its byte budget stops with one warning line, and the session goes on
classifying; its summary says where and why it stopped.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from edge.errors import InputError
from edge.fileio import open_regular, read_regular_file, write_atomic
from edge.live import LiveSession, Sink
from edge.pipeline import Event

RECORDINGS_DIR = "recordings"
"""The folder of the recordings, beside the event log's database file."""

FORMAT = "nemg exam recording 1"
"""The metadata's ``format``: raw little-endian int16, one sample per stream index."""

MAX_META_BYTES = 1 << 20
"""A recording's metadata is a few hundred bytes; a larger file is not one."""

MB = 1_000_000
"""Bytes in a megabyte of ``--recording-budget-mb``."""


def recording_paths(log_path: Path, session_id: int) -> tuple[Path, Path]:
    """(raw samples file, metadata JSON) of a session:
    ``<log dir>/recordings/session-<id>.i16`` and ``.json``."""
    folder = Path(log_path).parent / RECORDINGS_DIR
    return folder / f"session-{session_id}.i16", folder / f"session-{session_id}.json"


@dataclass
class ExamRecording:
    """A session's recorded signal, as :func:`open_recording` reads it back."""

    samples: np.ndarray
    """int16 (a read-only memory map), one per stream index from ``first_sample``."""
    sample_rate_hz: int
    uv_per_lsb: float
    first_sample: int
    """Stream index of ``samples[0]`` (the session's first sample)."""
    meta: dict
    """Everything in the metadata JSON (board, model, started UTC, physical range, ...)."""


def open_recording(log_path: Path, session_id: int) -> ExamRecording:
    """The recording of session ``session_id`` of the event log at ``log_path``. Raises
    :class:`InputError` (one line, naming the file) when it is absent or malformed; an odd
    trailing byte (a power cut mid-sample) is ignored."""
    raw, meta_path = recording_paths(log_path, session_id)
    what = f"recording of session {session_id}"
    try:
        text = read_regular_file(meta_path, MAX_META_BYTES, "recording's metadata")
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    try:
        meta = json.loads(text)
    except ValueError as exc:  # also bytes that are not UTF-8
        raise InputError(f"{meta_path}: not a recording's metadata ({exc})") from None
    if not isinstance(meta, dict):
        raise InputError(f"{meta_path}: not a recording's metadata (not a JSON object)")
    fs, uv, first = meta.get("sample_rate_hz"), meta.get("uv_per_lsb"), meta.get("first_sample")
    if not _is_int(fs) or fs <= 0:
        raise InputError(f"{meta_path}: no valid sample_rate_hz ({fs!r})")
    if not _is_int(first) or first < 0:
        raise InputError(f"{meta_path}: no valid first_sample ({first!r})")
    if isinstance(uv, bool) or not isinstance(uv, int | float) or not math.isfinite(uv) \
            or uv <= 0:
        raise InputError(f"{meta_path}: no valid uv_per_lsb ({uv!r})")
    try:
        fd = open_regular(raw)
    except InputError as exc:
        raise InputError(f"{what}: {exc}") from None
    with os.fdopen(fd, "rb") as f:
        n = os.fstat(fd).st_size // 2  # a half sample at the end was cut by a power cut
        # the map outlives the descriptor (mmap holds its own)
        samples = (np.memmap(f, dtype="<i2", mode="r", shape=(n,)) if n
                   else np.zeros(0, np.int16))
    return ExamRecording(samples, int(fs), float(uv), int(first), meta)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _write_json_atomic(path: Path, obj: dict[str, Any]) -> None:
    """``obj`` as ``path``, all or nothing and durable (:func:`edge.fileio.write_atomic`:
    the rename survives a power cut)."""
    write_atomic(path, json.dumps(obj, indent=1).encode("utf-8"), durable=True)


class _Fsyncer:
    """fsyncs a file on a thread of its own whenever asked (requests made while one runs
    collapse into the next). ``synced``: the newest mark made durable; ``error``: the
    fsync that failed (then it stops)."""

    def __init__(self, fd: int, synced: int) -> None:
        self.fd = fd
        self.synced = synced
        self.error: OSError | None = None
        self._wanted: int | None = None
        self._closing = False
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="exam-recording-fsync",
                                        daemon=True)
        self._thread.start()

    def request(self, mark: int) -> None:
        """Make everything written so far (up to ``mark``) durable, soon."""
        with self._cond:
            self._wanted = mark
            self._cond.notify()

    def stop(self) -> None:
        """No more requests: returns once the thread is done with the file."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._wanted is None and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return  # whoever stops it syncs the end itself
                mark, self._wanted = self._wanted, None
            try:
                os.fsync(self.fd)
            except OSError as exc:
                self.error = exc
                return
            self.synced = mark


class ExamRecorder(Sink):
    """Records a live session's whole examination beside its event log (see the module).

    It starts with the first samples, once the log has opened the session (no log, or a
    log that could not open one: nothing is recorded). One buffered write per block, a
    flush per second of signal and its fsync on a thread; it never raises into the
    session: a write that fails, or ``budget_bytes`` spent, stops it with one warning
    line."""

    def __init__(self, *, budget_bytes: int | None = None) -> None:
        """``budget_bytes``: the most the samples file may hold (None: no limit but the
        disk's)."""
        self.budget_bytes = budget_bytes
        self.path: Path | None = None
        """The samples file (None: nothing recorded)."""
        self.stopped: str | None = None
        """Why the recording stopped before the session ended, if it did."""
        self._session: LiveSession | None = None
        self._file: BinaryIO | None = None
        self._meta_path: Path | None = None
        self._meta: dict[str, Any] = {}
        self._fs = 0
        self._first = 0  # stream index of the file's first sample
        self._next = 0  # stream index of the next sample the file takes
        self._flushed = 0  # stream index up to which the file is in the kernel's hands
        self._synced = 0  # ... and on disk (once the fsyncer has stopped)
        self._fsyncer: _Fsyncer | None = None
        self._over = False  # nothing more to record: stopped, or nowhere to

    @property
    def seconds(self) -> float:
        """Seconds of signal on disk (flushed and fsynced)."""
        return (self._durable() - self._first) / self._fs if self._fs else 0.0

    def _durable(self) -> int:
        f = self._fsyncer
        return self._synced if f is None else max(self._synced, f.synced)

    # ---- the sink --------------------------------------------------------------------------
    def attach(self, session: LiveSession) -> None:
        self._session = session

    def samples(self, pcm: np.ndarray, index: int) -> None:
        if self._over:
            return
        self._guarded(self._take, pcm, index)

    def finish(self) -> list[Event]:
        """Everything written is flushed and fsynced before the summary is made."""
        if self._file is not None:
            self._guarded(self._settle)
        return []

    def summarize(self, summary: dict) -> None:
        if self.path is not None:
            summary["recording"] = {"path": str(self.path), "seconds": self.seconds,
                                    "stopped": self.stopped}

    def close(self) -> None:
        if self._file is not None:
            self._guarded(self._end)
        self._stop_fsyncer()  # (a stop above already did)

    # ---- writing ---------------------------------------------------------------------------
    def _guarded(self, step, *args: Any) -> None:
        """Run a step; a failure stops the recording, never the session."""
        try:
            step(*args)
        except OSError as exc:
            self._stop(exc.strerror or str(exc))
        except Exception as exc:  # a bug: still no reason to stop the examination
            self._stop(f"internal error: {type(exc).__name__}: {exc}")

    def _take(self, pcm: np.ndarray, index: int) -> None:
        if self._file is None and not self._begin(index):
            return
        if self._fsyncer is not None and self._fsyncer.error is not None:
            raise self._fsyncer.error
        if index < self._next:  # already recorded (the pipeline refuses a stream going back)
            pcm = pcm[self._next - index:]
            index = self._next
        room = None if self.budget_bytes is None else \
            self.budget_bytes // 2 - (index - self._first)  # samples allowed from index on
        if room is not None and room <= 0:
            self._stop(self._budget_spent())
            return
        if index > self._next:  # samples never received: a hole, read back as zeros
            self._file.seek(2 * (index - self._next), os.SEEK_CUR)
            self._next = index
        spent = room is not None and pcm.size >= room
        if spent:
            pcm = pcm[:room]
        if pcm.size:
            self._file.write(np.ascontiguousarray(pcm, dtype="<i2").data)
            self._next += pcm.size
        if spent:
            self._stop(self._budget_spent())
        elif self._next - self._flushed >= self._fs:  # a second of signal: to the disk
            self._file.flush()
            self._flushed = self._next
            if self._fsyncer is None:
                self._fsyncer = _Fsyncer(self._file.fileno(), self._durable())
            self._fsyncer.request(self._next)

    def _begin(self, index: int) -> bool:
        """Open the files at the first samples; False: nothing to record into."""
        s = self._session
        log = s.log if s is not None else None
        if log is None or log.session_id is None:
            self._over = True
            return False
        raw, self._meta_path = recording_paths(log.path, log.session_id)
        self.path = raw
        p, b = s.pipeline, s.pipeline.bundle
        self._fs = int(p.fs)
        self._first = self._next = self._flushed = self._synced = index
        uv = float(p.mel.uv_per_lsb)
        self._meta = {
            "format": FORMAT, "samples_file": raw.name, "session_id": log.session_id,
            "sample_rate_hz": self._fs, "uv_per_lsb": uv, "first_sample": index,
            "board": s.board.name, "board_sample_rate_hz": s.board.sample_rate_hz,
            "source": s.source, "model_name": b.name, "model_version": b.version,
            "model_sha256": b.sha256, "started": _now(),
            "physical_range_uv": [-32768 * uv, 32767 * uv],
        }
        raw.parent.mkdir(parents=True, exist_ok=True)
        _write_json_atomic(self._meta_path, self._meta)  # before any sample: never orphans
        # a second of signal per write: the per-second flush is the only write in between
        self._file = raw.open("wb", buffering=2 * self._fs)
        return True

    def _stop_fsyncer(self) -> None:
        if self._fsyncer is not None:
            self._fsyncer.stop()
            self._synced = self._durable()
            self._fsyncer = None

    def _settle(self) -> None:
        """Everything written on disk, here and now (the fsyncer stopped first: the file
        may be closed next)."""
        self._stop_fsyncer()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._flushed = self._synced = self._next

    def _budget_spent(self) -> str:
        return f"its budget of {self.budget_bytes / MB:g} MB is spent"

    def _end(self) -> None:
        """The session is over: the last samples on disk, the end in the metadata."""
        self._file.truncate()  # a gap at the very end still reads back as zeros
        self._settle()
        self._file.close()
        self._file = None
        self._write_end()

    def _write_end(self) -> None:
        _write_json_atomic(self._meta_path, {**self._meta, "ended": _now(),
                                             "samples": self._synced - self._first,
                                             "stopped": self.stopped})

    def _stop(self, reason: str) -> None:
        """Stop recording (one warning line): what is on disk stays readable."""
        self._over = True
        if self.stopped is not None or self.path is None:
            return
        self.stopped = reason
        if self._file is not None:
            with contextlib.suppress(OSError):  # the disk may refuse this too
                self._settle()
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None
            with contextlib.suppress(OSError):
                self._write_end()
        print(f"nemg: warning: recording {self.path} stopped at {round(self.seconds, 2):g} s: "
              f"{reason}; classification goes on", file=sys.stderr, flush=True)
