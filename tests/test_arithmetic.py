"""One int8 arithmetic wherever the box runs (edge.arithmetic, issue 32): the table softmax
is exact IEEE arithmetic, the manifest section is checked, an int8-logits bundle runs on
TFLite's reference kernels (and not on the default ones) with the temperature applied once,
the same bits under LiteRT and tf.lite, and a legacy bundle keeps today's path."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import DEV_KEY, ROOT, assert_one_line_error, run_nemg

from edge.arithmetic import (
    INT8_LOGITS_REF,
    LEGACY,
    LEGACY_ARITHMETIC,
    TABLE_SIZE,
    Arithmetic,
    TableSoftmax,
    exp_table,
)
from edge.bundle import Bundle
from edge.calibration import Calibration
from edge.classifier import Classifier
from edge.errors import ConfigError, IntegrityError
from edge.interpreter import RUNTIME, Runtime, create_interpreter, require_runtime
from edge.runtime import load_verified

LOGITS_SCALE = 0.36373  # about the shipped model's logits scale (one int8 step)
LEGACY_BUNDLE = ROOT / "models" / "candidates" / "nemg-default-2.0.0.nemg"
"""A bundle packed before the arithmetic section: the full int8 graph, SOFTMAX inside."""


def random_logits(n: int, classes: int = 12, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-128, 128, (n, classes)).astype(np.int8)


# ---- the table softmax ----------------------------------------------------------------------
@pytest.mark.parametrize("temperature", [0.5, 1.0, 1.0311, 3.0])
def test_table_softmax_is_a_float64_softmax_to_1e_15(temperature):
    softmax = TableSoftmax(exp_table(LOGITS_SCALE, temperature))
    for q in random_logits(2000):
        p = softmax(q)
        e = np.exp((q.astype(np.float64) - q.max()) * (LOGITS_SCALE / temperature))
        assert p.dtype == np.float64 and np.abs(p - e / e.sum()).max() < 1e-15
        assert abs(math.fsum(p) - 1.0) < 1e-15 and ((p >= 0) & (p <= 1)).all()
        # ordered as the logits are: a larger logit never has a smaller probability
        order = np.argsort(q, kind="stable")
        assert (np.diff(p[order]) >= 0).all()


def test_table_softmax_is_exact_ieee_arithmetic():
    """Lookups, a correctly rounded sum and divisions: permuting the logits permutes the
    bits, shifting them changes nothing (the zero point cancels), equal logits are
    exactly uniform, and a table of binary fractions gives pinned bits on any machine."""
    softmax = TableSoftmax(exp_table(LOGITS_SCALE, 1.0311))
    rng = np.random.default_rng(1)
    for q in random_logits(300, seed=2):
        p = softmax(q)
        perm = rng.permutation(q.size)
        assert softmax(q[perm]).tobytes() == p[perm].tobytes()
        shift = int(rng.integers(-128 - int(q.min()), 128 - int(q.max()))) if np.ptp(q) < 255 \
            else 0
        assert softmax((q.astype(np.int16) + shift).astype(np.int8)).tobytes() == p.tobytes()
        assert softmax(q).tobytes() == p.tobytes()
    assert (softmax(np.full(12, 7, np.int8)) == 1 / 12).all()
    halves = TableSoftmax(tuple(0.5 ** d for d in range(TABLE_SIZE)))
    np.testing.assert_array_equal(halves(np.array([3, 2], np.int8)), [1 / 1.5, 0.5 / 1.5])
    bits = b"".join(halves(q).tobytes() for q in random_logits(500, seed=3))
    assert hashlib.sha256(bits).hexdigest()[:16] == "da246dae4e8f7585"


# ---- the manifest section -------------------------------------------------------------------
def test_arithmetic_round_trips_through_the_manifest():
    a = Arithmetic(INT8_LOGITS_REF, exp_table(LOGITS_SCALE, 1.0311))
    back = Arithmetic.from_manifest(json.loads(json.dumps(a.to_manifest())))
    assert back == a and back.op_resolver == "BUILTIN_REF" and back.logits
    assert back.runtimes == ("litert", "tensorflow")
    assert Arithmetic.from_manifest({}) == LEGACY_ARITHMETIC == Arithmetic()
    assert LEGACY_ARITHMETIC.name == LEGACY and LEGACY_ARITHMETIC.op_resolver is None
    assert Arithmetic.from_manifest(json.loads(json.dumps(Arithmetic().to_manifest()))) \
        == LEGACY_ARITHMETIC


GOOD = list(exp_table(LOGITS_SCALE))


@pytest.mark.parametrize("section, why", [
    ({"name": "int8-logits/xnnpack", "softmax_exp_table": GOOD}, "not one this box knows"),
    ({"softmax_exp_table": GOOD}, "not one this box knows"),
    ({"name": INT8_LOGITS_REF}, "256"),
    ({"name": INT8_LOGITS_REF, "softmax_exp_table": GOOD[:-1]}, "256"),
    ({"name": INT8_LOGITS_REF, "softmax_exp_table": [*GOOD, 0.0]}, "256"),
    ({"name": INT8_LOGITS_REF, "softmax_exp_table": "1.0 0.9"}, "list"),
    ({"name": INT8_LOGITS_REF, "softmax_exp_table": [*GOOD[:5], float("nan"), *GOOD[6:]]},
     "finite"),
    ({"name": INT8_LOGITS_REF, "softmax_exp_table": [*GOOD[:5], "0.1", *GOOD[6:]]}, "finite"),
    ({"name": INT8_LOGITS_REF, "softmax_exp_table": [*GOOD[:5], True, *GOOD[6:]]}, "finite"),
    ({"name": INT8_LOGITS_REF, "softmax_exp_table": [*GOOD[:9], math.inf, *GOOD[10:]]},
     "finite"),
    ({"name": INT8_LOGITS_REF, "softmax_exp_table": GOOD[::-1]}, "non-increasing"),
    ({"name": INT8_LOGITS_REF, "softmax_exp_table": [0.5, *GOOD[1:]]}, "from 1.0"),
    ({"name": INT8_LOGITS_REF, "softmax_exp_table": [1.0, -1e-3, *GOOD[2:]]}, "finite"),
    ({"name": LEGACY, "softmax_exp_table": GOOD}, "takes no softmax table"),
    ({"name": INT8_LOGITS_REF, "softmax_exp_table": GOOD, "beta": 1.0}, "expected an object"),
    ("int8-logits/tflite-builtin-ref", "expected an object"),
])
def test_malformed_sections_are_refused_in_one_line(section, why):
    # through JSON, as a manifest arrives (NaN and Infinity included)
    m = json.loads(json.dumps({"arithmetic": section}))
    with pytest.raises(IntegrityError, match="arithmetic") as exc:
        Arithmetic.from_manifest(m)
    assert why in str(exc.value) and "\n" not in str(exc.value)


# ---- bundles ----------------------------------------------------------------------------------
def resign(src: Path, dst: Path, edit_manifest) -> Path:
    """A copy of bundle ``src`` whose manifest ``edit_manifest(m)`` changed in place,
    signed again with the development key (what a careless workstation could sign)."""
    from convert.packing import load_private_key

    with zipfile.ZipFile(src) as z:
        members = {n: z.read(n) for n in z.namelist()}
    m = json.loads(members["manifest.json"])
    edit_manifest(m)
    raw = json.dumps(m, indent=1, sort_keys=True).encode()
    members["manifest.json"], members["manifest.sig"] = raw, load_private_key(DEV_KEY).sign(raw)
    with zipfile.ZipFile(dst, "w") as z:
        for n, d in members.items():
            z.writestr(n, d)
    return dst


@pytest.fixture(scope="module")
def legacy_bundle() -> Path:
    if "arithmetic" in Bundle.read(LEGACY_BUNDLE).manifest:
        pytest.skip(f"{LEGACY_BUNDLE.name} is no longer a legacy bundle")
    return LEGACY_BUNDLE


@pytest.fixture(scope="module")
def logits_bundle(tmp_path_factory, legacy_bundle) -> Path:
    """A legacy bundle repacked by the workstation: its model cut before the SOFTMAX,
    int8 logits run on the reference kernels, the softmax table with its temperature."""
    from convert.packing import repack

    out = tmp_path_factory.mktemp("logits") / "logits.nemg"
    repack(Bundle.read(legacy_bundle), out, key_path=DEV_KEY, version="2.0.1")
    return out


@pytest.fixture(scope="module")
def windows() -> np.ndarray:
    """Decision windows of the demo exam's int8 features (what the pipeline feeds)."""
    from edge.features import MelFrontEnd
    from edge.readers import load_wav
    from rigs.demo import DEMO_WAV

    b = Bundle.read(LEGACY_BUNDLE)
    feats = MelFrontEnd(b.mel_config).process(load_wav(DEMO_WAV).to_int16(0.5)[: 30 * 20_000])
    w = b.window_config
    return np.stack([feats[s : s + w.frames] for s in range(0, feats.shape[0] - w.frames,
                                                             w.hop_frames)])


