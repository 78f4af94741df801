"""A recording file -> canonical int16 blocks at the model's rate.

Any format :func:`edge.readers.open_recording` reads, streamed: file -> µV (the reader) ->
the scale policy (the file's own scale, else ``--scale-uv``, else the one its noise floor
gives, else the nominal one; said on stderr) -> canonical int16 at the file's own rate ->
the fixed-point resampler (:mod:`edge.resample`) -> the model's rate, flushed. The same bits
on a box and on a workstation, and an hours-long file needs no more memory than a block.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.errors import InputError
from edge.readers import open_recording
from edge.readers.recording import (
    FLOOR_MAX_S,
    NOISE_FLOOR_UV,
    Recording,
    SignalReader,
    estimate_unit_uv,
    uv_to_int16,
)
from edge.resample import StreamResampler, output_length, resample_int16

BLOCK_S = 10
"""Seconds of signal handed on at a time (results do not depend on it)."""


class Canonical(Protocol):
    """What fixes the canonical samples: a :class:`~edge.spec.MelConfig` has both."""

    sample_rate_hz: int
    uv_per_lsb: float


@dataclass(frozen=True)
class SampleStream:
    """A file's canonical int16 samples at the model's rate, block by block."""

    total: int
    """Samples at the model's rate."""
    input: dict[str, Any]
    """What was read: the file's own rate, the band it can hold (half that rate, at most
    half the model's), and which µV scale was used and how (``recorded``, ``given`` by
    --scale-uv, ``estimated`` from the noise floor, or ``assumed``)."""
    blocks: Callable[[], Iterator[np.ndarray]]


def scale_used(reader: SignalReader, scale_uv: float | None) -> tuple[dict[str, Any], float]:
    """(the ``input`` report's scale entries, the factor the reader's µV are multiplied
    by). A file with no recorded scale takes ``scale_uv``, else the scale that puts its
    noise floor at the amplifier's (:func:`~edge.readers.recording.estimate_unit_uv`),
    else the nominal one."""
    path, assumed_uv = reader.path, reader.assumed_unit_uv
    if assumed_uv is None:
        return {"scale": "recorded"}, 1.0
    if scale_uv is not None:
        if not (scale_uv > 0 and math.isfinite(scale_uv)):
            raise InputError(f"scale must be a positive number of µV, not {scale_uv}")
        return {"scale": "given", "uv_per_unit": scale_uv}, scale_uv / assumed_uv
    fs = reader.sample_rate_hz
    estimated = estimate_unit_uv(reader.head_units(int(FLOOR_MAX_S * fs)), fs)
    if estimated is not None:
        print(f"nemg: warning: {path}: records no µV scale; estimated {estimated:.4g} µV per "
              f"unit from its noise floor (set to {NOISE_FLOOR_UV:g} µV RMS, a needle "
              "amplifier's); pass --scale-uv if you know it", file=sys.stderr, flush=True)
        return {"scale": "estimated", "uv_per_unit": estimated}, estimated / assumed_uv
    print(f"nemg: warning: {path}: records no µV scale and has no noise floor to estimate it "
          f"from; assumed {assumed_uv:g} µV per unit (pass --scale-uv)", file=sys.stderr,
          flush=True)
    return {"scale": "assumed", "uv_per_unit": assumed_uv}, 1.0


def scaled_uv(reader: SignalReader, factor: float, size: int,
              limit: int | None = None) -> Iterator[np.ndarray]:
    """The reader's µV blocks at the scale used (``factor`` from :func:`scale_used`)."""
    for uv in reader.blocks(size, limit):
        yield uv * factor if factor != 1.0 else uv


