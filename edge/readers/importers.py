"""Real recordings a clinic exports -> one :class:`Recording` type.

Formats: WAV (8/16/24/32-bit int, 32/64-bit float, any rate), EDF / EDF+ / BDF
(:mod:`edge.readers.edf`),
WFDB (:mod:`edge.readers.wfdb`: a ``.hea`` header with its ``.dat``; formats 16,
61, 80, 212), CSV / text (time + value columns, the unit named in the value column's
header; a headerless ``time value`` file is read unscaled). All numpy only: a box reads
every format with the workstation's bits. Labels come from a CSV sidecar
(``start_s,end_s,label``), or EDF+ annotations whose text is a label.

Every problem is an :class:`~edge.errors.InputError` naming the file and what is wrong:
truncated, empty, NaN-bearing, wrong or missing unit, unknown label.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import replace
from pathlib import Path

import numpy as np

from edge.errors import InputError
from edge.labels import check_label
from edge.readers.recording import (  # noqa: F401  (re-exported: one Recording type everywhere)
    NOMINAL_WAV_FULL_SCALE_UV,
    SUFFIXES,
    UNITS_UV,
    Recording,
    check_samples,
    load_wav,
    pick_channel,
    unit_to_uv,
)


# ---- EDF / EDF+ / BDF ------------------------------------------------------------------------
def load_edf(path: Path, channel: int | str = 0) -> Recording:
    """EDF / EDF+ / BDF through the box's own reader (:mod:`edge.readers.edf`); EDF+ annotations
    whose text is a label become spans."""
    import os

    from edge.fileio import open_regular
    from edge.readers.edf import read_edf, read_header

    fd = open_regular(path)
    try:
        h = read_header(path, fd)
    finally:
        os.close(fd)
    names = [h.signals[k].label for k in h.data_signals]
    if not names:
        raise InputError(f"{path}: no signals")
    i = pick_channel(path, len(names), channel, names)
    x, h, annotations = read_edf(path, i)
    sig = h.signals[h.data_signals[i]]
    x = x * unit_to_uv(path, sig.unit)
    ann = []
    for onset, dur, label in annotations:
        check_label(label, f"{path} annotation at {onset:.3f} s")
        ann.append((float(onset), float(onset + max(dur, 0.0)), label))
    rate = h.rate_hz(h.data_signals[i])
    check_samples(path, x, rate)
    return Recording(x, rate, sig.unit, True, names[i], str(path), ann)


# ---- WFDB --------------------------------------------------------------------------------
def load_wfdb(path: Path, channel: int | str = 0) -> Recording:
    """A WFDB record through the box's own reader (:mod:`edge.readers.wfdb`: the same bits on a
    box and a workstation)."""
    from edge.readers.wfdb import read_header, read_signal

    path = path.with_suffix(".hea")
    names = [s.name for s in read_header(path).signals]
    i = pick_channel(path, len(names), channel, names)
    x, h = read_signal(path, i)
    units = h.signals[i].units
    x = x * unit_to_uv(path, units)
    check_samples(path, x, h.rate_hz)
    return Recording(x, h.rate_hz, units, True, names[i], str(path))


# ---- CSV / text -------------------------------------------------------------------------------
_UNIT_IN_NAME = re.compile(r"[\[(_ ]\s*(uV|µV|μV|mV|nV|V)\s*[\])]?\s*$", re.IGNORECASE)


def load_csv(path: Path, channel: int | str = 1) -> Recording:
    """Columns: time in s (first column) and one or more values whose header names the
    unit: ``emg_uV``, ``emg (mV)``, ``signal [V]``. ``channel`` picks the value column
    (index into all columns, default the second, or its name)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read as text ({exc})") from None
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    if len(lines) < 3:
        raise InputError(f"{path}: empty (needs a header and at least two rows)")
    if _numeric(lines[0].replace(",", " ").replace(";", " ").split()[:1]):
        # no header, so no unit: the values are read as they are and the scale is unknown
        # (nemg classify estimates it from the noise floor, or takes --scale-uv)
        rec = load_two_columns(path, "uV")
        return replace(rec, unit="unknown", scale_known=False, assumed_unit_uv=1.0)
    try:
        dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t ") \
            if "," not in lines[0] else None
        reader = csv.reader(io.StringIO("\n".join(lines)), dialect or "excel")
        header = [h.strip() for h in next(reader)]
        rows = list(reader)
    except csv.Error as exc:
        raise InputError(f"{path}: not a CSV of time and value columns ({exc})") from None
    if len(header) < 2:
        raise InputError(f"{path}: needs a time column and a value column")
    i = pick_channel(path, len(header), channel, header)
    if i == 0:
        raise InputError(f"{path}: column 0 is time; pick a value column")
    m = _UNIT_IN_NAME.search(header[i])
    if not m:
        raise InputError(f"{path}: column {header[i]!r} does not name its unit "
                         "(e.g. 'emg_uV', 'emg (mV)')")
    scale = unit_to_uv(path, m.group(1))
    t_scale = 1e-3 if re.search(r"ms\b|\(ms\)|_ms$", header[0], re.IGNORECASE) else 1.0
    try:
        arr = np.array([[float(r[0]), float(r[i])] for r in rows if r], dtype=np.float64)
    except (ValueError, IndexError):
        bad = next(k for k, r in enumerate(rows, 2) if not _row_ok(r, i))
        raise InputError(f"{path}: line {bad} is not numeric or is missing a column "
                         "(truncated?)") from None
    t, x = arr[:, 0] * t_scale, arr[:, 1] * scale
    dt = np.diff(t)
    if (dt <= 0).any():
        raise InputError(f"{path}: time column is not increasing")
    rate = 1.0 / float(np.median(dt))
    if np.abs(dt * rate - 1).max() > 0.01:
        raise InputError(f"{path}: time column is not evenly sampled (jitter > 1 %)")
    check_samples(path, x, rate)
    return Recording(x, rate, m.group(1), True, header[i], str(path))


