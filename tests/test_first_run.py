"""A new user's first commands: every one answers in one line, with what to do next."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, assert_one_line_error, run_nemg

# A box install (the 'edge' extra) has no scipy, TensorFlow, matplotlib or Ray: hide them.
WITHOUT_WORKSTATION = (
    "import sys\n"
    "for m in ('scipy', 'tensorflow', 'tf_keras', 'matplotlib', 'pyedflib', 'wfdb', 'ray'):\n"
    "    sys.modules[m] = None\n"
    "from edge.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def run_box_only(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_WORKSTATION, *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("args", [
    ("data", "synth", "--out", "{tmp}/corpus", "--per-class", "1"),
    ("data", "show", str(ROOT / "rigs" / "data" / "demo-exam.wav"), "-o", "{tmp}/x.png"),
    ("train", "--data", "{tmp}/corpus", "--out", "{tmp}/ckpt"),
])
def test_workstation_commands_on_a_box_name_the_extra(args, tmp_path):
    proc = run_box_only(*(a.format(tmp=tmp_path) for a in args))
    assert_one_line_error(proc, "needs the 'convert' extra", "pip install 'nemg-edge[convert]'")
    assert "internal error" not in proc.stderr


def test_a_cluster_without_ray_or_a_head_is_one_line(tmp_path):
    exam = str(ROOT / "rigs" / "data" / "demo-exam.wav")
    assert_one_line_error(run_box_only("classify", exam, "--ray"),
                          "needs the 'cluster' extra", "pip install 'nemg-edge[cluster]'")
    # nothing listens there: an answer at once, not Ray's minutes of retries
    assert_one_line_error(run_nemg("classify", exam, "--ray", "127.0.0.1:1"),
                          "no Ray cluster at '127.0.0.1:1'", "ray start --head")


def test_help_has_no_stray_lines_and_names_real_actions():
    top = run_nemg("--help", check=True).stdout.rstrip().splitlines()
    assert top[-1].split()[0] == "bench" and not any(ln.strip() == "COMMAND" for ln in top)
    data = run_nemg("data", "--help", check=True).stdout
    assert "synthesise, inspect and show" in data and "import," not in data


def test_store_and_log_defaults_say_what_to_do(tmp_path):
    new = tmp_path / "new-store"
    for args in (("model", "status", "--store", str(new)),  # options after the action too
                 ("model", "--store", str(new), "status"),
                 ("flash", str(ROOT / "models" / "nemg-default.nemg"), "--store", str(new))):
        assert_one_line_error(run_nemg(*args), f"no model store at {new}", "nemg model init")
    assert not new.exists()
    env = {"NEMG_STORE": "", "XDG_DATA_HOME": str(tmp_path / "home"), "NEMG_LOG_DB": ""}
    proc = run_nemg("model", "status", env=env)
    assert_one_line_error(proc, str(tmp_path / "home" / "nemg" / "store"))
    proc = run_nemg("log", "list", env=env)
    assert_one_line_error(proc, str(tmp_path / "home" / "nemg" / "events.db"), "nemg demo")
    proc = run_nemg("log", "list", "--db", str(tmp_path / "none.db"))
    assert_one_line_error(proc, "none.db")


def test_runtime_start_up_chatter_stays_off_stderr(tmp_path):
    proc = run_nemg("classify", str(tmp_path / "missing.wav"))
    assert proc.stderr.splitlines()[0].startswith("nemg: error:"), proc.stderr
    assert "XNNPACK" not in proc.stderr


FILTER_CHILD = r"""
import os, subprocess, sys
from edge.console import filtered_stderr
with filtered_stderr():
    os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are "
                b"written to STDERR\n")
    os.write(2, b"I0000 00:00:1796152861.236539    9444 port.cc:153] oneDNN custom "
                b"operations are on.\n")
    os.write(2, b"E0000 00:00:1796154900.040749   16856 cuda_platform.cc:52] failed call "
                b"to cuInit: INTERNAL: CUDA error\n")
    print("nemg: warning: a real line", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-c", "import os; os.write(2, b'I0000 00:00:17.5  12 "
                    "cudart_stub.cc:31] Could not find cuda drivers\\nchild says hi\\n')"])
    os.write(2, b"\r  50 %")
print("after", file=sys.stderr)
"""


def test_native_chatter_is_filtered_and_everything_else_passes_in_order():
    proc = subprocess.run([sys.executable, "-c", FILTER_CHILD], capture_output=True,
                          timeout=60, cwd=ROOT)
    assert proc.stderr == b"nemg: warning: a real line\nchild says hi\n\r  50 %after\n"


def test_progress_in_a_pipe_is_whole_lines_without_carriage_returns():
    import io

    from edge.console import Progress

    out = io.StringIO()  # not a terminal
    p = Progress("synthesising", unit=" recordings", stream=out)
    for done in range(1, 101):
        p.update(done, 100)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and 10 <= len(lines) <= 11
    assert lines[-1].startswith("  synthesising: 100/100 recordings (100 %)")


def test_an_internal_error_is_one_short_line_however_long_its_text():
    from edge.cli.failures import describe_exception

    text = describe_exception(TypeError("bytes: " + "\x00\n" * 100_000))
    assert "\n" not in text and len(text) <= 300 and text.startswith("TypeError: bytes:")


def test_a_reader_that_goes_away_ends_the_batch_quietly():
    """``nemg classify A B | head -c 1``: no error line per remaining file, no traceback."""
    wav = str(ROOT / "rigs" / "data" / "demo-exam.wav")
    proc = subprocess.Popen([sys.executable, "-m", "edge.cli", "classify", wav, wav, wav],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdout.read(1)  # the first file's first byte, then the pipe closes
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=600) == 0
    assert "error" not in err and "Traceback" not in err, err
