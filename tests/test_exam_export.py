"""A session as EDF+ (issue 34, point 2): ``nemg log export SESSION --edf OUT.edf`` read back
by an independent reader (pyedflib) and by the box's own; bad input is one line and leaves
no file."""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_nemg

from edge.errors import InputError
from edge.eventlog import EventLog
from edge.exam_export import (
    CORRECTION_PREFIX,
    MAX_TEXT_BYTES,
    MUSCLE_PREFIX,
    PADDING_TEXT,
    export_edf,
)
from edge.exam_recording import FORMAT, recording_paths
from edge.pipeline import Event

pyedflib = pytest.importorskip("pyedflib")

FS = 20_000
UV = 0.5
FIRST = 4_000
"""Stream index of the recording's first sample: events are timed from it."""
N = 7 * FS + 777
"""Samples recorded: not whole seconds, so the last data record is padded."""
STARTED = "2026-03-09T14:05:31.250+00:00"
LONG = "evidence: " + "a long line of evidence, " * 40


def write_recording(log_path: Path, session_id: int, samples: np.ndarray, *,
                    rate: int = FS, uv: float = UV, first: int = FIRST) -> None:
    """A session's recording as :class:`edge.exam_recording.ExamRecorder` leaves it beside
    the event log (raw little-endian int16 from stream index ``first``, and its JSON), with
    samples and a start of the test's choosing."""
    raw, meta = recording_paths(log_path, session_id)
    raw.parent.mkdir(parents=True, exist_ok=True)
    np.asarray(samples, "<i2").tofile(raw)
    meta.write_text(json.dumps({
        "format": FORMAT, "samples_file": raw.name, "session_id": session_id,
        "sample_rate_hz": rate, "uv_per_lsb": uv, "first_sample": first,
        "board": "nemg-fe1", "model_name": "nemg-default", "model_version": "1.6.1",
        "started": STARTED, "physical_range_uv": [-32768 * uv, 32767 * uv],
        "samples": len(samples)}))


def signal() -> np.ndarray:
    """N int16 codes of needle-like noise, the front end's extremes among them."""
    x = np.random.default_rng(34).normal(0, 600, N).round()
    x[[10, 20]] = -32768, 32767
    return np.clip(x, -32768, 32767).astype(np.int16)


