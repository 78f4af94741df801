"""Real recordings a clinic exports -> one :class:`Recording` type.

Formats: WAV (8/16/24/32-bit int, 32/64-bit float, any rate), EDF / EDF+ / BDF (pyedflib),
WFDB (``wfdb``: a ``.hea`` header with its ``.dat``), CSV / text (time + value columns, the
unit named in the value column's header). Labels come from a CSV sidecar
(``start_s,end_s,label``), or EDF+ annotations whose text is a label.

Every problem is an :class:`~edge.errors.InputError` naming the file and what is wrong:
truncated, empty, NaN-bearing, wrong or missing unit, unknown label.
"""

from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

import numpy as np

from edge.errors import InputError
from edge.labels import check_label

#: µV per one unit of each physical dimension we accept.
UNITS_UV: dict[str, float] = {"uv": 1.0, "µv": 1.0, "μv": 1.0, "mv": 1e3, "v": 1e6, "nv": 1e-3}

#: Scale assumed for a WAV without a recorded one: its int16 full scale is our canonical
#: ±16.4 mV (0.5 µV/LSB). Unknown gain; the model is trained for ±20 dB of it.
NOMINAL_WAV_FULL_SCALE_UV = 32768 * 0.5

SUFFIXES = (".wav", ".edf", ".bdf", ".hea", ".csv", ".txt", ".tsv")


@dataclass(frozen=True)
class Recording:
    """One channel of a recording, in µV, with its provenance."""

    samples_uv: np.ndarray
    """float64 samples in microvolts."""
    sample_rate_hz: float
    """Samples per second."""
    unit: str
    """The file's own unit ('uV', 'mV', 'V', or 'adc' for WAV integers)."""
    scale_known: bool
    """False when the gain was assumed (a WAV without a recorded scale)."""
    channel: str
    """Channel name or index as the file calls it."""
    source: str
    """File it came from."""
    annotations: list[tuple[float, float, str]] = field(default_factory=list)
    """(start_s, end_s, label) spans."""

    @property
    def duration_s(self) -> float:
        return self.samples_uv.size / self.sample_rate_hz

    def microvolts(self) -> np.ndarray:
        return self.samples_uv

    def resampled(self, rate_hz: int) -> Recording:
        """Band-limited resampling to ``rate_hz`` (scipy ``resample_poly``: polyphase
        FIR with a Kaiser-windowed anti-alias filter at the lower Nyquist)."""
        if math.isclose(self.sample_rate_hz, rate_hz):
            return self
        from scipy.signal import resample_poly

        ratio = Fraction(rate_hz) / Fraction(self.sample_rate_hz).limit_denominator(10**6)
        ratio = ratio.limit_denominator(2000)
        y = resample_poly(self.samples_uv, ratio.numerator, ratio.denominator)
        return replace(self, samples_uv=y, sample_rate_hz=float(rate_hz))

    def to_int16(self, uv_per_lsb: float) -> np.ndarray:
        """Canonical int16 for the front end (saturating: a clipped source stays clipped)."""
        return np.clip(np.round(self.samples_uv / uv_per_lsb), -32768, 32767).astype(np.int16)


def _check(path: Path, x: np.ndarray, rate: float) -> None:
    if x.size == 0:
        raise InputError(f"{path}: empty (no samples)")
    bad = ~np.isfinite(x)
    if bad.any():
        raise InputError(f"{path}: {int(bad.sum())} NaN/infinite sample(s), first at "
                         f"{int(np.flatnonzero(bad)[0]) / rate:.4f} s")
    if not (rate > 0 and math.isfinite(rate)):
        raise InputError(f"{path}: invalid sample rate {rate}")


def _unit_uv(path: Path, unit: str) -> float:
    u = unit.strip().lower().replace(" ", "")
    if u not in UNITS_UV:
        raise InputError(f"{path}: unit {unit!r} is not a voltage (expected uV, mV or V)")
    return UNITS_UV[u]


def _pick(path: Path, n: int, channel: int | str, names: list[str]) -> int:
    if isinstance(channel, str) and not channel.isdigit():
        if channel not in names:
            raise InputError(f"{path}: no channel {channel!r} (has: {', '.join(names)})")
        return names.index(channel)
    i = int(channel)
    if not 0 <= i < n:
        raise InputError(f"{path}: channel {i} does not exist ({n} channel(s))")
    return i


