"""The on-box model store: two slots, an atomic active pointer, trial then confirm, rollback.

Layout under the root (default /var/lib/nemg)::

    trusted-keys/*.pub     public keys bundles must be signed with
    slots/a/bundle.nemg    slot A
    slots/b/bundle.nemg    slot B
    state.json             {"active": "a", "previous": "b", "trial": false, ...}
    history.jsonl          every transition, append-only, fsynced
    staging/               partial serial transfers (resumable)
    config.json            {"board": "nemg-fe1", "confirm_policy": "self-test"}

Rules (RAUC / Mender / MCUboot): an install never touches the running slot; every check
(signature, hashes, compatibility, version policy, golden self-test on this box's
interpreter) passes before anything changes; the slot file is written to a temp name,
fsynced, renamed and the directory fsynced; only then is state.json switched the same way.
A power cut at any point leaves state.json naming a complete, verified slot: the old one
or the new one, never a mix. A new model is active *on trial* and is rolled back unless
confirmed (by ``nemg model confirm``, or by its self-test at the next start).

``fault`` is a test hook called at every step name in :data:`STEPS`; raising there (or
SIGKILL) simulates a power cut at that point.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.bundle import Bundle, TrustStore, parse_version
from edge.errors import ConfigError, IntegrityError, NemgError
from edge.labels import LABELS

SLOTS = ("a", "b")
BUNDLE_NAME = "bundle.nemg"
POLICIES = ("self-test", "manual")
STEPS = ("verified", "slot-open", "slot-half-written", "slot-written", "slot-fsynced",
         "slot-renamed", "slot-dir-fsynced", "state-written", "state-renamed",
         "state-dir-fsynced", "history-written")


class InstallRefused(NemgError):
    """A bundle failed a check; nothing on the box changed."""

    exit_code = 4


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class Status:
    active: str | None
    previous: str | None
    trial: bool
    trial_boots: int
    active_version: str | None
    active_name: str | None
    active_sha256: str | None


class ModelStore:
    def __init__(self, root: Path, *, fault: Callable[[str], None] | None = None) -> None:
        self.root = Path(root)
        self.fault = fault or (lambda step: None)
        env_fault = os.environ.get("NEMG_STORE_KILL_AT")
        if env_fault and fault is None:  # test hook for SIGKILL at a step
            import signal

            def kill_at(step: str) -> None:
                if step == env_fault:
                    os.kill(os.getpid(), signal.SIGKILL)

            self.fault = kill_at

    # ---- setup -----------------------------------------------------------------------------
    @classmethod
    def init(cls, root: Path, *, board: str, trusted: list[Path],
             confirm_policy: str = "self-test") -> ModelStore:
        if confirm_policy not in POLICIES:
            raise ConfigError(f"confirm policy must be one of {', '.join(POLICIES)}")
        from firmware_host.boards import get_frontend

        get_frontend(board)  # must exist
        root.mkdir(parents=True, exist_ok=True)
        (root / "trusted-keys").mkdir(exist_ok=True)
        for s in SLOTS:
            (root / "slots" / s).mkdir(parents=True, exist_ok=True)
        (root / "staging").mkdir(exist_ok=True)
        for key in trusted:
            if not key.is_file():
                raise ConfigError(f"{key}: no such key file")
            (root / "trusted-keys" / key.name).write_bytes(key.read_bytes())
        store = cls(root)
        store._write_json(root / "config.json", {"board": board, "confirm_policy": confirm_policy,
                                                 "max_trial_boots": 1})
        if not (root / "state.json").exists():
            store._write_json(root / "state.json", store._empty_state())
        store._history({"action": "init", "board": board, "policy": confirm_policy})
        return store

    def _empty_state(self) -> dict[str, Any]:
        return {"active": None, "previous": None, "trial": False, "trial_boots": 0}

    @property
    def config(self) -> dict[str, Any]:
        p = self.root / "config.json"
        if not p.is_file():
            what = f"{self.root} is not a model store (it has no config.json)" \
                if self.root.exists() else f"no model store at {self.root}"
            raise ConfigError(f"{what}: create one with 'nemg model init --store {self.root} "
                              "--trust KEY.pub'")
        return json.loads(p.read_text())

    def trusted(self) -> TrustStore:
        return TrustStore.from_dir(self.root / "trusted-keys")

    def state(self) -> dict[str, Any]:
        p = self.root / "state.json"
        try:
            return json.loads(p.read_text())
        except FileNotFoundError:
            self.config  # noqa: B018 - raises the "not a store" error
            return self._empty_state()
        except ValueError:
            raise IntegrityError(f"{p} is corrupted") from None

    def slot_path(self, slot: str) -> Path:
        return self.root / "slots" / slot / BUNDLE_NAME

    # ---- atomic file writes ------------------------------------------------------------------
    def _write_json(self, path: Path, obj: dict[str, Any], steps: bool = False) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w") as f:
            json.dump(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if steps:
            self.fault("state-written")
        os.replace(tmp, path)
        if steps:
            self.fault("state-renamed")
        _fsync_dir(path.parent)
        if steps:
            self.fault("state-dir-fsynced")

    def _history(self, entry: dict[str, Any]) -> None:
        entry = {"time": _now(), **entry}
        with open(self.root / "history.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    # ---- reading the active model --------------------------------------------------------------
    def load_slot(self, slot: str) -> Bundle:
        b = Bundle.read(self.slot_path(slot))
        b.verify(self.trusted())
        return b

    def active_path(self) -> Path | None:
        st = self.state()
        return self.slot_path(st["active"]) if st.get("active") else None

    def active(self) -> Bundle | None:
        st = self.state()
        return self.load_slot(st["active"]) if st.get("active") else None

    def status(self) -> Status:
        st = self.state()
        b = None
        if st.get("active"):
            try:
                b = self.load_slot(st["active"])
            except NemgError:
                b = None
        return Status(st.get("active"), st.get("previous"), bool(st.get("trial")),
                      int(st.get("trial_boots", 0)), b.version if b else None,
                      b.name if b else None, b.sha256 if b else None)

    def history(self) -> list[dict[str, Any]]:
        p = self.root / "history.jsonl"
        if not p.exists():
            return []
        out = []
        for line in p.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a torn last line from a power cut
        return out

    # ---- install --------------------------------------------------------------------------------
    def check(self, data: bytes, *, allow_downgrade: bool = False, source: str = "bundle"
              ) -> Bundle:
        """Every check, in order, before anything changes. Raises InstallRefused."""
        self.config  # noqa: B018 - "no model store here" before any check of the bundle
        try:
            b = Bundle.from_bytes(data, source)
            m = b.verify(self.trusted())  # signature, then every member's sha256
        except IntegrityError as exc:
            raise InstallRefused(str(exc)) from None
        self._check_compatible(b, m)
        st = self.state()
        if st.get("trial"):
            raise InstallRefused("the active model is still on trial: confirm it or roll "
                                 "back before installing another")
        current = self.active_or_none()
        if current is not None and not allow_downgrade and \
                parse_version(b.version) < parse_version(current.version):
            raise InstallRefused(f"{source}: version {b.version} is older than the active "
                                 f"{current.version} (use --allow-downgrade)")
        try:
            b.self_test()
        except (IntegrityError, ConfigError) as exc:
            raise InstallRefused(f"{source}: {exc}") from None
        return b

    def active_or_none(self) -> Bundle | None:
        try:
            return self.active()
        except NemgError:
            return None

    def _check_compatible(self, b: Bundle, m: dict[str, Any]) -> None:
        from firmware_host.boards import get_frontend

        board = get_frontend(self.config["board"])
        try:
            mel, win = b.mel_config, b.window_config
        except (ConfigError, TypeError, KeyError) as exc:
            raise InstallRefused(f"{b.source}: unreadable feature config ({exc})") from None
        why = b.board_mismatch(board.name, board.sample_rate_hz)
        if why:
            raise InstallRefused(f"{b.source}: {why}")
        shape = [1, win.frames, mel.num_mels, 1]
        if m.get("input", {}).get("shape") != shape or m["input"].get("dtype") != "int8" \
                or m.get("output", {}).get("dtype") != "int8":
            raise InstallRefused(f"{b.source}: input/output tensors are not int8 {shape}")
        unknown = [lab for lab in b.labels if lab not in LABELS]
        if unknown:
            raise InstallRefused(f"{b.source}: unknown labels {unknown}")

    def install(self, data: bytes, *, allow_downgrade: bool = False,
                source: str = "bundle") -> Status:
        try:
            b = self.check(data, allow_downgrade=allow_downgrade, source=source)
        except InstallRefused as exc:
            self._history({"action": "refused", "source": source, "reason": str(exc)})
            raise
        self.fault("verified")
        st = self.state()
        target = "b" if st.get("active") == "a" else "a"  # never the running slot
        slot_file = self.slot_path(target)
        slot_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = slot_file.with_name(BUNDLE_NAME + ".tmp")
        with open(tmp, "wb") as f:
            self.fault("slot-open")
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            self.fault("slot-half-written")
            f.write(data[half:])
            f.flush()
            self.fault("slot-written")
            os.fsync(f.fileno())
        self.fault("slot-fsynced")
        os.replace(tmp, slot_file)
        self.fault("slot-renamed")
        _fsync_dir(slot_file.parent)
        self.fault("slot-dir-fsynced")
        new_state = {"active": target, "previous": st.get("active"), "trial": True,
                     "trial_boots": 0}
        self._write_json(self.root / "state.json", new_state, steps=True)
        self._history({"action": "install", "slot": target, "name": b.name,
                       "version": b.version, "sha256": b.sha256, "source": source,
                       "previous": st.get("active")})
        self.fault("history-written")
        return self.status()

    # ---- trial, confirm, rollback ----------------------------------------------------------------
    def confirm(self) -> Status:
        st = self.state()
        if not st.get("active"):
            raise ConfigError("no active model to confirm")
        if not st.get("trial"):
            return self.status()
        self.load_slot(st["active"]).self_test()
        self._write_json(self.root / "state.json", {**st, "trial": False, "trial_boots": 0})
        self._history({"action": "confirm", "slot": st["active"]})
        return self.status()

    def rollback(self, reason: str = "requested") -> Status:
        st = self.state()
        prev = st.get("previous")
        if not prev:
            raise ConfigError("no previous model to roll back to")
        try:
            self.load_slot(prev)
        except NemgError as exc:
            raise IntegrityError(f"previous slot {prev} is not valid: {exc}") from None
        self._write_json(self.root / "state.json", {"active": prev, "previous": st["active"],
                                                    "trial": False, "trial_boots": 0})
        self._history({"action": "rollback", "from": st["active"], "to": prev,
                       "reason": reason})
        return self.status()

    def boot_check(self) -> tuple[Status, str]:
        """At start: confirm or roll back a trial model; fall back from a broken one."""
        st = self.state()
        if not st.get("active"):
            return self.status(), "no model installed"
        try:
            b = self.load_slot(st["active"])
            if st.get("trial"):
                b.self_test()
        except NemgError as exc:
            if st.get("previous"):
                return self.rollback(f"active slot failed at boot: {exc}"), "rolled back"
            raise
        if not st.get("trial"):
            return self.status(), "ok"
        if self.config.get("confirm_policy", "self-test") == "self-test":
            self.confirm()
            return self.status(), "confirmed by self-test"
        boots = int(st.get("trial_boots", 0)) + 1
        if boots > int(self.config.get("max_trial_boots", 1)) and st.get("previous"):
            return self.rollback("not confirmed"), "rolled back (not confirmed)"
        self._write_json(self.root / "state.json", {**st, "trial_boots": boots})
        return self.status(), f"on trial (boot {boots})"
