"""WAV reading and writing without surprises (the stdlib ``wave`` module does not read
float, 24-bit-in-extensible or annotated files, and says little when a file is broken).

Written files are 16-bit PCM mono with the scale recorded in a LIST/INFO/ICMT chunk
(``nemg uv_per_lsb=0.5``), so a file taken out of its corpus still knows its µV.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import InputError

PCM, IEEE_FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
_SCALE_RE = re.compile(rb"uv_per_lsb=([0-9.eE+-]+)")


@dataclass(frozen=True)
class WavData:
    """Raw WAV content."""

    samples: np.ndarray
    """[frames, channels]: int for PCM (8-bit converted to signed), float for IEEE."""
    sample_rate_hz: int
    bits: int
    is_float: bool
    comment: bytes
    """The ICMT text, if any."""

    @property
    def uv_per_lsb(self) -> float | None:
        """The recorded scale, if the file carries one."""
        m = _SCALE_RE.search(self.comment)
        return float(m.group(1)) if m else None


def write_wav(path: Path, samples: np.ndarray, sample_rate_hz: int, uv_per_lsb: float) -> None:
    """int16 mono with the µV/LSB scale in an ICMT chunk."""
    x = np.asarray(samples)
    if x.dtype != np.int16 or x.ndim != 1:
        raise ValueError("write_wav takes a 1-D int16 array")
    comment = f"nemg uv_per_lsb={uv_per_lsb!r}".encode() + b"\0"
    if len(comment) % 2:
        comment += b"\0"
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(comment)) + comment
    fmt = struct.pack("<HHIIHH", PCM, 1, sample_rate_hz, sample_rate_hz * 2, 2, 16)
    data = x.astype("<i2").tobytes()
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"LIST" + struct.pack("<I", len(info)) + info
            + b"data" + struct.pack("<I", len(data)) + data)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def read_wav(path: Path) -> WavData:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if len(raw) < 12 or raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
        raise InputError(f"{path}: not a WAV file (no RIFF/WAVE header)")
    pos, fmt, data, comment = 12, None, None, b""
    while pos + 8 <= len(raw):
        cid, size = raw[pos : pos + 4], struct.unpack_from("<I", raw, pos + 4)[0]
        body = raw[pos + 8 : pos + 8 + size]
        if cid == b"fmt ":
            fmt = body
        elif cid == b"data":
            if len(body) < size:
                raise InputError(f"{path}: truncated: data chunk holds {len(body)} of "
                                 f"{size} bytes")
            data = body
        elif cid == b"LIST" and body[:4] == b"INFO":
            m = body.find(b"ICMT")
            if m >= 0 and m + 8 <= len(body):
                n = struct.unpack_from("<I", body, m + 4)[0]
                comment = body[m + 8 : m + 8 + n].rstrip(b"\0")
        pos += 8 + size + (size & 1)
    if fmt is None or len(fmt) < 16:
        raise InputError(f"{path}: no valid 'fmt ' chunk")
    if data is None:
        raise InputError(f"{path}: no 'data' chunk (truncated?)")
    tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]
    if channels < 1 or rate < 1 or bits not in (8, 16, 24, 32, 64):
        raise InputError(f"{path}: unsupported WAV ({channels} ch, {rate} Hz, {bits} bit)")
    width = bits // 8
    if block != width * channels:
        raise InputError(f"{path}: inconsistent block size {block} for {channels}×{bits} bit")
    usable = len(data) - len(data) % block
    if usable == 0:
        raise InputError(f"{path}: empty (no samples)")
    buf = data[:usable]
    if tag == IEEE_FLOAT and bits in (32, 64):
        x = np.frombuffer(buf, dtype=f"<f{width}").astype(np.float64)
        is_float = True
    elif tag == PCM:
        if bits == 8:
            x = np.frombuffer(buf, dtype=np.uint8).astype(np.int32) - 128
        elif bits == 24:
            b = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
            x = np.where(v >= 1 << 23, v - (1 << 24), v)
        elif bits in (16, 32):
            x = np.frombuffer(buf, dtype=f"<i{width}").astype(np.int64 if bits == 32 else np.int32)
        else:
            raise InputError(f"{path}: {bits}-bit PCM is not supported")
        is_float = False
    else:
        raise InputError(f"{path}: WAV format tag {tag} is not PCM or IEEE float")
    return WavData(x.reshape(-1, channels), rate, bits, is_float, comment)
