"""The box's event log: append-only, crash-safe, one session per run.

SQLite in WAL mode with ``synchronous=FULL``: each event is its own committed transaction,
and an event is reported as logged only after its commit returned, so a power cut or
SIGKILL loses nothing that was reported. Queried by ``nemg log list|show|export``.

Clinicians' corrections (the bedside screen, :mod:`edge.web`) go into their own table: the
event they judge, the label they gave (or their confirmation of the model's), the model's
answer, and the raw canonical int16 samples of that stretch. ``nemg log export --dataset``
turns them into a corpus folder that ``nemg train --init-from`` fine-tunes on.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ConfigError, InputError, NemgError
from edge.labels import UNCERTAIN, check_label
from edge.paths import default_db  # noqa: F401  (the log's default path, re-exported)
from edge.pipeline import Event
from edge.readers.wav import write_wav


@dataclass(frozen=True)
class HeldSamples:
    """The raw samples of a stretch, as far as the box still held them."""

    samples: np.ndarray
    """Canonical int16 at the model's rate; lost samples are zeros."""
    start_sample: int
    """Stream index of ``samples[0]``."""
    lost: int
    """Samples of the stretch not in ``samples`` or zero-filled in it (gaps, or older
    than the box keeps)."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  started TEXT NOT NULL,
  ended TEXT,
  source TEXT NOT NULL,
  board TEXT,
  model_name TEXT,
  model_version TEXT,
  model_sha256 TEXT,
  summary TEXT
);
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  kind TEXT NOT NULL,
  label TEXT NOT NULL,
  start_sample INTEGER NOT NULL,
  end_sample INTEGER NOT NULL,
  start_s REAL NOT NULL,
  end_s REAL NOT NULL,
  confidence REAL NOT NULL,
  windows INTEGER NOT NULL,
  detail TEXT,
  logged_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_session ON events(session_id);
CREATE TABLE IF NOT EXISTS corrections (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  event_id INTEGER NOT NULL REFERENCES events(id),
  session_id INTEGER NOT NULL REFERENCES sessions(id),
  label TEXT NOT NULL,
  confirmed INTEGER NOT NULL,
  model_label TEXT NOT NULL,
  model_confidence REAL NOT NULL,
  start_sample INTEGER NOT NULL,
  end_sample INTEGER NOT NULL,
  sample_rate_hz INTEGER NOT NULL,
  uv_per_lsb REAL NOT NULL,
  samples BLOB,
  samples_start INTEGER,
  samples_lost INTEGER NOT NULL,
  made_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS corrections_session ON corrections(session_id);
"""

CORRECTION_COLUMNS = ("id", "event_id", "session_id", "label", "confirmed", "model_label",
                      "model_confidence", "start_sample", "end_sample", "sample_rate_hz",
                      "uv_per_lsb", "samples_start", "samples_lost", "made_at")
"""A correction as queries return it (the samples themselves only by
:meth:`EventLog.correction_samples`)."""

EVENT_COLUMNS = ("id", "session_id", "kind", "label", "start_sample", "end_sample", "start_s",
                 "end_s", "confidence", "windows", "detail", "logged_at")


