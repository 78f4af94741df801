"""The frozen spec (edge/spec.py). One front end from training to device: chosen at
training, written beside the checkpoint, packed into the bundle, read back by
quantisation, evaluation and the box. A model trained on another front end runs on the
box with that front end. The decisions (threshold, smoothing, events, concealment, the
rest check) travel in the bundle too: the box decides with the bundle's, each default
written once."""

from __future__ import annotations

import ast
import json
import re
from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import pytest
from conftest import DEV_KEY, ROOT, SHIPPED, assert_one_line_error, rewrite_bundle, run_nemg

from edge.bundle import load_spec
from edge.errors import ConfigError, InputError, IntegrityError
from edge.labels import UNCERTAIN
from edge.spec import (
    DEFAULT_DECISION,
    DEFAULT_SPEC,
    DecisionConfig,
    FrontEndSpec,
    MelConfig,
    RecogniserConfig,
    RestCheckConfig,
    WindowConfig,
)


def test_the_default_spec_in_tflite_micro_terms():
    d = DEFAULT_SPEC.describe()
    assert (d["sample_rate_hz"], d["window_size_ms"], d["window_step_ms"]) == (20_000, 25.6, 10.0)
    assert d["num_channels"] == 40 and d["decision_every_s"] == 0.5
    assert d["int8_db_range"] == [DEFAULT_SPEC.mel.db_min, DEFAULT_SPEC.mel.db_max]


def test_the_spec_round_trips_through_a_manifest_and_a_file(tmp_path):
    spec = FrontEndSpec(MelConfig(num_mels=32, hop_length=160), WindowConfig(120, 40))
    m = json.loads(json.dumps(spec.to_manifest()))
    assert FrontEndSpec.from_manifest(m) == spec
    (tmp_path / "spec.json").write_text(json.dumps(m))
    assert FrontEndSpec.load(tmp_path / "spec.json") == spec
    assert load_spec(SHIPPED).mel == MelConfig()  # the shipped model's own
    assert load_spec(tmp_path / "spec.json") == spec
    with pytest.raises(InputError, match="load_spec"):  # the spec never reads a bundle
        FrontEndSpec.load(SHIPPED)


@pytest.mark.parametrize("content,message", [
    (None, "no such file"), ("{", "not a readable JSON"), ('{"mel_config": {}}', "window"),
    ('{"mel_config": {"num_mels": 0}, "window": {}}', "positive"),
])
def test_a_bad_spec_file_is_refused_clearly(tmp_path, content, message):
    p = tmp_path / "spec.json"
    if content is not None:
        p.write_text(content)
    with pytest.raises((InputError, ConfigError), match=message):
        FrontEndSpec.load(p)


def test_a_model_trained_on_another_front_end_carries_it_to_the_box(tmp_path):
    """Train -> quantise -> pack -> pipeline with a non-default spec, no spec passed after
    training: each stage reads it from the one before."""
    from convert.corpus import synth_corpus
    from convert.packing import pack
    from convert.quantize import quantize_checkpoint
    from convert.train import TrainConfig, train
    from edge.bundle import Bundle
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified

    spec = FrontEndSpec(MelConfig(num_mels=32, hop_length=160), WindowConfig(100, 50))
    synth_corpus(tmp_path / "c", 2, seed=5, duration_s=2.5)
    ckpt = train(tmp_path / "c", tmp_path / "ck", TrainConfig(epochs=1, augment=False,
                                                              width=0.5), spec).checkpoint
    assert load_spec(ckpt) == spec  # written beside the checkpoint
    q = quantize_checkpoint(ckpt, tmp_path / "c", tmp_path / "m.tflite", "ptq")
    bundle = tmp_path / "m.nemg"
    pack(bundle, model=(tmp_path / "m.tflite").read_bytes(), key_path=DEV_KEY, name="t",
         version="0.0.1", spec=load_spec(ckpt))
    assert q["bytes"] > 0 and Bundle.read(bundle).spec == spec
    pipe = Pipeline(load_verified(bundle))
    assert (pipe.mel, pipe.win) == (spec.mel, spec.window)
    results = pipe.push(np.zeros(int(2.5 * pipe.fs), np.int16), 0)[0]
    assert results and results[0].end_s - results[0].start_s == pytest.approx(
        spec.window.seconds(spec.mel))
    # fine-tuning it under another front end is refused, not silently retrained
    with pytest.raises(ConfigError, match="another front end"):
        train(tmp_path / "c", tmp_path / "ft", TrainConfig(epochs=1, init_from=str(bundle)),
              DEFAULT_SPEC)


