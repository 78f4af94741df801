"""The discharge recogniser (edge/recogniser.py): each class's firing criterion on signals
built to meet it (and to miss it), the fusion rule, its place in the pipeline, and its
determinism (block sizes, golden evidence)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import DEV_KEY, ROOT, SHIPPED, small_contraction

from edge.labels import PATHOLOGICAL, UNCERTAIN
from edge.recogniser import Evidence, Recogniser, Train, recognise
from edge.spec import DEFAULT_DECISION, RecogniserConfig

FS = 20_000
UV = 0.5
C = RecogniserConfig()
GOLDEN = ROOT / "tests" / "golden" / "recogniser.json"


def _wave(shape: str) -> np.ndarray:
    """A discharge's potential in µV: 'fib' (2 ms, initially positive, triphasic), 'psw'
    (a sharp positive onset, a 12 ms negative phase), 'muap' (a sharp spike on a 9 ms wave),
    'complex' (a serrated potential of four spikes within 4 ms)."""
    t = np.arange(int(0.03 * FS)) / FS * 1000  # ms
    if shape == "fib":
        return 120 * np.sin(2 * np.pi * t / 2.0) * (t < 2.0)
    if shape == "psw":
        return np.where(t < 1.0, 150 * t, np.where(t < 13, -60 * np.exp(-(t - 1) / 5), 0.0))
    if shape == "muap":  # a sharp main spike (the fibres nearest the needle) on a slow wave
        g = (t - 4.0) / 0.25
        return 500 * (-g * np.exp(-g * g / 2)) + 100 * np.sin(2 * np.pi * t / 9.0) * (t < 9.0)
    spike = 200 * np.sin(2 * np.pi * t / 0.8) * (t < 0.8)
    out = np.zeros_like(t)
    for k, d in enumerate((0.0, 0.9, 2.1, 3.0)):  # one serrated, polyphasic potential
        i = int(d * FS / 1000)
        out[i:] += spike[: t.size - i] * (1 - 0.2 * k) * (-1) ** k
    return out


def _train(shape: str, rate_hz: float, cv: float, seconds: float = 3.0, seed: int = 1,
           gain: np.ndarray | None = None, x: np.ndarray | None = None) -> np.ndarray:
    """µV: ``shape`` firing at ``rate_hz`` with interval spread ``cv`` over noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * FS)
    x = rng.normal(0, 5, n) if x is None else x
    w = _wave(shape)
    t, k = rng.uniform(0, 1 / rate_hz), 0
    while t * FS + w.size < n:
        i = int(t * FS)
        x[i: i + w.size] += w * (1.0 if gain is None else gain[min(k, gain.size - 1)])
        t += max(0.002, rng.normal(1 / rate_hz, cv / rate_hz))
        k += 1
    return x


def _int16(uv: np.ndarray) -> np.ndarray:
    return np.clip(np.round(uv / UV), -32768, 32767).astype(np.int16)


def _evidence(uv: np.ndarray) -> Evidence:
    return recognise(_int16(uv), FS, UV, C)


def _main(ev: Evidence) -> Train:
    return max(ev.trains, key=lambda t: t.firings)


def test_a_regular_slow_brief_train_backs_fibrillation():
    ev = _evidence(_train("fib", 7.0, 0.01))
    t = _main(ev)
    assert 6.5 < t.rate_hz < 7.5 and t.regularity_cv < C.regular_cv
    assert t.duration_ms <= C.brief_ms and t.initial == "+"
    assert "fibrillation" in t.backs and not ev.voluntary and ev.named == "fibrillation"
    assert "fibrillation" in ev.backed and "7.0 Hz" in t.describe()


def test_a_regular_slow_long_train_backs_positive_sharp_waves():
    t = _main(_evidence(_train("psw", 4.0, 0.01)))
    assert t.duration_ms > C.brief_ms and t.initial == "+"
    assert t.backs == ("positive_sharp_wave",)


def test_an_irregular_slow_train_backs_no_denervated_fibre():
    """Fibrillations are metronome-regular; a unit firing with a 25 % spread is not one."""
    t = _main(_evidence(_train("fib", 8.0, 0.25)))
    assert t.regularity_cv > C.regular_cv
    assert "fibrillation" not in t.backs and "positive_sharp_wave" not in t.backs