def event(kind: str, label: str, a: int, b: int, conf: float = 0.0, detail: str = "") -> Event:
    return Event(kind, label, a, b, a / FS, b / FS, conf, (b - a) // (FS // 2), detail)


def make_session(tmp_path: Path, *, recorded: bool = True) -> tuple[EventLog, int]:
    """A session with every kind of event, a confirmation and a correction, the muscle in
    its summary, and (``recorded``) its samples."""
    log = EventLog(tmp_path / "events.db")
    sid = log.start_session("virtual:demo", "nemg-fe1", {"name": "nemg-default",
                                                           "version": "1.6.1"})
    a = FIRST
    log.log(event("label", "silence", 0, a + FS, 0.83))  # began before the recording
    fib = log.log(event("label", "fibrillation", a + FS, a + 3 * FS + 123, 0.91,
                        "evidence: backed by a train of 8.1 Hz, CV 2 %, steady"))
    log.log(event("gap", "gap", a + 3 * FS + 123, a + 3 * FS + 423,
                  detail="gap: 300 samples, concealed (zero-filled)"))
    psw = log.log(event("label", "positive_sharp_wave", a + 3 * FS + 423, a + 5 * FS, 0.77,
                        LONG))
    muap = {"summary": {"units": 4, "units_found": 6, "mean_amplitude_uv": 640.0,
                        "mean_duration_ms": 9.6, "polyphasic_share": 0.25,
                        "max_firing_rate_hz": 12.0, "recruitment_ratio": 2.5},
            "evidence": ["mean amplitude 640 µV, duration 9.6 ms: within the limits"]}
    log.log(event("muap", "normal", a + 5 * FS, a + 7 * FS, detail=json.dumps(muap)))
    log.correct(fib, "fibrillation", held=None, sample_rate_hz=FS, uv_per_lsb=UV)
    log.correct(psw, "fasciculation", held=None, sample_rate_hz=FS, uv_per_lsb=UV)
    log.end_session({"signal_seconds": N / FS, "muscle": "tibialis anterior", "age": 61})
    if recorded:
        write_recording(log.path, sid, signal())
    return log, sid


def read_annotations(path: Path) -> list[tuple[float, float, str]]:
    with pyedflib.EdfReader(str(path)) as r:
        onsets, durations, texts = r.readAnnotations()
    return [(float(o), float(d), str(t)) for o, d, t in zip(onsets, durations, texts,
                                                             strict=True)]


def test_pyedflib_reads_the_signal_annotations_and_header(tmp_path):
    log, sid = make_session(tmp_path)
    out = tmp_path / "exam.edf"
    got = export_edf(log, log.path, sid, out)
    assert got["samples"] == N and got["padded_samples"] == FS - 777

    with pyedflib.EdfReader(str(out)) as r:
        assert r.signals_in_file == 1 and r.getLabel(0) == "EMG"
        assert r.getSampleFrequency(0) == FS and r.getPhysicalDimension(0) == "uV"
        assert r.getPhysicalMinimum(0) == pytest.approx(-32768 * UV)
        assert r.getPhysicalMaximum(0) == pytest.approx(32767 * UV)
        uv = r.readSignal(0)
        header = r.getHeader()
        started = r.getStartdatetime()
    x = signal()
    assert uv.size == 8 * FS  # whole 1 s data records: the last one padded
    assert np.max(np.abs(uv[:N] - x * UV)) <= UV  # within one quantisation step
    assert not uv[N:].any()

    raw = out.read_bytes()[:256].decode("ascii")
    local = dt.datetime.fromisoformat(STARTED).astimezone().replace(tzinfo=None)  # the box's
    assert raw[8:88].strip() == "X X X X"  # anonymous by default
    assert raw[88:168].strip() == (f"Startdate {local.strftime('%d-%b-%Y').upper()} X X "
                                   "nemg-fe1 nemg-default 1.6.1")
    assert header["equipment"] == "nemg-fe1" and header["patientname"] == "X"
    assert started.replace(microsecond=0) == local.replace(microsecond=0)

    # one annotation per event and per correction, timed from the recording's first sample
    events, corrections = log.events(sid), log.corrections(sid)
    expected = [(ev["start_sample"], ev["end_sample"], ev["label"], False) for ev in events]
    expected += [(c["start_sample"], c["end_sample"], c["label"], True) for c in corrections]
    notes = read_annotations(out)
    extra = [n for n in notes if n[2].startswith(MUSCLE_PREFIX) or n[2] == PADDING_TEXT]
    mine = [n for n in notes if n not in extra]
    assert len(mine) == len(expected) == got["events"] + got["corrections"] == 7
    left = list(mine)
    for a, b, label, judged in expected:
        onset, end = max(a - FIRST, 0) / FS, (b - FIRST) / FS
        match = next(n for n in left if abs(n[0] - onset) <= 1 / FS and label in n[2]
                     and abs(n[0] + n[1] - end) <= 1 / FS
                     and n[2].startswith(CORRECTION_PREFIX) == judged)
        left.remove(match)
    texts = [n[2] for n in mine]
    assert any(t.startswith("fibrillation (conf 0.91) — evidence: backed by a train of "
                            "8.1 Hz") for t in texts)
    assert any("MUAP: normal" in t and "640 µV" in t and "within the limits" in t
               for t in texts)
    assert any(t.startswith("signal gap") and "300 samples" in t for t in texts)
    assert any("confirmed fibrillation" in t for t in texts)
    assert any("positive_sharp_wave corrected to fasciculation" in t for t in texts)
    assert any("began 0.200 s before the recording" in t for t in texts)
    assert all(len(t.encode()) <= MAX_TEXT_BYTES for t in texts)
    assert all(" " in t for _, _, t in notes)  # words: never taken for a label's name
    assert any(t.endswith("…") and t.startswith("positive_sharp_wave") for t in texts)
    assert sorted(n[2] for n in extra) == [MUSCLE_PREFIX + "tibialis anterior (age 61)",
                                           PADDING_TEXT]
    pad = next(n for n in extra if n[2] == PADDING_TEXT)
    assert pad[:2] == pytest.approx((N / FS, (FS - 777) / FS))


def test_the_cli_writes_it_with_a_patient_code_when_asked(tmp_path):
    log, sid = make_session(tmp_path)
    out = tmp_path / "usb" / "exam.edf"
    proc = run_nemg("log", "export", str(sid), "--edf", str(out), "--patient", "MRN 0042",
                    "--db", str(log.path), check=True)
    assert str(out) in proc.stdout and "5 events and 2 corrections" in proc.stdout
    assert out.read_bytes()[8:88].decode().strip() == "MRN_0042 X X X"
    assert [p.name for p in out.parent.iterdir()] == ["exam.edf"]  # no temporary left
    # the other exports are as they were
    proc = run_nemg("log", "export", str(sid), "--db", str(log.path), check=True)
    assert proc.stdout.splitlines()[0].startswith("id,session_id,kind,label")


def test_the_box_reads_its_header(tmp_path):
    from edge.readers.edf import read_header

    log, sid = make_session(tmp_path)
    out = export_edf(log, log.path, sid, tmp_path / "exam.edf")["path"]
    fd = os.open(out, os.O_RDONLY)
    try:
        h = read_header(Path(out), fd)
    finally:
        os.close(fd)
    (i,) = h.data_signals
    s = h.signals[i]
    assert (s.label, s.unit, h.rate_hz(i), h.records) == ("EMG", "uV", FS, 8)
    assert (s.dmin, s.dmax) == (-32768, 32767)
    assert s.pmin == pytest.approx(-32768 * UV) and s.pmax == pytest.approx(32767 * UV)


def test_the_box_opens_it(tmp_path):
    from edge.readers import load_recording

    log, sid = make_session(tmp_path)
    out = Path(export_edf(log, log.path, sid, tmp_path / "exam.edf")["path"])
    rec = load_recording(out)
    assert rec.sample_rate_hz == FS and rec.scale_known
    assert np.max(np.abs(rec.samples_uv[:N] - signal() * UV)) <= UV
    proc = run_nemg("classify", str(out), "--json")
    assert proc.returncode == 0, proc.stderr


def test_the_demo_exam_exports(demo_exam, tmp_path):
    """``nemg demo`` then ``nemg log export 1 --edf``: the session's signal and events."""
    db, _ = demo_exam
    assert recording_paths(db, 1)[0].is_file()  # the demo records beside its log
    from edge.exam_recording import open_recording

    out = tmp_path / "demo.edf"
    run_nemg("log", "export", "1", "--edf", str(out), "--db", str(db), check=True)
    rec = open_recording(db, 1)
    with pyedflib.EdfReader(str(out)) as r:
        uv = r.readSignal(0)
        assert r.getSampleFrequency(0) == rec.sample_rate_hz
    assert np.max(np.abs(uv[:rec.samples.size] - rec.samples * rec.uv_per_lsb)) \
        <= rec.uv_per_lsb
    log = EventLog(db)
    notes = [t for _, _, t in read_annotations(out)
             if not t.startswith(MUSCLE_PREFIX) and t != PADDING_TEXT]
    assert len(notes) == len(log.events(1)) + len(log.corrections(1))
    for ev in log.events(1):
        assert any(ev["label"] in t for t in notes), ev["label"]


@pytest.mark.parametrize("rate", [20_000, 25_600, 44_100, 48_000, 96_000, 30_011, 99_991])
def test_every_rate_gives_a_file_pyedflib_opens(tmp_path, rate):
    """Records of 1 s, or shorter binary fractions for a fast front end, whole samples
    each; events timed to the sample whatever decimals that takes."""
    log = EventLog(tmp_path / "events.db")
    sid = log.start_session("virtual:demo", "nemg-fe1", {"name": "m", "version": "1"})
    log.log(Event("label", "myotonic", 7, 7 + rate // 3, 7 / rate, (7 + rate // 3) / rate,
                  0.9, 1))
    n = 2 * rate + 13
    x = (np.arange(n) % 4000 - 2000).astype(np.int16)
    write_recording(log.path, sid, x, rate=rate, uv=0.195, first=0)
    got = export_edf(log, log.path, sid, tmp_path / "r.edf")
    assert got["record_s"] * rate == int(got["record_s"] * rate)
    with pyedflib.EdfReader(str(tmp_path / "r.edf")) as r:
        assert r.getSampleFrequency(0) == rate
        uv = r.readSignal(0)
        onsets, durations, _ = r.readAnnotations()
    assert np.max(np.abs(uv[:n] - x * 0.195)) <= 0.195
    assert abs(onsets[0] - 7 / rate) <= 1 / rate
    assert abs(durations[0] - (rate // 3) / rate) <= 1 / rate

# ---- bad input -------------------------------------------------------------------------


def read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write in: a read-only one, or for root (who writes in
    those) sysfs, which refuses new files to root too."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    for folder in (ro, Path("/sys")):
        try:
            (folder / "nemg-probe").touch()
        except OSError:
            return folder
        (folder / "nemg-probe").unlink()
    pytest.skip("no folder this user cannot write in")


@pytest.mark.parametrize("case", ["unknown session", "no recording", "empty recording",
                                  "no session given", "read-only folder", "folder is a file"])
def test_bad_input_is_one_line_and_leaves_no_file(tmp_path, case):
    log, sid = make_session(tmp_path)
    log.start_session("virtual:demo", "nemg-fe1", {"name": "nemg-default", "version": "1"})
    out = tmp_path / "out" / "exam.edf"
    session, fragments = str(sid), [str(out)]
    if case == "unknown session":
        session, fragments = "99", ["no session 99", str(log.path)]
    elif case == "no recording":
        session, fragments = str(sid + 1), [f"recording of session {sid + 1}"]
    elif case == "empty recording":
        write_recording(log.path, sid, np.zeros(0, np.int16))
        fragments = [str(recording_paths(log.path, sid)[0]), "no samples"]
    elif case == "read-only folder":
        out = read_only_folder(tmp_path) / "exam.edf"
        fragments = [str(out)]
    elif case == "folder is a file":
        (tmp_path / "out").write_text("not a folder")
        out = tmp_path / "out" / "exam.edf"
        fragments = [str(out)]
    args = ["log", "export", *([session] if case != "no session given" else []),
            "--edf", str(out), "--db", str(log.path)]
    if case == "no session given":
        fragments = ["--edf exports one session"]
    assert_one_line_error(run_nemg(*args), *fragments)
    assert not out.exists()
    if out.parent.is_dir() and out.parent != Path("/sys"):
        assert list(out.parent.iterdir()) == []


def test_a_write_that_fails_midway_leaves_the_old_file_whole(tmp_path, monkeypatch):
    import edfio

    log, sid = make_session(tmp_path)
    out = tmp_path / "exam.edf"
    out.write_bytes(b"the previous export")

    def full_disk(self, target):
        target.write(b"0       half a header")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(edfio.Edf, "write", full_disk)
    with pytest.raises(InputError, match=f"{out}: cannot write.*No space left"):
        export_edf(log, log.path, sid, out)
    assert out.read_bytes() == b"the previous export"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".exam.edf")]