# ---- WAV ---------------------------------------------------------------------------------
def load_wav(path: Path, channel: int | str = 0) -> Recording:
    from convert.wavio import read_wav

    w = read_wav(path)
    ch = _pick(path, w.samples.shape[1], channel, [str(i) for i in range(w.samples.shape[1])])
    x = w.samples[:, ch].astype(np.float64)
    if w.is_float:
        # float WAV: ±1.0 is full scale; unknown gain
        scale, known = NOMINAL_WAV_FULL_SCALE_UV, False
    elif w.uv_per_lsb is not None:
        scale, known = w.uv_per_lsb, True
    else:
        scale, known = NOMINAL_WAV_FULL_SCALE_UV / (1 << (w.bits - 1)), False
    _check(path, x, w.sample_rate_hz)
    return Recording(x * scale, float(w.sample_rate_hz), "adc" if not w.is_float else "float",
                     known, str(ch), str(path))


# ---- EDF / EDF+ / BDF ------------------------------------------------------------------------
def load_edf(path: Path, channel: int | str = 0) -> Recording:
    import pyedflib

    try:
        reader = pyedflib.EdfReader(str(path))
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: not a readable EDF/BDF file ({str(exc).strip()})") from None
    try:
        names = [s.strip() for s in reader.getSignalLabels()]
        if not names:
            raise InputError(f"{path}: no signals")
        i = _pick(path, len(names), channel, names)
        unit = reader.getPhysicalDimension(i)
        scale = _unit_uv(path, unit)
        rate = float(reader.getSampleFrequency(i))
        x = reader.readSignal(i).astype(np.float64) * scale
        onsets, durations, texts = reader.readAnnotations()
        ann = []
        for onset, dur, text in zip(onsets, durations, texts, strict=True):
            label = str(text).strip()
            if label:
                check_label(label, f"{path} annotation at {onset:.3f} s")
                ann.append((float(onset), float(onset + max(dur, 0.0)), label))
    finally:
        reader.close()
    _check(path, x, rate)
    return Recording(x, rate, unit, True, names[i], str(path), ann)


# ---- WFDB --------------------------------------------------------------------------------
def load_wfdb(path: Path, channel: int | str = 0) -> Recording:
    import wfdb

    base = path.with_suffix("")
    try:
        rec = wfdb.rdrecord(str(base))
    except FileNotFoundError as exc:
        raise InputError(f"{path}: WFDB record incomplete ({exc.filename or exc})") from None
    except (ValueError, OSError, IndexError, EOFError) as exc:
        raise InputError(f"{path}: not a readable WFDB record ({str(exc).strip()})") from None
    if rec.p_signal is None or rec.p_signal.size == 0:
        raise InputError(f"{path}: empty (no samples)")
    names = list(rec.sig_name)
    i = _pick(path, len(names), channel, names)
    scale = _unit_uv(path, rec.units[i])
    x = rec.p_signal[:, i].astype(np.float64) * scale
    expected = rec.sig_len
    if x.size < expected:
        raise InputError(f"{path}: truncated ({x.size} of {expected} samples)")
    _check(path, x, float(rec.fs))
    return Recording(x, float(rec.fs), rec.units[i], True, names[i], str(path))


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
    dialect = csv.Sniffer().sniff(lines[0], delimiters=",;\t ") if "," not in lines[0] else None
    reader = csv.reader(io.StringIO("\n".join(lines)), dialect or "excel")
    header = [h.strip() for h in next(reader)]
    if len(header) < 2:
        raise InputError(f"{path}: needs a time column and a value column")
    i = _pick(path, len(header), channel, header)
    if i == 0:
        raise InputError(f"{path}: column 0 is time; pick a value column")
    m = _UNIT_IN_NAME.search(header[i])
    if not m:
        raise InputError(f"{path}: column {header[i]!r} does not name its unit "
                         "(e.g. 'emg_uV', 'emg (mV)')")
    scale = _unit_uv(path, m.group(1))
    t_scale = 1e-3 if re.search(r"ms\b|\(ms\)|_ms$", header[0], re.IGNORECASE) else 1.0
    rows = list(reader)
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
    _check(path, x, rate)
    return Recording(x, rate, m.group(1), True, header[i], str(path))


def _row_ok(r: list[str], i: int) -> bool:
    try:
        float(r[0])
        float(r[i])
        return True
    except (ValueError, IndexError):
        return False


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