def test_nemg_train_and_features_take_a_front_end(tmp_path):
    help_text = run_nemg("train", "--help", check=True).stdout
    assert "--front-end" in help_text
    x = tmp_path / "x.npy"
    np.save(x, np.zeros(4000, np.int16))
    out = json.loads(run_nemg("features", str(x), "--front-end", str(SHIPPED),
                              check=True).stdout)
    assert out["front_end"]["window_step_ms"] == 10.0 and out["num_mels"] == 40
    assert_one_line_error(run_nemg("features", str(x), "--front-end", str(tmp_path / "no")),
                          "no such file")


# ---- the spec is the bottom ------------------------------------------------------------------
def _edge_imports(path: Path) -> set[str]:
    """Modules of ``edge`` a file imports (at any depth, lazily or not)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m.split(".")[0] == "edge"}


def test_the_spec_imports_nothing_of_the_box_but_its_errors_and_the_dsp_imports_it():
    assert _edge_imports(ROOT / "edge" / "spec.py") == {"edge.errors"}
    assert "edge.spec" in _edge_imports(ROOT / "edge" / "features.py")
    import edge.features

    assert edge.features.MelConfig is MelConfig


# ---- decisions -------------------------------------------------------------------------------
ODD = DecisionConfig(uncertain_threshold=0.99, smoothing_windows=1, min_event_windows=1,
                     max_concealed_gap_ms=0.0,
                     rest_check=RestCheckConfig(min_voluntary_units=1000),
                     recogniser=RecogniserConfig(min_voluntary_trains=1000))
"""Every decision unlike the default, each visible on its own in the pipeline."""


def test_the_decision_section_round_trips_through_a_manifest():
    odd = replace(ODD, rest_check=RestCheckConfig(2.5, 1.5, 0.5, (4, 25.5), 80.0, 6, 900))
    m = json.loads(json.dumps(odd.to_manifest()))
    assert set(m) == {"decision"} and m["decision"]["rest_check"]["voluntary_rate_hz"] == [4, 25.5]
    assert DecisionConfig.from_manifest(m) == odd
    assert DecisionConfig.from_manifest(DEFAULT_DECISION.to_manifest()) == DEFAULT_DECISION
    partial = {"decision": {"smoothing_windows": 5, "rest_check": {"recheck_s": 2.0}}}
    assert DecisionConfig.from_manifest(partial) == replace(
        DEFAULT_DECISION, smoothing_windows=5, rest_check=RestCheckConfig(recheck_s=2.0),
        recogniser=None)  # a section written before the recogniser: none, labels as they were
    tuned = {"decision": {"recogniser": {"regular_cv": 0.05, "slow_rate_hz": [1, 12]}}}
    assert DecisionConfig.from_manifest(tuned).recogniser == RecogniserConfig(
        regular_cv=0.05, slow_rate_hz=(1.0, 12.0),
        look_every_s=0.0)  # written before the look grid: a look at every window


def test_a_manifest_without_a_decision_section_reads_its_legacy_keys_and_the_defaults():
    assert DecisionConfig.from_manifest({}) == replace(DEFAULT_DECISION, recogniser=None)
    legacy = {"uncertain_threshold": 0.7, "smoothing_windows": 4, "min_event_windows": 2}
    assert DecisionConfig.from_manifest(legacy) == DecisionConfig(0.7, 4, 2, recogniser=None)
    # the section wins over stray top-level keys
    both = {**legacy, **DEFAULT_DECISION.to_manifest()}
    assert DecisionConfig.from_manifest(both) == DEFAULT_DECISION


@pytest.mark.parametrize("decision", [
    {"uncertain_threshold": 1.5}, {"uncertain_threshold": "0.5"}, {"uncertain_threshold": 0},
    {"smoothing_windows": 0}, {"smoothing_windows": 2.5}, {"min_event_windows": True},
    {"max_concealed_gap_ms": -1}, {"max_concealed_gap_ms": float("nan")}, {"loudness": 3},
    {"rest_check": {"voluntary_rate_hz": [30, 5]}}, {"rest_check": {"stretch_s": 0}},
    {"rest_check": {"min_stretch_s": 4.0}}, {"rest_check": {"voluntary_rate_hz": 5}},
    {"recogniser": 3}, {"recogniser": {"regular_cv": 0}}, {"recogniser": {"override": 1}},
    {"recogniser": {"slow_rate_hz": [15, 1]}}, {"recogniser": {"min_voluntary_trains": 0}},
    {"rest_check": [1]}, [0.5],
])
def test_a_malformed_decision_section_is_refused(decision):
    with pytest.raises(ConfigError):
        DecisionConfig.from_manifest({"decision": decision})


def test_a_new_manifest_states_the_sample_rate_once_an_old_one_is_checked():
    spec = FrontEndSpec(MelConfig(sample_rate_hz=16_000, fmax_hz=7_000.0))
    m = spec.to_manifest()
    assert json.dumps(m).count("sample_rate_hz") == 1
    assert m["mel_config"]["sample_rate_hz"] == 16_000
    old = {**m, "sample_rate_hz": 16_000,
           "front_end": {**m["front_end"], "sample_rate_hz": 16_000}}
    assert FrontEndSpec.from_manifest(old) == spec  # the extra copies agree
    with pytest.raises(ConfigError, match="more than one sample rate"):
        FrontEndSpec.from_manifest({**old, "sample_rate_hz": 20_000})


def _resigned(tmp_path: Path, edit, name: str, legacy: bool = False) -> Path:
    """The shipped bundle with ``edit(manifest)`` applied, re-signed with the dev key;
    ``legacy``: also without the decision path's golden labels (as packed before them)."""
    from conftest import as_before_the_recogniser

    from convert.packing import load_private_key

    def change(members):
        man = json.loads(members["manifest.json"])
        edit(man)
        if legacy:
            as_before_the_recogniser(members, man)
        raw = json.dumps(man, indent=1, sort_keys=True).encode()
        members["manifest.json"], members["manifest.sig"] = \
            raw, load_private_key(DEV_KEY).sign(raw)

    return rewrite_bundle(SHIPPED, tmp_path / name, change)


