"""``nemg bench model``: the shipped int8 model against the ImageNet networks the
published work used (VGG16, ResNet50; ``weights=None``, standard 224×224×3 input,
converted to float32 TFLite), same interpreter, one thread, same run."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from benches.harness import BenchOptions, measure_interleaved
from edge.errors import MissingExtraError


def _tflite_float(builder) -> bytes:
    import tensorflow as tf

    model = builder(weights=None, input_shape=(224, 224, 3), classes=12)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return conv.convert()


def _invoker(model: bytes, op_resolver: str | None = None):
    """One invoke of ``model`` on zeros, under ``op_resolver`` (None: the runtime's
    default kernels)."""
    from edge.interpreter import create_interpreter, require_runtime

    interp = create_interpreter(require_runtime(), model_content=model, num_threads=1,
                                op_resolver=op_resolver)
    inp = interp.get_input_details()[0]
    x = np.zeros(inp["shape"], dtype=inp["dtype"])
    interp.set_tensor(inp["index"], x)

    def invoke() -> None:
        interp.invoke()

    return invoke


def run(opts: BenchOptions) -> dict[str, Any]:
    try:  # this module is inside `convert`, whose __init__ set TF_USE_LEGACY_KERAS
        import tf_keras as keras
    except ImportError:
        raise MissingExtraError("convert", "the model benchmark", "tensorflow") from None
    from edge.runtime import SHIPPED_MODEL, load_verified

    bundle = load_verified(SHIPPED_MODEL)
    ours = bundle.model_bytes
    big: dict[str, bytes] = {}
    if not opts.quick:
        big["vgg16"] = _tflite_float(keras.applications.VGG16)
        big["resnet50"] = _tflite_float(keras.applications.ResNet50)
    # ours under the arithmetic it was validated with (the box runs nothing else)
    cands = {"ours": _invoker(ours, bundle.arithmetic.op_resolver),
             **{k: _invoker(v) for k, v in big.items()}}
    t = measure_interleaved(cands, repeats=max(3, opts.repeats), warmup=opts.warmup)
    m = bundle.manifest["metrics"]
    out: dict[str, Any] = {
        "model": f"{bundle.name} {bundle.version}",
        "size_bytes": len(ours),
        "invoke_ms_median": t["ours"].wall_s * 1000,
        "macro_f1_int8": m.get("macro_f1_int8"),
        "macro_f1_float": m.get("macro_f1_float"),
        "agreement": m.get("agreement"),
    }
    for name, blob in big.items():
        out[f"{name}_size_bytes"] = len(blob)
        out[f"{name}_invoke_ms_median"] = t[name].wall_s * 1000
    if "vgg16" in big:
        out["speedup_vs_vgg16"] = t["vgg16"].wall_s / t["ours"].wall_s
        out["size_ratio_vs_vgg16"] = len(big["vgg16"]) / len(ours)
    if "resnet50" in big:
        out["speedup_vs_resnet50"] = t["resnet50"].wall_s / t["ours"].wall_s
        out["size_ratio_vs_resnet50"] = len(big["resnet50"]) / len(ours)
    return out