def open_file(path: Path, spec: Canonical | tuple[int, float], channel: int | str | None = None,
              scale_uv: float | None = None) -> SampleStream:
    """Any reader format -> canonical int16 at the model's rate (``spec``: a
    :class:`~edge.spec.MelConfig`, or ``(sample_rate_hz, uv_per_lsb)``)."""
    from edge.fileio import check_regular

    fs, uv_per_lsb = spec if isinstance(spec, tuple) else (spec.sample_rate_hz, spec.uv_per_lsb)
    check_regular(path)  # no FIFOs or devices: nothing below may block or run away
    reader = open_recording(path, channel)
    report, factor = scale_used(reader, scale_uv)
    rate = reader.sample_rate_hz
    step = max(1, BLOCK_S * int(rate))

    def blocks() -> Iterator[np.ndarray]:
        for uv in scaled_uv(reader, factor, step):
            yield uv_to_int16(uv, uv_per_lsb)

    return _at_model_rate(path, blocks, reader.frames, rate, fs, report)


def _at_model_rate(path: Path, blocks: Callable[[], Iterator[np.ndarray]], n: int,
                   rate: float, fs: int, report: dict[str, Any]) -> SampleStream:
    """Canonical int16 blocks at ``rate`` -> the same at the model's ``fs``."""
    info = {"sample_rate_hz": float(rate), "band_hz": min(rate, fs) / 2, **report}
    if rate == fs:
        return SampleStream(n, info, blocks)
    if rate < fs:
        print(f"nemg: note: {path}: recorded at {rate:g} Hz, so it holds nothing above "
              f"{rate / 2:g} Hz; the model was trained on {fs} Hz recordings (a narrower "
              "band than it knows)", file=sys.stderr, flush=True)
    StreamResampler(rate, fs)  # an unusable rate is refused now, not half-way

    def resampled() -> Iterator[np.ndarray]:
        r = StreamResampler(rate, fs)
        for b in blocks():
            yield r.push(b)
        yield r.flush()

    return SampleStream(output_length(n, rate, fs), info, resampled)


def load_samples(path: Path, spec: Canonical | tuple[int, float],
                 channel: int | str | None = None, scale_uv: float | None = None
                 ) -> np.ndarray:
    """All of a file's canonical int16 samples at the model's rate (short files, tests)."""
    stream = open_file(path, spec, channel, scale_uv)
    parts = list(stream.blocks())
    return np.concatenate(parts) if parts else np.zeros(0, np.int16)


def scaled_recording(path: Path, channel: int | str | None = None,
                     scale_uv: float | None = None) -> tuple[Recording, dict[str, Any]]:
    """(a file's recording in µV at the scale used, at its own rate; the ``input`` report's
    scale entries)."""
    from edge.fileio import check_regular

    check_regular(path)
    return read_scaled(open_recording(path, channel), scale_uv)


def read_scaled(reader: SignalReader, scale_uv: float | None = None,
                max_s: float | None = None) -> tuple[Recording, dict[str, Any]]:
    """:func:`scaled_recording` of an open reader: its first ``max_s`` seconds if given
    (only those are read)."""
    report, factor = scale_used(reader, scale_uv)
    n = reader.frames if max_s is None else min(reader.frames,
                                                int(max_s * reader.sample_rate_hz))
    x, at = np.empty(n), 0
    for uv in scaled_uv(reader, factor, max(1, BLOCK_S * int(reader.sample_rate_hz)), n):
        x[at : at + uv.size] = uv
        at += uv.size
    known = reader.scale_known or report["scale"] != "assumed"
    return Recording(x, reader.sample_rate_hz, reader.unit, known, reader.channel,
                     str(reader.path), list(reader.annotations),
                     None if known else reader.assumed_unit_uv), report


def recording_at_rate(rec: Recording, rate_hz: int, uv_per_lsb: float) -> Recording:
    """``rec`` at ``rate_hz`` the way the box brings a file there: canonical int16 at
    ``uv_per_lsb`` at the file's own rate, then the fixed-point resampler
    (:mod:`edge.resample`), back in µV. Training and ``nemg classify`` see the same bits; a
    recording already at ``rate_hz`` is returned as it is."""
    if math.isclose(rec.sample_rate_hz, rate_hz):
        return rec
    y = resample_int16(rec.to_int16(uv_per_lsb), rec.sample_rate_hz, rate_hz)
    return replace(rec, samples_uv=y.astype(np.float64) * uv_per_lsb,
                   sample_rate_hz=float(rate_hz))
