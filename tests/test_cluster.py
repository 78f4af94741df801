"""The per-recording work on a real local Ray cluster (a head and a second node, each its
own raylet and worker processes on this machine; not ``local_mode``): the same bytes as
the local path, a worker killed mid-job, a node that leaves, a driver killed mid-run.

Faults are keyed to progress (a recording written, records on disk), never to time."""

from __future__ import annotations

import filecmp
import functools
import json
import math
import operator
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import HANG_GUARD_S, ROOT, assert_one_line_error, run_nemg

ray = pytest.importorskip("ray", reason="the cluster extra (make venv-dev installs it)")
from ray.cluster_utils import Cluster  # noqa: E402

from convert.corpus import PARTIAL_DIR, synth_corpus  # noqa: E402
from nemg_common import executor as ex  # noqa: E402

LABELS = ("fibrillation", "fasciculation", "motor_unit", "silence")
SYNTH = {"per_class": 6, "seed": 36, "duration_s": 2.0, "labels": LABELS}


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 1,
                                                      "include_dashboard": False})
    c.add_node(num_cpus=1)
    ex.configure(c.address)
    try:
        yield c
    finally:
        ex.configure(None)
        ray.shutdown()
        c.shutdown()


@pytest.fixture(scope="module")
def local_corpus(cluster, tmp_path_factory) -> Path:
    """The corpus as the local path writes it (one process)."""
    out = tmp_path_factory.mktemp("local") / "corpus"
    ex.configure(None)
    try:
        synth_corpus(out, SYNTH["per_class"], SYNTH["seed"], duration_s=SYNTH["duration_s"],
                     labels=SYNTH["labels"])
    finally:
        ex.configure(cluster.address)
    return out


def same_tree(a: Path, b: Path) -> None:
    """Every file of ``a`` in ``b`` with the same bytes, and nothing else."""
    fa = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    fb = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert fa == fb
    _, mismatch, errors = filecmp.cmpfiles(a, b, [str(p) for p in fa], shallow=False)
    assert mismatch == [] and errors == []


def _synth_on_cluster(out: Path, progress=None) -> None:
    synth_corpus(out, SYNTH["per_class"], SYNTH["seed"], duration_s=SYNTH["duration_s"],
                 labels=SYNTH["labels"], progress=progress)


def test_synth_is_the_local_corpus_byte_for_byte(cluster, local_corpus, tmp_path):
    assert ex.executor().where == "ray" and ex.executor().workers == 2
    _synth_on_cluster(tmp_path / "c")
    same_tree(local_corpus, tmp_path / "c")
    assert not (tmp_path / "c" / PARTIAL_DIR).exists()


def _die_on_first_attempt(fn, marker: Path, *args):
    """``fn(*args)``, except that the first job to start anywhere kills its own worker
    process (SIGKILL, mid-job) and leaves its pid in ``marker``: the fault is keyed to the
    work, never to time or to which worker happens to be busy."""
    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return fn(*args)
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    os.kill(os.getpid(), signal.SIGKILL)
    raise AssertionError("unreachable: the worker is dead")


class _KillsOneWorker(ex.Executor):
    """The cluster's executor, its jobs wrapped by :func:`_die_on_first_attempt`."""

    def __init__(self, inner: ex.Executor, marker: Path) -> None:
        self.inner, self.marker = inner, marker
        self.workers, self.where = inner.workers, inner.where

    def map(self, fn, jobs, **kw):
        return self.inner.map(functools.partial(_die_on_first_attempt, fn, self.marker),
                              jobs, **kw)


def test_a_worker_killed_mid_job_is_survived(cluster, local_corpus, tmp_path):
    # Ray's workers cannot import this test module: its functions travel by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    marker = tmp_path / "killed.pid"
    out = tmp_path / "c"
    synth_corpus(out, SYNTH["per_class"], SYNTH["seed"], duration_s=SYNTH["duration_s"],
                 labels=SYNTH["labels"], ex=_KillsOneWorker(ex.executor(), marker))
    pid = int(marker.read_text())  # the fault happened: a worker died mid-job ...
    assert not Path(f"/proc/{pid}").exists() or "Z" in \
        (Path(f"/proc/{pid}") / "stat").read_text().rsplit(")", 1)[1].split()[0]
    same_tree(local_corpus, out)  # ... its job was done again, every recording once
    manifest = json.loads((out / "manifest.json").read_text())
    names = [f["file"] for f in manifest["files"]]
    assert len(names) == len(set(names)) == len(LABELS) * SYNTH["per_class"]


