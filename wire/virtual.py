"""A virtual front end: a pty that behaves like the device.

It answers INFO / PING / START / STOP like firmware would and streams SAMPLES frames at the
board's real rate (or as fast as the reader drains them), from a :class:`SampleSource`.
Faults are injected on purpose: dropped frames, flipped bits, a pulled cable.

Device model (as docs/protocol.md specifies): the ADC samples from power-up; the sample
index counts from then and START does not reset it; while the cable is out the ADC keeps
sampling, so the host can count exactly what it missed.

A stable path for reconnect tests: with ``link_path`` the current pty is symlinked there
(as udev's /dev/serial/by-id does), and re-pointed when the cable comes back.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import tty
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wire.boards import FrontEndProfile
from wire.protocol import (
    FrameDecoder,
    FrameType,
    InfoReply,
    encode_ack,
    encode_frame,
    encode_info,
    encode_samples,
)

FIRMWARE_VERSION = (0, 1, 0)


class SampleSource:
    """Random access to the ADC values of a device index (deterministic)."""

    def __init__(self, values: np.ndarray, *, loop: bool = True, name: str = "array") -> None:
        v = np.asarray(values)
        if v.ndim != 1 or v.size == 0:
            raise ValueError("a source needs a non-empty 1-D signal")
        self.values = v.astype(np.int32)
        self.loop = loop
        self.name = name

    def __len__(self) -> int:
        return self.values.size

    def read(self, start: int, n: int) -> np.ndarray:
        """Values of device indices start .. start+n-1 (fewer at the end of a non-looping
        source)."""
        if self.loop:
            return self.values[(start + np.arange(n)) % self.values.size]
        return self.values[start : start + n]

    def exhausted(self, index: int) -> bool:
        return not self.loop and index >= self.values.size


@dataclass(frozen=True)
class Faults:
    """What to break on purpose."""

    drop_rate: float = 0.0
    """Probability a SAMPLES frame is not sent (its samples are lost)."""
    corrupt_rate: float = 0.0
    """Probability each sent byte has one bit flipped."""
    disconnect_after_frames: int | None = None
    """Pull the cable once, after this many SAMPLES frames of the stream (counted from the
    first START, dropped ones included): keyed to the signal, never to the clock, so the
    cable comes out at the same sample on a fast machine and a slow one."""
    disconnect_frames: int = 50
    """How long the cable stays out, in frames of the device's time: the ADC keeps
    sampling, so this many frames are lost (a real-time device also waits that long)."""
    mute_after_frames: int | None = None
    """After this many SAMPLES frames the device goes on ACKing commands but sends no more
    samples (a firmware hang)."""
    noise: bool = False
    """With ``mute_after_frames``: it sends random bytes instead (a broken UART)."""
    seed: int = 0
    """Seed of the fault generator (a run is reproducible)."""


@dataclass
class VirtualStats:
    """What the device did; tests compare the host's view against it."""

    frames_sent: int = 0
    samples_sent: int = 0
    dropped: list[tuple[int, int]] = field(default_factory=list)
    """(device index, count) of every dropped frame."""
    corrupted: list[tuple[int, int]] = field(default_factory=list)
    """(device index, count) of every SAMPLES frame with at least one flipped bit."""
    bytes_flipped: int = 0
    sent_until: int = 0
    """Device index one past the last sample of the last SAMPLES frame sent (a host that
    has accounted for everything before it has heard all it can: frames dropped after it
    are never announced by a later one)."""
    disconnects: int = 0
    commands: int = 0