def test_a_time_locked_complex_backs_a_complex_repetitive_discharge():
    t = _main(_evidence(_train("complex", 35.0, 0.002)))
    assert 33 < t.rate_hz < 37 and t.pattern == "time-locked"
    assert "complex_repetitive" in t.backs and t.phases >= 4


def test_a_very_fast_train_backs_neuromyotonia():
    t = _main(_evidence(_train("fib", 160.0, 0.02)))
    assert t.rate_hz > C.very_fast_rate_hz and "neuromyotonic" in t.backs
    assert t.duration_ms < 1000 / 160  # measured on the potential, not its neighbours


def test_a_waxing_and_waning_fast_train_backs_myotonia():
    """The clustering splits a train whose size swells and fades; the recogniser joins
    its parts back (same shape, a union as regular as its parts)."""
    swell = 0.5 + np.sin(np.linspace(0, np.pi, 400))
    tr = _main(_evidence(_train("fib", 30.0, 0.05, gain=swell)))
    assert tr.firings > 60 and "myotonic" in tr.backs and tr.pattern == "waxing/waning"


def test_grouped_bursts_back_myokymia():
    rng = np.random.default_rng(4)
    x = rng.normal(0, 5, 3 * FS)
    w = _wave("muap")
    for burst in np.arange(0.1, 2.9, 0.45):  # a burst of 5 at 40 Hz every 0.45 s
        for k in range(5):
            i = int((burst + k / 40) * FS)
            x[i: i + w.size] += w
    tr = _main(_evidence(x))
    assert "myokymic" in tr.backs and tr.pattern == "bursts"


def test_several_units_at_voluntary_rates_are_voluntary_activity_and_contradict_calls():
    ev = recognise(small_contraction()[: 3 * FS], FS, UV, C)
    assert ev.voluntary and ev.voluntary_trains >= C.min_voluntary_trains
    assert "motor_unit" in ev.backed and ev.named in ("motor_unit", None)
    assert ev.contradicts("positive_sharp_wave") or "positive_sharp_wave" in ev.backed
    assert not ev.contradicts("motor_unit") and not ev.contradicts("end_plate")
    assert "voluntary activity" in ev.reason()


def _ev(backs: tuple[str, ...] = (), voluntary: bool = False) -> Evidence:
    t = Train(8, 7.0, 0.02, "steady", 2.0, 3, "+", 100.0, backs)
    return Evidence(FS, 0, (t,) if backs else (), 3 if voluntary else 0, voluntary)


@pytest.mark.parametrize(("ev", "cnn", "confident", "override", "out"), [
    (_ev(voluntary=True), "fibrillation", True, False, (UNCERTAIN, "contradicts")),
    (_ev(("fibrillation",), voluntary=True), "fibrillation", True, False,
     ("fibrillation", "agrees")),
    (_ev(("fibrillation",)), "fibrillation", False, False, (UNCERTAIN, "agrees")),
    (_ev(), "end_plate", True, False, ("end_plate", "silent")),
    (_ev(voluntary=True), "motor_unit", True, False, ("motor_unit", "agrees")),
    (_ev(("complex_repetitive",)), "motor_unit", False, True, ("complex_repetitive", "names")),
    (_ev(("complex_repetitive",)), "motor_unit", True, True, ("motor_unit", "silent")),
    (_ev(("complex_repetitive",)), "motor_unit", False, False, (UNCERTAIN, "silent")),
])
def test_the_fusion_rule(ev, cnn, confident, override, out):
    """Withheld where voluntary activity and no train back a call of spontaneous activity;
    with ``override``, a discharge the trains alone name where the CNN is not confident;
    otherwise the CNN's call."""
    assert ev.fuse(cnn, confident, override) == out


def _golden_signal() -> np.ndarray:
    """Three seconds each of a fibrillation, a complex repetitive discharge and three
    voluntary units (numpy only: the emulated box runs this too)."""
    fib = _train("fib", 6.0, 0.01, seed=11)
    crd = _train("complex", 40.0, 0.002, seed=12)
    units = _train("muap", 8.0, 0.15, seed=13)
    for rate, size, seed in ((11.0, 2.0, 14), (14.0, 0.5, 15)):
        units = _train("muap", rate, 0.15, seed=seed, gain=np.array([size]), x=units)
    return np.concatenate([_int16(fib), _int16(crd), _int16(units)])


