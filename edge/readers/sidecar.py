"""Label sidecars: ``<name>.labels.csv`` beside a recording, ``start_s,end_s,label`` rows
(optionally a leading ``file`` column, to describe several recordings in one file)."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from pathlib import Path

from edge.errors import InputError
from edge.fileio import read_regular_file
from edge.labels import check_label
from edge.readers.recording import Recording

MAX_SIDECAR_BYTES = 64 << 20
"""A label file larger than this is not one (bounded memory)."""


def load_labels(path: Path, recording: str | None = None) -> list[tuple[float, float, str]]:
    """A label sidecar's spans (with a ``file`` column: only the rows for
    ``recording``'s file name)."""
    try:
        text = read_regular_file(path, MAX_SIDECAR_BYTES, "label file").decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
    except UnicodeDecodeError as exc:
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


def sidecar_of(path: Path) -> Path:
    """Where a recording's own sidecar lies."""
    return path.with_name(path.stem + ".labels.csv")


def with_sidecar(rec: Recording, path: Path, labels: Path | None = None) -> Recording:
    """``rec`` (read from ``path``) with the spans of ``labels``, or of its own sidecar
    where there is one, added to its annotations."""
    sidecar = labels or sidecar_of(path)
    if not (labels or sidecar.exists()):
        return rec
    ann = load_labels(sidecar, path.name)
    if ann and ann[-1][1] > rec.duration_s + 1e-6:
        raise InputError(f"{sidecar}: a label ends at {ann[-1][1]:.3f} s, after the "
                         f"recording ({rec.duration_s:.3f} s)")
    return replace(rec, annotations=rec.annotations + ann)
