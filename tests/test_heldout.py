"""The held-out simulator setting and the discharges-over-background corpora (issue 29)."""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import numpy as np
import pytest

from convert import biosim, heldout, synth
from convert.corpus import read_corpus
from convert.heldout import (
    BACKGROUNDS,
    DISCHARGES,
    HELDOUT_SETTING,
    background_corpus,
    background_kind,
    biosim_params,
    heldout_corpus,
    heldout_simulate,
    over_background,
)
from edge.errors import InputError
from edge.labels import PATHOLOGICAL

FS = 20_000


def rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([29, *key])


def corpus_bytes(root) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture
def params_before():
    """biosim.PARAMS as it was, by value and by section object."""
    return copy.deepcopy(biosim.PARAMS), dict(biosim.PARAMS)


def assert_params_unchanged(before) -> None:
    value, sections = before
    assert value == biosim.PARAMS
    assert all(biosim.PARAMS[k] is v for k, v in sections.items())
    assert set(biosim.PARAMS) == set(sections)


def test_the_heldout_band_lies_outside_both_simulators_bands():
    amp = HELDOUT_SETTING["params"]["amplifier"]
    for other in (biosim.PARAMS["amplifier"], synth.PARAMS["background"]):
        assert amp["highpass_hz"][0] > other["highpass_hz"][1]
        assert amp["lowpass_hz"][1] < other["lowpass_hz"][0]


def test_a_heldout_recording_is_monopolar_and_filtered_outside_the_others(params_before):
    top_highpass = max(biosim.PARAMS["amplifier"]["highpass_hz"][1],
                       synth.PARAMS["background"]["highpass_hz"][1])
    bottom_lowpass = min(biosim.PARAMS["amplifier"]["lowpass_hz"][0],
                         synth.PARAMS["background"]["lowpass_hz"][0])
    for i, label in enumerate(("fibrillation", "motor_unit", "silence")):
        r = heldout_simulate(label, fs=FS, duration_s=0.5, rng=rng(1, i))
        assert r.info["needle"] == "monopolar" and r.info["setting"] == "heldout"
        assert r.info["highpass_hz"] > top_highpass
        assert r.info["lowpass_hz"] < bottom_lowpass
        assert r.signal_uv.size == FS // 2 and r.spans == [(0.0, 0.5, label)]
    assert_params_unchanged(params_before)


def test_the_heldout_muscle_reaches_biosims_draws(params_before):
    muscle = HELDOUT_SETTING["params"]["fibre"]
    with biosim_params(HELDOUT_SETTING["params"]):
        fibres = [biosim.fibre_near(rng(2, i), 0.1, 10.0) for i in range(20)]
    assert all(muscle["radius_um"][0] <= f.radius_um <= muscle["radius_um"][1] for f in fibres)
    assert all(muscle["cv_m_per_s"][0] <= f.cv_m_per_s <= muscle["cv_m_per_s"][1]
               for f in fibres)
    assert_params_unchanged(params_before)


def test_params_are_restored_after_an_exception(params_before):
    with pytest.raises(RuntimeError), biosim_params({"amplifier": {"noise_uv_rms": (0, 0)}}):
        assert biosim.PARAMS["amplifier"]["noise_uv_rms"] == (0, 0)
        raise RuntimeError("inside")
    assert_params_unchanged(params_before)
    with pytest.raises(ValueError, match="unknown label"):
        heldout_simulate("no_such_class", rng=rng(3))
    assert_params_unchanged(params_before)
    with pytest.raises(KeyError):  # a typo is refused before anything changes
        biosim_params({"fibre": {"radius_um": (1, 2), "radius": (1, 2)}}).__enter__()
    assert_params_unchanged(params_before)


def test_heldout_corpus_is_deterministic_readable_and_not_biosims(tmp_path, params_before):
    labels = ("fibrillation", "fasciculation", "motor_unit")
    a, b, bio = tmp_path / "a", tmp_path / "b", tmp_path / "bio"
    m = heldout_corpus(a, 1, seed=5, duration_s=1.0, labels=labels)
    heldout_corpus(b, 1, seed=5, duration_s=1.0, labels=labels)
    assert corpus_bytes(a) == corpus_bytes(b)
    assert m["setting"] == "heldout" and m["kind"] == "nemg-heldout-corpus"
    assert json.loads((a / "manifest.json").read_text()) == json.loads(json.dumps(m))
    assert all(f["needle"] == "monopolar" for f in m["files"])
    items = read_corpus(a)
    assert sorted(i.label for i in items) == sorted(labels)
    biosim.biosim_corpus(bio, 1, seed=5, duration_s=1.0, labels=labels)
    for lab in labels:  # the same (seed, class, index) draws another recording
        name = f"wav/{lab}_0000.wav"
        assert (a / name).read_bytes() != (bio / name).read_bytes()
    assert_params_unchanged(params_before)


