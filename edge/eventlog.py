"""The box's event log: append-only, crash-safe, one session per run.

SQLite in WAL mode with ``synchronous=FULL``: each event is its own committed transaction,
and an event is reported as logged only after its commit returned, so a power cut or
SIGKILL loses nothing that was reported. Queried by ``nemg log list|show|export``.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.errors import ConfigError, InputError, NemgError
from edge.paths import default_db  # noqa: F401  (the log's default path, re-exported)
from edge.pipeline import Event

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
"""

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