def _legacy(man: dict, **top) -> None:
    """A manifest as packed before the decision section: top-level keys, if any."""
    man.pop("decision", None)
    man.update(top)


def test_a_legacy_bundle_decides_with_its_top_level_keys_and_the_defaults(tmp_path):
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified

    bare = load_verified(_resigned(tmp_path, _legacy, "bare.nemg", legacy=True))
    legacy_default = replace(DEFAULT_DECISION, recogniser=None)  # no recogniser then
    assert "decision" not in bare.manifest and bare.decision == legacy_default
    pipe = Pipeline(bare)
    assert pipe.recogniser is None
    assert (pipe.threshold, pipe.smoothing, pipe.min_event_windows) == (0.5, 3, 3)
    assert pipe.rest.config == DEFAULT_DECISION.rest_check and pipe.max_concealed == 500
    old = load_verified(_resigned(
        tmp_path, lambda m: _legacy(m, uncertain_threshold=0.8, smoothing_windows=5), "old.nemg",
        legacy=True))
    assert old.decision == replace(legacy_default, uncertain_threshold=0.8,
                                   smoothing_windows=5)


def test_a_signed_but_malformed_decision_is_refused_at_verification(tmp_path):
    from edge.runtime import load_verified

    bad = _resigned(tmp_path, lambda m: m.update(decision={"smoothing_windows": -1}), "d.nemg")
    with pytest.raises(IntegrityError, match=r"d\.nemg: smoothing_windows must be"):
        load_verified(bad)


@pytest.fixture(scope="module")
def odd_bundle(tmp_path_factory):
    """The shipped model packed (the project's own packer and dev key) with :data:`ODD`."""
    from convert.packing import repack
    from edge.bundle import Bundle
    from edge.runtime import load_verified

    out = tmp_path_factory.mktemp("odd") / "odd.nemg"
    repack(Bundle.read(SHIPPED), out, key_path=DEV_KEY, version="0.0.1", decision=ODD)
    return load_verified(out)


@pytest.fixture(scope="module")
def examination():
    from rigs.testsignals import examination

    return examination(8.0, MelConfig(), seed=3)


