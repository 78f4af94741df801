"""Model transfer to a box over serial (``nemg flash --port`` ↔ ``nemg flash-server``).

Same framing as the front-end protocol (sync, CRC-8 header, CRC-32 per frame, sequence
numbers). Frame types:

- 0x20 XFER_BEGIN (host→box): JSON {"size", "sha256", "name"} → XFER_STATUS
- 0x21 XFER_CHUNK (host→box): offset (u32) + data (≤ CHUNK bytes) → XFER_ACK
- 0x22 XFER_END   (host→box): JSON {"sha256", "allow_downgrade"} → XFER_RESULT
- 0xA0 XFER_STATUS (box→host): JSON {"offset", "chunk"}: where to resume
- 0xA1 XFER_ACK    (box→host): next offset (u32) the box expects
- 0xA2 XFER_RESULT (box→host): JSON {"ok", "message", "version"}

The box keeps the partial file as ``staging/<sha256>.part`` (fsynced per chunk), so an
interrupted transfer resumes where it stopped. The wire is hostile: every message is
validated (a malformed one is answered with an error and the server keeps serving), and
staging never holds more than the declared size, which is capped at ``max_bytes``. A chunk
is accepted only at the offset the box expects; anything else is answered with that
offset. A corrupted frame is dropped by the decoder; the host times out and sends the chunk
again. At the end the box checks the whole file's sha256, then hands it to
``ModelStore.install`` (signature, hashes, compatibility, version, self-test, atomic
switch).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import select
import struct
import time
import tty
from collections.abc import Callable
from pathlib import Path

import numpy as np

from nemg_common.errors import DeviceError, NemgError
from wire.protocol import FrameDecoder, encode_frame

XFER_BEGIN, XFER_CHUNK, XFER_END = 0x20, 0x21, 0x22
XFER_STATUS, XFER_ACK, XFER_RESULT = 0xA0, 0xA1, 0xA2
CHUNK = 2048
OFFSET = struct.Struct("<I")


# ---- byte channels ----------------------------------------------------------------------
class PtyChannel:
    """The box side on a pty it creates (tests, and boxes without a gadget port)."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave)
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    def read(self, timeout: float) -> bytes:
        r, _, _ = select.select([self.master], [], [], timeout)
        if not r:
            return b""
        try:
            return os.read(self.master, 65536)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            select.select([], [self.master], [], 1.0)
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                continue
            view = view[n:]

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class LinkChannel:
    """The box side on a real serial port (e.g. /dev/ttyGS0, a USB gadget)."""

    def __init__(self, port: str) -> None:
        from wire.link import SerialLink

        self.link = SerialLink(port, read_timeout=0.05)
        self.link.open()
        self.path = port

    def read(self, timeout: float) -> bytes:
        return self.link.read()

    def write(self, data: bytes) -> None:
        self.link.write(data)

    def close(self) -> None:
        self.link.close()


# ---- the box side ------------------------------------------------------------------------------
def _json_object(payload: bytes, what: str) -> dict:
    try:
        obj = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise DeviceError(f"malformed {what}: not JSON") from None
    if not isinstance(obj, dict):
        raise DeviceError(f"malformed {what}: not a JSON object")
    return obj


def _parse_begin(payload: bytes, max_bytes: int) -> dict:
    meta = _json_object(payload, "XFER_BEGIN")
    size, digest, name = meta.get("size"), meta.get("sha256"), meta.get("name", "serial")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 < size <= max_bytes:
        raise DeviceError(f"malformed XFER_BEGIN: size must be 1..{max_bytes} bytes")
    if not isinstance(digest, str) or len(digest) != 64 or \
            not all(c in "0123456789abcdef" for c in digest):
        raise DeviceError("malformed XFER_BEGIN: bad sha256")
    if not isinstance(name, str) or len(name) > 200 or not name.isprintable():
        raise DeviceError("malformed XFER_BEGIN: bad name")
    return {"size": size, "sha256": digest, "name": name}