class VirtualFrontEnd:
    """Runs in a thread; ``start()`` returns the path to open."""

    def __init__(self, profile: FrontEndProfile, source: SampleSource, *, fast: bool = False,
                 faults: Faults | None = None, link_path: str | Path | None = None,
                 on_event: Callable[[str], None] | None = None) -> None:
        self.profile = profile
        self.source = source
        self.fast = fast
        self.faults = faults or Faults()
        self.link_path = Path(link_path) if link_path else None
        self.on_event = on_event or (lambda msg: None)
        self.stats = VirtualStats()
        self._rng = np.random.default_rng(self.faults.seed)
        self._master: int | None = None
        self._slave: int | None = None
        self._pty_path = ""
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._streaming = False
        self._seq = 0
        self._index = 0  # device sample index of the next frame
        self._t0 = 0.0  # monotonic time of device index 0 (real-time mode)
        self._stream_started = False
        self._frames_streamed = 0  # SAMPLES frames since the first START (sent or dropped)
        self.source_origin = 0
        """Device index at the first START: source position 0 plays there."""
        self._disconnected_once = False
        self._out = bytearray()
        self.finished = threading.Event()
        """Set when a non-looping source has been streamed to its end."""
        self.error: BaseException | None = None

    # ---- lifecycle --------------------------------------------------------------------
    @property
    def path(self) -> str:
        """What a host opens: the stable link if there is one, else the pty."""
        return str(self.link_path) if self.link_path else self._pty_path

    def start(self) -> str:
        self._open_pty()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="virtual-frontend", daemon=True)
        self._thread.start()
        return self.path

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._close_pty()
        if self.link_path and self.link_path.is_symlink():
            self.link_path.unlink()

    def __enter__(self) -> VirtualFrontEnd:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _open_pty(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)  # no echo, no CR/LF translation: a byte pipe like USB CDC
        os.set_blocking(master, False)
        self._master, self._slave = master, slave
        self._pty_path = os.ttyname(slave)
        if self.link_path:
            tmp = self.link_path.with_name(self.link_path.name + ".tmp")
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            tmp.symlink_to(self._pty_path)
            os.replace(tmp, self.link_path)  # atomic: a host never sees no link
        self.on_event(f"pty {self._pty_path}")

    def _close_pty(self) -> None:
        for fd in (self._master, self._slave):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._slave = None
        self._out.clear()

    # ---- the device loop ----------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as exc:  # surfaced to the owner, never silently
            self.error = exc
            self.on_event(f"virtual front end failed: {exc!r}")

    def _loop(self) -> None:
        import select

        decoder = FrameDecoder()
        period = self.profile.samples_per_frame / self.profile.sample_rate_hz
        while not self._stop.is_set():
            self._maybe_disconnect(decoder)
            want_write = bool(self._out) or (self._streaming and self.fast)
            timeout = 0.002 if (self._streaming or self._out) else 0.02
            r, _w, _ = select.select([self._master], [self._master] if want_write else [], [],
                                    timeout)
            if r:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                for frame in decoder.feed(data):
                    self._command(frame.type, frame.payload)
            if self._streaming:
                if self.fast:
                    while len(self._out) < 65536 and self._streaming \
                            and not self._cable_due() \
                            and not (self._muted() and not self.faults.noise):
                        self._emit_frame()
                else:
                    due = int((time.monotonic() - self._t0) / period)
                    while self._index // self.profile.samples_per_frame < due and \
                            self._streaming and len(self._out) < 1 << 20 \
                            and not self._cable_due():
                        self._emit_frame()
            self._flush()

    def _flush(self) -> None:
        if not self._out or self._master is None:
            return
        try:
            n = os.write(self._master, self._out)
        except BlockingIOError:
            return
        except OSError:
            self._out.clear()  # nobody on the other side: bytes fall on the floor
            return
        del self._out[:n]

    def _send(self, ftype: FrameType, payload: bytes) -> bool:
        data = bytearray(encode_frame(ftype, self._seq, payload))
        self._seq = (self._seq + 1) & 0xFFFF
        corrupted = False
        if self.faults.corrupt_rate > 0:
            hits = np.flatnonzero(self._rng.random(len(data)) < self.faults.corrupt_rate)
            for i in hits:
                data[i] ^= 1 << int(self._rng.integers(8))
            self.stats.bytes_flipped += hits.size
            corrupted = hits.size > 0
        self._out += data
        return corrupted

    def _command(self, ftype: int, payload: bytes) -> None:
        self.stats.commands += 1
        p = self.profile
        if ftype == FrameType.PING:
            self._send(FrameType.PONG, payload[:64])
        elif ftype == FrameType.INFO:
            info = InfoReply(p.device_id, FIRMWARE_VERSION, p.adc_bits, p.sample_rate_hz,
                             p.nv_per_lsb, p.channels, p.name)
            self._send(FrameType.INFO_REPLY, encode_info(info))
        elif ftype == FrameType.START:
            if not self._streaming:
                self._streaming = True
                if not self.fast:  # the ADC has been running: join its timeline now
                    period = p.samples_per_frame / p.sample_rate_hz
                    self._index = int((time.monotonic() - self._t0) / period) \
                        * p.samples_per_frame
                if not self._stream_started:
                    self._stream_started = True
                    self.source_origin = self._index
            self._send(FrameType.ACK, encode_ack(ftype, 0))
        elif ftype == FrameType.STOP:
            self._streaming = False
            self._send(FrameType.ACK, encode_ack(ftype, 0))
        else:
            self._send(FrameType.ACK, encode_ack(ftype & 0xFF, 2))  # 2 = unknown command

    def _emit_frame(self) -> None:
        n = self.profile.samples_per_frame
        if self._muted():  # the ADC runs on; nothing (or noise) leaves the device
            self._index += n
            self._frames_streamed += 1
            if self.faults.noise:
                self._out += self._rng.integers(0, 256, 412, dtype=np.uint8).tobytes()
            return
        pos = self._index - self.source_origin
        if self.source.exhausted(pos):
            self._streaming = False
            self.finished.set()
            self.on_event("source finished")
            return
        values = self.source.read(pos, n)
        first = self._index
        self._index += n
        self._frames_streamed += 1
        if self.faults.drop_rate > 0 and self._rng.random() < self.faults.drop_rate:
            self._seq = (self._seq + 1) & 0xFFFF  # the frame existed; it was lost
            self.stats.dropped.append((first, values.size))
            return
        lo, hi = -(1 << (self.profile.adc_bits - 1)), (1 << (self.profile.adc_bits - 1)) - 1
        flags = 1 if (values <= lo).any() or (values >= hi).any() else 0
        payload = encode_samples(first, values, flags, self.profile.bytes_per_sample)
        if self._send(FrameType.SAMPLES, payload):
            self.stats.corrupted.append((first, values.size))
        self.stats.frames_sent += 1
        self.stats.samples_sent += values.size
        self.stats.sent_until = first + values.size

    def _muted(self) -> bool:
        f = self.faults
        return f.mute_after_frames is not None and self._frames_streamed >= f.mute_after_frames

    def _cable_due(self) -> bool:
        f = self.faults
        return (f.disconnect_after_frames is not None and not self._disconnected_once
                and self._frames_streamed >= f.disconnect_after_frames)

    def _maybe_disconnect(self, decoder: FrameDecoder) -> None:
        if not self._cable_due():
            return
        f = self.faults
        self._disconnected_once = True
        self.stats.disconnects += 1
        self.on_event("cable pulled")
        self._close_pty()  # bytes not yet read by the host are lost with the cable
        self._streaming = False  # a re-enumerated device waits for START again
        decoder.reset()
        spf = self.profile.samples_per_frame
        if self.fast:
            # the ADC kept sampling while the cable was out: exactly this many frames
            self._index += f.disconnect_frames * spf
        else:  # real time: the cable is out that long; START rejoins the ADC's timeline
            self._stop.wait(f.disconnect_frames * spf / self.profile.sample_rate_hz)
        if not self._stop.is_set():
            self._open_pty()
            self.on_event("cable back")
