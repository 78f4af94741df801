"""Calibrated probabilities and the familiarity check (edge/calibration.py): fitted on
validation windows, carried in the signed bundle, applied by the box's pipeline."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import DEV_KEY, SHIPPED, rewrite_bundle

from edge.calibration import Calibration, fit_calibration, fit_temperature, window_summary
from edge.errors import IntegrityError


def overconfident(n=4000, classes=12, seed=0):
    """Outputs that put 0.95 on their answer but are right 60 % of the time, quantised
    to the int8 softmax's 1/256 steps."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    answer = np.where(rng.random(n) < 0.6, y, rng.integers(0, classes, n))
    p = np.full((n, classes), 0.05 / (classes - 1))
    p[np.arange(n), answer] = 0.95
    return np.round(p * 256) / 256, y


def test_identity_changes_nothing():
    p, _ = overconfident(10)
    assert Calibration().probabilities(p) is p
    assert Calibration().familiarity(np.zeros((198, 40), np.int8)) == 0.0


def test_temperature_fitted_on_overconfident_outputs_makes_them_honest():
    p, y = overconfident()
    t = fit_temperature(p, y)
    assert t > 1.5  # softened
    q = Calibration(t).probabilities(p)
    np.testing.assert_allclose(q.sum(axis=1), 1.0)
    assert (q.argmax(axis=1) == p.argmax(axis=1)).all()  # the answer never changes
    assert abs(q.max(axis=1).mean() - 0.6) < 0.05  # confidence ≈ accuracy


def test_the_temperature_fitted_on_int8_logits_is_the_one_that_drew_them():
    """Labels drawn from the softmax of int8 logits at temperature 2 (scale 0.25): the
    NLL of the bundle's table softmax is lowest near T = 2, and the table of that T is
    what the box then answers with."""
    from convert.calibrate import fit_logit_temperature
    from edge.arithmetic import TableSoftmax, exp_table

    rng = np.random.default_rng(3)
    scale, n = 0.25, 6000
    logits = rng.integers(-40, 40, (n, 12))
    p = np.exp(logits * scale / 2.0)
    p /= p.sum(axis=1, keepdims=True)
    y = np.array([rng.choice(12, p=row) for row in p])
    t = fit_logit_temperature(logits.astype(np.int8), y, scale)
    assert abs(t - 2.0) < 0.1 and t == round(t, 4)
    q = TableSoftmax(exp_table(scale, t))(logits[0].astype(np.int8))
    np.testing.assert_allclose(q, np.exp(logits[0] * scale / t) / np.exp(
        logits[0] * scale / t).sum(), rtol=1e-12)


def test_a_window_unlike_the_training_windows_is_unfamiliar():
    rng = np.random.default_rng(1)
    train = rng.integers(-60, -20, (300, 198, 40)).astype(np.int8)
    val = rng.integers(-60, -20, (100, 198, 40)).astype(np.int8)
    probs = np.full((100, 12), 1 / 12)
    cal = fit_calibration(train, val, probs, np.zeros(100, int))
    assert np.mean([cal.unfamiliar(w) for w in val]) <= 0.02
    loud = rng.integers(40, 100, (198, 40)).astype(np.int8)
    assert cal.unfamiliar(loud)
    assert window_summary(loud).shape == (80,)


def test_the_calibration_survives_the_manifest_exactly():
    rng = np.random.default_rng(2)
    w = rng.integers(-60, 0, (50, 198, 40)).astype(np.int8)
    p, y = overconfident(50)
    cal = fit_calibration(w, w, p, y)
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())), 40)
    assert back == cal


@pytest.mark.parametrize("bad", [
    {"temperature": -1}, {"temperature": "x"}, {"temperature": float("nan")},
    {"summary_mean": [0.0] * 80, "summary_scale": [1.0] * 79},
    {"summary_mean": [0.0] * 80, "summary_scale": [0.0] * 80},
    {"summary_mean": [0.0] * 10, "summary_scale": [1.0] * 10},
    {"unfamiliar_above": -2}, {"summary_mean": 5},
])
def test_a_hostile_calibration_is_refused_not_applied(bad):
    with pytest.raises(IntegrityError):
        Calibration.from_dict(bad, 40)