class LogWriteError(NemgError):
    """An event could not be committed (disk full, read-only, the file gone)."""


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class EventLog:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), isolation_level=None, timeout=10)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise ConfigError(f"event log {path}: {exc}") from None
        self.session_id: int | None = None

    def _write(self, sql: str, params: tuple) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, params)
        except sqlite3.Error as exc:
            raise LogWriteError(f"event log {self.path}: {exc}") from None

    def start_session(self, source: str, board: str | None, model: dict[str, str]) -> int:
        cur = self._write(
            "INSERT INTO sessions (started, source, board, model_name, model_version, "
            "model_sha256) VALUES (?, ?, ?, ?, ?, ?)",
            (_now(), source, board, model.get("name"), model.get("version"), model.get("sha256")))
        self.session_id = int(cur.lastrowid)
        return self.session_id

    def log(self, event: Event) -> int:
        """Commit one event; returns its id once it is durable."""
        if self.session_id is None:
            raise ConfigError("no session started")
        cur = self._write(
            "INSERT INTO events (session_id, kind, label, start_sample, end_sample, start_s, "
            "end_s, confidence, windows, detail, logged_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (self.session_id, event.kind, event.label, event.start_sample, event.end_sample,
             event.start_s, event.end_s, event.confidence, event.windows, event.detail, _now()))
        return int(cur.lastrowid)

    def correct(self, event_id: int, label: str, *, held: HeldSamples | None,
                sample_rate_hz: int, uv_per_lsb: float) -> int:
        """A clinician's judgement of label event ``event_id``: ``label`` (one of
        :data:`edge.labels.LABELS`), the same as the model's for a confirmation. ``held``:
        the raw samples of the stretch the box still holds (None: none any more). Returns
        the correction's id once it is durable."""
        ev = self.event(event_id)
        session_id, kind, model_label = ev["session_id"], ev["kind"], ev["label"]
        confidence, a, b = ev["confidence"], ev["start_sample"], ev["end_sample"]
        if kind != "label":
            raise InputError(f"event {event_id} is a {kind}, not a label to correct")
        if label == UNCERTAIN:
            raise InputError(f"event {event_id}: 'uncertain' is no label to train on; give "
                             "the one it was")
        check_label(label, f"correction of event {event_id}")
        blob = start = None
        lost = b - a
        if held is not None:
            blob, start = held.samples.astype("<i2").tobytes(), held.start_sample
            lost = held.lost
        cur = self._write(
            "INSERT INTO corrections (event_id, session_id, label, confirmed, model_label, "
            "model_confidence, start_sample, end_sample, sample_rate_hz, uv_per_lsb, "
            "samples, samples_start, samples_lost, made_at) VALUES "
            "(?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (event_id, session_id, label, int(label == model_label), model_label, confidence,
             a, b, int(sample_rate_hz), float(uv_per_lsb), blob, start, int(lost), _now()))
        return int(cur.lastrowid)

    def end_session(self, summary: dict[str, Any]) -> None:
        if self.session_id is not None:
            self._write("UPDATE sessions SET ended = ?, summary = ? WHERE id = ?",
                            (_now(), json.dumps(summary), self.session_id))

    def close(self) -> None:
        self.db.close()

    # ---- queries -----------------------------------------------------------------------
    def sessions(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT s.id, s.started, s.ended, s.source, s.board, s.model_name, "
            "s.model_version, (SELECT COUNT(*) FROM events e WHERE e.session_id = s.id), "
            "s.summary FROM sessions s ORDER BY s.id").fetchall()
        keys = ("id", "started", "ended", "source", "board", "model_name", "model_version",
                "events", "summary")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def events(self, session_id: int) -> list[dict[str, Any]]:
        if not self.db.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone():
            raise InputError(f"no session {session_id} in {self.path}")
        rows = self.db.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE "
                               "session_id = ? ORDER BY id", (session_id,)).fetchall()
        return [dict(zip(EVENT_COLUMNS, r, strict=True)) for r in rows]

    def event(self, event_id: int) -> dict[str, Any]:
        row = self.db.execute(f"SELECT {', '.join(EVENT_COLUMNS)} FROM events WHERE id = ?",
                              (event_id,)).fetchone()
        if row is None:
            raise InputError(f"no event {event_id} in {self.path}")
        return dict(zip(EVENT_COLUMNS, row, strict=True))

    def session(self, session_id: int) -> dict[str, Any]:
        for s in self.sessions():
            if s["id"] == session_id:
                return s
        raise InputError(f"no session {session_id} in {self.path}")

    def corrections(self, session_id: int | None = None) -> list[dict[str, Any]]:
        """Corrections, oldest first (of one session, or all)."""
        where, params = ("WHERE session_id = ?", (session_id,)) if session_id else ("", ())
        rows = self.db.execute(f"SELECT {', '.join(CORRECTION_COLUMNS)} FROM corrections "
                               f"{where} ORDER BY id", params).fetchall()
        return [dict(zip(CORRECTION_COLUMNS, r, strict=True)) for r in rows]

    def correction_samples(self, correction_id: int) -> np.ndarray | None:
        row = self.db.execute("SELECT samples FROM corrections WHERE id = ?",
                              (correction_id,)).fetchone()
        if row is None or row[0] is None:
            return None
        return np.frombuffer(row[0], dtype="<i2").astype(np.int16)

    def export_dataset(self, out: Path, session_id: int | None = None) -> dict[str, int]:
        """The corrections as a corpus folder (``wav/*.wav`` + ``labels.csv``, the format
        ``nemg train --data`` reads): one recording per judged event, the newest judgement
        of it labelling the whole file. Events whose samples the box no longer held are
        counted, not written. Returns the counts of what was written."""
        newest: dict[int, dict[str, Any]] = {}
        for c in self.corrections(session_id):
            newest[c["event_id"]] = c  # a later judgement of the same event replaces it
        written = without_samples = confirmed = 0
        rows = []
        try:
            (out / "wav").mkdir(parents=True, exist_ok=True)
            for c in newest.values():
                pcm = self.correction_samples(c["id"])
                if pcm is None or pcm.size == 0:
                    without_samples += 1
                    continue
                name = f"wav/session{c['session_id']}-event{c['event_id']}.wav"
                write_wav(out / name, pcm, c["sample_rate_hz"], c["uv_per_lsb"])
                rows.append((name, 0.0, round(pcm.size / c["sample_rate_hz"], 4), c["label"],
                             c["model_label"], c["confirmed"], c["session_id"],
                             c["event_id"]))
                written += 1
                confirmed += int(bool(c["confirmed"]))
            with (out / "labels.csv").open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["file", "start_s", "end_s", "label", "model_label", "confirmed",
                            "session_id", "event_id"])
                w.writerows(rows)
        except OSError as exc:
            raise ConfigError(f"dataset {out}: {exc.strerror or exc}") from None
        return {"recordings": written, "without_samples": without_samples,
                "corrected": written - confirmed, "confirmed": confirmed}

    def export_csv(self, session_id: int | None, out=sys.stdout) -> int:
        ids = [session_id] if session_id is not None else [s["id"] for s in self.sessions()]
        w = csv.DictWriter(out, fieldnames=EVENT_COLUMNS)
        w.writeheader()
        n = 0
        for sid in ids:
            for ev in self.events(sid):
                w.writerow(ev)
                n += 1
        return n


