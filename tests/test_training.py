"""Training, int8 conversion and signed bundles, end to end on a tiny corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, rewrite_bundle, run_nemg

from convert.augment import AugmentConfig
from convert.corpus import CorpusItem, read_corpus, synth_corpus
from convert.dataset import (
    Condition,
    FreshRecording,
    WindowBuilder,
    background_items,
    build_windows,
    window_label,
)
from convert.make_model import make_default_model
from convert.packing import generate_key, op_names, pack
from convert.train import EpochRecordings, TrainConfig
from edge.arithmetic import INT8_LOGITS_REF, exp_table
from edge.bundle import Bundle, TrustStore
from edge.classifier import FEATURE_INPUT_SCALE, InputRequantizer
from edge.errors import ConfigError, IntegrityError
from edge.labels import LABELS, PATHOLOGICAL
from edge.readers.wav import write_wav
from edge.spec import MelConfig, WindowConfig


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    key_dir = out / "keys"
    priv, pub = generate_key(key_dir, "test")
    bundle = out / "tiny.nemg"
    summary = make_default_model(out / "build", per_class=3, test_per_class=1, epochs=2,
                                 qat_epochs=1, duration_s=3.0, arch="cnn", version="0.1.0",
                                 bundle=bundle, key=priv, docs=out / "docs",
                                 biosim_per_class=3, biosim_test_per_class=1, cross_epochs=1)
    return {"out": out, "bundle": bundle, "summary": summary, "priv": priv, "pub": pub,
            "trusted": key_dir}


@pytest.fixture(scope="module")
def bio(tmp_path_factory):
    """Another simulator's small corpus: the ``--also`` corpus of a training."""
    from convert.biosim import biosim_corpus

    out = tmp_path_factory.mktemp("bio") / "bio"
    biosim_corpus(out, 5, seed=3, duration_s=2.5)
    return out


def trusted(t) -> TrustStore:
    return TrustStore.from_dir(t["trusted"])


def _confusion_of(b: Bundle, ws) -> np.ndarray:
    """The confusion matrix (true x called) of bundle ``b``'s int8 model, with its
    calibration and arithmetic, on windows ``ws``: counted here through the box's own
    classifier, independently of the evaluation code."""
    clf = b.classifier()
    called = np.stack([clf.calibrated_probabilities(clf.invoke_int8(w), b.calibration)
                       for w in ws.x]).argmax(axis=1)
    cm = np.zeros((len(LABELS), len(LABELS)), np.int64)
    np.add.at(cm, (ws.y, called), 1)
    return cm


def _macro_f1(cm: np.ndarray) -> float:
    """Mean F1 = 2TP / (2TP + FP + FN) over the classes present."""
    support, called, hits = cm.sum(axis=1), cm.sum(axis=0), np.diag(cm)
    present = support > 0
    return float(np.mean(2 * hits[present] / (support + called)[present]))


