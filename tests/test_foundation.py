"""The skeleton: CLI, extras boundary, runtime selection, benchmark harness."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from conftest import ROOT, assert_one_line_error, run_nemg

from benches import harness as bench
from edge.errors import ConfigError


def test_help_lists_every_command():
    from edge.cli import COMMANDS

    proc = run_nemg("--help", check=True)
    for cmd in COMMANDS:
        assert cmd.name in proc.stdout


def test_unknown_command_is_a_one_line_error():
    proc = run_nemg("frobnicate")
    assert proc.returncode == 2
    assert "unknown command 'frobnicate'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_info_reports_the_runtime():
    proc = run_nemg("info", "--json", check=True)
    info = json.loads(proc.stdout)
    assert info["tflite_runtime"].startswith("litert ")  # the edge extra's runtime


# Modules of the workstation extra; the box must never need them.
WORKSTATION_ONLY = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "scipy",
                    "matplotlib", "pyedflib", "wfdb")

BLOCKER = textwrap.dedent(f"""
    import importlib.abc, sys
    BLOCKED = {WORKSTATION_ONLY!r}
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {{name!r}} (hidden)", name=name)
    sys.meta_path.insert(0, Blocker())
""")


def test_edge_imports_and_runs_without_tensorflow():
    code = BLOCKER + textwrap.dedent("""
        import pkgutil, importlib, edge
        for m in pkgutil.walk_packages(edge.__path__, 'edge.'):
            importlib.import_module(m.name)
        import numpy as np
        from edge.features import MelFrontEnd
        from edge.interpreter import RUNTIME
        assert RUNTIME is not None and RUNTIME.name == 'litert', RUNTIME
        out = MelFrontEnd().process(np.zeros(2000, dtype=np.int16))
        assert out.dtype == np.int8
        from edge.cli import main
        assert main(['info']) == 0
        assert main(['bench', 'features', '--quick', '--repeats', '1', '--json']) == 0
        # every importer is numpy only: a box reads EDF itself (here a garbled one, which
        # is a clear input error, not "install pyedflib")
        from edge.errors import InputError
        from edge.readers import load_recording
        import tempfile, pathlib
        f = pathlib.Path(tempfile.mkdtemp()) / 'x.edf'
        f.write_bytes(b'0' * 256)
        try:
            load_recording(f)
            raise SystemExit('expected InputError')
        except InputError as exc:
            assert "not an EDF/BDF file" in str(exc)
        leaked = [m for m in sys.modules if m.split('.')[0] in BLOCKED]
        assert not leaked, leaked
        print('EDGE-OK')
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "EDGE-OK" in proc.stdout


def test_runtime_can_be_forced_and_refuses_unknown_names():
    from edge.interpreter import RUNTIMES, select_runtime

    assert select_runtime("litert").name == "litert"
    with pytest.raises(ConfigError, match="not one of"):
        select_runtime("onnx")
    if "tflite_runtime" in RUNTIMES:
        try:
            import tflite_runtime  # noqa: F401
        except ImportError:
            with pytest.raises(ConfigError, match="does not import"):
                select_runtime("tflite_runtime")


def test_forced_runtime_from_environment_is_used():
    proc = run_nemg("info", "--json", env={"NEMG_TFLITE_RUNTIME": "tensorflow"}, check=True)
    assert json.loads(proc.stdout)["tflite_runtime"].startswith("tensorflow ")
    bad = run_nemg("info", env={"NEMG_TFLITE_RUNTIME": "bogus"})
    # The selection runs at import time: still a clean error, not a traceback.
    assert bad.returncode != 0 and "Traceback" not in bad.stderr
    assert "bogus" in bad.stderr


def test_interleaved_timing_rotates_and_counts_runs():
    calls: list[str] = []
    cands = {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}
    res = bench.measure_interleaved(cands, repeats=4, warmup=2)
    assert calls.count("a") == calls.count("b") == 6
    timed = calls[4:]  # after 2 warm-up rounds
    assert timed[:2] == ["a", "b"] and timed[2:4] == ["b", "a"]  # who goes first rotates
    assert res["a"].repeats == 4 and len(res["a"].wall_all_s) == 4


def test_median_separates_a_slow_candidate_from_a_fast_one(monkeypatch):
    """The harness's arithmetic on a clock the candidates advance themselves (no reading of
    the real one): each candidate's wall and CPU seconds are its own, the median ignores one
    stalled run, and a candidate that waits costs wall time but no CPU."""

    class Clock:
        wall = cpu = 0.0

        def perf_counter(self) -> float:
            return self.wall

        def process_time(self) -> float:
            return self.cpu

    clock = Clock()
    monkeypatch.setattr(bench, "time", clock)  # the harness's clocks only
    runs = {"fast": 0, "slow": 0}

    def fast():
        runs["fast"] += 1
        stall = 0.5 if runs["fast"] == 2 else 0.0  # one run preempted for half a second
        clock.wall += 0.001 + stall
        clock.cpu += 0.001

    def slow():  # waits: wall time, no CPU
        runs["slow"] += 1
        clock.wall += 0.02

    res = bench.measure_interleaved({"fast": fast, "slow": slow}, repeats=3, warmup=1)
    assert runs == {"fast": 4, "slow": 4}  # 1 warm-up + 3 timed each
    assert res["fast"].wall_all_s == pytest.approx((0.501, 0.001, 0.001))
    assert res["fast"].wall_s == pytest.approx(0.001) and res["fast"].cpu_s == pytest.approx(0.001)
    assert res["slow"].wall_s == pytest.approx(0.02) and res["slow"].cpu_s == 0.0
    assert res["slow"].wall_s > res["fast"].wall_s and res["slow"].cpu_s < res["fast"].cpu_s


def test_harness_rejects_nonsense():
    with pytest.raises(ConfigError):
        bench.measure(lambda: None, repeats=0)
    with pytest.raises(ConfigError, match="unknown benchmark"):
        bench.run_benchmark("nope")


def test_bench_cli_prints_one_json_object_per_benchmark():
    proc = run_nemg("bench", "features", "--quick", "--repeats", "1", "--json", check=True)
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    obj = json.loads(lines[0])
    assert obj["benchmark"] == "features" and obj["realtime_factor"] > 0


def test_bench_cli_unknown_name_is_a_one_line_error():
    assert_one_line_error(run_nemg("bench", "warp-drive"), "unknown benchmark", "warp-drive")