def test_the_packed_manifest_holds_the_decision_section_and_one_sample_rate(odd_bundle):
    m = odd_bundle.manifest
    assert DecisionConfig.from_dict(m["decision"]) == ODD == odd_bundle.decision
    assert not {"uncertain_threshold", "smoothing_windows"} & set(m)  # only in the section
    assert json.dumps(m).count("sample_rate_hz") == 1


def test_the_pipeline_decides_with_the_bundles_threshold_and_smoothing(odd_bundle, examination):
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified

    shipped = Pipeline(load_verified()).push(examination, 0)[0]
    pipe = Pipeline(odd_bundle)
    odd = pipe.push(examination, 0)[0]
    assert len(odd) == len(shipped) > 0
    changed = 0
    for a, b in zip(shipped, odd, strict=True):
        assert np.array_equal(a.probabilities, b.probabilities)  # the same model
        heard = not (b.unfamiliar or b.contracting)
        # threshold 0.99: a label only at that confidence, or one the trains name alone
        assert (b.label != UNCERTAIN) == (heard and (b.confidence >= 0.99
                                                     or b.criterion == "names"))
        changed += a.label != b.label
        if heard and b.criterion != "names":  # smoothing over one window: its own
            assert np.array_equal(b.smoothed_probabilities, b.probabilities)
        elif heard:  # ... or, named by its trains alone, that class's
            assert b.smoothed_label == b.label
    assert changed > 0  # the shipped threshold (0.5) labels some of those
    assert any(not np.array_equal(a.smoothed_probabilities, a.probabilities)
               for a in shipped)  # ... and smooths over three


def test_the_pipeline_follows_the_bundles_events_concealment_and_rest_check(odd_bundle):
    from conftest import small_contraction

    from edge.pipeline import Pipeline
    from edge.runtime import load_verified

    pipe = Pipeline(odd_bundle)
    assert (pipe.min_event_windows, pipe.max_concealed) == (1, 0)
    assert [e.detail for e in pipe.lost(100)[1]] == ["gap: 100 samples"]  # not concealed
    assert pipe.gaps_concealed == 0
    x = small_contraction()
    shipped, odd = Pipeline(load_verified()), Pipeline(odd_bundle)
    assert any(w.contracting for w in shipped.push(x, 0)[0])  # its units make a contraction
    assert not any(w.contracting for w in odd.push(x, 0)[0])  # 1000 do not
    assert odd.recogniser.config.min_voluntary_trains == 1000 and odd.rest is None
    # an experiment's keyword still wins over the bundle's value
    assert Pipeline(odd_bundle, uncertain_threshold=0.5).threshold == 0.5


DECISION_NAMES = sorted({f.name for f in fields(DecisionConfig) + fields(RestCheckConfig)
                         + fields(RecogniserConfig)} - {"rest_check", "recogniser", "override"})
# (sections, and a switch: the test below finds numbers given twice)
OTHER_MEANING = {"lock_window_ms": "edge/muap/decomposition.py",
                 "detect_sigma": "edge/muap/decomposition.py",
                 "refractory_ms": "edge/muap/decomposition.py"}
"""Fields of another config that share a decision's name: the decomposition's own lock
window (the spikes of one MUAP, 5 ms) is not the rest check's (a CRD's loop, 100 ms); its
detection threshold and refractory period for ``nemg muap`` are not the ones the bundle's
recogniser decomposes with (a neuromyotonic unit fires every 3 ms)."""


def test_each_decision_default_is_written_once_in_edge_and_convert():
    """A number given to a decision anywhere but its dataclass field is a second default
    (``NAME = 3``, ``NAME: int = 3``, ``.get("name", 3)``, ``"--name", ..., default=3``)."""
    sources = {p: p.read_text() for d in ("edge", "convert") for p in (ROOT / d).rglob("*.py")}
    for name in DECISION_NAMES:
        word = name.replace("_", "[_-]")
        given = re.compile(rf"(?<!\w)(?<!\w-){word}\b[\"']?(\s*:[^=\n]+)?\s*[=:,]\s*\(?\d"
                           rf"|(?<!\w)(?<!\w-){word}\b[^\n]*default=\s*\d", re.IGNORECASE)
        where = [f"{p.relative_to(ROOT)}:{text[:m.start()].count(chr(10)) + 1}"
                 for p, text in sources.items() for m in given.finditer(text)
                 if str(p.relative_to(ROOT)) != OTHER_MEANING.get(name)]
        assert len(where) == 1 and where[0].startswith("edge/spec.py:"), (name, where)
