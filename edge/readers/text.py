"""Recordings as text: a CSV of time and value columns, or ``time value`` lines.

CSV: time in s (first column; ``ms`` in its name: milliseconds) and one or more values
whose header names the unit: ``emg_uV``, ``emg (mV)``, ``signal [V]``. A headerless file of
``time value`` lines (PhysioNet's emgdb examples: mV at 4 kHz) is read in a unit the caller
names, or, met as a ``.csv``, unscaled.

Streamed in two passes: the first checks every row (numbers, increasing time, even steps)
and measures the rate, the median time step, exactly (a step takes few distinct values in a
file written with a fixed number of decimals; past :data:`MAX_STEP_VALUES` of them, the
median of the first :data:`HEAD_STEPS`); the second hands out the values a block at a time.
Lines are bounded (:data:`MAX_LINE_BYTES`): a file of NULs or without newlines is refused
after a line's worth of bytes, whatever its size.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from edge.errors import InputError
from edge.fileio import open_regular
from edge.readers.recording import (
    Recording,
    SignalReader,
    nonfinite_error,
    pick_channel,
    unit_to_uv,
)

MAX_LINE_BYTES = 1 << 16
"""A longer line is not a row of a recording."""
READ_BYTES = 1 << 16
HEAD_STEPS = 1 << 20
"""Time steps kept for the median (8 MiB); a file with fewer has its median exactly."""
MAX_STEP_VALUES = 1 << 16
"""Distinct time steps counted for an exact median of a longer file."""
ROWS = 1 << 12
"""Rows parsed into one array at a time."""

_UNIT_IN_NAME = re.compile(r"[\[(_ ]\s*(uV|µV|μV|mV|nV|V)\s*[\])]?\s*$", re.IGNORECASE)
_BOM = b"\xef\xbb\xbf"


def text_lines(path: Path, strict: bool) -> Iterator[list[str]]:
    """The file's lines (ended by LF, CR or CRLF), decoded (``strict``: as UTF-8, a BOM
    skipped; else as ASCII with anything else replaced), a read's worth at a time: at most
    :data:`READ_BYTES` + :data:`MAX_LINE_BYTES` bytes are held."""
    fd = open_regular(path)
    with open(fd, "rb", closefd=True) as f:
        carry, first = b"", True
        while True:
            try:
                chunk = f.read(READ_BYTES)
            except OSError as exc:
                raise InputError(f"{path}: cannot read ({exc.strerror})") from None
            if first and strict:
                chunk = chunk.removeprefix(_BOM)
            first = False
            buf = carry + chunk
            cut = max(buf.rfind(b"\n"), buf.rfind(b"\r")) + 1 if chunk else len(buf)
            carry = buf[cut:]
            if len(carry) > MAX_LINE_BYTES:
                raise InputError(f"{path}: a line longer than {MAX_LINE_BYTES} bytes: not a "
                                 "text recording")
            if cut:
                try:
                    text = buf[:cut].decode("utf-8" if strict else "ascii",
                                            "strict" if strict else "replace")
                except UnicodeDecodeError as exc:
                    raise InputError(f"{path}: cannot read as text ({exc})") from None
                if "\r" in text:
                    text = text.replace("\r\n", "\n").replace("\r", "\n")
                lines = text.split("\n")
                if chunk:
                    lines.pop()  # after the last line end: empty
                if max(map(len, lines)) > MAX_LINE_BYTES:
                    raise InputError(f"{path}: a line longer than {MAX_LINE_BYTES} bytes: "
                                     "not a text recording")
                yield lines
            if not chunk:
                return


def _batches(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while batch := list(itertools.islice(it, n)):
        yield batch


class _Steps:
    """Time steps seen so far: increasing, their extremes and their median, in bounded
    memory."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.n = 0
        self.increasing = True
        self.lo, self.hi = math.inf, -math.inf
        self.head: list[np.ndarray] = []
        self.kept = 0
        self.counts: dict[float, int] | None = {}

    def add(self, t: np.ndarray) -> None:
        if t.size == 0:
            return
        dt = np.diff(t if self.last is None else np.concatenate([[self.last], t]))
        self.last = float(t[-1])
        if dt.size == 0:
            return
        self.n += dt.size
        if not (np.isfinite(dt).all() and (dt > 0).all()):
            self.increasing = False
            return
        self.lo, self.hi = min(self.lo, float(dt.min())), max(self.hi, float(dt.max()))
        if self.kept < HEAD_STEPS:
            self.head.append(dt[: HEAD_STEPS - self.kept])
            self.kept += self.head[-1].size
        if self.counts is not None:
            for v, c in zip(*np.unique(dt, return_counts=True), strict=True):
                self.counts[float(v)] = self.counts.get(float(v), 0) + int(c)
            if len(self.counts) > MAX_STEP_VALUES:
                self.counts = None

    def median(self) -> float:
        """``np.median`` of every step (of the first :data:`HEAD_STEPS` past
        :data:`MAX_STEP_VALUES` distinct ones)."""
        if self.n <= self.kept or self.counts is None:
            return float(np.median(np.concatenate(self.head)))
        middle, seen = [], 0
        want = sorted({(self.n - 1) // 2, self.n // 2})
        for v in sorted(self.counts):
            seen += self.counts[v]
            while want and want[0] < seen:
                middle.append(v)
                want.pop(0)
        return float(np.mean(np.array(middle)))  # as np.median: the mean of the middle two


class _TextReader(SignalReader):
    """A text recording: :meth:`_rows` parses it, :meth:`_scan` checks it whole first."""

    jitter_checked = True
    min_rows, too_few = 2, "empty (needs a header and at least two rows)"

    def _rows(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(times in s, values in the file's unit) of every row, in batches."""
        raise NotImplementedError

    def _scan(self, scale: float) -> tuple[float, int]:
        """(rate, rows) after checking every row; the errors of a whole-file read, in its
        order."""
        steps = _Steps()
        rows, bad, first_bad = 0, 0, -1
        for t, x in self._rows():
            steps.add(t)
            nonfinite = ~np.isfinite(x * scale)
            if nonfinite.any():
                first_bad = rows + int(np.flatnonzero(nonfinite)[0]) if not bad else first_bad
                bad += int(nonfinite.sum())
            rows += x.size
        if rows < self.min_rows:
            raise InputError(f"{self.path}: {self.too_few}")
        if not steps.increasing:
            raise InputError(f"{self.path}: time column is not increasing")
        rate = 1.0 / steps.median()
        if self.jitter_checked and max(abs(steps.lo * rate - 1), abs(steps.hi * rate - 1)) > 0.01:
            raise InputError(f"{self.path}: time column is not evenly sampled (jitter > 1 %)")
        if bad:
            raise nonfinite_error(self.path, bad, first_bad, rate)
        return rate, rows

    def unit_blocks(self) -> Iterator[np.ndarray]:
        return (x for _, x in self._rows())


class TwoColumnReader(_TextReader):
    """``time_s value`` lines in ``unit``; lines that are not two numbers (emgdb has two
    garbled ones, and comments) are skipped; the rate is the median time step."""

    jitter_checked = False
    min_rows, too_few = 3, "fewer than three 'time value' lines"

    def __init__(self, path: Path, unit: str, *, scale_known: bool = True) -> None:
        self.path = path
        scale = unit_to_uv(path, unit)
        rate, rows = self._scan(scale)
        super().__init__(path, rate, rows, unit=unit if scale_known else "unknown",
                         unit_uv=scale, scale_known=scale_known, channel="1")

    def _rows(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for batch in _batches(itertools.chain.from_iterable(
                text_lines(self.path, strict=False)), ROWS):
            t, x = [], []
            for line in batch:
                parts = line.split()
                if len(parts) != 2:
                    continue
                try:
                    a, b = float(parts[0]), float(parts[1])
                except ValueError:
                    continue
                t.append(a)
                x.append(b)
            yield np.asarray(t, dtype=np.float64), np.asarray(x, dtype=np.float64)


class CsvReader(_TextReader):
    """A CSV whose header (``first``, its first line) names the value column's unit;
    ``channel`` picks the value column (an index into all columns, default the second, or
    its name)."""

    def __init__(self, path: Path, first: str, channel: int | str = 1) -> None:
        self.path = path
        try:
            self.dialect = csv.Sniffer().sniff(first, delimiters=",;\t ") \
                if "," not in first else "excel"
            header = [h.strip() for h in next(csv.reader([first], self.dialect))]
        except csv.Error as exc:
            raise InputError(f"{path}: not a CSV of time and value columns ({exc})") from None
        if len(header) < 2:
            raise InputError(f"{path}: needs a time column and a value column")
        self.column = pick_channel(path, len(header), channel, header)
        if self.column == 0:
            raise InputError(f"{path}: column 0 is time; pick a value column")
        m = _UNIT_IN_NAME.search(header[self.column])
        if not m:
            raise InputError(f"{path}: column {header[self.column]!r} does not name its unit "
                             "(e.g. 'emg_uV', 'emg (mV)')")
        scale = unit_to_uv(path, m.group(1))
        self.t_scale = 1e-3 if re.search(r"ms\b|\(ms\)|_ms$", header[0], re.IGNORECASE) \
            else 1.0
        rate, rows = self._scan(scale)
        super().__init__(path, rate, rows, unit=m.group(1), unit_uv=scale, scale_known=True,
                         channel=header[self.column])

    def _rows(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        reader = csv.reader(_content_lines(self.path), self.dialect)
        try:
            next(reader)  # the header
            line, i = 2, self.column
            for batch in _batches(reader, ROWS):
                try:
                    arr = np.array([[float(r[0]), float(r[i])] for r in batch if r],
                                   dtype=np.float64).reshape(-1, 2)
                except (ValueError, IndexError):
                    bad = next(k for k, r in enumerate(batch, line) if not _row_ok(r, i))
                    raise InputError(f"{self.path}: line {bad} is not numeric or is missing "
                                     "a column (truncated?)") from None
                line += len(batch)
                yield arr[:, 0] * self.t_scale, arr[:, 1]
        except csv.Error as exc:
            raise InputError(f"{self.path}: not a CSV of time and value columns ({exc})") \
                from None


def _row_ok(r: list[str], i: int) -> bool:
    try:
        float(r[0])
        float(r[i])
        return True
    except (ValueError, IndexError):
        return False


def _numeric(fields: list[str]) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return bool(fields)


def _content_lines(path: Path) -> Iterator[str]:
    """A CSV's lines that are neither blank nor comments."""
    return itertools.chain.from_iterable(
        [ln for ln in lines if ln.strip() and ln.lstrip()[0] != "#"]
        for lines in text_lines(path, strict=True))


def open_csv(path: Path, channel: int | str = 1) -> _TextReader:
    """A ``.csv``/``.txt``/``.tsv``: with a header naming the unit (:class:`CsvReader`), or
    headerless ``time value`` lines read unscaled (``nemg classify`` estimates their scale
    from the noise floor, or takes ``--scale-uv``)."""
    first = list(itertools.islice(_content_lines(path), 3))
    if len(first) < 3:
        raise InputError(f"{path}: empty (needs a header and at least two rows)")
    if _numeric(first[0].replace(",", " ").replace(";", " ").split()[:1]):
        return TwoColumnReader(path, "uV", scale_known=False)
    return CsvReader(path, first[0], channel)


def load_two_columns(path: Path, unit: str) -> Recording:
    """A headerless text file of ``time_s value`` lines in ``unit``, whole."""
    return TwoColumnReader(path, unit).load()