def test_a_node_that_leaves_is_survived(cluster, local_corpus, tmp_path):
    leaving = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    gone: list[bool] = []

    def remove_the_node(done: int, total: int) -> None:
        if done == 1 and not gone:
            cluster.remove_node(leaving, allow_graceful=False)
            gone.append(True)

    _synth_on_cluster(tmp_path / "c", remove_the_node)
    assert gone
    same_tree(local_corpus, tmp_path / "c")


def test_classify_files_on_the_cluster_prints_the_local_bytes(cluster, local_corpus):
    files = [str(local_corpus / "wav"), str(local_corpus / "missing.wav")]
    local = run_nemg("classify", *files, "--json", timeout=HANG_GUARD_S)
    remote = run_nemg("classify", *files, "--json", "--ray", cluster.address,
                      timeout=HANG_GUARD_S)
    assert remote.stdout == local.stdout
    assert local.stdout.count("\n") == len(LABELS) * SYNTH["per_class"]
    # a bad file: its own one line on both paths, the others classified
    assert remote.returncode == local.returncode == 2
    ours = [ln for ln in remote.stderr.splitlines() if ln.startswith("nemg")]
    assert ours == local.stderr.strip().splitlines() and len(ours) == 1
    assert "missing.wav" in local.stderr and "Traceback" not in remote.stderr


def test_a_killed_driver_resumes_from_what_is_on_disk(cluster, local_corpus, tmp_path):
    out = tmp_path / "c"
    args = ["data", "synth", "--out", str(out), "--per-class", str(SYNTH["per_class"]),
            "--seed", str(SYNTH["seed"]), "--duration", str(SYNTH["duration_s"]),
            "--labels", ",".join(LABELS), "--ray", cluster.address]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    driver = subprocess.Popen([sys.executable, "-m", "edge.cli", *args], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    records = out / PARTIAL_DIR
    done = 0
    for line in driver.stderr:  # its progress lines, keyed to recordings written
        if m := re.search(r"synthesising: (\d+)/", line):
            done = int(m.group(1))
            if done >= 5:
                break
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    driver.stderr.close()
    assert done >= 5, "the driver finished or failed before it could be killed"
    kept = {p.name: (out / "wav" / p.name[:-5]).stat() for p in records.glob("*.wav.json")}
    assert 5 <= len(kept) < len(LABELS) * SYNTH["per_class"]
    run_nemg(*args, check=True, timeout=HANG_GUARD_S)
    same_tree(local_corpus, out)
    for name, before in kept.items():  # done before the crash: not made again
        after = (out / "wav" / name[:-5]).stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_the_executor_hands_back_a_jobs_own_error_and_keeps_order(cluster):
    assert list(ex.executor().map(math.sqrt, [9.0, 4.0, 1.0])) == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match="math domain"):  # raised, not retried as a crash
        list(ex.executor().map(math.sqrt, [4.0, -1.0]))
    # each call's own shared object, though the last one's memory may be reused for it
    got = ["".join(ex.executor().map(operator.add, ["job"], shared=f"-{k}")) for k in range(4)]
    assert got == ["job-0", "job-1", "job-2", "job-3"]


def test_evaluate_on_the_cluster_writes_the_local_report(cluster, local_corpus, tmp_path):
    from convert.evaluate import evaluate_model

    model = ROOT / "models" / "nemg-default.nemg"
    ex.configure(None)
    try:
        evaluate_model(model, local_corpus, tmp_path / "local", robustness=False)
    finally:
        ex.configure(cluster.address)
    evaluate_model(model, local_corpus, tmp_path / "ray", robustness=False)
    same_tree(tmp_path / "local", tmp_path / "ray")  # report.json and the PNG, byte for byte
    assert json.loads((tmp_path / "ray" / "report.json").read_text())["windows"] > 0


SWEEP = """
[sweep]
score_on = ["biosim"]
per_class = 1
duration_s = 4.0
seed = 36000

[space]
uncertain_threshold = [0.5, 0.9]
"""