@pytest.mark.parametrize("simulator", ["synth", "biosim"])
def test_background_corpus_is_deterministic_readable_and_alternates(tmp_path, simulator,
                                                                    params_before):
    one, two, again = tmp_path / "one", tmp_path / "two", tmp_path / "again"
    m = background_corpus(two, simulator, 2, seed=3, duration_s=1.0)
    background_corpus(again, simulator, 2, seed=3, duration_s=1.0)
    background_corpus(one, simulator, 1, seed=3, duration_s=1.0)
    assert corpus_bytes(two) == corpus_bytes(again)
    for name, data in corpus_bytes(one).items():  # recording i depends on (seed, c, i) alone
        if name.startswith("wav/"):
            assert corpus_bytes(two)[name] == data
    assert m["setting"] == "background" and m["simulator"] == simulator
    assert len(m["files"]) == 2 * len(PATHOLOGICAL)
    for f in m["files"]:
        assert f["background"] == background_kind(f["label"], f["index"])
        assert f["patient"]["mixture"] == f["background"]
    for lab in DISCHARGES:  # both backgrounds under every class
        assert {f["background"] for f in m["files"] if f["label"] == lab} == set(BACKGROUNDS)
    items = read_corpus(two)
    assert len(items) == len(m["files"])
    for item in items:  # one span, the discharge, over the whole file
        assert item.spans == ((0.0, 1.0, item.label),) and item.label in PATHOLOGICAL
        kind = background_kind(item.label, int(item.path.stem[-4:]))
        assert item.mixture == kind and item.discharge_snr > 0
        rec = item.load()
        assert rec.sample_rate_hz == FS and rec.scale_known
    assert_params_unchanged(params_before)


def test_the_two_simulators_give_different_background_corpora(tmp_path):
    s, b = tmp_path / "s", tmp_path / "b"
    a = background_corpus(s, "synth", 1, seed=3, duration_s=0.5)
    assert [f["file"] for f in a["files"]] == \
        [f["file"] for f in background_corpus(b, "biosim", 1, seed=3, duration_s=0.5)["files"]]
    for f in a["files"]:
        assert (s / f["file"]).read_bytes() != (b / f["file"]).read_bytes()


@pytest.mark.parametrize("kind", BACKGROUNDS)
@pytest.mark.parametrize("label", ["fibrillation", "fasciculation", "myotonic"])
def test_biosims_background_is_there_above_the_amplifier_noise(label, kind, params_before):
    for i in range(2):
        r = over_background(label, kind, simulator="biosim", duration_s=1.0, rng=rng(4, i))
        pure = biosim.simulate(label, fs=FS, duration_s=1.0, rng=rng(4, i))  # same stream
        added = r.signal_uv - pure.signal_uv  # exactly the background, as scaled
        assert np.sqrt(np.mean(added**2)) > r.info["noise_uv_rms"]
        assert 0 < r.info["background_gain"] <= 1 and r.info["background"] == kind
        # it never buries the discharge more than synth's detectability rule allows
        assert np.sqrt(np.mean(added**2)) <= r.info["discharge_peak_uv"] / synth.DETECTABLE_SNR \
            + 1e-6
    assert_params_unchanged(params_before)


@pytest.mark.parametrize("kind", BACKGROUNDS)
def test_synths_background_fills_the_quiet_between_fasciculations(kind):
    ratios = []
    for i in range(4):
        r = over_background("fasciculation", kind, simulator="synth", duration_s=2.0,
                            rng=rng(5, i))
        assert r.info["patient"]["mixture"] == kind
        # The same patient and discharges without a mixture (synth's stream is the same
        # up to the mixture's draws): only the quiet between discharges is compared.
        g = rng(5, i)
        p = replace(synth.make_patient(g, mixture=True), mixture=None)
        bare = synth.synthesize("fasciculation", fs=FS, duration_s=2.0, rng=g, patient=p)
        quiet = np.ones(r.signal_uv.size, bool)
        quiet[: FS // 10] = False  # the high-pass settling
        for f in r.firings:
            a = max(0, int((f.t_s - 0.005) * FS))
            quiet[a : a + int(0.06 * FS)] = False
        rms = [float(np.sqrt(np.mean(x[quiet] ** 2))) for x in (r.signal_uv, bare.signal_uv)]
        ratios.append(rms[0] / rms[1])
    assert min(ratios) > 1.0 and np.mean(ratios) > 1.2, ratios


def test_bad_input_is_refused_in_one_line(tmp_path):
    with pytest.raises(InputError, match="simulator must be one of synth, biosim"):
        background_corpus(tmp_path, "other", 1, seed=0)
    with pytest.raises(InputError, match="discharge must be one of"):
        over_background("motor_unit", "end_plate", simulator="synth", rng=rng(6))
    with pytest.raises(InputError, match="background must be one of"):
        over_background("fibrillation", "silence", simulator="biosim", rng=rng(6))
    with pytest.raises(InputError, match="per-class"):
        heldout_corpus(tmp_path, 0, seed=0)
    assert heldout.SIMULATORS == ("synth", "biosim")
