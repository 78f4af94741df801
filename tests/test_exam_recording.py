"""The whole examination recorded beside the event log (issue 34, point 1): by default in
``nemg demo`` and ``nemg run``, bit for bit what the session took, gaps as zeros on the
same stream axis as the events, readable up to the last flushed second after kill -9, and
stopped with one warning line (the session going on) by a full disk or a byte budget.

A full disk is a real one: a tiny tmpfs mounted over the recordings folder in a private
mount namespace (unshare). Nothing here waits on the clock but hang guards."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import (
    HANG_GUARD_S,
    ROOT,
    SHIPPED,
    assert_one_line_error,
    mount_namespaces_missing,
    run_nemg,
)

from edge.acquire.board import BoardScaler
from edge.errors import InputError
from edge.eventlog import EventLog
from edge.exam_recording import (
    RECORDINGS_DIR,
    ExamRecorder,
    open_recording,
    recording_paths,
)
from edge.live import LiveSession
from edge.pipeline import Pipeline
from edge.runtime import load_verified
from rigs.demo import DEMO_WAV
from rigs.sources import open_source
from wire.boards import get_frontend
from wire.link import FrontEndClient, SerialLink
from wire.virtual import Faults, VirtualFrontEnd

FE1 = get_frontend("nemg-fe1")
FS = FE1.sample_rate_hz


def canonical(source) -> np.ndarray:
    """A virtual front end's ADC values as the session's canonical int16."""
    uv = Pipeline(load_verified(SHIPPED)).mel.uv_per_lsb
    return BoardScaler.between(FE1.uv_per_lsb, uv)(source.values)


@pytest.fixture(scope="module")
def demo_source() -> np.ndarray:
    return canonical(open_source(str(DEMO_WAV), FE1, loop=False))


def stored_summary(db) -> dict:
    log = EventLog(db)
    try:
        return json.loads(log.session(1)["summary"])
    finally:
        log.close()


def warnings_of(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ln.startswith("nemg: warning: recording")]


@pytest.fixture(scope="module")
def demo_run(demo_exam):
    """``nemg demo --fast`` with an event log: (log path, the process)."""
    return demo_exam


# ---- recorded by default, bit for bit ------------------------------------------------------
def test_the_demo_records_the_whole_exam_bit_for_bit(demo_run, demo_source):
    db, proc = demo_run
    assert "Traceback" not in proc.stderr and not warnings_of(proc.stderr)
    rec = open_recording(db, 1)
    assert rec.first_sample == 0 and rec.sample_rate_hz == FS  # fast: the ADC starts at 0
    np.testing.assert_array_equal(rec.samples, demo_source)  # every sample, nothing more
    log = EventLog(db)
    session = log.session(1)
    b = load_verified(SHIPPED)
    m = rec.meta
    assert (m["session_id"], m["board"], m["model_name"], m["model_version"]) == \
        (1, session["board"], session["model_name"], session["model_version"]) == \
        (1, "nemg-fe1", b.name, b.version)
    assert m["model_sha256"] == b.sha256 and m["uv_per_lsb"] == rec.uv_per_lsb == 0.5
    assert m["physical_range_uv"] == [-32768 * 0.5, 32767 * 0.5]
    assert m["started"].endswith("+00:00") and m["started"] >= session["started"][:19]
    assert m["samples"] == demo_source.size and m["stopped"] is None
    # the recording is on the events' axis: every event lies inside it
    events = log.events(1)
    assert events and all(rec.first_sample <= e["start_sample"] <= e["end_sample"]
                          <= rec.first_sample + rec.samples.size for e in events)
    summary = json.loads(session["summary"])
    assert summary["recording"] == {"path": str(recording_paths(db, 1)[0]),
                                    "seconds": demo_source.size / FS, "stopped": None}


def test_no_recording_and_a_bad_budget(tmp_path):
    db = tmp_path / "events.db"
    run_nemg("demo", "--fast", "--plain", "--no-recording", "--log", str(db), check=True)
    assert not (tmp_path / RECORDINGS_DIR).exists()
    assert stored_summary(db)["recording"] is None
    for cmd in (("demo", "--fast"), ("run", "--port", str(tmp_path / "none"))):
        proc = run_nemg(*cmd, "--log", str(db), "--recording-budget-mb", "0")
        assert_one_line_error(proc, "--recording-budget-mb 0: must be above 0")


# ---- gaps --------------------------------------------------------------------------------
def test_gaps_are_zeros_and_indices_stay_aligned(tmp_path):
    """Dropped frames: the recording holds zeros where they were, everything else is
    what the front end sent, on the stream axis the log's gap events use."""
    from edge.readers import load_wav
    from edge.readers.wav import write_wav

    wav = tmp_path / "exam.wav"
    write_wav(wav, load_wav(DEMO_WAV).to_int16(0.5)[: 6 * FS], FS, 0.5)
    src = open_source(str(wav), FE1, loop=False)
    db = tmp_path / "events.db"
    log = EventLog(db)
    recorder = ExamRecorder()
    with VirtualFrontEnd(FE1, src, fast=True, faults=Faults(drop_rate=0.05, seed=3)) as vfe:
        link = SerialLink(vfe.path)
        link.open()
        session = LiveSession(Pipeline(load_verified(SHIPPED)),
                              FrontEndClient(link, reconnect=False), FE1, log=log,
                              sinks=[recorder])
        hang_guard = time.monotonic() + HANG_GUARD_S

        def heard_all() -> bool:
            heard = session.state.samples + session.pipeline.samples_lost
            return (vfe.finished.is_set()
                    and heard >= vfe.stats.sent_until - vfe.source_origin) \
                or time.monotonic() > hang_guard

        summary = session.run(until=heard_all)
    assert time.monotonic() <= hang_guard, "the live session hung"
    dropped = vfe.stats.dropped
    assert dropped and summary["gaps"] > 0
    rec = open_recording(db, 1)
    expected = canonical(src).copy()
    for index, n in dropped:
        expected[index - vfe.source_origin: index - vfe.source_origin + n] = 0
    assert rec.first_sample == vfe.source_origin
    assert rec.samples.size == vfe.stats.sent_until - rec.first_sample
    np.testing.assert_array_equal(rec.samples, expected[: rec.samples.size])
    gaps = [e for e in log.events(1) if e["kind"] == "gap"]
    for e in gaps:  # every gap the log holds reads back as zeros
        a, b = e["start_sample"] - rec.first_sample, e["end_sample"] - rec.first_sample
        assert not rec.samples[a:b].any()
    assert summary["recording"]["stopped"] is None
    log.close()


