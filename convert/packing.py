"""Packing signed bundles and generating signing keys (workstation side).

See ``edge.bundle`` for the format and verification. A bundle carries the int8 graph cut
before its SOFTMAX (int8 logits out, :func:`cut_before_softmax`) and names the arithmetic it
was validated with (:mod:`edge.arithmetic`): TFLite's reference kernels and a softmax table
with the calibration temperature inside. Golden vectors are computed here with the box's
own front end and classifier under that arithmetic, at windows chosen to tell it apart
from the arithmetics a box could compute instead (:func:`golden_vectors`), so a box that
reproduces them bit for bit runs what was evaluated.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge.arithmetic import INT8_LOGITS_REF, Arithmetic, exp_table
from edge.bundle import (
    BUNDLE_FORMAT,
    DEFAULT_BOARDS,
    Bundle,
    key_id,
    parse_version,
    public_raw,
    sha256,
)
from edge.calibration import Calibration
from edge.classifier import Classifier
from edge.errors import ConfigError
from edge.features import MelFrontEnd, float_to_int16
from edge.labels import LABELS
from edge.spec import DEFAULT_DECISION, DecisionConfig, FrontEndSpec, MelConfig, WindowConfig


def generate_key(out_dir: Path, name: str) -> tuple[Path, Path]:
    """An Ed25519 key pair: ``NAME.key`` (private, PKCS#8 PEM, mode 600) and ``NAME.pub``."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    out_dir.mkdir(parents=True, exist_ok=True)
    priv, pub = out_dir / f"{name}.key", out_dir / f"{name}.pub"
    if priv.exists():
        raise ConfigError(f"{priv} exists; refusing to overwrite a signing key")
    key = Ed25519PrivateKey.generate()
    fd = os.open(priv, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    pub.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    return priv, pub


def load_private_key(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"{path}: not an Ed25519 key")
    return key


# ---- the int8 logits graph (TensorFlow's flatbuffer schema: workstation only) ----------
def _read_model(model: bytes):
    from tensorflow.lite.tools import flatbuffer_utils

    return flatbuffer_utils.read_model_from_bytearray(bytearray(model))


def op_names(model: bytes) -> list[str]:
    """The builtin name of each operator of the model's first subgraph, in order."""
    from tensorflow.lite.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    m = _read_model(model)
    codes = m.operatorCodes
    # the deprecated int8 field holds codes < 127, the new one the rest
    return [names[max(codes[op.opcodeIndex].builtinCode,
                      codes[op.opcodeIndex].deprecatedBuiltinCode)]
            for op in m.subgraphs[0].operators]


def cut_before_softmax(model: bytes) -> bytes:
    """The graph without its final SOFTMAX: int8 logits out (the softmax's input). The
    outputs and the signature point at the logits; tensors, buffers and operator codes
    nothing uses any more are dropped and everything re-indexed (a minimal, valid model).
    A model whose last operator is not a SOFTMAX producing the graph's output is refused."""
    import copy

    from tensorflow.lite.tools import flatbuffer_utils

    m = copy.deepcopy(_read_model(model))
    names = op_names(model)
    if len(m.subgraphs) != 1 or not names:
        raise ConfigError("cut before softmax: a model of one non-empty subgraph expected")
    sg = m.subgraphs[0]
    last = sg.operators[-1]
    if names[-1] != "SOFTMAX" or list(sg.outputs) != list(last.outputs):
        raise ConfigError(f"cut before softmax: the graph ends in {names[-1]}, not in a "
                          "SOFTMAX giving its output")
    logits = int(last.inputs[0])
    ops = sg.operators[:-1]
    used = {logits, *(int(t) for t in sg.inputs)}
    for op in ops:
        used.update(int(t) for t in (*op.inputs, *op.outputs) if t >= 0)
    tmap = {old: new for new, old in enumerate(sorted(used))}
    # buffer 0 is the empty sentinel; metadata keeps its buffers
    bufs = {0} | {sg.tensors[t].buffer for t in used} | {md.buffer for md in m.metadata or []}
    bmap = {old: new for new, old in enumerate(sorted(bufs))}
    codes = sorted({op.opcodeIndex for op in ops})
    cmap = {old: new for new, old in enumerate(codes)}
    tensors = [sg.tensors[t] for t in sorted(used)]
    for t in tensors:
        t.buffer = bmap[t.buffer]
    for op in ops:
        op.inputs = [tmap[int(t)] if t >= 0 else -1 for t in op.inputs]
        op.outputs = [tmap[int(t)] for t in op.outputs]
        op.opcodeIndex = cmap[op.opcodeIndex]
    sg.tensors, sg.operators = tensors, ops
    sg.inputs = [tmap[int(t)] for t in sg.inputs]
    sg.outputs = [tmap[logits]]
    m.buffers = [m.buffers[b] for b in sorted(bufs)]
    for md in m.metadata or []:
        md.buffer = bmap[md.buffer]
    m.operatorCodes = [m.operatorCodes[c] for c in codes]
    for sig in m.signatureDefs or []:
        for tm in sig.inputs:
            tm.tensorIndex = tmap[int(tm.tensorIndex)]
        sig.outputs = sig.outputs[:1]
        sig.outputs[0].tensorIndex = sg.outputs[0]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


def logits_model(model: bytes) -> bytes:
    """The int8 logits graph a bundle carries: a classifier ending in SOFTMAX (what the
    converter writes) cut before it; one ending elsewhere is taken as logits already (a
    bundle's own model, repacked)."""
    return cut_before_softmax(model) if op_names(model)[-1:] == ["SOFTMAX"] else model


def logits_scale(logits: bytes) -> float:
    """The quantization scale of the logits graph's output (one int8 step, in logits)."""
    m = _read_model(logits)
    sg = m.subgraphs[0]
    q = sg.tensors[sg.outputs[0]].quantization
    if q is None or q.scale is None or len(q.scale) != 1:
        raise ConfigError("the model's output has no single quantization scale")
    return float(q.scale[0])


def packing_arithmetic(logits: bytes, temperature: float = 1.0) -> Arithmetic:
    """What :func:`pack` writes for logits graph ``logits`` and a calibration temperature:
    TFLite's reference kernels and the softmax table with the temperature inside."""
    return Arithmetic(INT8_LOGITS_REF, exp_table(logits_scale(logits), temperature))


# ---- golden vectors --------------------------------------------------------------------
GOLDEN_CHECKS = ("default_kernels", "double_rounding")
"""What the extra golden windows tell apart from the bundle's arithmetic: the runtime's
default kernels (XNNPACK requantizes in float32: every CONV_2D, MUL and MEAN may differ by
one step), and gemmlowp's double rounding (tflite-runtime 2.14's reference kernels), seen
at the final FULLY_CONNECTED."""


def _logits_of(interpreter, windows: np.ndarray, tensors: tuple[int, ...] = ()) -> list:
    """Run ``windows`` [n, frames, mels] (already the model's input int8) through an
    interpreter; per tensor index in ``tensors`` (default: the output), the stacked values."""
    inp = interpreter.get_input_details()[0]["index"]
    tensors = tensors or (interpreter.get_output_details()[0]["index"],)
    got: list[list[np.ndarray]] = [[] for _ in tensors]
    for w in windows:
        interpreter.set_tensor(inp, w[None, :, :, None])
        interpreter.invoke()
        for g, t in zip(got, tensors, strict=True):
            g.append(interpreter.get_tensor(t).reshape(-1).copy())
    return [np.stack(g) for g in got]


def _requantize_double(acc: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """gemmlowp's MultiplyByQuantizedMultiplier: a rounding doubling high multiply, then
    a rounding divide by a power of two (two roundings)."""
    a = acc * (1 << max(shift, 0))
    ab = a * multiplier
    hi = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    hi = np.where(hi >= 0, hi >> 31, -((-hi) >> 31))  # C++ division: toward zero
    right = max(-shift, 0)
    mask = (1 << right) - 1
    return (hi >> right) + ((hi & mask) > (mask >> 1) + (hi < 0))


def _requantize_single(acc: np.ndarray, multiplier: int, shift: int) -> np.ndarray:
    """TFLite's TFLITE_SINGLE_ROUNDING: one rounding right shift of the 64-bit product."""
    total = 31 - shift
    return (acc * multiplier + (1 << (total - 1))) >> total


def _fully_connected(x: np.ndarray, details: dict[int, dict], op_inputs: list[int],
                     out: int, interpreter, requantize) -> np.ndarray:
    """TFLite's int8 FULLY_CONNECTED (no activation) in exact integer numpy."""
    import math

    xi, wi, bi = op_inputs
    w = interpreter.get_tensor(wi).astype(np.int64)
    bias = interpreter.get_tensor(bi).astype(np.int64) if bi >= 0 else 0
    s_in, zp_in = details[xi]["quantization"]
    s_out, zp_out = details[out]["quantization"]
    s_w = np.broadcast_to(details[wi]["quantization_parameters"]["scales"], (w.shape[0],))
    acc = (x.astype(np.int64) - zp_in) @ w.T + bias
    cols = []
    for j in range(w.shape[0]):
        q, shift = math.frexp(s_in * float(s_w[j]) / s_out)  # TFLite's QuantizeMultiplier
        m = round(q * (1 << 31))
        if m == 1 << 31:
            m, shift = m // 2, shift + 1
        cols.append(requantize(acc[:, j], m, shift))
    return np.clip(np.stack(cols, axis=1) + zp_out, -128, 127)


def _double_rounding_differs(logits: bytes, windows: np.ndarray, ref: np.ndarray
                             ) -> np.ndarray | None:
    """Per window: would gemmlowp's double rounding give other logits than ``ref`` (the
    reference kernels' single rounding) at the final FULLY_CONNECTED? None when the graph
    does not end in one without activation. The single-rounding emulation must reproduce
    ``ref`` exactly, or nothing is claimed."""
    from edge.interpreter import create_interpreter, require_runtime

    m = _read_model(logits)
    op = m.subgraphs[0].operators[-1]
    if (op_names(logits)[-1] != "FULLY_CONNECTED" or len(op.inputs) != 3
            or getattr(op.builtinOptions, "fusedActivationFunction", 1) != 0):
        return None
    it = create_interpreter(require_runtime(), op_resolver="BUILTIN_REF",
                            model_content=logits, experimental_preserve_all_tensors=True)
    ins = [int(t) for t in op.inputs]
    out = int(op.outputs[0])
    x, y = _logits_of(it, windows, (ins[0], out))
    details = {d["index"]: d for d in it.get_tensor_details()}
    single = _fully_connected(x, details, ins, out, it, _requantize_single)
    if not (np.array_equal(single, y) and np.array_equal(y, ref)):
        return None
    double = _fully_connected(x, details, ins, out, it, _requantize_double)
    return (double != single).any(axis=1)


def golden_vectors(logits: bytes, arithmetic: Arithmetic, mel: MelConfig, win: WindowConfig,
                   labels: tuple[str, ...] = LABELS, seed: int = 7, windows: int = 3,
                   ) -> tuple[bytes, dict[str, Any]]:
    """A short mixed signal, its int8 features and the int8 logits (under ``arithmetic``,
    through the box's own classifier) of the golden windows; and what they tell apart.

    The golden windows are the signal's first ``windows`` decision windows, plus, for each
    of :data:`GOLDEN_CHECKS` none of those tells apart from ``arithmetic``, the first window
    (at any frame offset of the same signal) that does, if one exists: a box computing
    another arithmetic then fails the self-test on purpose, not by luck."""
    from convert.synth import synthesize
    from edge.interpreter import create_interpreter

    seconds = win.seconds(mel) + (windows - 1) * win.hop_seconds(mel) + 0.01
    rng = np.random.default_rng(seed)
    half = seconds / 2
    uv = np.concatenate([
        synthesize("fibrillation", fs=mel.sample_rate_hz, duration_s=half, rng=rng).signal_uv,
        synthesize("motor_unit", fs=mel.sample_rate_hz, duration_s=seconds - half,
                   rng=rng).signal_uv])
    samples = float_to_int16(uv, mel.uv_per_lsb)
    feats = MelFrontEnd(mel).process(samples)
    clf = Classifier(logits, list(labels), arithmetic=arithmetic)
    # candidates: a window at every frame offset (the decision windows among them)
    cand = np.arange(feats.shape[0] - win.frames + 1)
    x = np.stack([clf.requantize(feats[s : s + win.frames]) for s in cand])
    ref = np.stack([clf.invoke_int8(feats[s : s + win.frames]) for s in cand])
    default = create_interpreter(clf.runtime, model_content=logits, num_threads=1)
    differs = {"default_kernels": (_logits_of(default, x)[0] != ref).any(axis=1),
               "double_rounding": _double_rounding_differs(logits, x, ref)}
    starts = list(np.arange(win.count(feats.shape[0]))[:windows] * win.hop_frames)
    for d in differs.values():
        if d is not None and d.any() and not d[starts].any():
            starts.append(int(np.flatnonzero(d)[0]))
    starts_arr = np.array(starts, dtype=np.int64)
    buf = io.BytesIO()
    np.savez_compressed(buf, samples=samples, features=feats, window_starts=starts_arr,
                        scores=ref[starts_arr])
    told = {k: None if d is None else {"candidates": int(d.sum()),
                                       "golden": int(d[starts_arr].sum())}
            for k, d in differs.items()}
    return buf.getvalue(), {"windows": len(starts), "candidates": len(cand), "tells": told}


DECISION_GOLDEN_SEED = 29
"""Seed of the decision path's golden signal (:func:`decision_golden`)."""


def decision_golden(bundle: Bundle, golden: bytes, mel: MelConfig) -> bytes:
    """``golden`` (golden.npz) with the decision path's golden labels added: a small
    myopathic contraction (voluntary activity the model alone calls spontaneous) then a
    fibrillation, 3 s each, and what the box's pipeline decides on each window of it under
    ``bundle``'s decisions (:func:`edge.pipeline.decide_golden`). ``bundle`` is the one
    being packed (trusted: built here)."""
    from convert.biosim import simulate_contraction
    from convert.synth import synthesize
    from edge.pipeline import decide_golden

    fs = mel.sample_rate_hz
    rng = np.random.default_rng(DECISION_GOLDEN_SEED)
    contraction = simulate_contraction(fs=fs, duration_s=3.0, pool="myopathic",
                                       excitation=2.0, rng=rng).signal_uv * 0.125
    fib = synthesize("fibrillation", fs=fs, duration_s=3.0, rng=rng,
                     mixture_share=0.0).signal_uv
    samples = float_to_int16(np.concatenate([contraction, fib]), mel.uv_per_lsb)
    bundle.verified = True  # packed here this moment, from the bytes just signed
    with np.load(io.BytesIO(golden), allow_pickle=False) as g:
        arrays = {k: g[k] for k in g.files}
    arrays |= decide_golden(bundle, samples)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def pack(out: Path, *, model: bytes, key_path: Path, name: str, version: str,
         spec: FrontEndSpec, labels: tuple[str, ...] = LABELS,
         metrics: dict[str, Any] | None = None,
         checkpoint: bytes | None = None, boards: tuple[str, ...] = DEFAULT_BOARDS,
         decision: DecisionConfig = DEFAULT_DECISION,
         development_key: bool = False, description: str = "",
         calibration: Calibration | None = None) -> dict[str, Any]:
    """Write a signed bundle; returns its manifest. ``model``: the int8 classifier (cut
    before its SOFTMAX here: :func:`logits_model`); the bundle runs it under
    :data:`~edge.arithmetic.INT8_LOGITS_REF` with the softmax table of ``calibration``'s
    temperature (:func:`packing_arithmetic`). ``spec``: the front end the model was trained
    on (its checkpoint's, :func:`edge.bundle.load_spec`); ``decision``: how the box turns
    its outputs into labels and events (the manifest's ``decision`` section)."""
    parse_version(version)
    mel, win = spec.mel, spec.window
    key = load_private_key(key_path)
    cal = calibration or Calibration()
    logits = logits_model(model)
    arithmetic = packing_arithmetic(logits, cal.temperature)
    clf = Classifier(logits, list(labels), arithmetic=arithmetic)  # refuses a bad model
    if (clf.frames, clf.num_mels) != (win.frames, mel.num_mels):
        raise ConfigError(f"model input {(clf.frames, clf.num_mels)} does not match the "
                          f"window ({win.frames} frames × {mel.num_mels} mels)")
    golden, _ = golden_vectors(logits, arithmetic, mel, win, labels)
    members = {"model.tflite": logits, "golden.npz": golden}
    if checkpoint is not None:
        members["checkpoint.h5"] = checkpoint

    def signed(members: dict[str, bytes]) -> tuple[dict[str, Any], bytes]:
        manifest = _manifest(members)
        raw = json.dumps(manifest, indent=1, sort_keys=True).encode()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
            z.writestr("manifest.json", raw)
            z.writestr("manifest.sig", key.sign(raw))
            for n, b in members.items():
                z.writestr(n, b)
        return manifest, buf.getvalue()

    def _manifest(members: dict[str, bytes]) -> dict[str, Any]:
        return {
            "format": BUNDLE_FORMAT,
            "name": name,
            "version": version,
            "description": description,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "labels": list(labels),
            **spec.to_manifest(),
            "input": {"shape": [1, win.frames, mel.num_mels, 1], "dtype": "int8",
                      "quantization": list(clf.input_quantization)},
            "output": {"shape": [1, len(labels)], "dtype": "int8",
                       "quantization": list(clf.output_quantization)},
            **arithmetic.to_manifest(),
            "compatible_boards": list(boards),
            **decision.to_manifest(),
            "calibration": cal.to_dict(),
            "metrics": metrics or {},
            "members": {n: sha256(b) for n, b in members.items()},
            "key_id": key_id(public_raw(key.public_key())),
            "development_key": development_key,
        }

    manifest, data = signed(members)
    if decision.recogniser is not None:  # the decision path's golden labels, decided by
        # the box's own pipeline on this very bundle
        members["golden.npz"] = decision_golden(Bundle.from_bytes(data), golden, mel)
        manifest, data = signed(members)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, out)
    return manifest


def repack(bundle: Bundle, out: Path, *, key_path: Path, version: str | None = None,
           **changes: Any) -> dict[str, Any]:
    """``bundle``'s model re-signed with everything it carries (front end, decisions,
    calibration, metrics, checkpoint, boards, description; ``changes``: keywords of
    :func:`pack` that replace one); the softmax table and the golden vectors are
    recomputed (a bundle packed before the arithmetic section gets its model cut before
    the SOFTMAX). Returns the new manifest."""
    m = bundle.manifest
    carried: dict[str, Any] = {
        "model": bundle.model_bytes, "name": m["name"], "version": version or m["version"],
        "spec": bundle.spec, "labels": tuple(bundle.labels), "metrics": m.get("metrics", {}),
        "checkpoint": bundle.members.get("checkpoint.h5"),
        "boards": tuple(m.get("compatible_boards", ())), "decision": bundle.decision,
        "development_key": bool(m.get("development_key")),
        "description": m.get("description", ""), "calibration": bundle.calibration}
    return pack(out, key_path=key_path, **{**carried, **changes})
