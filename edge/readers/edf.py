"""EDF, EDF+ and BDF files, numpy only (Kemp et al. 1992; EDF+ 2003; BioSemi's 24-bit BDF).

A 256-byte ASCII header, 256 more per signal, then data records: each holds every
signal's samples for ``record duration`` seconds (int16 little-endian; BDF: int24).
A physical value is computed as edflib (and so pyedflib) computes it:
``bitvalue · (offset + digital)`` with ``bitvalue = (pmax − pmin) / (dmax − dmin)`` and
``offset = pmax / bitvalue − dmax``. EDF+ annotations (the ``EDF Annotations`` signal's
time-stamped annotation lists) give the labels. The header is bounded and checked against
the file's size before any data is read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import InputError
from edge.fileio import open_regular

ANNOTATIONS = ("EDF Annotations", "BDF Annotations")
"""The labels of the annotation signal (BDF+ names it after itself)."""
MAX_SIGNALS = 512


@dataclass(frozen=True)
class EdfSignal:
    label: str
    unit: str
    pmin: float
    pmax: float
    dmin: int
    dmax: int
    per_record: int


@dataclass(frozen=True)
class EdfHeader:
    bdf: bool
    header_bytes: int
    records: int
    record_s: float
    signals: list[EdfSignal]

    @property
    def sample_bytes(self) -> int:
        return 3 if self.bdf else 2

    @property
    def record_bytes(self) -> int:
        return sum(s.per_record for s in self.signals) * self.sample_bytes

    def rate_hz(self, i: int) -> float:
        return self.signals[i].per_record / self.record_s

    @property
    def data_signals(self) -> list[int]:
        return [i for i, s in enumerate(self.signals) if s.label not in ANNOTATIONS]


def _fields(raw: bytes, at: int, width: int, n: int) -> list[str]:
    return [raw[at + k * width : at + (k + 1) * width].decode("latin-1").strip()
            for k in range(n)]


def read_header(path: Path, fd: int) -> EdfHeader:
    size = os.fstat(fd).st_size
    head = os.pread(fd, 256, 0)
    if len(head) < 256:
        raise InputError(f"{path}: not an EDF/BDF file (shorter than its header)")
    bdf = head[:8] == b"\xffBIOSEMI"
    if not bdf and head[:8] != b"0       ":
        raise InputError(f"{path}: not an EDF/BDF file (version field {head[:8]!r})")
    try:
        header_bytes = int(head[184:192])
        records = int(head[236:244])
        record_s = float(head[244:252])
        ns = int(head[252:256])
    except ValueError:
        raise InputError(f"{path}: damaged EDF header (a number field is not a number)") \
            from None
    if not 0 < ns <= MAX_SIGNALS or header_bytes != 256 * (ns + 1) or not record_s > 0:
        raise InputError(f"{path}: damaged EDF header ({ns} signals, {header_bytes} header "
                         f"bytes, {record_s} s records)")
    raw = os.pread(fd, 256 * ns, 256)
    if len(raw) < 256 * ns:
        raise InputError(f"{path}: truncated in its signal headers")
    at = 0
    cols = {}
    for name, width in (("label", 16), ("transducer", 80), ("unit", 8), ("pmin", 8),
                        ("pmax", 8), ("dmin", 8), ("dmax", 8), ("prefilter", 80),
                        ("per_record", 8), ("reserved", 32)):
        cols[name] = _fields(raw, at, width, ns)
        at += width * ns
    try:
        signals = [EdfSignal(cols["label"][i], cols["unit"][i], float(cols["pmin"][i]),
                             float(cols["pmax"][i]), int(cols["dmin"][i]),
                             int(cols["dmax"][i]), int(cols["per_record"][i]))
                   for i in range(ns)]
    except ValueError:
        raise InputError(f"{path}: damaged EDF signal header") from None
    if any(s.per_record < 1 or s.dmax <= s.dmin for s in signals):
        raise InputError(f"{path}: damaged EDF signal header (samples per record or digital "
                         "range)")
    h = EdfHeader(bdf, header_bytes, records, record_s, signals)
    have = (size - header_bytes) // h.record_bytes
    if records < 0:  # "-1": unknown while recording
        h = EdfHeader(bdf, header_bytes, have, record_s, signals)
    elif have < records:
        raise InputError(f"{path}: truncated ({have} of {records} data records)")
    return h


def _records(fd: int, h: EdfHeader) -> np.ndarray:
    """All data records as [records, samples-per-record-of-all-signals] integers."""
    raw = os.pread(fd, h.records * h.record_bytes, h.header_bytes)
    if h.bdf:
        b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
        v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
        d = np.where(v >= 1 << 23, v - (1 << 24), v)
    else:
        d = np.frombuffer(raw, "<i2").astype(np.int32)
    return d.reshape(h.records, -1)


def read_edf(path: Path, channel: int) -> tuple[np.ndarray, EdfHeader,
                                                list[tuple[float, float, str]]]:
    """(physical values of data signal ``channel``, the header, the annotations)."""
    fd = open_regular(path)
    try:
        h = read_header(path, fd)
        data = _records(fd, h)
    finally:
        os.close(fd)
    offsets = np.cumsum([0] + [s.per_record for s in h.signals])
    i = h.data_signals[channel]
    s = h.signals[i]
    d = data[:, offsets[i] : offsets[i + 1]].reshape(-1).astype(np.float64)
    bitvalue = (s.pmax - s.pmin) / (s.dmax - s.dmin)
    offset = s.pmax / bitvalue - s.dmax
    annotations = []
    for j in (k for k, sig in enumerate(h.signals) if sig.label in ANNOTATIONS):
        block = data[:, offsets[j] : offsets[j + 1]]
        raw = block.astype("<i2").tobytes() if not h.bdf else \
            np.stack([block & 0xFF, (block >> 8) & 0xFF, (block >> 16) & 0xFF], -1) \
            .astype(np.uint8).tobytes()
        annotations += _annotations(raw)
    return bitvalue * (offset + d), h, annotations


def _annotations(raw: bytes) -> list[tuple[float, float, str]]:
    """Time-stamped annotation lists: ``+onset[\\x15duration]\\x14text\\x14...\\x00``."""
    out = []
    for tal in raw.split(b"\x00"):
        if not tal.strip(b"\x00"):
            continue
        parts = tal.split(b"\x14")
        timing = parts[0].split(b"\x15")
        try:
            onset = float(timing[0])
            duration = float(timing[1]) if len(timing) > 1 and timing[1] else -1.0
        except ValueError:
            continue
        for text in parts[1:]:
            t = text.decode("utf-8", "replace").strip()
            if t:
                out.append((onset, duration, t))
    return out
