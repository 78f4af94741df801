"""Fixed-point log-Mel features: int16 samples in, the model's int8 input tensor out.

Every device (Pi, Jetson, x86, a future microcontroller) must compute the *same bits*, so
the path from samples to features is integer arithmetic only, in this order (one function
per stage, so tests can check each stage's dtype and golden vectors can pin each one):

1. :meth:`MelFrontEnd.window`   int16 frame × periodic Hann in Q30           -> int64
2. :meth:`MelFrontEnd.normalize` block floating point: shift each frame so its
   peak uses 20 bits (exponent kept per frame)                                -> int64
3. :meth:`MelFrontEnd.fft`      radix-2 real FFT via an N/2 complex FFT, Q30 twiddles,
   round-half-up after every product; returns 2·X[k]                         -> int64 re, im
4. :meth:`MelFrontEnd.power`    (re² + im²) >> 16 (Parseval bounds it below 2^45)  -> int64
5. :meth:`MelFrontEnd.mel`      Q15 triangular weights, each FFT bin split between two
   adjacent channels as in TFLite Micro's front end                           -> int64
6. :meth:`MelFrontEnd.log2_q16` MSB + 128-entry table with linear interpolation, then the
   block-floating exponent and every fixed scale undone as one Q16 offset      -> int64
7. :meth:`MelFrontEnd.to_int8`  dB = log2 · 10·log10(2) (Q16), affine map to int8   -> int8

Tables (window, twiddles, Mel weights, log table, offsets) are built once per config with
float64 and rounded; their sha256 is pinned by the golden-vector test, so a platform whose
libm rounds one entry differently fails loudly instead of drifting silently.

The level is absolute: 0 dB is 1 LSB² per FFT bin of the model's canonical int16 scale
(the board's µV/LSB is applied before this module). See docs/features.md for why.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from functools import cached_property

import numpy as np

from edge.errors import ConfigError, InputError

Q15 = 1 << 15
Q16 = 1 << 16
Q30 = 1 << 30
_NORM_BITS = 20  # frame peak after block-floating normalisation is < 2^20 (see fft bounds)
_POWER_SHIFT = 16  # power >> 16 keeps the Mel accumulator below 2^60
_LOG_TABLE_BITS = 7  # 128-entry log2 table


@dataclass(frozen=True)
class MelConfig:
    """Everything that determines the features' bits. Part of every model bundle."""

    sample_rate_hz: int = 20_000
    """Samples per second of the int16 input. 20 kHz keeps the 10 kHz anti-alias band of
    needle-EMG amplifiers; fibrillation spikes (1–5 ms) carry energy to several kHz."""

    window_length: int = 512
    """Samples per analysis window (25.6 ms at 20 kHz): holds a whole MUAP (≤ 15 ms) and
    several periods of a 150 Hz complex repetitive or neuromyotonic discharge."""

    fft_length: int = 512
    """FFT size, a power of two ≥ window_length (39 Hz bins at 20 kHz)."""

    hop_length: int = 200
    """Samples between frames (10 ms at 20 kHz): 100 frames/s resolves discharges up to
    ~50 Hz as separate frames and faster trains as spectral harmonics."""

    num_mels: int = 40
    """Mel channels (HTK mel scale, triangular filters)."""

    fmin_hz: float = 20.0
    """Lower edge of the first Mel filter (below: baseline wander, DC)."""

    fmax_hz: float = 8_000.0
    """Upper edge of the last Mel filter (above: amplifier roll-off, little EMG energy)."""

    uv_per_lsb: float = 0.5
    """µV per LSB of the int16 input: the canonical scale every source is converted to
    (±16.4 mV full scale: MUAPs up to 3 mV and most artifacts fit; 3 µV noise is 6 LSB).
    It fixes what a dB means; the integer path itself does not use it."""

    db_min: float = -10.0
    """dB (re 1 LSB² per FFT bin) that maps to int8 -128; the int16 quantisation floor."""

    db_step: float = 0.5
    """dB per int8 step: int8 covers db_min .. db_min + 255·db_step (−10 .. 117.5 dB)."""

    def __post_init__(self) -> None:
        n = self.fft_length
        if n < 16 or n & (n - 1):
            raise ConfigError(f"fft_length must be a power of two >= 16 (got {n})")
        if not 0 < self.window_length <= n:
            raise ConfigError(f"window_length must be in 1..fft_length (got {self.window_length})")
        if not 0 < self.hop_length <= self.window_length:
            raise ConfigError(f"hop_length must be in 1..window_length (got {self.hop_length})")
        if self.sample_rate_hz <= 0 or self.num_mels < 1:
            raise ConfigError("sample_rate_hz and num_mels must be positive")
        if not 0 <= self.fmin_hz < self.fmax_hz <= self.sample_rate_hz / 2:
            raise ConfigError(
                f"need 0 <= fmin_hz < fmax_hz <= Nyquist ({self.sample_rate_hz / 2:g} Hz); "
                f"got {self.fmin_hz:g}..{self.fmax_hz:g}"
            )
        if self.uv_per_lsb <= 0:
            raise ConfigError(f"uv_per_lsb must be positive (got {self.uv_per_lsb})")
        if self.db_step <= 0:
            raise ConfigError(f"db_step must be positive (got {self.db_step})")

    @property
    def num_bins(self) -> int:
        """FFT bins 0..N/2."""
        return self.fft_length // 2 + 1

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate_hz / self.hop_length

    @property
    def db_max(self) -> float:
        """dB that maps to int8 +127."""
        return self.db_min + 255 * self.db_step

    def num_frames(self, num_samples: int) -> int:
        """Frames a one-shot run over ``num_samples`` samples yields (no padding)."""
        if num_samples < self.window_length:
            return 0
        return (num_samples - self.window_length) // self.hop_length + 1

    def int8_to_db(self, q: np.ndarray) -> np.ndarray:
        """Dequantise features to dB (for plots, reports and the float model's input)."""
        return self.db_min + (np.asarray(q, dtype=np.float64) + 128.0) * self.db_step

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MelConfig:
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"unknown MelConfig field(s): {', '.join(sorted(unknown))}")
        return cls(**d)