def _digest(ev: Evidence) -> dict:
    return {"voluntary_trains": ev.voluntary_trains, "backs": sorted(ev.backed),
            "trains": [[t.firings, t.times[0], t.times[-1], t.phases, t.initial,
                        list(t.backs), t.pattern] for t in ev.trains]}


def test_evidence_matches_its_golden_vector_bit_for_bit():
    """Integer decisions: the same trains and criteria on every box (tools/arm runs this
    on an emulated aarch64). Regenerate only with a reason: ``NEMG_REGEN_GOLDEN=1``."""
    import hashlib
    import os

    x = _golden_signal()
    got = {"input_sha256": hashlib.sha256(x.tobytes()).hexdigest(),
           "looks": [_digest(recognise(x[a: a + 3 * FS], FS, UV, C, a))
                     for a in range(0, x.size, 3 * FS)]}
    if os.environ.get("NEMG_REGEN_GOLDEN"):
        GOLDEN.write_text(json.dumps(got) + "\n")
    want = json.loads(GOLDEN.read_text())
    assert got["input_sha256"] == want["input_sha256"], "the test's own signal differs"
    assert got["looks"] == want["looks"]


@pytest.fixture(scope="module")
def recogniser_bundle(tmp_path_factory):
    """The shipped model with the default decisions (a recogniser) re-signed."""
    from convert.packing import repack
    from edge.bundle import Bundle
    from edge.runtime import load_verified

    out = tmp_path_factory.mktemp("rec") / "rec.nemg"
    repack(Bundle.read(SHIPPED), out, key_path=DEV_KEY, version="0.0.2",
           decision=DEFAULT_DECISION)
    return load_verified(out)


def test_the_pipeline_fuses_the_evidence_the_same_whatever_the_block_size(recogniser_bundle):
    from edge.pipeline import Pipeline

    x = small_contraction()
    whole = Pipeline(recogniser_bundle, evidence_always=True)
    a, ev_a = whole.push(x, 0)
    ev_a += whole.flush()
    pieces = Pipeline(recogniser_bundle, evidence_always=True)
    b, ev_b = [], []
    for i in range(0, x.size, 1237):
        r, e = pieces.push(x[i: i + 1237])
        b += r
        ev_b += e
    ev_b += pieces.flush()
    assert [(w.label, w.criterion, w.evidence) for w in a] == \
        [(w.label, w.criterion, w.evidence) for w in b]
    assert ev_a == ev_b and all(w.evidence is not None for w in a)
    # the model alone calls this contraction positive sharp waves; none of them stands
    withheld = [w for w in a if w.criterion == "contradicts"]
    assert withheld and all(w.label == UNCERTAIN and w.contracting for w in withheld)
    assert whole.caveat() is not None and "no train backs them" in whole.caveat()["text"]
    # one look per point of the look grid (a second apart: two windows at a 0.5 s hop)
    rec = whole.recogniser
    grid = [rec.look_end(w.end_sample) for w in a]
    assert whole.rest is None and rec.made == len(set(grid)) < len(a)
    assert all(w.evidence.end == g for w, g in zip(a, grid, strict=True))
    assert set(np.diff(sorted(set(grid)))) == {round(rec.config.look_every_s * rec.fs)}
    # looking only where the evidence can change a label: the same labels, fewer looks
    lazy = Pipeline(recogniser_bundle)
    c = lazy.push(x, 0)[0]
    assert [w.label for w in c] == [w.label for w in a]
    needed = [recogniser_bundle.labels[int(np.argmax(w.probabilities))] in PATHOLOGICAL
              or w.confidence < lazy.threshold for w in c]  # (``override`` is on)
    assert [w.evidence is not None for w in c] == needed
    assert lazy.recogniser.made == len({g for g, n in zip(grid, needed, strict=True) if n})


