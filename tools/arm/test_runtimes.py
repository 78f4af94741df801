"""The box's checks on x86 under each TFLite runtime README lists, run by ``make test-arm``
(tools/arm/runtimes.sh builds the tflite-runtime venv first):

    .venv/bin/python -m pytest tools/arm/test_runtimes.py

LiteRT is this venv's; ``tensorflow.lite`` is this venv's TensorFlow (the dev extra),
forced by ``NEMG_TFLITE_RUNTIME``; tflite-runtime 2.14 is a venv of its own
($NEMG_TFLITE_RUNTIME_VENV, default build/tflite-runtime-venv: it needs numpy<2) running
this tree. What each must do depends on the shipped bundle's arithmetic (:data:`EXPECTED`):
verify and pass its golden self-test and classify the files with ``--json`` output
byte-equal to LiteRT's, or refuse in one ``nemg: error:`` line.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from armref import PROJECT, arithmetic_name, default_files  # beside this file

from edge.arithmetic import INT8_LOGITS_REF, LEGACY

VENV = Path(os.environ.get("NEMG_TFLITE_RUNTIME_VENV", PROJECT / "build/tflite-runtime-venv"))
PYTHONS: dict[str, list[str]] = {
    "litert": [sys.executable],
    "tensorflow": [sys.executable],
    "tflite_runtime": [str(VENV / "bin/python")],
}
"""Runtime (``NEMG_TFLITE_RUNTIME``) -> the interpreter that has it."""

EXPECTED: dict[str, dict[str, str]] = {
    # the reference kernels with single rounding: LiteRT and TF 2.21 compute them;
    # tflite-runtime 2.14's round twice (gemmlowp), so the box refuses it
    INT8_LOGITS_REF: {"litert": "equal", "tensorflow": "equal", "tflite_runtime": "refused"},
    # measured on nemg-default 1.4.2: tf.lite runs the same XNNPACK kernels as LiteRT;
    # tflite-runtime has no int8 XNNPACK and fails the golden self-test (window 0)
    LEGACY: {"litert": "equal", "tensorflow": "equal", "tflite_runtime": "refused"},
}
"""Arithmetic of the shipped bundle -> runtime -> "equal" (to LiteRT) or "refused"."""

FILES = default_files()


def nemg(runtime: str, *args: str) -> subprocess.CompletedProcess:
    """``nemg ARGS`` on ``runtime``, this working tree first on the path."""
    env = {**os.environ, "NEMG_TFLITE_RUNTIME": runtime, "TF_CPP_MIN_LOG_LEVEL": "2",
           "PYTHONPATH": str(PROJECT)}
    return subprocess.run([*PYTHONS[runtime], "-m", "edge.cli", *args], cwd=PROJECT,
                          capture_output=True, text=True, check=False, env=env)


@functools.cache
def expected(runtime: str) -> str:
    name = arithmetic_name()
    if name not in EXPECTED:
        pytest.fail(f"the shipped bundle's arithmetic {name!r} has no expectation here: "
                    "add it to EXPECTED in tools/arm/test_runtimes.py")
    return EXPECTED[name][runtime]


@functools.cache
def classified(runtime: str) -> subprocess.CompletedProcess:
    return nemg(runtime, "classify", *FILES, "--json")


def assert_refused(proc: subprocess.CompletedProcess) -> None:
    """Non-zero exit and exactly one line on stderr, ``nemg: error: ...``."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode != 0 and proc.stdout == "", proc.stdout
    assert len(lines) == 1 and lines[0].startswith("nemg: error: "), proc.stderr


@pytest.fixture(scope="module", autouse=True)
def _venv_exists():
    if not (VENV / "bin/python").is_file():
        pytest.fail(f"no tflite-runtime venv at {VENV}: run tools/arm/runtimes.sh")


@pytest.mark.parametrize("runtime", PYTHONS)
def test_nemg_info_names_the_runtime(runtime):
    proc = nemg(runtime, "info", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["tflite_runtime"].startswith(f"{runtime} "), proc.stdout


@pytest.mark.parametrize("runtime", PYTHONS)
def test_bundle_verify_and_golden_self_test(runtime):
    proc = nemg(runtime, "bundle", "verify", "models/nemg-default.nemg", "--self-test")
    if expected(runtime) == "refused":
        assert_refused(proc)
    else:
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("runtime", [r for r in PYTHONS if r != "litert"])
def test_classify_json_byte_equal_to_litert(runtime):
    proc, ref = classified(runtime), classified("litert")
    assert ref.returncode == 0 and ref.stdout.count("\n") == len(FILES), ref.stderr
    if expected(runtime) == "refused":
        assert_refused(proc)
        return
    assert proc.returncode == 0, proc.stderr
    for file, ours, theirs in zip(FILES, proc.stdout.splitlines(), ref.stdout.splitlines(),
                                  strict=True):
        assert ours == theirs, f"{file}: {runtime} gives other output than LiteRT"
