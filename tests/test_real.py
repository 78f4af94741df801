"""Real needle recordings: importing them, and the standing benchmark on them."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from conftest import ROOT, run_nemg

from benches.real_bench import classify_recording, real_data_dir
from edge.labels import LABELS, UNCERTAIN
from edge.readers import load_two_columns
from edge.runtime import load_verified

EXCERPT = ROOT / "tests" / "data" / "emgdb_healthy_3s.txt"


def test_an_emgdb_text_file_is_read_at_its_rate_and_scale_skipping_garbled_lines():
    rec = load_two_columns(EXCERPT, "mV")
    lines = [ln.split() for ln in EXCERPT.read_text(errors="replace").splitlines()
             if not ln.startswith("#")]
    good = [p for p in lines if len(p) == 2 and p[1].lstrip("-").replace(".", "").isdigit()]
    assert len(good) == len(lines) - 1  # the original's garbled line at 0.16 s
    assert rec.samples_uv.size == len(good) and abs(rec.sample_rate_hz - 4000) < 1e-6
    np.testing.assert_allclose(rec.samples_uv[:3], [float(p[1]) * 1000 for p in good[:3]])
    assert 100 < np.abs(rec.samples_uv).max() < 5000  # µV of a voluntary MUAP


def test_the_box_pipeline_classifies_a_real_excerpt_as_nemg_classify_does():
    """The benchmark's path and the box's CLI give the same window labels on the same
    real samples (the CLI reads the file at its stated scale: 1000 µV per mV)."""
    r = classify_recording(load_two_columns(EXCERPT, "mV"), load_verified())
    assert r["windows"] == 3 and set(r["labels"]) <= {*LABELS, UNCERTAIN}
    cli = json.loads(run_nemg("classify", "--json", "--scale-uv", "1000", str(EXCERPT),
                              check=True).stdout)
    assert len(cli["windows"]) == r["windows"]  # the CLI's windows, one by one
    assert Counter(w["label"] for w in cli["windows"]) == Counter(r["labels"])
    assert cli["summary"]["label"] == r["finding"]


def test_the_real_recordings_benchmark_reports_every_file_and_level():
    proc = run_nemg("bench", "real", "--quick", "--json", check=True, timeout=300)
    out = json.loads(proc.stdout)
    assert set(out["files"]) == {"emg_healthy.txt", "emg_myopathy.txt", "emg_neuropathy.txt",
                                 "R00108.hea"}
    read = [f for f in out["files"].values() if "skipped" not in f]
    # every file is read where shared/ lies beside the checkout (as in CI), none elsewhere
    present = (real_data_dir() / "R00108.hea").exists()
    assert len(read) == out["files_read"] == (4 if present else 0)
    if not present:  # said, not passed in silence
        assert all("not found" in f["skipped"] for f in out["files"].values())
        pytest.skip(f"the real recordings are not in {real_data_dir()}")
    for f in read:
        assert {"recorded", "-6_db", "-12_db"} <= set(f) and f["recorded"]["windows"] > 0
    # the totals are the files' own windows, recounted here
    windows = sum(f["-12_db"]["windows"] for f in read)
    patho = sum(round(f["-12_db"]["pathological_share"] * f["-12_db"]["windows"])
                for f in read)
    assert out["pathological_window_share_at_-12_db"] == pytest.approx(patho / windows)
    # the box beside the CNN alone and the recogniser alone, each read from the same windows
    for level in ("", "_at_-6_db", "_unscaled_estimated"):
        assert 0 <= out[f"windows_withheld_not_at_rest{level}"] <= 1
        for way in ("", "_cnn", "_recogniser"):
            assert 0 <= out[f"pathological_window_share{way}{level}"] <= 1
    rec = read[0]["recorded"]
    assert rec["cnn"]["windows"] == rec["recogniser"]["windows"] == rec["windows"]


def test_the_rest_check_benchmark_reports_its_choice_and_its_cost():
    """The count of units is chosen on the first simulated draw alone, and the shipped
    check is what that choice gives (quick: one recording per class, figures not
    meaningful, the structure is)."""
    proc = run_nemg("bench", "rest", "--quick", "--json", check=True, timeout=300)
    out = json.loads(proc.stdout)
    assert set(out["choice_draw"]) == set(out["held_out_draw"]) == {"3", "4", "5", "6"}
    row = out["held_out_draw"][str(out["shipped_min_units"])]
    assert 0 <= row["abnormal_stretches_withheld"] <= 1
    p = out["held_out_pipeline"]
    assert p["abnormal_files"] == 7 * 2  # every checked class, both simulators
    assert p["abnormal_window_recall_with_check"] <= p["abnormal_window_recall_model_alone"]