def _resigned(tmp_path, calibration: dict | None, name: str = "cal.nemg", edit=None):
    """The shipped model re-signed with ``calibration`` in its manifest (None: none, as a
    bundle from before calibration) and the softmax table of its temperature (as
    ``convert.packing.pack`` writes it; a temperature it cannot take is left to the
    verification), after ``edit(manifest)`` if given; decided as before the recogniser."""
    from conftest import as_before_the_recogniser

    from convert.packing import load_private_key
    from edge.arithmetic import exp_table

    def change(m):
        man = json.loads(m["manifest.json"])
        as_before_the_recogniser(m, man)  # its golden labels held for the calibration
        man.pop("calibration", None)
        if calibration is not None:
            man["calibration"] = calibration
        t = (calibration or {}).get("temperature", 1.0)
        if "arithmetic" in man and t > 0:
            man["arithmetic"]["softmax_exp_table"] = list(
                exp_table(man["output"]["quantization"][0], t))
        if edit is not None:
            edit(man)
        raw = json.dumps(man, indent=1, sort_keys=True).encode()
        m["manifest.json"], m["manifest.sig"] = raw, load_private_key(DEV_KEY).sign(raw)

    return rewrite_bundle(SHIPPED, tmp_path / name, change)


def test_the_pipeline_applies_the_bundles_calibration(tmp_path):
    from edge.bundle import Bundle
    from edge.pipeline import UNCERTAIN, Pipeline
    from edge.runtime import load_verified
    from rigs.testsignals import examination

    x = examination(8.0, Bundle.read(SHIPPED).mel_config, seed=3)
    plain = load_verified(_resigned(tmp_path, None, "plain.nemg"))
    assert plain.calibration == Calibration()  # a bundle from before: the identity
    base = Pipeline(plain).push(x, 0)[0]
    assert not any(w.unfamiliar for w in base)
    # familiarity centred far from every real window: all of them are unfamiliar
    far = {"temperature": 2.0, "summary_mean": [120.0] * 80, "summary_scale": [1.0] * 80,
           "unfamiliar_above": 3.0}
    got = Pipeline(load_verified(_resigned(tmp_path, far))).push(x, 0)[0]
    assert len(got) == len(base) > 0
    for a, b in zip(base, got, strict=True):
        assert b.unfamiliar and b.label == UNCERTAIN and b.smoothed_label == UNCERTAIN
        assert int(np.argmax(a.probabilities)) == int(np.argmax(b.probabilities))
        assert b.confidence <= a.confidence + 1e-9  # T = 2 softens
    # make model's candidate carries one it fitted
    candidate = Bundle.read(SHIPPED.parent / "candidates" / "nemg-default-2.0.0.nemg")
    assert candidate.calibration.temperature > 0
    assert math.isfinite(candidate.calibration.unfamiliar_above)


def test_a_signed_but_hostile_calibration_is_refused_at_verification(tmp_path):
    from conftest import new_store

    from edge.runtime import load_verified
    from edge.store import InstallRefused

    bad = _resigned(tmp_path, {"temperature": 0})
    with pytest.raises(IntegrityError, match=r"cal\.nemg: calibration: temperature"):
        load_verified(bad)
    with pytest.raises(InstallRefused, match="temperature"):
        new_store(tmp_path).install(bad.read_bytes(), source="cal.nemg")


def test_a_signed_but_malformed_front_end_is_refused_at_verification(tmp_path):
    from edge.runtime import load_verified

    bad = _resigned(tmp_path, None, "fe.nemg",
                    edit=lambda man: man["mel_config"].__setitem__("num_mels", 0))
    with pytest.raises(IntegrityError, match=r"fe\.nemg: .*num_mels must be positive"):
        load_verified(bad)


def test_nemg_bundle_calibrate_refits_the_shipped_model_and_changes_only_its_calibration(
        tmp_path):
    """One recording per class of each simulator (the shipped bundle uses 20): the new
    bundle verifies, holds the same model bit for bit, and carries what was fitted."""
    from conftest import assert_one_line_error, run_nemg

    from edge.bundle import Bundle
    from edge.runtime import load_verified

    out = tmp_path / "recalibrated.nemg"
    proc = run_nemg("bundle", "calibrate", str(SHIPPED), "--key", str(DEV_KEY), "--version",
                    "9.9.9", "--out", str(out), "--per-class", "1", timeout=600)
    assert proc.returncode == 0, proc.stderr
    said = json.loads(proc.stdout.splitlines()[-1])
    new, old = load_verified(out), Bundle.read(SHIPPED)
    assert new.version == "9.9.9" and new.model_bytes == old.model_bytes
    assert new.members["golden.npz"] == old.members["golden.npz"]
    assert math.isfinite(new.calibration.unfamiliar_above)
    assert new.calibration.temperature == said["temperature"] > 0
    assert new.manifest["metrics"]["calibration_validation"]["per_class"] == 1
    assert_one_line_error(run_nemg("bundle", "calibrate", str(tmp_path / "nope.nemg"),
                                   "--key", str(DEV_KEY), "--version", "1.0.0",
                                   "--out", str(tmp_path / "x.nemg")), "nope.nemg")
