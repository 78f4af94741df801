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

**Exact, and fast.** |x| ≤ 2¹⁵ and a phase's taps have Σ|h| < 2¹⁷ (checked), so every
product and every partial sum is an integer below 2³², far below 2⁵³: they are computed
exactly in float64, in any summation order, with or without fused multiply-adds, on any
machine, by BLAS matrix products that each give one block of consecutive outputs of many
periods of the ratio at once (see :class:`_Plan`), a chunk of input at a time. The result
does not depend on how the input is chunked (:class:`StreamResampler` keeps the history a
chunk boundary needs). Golden vectors in the tests pin the taps and outputs.
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
        # The inputs still needed, from stream index self._start on (before the signal and
        # after the newest input, _apply reads zeros).
        self._start = 0
        self._x = np.zeros(0, dtype=np.int16)
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
        self._x = np.concatenate([self._x, x])
        self.n_in += x.size
        return self._produce(self.n_in - 1)

    def flush(self) -> np.ndarray:
        """The outputs still owed at the end (the signal continues as zeros), so that
        ``ceil(n_in · L / M)`` samples come out in all."""
        total = -(-self.n_in * self.up // self.down)
        if total <= self.n_out:
            return np.zeros(0, np.int16)
        # the inputs past the newest read as zeros (_apply)
        return self._produce(self.f.newest(total - 1), total)

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


@dataclass(frozen=True)
class _Plan:
    """How :func:`_apply` computes one ratio's outputs (derived from its taps alone).

    Outputs come in *groups* of ``period_out`` (a multiple of ``up``): output
    ``n + period_out`` reads the inputs output ``n`` reads moved on by ``period_in`` (the
    same multiple of ``down``), with the same taps. A group is cut into blocks of ``width``
    consecutive outputs; the outputs of block ``j`` read only the ``rows[j] <= period_in``
    inputs from stream index ``lo + offsets[j] + g·period_in`` on (group ``g``). So those
    inputs, one row per group, are a strided view of the input that never overlaps itself
    (a BLAS operand as it stands, no copy), and one matrix product with
    ``weights[j, :rows[j]]`` gives that block of every group at once: its column ``i``
    holds the taps / 2¹⁵ of the block's output ``i`` at that output's offset in the row,
    zeros elsewhere (and when ``width`` does not divide ``period_out``, the last block's
    columns past the group's end are all zeros).
    """

    period_out: int
    period_in: int
    width: int
    lo: int
    """Stream index of the first input group 0 reads (its first output's oldest)."""
    span: int
    """How many inputs from ``lo`` on group 0 reads."""
    offsets: tuple[int, ...]
    rows: tuple[int, ...]
    weights: np.ndarray
    """float64 [blocks, max(rows), width]."""
    pick: np.ndarray
    """int [blocks, max(rows)]: ``offsets[j] + arange(max(rows))`` (clipped to the group's
    span: past rows[j] the weights are zero), for a few groups at a time (see _apply)."""


#: Block widths tried, and the cost model that picks one: a block of ``u`` outputs reads
#: ``F ≈ K + (u − 1)·M/L`` inputs per output (the extra ones with a zero tap), and a matrix
#: product ``n × F @ F × u`` runs at ≈ ``u / (u + 6)`` of the speed of a wide one (OpenBLAS
#: dgemm, measured; narrow products cost more per multiply-add, and widths that are not a
#: multiple of 4 more still), times the share of a narrower last block's zero columns;
#: of two about as fast, the one with fewer blocks per group (fewer calls: small blocks of
#: a live stream).
_WIDTHS = (4, 8, 12, 16, 20, 24, 32, 40, 48, 64)
_NARROW = 6
_CHUNK = 1 << 17
"""Inputs taken to float64 and resampled at a time (1 MiB: stays in cache)."""
_FEW = 600
"""Up to this many (groups × rows of a block), gather the rows of every block and make
one batched matrix product rather than one per block (a call costs more than that)."""


def _layout(up: int, down: int, k: int, u: int) -> tuple[int, int]:
    """(rows, c) for blocks of ``u`` outputs: the inputs a block reads at most, and the
    periods in a group: c·down ≥ rows, so that a block's rows do not overlap, and c·up a
    multiple of u if that does not take more than twice as many periods (else the last
    block of a group is narrower, padded with zero taps)."""
    rows = k + -(-(u - 1) * down // up)  # ≥ what u consecutive outputs read
    c = -(-rows // down)
    m = u // math.gcd(u, up)
    return rows, (-(-c // m) * m if -(-c // m) * m <= 2 * c else c)


def _width(up: int, down: int, k: int) -> int:
    def cost(u: int) -> float:
        rows, c = _layout(up, down, k, u)
        blocks = -(-c * up // u)
        return rows * (u + _NARROW) / u * blocks * u / (c * up) * (1 + blocks / 1000)

    return min(_WIDTHS, key=cost)


@lru_cache(maxsize=32)
def _plan(up: int, down: int) -> _Plan:
    """The blocks of :class:`_Plan` for ``up/down`` (cached: one plan per ratio)."""
    f = design(up, down)
    up, down, k = f.up, f.down, f.k
    # Exact in float64: |x| ≤ 2¹⁵ and each phase's taps have Σ|h| < 2¹⁷ (≈ 2.1·2¹⁵ for this
    # design; checked here), so every partial sum of x·h, in any order, with or without
    # fused multiply-adds, is an integer of magnitude < 2³², far below 2⁵³. Dividing the
    # taps by 2¹⁵ only scales all of these by a power of two: still exact.
    if int(np.abs(f.taps.astype(np.int64)).sum(axis=1).max()) >= 1 << 17:
        raise ConfigError(f"resampling filter {up}/{down}: taps too large for exact sums")
    taps = f.taps.astype(np.float64) / 32768.0
    u = _width(up, down, k)
    _, c = _layout(up, down, k, u)
    p_out, p_in = c * up, c * down

    def first(n: int) -> int:
        return f.newest(n) - k + 1

    lo, span = first(0), f.newest(p_out - 1) + 1 - first(0)
    starts = range(0, p_out, u)
    offsets = tuple(first(c0) - lo for c0 in starts)
    rows = tuple(f.newest(min(c0 + u, p_out) - 1) + 1 - first(c0) for c0 in starts)
    if max(rows) > p_in:
        raise AssertionError("a block's rows would overlap")
    weights = np.zeros((len(offsets), max(rows), u))
    for j, c0 in enumerate(starts):
        for i in range(min(u, p_out - c0)):
            o = first(c0 + i) - first(c0)
            weights[j, o : o + k, i] = taps[((c0 + i) * down + f.half) % up]
    pick = np.minimum(np.add.outer(np.array(offsets), np.arange(max(rows))), span - 1)
    weights.flags.writeable = pick.flags.writeable = False  # shared by every caller
    return _Plan(p_out, p_in, u, lo, span, offsets, rows, weights, pick)


def _apply(f: Polyphase, x: np.ndarray, start: int, n0: int, n1: int) -> np.ndarray:
    """Outputs n0..n1-1 of the stream whose inputs from index ``start`` on are ``x``, and
    zeros before and after it (so x must hold every input these outputs read that is not
    zero)."""
    pl = _plan(f.up, f.down)
    p_out, p_in, u = pl.period_out, pl.period_in, pl.width
    width = len(pl.offsets) * u  # a group's outputs, and the last block's padding
    out = np.empty(n1 - n0, dtype=np.int16)
    if n1 <= n0:
        return out
    g0, g1 = n0 // p_out, -(-n1 // p_out)  # the groups these outputs are in, computed whole
    step = max(1, _CHUNK // p_in)
    buf = np.empty((min(step, g1 - g0) - 1) * p_in + pl.span)
    acc = None
    for ga in range(g0, g1, step):
        gb = min(ga + step, g1)
        # buf: the inputs groups ga..gb-1 read (stream index ga·p_in + lo on), as float64
        # (exact), zeros outside x
        lo = ga * p_in + pl.lo - start
        hi = lo + (gb - ga - 1) * p_in + pl.span
        xa, xb = min(max(lo, 0), x.size), min(max(hi, 0), x.size)
        buf[: xa - lo] = 0.0
        buf[xa - lo : xb - lo] = x[xa:xb]
        buf[xb - lo : hi - lo] = 0.0
        if (gb - ga) * pl.pick.shape[1] <= _FEW:
            # every group's rows of every block, gathered: [groups, blocks, 1, rows]
            rows = np.ndarray((gb - ga, pl.span), np.float64, buf, 0, (p_in * 8, 8))
            y = np.matmul(rows[:, pl.pick[:, None, :]], pl.weights).reshape(-1, width)
        else:
            if acc is None:
                acc = np.empty((min(step, g1 - g0), width))
            y = acc[: gb - ga]
            for j, (off, n) in enumerate(zip(pl.offsets, pl.rows, strict=True)):
                # (ndarray checks that the view stays inside buf)
                rows = np.ndarray((gb - ga, n), np.float64, buf, off * 8, (p_in * 8, 8))
                np.matmul(rows, pl.weights[j, :n], out=y[:, j * u : (j + 1) * u])
        if width > p_out:
            y = np.ascontiguousarray(y[:, :p_out])
        # this chunk's share of n0..n1-1
        m0, m1 = max(n0, ga * p_out), min(n1, gb * p_out)
        y = y.reshape(-1)[m0 - ga * p_out : m1 - ga * p_out]
        # sat16(floor(y + 1/2)) is the exact sat16((Σ h·x + 2¹⁴) >> 15): y is that sum / 2¹⁵,
        # a multiple of 2⁻¹⁵ below 2¹⁷ in magnitude, so adding a half and flooring are exact.
        np.add(y, 0.5, out=y)
        np.floor(y, out=y)
        np.clip(y, -32768, 32767, out=out[m0 - n0 : m1 - n0], casting="unsafe")
    return out


def output_length(n_in: int, in_rate_hz: float, out_rate_hz: float) -> int:
    """Samples out for ``n_in`` in: ``ceil(n_in · L / M)``."""
    if math.isclose(in_rate_hz, out_rate_hz):
        return n_in
    up, down = ratio(in_rate_hz, out_rate_hz)
    return -(-n_in * up // down)


def resample_int16(x: np.ndarray, in_rate_hz: float, out_rate_hz: float) -> np.ndarray:
    """A whole signal at once (the same as streaming it in any chunks)."""
    x = np.asarray(x, dtype=np.int16)
    if math.isclose(in_rate_hz, out_rate_hz):
        return x
    if x.ndim != 1:  # refused as StreamResampler.push refuses it
        r = StreamResampler(in_rate_hz, out_rate_hz)
        return np.concatenate([r.push(x), r.flush()])
    f = design(*ratio(in_rate_hz, out_rate_hz))
    # what StreamResampler.push then .flush return: zeros before and after the signal
    return _apply(f, x, 0, 0, -(-x.size * f.up // f.down))
