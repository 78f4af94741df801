"""Packing a bundle under one int8 arithmetic (convert/packing.py, issue 32): the graph cut
before its SOFTMAX, TFLite's reference kernels, the softmax table with the temperature
inside, golden windows that tell the arithmetics apart."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from conftest import DEV_KEY, DEV_PUB, SHIPPED, run_nemg

from convert.packing import (
    _requantize_double,
    _requantize_single,
    cut_before_softmax,
    golden_vectors,
    logits_model,
    op_names,
    pack,
)
from edge.arithmetic import INT8_LOGITS_REF, exp_table
from edge.bundle import Bundle, TrustStore
from edge.calibration import Calibration
from edge.errors import ConfigError
from edge.interpreter import create_interpreter, require_runtime
from edge.labels import LABELS
from edge.spec import DEFAULT_SPEC

TEMPERATURE = 1.7


@pytest.fixture(scope="module")
def tiny_tflite() -> bytes:
    """A tiny untrained int8 classifier as the converter writes it (SOFTMAX last)."""
    import tf_keras as keras

    import convert  # noqa: F401  (Keras 2 before TensorFlow loads)
    from convert.quantize import to_int8_tflite
    from edge.classifier import FEATURE_INPUT_RANGE

    frames, mels = DEFAULT_SPEC.window.frames, DEFAULT_SPEC.mel.num_mels
    init = keras.initializers.HeNormal(seed=3)
    inp = keras.Input((frames, mels, 1))
    x = keras.layers.Conv2D(4, 5, strides=4, activation="relu", kernel_initializer=init)(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Softmax()(keras.layers.Dense(len(LABELS), kernel_initializer=init)(x))
    rng = np.random.default_rng(0)

    def rep():
        for edge_value in FEATURE_INPUT_RANGE:
            yield [np.full((1, frames, mels, 1), edge_value, np.float32)]
        for _ in range(20):
            yield [rng.integers(-128, 128, (1, frames, mels, 1)).astype(np.float32) / 64]

    return to_int8_tflite(keras.Model(inp, out), rep)


@pytest.fixture(scope="module")
def tiny_bundle(tiny_tflite, tmp_path_factory):
    out = tmp_path_factory.mktemp("packing") / "tiny.nemg"
    pack(out, model=tiny_tflite, key_path=DEV_KEY, name="tiny", version="0.0.1",
         spec=DEFAULT_SPEC, calibration=Calibration(TEMPERATURE))
    return out


def test_the_cut_graph_outputs_the_softmax_input_bit_for_bit(tiny_tflite):
    assert op_names(tiny_tflite)[-1] == "SOFTMAX"
    cut = cut_before_softmax(tiny_tflite)
    assert "SOFTMAX" not in op_names(cut) and op_names(cut) == op_names(tiny_tflite)[:-1]
    rt = require_runtime()
    full = create_interpreter(rt, op_resolver="BUILTIN_REF", model_content=tiny_tflite,
                              experimental_preserve_all_tensors=True)
    logits = create_interpreter(rt, op_resolver="BUILTIN_REF", model_content=cut)
    ops = full._get_ops_details()  # the runtimes' only per-op view
    softmax_in = int(next(op["inputs"][0] for op in ops if op["op_name"] == "SOFTMAX"))
    rng = np.random.default_rng(1)
    for _ in range(3):
        w = rng.integers(-128, 128, (1, *full.get_input_details()[0]["shape"][1:]), np.int8)
        for it in (full, logits):
            it.set_tensor(it.get_input_details()[0]["index"], w)
            it.invoke()
        np.testing.assert_array_equal(
            logits.get_tensor(logits.get_output_details()[0]["index"]),
            full.get_tensor(softmax_in))


def test_a_graph_not_ending_in_softmax_is_refused_and_logits_stay_as_they_are(tiny_tflite):
    cut = cut_before_softmax(tiny_tflite)
    with pytest.raises(ConfigError, match="ends in FULLY_CONNECTED, not in a SOFTMAX"):
        cut_before_softmax(cut)
    assert logits_model(cut) is cut and logits_model(tiny_tflite) == cut


def test_a_packed_bundle_is_int8_logits_under_reference_kernels_with_its_table(tiny_bundle):
    b = Bundle.read(tiny_bundle)
    m = b.verify(TrustStore.from_dir(DEV_PUB.parent))
    assert "SOFTMAX" not in op_names(b.model_bytes)
    assert m["arithmetic"]["name"] == INT8_LOGITS_REF == b.arithmetic.name
    assert b.arithmetic.op_resolver == "BUILTIN_REF"
    scale, _ = m["output"]["quantization"]
    assert scale != 1 / 256  # not a SOFTMAX's output
    # the table is exp(-d · scale / T), T the calibration's: bit for bit what the box reads
    assert b.calibration.temperature == TEMPERATURE
    assert tuple(m["arithmetic"]["softmax_exp_table"]) == exp_table(scale, TEMPERATURE)
    assert b.arithmetic.softmax_exp_table == exp_table(scale, TEMPERATURE)
    st = b.self_test()
    assert st["arithmetic"] == INT8_LOGITS_REF and st["windows"] >= 3


@pytest.mark.parametrize("runtime", ["litert", "tensorflow"])
def test_the_packed_golden_self_test_passes_on_litert_and_tf_lite(tiny_bundle, runtime):
    proc = run_nemg("bundle", "verify", str(tiny_bundle), "--trusted", str(DEV_PUB.parent),
                    "--self-test", env={"NEMG_TFLITE_RUNTIME": runtime}, check=True)
    st = json.loads(proc.stdout)["self_test"]
    assert st["runtime"] == runtime and st["arithmetic"] == INT8_LOGITS_REF


def test_the_shipped_golden_windows_tell_the_other_arithmetics_apart():
    """The golden logits differ from those of the default (XNNPACK) kernels and from
    gemmlowp's double rounding (tflite-runtime 2.14's reference kernels, whose logits on
    these candidate windows the emulation matched: windows 0, 2 and 65 differ) on at least
    one golden window each, and repacking reproduces the shipped golden vectors."""
    b = Bundle.read(SHIPPED)
    raw, info = golden_vectors(b.model_bytes, b.arithmetic, b.mel_config, b.window_config,
                               tuple(b.labels))
    assert info["tells"]["default_kernels"]["golden"] >= 1
    assert info["tells"]["double_rounding"]["golden"] >= 1
    with np.load(io.BytesIO(raw)) as g:  # (the decision path's golden labels: test_recogniser)
        shipped = b.golden()
        for k in g.files:
            np.testing.assert_array_equal(g[k], shipped[k])


def test_double_rounding_differs_from_single_rounding_on_a_tie():
    # 1 · 0.5 · 2⁻¹ = 0.25: rounded once it is 0; gemmlowp first rounds 0.5 up to 1, then
    # halves 1 with rounding up again: 1
    acc = np.array([1, -1, 6, 1000], np.int64)
    assert _requantize_single(acc, 1 << 30, -1).tolist() == [0, 0, 2, 250]
    assert _requantize_double(acc, 1 << 30, -1).tolist() == [1, 0, 2, 250]
