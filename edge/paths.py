"""Where the box and a workstation keep their state, from one place.

A box (the systemd unit) names its paths through the environment (``NEMG_STORE``,
``NEMG_LOG_DB``). Without them the system store ``/var/lib/nemg`` is used when it exists,
and otherwise a per-user folder, so that every command works for a user on a workstation
too (``$XDG_DATA_HOME/nemg``, by default ``~/.local/share/nemg``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

SYSTEM_STORE = Path("/var/lib/nemg")
"""The box's model store (deploy/nemg.service)."""


def user_data_dir() -> Path:
    """Per-user state: ``$XDG_DATA_HOME/nemg`` (default ``~/.local/share/nemg``)."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "nemg"


def default_store() -> Path:
    """``$NEMG_STORE``, else the system store if it is one, else the per-user store."""
    env = os.environ.get("NEMG_STORE")
    if env:
        return Path(env)
    if (SYSTEM_STORE / "config.json").is_file():
        return SYSTEM_STORE
    return user_data_dir() / "store"


def default_db() -> Path:
    """``$NEMG_LOG_DB``, else the per-user event log."""
    env = os.environ.get("NEMG_LOG_DB")
    return Path(env) if env else user_data_dir() / "events.db"


CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
"""Executables looked for on the PATH, after ``NEMG_CHROMIUM``."""


def find_chromium() -> str | None:
    """Chromium (the report's PDF, the browser tests): ``$NEMG_CHROMIUM``, else Chromium
    or Chrome on the PATH; None when there is none."""
    env = os.environ.get("NEMG_CHROMIUM")
    if env:
        return env if Path(env).is_file() else None
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None
