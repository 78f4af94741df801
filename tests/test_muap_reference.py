"""A lab's own MUAP reference values from its controls (edge/muap/reference.py), a muscle
read from several sites, and ``nemg muap-reference`` / ``nemg muap --reference
--one-muscle`` on real files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import assert_one_line_error, run_nemg

from edge.errors import InputError
from edge.muap.analysis import read_muscle
from edge.muap.interpretation import interpret, summarize_muscle, summarize_site
from edge.muap.reference import (
    LAB_FORMAT,
    MAX_LAB_FILE_BYTES,
    MIN_CONTROLS,
    checked_reference,
    load_reference,
    reference_from_controls,
)


def _unit(amp: float, dur: float, phases: int = 3, rate: float = 10.0) -> dict:
    return {"amplitude_uv": amp, "duration_ms": dur, "phases": phases,
            "firing_rate_hz": rate}


def _controls(n: int = 6) -> list[list[dict]]:
    """Control k: 8 units of durations 8–11.5 ms and amplitudes 500–850 µV, shifted by k."""
    return [[_unit(500 + 50 * j + 10 * k, 8 + 0.5 * j + 0.2 * k) for j in range(8)]
            for k in range(n)]


def test_limits_are_the_controls_means_two_sd_and_keypoints_outlier_rule():
    subjects = _controls()
    ref = reference_from_controls(subjects, name="test lab", ages=(20, 60))
    means = np.array([np.mean([u["duration_ms"] for u in s]) for s in subjects])
    lo, hi = means.mean() - 2 * means.std(ddof=1), means.mean() + 2 * means.std(ddof=1)
    assert ref["duration_ms"] == pytest.approx([lo, hi], abs=1e-3)
    amps = np.array([np.mean([u["amplitude_uv"] for u in s]) for s in subjects])
    assert ref["amplitude_uv"][1] == pytest.approx(amps.mean() + 2 * amps.std(ddof=1), abs=1e-3)
    # the 3rd-lowest of 20 MUPs is their 12.5 % quantile; its mean - 2 SD over controls
    q = np.array([np.quantile([u["duration_ms"] for u in s], 0.125) for s in subjects])
    assert ref["single_duration_ms"][0] == pytest.approx(q.mean() - 2 * q.std(ddof=1), abs=0.01)
    assert ref["polyphasic_share"] == [0.0, 0.15]  # no polyphasic control: the generic floor
    assert ref["ages"] == [20.0, 60.0] and ref["controls"] == {"subjects": 6, "left_out": 0,
                                                                "units": 48}
    name, limits = checked_reference(ref, "test")  # what it writes, it reads back
    assert name == "test lab" and limits["duration_ms"] == ref["duration_ms"]


def test_too_few_controls_is_refused_and_thin_ones_are_left_out():
    subjects = [*_controls(MIN_CONTROLS - 1), [_unit(600, 9.0)] * 2]  # one with 2 units
    with pytest.raises(InputError, match=f"{MIN_CONTROLS - 1} control subject"):
        reference_from_controls(subjects, name="x")
    ref = reference_from_controls([*_controls(MIN_CONTROLS), [_unit(600, 9.0)] * 2], name="x")
    assert ref["controls"]["left_out"] == 1


def test_a_patient_is_read_against_the_labs_limits_and_its_age_band():
    lab = checked_reference(reference_from_controls(_controls(), name="our biceps",
                                                    ages=(20, 60)), "lab")
    # small, short units: normal against the generic limb limits, myopathic against the lab's
    site = summarize_site([_unit(300, 6.0) for _ in range(8)])
    assert interpret(site, sample_rate_hz=20_000)["finding"] == "normal"
    out = interpret(site, age=72, sample_rate_hz=20_000, reference=lab)
    assert out["finding"] == "myopathic" and out["reference"] == "our biceps"
    assert "our biceps" in out["evidence"][0]
    assert any("outside the controls' 20–60 years" in e for e in out["evidence"])
    assert out["limits"]["duration_ms"] == lab[1]["duration_ms"]
    within = interpret(site, age=40, sample_rate_hz=20_000, reference=lab)
    assert any("within the controls' 20–60 years" in e for e in within["evidence"])
    # a lab file may give single-MUP limits of one parameter only
    doc = reference_from_controls(_controls(), name="durations only")
    del doc["single_amplitude_uv"]
    short = summarize_site([_unit(700, d) for d in (3.0, 3.1, 3.2, 9.0, 9.5, 10.0)])
    out = interpret(short, sample_rate_hz=20_000, reference=checked_reference(doc, "lab"))
    assert any("3 units' duration below the single-MUP limit" in e for e in out["evidence"])


def test_a_muscle_pools_its_sites_units_and_takes_recruitment_per_site():
    sites = [[_unit(650, 9.5, rate=r) for r in rates] for rates in ([8, 10], [12], [9, 9, 9])]
    s = summarize_muscle(sites)
    assert s["units"] == 6 and s["sites"] == 3
    assert s["site_recruitment_ratios"] == [4.5, 12.0, 3.0]
    assert s["recruitment_ratio"] == 4.5  # the median site, not 9.5 Hz ÷ 6 units
    res = read_muscle([{"units": u, "sample_rate_hz": fs} for u, fs in
                       zip(sites, (20_000, 4_000, 20_000), strict=True)])
    assert res["interpretation"]["finding"] == "normal"
    assert res["interpretation"]["limits"]["duration_ms"] == [5.0, 15.0]


@pytest.mark.parametrize("content,why", [
    (b"\x00" * (MAX_LAB_FILE_BYTES + 1), "bytes"),
    (b"{not json", "not JSON"),
    (json.dumps({"format": "other"}).encode(), "format"),
    (json.dumps({"format": LAB_FORMAT, "name": "x", "amplitude_uv": [1, 2],
                 "duration_ms": [9, 5], "polyphasic_share": [0, 0.2]}).encode(), "duration_ms"),
    (json.dumps({"format": LAB_FORMAT, "name": "x", "amplitude_uv": [1, "2"],
                 "duration_ms": [5, 9], "polyphasic_share": [0, 0.2]}).encode(), "amplitude"),
    (b'{"format": "' + LAB_FORMAT.encode() + b'", "name": "x", "amplitude_uv": [1, NaN],'
     b' "duration_ms": [5, 9], "polyphasic_share": [0, 0.2]}', "amplitude"),
    (json.dumps({"format": LAB_FORMAT, "name": "x", "amplitude_uv": [1, 2],
                 "duration_ms": [5, 9], "polyphasic_share": [0, 0.2],
                 "ages": [60, 20]}).encode(), "ages"),
])
def test_a_hostile_reference_file_is_one_line_refused(tmp_path, content, why):
    bad = tmp_path / "lab.json"
    bad.write_bytes(content)
    with pytest.raises(InputError, match=why) as err:
        load_reference(bad)
    assert str(bad) in str(err.value) and "\n" not in str(err.value)


def test_a_reference_that_is_no_regular_file_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "lab.json"
    os.mkfifo(fifo)  # opened for reading it would wait for a writer forever
    with pytest.raises(InputError, match=r"lab\.json"):
        load_reference(fifo)
    with pytest.raises(InputError, match=r"none\.json"):
        load_reference(tmp_path / "none.json")


def test_nemg_muap_reference_then_a_muscle_read_against_it(tmp_path):
    """Controls' recordings → ``nemg muap-reference`` → ``nemg muap --reference
    --one-muscle``, on real files (simulated contractions written as WAV); a bad site is
    one error line and the rest goes on; a bad reference file stops before any analysis."""
    from convert.dense import dense_contraction
    from edge.readers.wav import write_wav

    def site(path, pool, seed):
        rec = dense_contraction("biosim", 6, pool, np.random.default_rng(seed), duration_s=8.0)
        write_wav(path, np.round(rec.signal_uv / 0.5).astype(np.int16), rec.fs, 0.5)

    folder = tmp_path / "control0"  # a subject as a folder of its sites (one broken) ...
    folder.mkdir()
    site(folder / "site0.wav", "healthy", [31_001, 0])
    (folder / "broken.wav").write_bytes(b"RIFF\x00\x00")
    controls = [str(folder)]
    for k in range(1, MIN_CONTROLS + 1):  # ... or as one recording (one has too few units)
        site(tmp_path / f"control{k}.wav", "healthy", [31_001, k])
        controls.append(str(tmp_path / f"control{k}.wav"))
    lab = tmp_path / "lab.json"
    proc = run_nemg("muap-reference", *controls, "--name", "sim biceps", "--ages", "20-60",
                    "--out", str(lab))
    assert proc.returncode != 0  # the broken site is reported ...
    errors = [line for line in proc.stderr.splitlines() if line.startswith("nemg: error:")]
    assert len(errors) == 1 and "broken.wav" in errors[0]
    ref = json.loads(lab.read_text())  # ... and the reference is still made from the rest
    assert ref["format"] == LAB_FORMAT and ref["ages"] == [20.0, 60.0]
    assert ref["controls"] == {"subjects": MIN_CONTROLS, "left_out": 1,
                               "units": ref["controls"]["units"]}
    assert "sim biceps" in proc.stdout and "Traceback" not in proc.stderr

    patient = [tmp_path / f"patient{s}.wav" for s in range(2)]
    for s, p in enumerate(patient):
        site(p, "healthy", [31_002, s])
    out = run_nemg("muap", *map(str, patient), "--reference", str(lab), "--one-muscle",
                   "--age", "44", "--json", "-o", str(tmp_path / "r.png"), check=True)
    *files, muscle = (json.loads(line) for line in out.stdout.splitlines())
    assert [f["file"] for f in files] == [str(p) for p in patient]
    assert muscle["kind"] == "muscle" and muscle["sites"] == [str(p) for p in patient]
    assert muscle["summary"]["units"] == sum(f["summary"]["units"] for f in files)
    assert muscle["interpretation"]["reference"] == "sim biceps"
    assert muscle["report"] == str(tmp_path / "r-muscle.png")  # the muscle's picture too
    assert (tmp_path / "r-muscle.png").read_bytes()[:4] == b"\x89PNG"
    assert any("within the controls' 20–60 years" in e
               for e in muscle["interpretation"]["evidence"])
    text = run_nemg("muap", *map(str, patient), "--reference", str(lab), "--one-muscle",
                    check=True).stdout
    assert "muscle, 2 site(s):" in text

    lab.write_text("{}")
    assert_one_line_error(run_nemg("muap", str(patient[0]), "--reference", str(lab)),
                          "lab.json")
