"""A session as EDF+ (``nemg log export SESSION --edf OUT.edf``): the whole exam's signal
and what the box found in it, in the format EMG and EEG machines exchange (Kemp & Olivan
2003), so EDFbrowser, MNE-Python and the carts' review software open it.

One signal, ``EMG`` in µV: the session's recording (:mod:`edge.exam_recording`) as the
front end's int16 codes, its physical range the front end's (int16 range × µV per LSB), so
nothing is requantised. Every event of the session (labels with their confidence and
evidence, MUAP findings with their figures, gaps), every clinician's correction, and the
muscle are EDF+ annotations, one each, timed from the recording's first sample. The patient
field is anonymous (``X X X X``) unless a code is given; the recording field names the board
and the model. Written by edfio (pure Python and numpy, so it runs on every board) into a
temporary file beside ``OUT`` that is renamed over it once complete and synced: a crash or
a pulled stick never leaves half a file at ``OUT``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import InputError, MissingExtraError
from edge.eventlog import EventLog
from edge.exam_recording import ExamRecording, open_recording, recording_paths
from edge.fileio import fsync_dir

SIGNAL_LABEL = "EMG"
PHYSICAL_DIMENSION = "uV"
TRANSDUCER = "needle electrode"
DIGITAL_RANGE = (-32768, 32767)
"""The front end's int16 codes, written as they are."""

MAX_RECORD_BYTES = 61440
"""EDF's recommended largest data record; a 1 s record of a fast front end is cut shorter."""
RECORD_DIVISORS = (1, 2, 4, 8, 16, 32, 64)
"""Data records of 1/k s, k among these: binary fractions, so every record's onset
(k · duration, in the annotations' time-keeping) is exact in a float and in decimal —
edflib refuses a file whose record onsets drift by 100 ns (0.2 · 3 = 0.6000000000000001)."""

MAX_TEXT_BYTES = 500
"""UTF-8 bytes of one annotation's text: edflib (pyedflib, EDFbrowser) keeps 512."""
ELLIPSIS = "…"

MUSCLE_PREFIX = "muscle: "
PADDING_TEXT = "no signal: padding to the end of the last data record"
CORRECTION_PREFIX = "clinician: "
"""How the annotations that are not one of the session's events begin."""


