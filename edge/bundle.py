"""Signed model bundles (``*.nemg``): read, verify, self-test. Needs no TensorFlow.

A bundle is one zip file (stored, not compressed) with:

- ``manifest.json`` — name, semantic version, created, labels, the front end and the
  decisions (:mod:`edge.spec`), input and output quantisation, compatible boards,
  calibration, the int8 arithmetic it was validated with (:mod:`edge.arithmetic`; none:
  legacy), metrics, and the sha256 of every other member;
- ``manifest.sig`` — Ed25519 signature over the exact bytes of manifest.json;
- ``model.tflite`` — the int8 model;
- ``golden.npz`` — samples -> expected int8 features -> expected int8 outputs (int8
  logits for an int8-logits bundle) under the bundle's arithmetic;
- optionally ``checkpoint.h5`` — float weights for fine-tuning on a workstation.

Verification order: signature against trusted keys first (nothing unsigned is parsed
further), then every member's sha256, then nothing unlisted.

A hostile file is bounded before anything is read from it: a regular file of at most
:data:`MAX_BUNDLE_BYTES`, at most :data:`MAX_MEMBERS` members, every member *stored*
(a bundle is never compressed, so no member can inflate) with its declared size equal to
its stored size, and all of them together no larger than the file: memory is bounded by
the input. The golden self-test then
runs the real front end and the real interpreter, on the kernels the bundle's arithmetic
names, and must match bit for bit.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.arithmetic import Arithmetic
from edge.calibration import Calibration
from edge.errors import ConfigError, IntegrityError
from edge.features import MelFrontEnd
from edge.spec import DecisionConfig, FrontEndSpec, MelConfig, WindowConfig

if TYPE_CHECKING:
    from edge.classifier import Classifier

BUNDLE_FORMAT = 1
DEFAULT_BOARDS = ("nemg-fe1", "ads1299-fe")
"""Boards a bundle is packed for unless told otherwise: the shipped front ends (the 16 kHz
ADS1299 board through the resampler)."""
MAX_BUNDLE_BYTES = 64 << 20
"""Largest bundle a box reads (the shipped one is 0.4 MB)."""
MAX_MEMBERS = 16
REQUIRED = ("manifest.json", "manifest.sig", "model.tflite", "golden.npz")
OPTIONAL = ("checkpoint.h5",)
_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:[-+].*)?$")


def parse_version(v: str) -> tuple[int, int, int]:
    m = _SEMVER.match(v)
    if not m:
        raise ConfigError(f"version {v!r} is not semantic (MAJOR.MINOR.PATCH)")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---- keys ------------------------------------------------------------------------------------
def key_id(public_raw: bytes) -> str:
    """Short fingerprint of an Ed25519 public key (its 32 raw bytes)."""
    return sha256(public_raw)[:16]


def load_public_key(path: Path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"{path}: not an Ed25519 key")
    return key


def public_raw(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass
class TrustStore:
    """Public keys a box accepts bundles from: ``*.pub`` PEM files in a folder."""

    keys: dict[str, Any] = field(default_factory=dict)
    """key id -> Ed25519PublicKey"""
    names: dict[str, str] = field(default_factory=dict)
    """key id -> file stem"""

    @classmethod
    def from_dir(cls, directory: Path) -> TrustStore:
        store = cls()
        if not directory.is_dir():
            raise ConfigError(f"trusted-key folder {directory} does not exist")
        for p in sorted(directory.glob("*.pub")):
            store.add(load_public_key(p), p.stem)
        return store

    def add(self, key, name: str) -> str:
        kid = key_id(public_raw(key))
        self.keys[kid] = key
        self.names[kid] = name
        return kid


# ---- bundles ---------------------------------------------------------------------------------
def _check_members(infos: list[zipfile.ZipInfo], total: int, source: str) -> None:
    """Bounds on a zip's directory, before one byte of a member is read."""
    if len(infos) > MAX_MEMBERS:
        raise IntegrityError(f"{source}: {len(infos)} members (a bundle has at most "
                             f"{MAX_MEMBERS})")
    names = [i.filename for i in infos]
    if len(names) != len(set(names)):
        raise IntegrityError(f"{source}: duplicate member names")
    declared = 0
    for i in infos:
        if i.compress_type != zipfile.ZIP_STORED:
            raise IntegrityError(f"{source}: member {i.filename} is compressed (a bundle's "
                                 "members are stored; refused before inflating anything)")
        if i.file_size != i.compress_size:
            raise IntegrityError(f"{source}: member {i.filename} declares {i.file_size} "
                                 f"bytes but stores {i.compress_size}")
        declared += i.file_size
    if declared > total:
        raise IntegrityError(f"{source}: members declare {declared} bytes, more than the "
                             f"{total}-byte file holds")