class SessionLog:
    """A live session's hold on its event log (None: not recorded). If a write fails
    (disk full, read-only), it says so once and lets go of the log: the box goes on
    classifying and showing without it, it must not stop for its log."""

    def __init__(self, log: EventLog | None) -> None:
        self.log = log
        self.logged = 0
        """Events the log took this session."""
        self.stopped: str | None = None
        """Why logging stopped mid-session, if it did."""

    def start(self, source: str, board: str | None, model: dict[str, str]) -> None:
        """Open the session's record."""
        self._call("start_session", source, board, model)

    def record(self, ev: Event) -> int | None:
        """Log one event; its id once committed (None: not logged)."""
        logged_id = self._call("log", ev)
        if logged_id is not None:
            self.logged += 1
        return logged_id

    def end(self, summary: dict[str, Any]) -> None:
        """Close the session's record with its summary."""
        self._call("end_session", summary)

    def _call(self, method: str, *args: Any) -> Any:
        if self.log is None:
            return None
        try:
            return getattr(self.log, method)(*args)
        except LogWriteError as exc:
            self.stopped = str(exc)
            self.log = None
            _warn(f"{exc}; event logging stopped, classification goes on")
            return None


def open_for_session(path: Path, warn=None) -> EventLog | None:
    """The log a live session records into, or None with one warning line if it cannot
    be opened: the box goes on classifying and showing without it."""
    try:
        return EventLog(path)
    except ConfigError as exc:
        (warn or _warn)(f"{exc}; events are shown but not recorded")
        return None


def _warn(msg: str) -> None:
    print(f"nemg: warning: {msg}", file=sys.stderr, flush=True)


def open_existing(path: Path) -> EventLog:
    if not path.is_file():
        raise InputError(f"no event log at {path} yet: 'nemg run' and 'nemg demo' record "
                         "their sessions there (--log chooses another file)")
    return EventLog(path)
