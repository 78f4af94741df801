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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.errors import InputError
from edge.fileio import open_regular
from edge.labels import check_label
from edge.readers.recording import READ_SAMPLES, SignalReader, pick_channel, unit_to_uv

ANNOTATIONS = ("EDF Annotations", "BDF Annotations")
"""The labels of the annotation signal (BDF+ names it after itself)."""
MAX_SIGNALS = 512
READ_BYTES = READ_SAMPLES * 2
"""Bytes read at a time."""
MAX_TAL_BYTES = 1 << 20
"""An annotation list longer than this is not one (bounded memory)."""


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


class EdfReader(SignalReader):
    """One data signal of an EDF/BDF file (``channel``: its index among the data signals,
    or its label), read a group of data records at a time; EDF+ annotations whose text is
    a label become spans (read when the file is opened: a bad label is refused then)."""

    def __init__(self, path: Path, channel: int | str = 0) -> None:
        fd = open_regular(path)
        try:
            h = read_header(path, fd)
        finally:
            os.close(fd)
        names = [h.signals[k].label for k in h.data_signals]
        if not names:
            raise InputError(f"{path}: no signals")
        self.path, self.header = path, h
        self.index = h.data_signals[pick_channel(path, len(names), channel, names)]
        s = h.signals[self.index]
        self._bitvalue = (s.pmax - s.pmin) / (s.dmax - s.dmin)
        self._offset = s.pmax / self._bitvalue - s.dmax
        annotations = []
        for j in (k for k, sig in enumerate(h.signals) if sig.label in ANNOTATIONS):
            for onset, dur, label in _annotations(path, self._raw(j)):
                if len(label.split()) > 1:
                    continue  # words (a finding, "Recording starts"): a note, not a label
                check_label(label, f"{path} annotation at {onset:.3f} s")
                annotations.append((float(onset), float(onset + max(dur, 0.0)), label))
        super().__init__(path, h.rate_hz(self.index), h.records * s.per_record, unit=s.unit,
                         unit_uv=unit_to_uv(path, s.unit), scale_known=True, channel=s.label,
                         annotations=annotations)

    def _raw(self, i: int) -> Iterator[bytes]:
        """Signal ``i``'s bytes, record after record, at most :data:`READ_BYTES` at a time:
        several whole records per read where they are small, else pieces of one."""
        h, width = self.header, self.header.sample_bytes
        at = sum(s.per_record for s in h.signals[:i]) * width
        size = h.signals[i].per_record * width
        fd = open_regular(self.path)
        try:
            group = READ_BYTES // h.record_bytes
            if group:
                for r in range(0, h.records, group):
                    n = min(group, h.records - r)
                    raw = _pread(self.path, fd, n * h.record_bytes,
                                 h.header_bytes + r * h.record_bytes)
                    rows = np.frombuffer(raw, np.uint8).reshape(n, h.record_bytes)
                    yield rows[:, at : at + size].tobytes()
            else:
                piece = READ_BYTES // width * width
                for r in range(h.records):
                    base = h.header_bytes + r * h.record_bytes + at
                    for k in range(0, size, piece):
                        yield _pread(self.path, fd, min(piece, size - k), base + k)
        finally:
            os.close(fd)

    def unit_blocks(self) -> Iterator[np.ndarray]:
        for raw in self._raw(self.index):
            if self.header.bdf:
                b = np.frombuffer(raw, np.uint8).reshape(-1, 3).astype(np.int32)
                v = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16)
                d = np.where(v >= 1 << 23, v - (1 << 24), v)
            else:
                d = np.frombuffer(raw, "<i2").astype(np.int32)
            # edflib's physical value, in the header's unit
            yield self._bitvalue * (self._offset + d.astype(np.float64))


def _pread(path: Path, fd: int, n: int, at: int) -> bytes:
    raw = os.pread(fd, n, at)
    if len(raw) < n:
        raise InputError(f"{path}: truncated while reading (the file shrank?)")
    return raw


def _annotations(path: Path, pieces: Iterator[bytes]) -> list[tuple[float, float, str]]:
    """Time-stamped annotation lists: ``+onset[\\x15duration]\\x14text\\x14...\\x00``,
    parsed as the pieces of the annotation signal arrive (a list cut between two pieces
    is joined again)."""
    out: list[tuple[float, float, str]] = []
    carry = b""
    for piece in pieces:
        *tals, carry = (carry + piece).split(b"\x00")
        if len(carry) > MAX_TAL_BYTES:
            raise InputError(f"{path}: an EDF+ annotation longer than {MAX_TAL_BYTES} bytes")
        out += (a for tal in tals for a in _tal(tal))
    return out + _tal(carry)


def _tal(tal: bytes) -> list[tuple[float, float, str]]:
    if not tal.strip(b"\x00"):
        return []
    parts = tal.split(b"\x14")
    timing = parts[0].split(b"\x15")
    try:
        onset = float(timing[0])
        duration = float(timing[1]) if len(timing) > 1 and timing[1] else -1.0
    except ValueError:
        return []
    return [(onset, duration, t) for t in (p.decode("utf-8", "replace").strip()
                                           for p in parts[1:]) if t]