def _numeric(fields: list[str]) -> bool:
    try:
        [float(f) for f in fields]
    except ValueError:
        return False
    return bool(fields)


def _row_ok(r: list[str], i: int) -> bool:
    try:
        float(r[0])
        float(r[i])
        return True
    except (ValueError, IndexError):
        return False


def load_two_columns(path: Path, unit: str) -> Recording:
    """A headerless text file of ``time_s value`` lines in ``unit`` (PhysioNet's emgdb
    examples: mV at 4 kHz). Lines that are not two numbers (emgdb has two garbled ones, and
    comments) are skipped; the rate is the median time step."""
    from edge.fileio import check_regular

    check_regular(path)
    scale = unit_to_uv(path, unit)
    t, x = [], []
    try:
        with path.open(encoding="ascii", errors="replace") as f:
            for line in f:
                parts = line.split()
                if len(parts) != 2:
                    continue
                try:
                    a, b = float(parts[0]), float(parts[1])
                except ValueError:
                    continue
                t.append(a)
                x.append(b)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    if len(t) < 3:
        raise InputError(f"{path}: fewer than three 'time value' lines")
    dt = np.diff(np.asarray(t))
    if (dt <= 0).any():
        raise InputError(f"{path}: time column is not increasing")
    rate = 1.0 / float(np.median(dt))
    samples = np.asarray(x, dtype=np.float64) * scale
    check_samples(path, samples, rate)
    return Recording(samples, rate, unit, True, "1", str(path))


# ---- labels ---------------------------------------------------------------------------------
def load_labels(path: Path, recording: str | None = None) -> list[tuple[float, float, str]]:
    """A label sidecar: ``start_s,end_s,label`` (optionally a leading ``file`` column, in
    which case only rows for ``recording``'s file name are kept)."""
    try:
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read labels ({exc})") from None
    out = []
    for n, row in enumerate(rows, 2):
        if "file" in row and recording is not None and Path(row["file"]).name != recording:
            continue
        try:
            a, b, label = float(row["start_s"]), float(row["end_s"]), row["label"].strip()
        except (KeyError, TypeError, ValueError, AttributeError):
            raise InputError(f"{path}: line {n}: need start_s,end_s,label") from None
        check_label(label, f"{path} line {n}")
        if not 0 <= a < b:
            raise InputError(f"{path}: line {n}: span {a}..{b} is empty or negative")
        out.append((a, b, label))
    return out


def load_recording(path: str | Path, channel: int | str | None = None,
                   labels: str | Path | None = None) -> Recording:
    """Any supported file; a ``<name>.labels.csv`` beside it (or ``labels``) is read."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".wav":
        rec = load_wav(p, 0 if channel is None else channel)
    elif suffix in (".edf", ".bdf"):
        rec = load_edf(p, 0 if channel is None else channel)
    elif suffix in (".hea", ".dat"):
        rec = load_wfdb(p.with_suffix(".hea"), 0 if channel is None else channel)
    elif suffix in (".csv", ".txt", ".tsv"):
        rec = load_csv(p, 1 if channel is None else channel)
    else:
        raise InputError(f"{p}: unknown format {suffix!r} (supported: {', '.join(SUFFIXES)})")
    sidecar = Path(labels) if labels else p.with_name(p.stem + ".labels.csv")
    if labels or sidecar.exists():
        ann = load_labels(sidecar, p.name)
        if ann and ann[-1][1] > rec.duration_s + 1e-6:
            raise InputError(f"{sidecar}: a label ends at {ann[-1][1]:.3f} s, after the "
                             f"recording ({rec.duration_s:.3f} s)")
        rec = replace(rec, annotations=rec.annotations + ann)
    return rec
