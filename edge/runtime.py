"""Which model the box runs, verified and self-tested before a single sample is classified."""

from __future__ import annotations

import os
from pathlib import Path

from edge.bundle import Bundle, TrustStore
from edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SHIPPED_MODEL = ROOT / "models" / "nemg-default.nemg"


def default_trusted_dir() -> Path:
    env = os.environ.get("NEMG_TRUSTED_KEYS")
    return Path(env) if env else ROOT / "keys" / "trusted"


def default_model_path() -> Path:
    """The model store's active model if a store exists, else the shipped default."""
    env = os.environ.get("NEMG_MODEL")
    if env:
        return Path(env)
    store_root = os.environ.get("NEMG_STORE")
    if store_root:
        from edge.store import ModelStore

        active = ModelStore(Path(store_root)).active_path()
        if active is not None:
            return active
    return SHIPPED_MODEL


def load_verified(path: Path | None = None, trusted: Path | None = None,
                  self_test: bool = True, num_threads: int = 1) -> Bundle:
    """Read, verify (signature, hashes) and self-test (golden vectors) a bundle."""
    p = path or default_model_path()
    if not p.is_file():
        raise ConfigError(f"model bundle {p} not found (give --model, or run 'make model')")
    b = Bundle.read(p)
    b.verify(TrustStore.from_dir(trusted or default_trusted_dir()))
    if self_test:
        b.self_test(num_threads)
    return b