def outputs(interpreter, clf: Classifier, windows: np.ndarray) -> np.ndarray:
    """int8 outputs of ``interpreter`` (the classifier's model) for ``windows``."""
    inp = interpreter.get_input_details()[0]["index"]
    out = interpreter.get_output_details()[0]["index"]
    rows = []
    for w in windows:
        interpreter.set_tensor(inp, clf.requantize(w)[None, :, :, None])
        interpreter.invoke()
        rows.append(interpreter.get_tensor(out)[0].copy())
    return np.stack(rows)


def test_a_logits_bundle_runs_on_the_reference_kernels(logits_bundle, legacy_bundle,
                                                       windows):
    from convert.packing import cut_before_softmax

    b = load_verified(logits_bundle)  # verified and self-tested (golden int8 logits)
    assert b.arithmetic.name == INT8_LOGITS_REF
    assert b.model_bytes == cut_before_softmax(Bundle.read(legacy_bundle).model_bytes)
    clf = b.classifier()
    got = np.stack([clf.invoke_int8(w) for w in windows])
    runtime = require_runtime()
    ref = outputs(create_interpreter(runtime, op_resolver="BUILTIN_REF",
                                     model_content=b.model_bytes), clf, windows)
    default = outputs(create_interpreter(runtime, model_content=b.model_bytes), clf, windows)
    np.testing.assert_array_equal(got, ref)
    differ = (default != got).any(axis=1)
    assert differ.sum() >= 1, "the default kernels gave the reference kernels' logits"