# ---- crash-safe ----------------------------------------------------------------------------
def test_kill_9_leaves_everything_flushed_readable(tmp_path, demo_source):
    """``nemg demo`` in real time, killed with SIGKILL once its recording holds 2 s: at
    least those samples read back, equal to what the front end played."""
    db = tmp_path / "events.db"
    raw, _meta = recording_paths(db, 1)
    with (tmp_path / "stderr").open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge.cli", "demo", "--plain", "--log", str(db)],
            stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        try:
            hang_guard = time.monotonic() + HANG_GUARD_S
            size = 0
            while size < 2 * 2 * FS:  # two seconds of int16
                assert proc.poll() is None, (tmp_path / "stderr").read_text()
                assert time.monotonic() < hang_guard, "no recording grew"
                time.sleep(0.05)
                size = raw.stat().st_size if raw.exists() else 0
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    rec = open_recording(db, 1)
    assert rec.samples.size >= size // 2
    assert rec.first_sample >= 0  # real time: the ADC had been running before START
    np.testing.assert_array_equal(rec.samples, demo_source[: rec.samples.size])
    assert "stopped" not in rec.meta  # the end never came
    # the session never ended, and still leaves the box: everything flushed, as EDF+
    from edge.readers import load_recording

    out = tmp_path / "killed.edf"
    run_nemg("log", "export", "1", "--edf", str(out), "--db", str(db), check=True)
    edf = load_recording(out)
    np.testing.assert_allclose(edf.samples_uv[: rec.samples.size],
                               rec.samples * rec.uv_per_lsb, atol=rec.uv_per_lsb)


# ---- disk full and budget ------------------------------------------------------------------
@pytest.mark.skipif(mount_namespaces_missing() is not None,
                    reason=f"{mount_namespaces_missing()}")