def default_mel_config() -> MelConfig:
    """The front end new models train on (:data:`edge.spec.DEFAULT_SPEC`): what a
    front end built without a config computes (tests, benchmarks, test signals). A model's
    own comes from its bundle."""
    from edge.spec import DEFAULT_SPEC

    return DEFAULT_SPEC.mel


def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
    """HTK mel scale."""
    return 2595.0 * np.log10(1.0 + np.asarray(f, dtype=np.float64) / 700.0)


def mel_to_hz(m: np.ndarray | float) -> np.ndarray:
    return 700.0 * (10.0 ** (np.asarray(m, dtype=np.float64) / 2595.0) - 1.0)


def mel_split(config: MelConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per FFT bin: index of the channel whose rising edge it is on, and that weight.

    Channel c's triangle rises from centre c-1 to centre c and falls to centre c+1 (the
    outer edges are fmin and fmax). A bin between centres c-1 and c gives weight w to
    channel c and 1-w to channel c-1. Channel -1 and num_mels stand for "outside".
    Returns (channel int64 [num_bins], weight float64 [num_bins]); bins outside
    [fmin, fmax] get weight 0.
    """
    edges = mel_to_hz(
        np.linspace(hz_to_mel(config.fmin_hz), hz_to_mel(config.fmax_hz), config.num_mels + 2)
    )
    freqs = np.arange(config.num_bins) * config.sample_rate_hz / config.fft_length
    channel = np.searchsorted(edges, freqs, side="right") - 1  # edge index below the bin
    inside = (freqs >= edges[0]) & (freqs < edges[-1])
    lo = edges[np.clip(channel, 0, len(edges) - 2)]
    hi = edges[np.clip(channel + 1, 1, len(edges) - 1)]
    weight = np.where(inside, (freqs - lo) / (hi - lo), 0.0)
    # Edge index e is the rising side of channel e (centre index e+1 -> channel e).
    return np.where(inside, channel, -1).astype(np.int64), weight


def mel_matrix(config: MelConfig) -> np.ndarray:
    """Float64 [num_bins, num_mels] triangular weights (the reference's filterbank)."""
    channel, weight = mel_split(config)
    m = np.zeros((config.num_bins, config.num_mels))
    for k, (c, w) in enumerate(zip(channel, weight, strict=True)):
        if c < 0:
            continue
        if c < config.num_mels:
            m[k, c] += w
        if c - 1 >= 0:
            m[k, c - 1] += 1.0 - w
    return m


def _bit_length(v: np.ndarray) -> np.ndarray:
    """Vectorised int.bit_length for non-negative int64 (0 -> 0)."""
    x = v.astype(np.int64, copy=True)
    n = np.zeros(x.shape, dtype=np.int64)
    for s in (32, 16, 8, 4, 2, 1):
        big = x >= (np.int64(1) << s)
        n += big * s
        x = np.where(big, x >> s, x)
    return n + (x > 0)


def _round_shift(v: np.ndarray, s: int) -> np.ndarray:
    """Round-half-up arithmetic right shift by a constant s > 0."""
    return (v + (np.int64(1) << (s - 1))) >> s


def _bit_reverse(n: int) -> np.ndarray:
    bits = n.bit_length() - 1
    idx = np.arange(n)
    rev = np.zeros(n, dtype=np.int64)
    for b in range(bits):
        rev |= ((idx >> b) & 1) << (bits - 1 - b)
    return rev


def _cmul_q30(re: np.ndarray, im: np.ndarray, c: np.ndarray, s: np.ndarray):
    """(re + i·im)·(c + i·s) with Q30 c, s; rounded half up. In-place temporaries."""
    out_re = re * c
    tmp = im * s
    out_re -= tmp
    out_re += 1 << 29
    out_re >>= 30
    out_im = re * s
    np.multiply(im, c, out=tmp)
    out_im += tmp
    out_im += 1 << 29
    out_im >>= 30
    return out_re, out_im


def _radix4_stage(re: np.ndarray, im: np.ndarray, tw):
    """One radix-4 DIT stage on [groups, 4, q, frames] blocks (four size-q sub-FFTs each;
    frames innermost, so every operation runs over long contiguous rows).

    X[j + r·q] for r = 0..3 from B0 = A0, B1 = W^2j·A1, B2 = W^j·A2, B3 = W^3j·A3
    (W = e^{-2πi/4q}; bit-reversed order puts the x[4n+2] sub-FFT second).
    """
    a0r, a0i = re[:, 0], im[:, 0]
    if tw is None:  # q == 1: every twiddle is 1
        b1r, b1i = re[:, 1], im[:, 1]
        b2r, b2i = re[:, 2], im[:, 2]
        b3r, b3i = re[:, 3], im[:, 3]
    else:
        (c1, s1), (c2, s2), (c3, s3) = tw  # each [q, 1]
        b1r, b1i = _cmul_q30(re[:, 1], im[:, 1], c2, s2)
        b2r, b2i = _cmul_q30(re[:, 2], im[:, 2], c1, s1)
        b3r, b3i = _cmul_q30(re[:, 3], im[:, 3], c3, s3)
    t0r, t0i = a0r + b1r, a0i + b1i
    t1r, t1i = a0r - b1r, a0i - b1i
    t2r, t2i = b2r + b3r, b2i + b3i
    t3r, t3i = b2r - b3r, b2i - b3i
    out_re = np.empty_like(re)
    out_im = np.empty_like(im)
    np.add(t0r, t2r, out=out_re[:, 0])
    np.add(t0i, t2i, out=out_im[:, 0])
    np.add(t1r, t3i, out=out_re[:, 1])  # t1 - i·t3
    np.subtract(t1i, t3r, out=out_im[:, 1])
    np.subtract(t0r, t2r, out=out_re[:, 2])
    np.subtract(t0i, t2i, out=out_im[:, 2])
    np.subtract(t1r, t3i, out=out_re[:, 3])  # t1 + i·t3
    np.add(t1i, t3r, out=out_im[:, 3])
    return out_re, out_im


@dataclass(frozen=True)
class _Tables:
    window_q30: np.ndarray  # int64 [window_length]
    bitrev: np.ndarray  # int64 [M]
    first_radix2: bool  # log2(N/2) odd: one radix-2 stage before the radix-4 stages
    radix4_stages: tuple  # (q, None | ((c1, s1), (c2, s2), (c3, s3))) Q30 W^{r·j}, [q, 1]
    even_bitrev: np.ndarray  # int64 [M]: 2·bitrev, the even samples in bit-reversed order
    split_idx: np.ndarray  # int64 [M+1]: k mod M
    split_rev: np.ndarray  # int64 [M+1]: (M - k) mod M
    split_cos: np.ndarray  # int64 [M+1], Q30
    split_sin: np.ndarray  # int64 [M+1], Q30 (of -sin)
    mel_channel: np.ndarray  # int64 [num_bins]
    mel_upper_q15: np.ndarray  # int64 [num_bins]
    mel_lower_q15: np.ndarray  # int64 [num_bins]
    log_table_q16: np.ndarray  # int64 [129]
    log_offset_q16: int  # constant added to log2 (Q16)
    db_per_log2_q16: int  # 10·log10(2) in Q16
    db_min_q16: int
    db_step_q16: int


def _build_tables(c: MelConfig) -> _Tables:
    n = c.fft_length
    m_half = n // 2
    k = np.arange(c.window_length)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * k / c.window_length)  # periodic Hann
    # Q30, not Q15: a Q15 window's rounding leaks at about -100 dB, Q30's far below the
    # 2^-20 block-floating rounding, so the whole path keeps ~120 dB of dynamic range.
    window_q30 = np.round(hann * Q30).astype(np.int64)
    first_radix2 = (m_half.bit_length() - 1) % 2 == 1
    stages = []
    q = 2 if first_radix2 else 1
    while 4 * q <= m_half:
        j = np.arange(q)
        tw = None if q == 1 else tuple(
            (np.round(np.cos(-2.0 * np.pi * r * j / (4 * q)) * Q30).astype(np.int64)[:, None],
             np.round(np.sin(-2.0 * np.pi * r * j / (4 * q)) * Q30).astype(np.int64)[:, None])
            for r in (1, 2, 3)
        )
        stages.append((q, tw))
        q *= 4
    kk = np.arange(m_half + 1)
    ang = -2.0 * np.pi * kk / n
    channel, weight = mel_split(c)
    upper = np.round(weight * Q15).astype(np.int64)
    lower = np.where(channel >= 0, Q15 - upper, 0).astype(np.int64)
    log_table = np.round(np.log2(1.0 + np.arange(129) / 128.0) * Q16).astype(np.int64)
    # Undo every fixed scale, in log2 units: the FFT returns 2·X (2 bits of power), the
    # window is Q30 (60 bits of power), power >> 16, Mel weights are Q15; and divide by the
    # window energy so 0 dB is 1 LSB² per bin (white noise of variance σ² reads σ² per bin).
    window_energy = float(np.sum((window_q30.astype(np.float64) / Q30) ** 2))
    offset_log2 = -2 - 60 + _POWER_SHIFT - 15 - math.log2(window_energy)
    return _Tables(
        window_q30=window_q30,
        bitrev=_bit_reverse(m_half),
        first_radix2=first_radix2,
        radix4_stages=tuple(stages),
        even_bitrev=2 * _bit_reverse(m_half),
        split_idx=np.arange(m_half + 1) % m_half,
        split_rev=(m_half - np.arange(m_half + 1)) % m_half,
        split_cos=np.round(np.cos(ang) * Q30).astype(np.int64),
        split_sin=np.round(np.sin(ang) * Q30).astype(np.int64),
        mel_channel=channel,
        mel_upper_q15=upper,
        mel_lower_q15=lower,
        log_table_q16=log_table,
        log_offset_q16=round(offset_log2 * Q16),
        db_per_log2_q16=round(10.0 * math.log10(2.0) * Q16),
        db_min_q16=round(c.db_min * Q16),
        db_step_q16=round(c.db_step * Q16),
    )


