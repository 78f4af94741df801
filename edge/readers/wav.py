"""WAV reading and writing without surprises (the stdlib ``wave`` module does not read
float, 24-bit-in-extensible or annotated files, and says little when a file is broken).

Written files are 16-bit PCM mono with the scale recorded in a LIST/INFO/ICMT chunk
(``nemg uv_per_lsb=0.5``), so a file taken out of its corpus still knows its µV.
"""

from __future__ import annotations

import math
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import InputError
from edge.readers.recording import (
    NOMINAL_WAV_FULL_SCALE_UV,
    READ_SAMPLES,
    Recording,
    SignalReader,
    pick_channel,
)

PCM, IEEE_FLOAT, EXTENSIBLE = 1, 3, 0xFFFE
_SCALE_RE = re.compile(rb"uv_per_lsb=([0-9.eE+-]+)")
#: A recorded µV per LSB outside this is not a needle amplifier's (nor a sane file's).
MIN_UV_PER_LSB, MAX_UV_PER_LSB = 1e-6, 1e6
_MAX_HEADER_CHUNK = 1 << 20  # fmt / LIST bodies we read; anything else is skipped


@dataclass(frozen=True)
class WavInfo:
    """A WAV file's header, read without reading its samples (they are read in blocks by
    :func:`read_frames`, so an hours-long file needs no more memory than a block)."""

    path: Path
    sample_rate_hz: int
    bits: int
    is_float: bool
    channels: int
    frames: int
    """Sample frames in the data chunk."""
    data_offset: int
    """Byte offset of the first sample in the file."""
    comment: bytes
    """The ICMT text, if any."""
    uv_per_lsb: float | None
    """The recorded scale, if the file carries one (validated: positive and finite)."""


@dataclass(frozen=True)
class WavData:
    """Raw WAV content."""

    samples: np.ndarray
    """[frames, channels]: int for PCM (8-bit made signed), float for IEEE."""
    sample_rate_hz: int
    bits: int
    is_float: bool
    comment: bytes
    """The ICMT text, if any."""
    uv_per_lsb: float | None = None
    """The recorded scale, if the file carries one."""


def _recorded_scale(path: Path, comment: bytes) -> float | None:
    m = _SCALE_RE.search(comment)
    if not m:
        return None
    try:
        v = float(m.group(1))
    except ValueError:
        v = float("nan")
    if not (math.isfinite(v) and MIN_UV_PER_LSB <= v <= MAX_UV_PER_LSB):
        raise InputError(f"{path}: recorded scale uv_per_lsb={m.group(1).decode(errors='replace')}"
                         f" is not a µV step between {MIN_UV_PER_LSB:g} and {MAX_UV_PER_LSB:g}")
    return v


def wav_header(frames: int, sample_rate_hz: int, uv_per_lsb: float) -> bytes:
    """Everything before the samples of an int16 mono WAV of ``frames`` samples, with the
    µV/LSB scale in an ICMT chunk (write it, then the samples, for a file of any length)."""
    comment = f"nemg uv_per_lsb={uv_per_lsb!r}".encode() + b"\0"
    if len(comment) % 2:
        comment += b"\0"
    info = b"INFO" + b"ICMT" + struct.pack("<I", len(comment)) + comment
    fmt = struct.pack("<HHIIHH", PCM, 1, sample_rate_hz, sample_rate_hz * 2, 2, 16)
    body = (b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
            + b"LIST" + struct.pack("<I", len(info)) + info
            + b"data" + struct.pack("<I", frames * 2))
    return b"RIFF" + struct.pack("<I", len(body) + frames * 2) + body


def wav_bytes(samples: np.ndarray, sample_rate_hz: int, uv_per_lsb: float) -> bytes:
    """A whole WAV file: int16 mono with the µV/LSB scale in an ICMT chunk."""
    x = np.asarray(samples)
    if x.dtype != np.int16 or x.ndim != 1:
        raise ValueError("a WAV is written from a 1-D int16 array")
    return wav_header(x.size, sample_rate_hz, uv_per_lsb) + x.astype("<i2").tobytes()


def write_wav(path: Path, samples: np.ndarray, sample_rate_hz: int, uv_per_lsb: float) -> None:
    """:func:`wav_bytes` as ``path``."""
    path.write_bytes(wav_bytes(samples, sample_rate_hz, uv_per_lsb))


