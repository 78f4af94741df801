"""The exam saved to a USB stick (issue 34, point 4): the EDF+ and the report land whole or
not at all; a missing, read-only or full stick is said in one line. Read-only and full
sticks are real filesystems: a tmpfs mounted in a private mount namespace (unshare)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from conftest import assert_one_line_error, mount_namespaces_missing, run_nemg

from edge.errors import InputError
from edge.eventlog import EventLog
from edge.exam_save import check_stick, save_exam

needs_namespaces = pytest.mark.skipif(mount_namespaces_missing() is not None,
                                      reason=f"mount namespaces: {mount_namespaces_missing()}")


@pytest.fixture(scope="module")
def demo_log(demo_exam):
    """A real session: the demo's examination, streamed fast, logged and recorded."""
    return demo_exam[0]


def test_the_exam_lands_on_the_stick_whole(demo_log, tmp_path):
    stick = tmp_path / "stick"
    stick.mkdir()
    log = EventLog(demo_log)
    files = save_exam(log, 1, stick, pdf=False, is_mount=lambda p: True)
    assert [f.suffix for f in files] == [".edf", ".html"]
    assert sorted(p.name for p in (stick / "nemg").iterdir()) == sorted(f.name for f in files)
    import pyedflib

    with pyedflib.EdfReader(str(files[0])) as r:
        assert r.signals_in_file == 1 and r.getNSamples()[0] > 0
    assert "Needle EMG examination" in files[1].read_text(encoding="utf-8")


def test_no_stick_is_said_before_anything_is_written(demo_log, tmp_path):
    log = EventLog(demo_log)
    with pytest.raises(InputError, match="no USB stick"):
        save_exam(log, 1, tmp_path / "absent")
    with pytest.raises(InputError, match="no USB stick"):
        check_stick(tmp_path, 1)  # a folder, not a mounted stick
    with pytest.raises(InputError, match="no session 99"):
        save_exam(log, 99, tmp_path, is_mount=lambda p: True)


def _in_namespace(mount_opts: str, script: str, tmp_path) -> subprocess.CompletedProcess:
    stick = tmp_path / "stick"
    stick.mkdir(exist_ok=True)
    body = textwrap.dedent(script).replace("STICK", str(stick))
    return subprocess.run(
        ["unshare", "-rm", "sh", "-c",
         f"mount -t tmpfs -o {mount_opts} none {stick} && {sys.executable} -c '{body}'"],
        capture_output=True, text=True, check=False)


@needs_namespaces
def test_a_read_only_stick_and_a_full_one_are_refused_in_one_line(demo_log, tmp_path):
    script = f"""
        from pathlib import Path
        from edge.eventlog import EventLog
        from edge.exam_save import save_exam
        from edge.errors import InputError
        try:
            save_exam(EventLog(Path("{demo_log}")), 1, Path("STICK"), pdf=False)
        except InputError as exc:
            print("ERR", exc)
        print("LEFT", sorted(p.name for p in Path("STICK").rglob("*")))
        """
    ro = _in_namespace("ro,size=4m", script, tmp_path)
    assert "ERR" in ro.stdout and "read-only" in ro.stdout and "LEFT []" in ro.stdout, ro.stderr
    full = _in_namespace("size=64k", script, tmp_path)
    assert "not enough room" in full.stdout and "LEFT []" in full.stdout, full.stderr


@needs_namespaces
def test_a_write_cut_short_leaves_no_half_file(tmp_path):
    """The stick fills mid-write (as one pulled mid-write fails): the file is not there
    under its name, nor its temporary; the one written before is whole."""
    script = """
        import os
        from pathlib import Path
        from edge.exam_save import _place
        from edge.errors import InputError
        stick = Path("STICK")
        _place(lambda p: p.write_bytes(b"x" * 1000), stick / "first.edf")
        try:
            _place(lambda p: p.write_bytes(b"y" * (1 << 20)), stick / "second.edf")
        except InputError as exc:
            print("ERR", exc)
        print("LEFT", sorted(p.name for p in stick.iterdir()), (stick / "first.edf").stat().st_size)
        """
    proc = _in_namespace("size=256k", script, tmp_path)
    assert "ERR" in proc.stdout and "is full" in proc.stdout, proc.stderr
    assert "LEFT ['first.edf'] 1000" in proc.stdout


def test_the_commands_say_what_is_wrong_in_one_line(demo_log, tmp_path):
    assert_one_line_error(run_nemg("log", "save-usb", "1", "--to", str(tmp_path / "none"),
                                   "--db", str(demo_log)), "no USB stick")
    assert_one_line_error(run_nemg("log", "report", "7", "-o", str(tmp_path / "r.html"),
                                   "--db", str(demo_log)), "no session 7")
    assert_one_line_error(run_nemg("log", "report", "1", "-o", "/proc/nemg-report.html",
                                   "--db", str(demo_log)), "/proc/nemg-report.html",
                          "cannot write")
    pdf = tmp_path / "r.pdf"
    assert_one_line_error(run_nemg("log", "report", "1", "-o", str(pdf), "--db", str(demo_log),
                                   env={"NEMG_CHROMIUM": str(tmp_path / "no-chromium")}),
                          str(pdf), "needs Chromium")
    assert not pdf.exists() and not list(tmp_path.glob(".r.pdf*"))
    out = tmp_path / "r.html"
    proc = run_nemg("log", "report", "1", "-o", str(out), "--db", str(demo_log), check=True)
    assert proc.stdout.strip() == str(out) and "Traces" in out.read_text(encoding="utf-8")
    assert "<svg" in out.read_text(encoding="utf-8")  # the recorded signal, drawn


def _post(port: int, body: bytes) -> tuple[int, dict]:
    import http.client
    import json

    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/api/save-usb", body=body, headers={"Content-Type": "application/json"})
    r = c.getresponse()
    out = r.status, json.loads(r.read().decode())
    c.close()
    return out


def test_the_page_s_save_says_why_it_could_not(demo_log, tmp_path):
    from edge.web.hub import WebHub
    from edge.web.server import WebScreen

    with WebScreen(WebHub(), listen="127.0.0.1:0", log_path=demo_log,
                   usb_mount=tmp_path / "no-stick") as screen:
        status, body = _post(screen.port, b'{"session": 1}')
        assert status == 409 and "no USB stick" in body["error"]
        assert _post(screen.port, b'{"session": 99}')[0] == 404
        assert _post(screen.port, b'{"session": 1, "also": 2}')[0] == 400
        assert _post(screen.port, b'{"session": true}')[0] == 400


@needs_namespaces
def test_the_page_saves_the_exam_onto_a_mounted_stick(demo_log, tmp_path):
    script = f"""
        import http.client, json
        from pathlib import Path
        from edge.web.hub import WebHub
        from edge.web.server import WebScreen
        with WebScreen(WebHub(), listen="127.0.0.1:0", log_path=Path("{demo_log}"),
                       usb_mount=Path("STICK")) as s:
            c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=120)
            c.request("POST", "/api/save-usb", body=b"{{\\"session\\": 1}}",
                      headers={{"Content-Type": "application/json"}})
            r = c.getresponse()
            print("STATUS", r.status, json.loads(r.read().decode())["files"])
        print("LEFT", sorted(p.name for p in Path("STICK/nemg").iterdir()))
        """
    proc = _in_namespace("size=64m", script, tmp_path)
    assert "STATUS 201" in proc.stdout, proc.stderr
    left = proc.stdout.split("LEFT ")[1]
    assert ".edf" in left and ".html" in left and ".part" not in left
