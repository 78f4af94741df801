"""What a virtual front end plays: ``--source SPEC``.

- ``sine[:HZ[:UV]]`` — a looped test sine (default 100 Hz, 500 µV peak);
- ``ramp`` — a looped full-range sawtooth (every ADC code; for wire tests);
- ``scenario:KIND`` — an EMG-like scenario (``rigs.testsignals`` kinds, or ``exam``);
- a file: ``.npy`` (integer = ADC values, float = µV), ``.wav`` at the board's rate (its
  recorded µV scale, else ``file_uv_per_lsb`` per LSB), and every format
  ``load_recording`` reads when the caller passes one (the CLI passes the workstation's
  importers where they are installed).

Values are converted to the board's ADC scale (µV / uv_per_lsb), saturating at its rails.
The wire layer's :class:`~wire.virtual.SampleSource` only plays what it is given;
building it from test signals and files is this module's job (the arrows point one way).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.errors import InputError
from wire.boards import FrontEndProfile
from wire.virtual import SampleSource


def uv_to_adc(uv: np.ndarray, profile: FrontEndProfile) -> np.ndarray:
    lim = 1 << (profile.adc_bits - 1)
    return np.clip(np.round(np.asarray(uv) / profile.uv_per_lsb), -lim, lim - 1).astype(np.int32)


def open_source(spec: str, profile: FrontEndProfile, *, loop: bool = True,
                file_uv_per_lsb: float = 0.5,
                load_recording: Callable[[Path], object] | None = None) -> SampleSource:
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
    if load_recording is not None:
        rec = load_recording(path).resampled(fs, profile.uv_per_lsb)
        return SampleSource(uv_to_adc(rec.microvolts(), profile), loop=loop, name=path.name)
    if suffix == ".wav":
        from edge.readers.recording import load_wav

        rec = load_wav(path)
        if rec.sample_rate_hz != fs:
            raise InputError(f"{path}: {rec.sample_rate_hz:g} Hz but the board runs at {fs} Hz "
                             "(resampling needs the workstation extra)")
        if not rec.scale_known:  # the file says nothing: its LSB is file_uv_per_lsb
            rec = rec.with_unit_uv(file_uv_per_lsb)
        return SampleSource(uv_to_adc(rec.samples_uv, profile), loop=loop, name=path.name)
    raise InputError(f"{path}: {suffix or 'this'} files need the workstation extra "
                     "(pip install 'nemg-edge[convert]')")
