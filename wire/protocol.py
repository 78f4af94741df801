"""The nemg front-end wire protocol: framing, encoding, decoding. Pure — no I/O.

Bytes in, frames and events out. The serial link (``wire.link``) and the virtual
front end (``wire.virtual``) are the only places that touch a port. The
specification a firmware engineer implements is docs/protocol.md; this module is its
reference implementation.

Frame (all integers little-endian)::

    0  2  sync        0xA5 0x5A
    2  1  version     1
    3  1  type        FrameType
    4  2  seq         uint16, per direction, +1 per frame, wraps
    6  2  length      payload bytes, <= MAX_PAYLOAD
    8  1  hcrc        CRC-8 (poly 0x07, init 0) over bytes 2..7
    9  L  payload
    9+L 4 crc32       CRC-32/ISO-HDLC (zlib.crc32) over bytes 2 .. 9+L-1 (version..payload)

The header CRC rejects a corrupted length at once, instead of waiting for up to 4 KB of
bytes that belong to the next frames. Any failure rescans from the byte after the failed
sync marker, never from after the claimed frame, so a truncated frame cannot swallow the
good frames behind it (BrainFlow's classic bug, see docs/protocol.md).
"""

from __future__ import annotations

import enum
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

SYNC = b"\xa5\x5a"
VERSION = 1
HEADER = struct.Struct("<2sBBHHB")  # sync, version, type, seq, length, header CRC-8
CRC = struct.Struct("<I")
MAX_PAYLOAD = 4096
OVERHEAD = HEADER.size + CRC.size  # 13 bytes


def _crc8_table() -> bytes:
    table = bytearray(256)
    for i in range(256):
        c = i
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table[i] = c
    return bytes(table)


_CRC8 = _crc8_table()


def crc8(data: bytes) -> int:
    """CRC-8/SMBUS (poly 0x07, init 0, no reflection): 'check' of b'123456789' is 0xF4."""
    c = 0
    for b in data:
        c = _CRC8[c ^ b]
    return c

SAMPLES_HEADER = struct.Struct("<IBBH")  # first sample index, flags, bytes/sample, count
INFO = struct.Struct("<IBBBBIIBB")  # see InfoReply


class FrameType(enum.IntEnum):
    """What a frame carries. Device→host types have the top bit set."""

    PING = 0x01
    """host→device; payload: any bytes (≤ 64), echoed in PONG."""
    INFO = 0x02
    """host→device; no payload; answered by INFO_REPLY."""
    START = 0x03
    """host→device; no payload; starts streaming SAMPLES; answered by ACK."""
    STOP = 0x04
    """host→device; no payload; stops streaming; answered by ACK."""
    PONG = 0x81
    """device→host; the PING payload."""
    INFO_REPLY = 0x82
    """device→host; an :class:`InfoReply`."""
    ACK = 0x83
    """device→host; payload: command type (u8), status (u8, 0 = ok)."""
    SAMPLES = 0x90
    """device→host; a :class:`SampleBlock`."""


class Flag(enum.IntFlag):
    """Status bits of a SAMPLES frame (apply to every sample in it)."""

    NONE = 0
    CLIPPING = 0x01
    """at least one sample hit the ADC's rails"""
    ELECTRODE_OFF = 0x02
    """lead-off detection fired: the signal is not from tissue"""
    OVERRUN = 0x04
    """the device's buffer overflowed before this frame (its sample index jumps)"""


@dataclass(frozen=True)
class Frame:
    """One decoded frame."""

    type: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class SampleBlock:
    """Payload of a SAMPLES frame."""

    first_index: int
    """Index of the first sample since the device started streaming (uint32, wraps)."""

    flags: Flag
    """Status bits."""

    samples: np.ndarray
    """int32 values (16- or 24-bit signed on the wire)."""

    bytes_per_sample: int = 2
    """2 (int16) or 3 (int24)."""


@dataclass(frozen=True)
class InfoReply:
    """What a device says about itself."""

    device_id: int
    """Serial number (uint32)."""
    firmware: tuple[int, int, int]
    """Firmware version (major, minor, patch)."""
    adc_bits: int
    """Bits per sample on the wire: 16 or 24."""
    sample_rate_hz: int
    """Samples per second."""
    nv_per_lsb: int
    """Nanovolts per LSB (integer, so no float crosses the wire)."""
    channels: int
    """Channels (this protocol version streams channel 0 only)."""
    board_id: str
    """Board profile name, e.g. 'nemg-fe1' (ASCII, ≤ 32 bytes)."""

    @property
    def uv_per_lsb(self) -> float:
        return self.nv_per_lsb / 1000.0


class ProtocolError(ValueError):
    """A payload that does not follow the spec (the frame's CRC was fine)."""


