"""Full-int8 conversion: post-training (PTQ) with a representative dataset, and
quantisation-aware training (QAT) with tfmot. Both give int8 input and output tensors.
:func:`quantize_checkpoint` is ``nemg quantize``: a trained checkpoint -> int8 TFLite."""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

import convert  # noqa: F401
from convert.architecture import load_checkpoint
from convert.corpus import read_corpus
from convert.dataset import WindowSet, build_windows, split_by_recording
from edge.classifier import FEATURE_INPUT_RANGE, features_as_float
from edge.errors import ConfigError, InputError
from edge.spec import FrontEndSpec


def representative(windows: WindowSet, n: int = 400, seed: int = 0):
    """Calibration windows. The first two span the whole int8 feature range, so the
    converter's input quantisation is exactly the features' own (scale 1/64, zp 0)."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(windows))[:n]
    frames, mels = windows.x.shape[1:]

    def gen() -> Iterator[list[np.ndarray]]:
        for edge_value in FEATURE_INPUT_RANGE:
            yield [np.full((1, frames, mels, 1), edge_value, np.float32)]
        for i in idx:
            yield [features_as_float(windows.x[i])[None, :, :, None]]

    return gen


def to_int8_tflite(model, rep) -> bytes:
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return conv.convert()


def qat_model(float_model):
    """tfmot quantisation-aware copy of a trained float model."""
    import tensorflow_model_optimization as tfmot

    try:
        return tfmot.quantization.keras.quantize_model(float_model)
    except (ValueError, RuntimeError) as exc:
        raise ConfigError(f"QAT is not available for this architecture: "
                          f"{str(exc).splitlines()[0]}") from None


def qat_finetune(float_model, train: WindowSet, val: WindowSet, *, epochs: int = 3,
                 learning_rate: float = 2e-4, batch_size: int = 64, seed: int = 0):
    import tensorflow as tf
    import tf_keras as keras

    from convert.train import class_weights

    tf.random.set_seed(seed)
    q = qat_model(float_model)
    q.compile(optimizer=keras.optimizers.Adam(learning_rate),
              loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    for e in range(epochs):
        h = q.fit(train.float_input(), train.y, batch_size=batch_size, epochs=1, verbose=0,
                  shuffle=True, class_weight=class_weights(train.y),
                  validation_data=(val.float_input(), val.y))
        print(f"  QAT epoch {e + 1}/{epochs}: acc {h.history['accuracy'][0]:.3f} | "
              f"val acc {h.history['val_accuracy'][0]:.3f}", file=sys.stderr, flush=True)
    pin_input_range(q)
    return q


def pin_input_range(q) -> None:
    """Set the QAT input quantiser to the features' exact range [-128/64, 127/64].

    Every input value is a multiple of 1/64 inside that range, so this changes no value
    the network sees; it makes the converter emit scale 1/64, zero point 0, and the box
    feeds its int8 features unchanged."""
    layer = q.get_layer("quantize_layer")
    for w in layer.weights:
        if w.name.endswith("quantize_layer_min:0"):
            w.assign(FEATURE_INPUT_RANGE[0])
        elif w.name.endswith("quantize_layer_max:0"):
            w.assign(FEATURE_INPUT_RANGE[1])


def checkpoint_file(path: Path) -> Path:
    """The ``model.h5`` a checkpoint argument names (its folder, or the file itself)."""
    p = path / "model.h5" if path.is_dir() else path
    if not p.is_file():
        raise InputError(f"{path}: no checkpoint (model.h5)")
    return p


def quantize_checkpoint(checkpoint: Path, data: Path, out: Path, method: str, *,
                        qat_epochs: int = 3, seed: int = 0) -> dict[str, Any]:
    """Write ``checkpoint`` as a full-int8 .tflite to ``out``, with its own front end:
    ``method`` ``ptq`` calibrates on the training split of corpus ``data``, ``qat``
    fine-tunes on it first (validated on the rest). Returns what was written."""
    ckpt = checkpoint_file(checkpoint)
    spec = FrontEndSpec.load(ckpt)
    mel, win = spec.mel, spec.window
    model = load_checkpoint(ckpt)
    items = read_corpus(data)
    train_items, val_items = split_by_recording(items, 0.2, seed)
    calib = build_windows(train_items, mel, win)
    t0 = time.monotonic()
    if method == "qat":
        val = build_windows(val_items, mel, win)
        model = qat_finetune(model, calib, val, epochs=qat_epochs, seed=seed)
    tfl = to_int8_tflite(model, representative(calib, seed=seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(tfl)
    return {"model": str(out), "method": method, "bytes": len(tfl),
            "seconds": time.monotonic() - t0}