def test_the_temperature_is_applied_once(logits_bundle, windows):
    b = load_verified(logits_bundle, self_test=False)
    clf, cal = b.classifier(), b.calibration
    assert cal.temperature != 1.0  # the shipped calibration's, now inside the table
    scale, _ = clf.output_quantization
    scores = np.stack([clf.invoke_int8(w) for w in windows])
    probs = clf.calibrated_probabilities(scores, cal)
    for s, p in zip(scores, probs, strict=True):
        e = np.exp((s.astype(np.float64) - s.max()) * (scale / cal.temperature))
        assert np.abs(p - e / e.sum()).max() < 1e-15
        assert p.tobytes() == clf.calibrated_probabilities(s, Calibration()).tobytes() \
            == clf.probabilities(s).tobytes()
    # a table that does not hold the calibration's temperature is refused by the self-test
    t = b.arithmetic.softmax_exp_table
    b.manifest["arithmetic"]["softmax_exp_table"] = list(exp_table(scale, 2 * cal.temperature))
    assert b.arithmetic.softmax_exp_table != t
    with pytest.raises(IntegrityError, match="self-test failed: its softmax table"):
        b.self_test()


def test_a_failing_self_test_names_the_runtime_and_the_arithmetic(logits_bundle):
    b = Bundle.read(logits_bundle)
    g = b.golden()
    g["scores"] = g["scores"].copy()
    g["scores"][0, 0] ^= 1  # what another runtime's kernels would give
    buf = io.BytesIO()
    np.savez(buf, **g)
    b.members["golden.npz"] = buf.getvalue()
    with pytest.raises(IntegrityError) as exc:
        b.self_test()
    msg = str(exc.value)
    assert "self-test failed: window 0 logits [" in msg and "\n" not in msg
    assert f"under {RUNTIME.title} (BUILTIN_REF kernels)" in msg
    assert f"validated with {INT8_LOGITS_REF}: TFLite reference kernels" in msg