# ---- encoding --------------------------------------------------------------------------
def encode_frame(ftype: int, seq: int, payload: bytes = b"") -> bytes:
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload {len(payload)} bytes > {MAX_PAYLOAD}")
    head = struct.pack("<BBHH", VERSION, ftype, seq & 0xFFFF, len(payload))
    body = head + bytes([crc8(head)]) + payload
    return SYNC + body + CRC.pack(zlib.crc32(body))


def encode_samples(first_index: int, samples: np.ndarray, flags: int = 0,
                   bytes_per_sample: int = 2) -> bytes:
    """SAMPLES payload."""
    s = np.asarray(samples)
    if bytes_per_sample == 2:
        data = s.astype("<i2").tobytes()
    elif bytes_per_sample == 3:
        v = s.astype("<i4")
        data = v.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        raise ProtocolError(f"bytes_per_sample must be 2 or 3 (got {bytes_per_sample})")
    return SAMPLES_HEADER.pack(first_index & 0xFFFFFFFF, flags, bytes_per_sample, s.size) + data


def max_samples_per_frame(bytes_per_sample: int) -> int:
    return (MAX_PAYLOAD - SAMPLES_HEADER.size) // bytes_per_sample


def encode_info(info: InfoReply) -> bytes:
    board = info.board_id.encode("ascii")
    if len(board) > 32:
        raise ProtocolError("board_id longer than 32 bytes")
    return INFO.pack(info.device_id, *info.firmware, info.adc_bits, info.sample_rate_hz,
                     info.nv_per_lsb, info.channels, len(board)) + board


def encode_ack(command: int, status: int = 0) -> bytes:
    return bytes([command, status])


# ---- payload decoding -------------------------------------------------------------------
def decode_samples(payload: bytes) -> SampleBlock:
    if len(payload) < SAMPLES_HEADER.size:
        raise ProtocolError("SAMPLES payload shorter than its header")
    first, flags, bps, count = SAMPLES_HEADER.unpack_from(payload)
    if bps not in (2, 3):
        raise ProtocolError(f"SAMPLES with {bps} bytes per sample")
    data = payload[SAMPLES_HEADER.size :]
    if len(data) != count * bps:
        raise ProtocolError(f"SAMPLES count {count} does not match {len(data)} data bytes")
    if bps == 2:
        values = np.frombuffer(data, dtype="<i2").astype(np.int32)
    else:  # 24-bit little-endian: in the top three bytes of an int32, shifted down with
        # its sign (an arithmetic shift), the value itself
        v = np.zeros((count, 4), np.uint8)
        v[:, 1:] = np.frombuffer(data, dtype=np.uint8).reshape(count, 3)
        values = v.view("<i4").reshape(count) >> 8
    return SampleBlock(first, Flag(flags & 0x07), values, bps)


def decode_info(payload: bytes) -> InfoReply:
    if len(payload) < INFO.size:
        raise ProtocolError("INFO_REPLY payload too short")
    dev, ma, mi, pa, bits, rate, nv, ch, blen = INFO.unpack_from(payload)
    board = payload[INFO.size : INFO.size + blen]
    if len(board) != blen:
        raise ProtocolError("INFO_REPLY board id truncated")
    try:
        name = board.decode("ascii")
    except UnicodeDecodeError:
        raise ProtocolError("INFO_REPLY board id is not ASCII") from None
    return InfoReply(dev, (ma, mi, pa), bits, rate, nv, ch, name)


# ---- the stream decoder ------------------------------------------------------------------
@dataclass
class DecoderStats:
    """Counters a link-health display shows."""

    frames: int = 0
    """Frames whose CRC matched."""
    crc_errors: int = 0
    """Candidate frames (valid header) whose CRC failed."""
    bad_headers: int = 0
    """Sync markers followed by a header that fails its CRC-8 or is impossible."""
    resyncs: int = 0
    """Times bytes were skipped to find the next sync marker."""
    bytes_skipped: int = 0
    """Bytes thrown away while hunting for sync."""
    bytes_in: int = 0
    """Bytes fed."""
    seq_gaps: int = 0
    """Times the sequence number jumped (frames lost between two good ones)."""
    frames_lost: int = 0
    """Frames missing according to the sequence numbers."""