class MelFrontEnd:
    """Streaming fixed-point log-Mel front end.

    ``push(chunk)`` takes int16 samples in any chunking and returns the int8 frames
    [n, num_mels] completed by them; the concatenation over any chunking is bit-identical
    to :meth:`process` over the whole signal. ``reset()`` forgets buffered samples (after a
    gap in the stream, so no frame spans it).
    """

    #: frames computed per vectorised block (bounds memory on a 1 GB box)
    block_frames = 256

    def __init__(self, config: MelConfig | None = None) -> None:
        self.config = config or default_mel_config()
        self.tables = _build_tables(self.config)
        self._pending = np.zeros(0, dtype=np.int16)
        self.samples_consumed = 0
        """Samples pushed since construction or the last reset (for frame time stamps)."""
        self.frames_emitted = 0

    # ---- streaming -------------------------------------------------------------------
    def push(self, chunk: np.ndarray) -> np.ndarray:
        samples = check_int16(chunk, allow_empty=True)
        self.samples_consumed += samples.size
        buf = np.concatenate([self._pending, samples]) if self._pending.size else samples
        n = self.config.num_frames(buf.size)
        out = self._frames_to_int8(buf, n)
        self._pending = buf[n * self.config.hop_length :].copy()
        self.frames_emitted += n
        return out

    def reset(self) -> None:
        self._pending = np.zeros(0, dtype=np.int16)
        self.samples_consumed = 0
        self.frames_emitted = 0

    def process(self, samples: np.ndarray) -> np.ndarray:
        """One-shot: every full frame of ``samples`` (stateless; the stream is untouched)."""
        x = check_int16(samples)
        n = self.config.num_frames(x.size)
        if n == 0:
            raise InputError(
                f"signal too short: {x.size} samples, a frame needs {self.config.window_length}"
            )
        return self._frames_to_int8(x, n)

    def _frames_to_int8(self, x: np.ndarray, n: int) -> np.ndarray:
        c = self.config
        out = np.empty((n, c.num_mels), dtype=np.int8)
        if n == 0:
            return out
        view = np.lib.stride_tricks.sliding_window_view(x, c.window_length)[:: c.hop_length]
        for s in range(0, n, self.block_frames):
            out[s : s + self.block_frames] = self.frames_int8(view[s : s + self.block_frames])
        return out

    # ---- the integer pipeline, stage by stage -------------------------------------------
    def frames_int8(self, frames: np.ndarray) -> np.ndarray:
        """int16 [n, window_length] -> int8 [n, num_mels]."""
        return self.to_int8(self.log2_q16(*self.mel_with_exponent(frames)))

    def mel_with_exponent(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xw = self.window(frames)
        xn, shift = self.normalize(xw)
        re, im = self.fft(xn)
        return self.mel(self.power(re, im)), shift

    def stages(self, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Every intermediate, for tests and debugging."""
        xw = self.window(frames)
        xn, shift = self.normalize(xw)
        re, im = self.fft(xn)
        p = self.power(re, im)
        mel = self.mel(p)
        lg = self.log2_q16(mel, shift)
        return {"windowed": xw, "normalized": xn, "shift": shift, "fft_re": re, "fft_im": im,
                "power": p, "mel": mel, "log2_q16": lg, "int8": self.to_int8(lg)}

    def window(self, frames: np.ndarray) -> np.ndarray:
        """int16 [n, W] -> int64 x·w in Q30 (|x·w| <= 2^45)."""
        return frames.astype(np.int64) * self.tables.window_q30

    def normalize(self, xw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Block floating point: int64 frames with peak < 2^20 (zero-padded to the FFT
        length) and each frame's shift (positive = shifted left)."""
        c = self.config
        peak = np.abs(xw).max(axis=1).astype(np.int64)
        shift = _NORM_BITS - _bit_length(peak)  # in -26..20
        left = np.maximum(shift, 0)[:, None]
        right = np.maximum(-shift, 0)[:, None]
        # One of left/right is 0 per frame. The left shift is a multiply (<< of a negative
        # value is undefined in C); the right shift rounds half up.
        half = (np.int64(1) << right) >> 1
        x = (xw * (np.int64(1) << left) + half) >> right
        if c.window_length < c.fft_length:
            x = np.pad(x, ((0, 0), (0, c.fft_length - c.window_length)))
        return x, shift

    def fft(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Real FFT of int64 [n, N] (|x| <= 2^20) -> 2·X[k], k = 0..N/2, as int64 re, im.

        N/2-point complex FFT of z = x[0::2] + i·x[1::2] (bit-reversed input, one radix-2
        stage if log2(N/2) is odd, then radix-4 DIT stages with Q30 twiddles and
        round-half-up after each product), then the real-FFT split step. Computed with
        the frames innermost ([bins, n]: long contiguous rows for numpy); the result is
        returned as [n, N/2 + 1] views.
        Bounds: |Z| < 2^28.5, products < 2^59.5, |2X| < 2^30: int64 never overflows.
        """
        t = self.tables
        n = x.shape[0]
        m_half = t.bitrev.size
        xt = np.ascontiguousarray(x.T)  # gathering rows from a copy beats a strided view
        re = xt[t.even_bitrev]  # z = x[2n] + i·x[2n+1], bit-reversed: [M, n]
        im = xt[t.even_bitrev + 1]
        if t.first_radix2:
            r = re.reshape(-1, 2, n)
            i = im.reshape(-1, 2, n)
            re = np.concatenate([r[:, :1] + r[:, 1:], r[:, :1] - r[:, 1:]], axis=1)
            im = np.concatenate([i[:, :1] + i[:, 1:], i[:, :1] - i[:, 1:]], axis=1)
        for q, tw in t.radix4_stages:
            re, im = _radix4_stage(re.reshape(-1, 4, q, n), im.reshape(-1, 4, q, n), tw)
        zr = re.reshape(m_half, n)
        zi = im.reshape(m_half, n)
        # split: Z_k and conj(Z_{M-k}) for k = 0..M (Z_M = Z_0)
        ar, ai = zr[t.split_idx], zi[t.split_idx]
        br, bi = zr[t.split_rev], -zi[t.split_rev]
        er, ei = ar + br, ai + bi  # Z_k + conj(Z_{M-k})
        dr, di = ar - br, ai - bi  # Z_k - conj(Z_{M-k})
        c, s = t.split_cos[:, None], t.split_sin[:, None]  # W^k = c + i·s; T = W·(-i·D)
        out_re = er + _round_shift(c * di + s * dr, 30)
        out_im = ei + _round_shift(s * di - c * dr, 30)
        return out_re.T, out_im.T

    def power(self, re: np.ndarray, im: np.ndarray) -> np.ndarray:
        """|2X|² >> 16, int64 (< 2^45 per bin)."""
        return _round_shift(re * re + im * im, _POWER_SHIFT)

    def mel(self, power: np.ndarray) -> np.ndarray:
        """Q15-weighted Mel energies, int64 [n, num_mels] (< 2^60)."""
        t = self.tables
        nm = self.config.num_mels
        n = power.shape[0]
        out = np.zeros((n, nm + 2), dtype=np.int64)  # columns: channel -1 .. num_mels
        # Bins are sorted by channel, so each channel's bins are one contiguous run.
        ch = t.mel_channel
        valid = np.flatnonzero(ch >= 0)
        chv = ch[valid]
        starts = np.flatnonzero(np.r_[True, chv[1:] != chv[:-1]])
        cols = chv[starts]
        up = np.add.reduceat(power[:, valid] * t.mel_upper_q15[valid], starts, axis=1)
        lo = np.add.reduceat(power[:, valid] * t.mel_lower_q15[valid], starts, axis=1)
        out[:, cols + 1] += up  # rising edge of channel c
        out[:, cols] += lo  # falling edge of channel c-1
        return out[:, 1 : nm + 1]

    def log2_q16(self, mel: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """log2 of the true Mel energy in Q16 (int64); 0 energy -> a very small value."""
        t = self.tables
        v = np.maximum(mel, 1)
        msb = _bit_length(v) - 1
        norm = np.where(msb >= 30, v >> np.maximum(msb - 30, 0), v << np.maximum(30 - msb, 0))
        frac = norm - Q30  # 30 bits below the leading one
        idx = frac >> (30 - _LOG_TABLE_BITS)
        rem = frac & ((1 << (30 - _LOG_TABLE_BITS)) - 1)
        lo = t.log_table_q16[idx]
        hi = t.log_table_q16[idx + 1]
        frac_q16 = lo + _round_shift((hi - lo) * rem, 30 - _LOG_TABLE_BITS)
        log2 = msb * Q16 + frac_q16 + t.log_offset_q16 - 2 * Q16 * shift[:, None]
        return np.where(mel > 0, log2, np.int64(-(1 << 40)))

    def to_int8(self, log2_q16: np.ndarray) -> np.ndarray:
        """dB = log2·10·log10(2); q = round((dB − db_min)/db_step) − 128, saturated."""
        t = self.tables
        db_q16 = _round_shift(log2_q16 * t.db_per_log2_q16, 16)
        q = (db_q16 - t.db_min_q16 + (t.db_step_q16 >> 1)) // t.db_step_q16 - 128
        return np.clip(q, -128, 127).astype(np.int8)

    def db_q16(self, log2_q16: np.ndarray) -> np.ndarray:
        """The fixed-point dB before int8 mapping (Q16), for accuracy reports."""
        return _round_shift(log2_q16 * self.tables.db_per_log2_q16, 16)

    @cached_property
    def table_digest(self) -> str:
        """sha256 over every table: pinned by the golden test so tables cannot drift."""
        t = self.tables
        h = hashlib.sha256()
        stage_tw = [a for _, tw in t.radix4_stages if tw for pair in tw for a in pair]
        for a in (t.window_q30, t.bitrev, *stage_tw,
                  t.split_cos, t.split_sin, t.mel_channel, t.mel_upper_q15, t.mel_lower_q15,
                  t.log_table_q16):
            h.update(np.ascontiguousarray(a, dtype=np.int64).tobytes())
        for v in (t.log_offset_q16, t.db_per_log2_q16, t.db_min_q16, t.db_step_q16):
            h.update(int(v).to_bytes(16, "little", signed=True))
        return h.hexdigest()


def check_int16(samples: np.ndarray, *, allow_empty: bool = False) -> np.ndarray:
    """The front end's input contract: a 1-D int16 array (clear error otherwise)."""
    if not isinstance(samples, np.ndarray):
        raise InputError(f"samples must be a numpy int16 array, not {type(samples).__name__}")
    if samples.dtype != np.int16:
        hint = " (convert float sources with edge.features.float_to_int16)" \
            if samples.dtype.kind == "f" else ""
        raise InputError(f"samples must be int16, got {samples.dtype}{hint}")
    if samples.ndim != 1:
        raise InputError(f"samples must be one channel (1-D), got shape {samples.shape}")
    if samples.size == 0 and not allow_empty:
        raise InputError("no samples (empty signal)")
    return samples


def float_to_int16(samples: np.ndarray, lsb: float = 1.0) -> np.ndarray:
    """Quantise a float signal (in units where one LSB is ``lsb``) to int16, saturating.

    NaN or infinite values are an error, not silently zeroed: they mean a broken source.
    """
    x = np.asarray(samples)
    if x.dtype.kind not in "fiu":
        raise InputError(f"samples must be numeric, got {x.dtype}")
    if x.size == 0:
        raise InputError("no samples (empty signal)")
    if x.dtype.kind == "f":
        bad = ~np.isfinite(x)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise InputError(f"{int(bad.sum())} NaN/infinite sample(s), first at index {first}")
    if lsb <= 0:
        raise InputError(f"lsb must be positive (got {lsb})")
    from edge.recording import uv_to_int16

    return uv_to_int16(x, lsb)