@dataclass
class Bundle:
    """A bundle's contents (nothing trusted until :meth:`verify` passed)."""

    source: str
    members: dict[str, bytes]
    verified: bool = False
    decision_checked: dict | None = None
    """The decision path's golden self-test, once passed (:func:`edge.pipeline.
    check_decision_golden`: the pipeline's layer runs it)."""

    @classmethod
    def read(cls, path: str | Path, *, follow_links: bool = True) -> Bundle:
        from edge.fileio import read_regular_file

        p = Path(path)
        data = read_regular_file(p, MAX_BUNDLE_BYTES, "bundle", IntegrityError,
                                 follow_links=follow_links)
        return cls.from_bytes(data, str(p))

    @classmethod
    def from_bytes(cls, data: bytes, source: str = "<bundle>") -> Bundle:
        if len(data) > MAX_BUNDLE_BYTES:
            raise IntegrityError(f"{source}: {len(data)} bytes is larger than a bundle may be "
                                 f"({MAX_BUNDLE_BYTES} bytes)")
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as z:
                infos = z.infolist()
                _check_members(infos, len(data), source)
                members = {i.filename: z.read(i) for i in infos}
        except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile) as exc:
            raise IntegrityError(f"{source}: not a readable bundle (truncated or not a "
                                 f".nemg file: {exc})") from None
        except (OSError, ValueError) as exc:  # e.g. CRC mismatch inside the zip
            raise IntegrityError(f"{source}: corrupted bundle ({exc})") from None
        for name in REQUIRED:
            if name not in members:
                raise IntegrityError(f"{source}: missing member {name}")
        return cls(source, members)

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """The parsed manifest.json. Unverified until :meth:`verify` has passed."""
        try:
            m = json.loads(self.members["manifest.json"])
        except (ValueError, UnicodeDecodeError) as exc:
            raise IntegrityError(f"{self.source}: manifest.json is not JSON ({exc})") from None
        if not isinstance(m, dict) or m.get("format") != BUNDLE_FORMAT:
            raise IntegrityError(f"{self.source}: unsupported bundle format "
                                 f"{m.get('format') if isinstance(m, dict) else '?'}")
        return m

    def verify(self, trusted: TrustStore) -> dict[str, Any]:
        """Signature, then hashes; returns the manifest. Raises IntegrityError."""
        from cryptography.exceptions import InvalidSignature

        raw_manifest = self.members["manifest.json"]
        sig = self.members["manifest.sig"]
        kid = None
        with contextlib.suppress(ValueError, AttributeError):
            kid = json.loads(raw_manifest).get("key_id")
        key = trusted.keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise IntegrityError(f"{self.source}: signed by unknown key {kid!r} "
                                 f"(trusted: {', '.join(trusted.names.values()) or 'none'})")
        try:
            key.verify(sig, raw_manifest)
        except InvalidSignature:
            raise IntegrityError(f"{self.source}: bad signature on manifest.json "
                                 "(tampered or signed with another key)") from None
        m = self.manifest
        listed = m.get("members", {})
        for name, digest in listed.items():
            if name not in self.members:
                raise IntegrityError(f"{self.source}: missing member {name}")
            if sha256(self.members[name]) != digest:
                raise IntegrityError(f"{self.source}: {name} does not match its sha256 "
                                     "(tampered or corrupted)")
        unlisted = set(self.members) - set(listed) - {"manifest.json", "manifest.sig"}
        if unlisted:
            raise IntegrityError(f"{self.source}: unsigned member(s) {', '.join(sorted(unlisted))}")
        for name in REQUIRED[2:]:
            if name not in listed:
                raise IntegrityError(f"{self.source}: {name} is not covered by the signature")
        try:  # a signed manifest can still be malformed: refused here, not when running
            _ = self.spec, self.decision, self.calibration, self.arithmetic
        except (ConfigError, IntegrityError, KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"{self.source}: {exc}") from None
        self.verified = True
        return m

    # ---- typed views (after verify) ---------------------------------------------------------
    @property
    def name(self) -> str:
        return str(self.manifest["name"])

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def labels(self) -> list[str]:
        return list(self.manifest["labels"])

    @property
    def spec(self) -> FrontEndSpec:
        """The front end the model was trained on (:mod:`edge.spec`)."""
        return FrontEndSpec.from_manifest(self.manifest)

    @property
    def decision(self) -> DecisionConfig:
        """Threshold, smoothing, events, concealment and the rest check (:mod:`edge.spec`):
        the manifest's ``decision``, or an older bundle's top-level keys and defaults."""
        return DecisionConfig.from_manifest(self.manifest)

    @property
    def mel_config(self) -> MelConfig:
        return self.spec.mel

    @property
    def window_config(self) -> WindowConfig:
        return self.spec.window

    @property
    def calibration(self) -> Calibration:
        """Temperature and familiarity (:mod:`edge.calibration`); the identity for a
        bundle made before them."""
        return Calibration.from_dict(self.manifest.get("calibration"),
                                     self.mel_config.num_mels)

    @property
    def arithmetic(self) -> Arithmetic:
        """The int8 arithmetic the bundle was validated with (:mod:`edge.arithmetic`): the
        kernels to run its model on and how its outputs become probabilities; legacy for
        a bundle without the section. An unknown one is refused by :meth:`verify`."""
        return Arithmetic.from_manifest(self.manifest)

    def classifier(self, num_threads: int = 1) -> Classifier:
        """The bundle's model loaded under its arithmetic: what the pipeline and the
        self-test run."""
        from edge.classifier import Classifier

        return Classifier(self.model_bytes, self.labels, num_threads, self.arithmetic)

    @property
    def model_bytes(self) -> bytes:
        return self.members["model.tflite"]

    @cached_property
    def sha256(self) -> str:
        """Identity of the model: the sha256 of model.tflite."""
        return sha256(self.model_bytes)

    def board_mismatch(self, board_name: str, sample_rate_hz: int) -> str | None:
        """Why this model cannot run on a board, or None. A board at another rate than the
        model's is brought to it by the box's resampler (:mod:`edge.resample`), so what
        decides is the bundle's list of compatible boards (and a rate that can hold EMG)."""
        from edge.readers.recording import MIN_SAMPLE_RATE_HZ

        if sample_rate_hz < MIN_SAMPLE_RATE_HZ:
            return f"board {board_name} delivers {sample_rate_hz} Hz, too low for needle EMG"
        boards = self.manifest.get("compatible_boards") or []
        if boards and board_name not in boards:
            return f"not compatible with board {board_name} (compatible: {', '.join(boards)})"
        return None

    def golden(self) -> dict[str, np.ndarray]:
        try:
            with np.load(io.BytesIO(self.members["golden.npz"]), allow_pickle=False) as g:
                return {k: g[k] for k in g.files}
        except (ValueError, OSError, zipfile.BadZipFile) as exc:
            raise IntegrityError(f"{self.source}: golden.npz unreadable ({exc})") from None

    def self_test(self, num_threads: int = 1) -> dict[str, Any]:
        """Golden vectors through the real front end and interpreter, under the bundle's
        arithmetic: bit-exact or raise (naming the runtime and the arithmetic)."""
        g = self.golden()
        fe = MelFrontEnd(self.mel_config)
        feats = fe.process(g["samples"])
        if feats.shape != g["features"].shape or not np.array_equal(feats, g["features"]):
            diff = int((feats != g["features"]).sum()) if feats.shape == g["features"].shape \
                else "shape"
            raise IntegrityError(f"{self.source}: self-test failed: features differ from the "
                                 f"golden vectors ({diff} cells)")
        arith = self.arithmetic
        try:
            clf = self.classifier(num_threads)
        except (ConfigError, IntegrityError) as exc:
            raise type(exc)(f"{self.source}: {exc}") from None
        mismatch = clf.table_mismatch(self.calibration)
        if mismatch:
            raise IntegrityError(f"{self.source}: self-test failed: {mismatch}")
        w = self.window_config
        kind = "logits" if arith.logits else "scores"
        for i, start in enumerate(g["window_starts"]):
            scores = clf.invoke_int8(feats[start : start + w.frames])
            if not np.array_equal(scores, g["scores"][i]):
                raise IntegrityError(
                    f"{self.source}: self-test failed: window {i} {kind} {scores.tolist()} "
                    f"!= golden {g['scores'][i].tolist()} under {clf.runtime.title} "
                    f"({arith.op_resolver or 'default'} kernels); this bundle was validated "
                    f"with {arith.name}: {arith.kernels}")
        return {"windows": len(g["window_starts"]), "frames": int(feats.shape[0]),
                "runtime": clf.runtime.name, "runtime_version": clf.runtime.version,
                "arithmetic": arith.name, "op_resolver": arith.op_resolver}


def load_spec(path: str | Path) -> FrontEndSpec:
    """The front end of a bundle (.nemg, unverified: what it was trained on), a checkpoint
    (.h5 or its folder) or a JSON spec (:meth:`FrontEndSpec.load`)."""
    p = Path(path)
    return Bundle.read(p).spec if p.suffix == ".nemg" else FrontEndSpec.load(p)