def test_a_sweep_on_ray_tune_scores_each_trial_and_chooses_by_its_rule(cluster, tmp_path):
    from convert.sweep import (
        chosen_bundle,
        draw_recordings,
        load_config,
        run_sweep,
        score_decision,
        with_params,
    )
    from edge.bundle import Bundle
    from edge.runtime import load_verified
    from tests.conftest import DEV_KEY

    (tmp_path / "s.toml").write_text(SWEEP)
    result = run_sweep(tmp_path / "s.toml", tmp_path / "out")
    rows = result["trials"]
    # the bundle's own decision (0.5) is trial 0 and is not tried twice
    assert [r["params"] for r in rows] == [{}, {"uncertain_threshold": 0.9}]
    best = max(r["score"] for r in rows)
    assert result["choice"]["score"] >= best - 0.005
    # a trial's score depends on its parameters alone: the same, recomputed here
    bundle, cfg = load_verified(), load_config(tmp_path / "s.toml")
    again = score_decision(bundle, with_params(bundle.decision, rows[1]["params"]),
                           draw_recordings(cfg, bundle))
    assert again["score"] == rows[1]["score"]
    assert "| 1 | uncertain_threshold = 0.9 |" in (tmp_path / "out" / "sweep.md").read_text()
    chosen_bundle(result, tmp_path / "b.nemg", key_path=DEV_KEY, version="9.0.0")
    b = Bundle.read(tmp_path / "b.nemg")
    assert b.manifest["metrics"]["decision_sweep"]["trials"] == json.loads(json.dumps(rows))
    assert b.decision == with_params(bundle.decision, result["choice"]["params"])


def test_the_choice_rule_prefers_fewer_changes_within_a_tie():
    from convert.sweep import choose

    rows = [{"index": 0, "params": {}, "score": 0.700},
            {"index": 1, "params": {"a": 1}, "score": 0.704},
            {"index": 2, "params": {"a": 1, "b": 2}, "score": 0.720}]
    assert choose(rows)["index"] == 2
    rows[2]["score"] = 0.703
    assert choose(rows)["index"] == 0


def test_a_bad_sweep_file_is_one_line(tmp_path):
    (tmp_path / "bad.toml").write_text('[space]\nno_such_parameter = [1]\n')
    proc = run_nemg("sweep", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "o"))
    assert_one_line_error(proc, "bad.toml", "no_such_parameter")


def test_classify_out_writes_each_result_once_and_a_rerun_skips_them(local_corpus, tmp_path):
    files = sorted((local_corpus / "wav").glob("f*.wav"))[:3]
    printed = run_nemg("classify", *map(str, files), "--json", check=True).stdout
    out = tmp_path / "results"
    run_nemg("classify", *map(str, files[:2]), "--out", str(out), check=True)
    first = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    run_nemg("classify", *map(str, files), "--out", str(out), "--workers", "2", check=True)
    got = {p.name: p.stat() for p in out.iterdir()}
    assert sorted(got) == sorted(f"{f.name}.json" for f in files)
    assert all(got[n].st_mtime_ns == t for n, t in first.items())  # done before: skipped
    assert "".join((out / f"{f.name}.json").read_text() for f in files) == printed


def test_a_training_sweep_trains_each_trial_and_reships_the_chosen_model(cluster, tmp_path):
    """Training parameters: each trial trains its own model (one epoch, a small corpus)
    and is scored through the box; the chosen trial's model is the one re-signed."""
    from convert.sweep import chosen_bundle, run_sweep, trial_dir
    from edge.bundle import Bundle
    from edge.runtime import load_verified
    from tests.conftest import DEV_KEY

    corpus = tmp_path / "corpus"
    synth_corpus(corpus, 2, 5, duration_s=2.5)
    (tmp_path / "t.toml").write_text(
        SWEEP.replace("[space]", f'train_data = "{corpus}"\n\n[train]\nepochs = 1\n'
                                 'fresh_share = 0.0\nwidth = 0.25\naugment = false\n\n'
                                 '[space]')
        .replace("uncertain_threshold = [0.5, 0.9]", '"train.seed" = [0, 1]'))
    result = run_sweep(tmp_path / "t.toml", tmp_path / "out")
    assert [r["params"] for r in result["trials"]] == [{}, {"train.seed": 1}]
    models = [Bundle.read(trial_dir(tmp_path / "out", i) / "trial.nemg").model_bytes
              for i in (0, 1)]
    # two trainings, not one model scored twice, nor the shipped one
    assert len({*models, load_verified().model_bytes}) == 3
    chosen_bundle(result, tmp_path / "b.nemg", key_path=DEV_KEY, version="9.0.1")
    assert Bundle.read(tmp_path / "b.nemg").model_bytes == models[result["choice"]["index"]]