class FlashServer:
    """Receives bundles and installs them into a ModelStore."""

    def __init__(self, store, channel, *, log: Callable[[str], None] | None = None,
                 max_bytes: int | None = None) -> None:
        self.max_bytes = max_bytes or store.max_bundle_bytes
        """Largest transfer accepted (and so the most staging ever holds): by default the
        largest bundle the store accepts."""
        self.store = store
        self.channel = channel
        self.log = log or (lambda m: None)
        self.decoder = FrameDecoder()
        self._seq = 0
        self._part: Path | None = None
        self._expected: dict | None = None
        self.installs = 0
        self.refused = 0
        """Messages answered with an error (malformed, out of order, failed install)."""

    def _reply(self, ftype: int, payload: bytes) -> None:
        self.channel.write(encode_frame(ftype, self._seq, payload))
        self._seq = (self._seq + 1) & 0xFFFF

    def serve(self, *, until: Callable[[], bool] | None = None) -> None:
        while not (until and until()):
            for frame in self.decoder.feed(self.channel.read(0.05)):
                try:
                    self._handle(frame.type, frame.payload)
                except NemgError as exc:
                    self.refused += 1
                    self.log(f"refused: {exc}")
                    self._reply(XFER_RESULT, json.dumps({"ok": False,
                                                         "message": str(exc)}).encode())

    def _staged(self) -> int:
        return self._part.stat().st_size if self._part and self._part.exists() else 0

    def _handle(self, ftype: int, payload: bytes) -> None:
        staging = self.store.root / "staging"
        if ftype == XFER_BEGIN:
            meta = _parse_begin(payload, self.max_bytes)
            self.store.check_tree()  # no planted links in staging
            staging.mkdir(exist_ok=True)
            for old in staging.glob("*.part"):  # one transfer at a time
                if old.stem != meta["sha256"]:
                    old.unlink()
            self._part = staging / f"{meta['sha256']}.part"
            self._expected = meta
            have = self._staged()
            if have > meta["size"]:
                self._part.unlink()
                have = 0
            self.log(f"transfer {meta['name']!r} ({meta['size']} bytes), resuming at {have}")
            self._reply(XFER_STATUS, json.dumps({"offset": have, "chunk": CHUNK}).encode())
        elif ftype == XFER_CHUNK:
            if self._part is None or self._expected is None:
                raise DeviceError("XFER_CHUNK before XFER_BEGIN")
            if len(payload) < OFFSET.size:
                raise DeviceError("malformed XFER_CHUNK: shorter than its offset")
            (offset,) = OFFSET.unpack_from(payload)
            data = payload[OFFSET.size :]
            have = self._staged()
            if offset == have and data:
                if have + len(data) > self._expected["size"]:
                    raise DeviceError(f"XFER_CHUNK at {offset} runs past the declared "
                                      f"{self._expected['size']} bytes")
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
                with os.fdopen(os.open(self._part, flags, 0o600), "ab") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                have += len(data)
            self._reply(XFER_ACK, OFFSET.pack(have))
        elif ftype == XFER_END:
            if self._part is None or self._expected is None:
                raise DeviceError("XFER_END before XFER_BEGIN")
            meta = _json_object(payload, "XFER_END")
            if not isinstance(meta.get("allow_downgrade", False), bool):
                raise DeviceError("malformed XFER_END: allow_downgrade is not true or false")
            if self._staged() != self._expected["size"]:
                raise DeviceError(f"XFER_END after {self._staged()} of "
                                  f"{self._expected['size']} bytes; send the rest")
            data = self._part.read_bytes()
            if len(data) != int(self._expected["size"]) or \
                    hashlib.sha256(data).hexdigest() != self._expected["sha256"]:
                self._part.unlink()
                raise DeviceError("received file does not match its sha256; start again")
            status = self.store.install(data, allow_downgrade=meta.get("allow_downgrade", False),
                                        source=self._expected["name"])
            self._part.unlink()
            self.installs += 1
            msg = f"installed {status.active_name} {status.active_version} in slot " \
                  f"{status.active} (on trial)"
            self.log(msg)
            self._reply(XFER_RESULT, json.dumps({"ok": True, "message": msg,
                                                 "version": status.active_version}).encode())


# ---- the host side ----------------------------------------------------------------------------
class FlashClient:
    """Sends a bundle over a SerialLink; resumes; retries chunks the line corrupted."""

    def __init__(self, link, *, timeout_s: float = 1.0, retries: int = 20,
                 corrupt_rate: float = 0.0, seed: int = 0,
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.link = link
        self.timeout_s = timeout_s
        self.retries = retries
        self.decoder = FrameDecoder()
        self._seq = 0
        self._rng = np.random.default_rng(seed)
        self.corrupt_rate = corrupt_rate  # test hook: flip bits in what we send
        self.progress = progress or (lambda done, total: None)
        self.resent = 0

    def _send(self, ftype: int, payload: bytes) -> None:
        data = bytearray(encode_frame(ftype, self._seq, payload))
        self._seq = (self._seq + 1) & 0xFFFF
        if self.corrupt_rate:
            for i in np.flatnonzero(self._rng.random(len(data)) < self.corrupt_rate):
                data[i] ^= 1 << int(self._rng.integers(8))
        self.link.write(bytes(data))

    def _wait(self, want: int, timeout_s: float):
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            for f in self.decoder.feed(self.link.read()):
                if f.type == want:
                    return f.payload
                if f.type == XFER_RESULT:
                    res = json.loads(f.payload)
                    if not res.get("ok"):
                        raise DeviceError(f"box refused: {res.get('message')}")
        return None

    def _request(self, ftype: int, payload: bytes, want: int, timeout_s: float | None = None):
        for _ in range(self.retries + 1):
            self._send(ftype, payload)
            reply = self._wait(want, timeout_s or self.timeout_s)
            if reply is not None:
                return reply
            self.resent += 1  # lost or corrupted on the line: send it again
        raise DeviceError(f"{self.link.port}: box did not answer (after {self.retries + 1} "
                          "tries)")

    def send(self, data: bytes, name: str, *, allow_downgrade: bool = False,
             stop_after: int | None = None) -> dict:
        """Transfer and install; ``stop_after`` bytes simulates an interrupted transfer."""
        digest = hashlib.sha256(data).hexdigest()
        status = json.loads(self._request(XFER_BEGIN, json.dumps(
            {"size": len(data), "sha256": digest, "name": name}).encode(), XFER_STATUS))
        offset, chunk = int(status["offset"]), int(status["chunk"])
        self.resumed_at = offset
        while offset < len(data):
            if stop_after is not None and offset >= stop_after:
                raise DeviceError(f"transfer interrupted at {offset} bytes (test)")
            piece = data[offset : offset + chunk]
            ack = self._request(XFER_CHUNK, OFFSET.pack(offset) + piece, XFER_ACK)
            (offset,) = OFFSET.unpack(ack[: OFFSET.size])
            self.progress(offset, len(data))
        raw = self._request(XFER_END, json.dumps({"sha256": digest,
                                                  "allow_downgrade": allow_downgrade}).encode(),
                            XFER_RESULT, timeout_s=30.0)
        res = json.loads(raw)
        if not res.get("ok"):
            raise DeviceError(f"box refused: {res.get('message')}")
        return res
