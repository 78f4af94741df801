"""WFDB records (PhysioNet's ``.hea`` header + ``.dat`` signal file), numpy only.

What the box needs of the format (PhysioNet, "WFDB header format" and "signal format"
pages): one ``.dat`` per record holding its signals interleaved frame by frame, in format
16 (int16 little-endian), 61 (int16 big-endian), 80 (8-bit offset by 128) or 212 (two
12-bit samples in three bytes); ``gain(baseline)/units`` per signal; a physical value is
``(digital − baseline) / gain``, as the ``wfdb`` package computes it. Header lines may end
in CR (EMGlab's do). Signals spread over several files, skews and byte offsets are refused
with a clear error rather than misread.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import InputError
from edge.fileio import open_regular, read_regular_file
from edge.readers.recording import READ_SAMPLES, SignalReader, pick_channel, unit_to_uv

FORMATS = {"16": 2, "61": 2, "80": 1, "212": 1.5}
"""format -> bytes per sample."""
MAX_HEADER_BYTES = 1 << 20
_GAIN = re.compile(r"^([-+0-9.eE]+)(?:\(([-+0-9]+)\))?(?:/(\S+))?$")


@dataclass(frozen=True)
class WfdbSignal:
    file: str
    fmt: str
    gain: float
    baseline: int
    units: str
    name: str


@dataclass(frozen=True)
class WfdbHeader:
    rate_hz: float
    samples: int | None
    signals: list[WfdbSignal]


def read_header(path: Path) -> WfdbHeader:
    text = read_regular_file(path, MAX_HEADER_BYTES, "WFDB header").decode("ascii", "replace")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise InputError(f"{path}: empty WFDB header")
    rec = lines[0].split()
    if len(rec) < 2:
        raise InputError(f"{path}: not a WFDB record line: {lines[0][:60]!r}")
    try:
        nsig = int(rec[1])
        rate = float(rec[2].split("/")[0]) if len(rec) > 2 else 250.0  # the format's default
        samples = int(rec[3]) if len(rec) > 3 else None
    except ValueError:
        raise InputError(f"{path}: bad record line {lines[0][:60]!r}") from None
    if rec[0].count("/"):
        raise InputError(f"{path}: multi-segment records are not supported")
    signals = []
    for n, line in enumerate(lines[1 : 1 + nsig], 2):
        f = line.split()
        if len(f) < 2:
            raise InputError(f"{path}: line {n}: signal line needs a file and a format")
        fmt = f[1].split("x")[0].split(":")[0].split("+")[0]
        if fmt not in FORMATS or any(c in f[1] for c in "x:+"):
            raise InputError(f"{path}: line {n}: WFDB format {f[1]!r} is not supported "
                             f"(supported: {', '.join(FORMATS)})")
        gain, baseline, units = 200.0, 0, "mV"  # the format's defaults
        if len(f) > 2:
            m = _GAIN.match(f[2])
            if not m:
                raise InputError(f"{path}: line {n}: bad gain {f[2]!r}")
            gain = float(m.group(1)) or 200.0  # a gain of 0 means "uncalibrated: 200"
            baseline = int(m.group(2)) if m.group(2) else _adc_zero(f)
            units = m.group(3) or "mV"
        signals.append(WfdbSignal(f[0], fmt, gain, baseline, units,
                                  " ".join(f[8:]) if len(f) > 8 else str(n - 2)))
    if len(signals) != nsig or nsig == 0:
        raise InputError(f"{path}: header announces {nsig} signal(s), describes {len(signals)}")
    if len({s.file for s in signals}) != 1 or len({s.fmt for s in signals}) != 1:
        raise InputError(f"{path}: signals in several files or formats are not supported")
    return WfdbHeader(rate, samples, signals)


def _adc_zero(fields: list[str]) -> int:
    try:
        return int(fields[4]) if len(fields) > 4 else 0  # baseline defaults to ADC zero
    except ValueError:
        return 0


class WfdbReader(SignalReader):
    """One signal of a WFDB record (``channel``: its index or name), its ``.dat`` read a
    piece at a time. The samples the header announces are checked against the signal
    file's size before anything is read."""

    def __init__(self, path: Path, channel: int | str = 0) -> None:
        path = path.with_suffix(".hea")
        h = read_header(path)
        names = [sig.name for sig in h.signals]
        i = pick_channel(path, len(names), channel, names)
        s = h.signals[i]
        self.header, self.index, self.dat = h, i, path.with_name(s.file)
        fd = open_regular(self.dat)
        try:
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        n = len(h.signals)
        frames = (size // 3 * 2 if s.fmt == "212" else size // int(FORMATS[s.fmt])) // n
        if h.samples is not None and frames < h.samples:
            raise InputError(f"{path}: truncated ({frames} of {h.samples} samples)")
        super().__init__(path, h.rate_hz, frames if h.samples is None else h.samples,
                         unit=s.units, unit_uv=unit_to_uv(path, s.units), scale_known=True,
                         channel=names[i])

    def unit_blocks(self) -> Iterator[np.ndarray]:
        s, n = self.header.signals[self.index], len(self.header.signals)
        # whole frames per read (pairs of them in format 212: 3 bytes hold 2 samples)
        step = max(2, READ_SAMPLES // n // 2 * 2)
        fd = open_regular(self.dat)
        try:
            for f0 in range(0, self.frames, step):
                k = min(step, self.frames - f0)
                want = _bytes(k * n, s.fmt)
                raw = os.pread(fd, want, _bytes(f0 * n, s.fmt))
                if len(raw) < want:
                    raise InputError(f"{self.dat}: truncated while reading (the file shrank?)")
                d = _digital(raw, s.fmt)[: k * n].reshape(k, n)[:, self.index]
                yield (d - s.baseline) / s.gain
        finally:
            os.close(fd)


def _bytes(samples: int, fmt: str) -> int:
    """Bytes that hold ``samples`` samples (format 212: whole 3-byte pairs)."""
    return -(-samples // 2) * 3 if fmt == "212" else samples * int(FORMATS[fmt])


def _digital(raw: bytes, fmt: str) -> np.ndarray:
    """The samples of ``raw`` in format ``fmt``, as int64."""
    if fmt == "16":
        return np.frombuffer(raw[: len(raw) // 2 * 2], "<i2").astype(np.int64)
    if fmt == "61":
        return np.frombuffer(raw[: len(raw) // 2 * 2], ">i2").astype(np.int64)
    if fmt == "80":
        return np.frombuffer(raw, np.uint8).astype(np.int64) - 128
    # 212: byte 0 = low 8 bits of a, byte 1 = high 4 of b | high 4 of a, byte 2 = b
    b = np.frombuffer(raw[: len(raw) // 3 * 3], np.uint8).astype(np.int64).reshape(-1, 3)
    a = b[:, 0] | ((b[:, 1] & 0x0F) << 8)
    c = b[:, 2] | ((b[:, 1] & 0xF0) << 4)
    d = np.stack([a, c], axis=1).reshape(-1)
    return np.where(d >= 2048, d - 4096, d)