def test_verify_refuses_an_unknown_or_malformed_arithmetic(logits_bundle, tmp_path):
    def unknown(m):
        m["arithmetic"]["name"] = "int8-logits/some-npu"

    def nan_table(m):
        m["arithmetic"]["softmax_exp_table"][3] = float("nan")

    for edit in (unknown, nan_table):
        bad = resign(logits_bundle, tmp_path / f"{edit.__name__}.nemg", edit)
        with pytest.raises(IntegrityError, match=f"{bad}: arithmetic"):
            load_verified(bad)
        assert_one_line_error(run_nemg("bundle", "verify", str(bad)), str(bad), "arithmetic")


def test_the_arithmetic_must_match_the_model(logits_bundle, legacy_bundle):
    logits, full = Bundle.read(logits_bundle), Bundle.read(legacy_bundle)
    with pytest.raises(IntegrityError, match="expects a SOFTMAX output"):
        Classifier(logits.model_bytes, logits.labels)  # a cut model packed as legacy
    with pytest.raises(IntegrityError, match="expects int8 logits"):
        Classifier(full.model_bytes, full.labels, arithmetic=logits.arithmetic)


def test_a_runtime_that_cannot_compute_the_arithmetic_is_refused(logits_bundle, legacy_bundle,
                                                                monkeypatch):
    import edge.classifier

    b = Bundle.read(logits_bundle)
    here = require_runtime()
    # tflite-runtime 2.14's reference kernels round twice: refused before anything runs
    old = replace(here, name="tflite_runtime", version="2.14.0")
    monkeypatch.setattr(edge.classifier, "require_runtime", lambda: old)
    with pytest.raises(ConfigError, match=r"'int8-logits/tflite-builtin-ref', which "
                       r"tflite-runtime 2\.14\.0 does not compute \(use LiteRT or tf\.lite\)"):
        b.classifier()
    Classifier(Bundle.read(legacy_bundle).model_bytes, b.labels)  # legacy: golden test decides
    # a runtime without the op resolver
    blind = Runtime(here.name, here.module, here.version, here.interpreter_class, None)
    with pytest.raises(ConfigError, match="cannot run a model with op resolver BUILTIN_REF"):
        create_interpreter(blind, op_resolver="BUILTIN_REF", model_content=b.model_bytes)
    with pytest.raises(ConfigError, match="offers: AUTO, BUILTIN, BUILTIN_REF"):
        create_interpreter(here, op_resolver="NPU", model_content=b.model_bytes)


def test_tf_lite_computes_the_same_logits_and_labels_as_litert(logits_bundle, windows,
                                                               tmp_path):
    """Both run TFLite's reference kernels: the same int8 logits and the same
    ``nemg classify --json`` bytes."""
    np.save(tmp_path / "w.npy", windows)
    code = textwrap.dedent(f"""
        import json, pathlib, numpy as np
        from edge.runtime import load_verified
        b = load_verified(pathlib.Path({str(logits_bundle)!r}))
        clf = b.classifier()
        w = np.load({str(tmp_path / "w.npy")!r})
        print(json.dumps([clf.runtime.name, [clf.invoke_int8(x).tolist() for x in w]]))
    """)
    wav = tmp_path / "exam.wav"
    from edge.readers import load_wav
    from edge.readers.wav import write_wav
    from rigs.demo import DEMO_WAV

    write_wav(wav, load_wav(DEMO_WAV).to_int16(0.5)[: 20 * 20_000], 20_000, 0.5)
    seen = {}
    for runtime in ("litert", "tensorflow"):
        env = {**os.environ, "NEMG_TFLITE_RUNTIME": runtime, "TF_CPP_MIN_LOG_LEVEL": "2"}
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              cwd=ROOT, env=env, timeout=300)
        assert proc.returncode == 0, proc.stderr
        name, logits = json.loads(proc.stdout.splitlines()[-1])
        classified = run_nemg("classify", "--json", "--model", str(logits_bundle), str(wav),
                              env={"NEMG_TFLITE_RUNTIME": runtime}, check=True).stdout
        assert name == runtime
        seen[runtime] = (logits, classified)
    assert seen["litert"] == seen["tensorflow"]
    assert len(seen["litert"][0]) == len(windows) and '"label"' in seen["litert"][1]