def test_a_full_disk_stops_the_recording_not_the_session(tmp_path, demo_run, demo_source):
    """The recordings folder on a 120 kB filesystem (the event log beside it is not): one
    warning line, the exam classified to its end, the summary says where the recording
    stopped, and what reached the disk reads back."""
    db = tmp_path / "events.db"
    folder = tmp_path / RECORDINGS_DIR
    folder.mkdir()
    kept = tmp_path / "kept"  # the tmpfs goes with its namespace: its files are copied out
    (kept / RECORDINGS_DIR).mkdir(parents=True)
    script = (f"mount -t tmpfs -o size=120k none {folder} && "
              f"{sys.executable} -m edge.cli demo --fast --plain --log {db}; rc=$?; "
              f"cp {folder}/* {kept / RECORDINGS_DIR}/ && exit $rc")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, cwd=ROOT, timeout=HANG_GUARD_S,
                          env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    raw = recording_paths(db, 1)[0]
    assert warnings_of(proc.stderr) == [ln for ln in proc.stderr.splitlines() if ln.strip()]
    [line] = warnings_of(proc.stderr)
    assert line.startswith(f"nemg: warning: recording {raw} stopped at ")
    assert "No space left on device" in line
    assert "segments named correctly" in proc.stdout  # the exam went on to its end
    summary = stored_summary(db)
    full = stored_summary(demo_run[0])
    assert summary["windows"] == full["windows"] and summary["logging_stopped"] is None
    assert summary["events_logged"] == full["events_logged"]
    r = summary["recording"]
    assert r["path"] == str(raw) and r["stopped"] == "No space left on device"
    assert 1.0 < r["seconds"] < demo_source.size / FS
    assert f"stopped at {round(r['seconds'], 2):g} s: " in line
    rec = open_recording(kept / "events.db", 1)
    assert rec.samples.size >= round(r["seconds"] * FS)
    np.testing.assert_array_equal(rec.samples, demo_source[: rec.samples.size])


def test_a_budget_stops_the_recording_where_it_says(tmp_path, demo_run, demo_source):
    db = tmp_path / "events.db"
    proc = run_nemg("demo", "--fast", "--plain", "--log", str(db),
                    "--recording-budget-mb", "0.1", check=True)
    raw = recording_paths(db, 1)[0]
    assert warnings_of(proc.stderr) == [
        f"nemg: warning: recording {raw} stopped at 2.5 s: its budget of 0.1 MB is spent; "
        "classification goes on"]
    assert "segments named correctly" in proc.stdout
    summary = stored_summary(db)
    assert summary["windows"] == stored_summary(demo_run[0])["windows"]
    assert summary["recording"] == {"path": str(raw), "seconds": 2.5,
                                    "stopped": "its budget of 0.1 MB is spent"}
    assert raw.stat().st_size == 100_000
    rec = open_recording(db, 1)
    np.testing.assert_array_equal(rec.samples, demo_source[:50_000])
    assert rec.meta["samples"] == 50_000 and rec.meta["stopped"] == summary["recording"][
        "stopped"]


# ---- the reader --------------------------------------------------------------------------
@pytest.fixture
def copied(tmp_path, demo_run):
    """A copy of the demo's recording to damage: (log path, raw, meta)."""
    src_raw, src_meta = recording_paths(demo_run[0], 1)
    db = tmp_path / "events.db"
    raw, meta = recording_paths(db, 1)
    raw.parent.mkdir()
    shutil.copy(src_raw, raw)
    shutil.copy(src_meta, meta)
    return db, raw, meta


def test_a_half_sample_at_the_end_is_ignored(copied, demo_source):
    db, raw, _meta = copied
    with raw.open("r+b") as f:
        f.truncate(2 * 1000 + 1)  # a power cut mid-sample
    rec = open_recording(db, 1)
    np.testing.assert_array_equal(rec.samples, demo_source[:1000])
    raw.write_bytes(b"")
    assert open_recording(db, 1).samples.size == 0


@pytest.mark.parametrize("damage, says", [
    (lambda raw, meta: meta.unlink(), "no such file"),
    (lambda raw, meta: raw.unlink(), "no such file"),
    (lambda raw, meta: meta.write_text(meta.read_text()[:40]), "not a recording's metadata"),
    (lambda raw, meta: meta.write_bytes(b"\xff\xfe{"), "not a recording's metadata"),
    (lambda raw, meta: meta.write_text("[1, 2]"), "not a JSON object"),
    (lambda raw, meta: meta.write_text('{"uv_per_lsb": 0.5, "first_sample": 0}'),
     "sample_rate_hz"),
    (lambda raw, meta: meta.write_text(
        '{"sample_rate_hz": 20000, "uv_per_lsb": "0.5", "first_sample": 0}'), "uv_per_lsb"),
    (lambda raw, meta: meta.write_text(
        '{"sample_rate_hz": 20000, "uv_per_lsb": 0.5, "first_sample": -1}'), "first_sample"),
    (lambda raw, meta: (raw.unlink(), raw.mkdir()), "is a folder"),
])
def test_an_absent_or_malformed_recording_is_one_error_naming_the_file(copied, damage, says):
    db, raw, meta = copied
    damage(raw, meta)
    with pytest.raises(InputError) as err:
        open_recording(db, 1)
    msg = str(err.value)
    assert "\n" not in msg and says in msg
    assert str(raw) in msg or str(meta) in msg
    with pytest.raises(InputError, match=r"recording of session 2: .*session-2\.json"):
        open_recording(db, 2)
