"""Packing signed bundles and generating signing keys (workstation side).

See ``edge.bundle`` for the format and verification. Golden vectors are computed here with
the box's own front end and interpreter (``edge``), so a box that reproduces them bit for
bit runs what was evaluated.
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


def golden_vectors(model: bytes, mel: MelConfig, win: WindowConfig, seed: int = 7,
                   windows: int = 3) -> bytes:
    """A short mixed signal, its int8 features and the int8 scores of a few windows."""
    from convert.synth import synthesize

    seconds = win.seconds(mel) + (windows - 1) * win.hop_seconds(mel) + 0.01
    rng = np.random.default_rng(seed)
    half = seconds / 2
    uv = np.concatenate([
        synthesize("fibrillation", fs=mel.sample_rate_hz, duration_s=half, rng=rng).signal_uv,
        synthesize("motor_unit", fs=mel.sample_rate_hz, duration_s=seconds - half,
                   rng=rng).signal_uv])
    samples = float_to_int16(uv, mel.uv_per_lsb)
    feats = MelFrontEnd(mel).process(samples)
    starts = np.arange(win.count(feats.shape[0]))[:windows] * win.hop_frames
    clf = Classifier(model, list(LABELS))
    scores = np.stack([clf.invoke_int8(feats[s : s + win.frames]) for s in starts])
    buf = io.BytesIO()
    np.savez_compressed(buf, samples=samples, features=feats, window_starts=starts,
                        scores=scores)
    return buf.getvalue()


def pack(out: Path, *, model: bytes, key_path: Path, name: str, version: str,
         spec: FrontEndSpec, labels: tuple[str, ...] = LABELS,
         metrics: dict[str, Any] | None = None,
         checkpoint: bytes | None = None, boards: tuple[str, ...] = DEFAULT_BOARDS,
         decision: DecisionConfig = DEFAULT_DECISION,
         development_key: bool = False, description: str = "",
         calibration: Calibration | None = None) -> dict[str, Any]:
    """Write a signed bundle; returns its manifest. ``spec``: the front end the model was
    trained on (its checkpoint's, :func:`edge.bundle.load_spec`); ``decision``: how the box
    turns its outputs into labels and events (the manifest's ``decision`` section)."""
    parse_version(version)
    mel, win = spec.mel, spec.window
    key = load_private_key(key_path)
    clf = Classifier(model, list(labels))  # refuses non-int8 or mismatched models
    if (clf.frames, clf.num_mels) != (win.frames, mel.num_mels):
        raise ConfigError(f"model input {(clf.frames, clf.num_mels)} does not match the "
                          f"window ({win.frames} frames × {mel.num_mels} mels)")
    members = {"model.tflite": model, "golden.npz": golden_vectors(model, mel, win)}
    if checkpoint is not None:
        members["checkpoint.h5"] = checkpoint
    manifest = {
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
        "compatible_boards": list(boards),
        **decision.to_manifest(),
        "calibration": (calibration or Calibration()).to_dict(),
        "metrics": metrics or {},
        "members": {n: sha256(b) for n, b in members.items()},
        "key_id": key_id(public_raw(key.public_key())),
        "development_key": development_key,
    }
    raw = json.dumps(manifest, indent=1, sort_keys=True).encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("manifest.json", raw)
        z.writestr("manifest.sig", key.sign(raw))
        for n, b in members.items():
            z.writestr(n, b)
    os.replace(tmp, out)
    return manifest


def repack(bundle: Bundle, out: Path, *, key_path: Path, version: str | None = None,
           **changes: Any) -> dict[str, Any]:
    """``bundle``'s model re-signed with everything it carries (front end, decisions,
    calibration, metrics, checkpoint, boards, description; ``changes``: keywords of
    :func:`pack` that replace one); the golden vectors are recomputed, the same bits.
    Returns the new manifest."""
    m = bundle.manifest
    carried: dict[str, Any] = {
        "model": bundle.model_bytes, "name": m["name"], "version": version or m["version"],
        "spec": bundle.spec, "labels": tuple(bundle.labels), "metrics": m.get("metrics", {}),
        "checkpoint": bundle.members.get("checkpoint.h5"),
        "boards": tuple(m.get("compatible_boards", ())), "decision": bundle.decision,
        "development_key": bool(m.get("development_key")),
        "description": m.get("description", ""), "calibration": bundle.calibration}
    return pack(out, key_path=key_path, **{**carried, **changes})
