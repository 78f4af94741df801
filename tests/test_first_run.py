"""A new user's first commands: every one answers in one line, with what to do next."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT, assert_one_line_error, run_nemg

# A box install (the 'edge' extra) has no scipy, TensorFlow or matplotlib: hide them.
WITHOUT_WORKSTATION = (
    "import sys\n"
    "for m in ('scipy', 'tensorflow', 'tf_keras', 'matplotlib', 'pyedflib', 'wfdb'):\n"
    "    sys.modules[m] = None\n"
    "from edge.cli import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


def run_box_only(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_WORKSTATION, *args],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)


@pytest.mark.parametrize("args", [
    ("data", "synth", "--out", "{tmp}/corpus", "--per-class", "1"),
    ("data", "show", str(ROOT / "edge" / "data" / "demo-exam.wav"), "-o", "{tmp}/x.png"),
    ("train", "--data", "{tmp}/corpus", "--out", "{tmp}/ckpt"),
])
def test_workstation_commands_on_a_box_name_the_extra(args, tmp_path):
    proc = run_box_only(*(a.format(tmp=tmp_path) for a in args))
    assert_one_line_error(proc, "needs the 'convert' extra", "pip install 'nemg-edge[convert]'")
    assert "internal error" not in proc.stderr


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
