"""What a virtual front end plays: ``--source SPEC``.

- ``sine[:HZ[:UV]]`` — a looped test sine (default 100 Hz, 500 µV peak);
- ``ramp`` — a looped full-range sawtooth (every ADC code; for wire tests);
- ``scenario:KIND`` — an EMG-like scenario (``rigs.testsignals`` kinds, or ``exam``);
- a file: ``.npy`` (integer = ADC values, float = µV), or any recording
  :func:`edge.readers.open_recording` reads (its recorded µV scale, else
  ``file_uv_per_lsb`` per unit), brought to the board's rate as the box brings a file to
  the model's (:meth:`edge.readers.Recording.resampled`).

Values are converted to the board's ADC scale (µV / uv_per_lsb), saturating at its rails.
The wire layer's :class:`~wire.virtual.SampleSource` only plays what it is given;
building it from test signals and files is this module's job (the arrows point one way).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.errors import InputError
from wire.boards import FrontEndProfile
from wire.virtual import SampleSource


def uv_to_adc(uv: np.ndarray, profile: FrontEndProfile) -> np.ndarray:
    lim = 1 << (profile.adc_bits - 1)
    return np.clip(np.round(np.asarray(uv) / profile.uv_per_lsb), -lim, lim - 1).astype(np.int32)


def open_source(spec: str, profile: FrontEndProfile, *, loop: bool = True,
                file_uv_per_lsb: float = 0.5) -> SampleSource:
    """What ``spec`` names, as the board's ADC values (see the module's list)."""
    fs = profile.sample_rate_hz
    kind, _, arg = spec.partition(":")
    if kind == "sine":
        parts = [float(p) for p in arg.split(":") if p] if arg else []
        hz = parts[0] if parts else 100.0
        uv = parts[1] if len(parts) > 1 else 500.0
        period = round(fs * max(1, round(hz)) / hz)  # whole cycles: seamless loop
        t = np.arange(period) / fs
        return SampleSource(uv_to_adc(uv * np.sin(2 * np.pi * hz * t), profile),
                            loop=loop, name=spec)
    if kind == "ramp":
        lim = 1 << (profile.adc_bits - 1)
        step = max(1, (2 * lim) // 65536)
        return SampleSource(np.arange(-lim, lim, step), loop=loop, name=spec)
    if kind == "scenario":
        from rigs.testsignals import KINDS, emg_like_uv, examination

        if arg == "exam":
            from edge.features import MelConfig

            cfg = MelConfig(sample_rate_hz=fs, fmax_hz=min(8000.0, fs / 2))
            uv = examination(30.0, cfg, seed=0).astype(np.float64) * cfg.uv_per_lsb
        elif arg in KINDS:
            uv = emg_like_uv(arg, 10.0, fs, seed=0)
        else:
            raise InputError(f"unknown scenario {arg!r} (known: exam, {', '.join(KINDS)})")
        return SampleSource(uv_to_adc(uv, profile), loop=loop, name=spec)
    path = Path(spec)
    if not path.is_file():
        raise InputError(f"source {spec!r}: no such file, and not sine/ramp/scenario:KIND")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            x = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise InputError(f"{path}: not a readable .npy file ({exc})") from None
        if x.ndim != 1 or x.size == 0:
            raise InputError(f"{path}: expected a non-empty 1-D signal, got shape {x.shape}")
        if x.dtype.kind == "f":
            if not np.isfinite(x).all():
                raise InputError(f"{path}: contains NaN or infinite values")
            return SampleSource(uv_to_adc(x, profile), loop=loop, name=path.name)
        return SampleSource(x.astype(np.int32), loop=loop, name=path.name)
    from edge.acquire.files import recording_at_rate
    from edge.readers import open_recording

    rec = open_recording(path).load()
    if not rec.scale_known:  # the file says nothing: its unit is file_uv_per_lsb
        rec = rec.with_unit_uv(file_uv_per_lsb)
    rec = recording_at_rate(rec, fs, profile.uv_per_lsb)
    return SampleSource(uv_to_adc(rec.samples_uv, profile), loop=loop, name=path.name)