def test_tiny_end_to_end_bundle_is_int8_loads_and_self_tests(tiny):
    b = Bundle.read(tiny["bundle"])
    m = b.verify(trusted(tiny))
    assert m["labels"] == list(LABELS) and m["version"] == "0.1.0"
    assert m["input"]["dtype"] == "int8" and m["output"]["dtype"] == "int8"
    assert m["input"]["quantization"] == [FEATURE_INPUT_SCALE, 0]  # features fed as they are
    clf = b.classifier()
    details = clf.interpreter.get_tensor_details()
    assert all(d["dtype"] in (np.int8, np.int32) for d in details)  # int32: biases only
    # int8 logits on the reference kernels, the softmax table of the fitted temperature
    assert "SOFTMAX" not in op_names(b.model_bytes)
    assert m["arithmetic"]["name"] == INT8_LOGITS_REF
    assert b.arithmetic.softmax_exp_table == exp_table(m["output"]["quantization"][0],
                                                       b.calibration.temperature)
    assert b.self_test()["windows"] == 3
    assert tiny["summary"]["bytes"] <= 100_000
    for name in ("report.json", "confusion.json", "confusion.png", "robustness.png"):
        assert (tiny["out"] / "build" / "report" / name).is_file()
    rep = json.loads((tiny["out"] / "build" / "report" / "report.json").read_text())
    assert set(rep["per_class_int8"]) == set(LABELS) and rep["arithmetic"] == INT8_LOGITS_REF
    assert 0 <= rep["ece_int8"] <= 1 and 0 <= rep["agreement"] <= 1
    assert set(rep["accuracy_vs_gain_db"]) == {"-20.0", "-10.0", "0.0", "10.0", "20.0"}
    # the bundle's figures, recomputed from its own int8 model's answers on the held-out
    # recordings: a confusion matrix counted here, not read from the report; counts are
    # exact, so the figures agree to float rounding (1e-12)
    test_items = read_corpus(tiny["out"] / "build" / "corpus-test")
    cm = _confusion_of(b, build_windows(test_items, b.mel_config, b.window_config))
    assert len(test_items) == len(LABELS)  # one recording per class
    assert cm.sum() == m["metrics"]["windows"] == rep["windows"] > len(LABELS)
    confusion = json.loads((tiny["out"] / "build" / "report" / "confusion.json").read_text())
    assert confusion["labels"] == list(LABELS) and confusion["matrix"] == cm.tolist()
    assert np.trace(cm) / cm.sum() == pytest.approx(m["metrics"]["accuracy_int8"], abs=1e-12)
    assert _macro_f1(cm) == pytest.approx(m["metrics"]["macro_f1_int8"], abs=1e-12)
    # generalisation: both simulators held out, and the two cross-simulator models
    assert set(rep["held_out"]) == {"synth", "biosim"}
    for train_on, test_on in (("synth", "biosim"), ("biosim", "synth")):
        row = rep["cross_simulator"][f"train_{train_on}"][f"test_{test_on}"]
        assert 0 <= row["macro_f1_int8"] <= 1 and set(row["recall"]) == set(LABELS)
    # the front end and the calibration travel in the bundle
    assert m["front_end"]["window_step_ms"] == 10.0 and m["mel_config"]["sample_rate_hz"] == 20_000
    assert b.calibration.temperature == rep["temperature"] > 0
    assert len(b.calibration.summary_mean) == 2 * b.mel_config.num_mels
    card = (tiny["out"] / "docs" / "model-card.md").read_text()
    assert card.index("Generalisation first") < card.index("## Metrics")


