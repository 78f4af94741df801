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

A hostile store (``nemg flash`` may run as root): nothing inside the root may be a
symbolic link or belong to another user than the store's owner or us; every file is
written under a fresh temporary name created with ``O_EXCL | O_NOFOLLOW`` (a planted link
is removed, never followed); ``state.json`` is validated, and a damaged one is rebuilt
from the history and the slots. ``previous`` only ever names a model that was running
before: its slot is released (``previous: null``) before a new bundle is written into it,
and a model that failed its trial is no fallback.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edge.bundle import MAX_BUNDLE_BYTES, Bundle, TrustStore, parse_version
from edge.errors import ConfigError, IntegrityError, NemgError
from edge.fileio import fsync_dir
from edge.labels import LABELS

SLOTS = ("a", "b")
BUNDLE_NAME = "bundle.nemg"
POLICIES = ("self-test", "manual")
STEPS = ("verified", "previous-released", "slot-open", "slot-half-written", "slot-written",
         "slot-fsynced", "slot-renamed", "slot-dir-fsynced", "state-written", "state-renamed",
         "state-dir-fsynced", "history-written")


class InstallRefused(NemgError):
    """A bundle failed a check; nothing on the box changed."""

    exit_code = 4


def _open_new(path: Path) -> int:
    """A descriptor to write ``path`` afresh: whatever is there (a stale temp file, a
    planted link) is removed, never followed, and the file is created exclusively."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
                   | getattr(os, "O_CLOEXEC", 0), 0o644)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _invalid_state(st: Any) -> str | None:
    """Why a parsed state.json cannot be trusted, or None."""
    if not isinstance(st, dict):
        return "state.json is not an object"
    for key in ("active", "previous"):
        if st.get(key) is not None and st.get(key) not in SLOTS:
            return f"state.json names {key} {st.get(key)!r}, not a slot"
    if st.get("active") is None and st.get("previous") is not None:
        return "state.json has a previous model but no active one"
    if st.get("active") is not None and st.get("active") == st.get("previous"):
        return "state.json names one slot as active and previous"
    if not isinstance(st.get("trial", False), bool):
        return "state.json's trial is not true or false"
    boots = st.get("trial_boots", 0)
    if not isinstance(boots, int) or isinstance(boots, bool) or not 0 <= boots < 1000:
        return "state.json's trial_boots is not a small count"
    return None


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
    max_bundle_bytes = MAX_BUNDLE_BYTES
    """Largest bundle an install reads (a serial transfer stages no more)."""
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
        from wire.boards import get_frontend

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
        try:
            cfg = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError):
            cfg = None
        if not isinstance(cfg, dict) or not isinstance(cfg.get("board"), str):
            raise IntegrityError(f"{p} is damaged: run 'nemg model init --store {self.root} "
                                 "--board BOARD' again (the slots are kept)")
        return cfg

    def trusted(self) -> TrustStore:
        return TrustStore.from_dir(self.root / "trusted-keys")

    def state(self) -> dict[str, Any]:
        """The validated state; a damaged one is rebuilt from the history and the slots."""
        self.config  # noqa: B018 - raises the "not a store" error
        self.check_tree()
        p = self.root / "state.json"
        try:
            st = json.loads(p.read_text())
        except FileNotFoundError:
            return self._empty_state()
        except (ValueError, UnicodeDecodeError):
            return self._recover("state.json is not JSON")
        why = _invalid_state(st)
        return self._recover(why) if why else st

    def _recover(self, why: str) -> dict[str, Any]:
        """Replay the history, then keep only what the slots still prove."""
        st = self._empty_state()
        for h in self.history():
            action = h.get("action")
            if action == "install" and h.get("slot") in SLOTS:
                prev = h.get("previous") if h.get("previous") in SLOTS else None
                st = {"active": h["slot"], "previous": prev, "trial": True, "trial_boots": 0}
            elif action == "confirm" and h.get("slot") == st["active"]:
                st["trial"] = False
            elif action == "rollback" and h.get("to") in SLOTS:
                st = {"active": h["to"], "previous": h.get("prev_after"), "trial": False,
                      "trial_boots": 0}
            elif action == "release" and h.get("slot") == st["previous"]:
                st["previous"] = None
            elif action == "recovered" and _invalid_state(h.get("state")) is None:
                st = {**self._empty_state(), **h["state"]}
        if st["previous"] not in SLOTS or st["previous"] == st["active"]:
            st["previous"] = None
        for key in ("active", "previous"):
            if st[key] is not None and not self._slot_ok(st[key]):
                st[key] = None
        if st["active"] is None and st["previous"] is not None:
            st = {**self._empty_state(), "active": st["previous"], "trial": True}
        with contextlib.suppress(ConfigError):  # a read-only store still reports its state
            self._write_json(self.root / "state.json", st)
            self._history({"action": "recovered", "reason": why, "state": st})
        return st

    def _slot_ok(self, slot: str) -> bool:
        try:
            self.load_slot(slot)
        except NemgError:
            return False
        return True

    def slot_path(self, slot: str) -> Path:
        return self.root / "slots" / slot / BUNDLE_NAME

    # ---- atomic file writes ------------------------------------------------------------------
    def _write_json(self, path: Path, obj: dict[str, Any], steps: bool = False) -> None:
        tmp = path.with_name(path.name + ".tmp")
        with self._writable(), os.fdopen(_open_new(tmp), "w") as f:
            json.dump(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if steps:
            self.fault("state-written")
        os.replace(tmp, path)
        if steps:
            self.fault("state-renamed")
        fsync_dir(path.parent)
        if steps:
            self.fault("state-dir-fsynced")

    def _history(self, entry: dict[str, Any]) -> None:
        entry = {"time": _now(), **entry}
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        with self._writable(), os.fdopen(os.open(self.root / "history.jsonl", flags, 0o644),
                                         "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())

    @contextlib.contextmanager
    def _writable(self):
        """An OS error while writing the store is the user's to act on (a full disk, a
        read-only card, a planted link), not a bug."""
        try:
            yield
        except OSError as exc:
            raise ConfigError(f"model store {self.root} cannot be written "
                              f"({exc.strerror or exc})") from None

    # ---- a hostile store ----------------------------------------------------------------
    def _guard(self, path: Path) -> None:
        """Refuse a symbolic link, or a file of another user, at ``path`` (never followed)."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return
        if stat.S_ISLNK(st.st_mode):
            raise IntegrityError(f"{path} is a symbolic link: a store holds no links "
                                 "(refused; remove it)")
        if st.st_uid not in self._owners():
            raise IntegrityError(f"{path} belongs to user {st.st_uid}, not to the store's "
                                 "owner (refused)")

    def _owners(self) -> set[int]:
        try:
            return {os.geteuid(), os.stat(self.root).st_uid}
        except OSError:
            return {os.geteuid()}

    def check_tree(self) -> None:
        """Every path the store reads or writes: no links, no foreign owners."""
        r = self.root
        paths = [r / "slots", r / "staging", r / "trusted-keys", r / "config.json",
                 r / "state.json", r / "state.json.tmp", r / "history.jsonl"]
        for s in SLOTS:
            d = r / "slots" / s
            paths += [d, d / BUNDLE_NAME, d / (BUNDLE_NAME + ".tmp")]
        for p in paths:
            self._guard(p)
        for d in (r / "trusted-keys", r / "staging"):
            if d.is_dir():
                for p in d.iterdir():
                    self._guard(p)

    # ---- reading the active model --------------------------------------------------------------
    def load_slot(self, slot: str) -> Bundle:
        b = Bundle.read(self.slot_path(slot), follow_links=False)
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
        from wire.boards import get_frontend

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
            with contextlib.suppress(ConfigError):  # a read-only store: the refusal stands
                self._history({"action": "refused", "source": source, "reason": str(exc)})
            raise
        self.fault("verified")
        st = self.state()
        target = "b" if st.get("active") == "a" else "a"  # never the running slot
        if st.get("previous") == target:  # its model is about to be overwritten
            st = {**st, "previous": None}
            self._write_json(self.root / "state.json", st)
            self._history({"action": "release", "slot": target})
            self.fault("previous-released")
        slot_file = self.slot_path(target)
        tmp = slot_file.with_name(BUNDLE_NAME + ".tmp")
        with self._writable():
            slot_file.parent.mkdir(parents=True, exist_ok=True)
            self._guard(slot_file.parent)
            try:
                self._write_slot(tmp, data)
            except OSError:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)  # a full disk is not kept full by our leftovers
                raise
            self.fault("slot-fsynced")
            os.replace(tmp, slot_file)
            self.fault("slot-renamed")
            fsync_dir(slot_file.parent)
        self.fault("slot-dir-fsynced")
        new_state = {"active": target, "previous": st.get("active"), "trial": True,
                     "trial_boots": 0}
        self._write_json(self.root / "state.json", new_state, steps=True)
        self._history({"action": "install", "slot": target, "name": b.name,
                       "version": b.version, "sha256": b.sha256, "source": source,
                       "previous": st.get("active")})
        self.fault("history-written")
        return self.status()

    def _write_slot(self, tmp: Path, data: bytes) -> None:
        with os.fdopen(_open_new(tmp), "wb") as f:
            self.fault("slot-open")
            half = len(data) // 2
            f.write(data[:half])
            f.flush()
            self.fault("slot-half-written")
            f.write(data[half:])
            f.flush()
            self.fault("slot-written")
            os.fsync(f.fileno())

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
            self.load_slot(prev).self_test()
        except NemgError as exc:
            raise IntegrityError(f"previous slot {prev} is not valid: {exc}") from None
        # A model leaving on trial was never confirmed: it is no fallback.
        prev_after = None if st.get("trial") else st["active"]
        self._write_json(self.root / "state.json", {"active": prev, "previous": prev_after,
                                                    "trial": False, "trial_boots": 0})
        self._history({"action": "rollback", "from": st["active"], "to": prev,
                       "prev_after": prev_after, "reason": reason})
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