# ---- the legacy path ---------------------------------------------------------------------------
def test_a_legacy_bundle_keeps_todays_path(legacy_bundle, windows):
    b = load_verified(legacy_bundle)  # golden int8 softmax outputs, default kernels
    assert "arithmetic" not in b.manifest and b.arithmetic == LEGACY_ARITHMETIC
    clf, cal = b.classifier(), b.calibration
    today = Classifier(b.model_bytes, b.labels)
    default = create_interpreter(require_runtime(), model_content=b.model_bytes)
    for w in windows:
        s = clf.invoke_int8(w)
        assert s.tobytes() == today.invoke_int8(w).tobytes()
        p = clf.calibrated_probabilities(s, cal)
        assert p.tobytes() == cal.probabilities(today.probabilities(s)).tobytes()
    np.testing.assert_array_equal(outputs(default, clf, windows),
                                  [clf.invoke_int8(w) for w in windows])


# ---- nemg info ---------------------------------------------------------------------------------
def test_info_names_the_runtime_kernels_and_cpu(logits_bundle, legacy_bundle):
    info = json.loads(run_nemg("info", "--json", env={"NEMG_MODEL": str(legacy_bundle)},
                               check=True).stdout)
    assert (info["runtime"], info["runtime_version"]) == (RUNTIME.name, RUNTIME.version)
    assert (info["arithmetic"], info["op_resolver"]) == (LEGACY, "default")
    assert isinstance(info["cpu_features"], list)
    info = json.loads(run_nemg("info", "--json", env={"NEMG_MODEL": str(logits_bundle)},
                               check=True).stdout)
    assert (info["arithmetic"], info["op_resolver"]) == (INT8_LOGITS_REF, "BUILTIN_REF")
    assert info["kernels"].startswith("TFLite reference kernels")
    assert info["runtime_computes_it"] is True
    text = run_nemg("info", env={"NEMG_MODEL": str(logits_bundle)}, check=True).stdout
    assert "BUILTIN_REF" in text and "cpu_features" in text


def test_cpu_features_come_from_proc_cpuinfo():
    from edge.cli.info import cpu_info

    pi4 = ("processor\t: 0\nBogoMIPS\t: 108.00\n"
           "Features\t: fp asimd evtstrm crc32 cpuid\nCPU part\t: 0xd08\n\n"
           "processor\t: 1\nFeatures\t: fp asimd evtstrm crc32 cpuid asimddp\n"
           "Model\t\t: Raspberry Pi 4 Model B Rev 1.4\n")
    assert cpu_info(pi4) == {"cpu": "Raspberry Pi 4 Model B Rev 1.4", "cpu_features": ["asimd"]}
    a76 = "Features\t: fp asimd asimdhp asimddp i8mm\nCPU part\t: 0xd0b\n"
    assert cpu_info(a76) == {"cpu": "0xd0b",
                             "cpu_features": ["asimd", "asimddp", "asimdhp", "i8mm"]}
    x86 = "model name\t: AMD EPYC\nflags\t\t: fpu sse4_1 sse4_2 avx avx2 avx512f avx512_vnni\n"
    assert cpu_info(x86) == {"cpu": "AMD EPYC", "cpu_features": [
        "sse4_1", "sse4_2", "avx", "avx2", "avx512f", "avx512_vnni"]}
    assert cpu_info("") == {"cpu": "unknown", "cpu_features": []}