@dataclass
class FrameDecoder:
    """Incremental frame decoder: ``feed(bytes)`` returns the complete, CRC-valid frames.

    Never raises on any input (fuzz-tested). Bytes of an incomplete frame wait for the
    next ``feed``. On any failure the scan restarts at the byte after the failed sync.
    """

    max_payload: int = MAX_PAYLOAD
    stats: DecoderStats = field(default_factory=DecoderStats)
    _buf: bytearray = field(default_factory=bytearray, repr=False)
    _hunting: bool = field(default=False, repr=False)
    _last_seq: int | None = field(default=None, repr=False)

    def feed(self, data: bytes) -> list[Frame]:
        self.stats.bytes_in += len(data)
        self._buf += data
        return list(self._drain())

    def reset(self) -> None:
        """Forget buffered bytes (after a reconnect: old bytes belong to a dead stream)."""
        self._buf.clear()
        self._hunting = False
        self._last_seq = None

    def _skip(self, n: int) -> None:
        if n <= 0:
            return
        if not self._hunting:
            self.stats.resyncs += 1
            self._hunting = True
        self.stats.bytes_skipped += n
        del self._buf[:n]

    def _drain(self) -> Iterator[Frame]:
        buf = self._buf
        while True:
            i = buf.find(SYNC)
            if i < 0:
                # keep a trailing 0xA5: it may be the first half of the next sync
                self._skip(len(buf) - (1 if buf.endswith(SYNC[:1]) else 0))
                return
            self._skip(i)
            if len(buf) < HEADER.size:
                return
            _, version, ftype, seq, length, hcrc = HEADER.unpack_from(buf)
            if crc8(memoryview(buf)[2:8]) != hcrc or version != VERSION \
                    or length > self.max_payload:
                self.stats.bad_headers += 1
                self._skip(1)
                continue
            end = HEADER.size + length
            if len(buf) < end + CRC.size:
                return
            (crc,) = CRC.unpack_from(buf, end)
            if zlib.crc32(memoryview(buf)[2:end]) != crc:
                self.stats.crc_errors += 1
                self._skip(1)  # rescan from the byte after this sync
                continue
            frame = Frame(ftype, seq, bytes(buf[HEADER.size : end]))
            del buf[: end + CRC.size]
            self._hunting = False
            self.stats.frames += 1
            if self._last_seq is not None:
                missing = (seq - self._last_seq - 1) & 0xFFFF
                if missing:
                    self.stats.seq_gaps += 1
                    self.stats.frames_lost += missing
            self._last_seq = seq
            yield frame


# ---- samples and gaps ---------------------------------------------------------------------
@dataclass(frozen=True)
class Samples:
    """Contiguous samples: ``index`` is the host's stream index of ``values[0]``."""

    index: int
    """Host stream index (advances over losses, so it is a true time axis)."""
    values: np.ndarray
    """int32 ADC values."""
    flags: Flag
    """Status bits of the frame."""
    device_index: int = 0
    """The device's own index of values[0] (uint32), for logs and verification."""


@dataclass(frozen=True)
class Gap:
    """Samples that were lost. ``lost`` is exact when the device's counter continued, or
    None when the stream restarted (device reset or reconnect) and the loss is unknown."""

    index: int
    """Stream index of the first lost sample (the host's count)."""
    lost: int | None
    """How many samples are missing, or None if unknown."""
    reason: str
    """'sequence gap', 'reconnect', 'stream restart', 'device overrun'."""


@dataclass
class SampleAssembler:
    """SAMPLES frames -> :class:`Samples` and explicit :class:`Gap` events.

    The host's stream index (``next_index``) advances by samples delivered plus samples
    lost, so a consumer's time axis stays true across losses. 32-bit device indices wrap.
    """

    next_index: int = 0
    """Host stream index of the next expected sample."""
    max_gap: int = 1 << 20
    """Largest jump of the device index taken as an exact loss while frames keep coming
    (52 s at 20 kHz; after a reconnect, 64 times that). A larger one is no loss a working
    device can cause: it is reported as a restart of unknown length, not as hours lost."""
    gaps: int = 0
    """Gap events emitted."""
    samples_lost: int = 0
    """Sum of exact losses."""
    _device_next: int | None = None
    _restart_pending: str | None = None

    def mark_restart(self, reason: str = "reconnect") -> None:
        """The link was re-established: the next block's index decides the gap."""
        self._restart_pending = reason

    def push(self, frame: Frame) -> list[Samples | Gap]:
        if frame.type != FrameType.SAMPLES:
            return []
        block = decode_samples(frame.payload)
        out: list[Samples | Gap] = []
        if self._device_next is not None:
            lost = (block.first_index - self._device_next) & 0xFFFFFFFF
            limit = self.max_gap * (64 if self._restart_pending else 1)
            if lost >= 1 << 31:  # index went backwards: the device restarted counting
                out.append(self._gap(None, "stream restart"))
            elif lost > limit:
                out.append(self._gap(None, f"implausible index jump of {lost} samples "
                                           "(device reset?)"))
            elif lost:
                reason = ("device overrun" if block.flags & Flag.OVERRUN
                          else self._restart_pending or "sequence gap")
                out.append(self._gap(lost, reason))
        self._restart_pending = None
        self._device_next = (block.first_index + block.samples.size) & 0xFFFFFFFF
        out.append(Samples(self.next_index, block.samples, block.flags, block.first_index))
        self.next_index += block.samples.size
        return out

    def _gap(self, lost: int | None, reason: str) -> Gap:
        g = Gap(self.next_index, lost, reason)
        self.gaps += 1
        if lost is not None:
            self.samples_lost += lost
            self.next_index += lost
        return g
