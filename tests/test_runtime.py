"""The edge runtime: live = classify bit for bit, gaps, crash-safe log, bad files, demo."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import HANG_GUARD_S, ROOT, run_nemg

from edge.acquire.board import BoardScaler
from edge.eventlog import EventLog, LogWriteError
from edge.live import LiveSession
from edge.pipeline import Pipeline
from edge.readers.wav import write_wav
from edge.runtime import SHIPPED_MODEL, load_verified
from rigs.sources import open_source
from wire.boards import get_frontend
from wire.link import FrontEndClient, SerialLink
from wire.virtual import Faults, VirtualFrontEnd

FE1 = get_frontend("nemg-fe1")


@pytest.fixture(scope="module")
def bundle():
    return load_verified(SHIPPED_MODEL)


@pytest.fixture(scope="module")
def exam_wav(tmp_path_factory):
    """12 s of the scripted exam (fibrillation into PSW and fasciculation)."""
    from edge.readers import load_wav
    from rigs.demo import DEMO_WAV

    rec = load_wav(DEMO_WAV)
    x = rec.to_int16(0.5)[8 * 20_000 : 20 * 20_000]
    p = tmp_path_factory.mktemp("exam") / "exam.wav"
    write_wav(p, x, 20_000, 0.5)
    return p, x


def live_windows(bundle, path, *, faults=None, link_path=None, log=None):
    src = open_source(str(path), FE1, loop=False)
    with VirtualFrontEnd(FE1, src, fast=True, faults=faults, link_path=link_path) as vfe:
        link = SerialLink(str(link_path or vfe.path))
        link.open()
        client = FrontEndClient(link, reconnect=link_path is not None,
                                backoff_initial_s=0.02, backoff_max_s=0.2)
        session = LiveSession(Pipeline(bundle), client, FE1, log=log)
        hang_guard = time.monotonic() + HANG_GUARD_S
        hung = []

        def heard_all() -> bool:  # every sample sent is heard, or lost in an announced gap
            heard = session.state.samples + session.pipeline.samples_lost
            return vfe.finished.is_set() and heard >= vfe.stats.sent_until - vfe.source_origin

        def done() -> bool:
            if time.monotonic() > hang_guard:
                hung.append(True)
            return heard_all() or bool(hung)

        summary = session.run(until=done)
    assert not hung, f"the live session hung: not every sample heard in {HANG_GUARD_S:g} s"
    return session, summary


def test_live_over_a_pty_equals_classify_bit_for_bit(bundle, exam_wav):
    from edge.offline import classify_file

    path, _x = exam_wav
    offline = classify_file(lambda: Pipeline(bundle), path)
    session, summary = live_windows(bundle, path)
    live = session.state.windows
    assert summary["gaps"] == 0 and len(live) == len(offline["windows"]) > 10
    for w, o in zip(live, offline["windows"], strict=True):
        assert w.label == o["label"]
        assert (round(w.start_s, 4), round(w.end_s, 4)) == (o["start_s"], o["end_s"])
        np.testing.assert_array_equal(np.round(w.probabilities, 4),
                                      [o["probabilities"][lab] for lab in bundle.labels])


def test_disconnect_mid_stream_gives_a_gap_and_recovery(bundle, exam_wav, tmp_path):
    path, _ = exam_wav
    # At 5 s of signal (206 kB): more than the device buffers (64 kB) plus a pty holds, so the
    # host is already reading when the cable comes out, however fast either side runs.
    faults = Faults(disconnect_after_frames=500, disconnect_frames=30)
    log = EventLog(tmp_path / "ev.db")
    session, summary = live_windows(bundle, path, faults=faults,
                                    link_path=tmp_path / "ttyV", log=log)
    assert summary["gaps"] == 1 and summary["samples_lost"] > 0 and summary["reconnects"] == 1
    gaps = [e for e in log.events(log.session_id) if e["kind"] == "gap"]
    assert len(gaps) == 1 and "reconnect" in gaps[0]["detail"]
    g0, g1 = gaps[0]["start_sample"], gaps[0]["end_sample"]
    assert g1 - g0 == summary["samples_lost"]
    for w in session.state.windows:  # no window spans the gap
        assert w.end_sample <= g0 or w.start_sample >= g1
    assert any(w.start_sample >= g1 for w in session.state.windows)  # recovered


def test_gap_closes_the_window_in_the_pipeline(bundle):
    rng = np.random.default_rng(0)
    x = rng.normal(0, 20, 3 * 20_000).astype(np.int16)
    p = Pipeline(bundle)
    _r1, _ = p.push(x[:30_000], 0)
    _, ev = p.push(x[30_000:], 30_000 + 5_000)  # 5000 samples never arrived
    assert [e.kind for e in ev][-1] == "gap" and ev[-1].end_sample - ev[-1].start_sample == 5000
    r2, _ = p.push(x[:45_000])
    assert all(w.start_sample >= 35_000 for w in r2) and r2[0].start_sample == 35_000


def test_board_scaling_is_exact_for_the_reference_and_integer_for_others():
    adc = np.array([-40000, -32768, -1, 0, 1, 32767, 40000])
    np.testing.assert_array_equal(BoardScaler.between(0.5, 0.5)(adc),
                                  np.clip(adc, -32768, 32767))
    s = BoardScaler.between(0.02235, 0.5)
    v = np.arange(-8_388_608, 8_388_607, 99_991)
    assert np.abs(s(v) - np.clip(np.round(v * 0.0447), -32768, 32767)).max() <= 1


def test_sigkill_loses_no_event_reported_as_logged(tmp_path):
    import threading

    db = tmp_path / "events.db"
    link = tmp_path / "ttyK"
    sim = subprocess.Popen([sys.executable, "-m", "edge.cli", "frontend", "simulate",
                            "--source", "scenario:exam", "--fast", "--link", str(link),
                            "--drop-rate", "0.05"],  # gap events: logged whatever the model
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                           cwd=ROOT)
    try:
        sim.stdout.readline()
        run = subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--port", str(link),
                                "--log", str(db), "--plain"], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True, cwd=ROOT,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        reported = []
        hang = threading.Timer(HANG_GUARD_S, run.kill)  # against a hang only
        hang.start()
        while len(reported) < 6 and (line := run.stdout.readline()):
            if "#" in line:
                reported.append(int(line.rsplit("#", 1)[1]))
        hang.cancel()
        run.send_signal(signal.SIGKILL)
        run.wait(timeout=10)
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    assert len(reported) >= 6
    rows = {r[0] for r in sqlite3.connect(db).execute("SELECT id FROM events")}
    assert set(reported) <= rows


def _wav_with_scale(p, scale: str) -> None:
    """3 s of a WAV whose recorded scale says ``uv_per_lsb=SCALE`` (same chunk length)."""
    write_wav(p, np.zeros(60_000, np.int16), 20_000, 0.5)
    ours = b"nemg uv_per_lsb=0.5\0"
    theirs = f"uv_per_lsb={scale}".encode().ljust(len(ours), b"\0")
    assert len(theirs) == len(ours)
    p.write_bytes(p.read_bytes().replace(ours, theirs))


def test_classify_json_schema_and_bad_files(bundle, exam_wav, tmp_path):
    path, _ = exam_wav
    bad = {
        "truncated.wav": lambda p: p.write_bytes(path.read_bytes()[:5000]),
        "empty.wav": lambda p: write_wav(p, np.zeros(0, np.int16), 20_000, 0.5),
        "notawav.wav": lambda p: p.write_bytes(b"hello"),
        "nan.csv": lambda p: p.write_text("time_s,emg_uV\n0,1\n0.00005,nan\n0.0001,2\n"),
        "short.wav": lambda p: write_wav(p, np.zeros(100, np.int16), 20_000, 0.5),
        "missing.edf": lambda p: None,
        # 200 kB at 1 Hz once became 2·10⁹ samples and an OOM kill
        "one-hertz.wav": lambda p: write_wav(p, np.zeros(100_000, np.int16), 1, 0.5),
        "scale-zero.wav": lambda p: _wav_with_scale(p, "0"),
        "scale-negative.wav": lambda p: _wav_with_scale(p, "-2"),
        "scale-infinite.wav": lambda p: _wav_with_scale(p, "1e400"),
        "scale-garbled.wav": lambda p: _wav_with_scale(p, "1.2.3"),
        "garbage.csv": lambda p: p.write_text("abc\ndef\nghi\n"),  # once aborted the batch
        "fifo.wav": lambda p: os.mkfifo(p),  # once hung classify forever
        "zero.wav": lambda p: p.symlink_to("/dev/zero"),  # once a MemoryError
    }
    args = ["classify", "--json", str(path)]
    for name, make in bad.items():
        make(tmp_path / name)
        args.append(str(tmp_path / name))
    args.append(str(path))
    proc = run_nemg(*args, timeout=HANG_GUARD_S)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("nemg: error:")]
    assert len(errors) == len(bad)
    for name in bad:
        assert any(name in e for e in errors), name
    results = [json.loads(ln) for ln in proc.stdout.splitlines()]
    assert len(results) == 2  # the good file before and after the bad ones
    r = results[0]
    assert set(r) == {"file", "sample_rate_hz", "duration_s", "model", "input", "windows",
                      "summary"}
    assert r["input"] == {"sample_rate_hz": 20_000.0, "band_hz": 10_000.0, "scale": "recorded"}
    assert set(r["model"]) == {"name", "version", "sha256"}
    assert set(r["summary"]) == {"label", "confidence", "pathological"}
    w = r["windows"][0]
    assert set(w) == {"start_s", "end_s", "label", "confidence", "unfamiliar", "contracting",
                      "probabilities", "evidence", "criterion"}
    assert abs(sum(w["probabilities"].values()) - 1) < 0.01


def test_log_commands(bundle, exam_wav, tmp_path):
    path, _ = exam_wav
    db = tmp_path / "l.db"
    live_windows(bundle, path, log=EventLog(db))
    out = run_nemg("log", "--db", str(db), "list", check=True).stdout
    assert out.strip().startswith("1")
    assert "label" in run_nemg("log", "--db", str(db), "show", "1", check=True).stdout
    csv_out = run_nemg("log", "--db", str(db), "export", "--csv", check=True).stdout
    assert csv_out.splitlines()[0].startswith("id,session_id,kind,label")
    proc = run_nemg("log", "--db", str(tmp_path / "none.db"), "list")
    assert proc.returncode != 0 and "no event log" in proc.stderr


def test_demo_runs_and_scores_the_script(tmp_path):
    env = {"NEMG_LOG_DB": str(tmp_path / "d.db")}  # the default log: 'nemg log list' finds it
    proc = run_nemg("demo", "--fast", "--plain", timeout=HANG_GUARD_S, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "segments named correctly" in proc.stdout
    ok = int(proc.stdout.split("segments named correctly")[0].split()[-1].split("/")[0])
    assert ok >= 11, proc.stdout  # 12/12 with the shipped model; one segment of slack
    sessions = run_nemg("log", "list", env=env, check=True).stdout.splitlines()
    assert len(sessions) == 1 and " demo" in sessions[0]
    assert all(len(ln) <= 80 for ln in proc.stdout.splitlines())  # an 80-column terminal
    from edge.labels import PATHOLOGICAL
    from rigs.demo import segments

    log = EventLog(tmp_path / "d.db")
    for ev in log.events(1):  # no pathological event where the script has none
        if ev["label"] in PATHOLOGICAL:
            mid = (ev["start_s"] + ev["end_s"]) / 2
            here = next(lab for a, b, lab in segments() if a <= mid < b)
            assert here == ev["label"], ev  # was: fasciculation at motor_unit -> artifact


def test_a_full_disk_stops_the_log_not_the_session(bundle, exam_wav, tmp_path):
    path, _ = exam_wav
    log = EventLog(tmp_path / "full.db")
    pages = log.db.execute("PRAGMA page_count").fetchone()[0]
    log.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full: SQLITE_FULL
    for filler in ("filler " * 100, ""):  # big rows, then small ones: not a byte left
        with pytest.raises(LogWriteError, match="full"):
            for _ in range(10_000):
                log.start_session(filler, None, {})
    session, summary = live_windows(bundle, path, log=log)
    assert "full" in summary["logging_stopped"]
    assert summary["events_logged"] == 0 and session.log is None
    offline = session.pipeline.windows_done
    assert offline == len(session.state.windows) > 10  # every window still classified


def returns(fn, hang_s: float = HANG_GUARD_S):
    """``fn()``'s result, asserting that it returned at all: a guard against a hang (the
    session once waited forever here), not a measure of speed — the limit is minutes."""
    import threading

    out: list = []

    def call() -> None:
        try:
            out.append((True, fn()))
        except BaseException as exc:  # re-raised in the test's thread
            out.append((False, exc))

    t = threading.Thread(target=call, daemon=True)
    t.start()
    t.join(hang_s)
    assert out, f"still running after {hang_s:g} s: it hangs"
    ok, value = out[0]
    if not ok:
        raise value
    return value


def test_real_time_session_ends_when_the_source_ends_and_on_a_silent_link(bundle, tmp_path):
    # Real rate, not --fast: the last samples arrive before the device says it is done, so
    # the session must wake up on its own to notice (it once waited forever here).
    from edge.readers import load_wav

    x = load_wav(ROOT / "rigs" / "data" / "demo-exam.wav").to_int16(0.5)[: 3 * 20_000]
    p = tmp_path / "short.wav"
    write_wav(p, x, 20_000, 0.5)
    src = open_source(str(p), FE1, loop=False)
    with VirtualFrontEnd(FE1, src, fast=False) as vfe:
        link = SerialLink(vfe.path)
        link.open()
        session = LiveSession(Pipeline(bundle), FrontEndClient(link, reconnect=False), FE1)
        returns(lambda: session.run(
            until=lambda: vfe.finished.is_set() and session.state.samples >= len(src)))
        assert session.state.samples == len(src)
    silent = VirtualFrontEnd(FE1, open_source("sine", FE1), fast=False)
    silent.start()
    try:
        link = SerialLink(silent.path)
        link.open()
        client = FrontEndClient(link, reconnect=False)
        client.start = lambda: None  # the device never starts streaming: a silent link
        session = LiveSession(Pipeline(bundle), client, FE1)
        summary = returns(lambda: session.run(duration_s=0.5))
        assert summary["signal_seconds"] == 0 and summary["windows"] == 0
    finally:
        silent.stop()


def test_unscaled_files_are_classified_at_a_stated_or_estimated_scale(bundle, exam_wav,
                                                                     tmp_path):
    import wave

    from edge.acquire.files import load_samples
    from edge.readers.recording import NOISE_FLOOR_UV, noise_floor

    path, _ = exam_wav
    from edge.readers import load_wav

    pcm = load_wav(path).to_int16(0.5)[: 3 * 20_000]
    plain = tmp_path / "plain.wav"  # a WAV from another program: no µV scale recorded
    with wave.open(str(plain), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(20_000)
        w.writeframes((pcm // 4).astype("<i2").tobytes())
    estimated = load_samples(plain, (20_000, 0.5))  # its noise floor set to an amplifier's
    assert abs(noise_floor(estimated * 0.5, 20_000) / NOISE_FLOOR_UV - 1) < 0.05
    stated = load_samples(plain, (20_000, 0.5), scale_uv=2.0)  # the file's LSB is 2 µV
    np.testing.assert_array_equal(stated, np.clip((pcm // 4).astype(np.int64) * 4,
                                                  -32768, 32767))
    warned = run_nemg("classify", "--json", str(plain), timeout=120)
    assert warned.returncode == 0 and "records no µV scale; estimated" in warned.stderr
    assert json.loads(warned.stdout)["input"]["scale"] == "estimated"
    quiet = run_nemg("classify", "--scale-uv", "2", str(plain), timeout=120)
    assert quiet.returncode == 0 and "warning" not in quiet.stderr
    bad = run_nemg("classify", "--scale-uv", "-1", str(plain), timeout=120)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "--scale-uv" in bad.stderr
    silent = tmp_path / "zeros.wav"  # nothing to measure: the nominal scale, said so
    with wave.open(str(silent), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(20_000)
        w.writeframes(bytes(2 * 3 * 20_000))
    proc = run_nemg("classify", "--json", str(silent), timeout=120)
    assert proc.returncode == 0 and json.loads(proc.stdout)["input"]["scale"] == "assumed"
    assert "no noise floor" in proc.stderr

def test_a_short_loss_is_concealed_and_marked_a_long_one_closes_the_window(bundle):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 20, 4 * 20_000).astype(np.int16)
    p = Pipeline(bundle)
    assert p.max_concealed == 500  # 25 ms at 20 kHz: one or two lost 10 ms frames
    r1, _ = p.push(x[:30_000], 0)
    r2, ev = p.push(x[30_200:60_000], 30_200)  # one frame (200 samples) never arrived
    assert [e.kind for e in ev] == ["gap"] and "concealed" in ev[0].detail
    assert (ev[0].start_sample, ev[0].end_sample) == (30_000, 30_200)
    windows = r1 + r2
    assert [w.start_sample for w in windows] == [i * 10_000 for i in range(len(windows))]
    for w in windows:  # exactly the windows over 30 000..30 200 say so
        assert w.concealed == (200 if w.start_sample < 30_200 <= w.end_sample else 0)
    assert (p.gaps, p.gaps_concealed, p.samples_lost, p.samples_in) == (1, 1, 200, 59_800)
    results, ev = p.lost(501, "crc")  # longer than 25 ms: the window closes
    assert not results and ev[-1].kind == "gap" and "concealed" not in ev[-1].detail
    r3, _ = p.push(x[:45_000])
    assert r3[0].start_sample == 60_501 and p.gaps_concealed == 1


def test_one_percent_frame_loss_still_classifies_most_windows(bundle, exam_wav, tmp_path):
    from benches.pipeline_bench import window_coverage

    path, _ = exam_wav
    log = EventLog(tmp_path / "loss.db")
    session, summary = live_windows(bundle, path, faults=Faults(drop_rate=0.01, seed=5),
                                    log=log)
    cov = window_coverage(session, len(open_source(str(path), FE1, loop=False)))
    assert cov >= 0.9, cov  # without concealment: 13 % (a window holds 200 frames)
    assert summary["gaps"] > 0 and any(w.concealed for w in session.state.windows)
    gaps = [e for e in log.events(log.session_id) if e["kind"] == "gap"]
    assert len(gaps) == summary["gaps"]  # every loss is on the record
    assert sum(e["end_sample"] - e["start_sample"] for e in gaps) == summary["samples_lost"]


def test_classify_streams_a_long_file_in_bounded_memory():
    from benches.pipeline_bench import peak_rss_classify

    # 20 minutes (48 MB): the whole-file path peaked at ~12× the file (≈ 580 MB here)
    assert peak_rss_classify(20 / 60) < 150


def test_the_screen_shows_one_decision_and_clears_what_it_no_longer_shows(bundle, exam_wav):
    import io
    import re

    from edge.screen import TerminalView

    path, _ = exam_wav
    out = io.StringIO()
    src = open_source(str(path), FE1, loop=False)
    with VirtualFrontEnd(FE1, src, fast=True) as vfe:
        link = SerialLink(vfe.path)
        link.open()
        session = LiveSession(Pipeline(bundle), FrontEndClient(link, reconnect=False), FE1,
                              view=TerminalView(out))
        session.run(until=lambda: vfe.finished.is_set() and session.state.samples >= len(src))
    frames = out.getvalue().split("\x1b[H")[1:]
    assert frames and all(f.count("\x1b[K\n") == TerminalView.HEIGHT for f in frames)
    last = frames[-1].replace("\x1b[K", "")
    now = re.search(r"NOW: ([A-Z ]+?)(  PATHOLOGICAL)?\n.*confidence (\d\.\d\d)", last)
    label = now.group(1).lower().replace(" ", "_")
    logged = [e.label for e in session.state.events if e.kind == "label"]
    assert label == session.pipeline.current_label == logged[-1]  # what the log follows
    bar = re.search(rf"^  {label} +[█·]+ (\d\.\d\d)$", last, re.M)
    assert bar.group(1) == now.group(3)  # its bar is the confidence shown, not a raw window
    bars = [float(v) for v in re.findall(r"^  [a-z_]+ +[█·]+ (\d\.\d\d)$", last, re.M)]
    assert max(bars) == float(now.group(3))
    assert "(uncertain" not in last


@pytest.mark.parametrize("labels,events", [
    ("AAAAAA" "BB" "CCCCCC", ["A", "C"]),  # two straddling windows are no finding
    ("AAAAAA" "BBB" "AAAA", ["A", "B", "A"]),  # three are
    ("AAAA" "B" "A" "BB", ["A"]),  # a change that does not hold stays in the run
])
def test_a_label_must_hold_before_it_becomes_an_event(bundle, labels, events):
    p = Pipeline(bundle)
    assert p.min_event_windows == 3
    out: list = []
    one = np.eye(len(p.labels))
    names = {"A": "silence", "B": "fasciculation", "C": "artifact"}
    for i, c in enumerate(labels):
        lab = names[c]
        p._follow(lab, one[p.labels.index(lab)], i * 10_000, i * 10_000 + 40_000, out)
    out += p.flush()
    assert [e.label for e in out] == [names[c] for c in events]
    assert sum(e.windows for e in out) == len(labels)  # every window in exactly one event
    assert all(a.end_sample == b.start_sample for a, b in itertools.pairwise(out))


def test_a_4khz_archive_is_classified_with_a_note_on_its_narrower_band(tmp_path):
    rng = np.random.default_rng(2)
    p = tmp_path / "archive-4k.wav"  # a real archive's rate (PhysioNet emgdb is 4 kHz)
    write_wav(p, rng.normal(0, 100, 4_000 * 5).astype(np.int16), 4_000, 0.5)
    proc = run_nemg("classify", "--json", str(p), timeout=120)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["input"]["sample_rate_hz"] == 4_000 and r["input"]["band_hz"] == 2_000
    assert "nothing above 2000 Hz" in proc.stderr and len(r["windows"]) == 7


def test_a_16khz_board_is_classified_live_as_classify_reads_the_same_samples(bundle, tmp_path):
    from edge.offline import classify_file
    from edge.readers import load_wav
    from edge.resample import resample_int16

    ads = get_frontend("ads1299-fe")  # 24-bit, 16 kHz: not the model's rate
    exam = load_wav(ROOT / "rigs" / "data" / "demo-exam.wav").to_int16(0.5)[: 8 * 20_000]
    at16 = tmp_path / "exam16k.wav"
    write_wav(at16, resample_int16(exam, 20_000, 16_000), 16_000, 0.5)
    src = open_source(str(at16), ads, loop=False)
    # what the box's scaler makes of the board's ADC values: the samples both paths read
    heard = tmp_path / "heard16k.wav"
    write_wav(heard, BoardScaler.between(ads.uv_per_lsb, 0.5)(src.values), 16_000, 0.5)
    offline = classify_file(lambda: Pipeline(bundle), heard)
    with VirtualFrontEnd(ads, src, fast=True) as vfe:
        link = SerialLink(vfe.path)
        link.open()
        session = LiveSession(Pipeline(bundle), FrontEndClient(link, reconnect=False), ads)
        session.run(until=lambda: vfe.finished.is_set() and session.state.samples >= len(src))
    live = session.state.windows
    assert session.acquire.resampler is not None and len(live) == len(offline["windows"]) > 10
    for w, o in zip(live, offline["windows"], strict=True):
        assert (w.label, round(w.start_s, 4)) == (o["label"], o["start_s"])
        np.testing.assert_array_equal(np.round(w.probabilities, 4),
                                      [o["probabilities"][lab] for lab in bundle.labels])
