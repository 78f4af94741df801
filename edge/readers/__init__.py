"""Readers: every recording format a clinic exports, bounded and streamed.

:func:`open_recording` gives a file's streaming reader (:class:`SignalReader`: rate,
length, unit and scale from the header, then one channel's µV a block at a time);
:func:`load_recording` reads it whole, with its label sidecar. Formats: WAV
(:mod:`~edge.readers.wav`), EDF/EDF+/BDF (:mod:`~edge.readers.edf`), WFDB
(:mod:`~edge.readers.wfdb`), CSV and ``time value`` text (:mod:`~edge.readers.text`); all
numpy only, so a box reads every format with a workstation's bits. Every problem is an
:class:`~edge.errors.InputError` naming the file and what is wrong.
"""

from __future__ import annotations

from pathlib import Path

from edge.errors import InputError
from edge.readers.edf import EdfReader
from edge.readers.recording import SUFFIXES, Recording, SignalReader
from edge.readers.sidecar import load_labels, with_sidecar
from edge.readers.text import load_two_columns, open_csv
from edge.readers.wav import WavReader, load_wav
from edge.readers.wfdb import WfdbReader

__all__ = ["Recording", "SignalReader", "load_labels", "load_recording", "load_two_columns",
           "load_wav", "open_recording"]


def open_recording(path: str | Path, channel: int | str | None = None) -> SignalReader:
    """The streaming reader of any supported file, by its suffix (``channel``: index or
    name; by default the first signal, or a CSV's second column)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    suffix = p.suffix.lower()
    if suffix == ".wav":
        return WavReader(p, 0 if channel is None else channel)
    if suffix in (".edf", ".bdf"):
        return EdfReader(p, 0 if channel is None else channel)
    if suffix in (".hea", ".dat"):
        return WfdbReader(p.with_suffix(".hea"), 0 if channel is None else channel)
    if suffix in (".csv", ".txt", ".tsv"):
        return open_csv(p, 1 if channel is None else channel)
    raise InputError(f"{p}: unknown format {suffix!r} (supported: {', '.join(SUFFIXES)})")


def load_recording(path: str | Path, channel: int | str | None = None,
                   labels: str | Path | None = None) -> Recording:
    """Any supported file, whole; a ``<name>.labels.csv`` beside it (or ``labels``) is
    read."""
    return with_sidecar(open_recording(path, channel).load(), Path(path),
                        Path(labels) if labels else None)