def wav_info(path: Path) -> WavInfo:
    """Parse the header chunks (seeking past the samples)."""
    from edge.fileio import open_regular

    fd = open_regular(path)
    try:
        size = os.fstat(fd).st_size
        head = os.pread(fd, 12, 0)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise InputError(f"{path}: not a WAV file (no RIFF/WAVE header)")
        pos, fmt, data, comment = 12, None, None, b""
        while pos + 8 <= size:
            hdr = os.pread(fd, 8, pos)
            cid, n = hdr[:4], struct.unpack_from("<I", hdr, 4)[0]
            if cid == b"data":
                if pos + 8 + n > size:
                    raise InputError(f"{path}: truncated: data chunk holds "
                                     f"{size - pos - 8} of {n} bytes")
                data = (pos + 8, n)
            elif cid in (b"fmt ", b"LIST") and n <= _MAX_HEADER_CHUNK:
                body = os.pread(fd, n, pos + 8)
                if cid == b"fmt ":
                    fmt = body
                elif body[:4] == b"INFO":
                    m = body.find(b"ICMT")
                    if m >= 0 and m + 8 <= len(body):
                        k = struct.unpack_from("<I", body, m + 4)[0]
                        comment = body[m + 8 : m + 8 + k].rstrip(b"\0")
            pos += 8 + n + (n & 1)
    finally:
        os.close(fd)
    if fmt is None or len(fmt) < 16:
        raise InputError(f"{path}: no valid 'fmt ' chunk")
    if data is None:
        raise InputError(f"{path}: no 'data' chunk (truncated?)")
    tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", fmt)
    if tag == EXTENSIBLE and len(fmt) >= 26:
        tag = struct.unpack_from("<H", fmt, 24)[0]
    if channels < 1 or rate < 1 or bits not in (8, 16, 24, 32, 64):
        raise InputError(f"{path}: unsupported WAV ({channels} ch, {rate} Hz, {bits} bit)")
    if block != bits // 8 * channels:
        raise InputError(f"{path}: inconsistent block size {block} for {channels}×{bits} bit")
    if tag == IEEE_FLOAT and bits in (32, 64):
        is_float = True
    elif tag == PCM and bits != 64:
        is_float = False
    elif tag == PCM:
        raise InputError(f"{path}: {bits}-bit PCM is not supported")
    else:
        raise InputError(f"{path}: WAV format tag {tag} is not PCM or IEEE float")
    frames = data[1] // block
    if frames == 0:
        raise InputError(f"{path}: empty (no samples)")
    return WavInfo(path, rate, bits, is_float, channels, frames, data[0], comment,
                   _recorded_scale(path, comment))


def read_frames(info: WavInfo, start: int, count: int) -> np.ndarray:
    """Frames ``start .. start+count-1`` (fewer at the end) as [frames, channels]: int for
    PCM (8-bit made signed), float64 for IEEE float."""
    count = max(0, min(count, info.frames - start))
    width = info.bits // 8
    block = width * info.channels
    with open(info.path, "rb") as f:
        f.seek(info.data_offset + start * block)
        buf = f.read(count * block)
    if len(buf) < count * block:
        raise InputError(f"{info.path}: truncated while reading (the file shrank?)")
    if info.is_float:
        x = np.frombuffer(buf, dtype=f"<f{width}").astype(np.float64)
    elif info.bits == 8:
        x = np.frombuffer(buf, dtype=np.uint8).astype(np.int32) - 128
    elif info.bits == 24:
        b = np.frombuffer(buf, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        x = np.where(v >= 1 << 23, v - (1 << 24), v)
    else:
        x = np.frombuffer(buf, dtype=f"<i{width}").astype(np.int64 if info.bits == 32
                                                          else np.int32)
    return x.reshape(-1, info.channels)


def read_wav(path: Path) -> WavData:
    """The whole file (for short recordings; long ones are read with :func:`read_frames`)."""
    info = wav_info(path)
    return WavData(read_frames(info, 0, info.frames), info.sample_rate_hz, info.bits,
                   info.is_float, info.comment, info.uv_per_lsb)


def wav_scale(info: WavInfo) -> tuple[float, bool]:
    """(µV per sample unit, whether the file records it)."""
    if info.is_float:  # float WAV: ±1.0 is full scale; unknown gain
        return NOMINAL_WAV_FULL_SCALE_UV, False
    if info.uv_per_lsb is not None:
        return info.uv_per_lsb, True
    return NOMINAL_WAV_FULL_SCALE_UV / (1 << (info.bits - 1)), False


class WavReader(SignalReader):
    """One channel of a WAV, read a block of frames at a time."""

    def __init__(self, path: Path, channel: int | str = 0) -> None:
        info = wav_info(path)
        self.info = info
        self.index = pick_channel(path, info.channels, channel,
                                  [str(i) for i in range(info.channels)])
        scale, known = wav_scale(info)
        super().__init__(path, info.sample_rate_hz, info.frames,
                         unit="float" if info.is_float else "adc", unit_uv=scale,
                         scale_known=known, channel=str(self.index))

    def unit_blocks(self) -> Iterator[np.ndarray]:
        for start in range(0, self.frames, READ_SAMPLES):
            yield read_frames(self.info, start, READ_SAMPLES)[:, self.index].astype(np.float64)


def load_wav(path: Path, channel: int | str = 0) -> Recording:
    """One channel of a WAV, whole, in µV."""
    return WavReader(path, channel).load()