def _flip(name: str):
    def change(m):
        b = bytearray(m[name])
        b[len(b) // 2] ^= 0x01
        m[name] = bytes(b)
    return change


@pytest.mark.parametrize("case,change,message", [
    ("model", _flip("model.tflite"), "model.tflite does not match its sha256"),
    ("golden", _flip("golden.npz"), "golden.npz does not match its sha256"),
    ("manifest", lambda m: m.__setitem__("manifest.json", m["manifest.json"].replace(
        b'"version": "0.1.0"', b'"version": "9.9.9"')), "bad signature"),
    ("missing", lambda m: m.pop("golden.npz"), "missing member golden.npz"),
    ("extra", lambda m: m.__setitem__("payload.sh", b"rm -rf /"), "unsigned member"),
])
def test_tampered_bundles_are_refused(tiny, tmp_path, case, change, message):
    bad = rewrite_bundle(tiny["bundle"], tmp_path / f"{case}.nemg", change)
    with pytest.raises(IntegrityError, match=message):
        Bundle.read(bad).verify(trusted(tiny))


def test_unknown_key_and_truncated_file_are_refused(tiny, tmp_path):
    other, _ = generate_key(tmp_path / "k", "other")
    with pytest.raises(IntegrityError, match="unknown key"):
        Bundle.read(tiny["bundle"]).verify(TrustStore.from_dir(tmp_path / "k"))
    # signed by a key the store does not hold: the same refusal
    rogue = tmp_path / "rogue.nemg"
    pack(rogue, model=Bundle.read(tiny["bundle"]).model_bytes, key_path=other, name="x",
         version="1.0.0", spec=Bundle.read(tiny["bundle"]).spec)
    with pytest.raises(IntegrityError, match="unknown key"):
        Bundle.read(rogue).verify(trusted(tiny))
    data = tiny["bundle"].read_bytes()
    (tmp_path / "t.nemg").write_bytes(data[: len(data) // 2])
    with pytest.raises(IntegrityError, match="truncated"):
        Bundle.read(tmp_path / "t.nemg")


def test_self_test_catches_scores_that_do_not_reproduce(tiny):
    import io

    b = Bundle.read(tiny["bundle"])
    g = b.golden()
    g["scores"] = g["scores"].copy()
    g["scores"][0, 0] ^= 1  # what another runtime or model would produce
    buf = io.BytesIO()
    np.savez(buf, **g)
    b.members["golden.npz"] = buf.getvalue()
    with pytest.raises(IntegrityError, match="self-test failed: window 0"):
        b.self_test()
    g = Bundle.read(tiny["bundle"]).golden()
    g["samples"] = g["samples"].copy()
    g["samples"][100] += 1000  # features no longer match
    buf = io.BytesIO()
    np.savez(buf, **g)
    b.members["golden.npz"] = buf.getvalue()
    with pytest.raises(IntegrityError, match="features differ"):
        b.self_test()


def test_cli_pack_verify_inspect(tiny, tmp_path):
    tfl = tiny["out"] / "build" / "model-ptq.tflite"
    out = tmp_path / "cli.nemg"
    ckpt = tiny["out"] / "build" / "checkpoint" / "model.h5"
    run_nemg("bundle", "pack", "--model", str(tfl), "--key", str(tiny["priv"]), "--name", "cli",
             "--version", "1.2.3", "--out", str(out), "--checkpoint", str(ckpt), check=True)
    assert Bundle.read(out).spec == Bundle.read(tiny["bundle"]).spec  # the checkpoint's
    assert_one_line_error(run_nemg("bundle", "pack", "--model", str(tfl), "--key",
                                   str(tiny["priv"]), "--name", "x", "--version", "1.0.0",
                                   "--out", str(tmp_path / "y.nemg")), "--front-end")
    proc = run_nemg("bundle", "verify", str(out), "--trusted", str(tiny["trusted"]),
                    "--self-test", check=True)
    assert json.loads(proc.stdout)["self_test"]["windows"] == 3
    assert json.loads(run_nemg("bundle", "inspect", str(out), check=True).stdout)[
        "version"] == "1.2.3"
    assert_one_line_error(run_nemg("bundle", "verify", str(out)), "unknown key")
    assert_one_line_error(run_nemg("bundle", "verify", str(tmp_path / "nope.nemg")), "nope")
    assert_one_line_error(run_nemg("bundle", "pack", "--model", str(tfl), "--key",
                                   str(tiny["priv"]), "--name", "x", "--version", "one",
                                   "--out", str(tmp_path / "x.nemg"), "--front-end",
                                   str(tiny["bundle"])), "not semantic")


def test_window_labels_keep_the_dominant_discharge():
    spans = [(0.0, 1.0, "end_plate"), (1.0, 1.3, "fasciculation"), (1.3, 4.0, "end_plate")]
    assert window_label(spans, 0.0, 2.0) == "fasciculation"  # a whole discharge inside
    assert window_label(spans, 1.5, 3.5) == "end_plate"
    assert window_label([(0, 1.9, "silence"), (1.9, 4, "fibrillation")], 0, 2) == "silence"
    assert window_label([(0, 1.0, "silence"), (1.0, 4, "artifact")], 0, 2) == "artifact"


def test_augmented_windows_do_not_depend_on_the_worker_count(tiny):
    items = read_corpus(tiny["out"] / "build" / "corpus-train")
    bgs = background_items(items)
    assert {i.label for i in bgs} == {"end_plate", "motor_unit"}
    one = build_windows(items, MelConfig(), WindowConfig(), augment_seed=7,
                        background_items=bgs)
    with WindowBuilder(MelConfig(), WindowConfig(), background_items=bgs, workers=2) as b:
        two = b.build(items, augment_seed=7)
        again = b.build(items, augment_seed=8)  # the pool serves later epochs too
    np.testing.assert_array_equal(one.x, two.x)
    np.testing.assert_array_equal(one.y, two.y)
    np.testing.assert_array_equal(one.group, two.group)
    assert not np.array_equal(one.x, again.x)


def test_test_condition_windows_do_not_depend_on_the_worker_count(tiny):
    items = read_corpus(tiny["out"] / "build" / "corpus-test")
    mel, win = MelConfig(), WindowConfig()
    clean = build_windows(items, mel, win)
    noisy = Condition(snr_db=5.0, seed=3)
    one = build_windows(items, mel, win, condition=noisy)
    with WindowBuilder(mel, win, workers=2) as b:
        two = b.build(items, condition=noisy)
        quiet = b.build(items, condition=Condition(gain_db=-20.0))
    np.testing.assert_array_equal(one.x, two.x)
    np.testing.assert_array_equal(one.y, clean.y)  # a condition never moves a label
    assert not np.array_equal(one.x, clean.x)
    # 20 dB less level: 40 int8 steps of 0.5 dB lower wherever nothing saturates
    free = (clean.x > -88) & (quiet.x > -128)
    assert free.mean() > 0.5
    assert np.median(clean.x[free].astype(int) - quiet.x[free]) == 40


def test_fresh_patients_are_new_every_epoch_and_what_the_corpus_would_hold(tmp_path):
    small, large = tmp_path / "small", tmp_path / "large"
    synth_corpus(small, 4, seed=9, duration_s=1.0)
    synth_corpus(large, 6, seed=9, duration_s=1.0)  # holds the small one's next patients
    items = read_corpus(small)
    epochs = EpochRecordings(items, small, TrainConfig(fresh_share=0.5))
    e0, e1 = epochs(0), epochs(1)
    for e in (e0, e1):  # same size and class balance as the corpus, half of it new
        assert sorted(i.label for i in e) == sorted(i.label for i in items)
        assert sum(isinstance(i, FreshRecording) for i in e) == len(items) // 2
    fresh0 = [i for i in e0 if isinstance(i, FreshRecording)]
    fresh1 = [i for i in e1 if isinstance(i, FreshRecording)]
    assert {i.rng_seed[2] for i in fresh0} == {4, 5}  # indices the corpus does not hold
    assert {i.rng_seed for i in fresh0}.isdisjoint({i.rng_seed for i in fresh1})
    assert len({i.seed for i in fresh0 + fresh1}) == len(fresh0) + len(fresh1)
    assert all(i.seed < 0 for i in fresh0)  # never a corpus recording's group
    stored = {i.path.name: i for i in read_corpus(large)}
    for f in fresh0[:: len(fresh0) // 4]:  # bit for bit what `nemg data synth` writes
        uv, spans, _ = f.signal(20_000)
        twin = stored[f"{f.label}_{f.rng_seed[2]:04d}.wav"]
        np.testing.assert_array_equal(uv, twin.load().samples_uv)
        # labels.csv keeps spans to 0.1 ms, sorted
        assert sorted((round(a, 4), round(b, 4), lab) for a, b, lab in spans) == list(twin.spans)
    assert EpochRecordings(items, small, TrainConfig())(3) is items  # off by default
    (small / "manifest.json").unlink()  # an imported corpus: nothing to synthesise from
    with pytest.raises(ConfigError, match="synthetic corpus"):
        EpochRecordings(items, small, TrainConfig(fresh_share=0.5))
    with pytest.raises(ConfigError, match="fresh share"):
        EpochRecordings(items, small, TrainConfig(fresh_share=1.5))


def test_background_pool_is_every_background_recording_in_equal_shares(tmp_path):
    def item(label, k):
        return CorpusItem(tmp_path / f"{label}{k}.wav", label, ((0.0, 1.0, label),), k)

    items = ([item("end_plate", k) for k in range(5)] + [item("motor_unit", k) for k in range(3)]
             + [item("fibrillation", k) for k in range(4)])
    pool = background_items(items)
    assert [i.label for i in pool].count("end_plate") == 3  # equal shares
    assert [i.label for i in pool].count("motor_unit") == 3
    assert len(background_items(items, limit=4)) == 4


def test_background_mixing_relabels_quiet_spans_and_spares_normal_classes(tmp_path):
    fs, n = 20_000, 3 * 20_000
    muaps = np.zeros(n, np.int16)
    muaps[:: fs // 10] = 2000  # a voluntary unit firing at 10 Hz
    quiet = np.zeros(n, np.int16)
    fasc = quiet.copy()
    fasc[int(0.55 * fs)] = 4000  # one fasciculation, then rest
    files = {"mu.wav": muaps, "quiet.wav": quiet, "fasc.wav": fasc}
    for name, pcm in files.items():
        write_wav(tmp_path / name, pcm, fs, 0.5)
    mu = CorpusItem(tmp_path / "mu.wav", "motor_unit", ((0.0, 3.0, "motor_unit"),), 0)
    silence = CorpusItem(tmp_path / "quiet.wav", "silence", ((0.0, 3.0, "silence"),), 1)
    fas = CorpusItem(tmp_path / "fasc.wav", "fasciculation",
                     ((0.4, 0.7, "fasciculation"), (0.7, 3.0, "silence")), 2)
    only_mixing = AugmentConfig(p_gain=0, p_noise=0, p_mains=0, p_stretch=0, p_bandwidth=0,
                                p_background=1.0, background_gain=(1.0, 1.0))
    with WindowBuilder(MelConfig(), WindowConfig(), aug=only_mixing,
                       background_items=[mu]) as b:
        mixed = b.build([silence, fas], augment_seed=1)
    labels = [LABELS[y] for y in mixed.y[mixed.group == 2]]
    assert "motor_unit" in labels  # fasciculation's rest now shows the unit's activity
    assert set(labels) <= {"fasciculation", "motor_unit"}
    # a silence recording stays silent: a mixed unit would make its label false
    assert {LABELS[y] for y in mixed.y[mixed.group == 1]} == {"silence"}
    assert np.all(mixed.x[mixed.group == 1] == mixed.x[mixed.group == 1].min())


def test_input_requantizer_matches_float_arithmetic():
    q = np.arange(-128, 128, dtype=np.int8)
    assert InputRequantizer.for_model(FEATURE_INPUT_SCALE, 0).identity
    r = InputRequantizer.for_model(0.0101715, 33)
    expected = np.clip(np.round(q / 64.0 / 0.0101715) + 33, -128, 127)
    assert np.abs(r(q).astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(r(q), r(q))  # deterministic


def test_train_quantize_evaluate_cli(tiny, bio, tmp_path):
    from convert.dataset import split_by_recording

    data = tiny["out"] / "build" / "corpus-train"
    ck = tmp_path / "ck"
    proc = run_nemg("train", "--data", str(data), "--also", str(bio), "--out", str(ck),
                    "--epochs", "1", check=True, timeout=300)
    assert (ck / "model.h5").is_file() and (ck / "training.json").is_file()
    # another corpus joins every epoch and the validation set
    assert "also" in proc.stderr and "cuInit" not in proc.stderr
    t = json.loads((ck / "training.json").read_text())
    assert t["val_recordings"] == (len(split_by_recording(read_corpus(data), 0.2, 0)[1])
                                   + len(split_by_recording(read_corpus(bio), 0.2, 0)[1]))
    # without options, nemg train builds the shipped architecture (make model's recipe)
    from convert.architecture import load_checkpoint
    from edge.bundle import Bundle

    shipped_ckpt = tmp_path / "shipped.h5"
    shipped_ckpt.write_bytes(Bundle.read(ROOT / "models" / "nemg-default.nemg")
                             .members["checkpoint.h5"])

    def architecture(path):
        m = load_checkpoint(path)
        return m.count_params(), [(type(la).__name__, la.output_shape) for la in m.layers]

    assert architecture(ck / "model.h5") == architecture(shipped_ckpt)
    tfl = tmp_path / "m.tflite"
    run_nemg("quantize", str(ck), "--data", str(data), "--out", str(tfl), check=True,
             timeout=300)
    proc = run_nemg("evaluate", str(tfl), "--data", str(tiny["out"] / "build" / "corpus-test"),
                    "--out", str(tmp_path / "rep"), "--checkpoint", str(ck),
                    "--no-robustness", check=True, timeout=300)
    rep = json.loads(proc.stdout)
    assert 0.0 <= rep["macro_f1_int8"] <= 1.0 and "agreement" in rep
    # pathological windows, split by what the discharge sits on, add up to all of them
    by_bg = rep["accuracy_by_background"]
    assert set(by_bg) <= {"none", "end_plate", "motor_unit"} and by_bg
    full = json.loads((tmp_path / "rep" / "report.json").read_text())
    patho = sum(v["support"] for k, v in full["per_class_int8"].items() if k in PATHOLOGICAL)
    assert sum(v["windows"] for v in by_bg.values()) >= patho > 0
    # ... and by how far the discharge stands out of it: the same windows again
    by_snr = rep["accuracy_by_discharge_snr"]
    assert sum(v["windows"] for v in by_snr.values()) == patho
    assert all(k.endswith("x") for k in by_snr)
    assert_one_line_error(run_nemg("train", "--data", str(tmp_path / "nothing"), "--out",
                                   str(tmp_path / "o")), "labels.csv")


def test_default_bundle_is_committed_and_verifies(tmp_path):
    b = Bundle.read(ROOT / "models" / "nemg-default.nemg")
    m = b.verify(TrustStore.from_dir(ROOT / "keys" / "trusted"))
    assert m["development_key"] is True
    assert len(b.model_bytes) <= 100_000
    # Issue 5's target was macro-F1 >= 0.95 on the 30-per-class held-out set (1.4.0 reached
    # 0.9537 on the synthesiser of its day); measured again for 1.5.0 on today's corpus
    # (threshold contractions) through its int8-logits arithmetic it is 0.9343
    # (docs/model-card.md): the floor guards that figure -- what the bundle says ...
    assert m["metrics"]["macro_f1_int8"] >= 0.93
    assert tuple(map(int, m["version"].split("."))) >= (1, 4, 0)
    assert m["metrics"]["windows"] >= 3000  # the 30-recordings-per-class test set
    assert m["metrics"]["agreement"] >= 0.99
    b.self_test()
    # ... against what its model does: the first 3 of those 30 recordings per class (the
    # test seed; each recording depends on (seed, label, index) alone, so the same
    # patients), classified here. A tenth of the windows, so the stated tolerance is 0.05
    # (measured at the time of writing: 0.921 on these windows, 0.934 on all 30)
    synth_corpus(tmp_path / "test", 3, seed=m["metrics"]["test_seed"], duration_s=6.0,
                 workers=2)
    cm = _confusion_of(b, build_windows(read_corpus(tmp_path / "test"), b.mel_config,
                                        b.window_config, workers=2))
    assert cm.sum() >= 0.09 * m["metrics"]["windows"]  # a tenth of the windows, or near it
    assert (cm.sum(axis=1) > 0).all()  # every class tried
    assert _macro_f1(cm) >= m["metrics"]["macro_f1_int8"] - 0.05
    assert np.trace(cm) / cm.sum() >= m["metrics"]["accuracy_int8"] - 0.05
    # and never more wrong windows than the whole stored set admits
    assert cm.sum() - np.trace(cm) <= round((1 - m["metrics"]["accuracy_int8"])
                                            * m["metrics"]["windows"])


def test_model_benchmark_runs():
    # --quick skips VGG16/ResNet50 (minutes to convert); `nemg bench model` runs them
    proc = run_nemg("bench", "model", "--quick", "--repeats", "1", "--json", check=True,
                    timeout=300)
    obj = json.loads(proc.stdout.strip().splitlines()[-1])
    assert obj["size_bytes"] <= 100_000 and obj["invoke_ms_median"] > 0
    chatter = [ln for ln in proc.stderr.splitlines()
               if any(w in ln for w in ("absl", "oneDNN", "cuda", "XNNPACK"))]
    assert not chatter, chatter  # TensorFlow's native start-up lines stay off stderr


def test_another_corpus_joins_every_epoch_and_the_validation_set(tmp_path, bio):
    """(``nemg train --also``, and the validation set it makes, are checked by
    :func:`test_train_quantize_evaluate_cli`: one training run for both.)"""
    from convert.dataset import split_by_recording

    small = tmp_path / "small"
    synth_corpus(small, 4, seed=9, duration_s=2.5)
    also_train, also_val = split_by_recording(read_corpus(bio), 0.2, 0)
    items = read_corpus(small)
    epochs = EpochRecordings(items, small, TrainConfig(fresh_share=1.0), also_train)
    for e in (epochs(0), epochs(1)):  # all synthetic patients new, biosim's always there
        assert sum(isinstance(i, FreshRecording) for i in e) == len(items)
        assert [i for i in e if not isinstance(i, FreshRecording)] == also_train
    assert also_val and not set(also_val) & set(also_train)


def test_source_rate_augmentation_is_what_the_box_reads_from_such_a_file():
    from convert.augment import AugmentConfig, Augmenter
    from edge.resample import resample_int16

    rng = np.random.default_rng(7)
    x = rng.normal(0, 200, 40_000)  # µV at 20 kHz, white: energy up to 10 kHz
    y = Augmenter(1, 20_000, AugmentConfig(p_source_rate=1.0)).source_rate(x, 10_000.0)
    q = np.clip(np.round(x / 0.5), -32768, 32767).astype(np.int16)
    box = resample_int16(resample_int16(q, 20_000, 10_000), 10_000, 20_000)
    np.testing.assert_array_equal(y, box * 0.5)  # the box's own bits
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(y.size, 1 / 20_000)
    assert spec[f > 5_200].sum() < 1e-5 * spec[f < 4_000].sum()  # nothing above 5 kHz
    a, b = Augmenter(3, 20_000), Augmenter(3, 20_000, AugmentConfig(p_source_rate=0.0))
    np.testing.assert_array_equal(a(x), b(x))  # off by default: no draw, same sequence
