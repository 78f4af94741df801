"""The serial link to a front end, and the client that speaks the protocol over it.

:class:`SerialLink` is I/O only: open a device path, pty path or pyserial URL
(``loop://``, ``socket://``) with exclusive access; short reads are normal; an unplugged
device (pyserial raises on a ready-but-empty read, a closed pty raises EIO) becomes
:class:`LinkDown`.

:class:`FrontEndClient` puts :class:`~wire.protocol.FrameDecoder` and
:class:`~wire.protocol.SampleAssembler` on top: commands with replies, and an
event stream of samples, gaps and link state that survives unplugging: it reconnects with
exponential backoff and the consumer sees a :class:`~wire.protocol.Gap`, never a
splice.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np
import serial

from nemg_common.errors import DeviceError
from wire.protocol import (
    DecoderStats,
    Frame,
    FrameDecoder,
    FrameType,
    Gap,
    InfoReply,
    ProtocolError,
    SampleAssembler,
    Samples,
    decode_info,
    encode_frame,
)

log = logging.getLogger(__name__)


class LinkDown(DeviceError):
    """The port went away (unplugged, closed, or another process took it)."""


class WrongDevice(DeviceError):
    """After a reconnect another device answers at the port: its samples are not ours."""


def _identity(info: InfoReply) -> tuple:
    return (info.device_id, info.board_id, info.sample_rate_hz, info.adc_bits,
            info.nv_per_lsb, info.channels)


class SerialLink:
    """A byte pipe to the device. No protocol knowledge."""

    def __init__(self, port: str, *, baudrate: int = 2_000_000, read_timeout: float = 0.02,
                 exclusive: bool = True) -> None:
        self.port = port
        self.baudrate = baudrate
        self.read_timeout = read_timeout
        self.exclusive = exclusive
        self._ser: serial.SerialBase | None = None

    def open(self) -> None:
        try:
            if "://" in self.port:
                self._ser = serial.serial_for_url(self.port, baudrate=self.baudrate,
                                                  timeout=self.read_timeout)
            else:
                self._ser = serial.Serial(self.port, baudrate=self.baudrate,
                                          timeout=self.read_timeout, exclusive=self.exclusive)
        except (serial.SerialException, OSError, ValueError) as exc:
            self._ser = None
            raise DeviceError(f"cannot open {self.port}: {_reason(exc)}") from None

    @property
    def is_open(self) -> bool:
        return self._ser is not None and self._ser.is_open

    def read(self, max_bytes: int = 65536) -> bytes:
        """Whatever has arrived (possibly nothing) within the read timeout."""
        if self._ser is None:
            raise LinkDown(f"{self.port} is not open")
        try:
            waiting = self._ser.in_waiting
            return self._ser.read(min(max(waiting, 1), max_bytes))
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise LinkDown(f"{self.port}: {_reason(exc)}") from None

    def write(self, data: bytes) -> None:
        if self._ser is None:
            raise LinkDown(f"{self.port} is not open")
        try:
            self._ser.write(data)
            self._ser.flush()
        except (serial.SerialException, OSError) as exc:
            self.close()
            raise LinkDown(f"{self.port}: {_reason(exc)}") from None

    def close(self) -> None:
        if self._ser is not None:
            with contextlib.suppress(serial.SerialException, OSError):
                self._ser.close()
            self._ser = None

    def __enter__(self) -> SerialLink:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


@dataclass(frozen=True)
class LinkEvent:
    """Link state for the consumer and the health display."""

    state: str
    """'disconnected', 'reconnected' or 'stalled' (streaming, but no samples arrive)."""
    detail: str
    """Why, in words."""


Event = Samples | Gap | LinkEvent


MAX_UNREAD_REPLIES = 16
"""Command replies kept until a request reads them; older ones are dropped (a request
waits for one reply at a time: a hostile or broken device cannot fill memory with them)."""


def _coalesce(events: list[Samples | Gap]) -> list[Samples | Gap]:
    """Runs of Samples that continue each other with the same flags, as one Samples."""
    out: list[Samples | Gap] = []
    run: list[Samples] = []

    def close() -> None:
        if run:
            out.append(run[0] if len(run) == 1 else replace(
                run[0], values=np.concatenate([r.values for r in run])))
            run.clear()

    for ev in events:
        if not (isinstance(ev, Samples) and run and ev.flags == run[0].flags
                and ev.index == run[-1].index + run[-1].values.size):
            close()
        if isinstance(ev, Samples):
            run.append(ev)
        else:
            out.append(ev)
    close()
    return out


class FrontEndClient:
    """Commands and a sample stream over a :class:`SerialLink`."""

    def __init__(self, link: SerialLink, *, reconnect: bool = True,
                 backoff_initial_s: float = 0.05, backoff_max_s: float = 2.0,
                 give_up_after_s: float | None = 30.0, stall_s: float = 2.0) -> None:
        self.link = link
        self.stall_s = stall_s
        """Streaming with no samples for this long is reported (a hung device, noise)."""
        self.device: InfoReply | None = None
        """Who answered at START; a reconnect must find the same device."""
        self.reconnect = reconnect
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.give_up_after_s = give_up_after_s
        self.decoder = FrameDecoder()
        self.assembler = SampleAssembler()
        self.reconnects = 0
        self.protocol_errors = 0
        self._seq = 0
        # replies nobody waits for (a device that chatters while streaming) stay bounded
        self._replies: deque[Frame] = deque(maxlen=MAX_UNREAD_REPLIES)
        self._pending: deque[Event] = deque()
        self._streaming = False
        self._down: str | None = None  # the link went down outside events(): why

    @property
    def stats(self) -> DecoderStats:
        return self.decoder.stats

    # ---- commands -------------------------------------------------------------------
    def _send(self, ftype: FrameType, payload: bytes = b"") -> None:
        self.link.write(encode_frame(ftype, self._seq, payload))
        self._seq = (self._seq + 1) & 0xFFFF

    def _pump(self) -> None:
        """Read once; route replies aside and turn samples into pending events (the frames
        of one read that continue each other with the same flags as one block: one event
        per read, not per 10 ms frame, when the host is catching up)."""
        new: list[Samples | Gap] = []
        for frame in self.decoder.feed(self.link.read()):
            if frame.type == FrameType.SAMPLES:
                try:
                    new += self.assembler.push(frame)
                except ProtocolError as exc:  # CRC was fine: a firmware bug, not noise
                    self.protocol_errors += 1
                    if self.protocol_errors in (1, 10, 100) or self.protocol_errors % 1000 == 0:
                        log.warning("bad SAMPLES payload (%d so far; their samples count as "
                                    "lost): %s", self.protocol_errors, exc)
            else:
                self._replies.append(frame)
        self._pending.extend(_coalesce(new))

    def request(self, ftype: FrameType, reply_type: FrameType, payload: bytes = b"",
                timeout_s: float = 1.0, retries: int = 2) -> Frame:
        """Send a command and wait for its reply (retried: a reply can be corrupted)."""
        for _ in range(retries + 1):
            self._send(ftype, payload)
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline:
                while self._replies:
                    frame = self._replies.popleft()
                    if frame.type == reply_type and (
                        reply_type != FrameType.ACK or frame.payload[:1] == bytes([ftype])
                    ):
                        return frame
                self._pump()
        raise DeviceError(f"{self.link.port}: no {reply_type.name} reply to "
                          f"{ftype.name} within {timeout_s:g} s ({retries + 1} tries)")

    def info(self, timeout_s: float = 1.0) -> InfoReply:
        frame = self.request(FrameType.INFO, FrameType.INFO_REPLY, timeout_s=timeout_s)
        try:
            return decode_info(frame.payload)
        except ProtocolError as exc:
            raise DeviceError(f"{self.link.port}: bad INFO_REPLY: {exc}") from None

    def ping(self, payload: bytes = b"nemg", timeout_s: float = 1.0) -> float:
        """Round-trip seconds."""
        t0 = time.monotonic()
        frame = self.request(FrameType.PING, FrameType.PONG, payload, timeout_s=timeout_s)
        if frame.payload != payload:
            raise DeviceError(f"{self.link.port}: PONG payload does not match")
        return time.monotonic() - t0

    def start(self) -> None:
        """Start streaming. A reconnecting client that loses the link during START (the
        cable pulled at that moment) does not fail: :meth:`events` reconnects and starts
        again, and the consumer sees the loss as a gap."""
        self._streaming = True
        try:
            if self.device is None:
                self.device = self.info()
            self._ack(FrameType.START)
        except LinkDown as exc:
            if not self.reconnect:
                self._streaming = False
                raise
            self._down = str(exc)

    def stop(self) -> None:
        self._streaming = False
        self._ack(FrameType.STOP)

    def _ack(self, ftype: FrameType) -> None:
        frame = self.request(ftype, FrameType.ACK, timeout_s=1.0)
        status = frame.payload[1] if len(frame.payload) > 1 else 255
        if status != 0:
            raise DeviceError(f"{self.link.port}: {ftype.name} refused (status {status})")

    # ---- streaming ------------------------------------------------------------------
    def events(self, duration_s: float | None = None,
               idle_s: float = 0.1) -> Iterator[Event | None]:
        """Samples and gaps as they arrive, reconnecting on unplug (if enabled).

        While no data arrives it yields ``None`` every ``idle_s`` seconds, so a caller can
        check its own deadlines and stop conditions on a silent link. Returns after
        ``duration_s`` (if given). Raises :class:`LinkDown` when reconnecting is off or
        gave up.
        """
        end = None if duration_s is None else time.monotonic() + duration_s
        last_yield = last_samples = time.monotonic()
        while end is None or time.monotonic() < end:
            while self._pending:
                ev = self._pending.popleft()
                yield ev
                last_yield = time.monotonic()
                if isinstance(ev, Samples):
                    last_samples = last_yield
            now = time.monotonic()
            if self._streaming and now - last_samples >= self.stall_s:
                yield LinkEvent("stalled", self._stall_report(now - last_samples))
                last_samples = now
            if now - last_yield >= idle_s:
                yield None
                last_yield = time.monotonic()
            try:
                if self._down is not None:
                    raise LinkDown(self._down)
                self._pump()
            except LinkDown as exc:
                if not self.reconnect:
                    raise
                self._down = None
                yield LinkEvent("disconnected", str(exc))
                self._reconnect(str(exc))
                yield LinkEvent("reconnected", f"{self.link.port} (attempt {self.reconnects})")
        while self._pending:
            yield self._pending.popleft()

    def _stall_report(self, seconds: float) -> str:
        st = self.stats
        return (f"{self.link.port}: no samples for {seconds:.1f} s while streaming "
                f"({st.bytes_in} bytes in so far, {st.bytes_skipped} skipped as noise, "
                f"{st.crc_errors} CRC errors, {self.protocol_errors} bad payloads)")

    def _reconnect(self, why: str) -> None:
        delay = self.backoff_initial_s
        t0 = time.monotonic()
        while True:
            time.sleep(delay)
            try:
                self.link.open()
                self.decoder.reset()  # bytes of the dead stream must not join the new one
                self._replies.clear()
                self._check_same_device()
                self.assembler.mark_restart("reconnect")
                if self._streaming:
                    self.start()
                self.reconnects += 1
                log.info("reconnected to %s after %.2f s", self.link.port,
                         time.monotonic() - t0)
                return
            except WrongDevice:
                self.link.close()
                raise
            except DeviceError as exc:
                self.link.close()
                if self.give_up_after_s is not None and \
                        time.monotonic() - t0 > self.give_up_after_s:
                    raise LinkDown(f"{self.link.port}: gone for {self.give_up_after_s:g} s "
                                   f"({why}; last: {exc})") from None
                delay = min(delay * 2, self.backoff_max_s)

    def _check_same_device(self) -> None:
        if self.device is None:
            return
        now = self.info()
        if _identity(now) != _identity(self.device):
            raise WrongDevice(f"{self.link.port}: after reconnecting, another device answers "
                              f"(was {self.device.board_id} #{self.device.device_id} at "
                              f"{self.device.sample_rate_hz} Hz, now {now.board_id} "
                              f"#{now.device_id} at {now.sample_rate_hz} Hz): not streaming "
                              "from it")

    def close(self) -> None:
        if self._streaming:
            with contextlib.suppress(DeviceError):
                self.stop()
        self.link.close()
