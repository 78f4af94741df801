"""A fixed-point polyphase resampler: int16 in, int16 out, bit-exact everywhere.

Any rational ratio ``L/M`` (16 kHz boards, 4 kHz archives, 23,437.5 Hz WFDB files,
44.1/48 kHz audio, all brought to the model's 20 kHz). One prototype low-pass filter, a
Kaiser-windowed sinc cut at the lower of the two Nyquist frequencies, is split into ``L``
phases; each phase's taps are quantised to Q15 with their sum exactly 2¹⁵ (so a constant
passes unchanged). Output sample ``n`` is

    y[n] = sat16((Σ_m h[p + m·L] · x[i − m] + 2¹⁴) >> 15),
    p = (n·M + H) mod L,  i = ⌊(n·M + H) / L⌋

with ``H`` the prototype's half length at the upsampled rate (zero delay: output ``n`` is
at time ``n/fs_out``; inputs before the first and after the last are zeros).

**Exact, and fast.** Every product is an integer below 2³⁰ and every sum below 2⁵³, so
they are computed exactly in float64, by strided matrix products (one per phase), in any
summation order, on any machine. The result does not depend on how the input is chunked
(:class:`StreamResampler` keeps the history a chunk boundary needs). Golden vectors in the
tests pin the taps and outputs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

import numpy as np

from edge.errors import ConfigError

HALF_TAPS_PER_PHASE = 24
"""Zero crossings of the sinc on each side, at the lower rate (≈ 48 input samples per
output at the lower rate): with :data:`KAISER_BETA`, a transition band ≈ 0.2 of Nyquist
wide (Kaiser's formula: N ≈ (A − 8) / (2.285 Δω))."""
KAISER_BETA = 8.0
"""≈ 80 dB stop band before quantisation (A ≈ 8.7 β + 12)."""
CUTOFF = 0.9
"""The filter's −6 dB point as a share of the lower Nyquist frequency: flat to 0.8 of it
(8 kHz at 20 kHz, the model's top Mel band), and every tone that would fold back below
0.8 lies in the stop band."""
MAX_DENOMINATOR = 1000
RATE_TOLERANCE = 1e-4
"""A rate measured from a time column (CSV) is an estimate: the ratio used may differ from
it by this much (0.36 s an hour)."""


def ratio(in_rate_hz: float, out_rate_hz: float) -> tuple[int, int]:
    """(L, M): up by L, down by M (a fractional source rate like 23,437.5 Hz is exact)."""
    r = Fraction(out_rate_hz).limit_denominator(10**6) / \
        Fraction(in_rate_hz).limit_denominator(10**6)
    r = r.limit_denominator(MAX_DENOMINATOR)
    if abs(float(r) - out_rate_hz / in_rate_hz) > RATE_TOLERANCE * out_rate_hz / in_rate_hz:
        raise ConfigError(f"{in_rate_hz:g} → {out_rate_hz:g} Hz is not within "
                          f"{RATE_TOLERANCE:.0e} of a ratio of small integers "
                          f"(denominator ≤ {MAX_DENOMINATOR})")
    return r.numerator, r.denominator


@dataclass(frozen=True)
class Polyphase:
    """The quantised filter of one ratio."""

    up: int
    down: int
    taps: np.ndarray
    """int32 [up, K]: phase p's Q15 taps, oldest input first."""
    half: int
    """The prototype's half length, in samples of the upsampled rate."""

    @property
    def k(self) -> int:
        return self.taps.shape[1]

    def newest(self, n: int) -> int:
        """Index of the newest input sample output ``n`` reads."""
        return (n * self.down + self.half) // self.up


@lru_cache(maxsize=32)
def design(up: int, down: int) -> Polyphase:
    """The Q15 polyphase filter for ``up/down`` (cached: one design per ratio)."""
    if up < 1 or down < 1:
        raise ConfigError(f"resampling ratio {up}/{down} is not positive")
    g = math.gcd(up, down)
    up, down = up // g, down // g
    # Prototype at the upsampled rate; cut at the lower Nyquist: 1/(2·max(up, down)).
    fc = CUTOFF / (2 * max(up, down))
    half = HALF_TAPS_PER_PHASE * max(up, down)  # taps on each side at the upsampled rate
    t = np.arange(-half, half + 1, dtype=np.float64)
    h = 2 * fc * np.sinc(2 * fc * t) * np.kaiser(t.size, KAISER_BETA)
    # Phase p takes the prototype's taps p, p+up, ...; pad so every phase has K taps.
    k = -(-t.size // up)
    full = np.zeros(k * up)
    full[: h.size] = h
    phases = full.reshape(k, up).T  # [up, k]: phase p's taps, newest input first
    taps = np.zeros((up, k), dtype=np.int32)
    for p in range(up):
        taps[p] = _q15_exact_sum(phases[p])
    # oldest input first: the matrix products below read inputs in increasing time
    return Polyphase(up, down, taps[:, ::-1].copy(), half)


def _q15_exact_sum(c: np.ndarray) -> np.ndarray:
    """Round to Q15 so that the taps sum to exactly 2¹⁵ (largest remainders take the
    difference; ties broken by index, so the result is deterministic)."""
    s = c.sum()
    scaled = c / s * 32768.0 if s != 0 else c * 0
    q = np.floor(scaled).astype(np.int64)
    short = 32768 - int(q.sum())
    order = np.lexsort((np.arange(c.size), -(scaled - q)))
    q[order[:short]] += 1
    return q.astype(np.int32)


class StreamResampler:
    """Feed int16 blocks of any size; the output is the same for any chunking."""

    def __init__(self, in_rate_hz: float, out_rate_hz: float) -> None:
        self.up, self.down = ratio(in_rate_hz, out_rate_hz)
        self.f = design(self.up, self.down)
        # The inputs still needed, from stream index self._start on (negative indices:
        # the zeros before the signal).
        self._start = min(0, self._first_needed(0))
        self._x = np.zeros(-self._start, dtype=np.float64)
        self.n_in = 0
        """Input samples received."""
        self.n_out = 0
        """Output samples produced."""

    def _first_needed(self, n: int) -> int:
        """Stream index of the oldest input output ``n`` reads."""
        return self.f.newest(n) - self.f.k + 1

    def push(self, x: np.ndarray) -> np.ndarray:
        """Resample the next block; returns every output whose inputs have all arrived."""
        x = np.asarray(x)
        if x.dtype != np.int16:
            raise ConfigError("the resampler takes int16 samples")
        self._x = np.concatenate([self._x, x.astype(np.float64)])
        self.n_in += x.size
        return self._produce(self.n_in - 1)

    def flush(self) -> np.ndarray:
        """The outputs still owed at the end (the signal continues as zeros), so that
        ``ceil(n_in · L / M)`` samples come out in all."""
        total = -(-self.n_in * self.up // self.down)
        if total <= self.n_out:
            return np.zeros(0, np.int16)
        have = self._start + self._x.size - 1
        pad = max(0, self.f.newest(total - 1) - have)
        self._x = np.concatenate([self._x, np.zeros(pad)])
        return self._produce(have + pad, total)

    def _produce(self, last_available: int, limit: int | None = None) -> np.ndarray:
        """Every output whose newest input is at most ``last_available`` (and < limit)."""
        f = self.f
        n_end = (last_available * f.up + f.up - 1 - f.half) // f.down + 1
        if limit is not None:
            n_end = min(n_end, limit)
        n0 = self.n_out
        if n_end <= n0:
            return np.zeros(0, np.int16)
        y = _apply(f, self._x, self._start, n0, n_end)
        self.n_out = n_end
        drop = max(0, self._first_needed(n_end) - self._start)  # no later output reads it
        self._x = self._x[drop:]
        self._start += drop
        return y


def _apply(f: Polyphase, x: np.ndarray, start: int, n0: int, n1: int) -> np.ndarray:
    """Outputs n0..n1-1 from the inputs ``x`` (stream index of x[0] is ``start``)."""
    up, down, k = f.up, f.down, f.k
    out = np.empty(n1 - n0, dtype=np.int16)
    taps = f.taps.astype(np.float64)
    stride = x.strides[0]
    for r in range(up):  # the outputs of one phase read inputs at a stride of `down`
        first = n0 + ((r - n0) % up)
        if first >= n1:
            continue
        count = (n1 - 1 - first) // up + 1
        p = (first * down + f.half) % up
        base = f.newest(first) - k + 1 - start  # x index of its oldest tap
        rows = np.lib.stride_tricks.as_strided(x[base:], shape=(count, k),
                                               strides=(down * stride, stride),
                                               writeable=False)
        acc = rows @ taps[p]  # exact: integers below 2⁵³
        y = (acc.astype(np.int64) + (1 << 14)) >> 15
        out[first - n0 :: up] = np.clip(y, -32768, 32767)
    return out


def output_length(n_in: int, in_rate_hz: float, out_rate_hz: float) -> int:
    """Samples out for ``n_in`` in: ``ceil(n_in · L / M)``."""
    if math.isclose(in_rate_hz, out_rate_hz):
        return n_in
    up, down = ratio(in_rate_hz, out_rate_hz)
    return -(-n_in * up // down)


def resample_int16(x: np.ndarray, in_rate_hz: float, out_rate_hz: float) -> np.ndarray:
    """A whole signal at once (the same as streaming it in any chunks)."""
    if math.isclose(in_rate_hz, out_rate_hz):
        return np.asarray(x, dtype=np.int16)
    r = StreamResampler(in_rate_hz, out_rate_hz)
    return np.concatenate([r.push(np.asarray(x, dtype=np.int16)), r.flush()])