def export_edf(log: EventLog, log_path: Path, session_id: int, out: Path, *,
               patient: str | None = None) -> dict[str, Any]:
    """Write session ``session_id`` of ``log`` (kept at ``log_path``, beside which its
    recording lies) to ``out`` as EDF+. ``patient``: the hospital's patient code for the
    patient field (None: anonymous, ``X X X X``). Returns what was written: path, samples,
    rate, seconds, record duration, padding, and counts of annotations by kind. Raises
    :class:`~edge.errors.InputError` (naming the file) for a missing session or recording
    or an output that cannot be written."""
    try:
        import edfio
    except ModuleNotFoundError:
        raise MissingExtraError("edge", "EDF+ export", "edfio") from None
    session = log.session(session_id)  # "no session N in <log>"
    events = log.events(session_id)
    corrections = log.corrections(session_id)
    rec = open_recording(log_path, session_id)
    n = int(rec.samples.size)
    if n == 0:
        raise InputError(f"{recording_paths(log_path, session_id)[0]}: no samples recorded")
    rate = int(rec.sample_rate_hz)
    record_s, per_record = record_layout(rate)
    records = -(-n // per_record)
    pad = records * per_record - n
    codes = np.asarray(rec.samples, dtype=np.int16)
    if pad:
        codes = np.concatenate([codes, np.zeros(pad, np.int16)])
    signal = edfio.EdfSignal.from_digital(
        codes, rate, label=SIGNAL_LABEL, transducer_type=TRANSDUCER,
        physical_dimension=PHYSICAL_DIMENSION, physical_range=physical_range(rec.uv_per_lsb),
        digital_range=DIGITAL_RANGE)

    def note(start: int, end: int, text: str) -> tuple[float, float, str]:
        # timed in samples from the recording's first one (float seconds only at the end,
        # so a duration is exact); a stretch begun before the recording starts at it
        a, b = int(start) - rec.first_sample, int(end) - rec.first_sample
        if a < 0:
            text = _fit(f"{text} [began {-a / rate:.3f} s before the recording]")
            a = 0
        if b > n:  # the recording stopped (its disk budget spent) while the exam went on
            text = _fit(f"{text} [past the recording's end at {n / rate:.3f} s]")
        return a / rate, max(b - a, 0) / rate, text

    notes: list[tuple[float, float | None, str]] = [
        note(ev["start_sample"], ev["end_sample"], event_text(ev)) for ev in events]
    notes += [note(c["start_sample"], c["end_sample"], correction_text(c))
              for c in corrections]
    summary = session_summary(session)
    muscle = summary.get("muscle") or rec.meta.get("muscle")
    if muscle:
        age = summary.get("age", rec.meta.get("age"))
        notes.append((0.0, None, MUSCLE_PREFIX + str(muscle)
                      + (f" (age {age})" if age is not None else "")))
    if pad:
        notes.append((n / rate, pad / rate, PADDING_TEXT))
    start = start_time(rec, session)
    meta = rec.meta
    # "Startdate dd-MMM-yyyy X X board model version" in EDF+'s 80 characters
    header = edfio.Recording(
        startdate=start.date(),
        equipment_code=_subfield(meta.get("board") or session["board"], 18),
        additional=(_subfield(meta.get("model_name") or session["model_name"], 24),
                    _subfield(meta.get("model_version") or session["model_version"], 10)))
    edf = edfio.Edf([signal], patient=edfio.Patient(code=_subfield(patient, 60)),
                    recording=header, starttime=start.time(), data_record_duration=record_s,
                    annotations=[edfio.EdfAnnotation(o, d, t) for o, d, t in notes])
    _write_atomically(edf, out)
    return {"path": str(out), "session": session_id, "samples": n, "sample_rate_hz": rate,
            "seconds": n / rate, "record_s": record_s, "padded_samples": pad,
            "annotations": len(notes), "events": len(events),
            "corrections": len(corrections), "start": start.isoformat()}


def record_layout(rate: int) -> tuple[float, int]:
    """(data record duration in s, samples per record): 1 s, or the longest 1/k s that
    holds a whole number of samples within :data:`MAX_RECORD_BYTES` (the shortest that
    holds a whole number, if none is that small)."""
    fits = [k for k in RECORD_DIVISORS if rate % k == 0]  # 1 always does
    k = next((k for k in fits if 2 * rate // k <= MAX_RECORD_BYTES), fits[-1])
    return 1.0 / k, rate // k


def physical_range(uv_per_lsb: float) -> tuple[float, float]:
    """The front end's range in µV: what its int16 codes stand for."""
    return DIGITAL_RANGE[0] * uv_per_lsb, DIGITAL_RANGE[1] * uv_per_lsb


def start_time(rec: ExamRecording, session: dict[str, Any]) -> dt.datetime:
    """When the recording's first sample was taken, in the box's local time (EDF's header
    has no time zone; it is the clock at the patient's side), to the second: EDF+'s
    sub-second start shifts every annotation by a fraction edfio adds in floating point,
    and edflib (pyedflib, EDFbrowser) refuses the record onsets that come out 100 ns off."""
    stamp = rec.meta.get("started") or session["started"]
    try:
        t = dt.datetime.fromisoformat(str(stamp))
    except ValueError:
        raise InputError(f"session {session['id']}: start time {stamp!r} is not a date") \
            from None
    return (t.astimezone() if t.tzinfo else t).replace(microsecond=0)


def event_text(ev: dict[str, Any]) -> str:
    """One event as an annotation's text: label, confidence and evidence line."""
    detail = (ev.get("detail") or "").strip()
    if ev["kind"] == "gap":
        return _fit(f"signal gap — {detail}" if detail else "signal gap")
    if ev["kind"] == "muap":
        return _fit(f"MUAP: {ev['label']}" + muap_text(detail))
    head = (f"{ev['label']} (conf {ev['confidence']:.2f})" if ev["kind"] == "label"
            else f"{ev['kind']}: {ev['label']}")
    return _fit(f"{head} — {detail}" if detail else head)


def muap_text(detail: str) -> str:
    """A MUAP event's JSON detail (its summary and evidence) as ``— figures — evidence:``."""
    try:
        d = json.loads(detail) if detail else {}
    except ValueError:
        return f" — {detail}"
    if not isinstance(d, dict):
        return f" — {detail}"
    s = d.get("summary") or {}
    figures = []
    for key, fmt in (("units", "{} units"), ("mean_amplitude_uv", "{:.0f} µV"),
                     ("mean_duration_ms", "{:.1f} ms"), ("polyphasic_share", "{:.0%} polyphasic"),
                     ("max_firing_rate_hz", "fastest {:.0f} Hz"),
                     ("recruitment_ratio", "recruitment ratio {:g}")):
        if isinstance(s.get(key), int | float):
            figures.append(fmt.format(s[key]))
    evidence = "; ".join(str(e) for e in d.get("evidence") or [])
    return ((f" — {', '.join(figures)}" if figures else "")
            + (f" — evidence: {evidence}" if evidence else ""))


def correction_text(c: dict[str, Any]) -> str:
    """A clinician's judgement of an event as an annotation's text."""
    what = (f"confirmed {c['label']}" if c["confirmed"]
            else f"{c['model_label']} corrected to {c['label']}")
    return _fit(f"{CORRECTION_PREFIX}{what} (event {c['event_id']}, {c['made_at']})")


def _fit(text: str) -> str:
    """Control characters (EDF+'s separators among them) as spaces, and at most
    :data:`MAX_TEXT_BYTES` of UTF-8, cut on a character."""
    text = "".join(" " if ord(ch) < 32 or ord(ch) == 127 else ch for ch in text)
    raw = text.encode()
    if len(raw) <= MAX_TEXT_BYTES:
        return text
    keep = MAX_TEXT_BYTES - len(ELLIPSIS.encode())
    return raw[:keep].decode("utf-8", "ignore") + ELLIPSIS


def _subfield(value: Any, limit: int) -> str:
    """A header subfield as EDF+ wants it: printable ASCII without spaces, at most
    ``limit`` characters, ``X`` when unknown."""
    s = "".join(ch if 32 < ord(ch) < 127 else "_" for ch in str(value or "").strip())
    return s[:limit] or "X"


def session_summary(session: dict[str, Any]) -> dict[str, Any]:
    """A session's summary from the event log (``{}`` when it never ended or is unreadable:
    a box killed mid-exam leaves none)."""
    try:
        s = json.loads(session.get("summary") or "{}")
    except ValueError:
        return {}
    return s if isinstance(s, dict) else {}


def _write_atomically(edf: Any, out: Path) -> None:
    """``edf`` written to a temporary file beside ``out``, synced, then renamed over it."""
    tmp: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".part", dir=out.parent)
        tmp = Path(name)
        with os.fdopen(fd, "wb") as f:
            edf.write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out)
        tmp = None
        fsync_dir(out.parent, required=False)
    except OSError as exc:
        raise InputError(f"{out}: cannot write ({exc.strerror or exc})") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
