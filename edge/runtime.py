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


def on_trial(path: Path | None) -> bool:
    """Whether the model at ``path`` (None: the default) is the store's active model still
    on trial (installed, not yet confirmed)."""
    store_root = os.environ.get("NEMG_STORE")
    if not store_root:
        return False
    from edge.errors import NemgError
    from edge.store import ModelStore

    try:
        store = ModelStore(Path(store_root))
        active = store.active_path()
        p = path or default_model_path()
        return active is not None and p.resolve() == active.resolve() and store.status().trial
    except (NemgError, OSError):
        return False


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