def test_a_look_does_not_outlive_a_gap(recogniser_bundle):
    from edge.pipeline import Pipeline

    pipe = Pipeline(recogniser_bundle)
    x = small_contraction()
    pipe.evidence_always = True
    pipe.push(x[: 3 * FS], 0)
    made = pipe.recogniser.made
    pipe.gap(FS)
    assert pipe.recogniser.look(pipe.next_index) is None  # nothing of the new segment yet
    pipe.push(x[3 * FS:], 4 * FS)
    assert pipe.recogniser.made > made
    assert all(e.start >= 4 * FS for e in list(pipe.recogniser.looks)[made:])


def test_a_bundle_without_a_recogniser_keeps_the_rest_check(tmp_path):
    """A bundle packed before the recogniser (no ``recogniser`` in its decisions) decides
    as it did: the rest check, no evidence, no golden labels asked for."""
    from dataclasses import replace

    from convert.packing import repack
    from edge.bundle import Bundle
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified

    out = tmp_path / "old.nemg"
    repack(Bundle.read(SHIPPED), out, key_path=DEV_KEY, version="0.0.4",
           decision=replace(DEFAULT_DECISION, recogniser=None))
    old = load_verified(out)
    assert "decision_samples" not in old.golden()
    pipe = Pipeline(old)
    assert pipe.recogniser is None and pipe.rest is not None
    windows = pipe.push(small_contraction(), 0)[0]
    assert all(w.evidence is None and w.criterion == "" for w in windows)
    assert any(w.contracting for w in windows)  # the rest check withholds


def test_a_recogniser_stays_bounded_in_a_long_session():
    rec = Recogniser(FS, UV, 2 * FS, C)
    quiet = np.zeros(FS, np.int16)
    for k in range(80):
        rec.push(quiet, k * FS)
        rec.look((k + 1) * FS)
        rec.trim()
    kept = round((C.stretch_s + C.look_every_s) * FS)  # a stretch and one grid step
    assert len(rec.looks) <= 64 and rec._buffer._tail.size <= kept


def test_a_recogniser_packed_before_the_look_grid_looks_at_every_window(tmp_path):
    """1.6.0's manifest has no ``look_every_s``: it is read as a look at every window's
    end, so its labels do not change under this code."""
    from dataclasses import replace

    from convert.packing import repack
    from edge.bundle import Bundle
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified

    d = RecogniserConfig().to_dict()
    del d["look_every_s"]
    assert RecogniserConfig.from_dict(d).look_every_s == 0
    assert RecogniserConfig.from_dict(RecogniserConfig().to_dict()) == RecogniserConfig()
    out = tmp_path / "grid0.nemg"
    every = replace(DEFAULT_DECISION, recogniser=replace(C, look_every_s=0.0))
    repack(Bundle.read(SHIPPED), out, key_path=DEV_KEY, version="0.0.5", decision=every)
    pipe = Pipeline(load_verified(out), evidence_always=True)
    windows = pipe.push(small_contraction(), 0)[0]
    assert pipe.recogniser.made == len(windows)
    assert all(w.evidence.end == w.end_sample for w in windows)


def test_a_bundle_whose_decision_path_differs_from_its_golden_labels_is_refused(
        recogniser_bundle, tmp_path):
    """The golden labels travel in the signed bundle; a box that decides otherwise (another
    code, another machine) refuses to label anything with it."""
    import io

    from edge.bundle import Bundle
    from edge.errors import IntegrityError
    from edge.pipeline import Pipeline, check_decision_golden

    g = recogniser_bundle.golden()
    assert {"decision_samples", "decision_labels", "decision_criteria",
            "decision_backs"} <= set(g)
    assert check_decision_golden(recogniser_bundle)["windows"] == g["decision_labels"].size
    criteria = set(g["decision_criteria"].tolist())
    assert 3 in criteria and (1 in criteria or 2 in criteria)  # something withheld
    g["decision_labels"] = (g["decision_labels"] + 1).astype(np.int8)  # another box's labels
    buf = io.BytesIO()
    np.savez_compressed(buf, **g)
    forged = Bundle(recogniser_bundle.source, {**recogniser_bundle.members,
                                               "golden.npz": buf.getvalue()}, verified=True)
    with pytest.raises(IntegrityError, match=r"decision path differs from its golden labels "
                                             r"\(decision_labels, window 0\)"):
        Pipeline(forged)
