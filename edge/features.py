"""Fixed-point log-Mel features: int16 samples in, the model's int8 input tensor out.

Every device (Pi, Jetson, x86, a future microcontroller) must compute the *same bits*, so
the path from samples to features is integer arithmetic only, in this order (one function
per stage, so tests can check each stage's dtype and golden vectors can pin each one):

1. :meth:`MelFrontEnd.window`   int16 frame × periodic Hann in Q30           -> int64
2. :meth:`MelFrontEnd.normalize` block floating point: shift each frame so its
   peak uses 20 bits (exponent kept per frame)                                -> int64
3. :meth:`MelFrontEnd.fft`      real FFT via an N/2-point complex radix-4 DIT FFT (one
   radix-2 stage first if log2(N/2) is odd) and a split step, Q30 twiddles, round-half-up
   after every product; returns 2·X[k]                                        -> int64 re, im
4. :meth:`MelFrontEnd.power`    (re² + im²) >> 16 (Parseval bounds it below 2^45)  -> int64
5. :meth:`MelFrontEnd.mel`      Q15 triangular weights, each FFT bin split between two
   adjacent channels as in TFLite Micro's front end                           -> int64
6. :meth:`MelFrontEnd.log2_q16` MSB + 128-entry table with linear interpolation, then the
   block-floating exponent and every fixed scale undone as one Q16 offset      -> int64
7. :meth:`MelFrontEnd.to_int8`  dB = log2 · 10·log10(2) (Q16), affine map to int8   -> int8

Tables (window, twiddles, Mel weights, log table, offsets) are built once per config with
float64 and rounded; their sha256 is pinned by the golden-vector test, so a platform whose
libm rounds one entry differently fails loudly instead of drifting silently.

``push``/``process`` run the same arithmetic fused (:meth:`MelFrontEnd.frames_int8`): the
stages share one layout ([re, im] × bins × frames, frames innermost), preallocated buffers
and tables derived from the pinned ones (:class:`_Plan`), with only the bins that carry a
Mel weight after the FFT. Every step is an exact integer identity of the stage methods'
(a digit permutation of the FFT's memory order, integer sums regrouped, two floor
divisions merged), so both give the same bits; the stage methods stay the reference.

The level is absolute: 0 dB is 1 LSB² per FFT bin of the model's canonical int16 scale
(the board's µV/LSB is applied before this module). See docs/features.md for why.
"""

from __future__ import annotations

import hashlib
import math
import threading
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from edge.errors import InputError
from edge.spec import DEFAULT_SPEC, MelConfig

Q15 = 1 << 15
Q16 = 1 << 16
Q30 = 1 << 30
_NORM_BITS = 20  # frame peak after block-floating normalisation is < 2^20 (see fft bounds)
_POWER_SHIFT = 16  # power >> 16 keeps the Mel accumulator below 2^60
_LOG_TABLE_BITS = 7  # 128-entry log2 table


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


_POW2 = np.array([0] + [1 << k for k in range(63)], dtype=np.int64)
"""_POW2[e] = 2^(e-1) for e = 1..63, and 0 for e = 0."""


def _bit_length(v: np.ndarray) -> np.ndarray:
    """Vectorised int.bit_length for non-negative int64 (0 -> 0), exact over all of int64.

    float64(v) is exact below 2^53. Above, round-to-nearest can carry up to the next power
    of two but never below v's leading one, so frexp's exponent is the bit length or one
    more (capped at 63: only v >= 2^63 - 2^9 rounds to 2^63); one comparison with 2^(e-1)
    settles it.
    """
    v = np.asarray(v, dtype=np.int64)
    e = np.frexp(v)[1].astype(np.int64)
    np.minimum(e, 63, out=e)
    e -= v < _POW2[e]
    return e


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


@dataclass(frozen=True)
class _Tables:
    window_q30: np.ndarray  # int64 [window_length]
    bitrev: np.ndarray  # int64 [M]
    first_radix2: bool  # log2(N/2) odd: one radix-2 stage before the radix-4 stages
    radix4_stages: tuple  # (q, None | ((c1, s1), (c2, s2), (c3, s3))) Q30 W^{r·j}, [q, 1]
    even_bitrev: np.ndarray  # int64 [M]: 2·bitrev, the even samples in bit-reversed order
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


_HALF30 = np.int64(1 << 29)  # rounds a Q30 product half up before >> 30
_PEAK_BITS = 46  # |int16 × Q30 window| <= 2^15·2^30: a frame peak has at most 46 bits


class _Stage:
    """One FFT stage as the fused path runs it (see :class:`_Plan`)."""

    def __init__(self, radix: int, span: int, rest: int, layout: str,
                 c: np.ndarray | None = None, s: np.ndarray | None = None, j0: int = 0):
        self.radix = radix
        self.span = span  # J: sub-FFT length q going in (product of the radices before)
        self.rest = rest  # G: product of the radices after
        self.layout = layout  # "A" (digit-reversed) or "B" (DIT order)
        self.c, self.s, self.j0 = c, s, j0  # twiddles broadcastable to the twiddled slots


class _MelLayout:
    """Where the Mel step reads the power (see :func:`_mel_energies`).

    Channel c = Σ_{run c} P·upper + Σ_{run c+1} P·lower = RU[c] + RL[c+1], with RU, RL the
    sums of P·upper and P·lower over the run of bins whose channel index is c (runs are
    contiguous: bins are sorted by channel). The runs (1 to a dozen bins) are
    sorted by length and cut into a few classes; each class is padded to its longest run
    with a zero row, so that all of its runs sum in one reduction over whole rows.
    """

    def __init__(self, t: _Tables, k0: int, k1: int, nm: int, classes: int = 4) -> None:
        chv = t.mel_channel[k0:k1]
        k = chv.size
        starts = np.flatnonzero(np.r_[True, chv[1:] != chv[:-1]]) if k else np.zeros(0, int)
        lens = np.diff(np.r_[starts, k])
        order = np.argsort(lens, kind="stable")
        cuts = self._cut(lens[order], min(classes, starts.size))
        rows: list[int] = []
        self.classes = []  # (first padded row, runs, padded length, first run slot)
        slot = np.empty(starts.size, dtype=np.int64)
        for i, j in cuts:
            length = int(lens[order[j - 1]])
            self.classes.append((len(rows), j - i, length, i))
            for q, run in enumerate(order[i:j]):
                slot[run] = i + q
                rows += list(range(starts[run], starts[run] + lens[run]))
                rows += [k] * (length - lens[run])  # row k of the power buffer stays 0
        self.rows = np.array(rows, dtype=np.int64)
        self.num_runs = starts.size
        weights = np.stack([t.mel_upper_q15[k0:k1], t.mel_lower_q15[k0:k1]])
        self.weights = np.pad(weights, ((0, 0), (0, 1)))[:, self.rows, None]  # [2, rows, 1]
        # channel index 0..nm -> its run's slot, or num_runs (a zero row) if it has none
        of_channel = np.full(nm + 1, starts.size, dtype=np.int64)
        of_channel[chv[starts]] = slot
        self.of_channel = of_channel

    @staticmethod
    def _cut(lengths: np.ndarray, classes: int) -> list[tuple[int, int]]:
        """Split sorted lengths into contiguous classes minimising the padded total."""
        r = lengths.size
        if r == 0:
            return []
        best = {(0, 0): (0, 0)}
        for c in range(1, classes + 1):
            for j in range(c, r + 1):
                best[(c, j)] = min((best[(c - 1, i)][0] + (j - i) * int(lengths[j - 1]), i)
                                   for i in range(c - 1, j) if (c - 1, i) in best)
        cuts, j = [], r
        for c in range(classes, 0, -1):
            i = best[(c, j)][1]
            cuts.append((i, j))
            j = i
        return cuts[::-1]


class _Plan:
    """Everything the fused path needs, derived once per config from :class:`_Tables` (so
    it needs no digest of its own): complex values are stacked [re, im] on axis 0, frames
    innermost ([2, bins, frames]), tables pre-broadcast.

    The FFT is the same radix-2/radix-4 DIT as :meth:`MelFrontEnd.fft` describes, each stage
    combining ``radix`` sub-FFTs of length J = span; only the memory order differs. Write
    the DIT index k in digits d0 (radix of stage 0), d1, ... (d0 least significant). Stage i
    works along digit d_i with twiddles set by the digits below it. In layout B (address =
    k) its operands are rows of J·n values and its twiddles change every n values; in
    layout A (digits reversed, d0 most significant) they are rows of G·n values (G: product
    of the radices above d_i) with one twiddle per row. numpy streams long rows far faster,
    so stages with G >= J run in A and the rest in B, with one transpose in between (a
    digit permutation: no arithmetic, so the bits are those of the textbook order).
    """

    def __init__(self, c: MelConfig, t: _Tables) -> None:
        n_fft = c.fft_length
        m = self.m = n_fft // 2
        self.w = c.window_length
        self.num_mels = nm = c.num_mels
        # Storage type of the FFT data: after any stage |z| <= M·2^20.5 (a sum of M inputs
        # with |z_n| <= √2·2^20; the Q30 twiddles' rounding adds far less than one part in
        # 2^20), below 2^31 for M <= 1024. Products and the split's output are int64; its
        # sums Z_k ± Z_{M−k} (<= 2·M·2^20.5) fit int32 for M <= 512.
        self.zdtype = np.int32 if m <= 1024 else np.int64
        self.sdtype = np.int32 if m <= 512 else np.int64

        radices = ([2] if t.first_radix2 else []) + [4] * len(t.radix4_stages)
        self.radices = tuple(radices)
        # address in layout A -> DIT index k
        k_of_a = np.arange(m).reshape(radices[::-1]).transpose(
            tuple(range(len(radices)))[::-1]).ravel()
        # z = x[2k] + i·x[2k+1] in bit-reversed order, then stored in layout A: row r of the
        # [2M] stack is frame sample pos[r].
        even = t.even_bitrev[k_of_a]
        self.pos = np.concatenate([even, even + 1])
        window = np.zeros(n_fft, dtype=np.int64)
        window[: self.w] = t.window_q30
        self.win_rows = window[self.pos][:, None]  # [2M, 1]; 0 in the zero padding
        self.frame_rows = np.minimum(self.pos, self.w - 1)  # padding rows read any sample

        # Block floating point by the peak's bit length e (0..46): shift = 20 − e.
        e = np.arange(_PEAK_BITS + 1)
        shift = _NORM_BITS - e
        self.norm_mul = np.int64(1) << np.maximum(shift, 0)  # left shifts are multiplies
        self.norm_rsh = np.maximum(-shift, 0)
        self.norm_half = (np.int64(1) << self.norm_rsh) >> 1  # round half up

        stages = []
        tw_iter = iter(t.radix4_stages)
        for i, radix in enumerate(radices):
            span, rest = math.prod(radices[:i]), math.prod(radices[i + 1 :])
            layout = "A" if rest >= span else "B"
            if radix == 2:
                stages.append(_Stage(2, span, rest, layout))
                continue
            q, tw = next(tw_iter)
            if tw is None:  # q == 1: every twiddle is 1
                stages.append(_Stage(4, span, rest, layout))
                continue
            # slots 1, 2, 3 take W^2j, W^j, W^3j (bit-reversed order puts x[4n+2] second)
            (c1, s1), (c2, s2), (c3, s3) = tw
            cs = np.concatenate([c2, c1, c3], axis=1).T  # [3, q]
            ss = np.concatenate([s2, s1, s3], axis=1).T
            # P = [re, im]·C + [im, re]·S = [re·c − im·s, im·c + re·s]. j = 0 is skipped when
            # its twiddle is exactly 1 (2^30 + 0i): (v·2^30 + 2^29) >> 30 == v.
            j0 = 1 if (cs[:, 0] == Q30).all() and (ss[:, 0] == 0).all() else 0
            sss = np.stack([-ss, ss])  # [2, 3, q]
            if layout == "A":  # rows [j (A order), slot]: j's digits reversed
                j_of_a = np.arange(q).reshape(radices[:i][::-1]).transpose(
                    tuple(range(i))[::-1]).ravel()
                cc = cs[:, j_of_a][:, j0:].T[None, :, :, None]  # [1, J-j0, 3, 1]
                sc = sss[:, :, j_of_a][:, :, j0:].transpose(0, 2, 1)[..., None]  # [2, J-j0, 3, 1]
            else:  # [.., slot, j, frames]
                cc = cs[None, None, :, j0:, None]  # [1, 1, 3, J-j0, 1]
                sc = sss[:, None, :, j0:, None]  # [2, 1, 3, J-j0, 1]
            stages.append(_Stage(4, span, rest, layout, np.ascontiguousarray(cc),
                                 np.ascontiguousarray(sc), j0))
        self.stages = tuple(stages)

        # Split step and Mel: only bins with a Mel weight (one contiguous run k0..k1-1,
        # sorted by channel) are needed for the int8 features.
        ch = t.mel_channel
        valid = np.flatnonzero(ch >= 0)
        self.k0, self.k1 = (int(valid[0]), int(valid[-1]) + 1) if valid.size else (0, 0)
        self.split_tw = self._split_tw(t, np.arange(self.k0, self.k1))
        self.split_full_tw = self._split_tw(t, np.arange(m + 1))
        self.mel = _MelLayout(t, self.k0, self.k1, nm)

        # log2 and int8 (see _log2_tail): v << (63 − e) with e = frexp's exponent puts the
        # leading one at bit 62, or at bit 61 if float64(v) rounded up to 2^e (only when
        # every bit below the leading one of v is 1); its top 8 bits are 128 + table index,
        # or 127 in that case, whose result (msb e − 2, index 127, rem 2^23 − 1) is a
        # constant. lo8 folds the table value, the rounding half and −i8·2^23·d (so the
        # remainder needs no mask) into one term.
        lt = t.log_table_q16
        r = 30 - _LOG_TABLE_BITS
        d = lt[1:] - lt[:-1]
        i8 = np.arange(128, 256)
        top = lt[127] + ((d[127] * ((1 << r) - 1) + (1 << (r - 1))) >> r) - Q16  # i8 = 127
        self.log_d = np.zeros(256, np.int64)
        self.log_d[128:] = d
        self.log_lo8 = np.zeros(256, np.int64)
        self.log_lo8[128:] = (lt[:-1] << r) + (1 << (r - 1)) - d * (i8 << r)
        self.log_lo8[127] = top << r
        self.log_rem_shift = r
        # int8 of L = e·Q16 + frac + off_f (off_f: the frame's offset): one floor division,
        # floor((floor((L·dpl + 2^15)/2^16) + K)/step) == floor((L·dpl + C)/(step·2^16))
        # for integers (K = −db_min + step/2 − 128·step, C = 2^15 + K·2^16), and
        # L·dpl + C = (e·Q16 + frac)·dpl + (off_f·dpl + C): the frame's term is one table.
        step = t.db_step_q16
        self.int8_fast = step > 0
        dpl = t.db_per_log2_q16
        const = (1 << 15) + ((-t.db_min_q16 + (step >> 1) - 128 * step) << 16)
        offset = t.log_offset_q16 - Q16 - 2 * Q16 * shift  # per peak bit length e
        self.log_offset = offset  # log2_q16 = e·Q16 + frac + log_offset[e_peak]
        self.int8_frame = offset * dpl + const
        # per frame, by e: [round-half term, right shift, int8 term] (one lookup)
        self.frame_terms = np.stack([self.norm_half, self.norm_rsh, self.int8_frame])
        div = step << 16
        self.int8_shift = div.bit_length() - 1 if step > 0 and div & (div - 1) == 0 else None
        self.int8_div = div
        # Zero Mel energy is −2^40 in log2_q16, which saturates to −128. The fused path
        # reads it as e = 0, frac = 0, below energy 1 (e = 1, frac = 0), whose int8 is
        # largest at the largest frame term; if that saturates too, it needs no special case.
        q_one = (Q16 * dpl + int(self.int8_frame.max())) // div if step > 0 else 0
        self.zero_needs_mask = not (step > 0 and q_one <= -128)
        self.zero_int8 = int(MelFrontEnd.to_int8_tables(t, np.array([-(1 << 40)]))[0]) \
            if step > 0 else -128

    @staticmethod
    def _split_tw(t: _Tables, k: np.ndarray) -> np.ndarray:
        """[[c, s], [s, −c]] per bin, [2, 2, K, 1]: [di, dr]·this summed over axis 0 gives
        [c·di + s·dr, s·di − c·dr], i.e. W^k·(−i·D)."""
        c, s = t.split_cos[k], t.split_sin[k]
        return np.stack([np.stack([c, s]), np.stack([s, -c])])[..., None]

    def split_slices(self, k0: int, k1: int) -> bool:
        """Z_k and Z_{M−k} for k0 <= k < k1 are plain slices (no wrap-around to Z_0)."""
        return k0 >= 1 and k1 <= self.m


class _Work:
    """Buffers and views for blocks of n frames (frames innermost), reused across calls:
    the fused int8 path allocates nothing large per call (fresh multi-MB temporaries cost
    page faults that can double its time). The window product, the twiddle products, the
    split's products and the Mel rows live in different steps and share one scratch."""

    def __init__(self, p: _Plan, n: int) -> None:
        m, nm, k = p.m, p.num_mels, p.k1 - p.k0
        self.ft16 = np.empty((p.w, n), dtype=np.int16)
        self.extremes = np.empty((2, n), dtype=np.int64)  # each frame's max and min
        self.g16 = np.empty((2 * m, n), dtype=np.int16)
        rows = p.mel.rows.size
        scratch = np.empty(max(2 * m * n, _fft_scratch(p, n), 4 * k * n, 2 * rows * n),
                           dtype=np.int64)
        self.zw = scratch[: 2 * m * n].reshape(2 * m, n)
        self.za = np.empty((2, m, n), dtype=p.zdtype)
        self.zb = np.empty((2, m, n), dtype=p.zdtype)
        self.fft = _fft_ops(p, self.za, self.zb, scratch)
        self.split = _split_views(p, self.zb, p.k0, p.k1, p.split_tw, p.sdtype, scratch)
        self.power = np.zeros((k + 1, n), dtype=np.int64)  # + a zero row for padding
        self.pu = scratch[: 2 * rows * n].reshape(2, rows, n)
        self.red = np.zeros((2, p.mel.num_runs + 1, n), dtype=np.int64)  # + a zero row
        self.runs = np.empty((2, nm + 1, n), dtype=np.int64)
        shape = (nm, n)
        self.lg = np.empty(shape, dtype=np.int64)
        self.lg_e = np.empty(shape, dtype=np.int64)
        self.lg_d = np.empty(shape, dtype=np.int64)


def _fft_scratch(p: _Plan, n: int) -> int:
    """int64 scratch the twiddle products of :func:`_fft_ops` need for n frames."""
    return 2 * max(((st.span - st.j0) * 3 * st.rest * 2 * n for st in p.stages
                    if st.c is not None), default=0)


def _fft_ops(p: _Plan, za: np.ndarray, zb: np.ndarray,
             scratch: np.ndarray | None = None) -> list:
    """The FFT of za (layout A, in) as a list of stage views and the A -> B transpose; the
    result is in zb (layout B: DIT order, i.e. natural frequency order). Temporaries: two
    buffers of the data type and the int64 scratch (see :func:`_fft_scratch`), shared by
    all stages."""
    n = za.shape[-1]
    buf_t, buf_u = (np.empty(p.m * n, dtype=za.dtype) for _ in range(2))
    size = _fft_scratch(p, n)
    if scratch is None:
        scratch = np.empty(size, dtype=np.int64)
    buf_p, buf_q = scratch[: size // 2], scratch[size // 2 : size]

    def view(buf: np.ndarray, shape: tuple) -> np.ndarray:
        return buf[: math.prod(shape)].reshape(shape)

    ops: list = []
    transposed = False
    for st in p.stages:
        if st.layout == "B" and not transposed:
            ops.append(_transpose_op(za, zb, p.radices))
            transposed = True
        if st.layout == "A":
            zs = za.reshape(2, st.span, st.radix, st.rest * n)
        else:
            zs = zb.reshape(2, st.rest, st.radix, st.span, n)
        if st.radix == 2:
            ops.append(("r2", zs[:, :, 0], zs[:, :, 1], view(buf_t, zs[:, :, 0].shape)))
            continue
        pair = zs[:, :, 0:2]  # slots (0, 1); (2, 3) follow
        tt = view(buf_t, pair.shape)  # [T0, T1]
        vv = view(buf_u, pair.shape)  # [T2, u]
        tw = None
        if st.c is not None:
            y = zs[:, st.j0 :, 1:] if st.layout == "A" else zs[:, :, 1:, st.j0 :]
            tw = (y, y[::-1], st.c, st.s, view(buf_p, y.shape), view(buf_q, y.shape))
        ops.append(("r4", zs[:, :, 0], zs[:, :, 1], zs[:, :, 2], zs[:, :, 3], pair,
                    zs[:, :, 2:4], tt, vv, tw))
    if not transposed:
        ops.append(_transpose_op(za, zb, p.radices))
    return ops


def _transpose_op(za: np.ndarray, zb: np.ndarray, radices: tuple) -> tuple:
    n, d = za.shape[-1], len(radices)
    src = za.reshape(2, *radices, n).transpose(0, *range(d, 0, -1), d + 1)
    return ("copy", zb.reshape(2, *radices[::-1], n), src)


def _run_fft(ops: list) -> None:
    """Run :func:`_fft_ops`: radix-2 stage (if any), radix-4 DIT stages, in place.

    Twiddle products are rounded half up (Q30), exactly as :meth:`MelFrontEnd.fft` states;
    the butterflies are exact integer adds, written back into the same buffer:
    X[j + r·q] for r = 0..3 from B0 = A0, B1 = W^2j·A1, B2 = W^j·A2, B3 = W^3j·A3
    (W = e^{-2πi/4q}; bit-reversed order puts the x[4n+2] sub-FFT second).
    """
    for op in ops:
        kind = op[0]
        if kind == "copy":
            np.copyto(op[1], op[2])
            continue
        if kind == "r2":
            _, a, b, t = op
            np.add(a, b, out=t)
            np.subtract(a, b, out=b)
            np.copyto(a, t)
            continue
        _, a0, b1, b2, b3, x01, x23, tt, vv, tw = op
        if tw is not None:
            y, y_swapped, c, s, p, q = tw
            np.multiply(y, c, out=p)  # [re·c, im·c] (int64)
            np.multiply(y_swapped, s, out=q)  # [−im·s, re·s]
            np.add(p, q, out=p)
            np.add(p, _HALF30, out=p)
            np.right_shift(p, 30, out=y, casting="unsafe")  # fits the storage type
        # [T0, T1] = [B0 + B1, B0 − B1], [T2, u] = [B2 + B3, −i·(B2 − B3)];
        # [X0, X1] = [T0, T1] + [T2, u], [X2, X3] = [T0, T1] − [T2, u]
        np.add(a0, b1, out=tt[:, :, 0])
        np.subtract(a0, b1, out=tt[:, :, 1])
        np.add(b2, b3, out=vv[:, :, 0])
        np.subtract(b2[1], b3[1], out=vv[0, :, 1])
        np.subtract(b3[0], b2[0], out=vv[1, :, 1])
        np.add(tt, vv, out=x01)
        np.subtract(tt, vv, out=x23)


def _split_views(p: _Plan, z: np.ndarray, k0: int, k1: int, tw: np.ndarray,
                 sdtype: type, scratch: np.ndarray | None = None) -> tuple:
    """Views and buffers of the real-FFT split step for bins k0..k1-1 of z [2, M, n]
    (products in ``scratch``, int64 of at least 4·K·n, if given)."""
    m, n, k = p.m, z.shape[-1], k1 - k0
    if p.split_slices(k0, k1):
        a, b, gather = z[:, k0:k1], z[:, m - k0 : m - k1 : -1], None
    else:  # Z_M = Z_0: gather rows k mod M and (M − k) mod M
        kk = np.arange(k0, k1)
        a = np.empty((2, k, n), dtype=z.dtype)
        b = np.empty((2, k, n), dtype=z.dtype)
        gather = (z, kk % m, (m - kk) % m)
    st = np.empty((2, 2, k, n), dtype=sdtype)  # [Z_k + Z_{M−k}, Z_k − Z_{M−k}], each [re, im]
    r = (np.empty((2, 2, k, n), dtype=np.int64) if scratch is None
         else scratch[: 4 * k * n].reshape(2, 2, k, n))
    st4 = st.reshape(4, k, n)
    e = st4[0::3]  # [er, ei] = [S_re, T_im]: E = Z_k + conj(Z_{M−k})
    d = st4[1:3, None]  # [di, dr] = [S_im, T_re]: D = Z_k − conj(Z_{M−k})
    return a, b, gather, st, r, e, d, tw


def _run_split(views: tuple) -> np.ndarray:
    """2·X[k] = E + W^k·(−i·D), the product rounded half up: [re, im] [2, K, n] (a view
    into the views' buffers)."""
    a, b, gather, st, r, e, d, tw = views
    if gather is not None:
        np.take(gather[0], gather[1], axis=1, out=a)
        np.take(gather[0], gather[2], axis=1, out=b)
    np.add(a, b, out=st[0], dtype=st.dtype)
    np.subtract(a, b, out=st[1], dtype=st.dtype)
    np.multiply(d, tw, out=r)  # [[c·di, s·di], [s·dr, −c·dr]]
    x = r[0]
    np.add(x, r[1], out=x)
    np.add(x, _HALF30, out=x)
    np.right_shift(x, 30, out=x)
    np.add(e, x, out=x)
    return x


def _power_into(x: np.ndarray, out: np.ndarray) -> None:
    """(re² + im²) >> 16 rounded half up, from x = [re, im] (squared in place)."""
    np.multiply(x, x, out=x)
    np.add(x[0], x[1], out=out)
    np.add(out, 1 << (_POWER_SHIFT - 1), out=out)
    np.right_shift(out, _POWER_SHIFT, out=out)


def _mel_energies(m: _MelLayout, power: np.ndarray, pu: np.ndarray, red: np.ndarray,
                  runs: np.ndarray) -> np.ndarray:
    """Mel energies [num_mels, n] from power [K + 1, n] (bins k0..k1-1, then a zero row):
    see :class:`_MelLayout`. Integer sums, so any grouping gives the same bits; every sum
    is below 2^60 (Parseval)."""
    n = power.shape[-1]
    np.take(power, m.rows, axis=0, out=pu[1])
    np.multiply(pu[1], m.weights[0], out=pu[0])  # P·upper
    np.multiply(pu[1], m.weights[1], out=pu[1])  # P·lower
    for row, count, length, slot in m.classes:
        np.add.reduce(pu[:, row : row + count * length].reshape(2, count, length, n), axis=2,
                      out=red[:, slot : slot + count])
    np.take(red, m.of_channel, axis=1, out=runs)
    mel = runs[0, :-1]
    np.add(mel, runs[1, 1:], out=mel)
    return mel


def _log2_tail(p: _Plan, mel: np.ndarray, v: np.ndarray, e: np.ndarray, d: np.ndarray, *,
               any_int64: bool) -> tuple[np.ndarray, np.ndarray]:
    """The log2 of :meth:`MelFrontEnd.log2_q16` without the frame offset: returns
    (frac, e) with log2_q16 = e·Q16 + frac + offset (msb = e − 1), for mel >= 1. v, e, d:
    int64 scratch like mel (v and e are returned).

    The table step is the original's: lo + round_half_up((hi − lo)·rem, 23) with idx and rem
    the 7 and 23 bits below the leading one (truncated); see :class:`_Plan` for the layout.
    any_int64: exact for every int64 mel (a bit length of 64 from rounding is capped).
    Otherwise mel must be in 0..2^60 (the fused path: Parseval), and mel 0 gives e = 0,
    frac = 0, below what mel 1 gives."""
    if any_int64:
        mel = np.maximum(mel, 1, out=v)
    np.frexp(mel, out=(d.view(np.float64), e))
    if any_int64:
        np.minimum(e, 63, out=e)
    np.subtract(63, e, out=d)
    np.left_shift(mel, d, out=v)  # leading one at bit 62 (61 if frexp rounded up)
    np.right_shift(v, 62 - _LOG_TABLE_BITS, out=d)  # 128 + idx (127: rounded up)
    np.right_shift(v, 32, out=v)
    np.multiply(v, np.take(p.log_d, d), out=v)
    np.add(v, np.take(p.log_lo8, d), out=v)
    np.right_shift(v, p.log_rem_shift, out=v)
    return v, e


class MelFrontEnd:
    """Streaming fixed-point log-Mel front end.

    ``push(chunk)`` takes int16 samples in any chunking and returns the int8 frames
    [n, num_mels] completed by them; the concatenation over any chunking is bit-identical
    to :meth:`process` over the whole signal. ``reset()`` forgets buffered samples (after a
    gap in the stream, so no frame spans it).

    :meth:`frames_int8` (behind ``push`` and ``process``) runs the stages fused, in the
    layout they share ([re, im] × bins × frames, in reused buffers); the stage methods
    compute the same bits one stage at a time (tests compare both).
    """

    #: frames computed per vectorised block (bounds memory on a 1 GB box: ~4.4 MB of
    #: reused buffers per block size at the default config)
    block_frames = 200

    def __init__(self, config: MelConfig | None = None) -> None:
        self.config = config or DEFAULT_SPEC.mel
        self.tables = _build_tables(self.config)
        self._plan = _Plan(self.config, self.tables)
        self._local = threading.local()
        self._pending = np.zeros(0, dtype=np.int16)
        self.samples_consumed = 0
        """Samples pushed since construction or the last reset (for frame time stamps)."""
        self.frames_emitted = 0

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        del state["_local"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

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
        if n == 0:
            return np.empty((0, c.num_mels), dtype=np.int8)
        view = np.lib.stride_tricks.sliding_window_view(x, c.window_length)[:: c.hop_length]
        return self.frames_int8(view[:n])

    def frames_int8(self, frames: np.ndarray) -> np.ndarray:
        """int16 [n, window_length] -> int8 [n, num_mels]: the fused path, in blocks of at
        most ``block_frames`` (other integer frames: the stage-by-stage path)."""
        frames = np.asarray(frames)
        if frames.dtype != np.int16:  # outside the contract of push and process
            return self.to_int8(self.log2_q16(*self.mel_with_exponent(frames)))
        n = frames.shape[0]
        out = np.empty((n, self.config.num_mels), dtype=np.int8)
        b = max(1, int(self.block_frames))
        if n > b:  # equal blocks: one buffer size, no small last block
            b = -(-n // -(-n // b))
        for s in range(0, n, b):
            self._fused(frames[s : s + b], out[s : s + b])
        return out

    def _work(self, n: int) -> _Work:
        """This thread's buffers for blocks of n frames (a few sizes kept)."""
        cache = getattr(self._local, "works", None)
        if cache is None:
            cache = self._local.works = {}
        w = cache.pop(n, None)
        if w is None:
            w = _Work(self._plan, n)
            while len(cache) >= 4:
                del cache[next(iter(cache))]  # least recently used
        cache[n] = w
        return w

    def _fused(self, frames: np.ndarray, out: np.ndarray) -> None:
        """int16 frames [n, W] (any strides) -> int8 [n, num_mels] into out: every stage,
        the same integer arithmetic as the stage methods, in one buffer set."""
        p = self._plan
        w = self._work(frames.shape[0])
        # window, in the FFT's input order: row r of zw is frame sample pos[r] × window
        np.copyto(w.ft16, frames.T)
        np.take(w.ft16, p.frame_rows, axis=0, out=w.g16, mode="clip")
        z = w.zw
        np.multiply(w.g16, p.win_rows, out=z)
        # block floating point by the peak's bit length e: the larger exponent of the
        # frame's max and min (frexp is exact here: |values| <= 2^45)
        np.max(z, axis=0, out=w.extremes[0])
        np.min(z, axis=0, out=w.extremes[1])
        e = np.max(np.frexp(w.extremes)[1], axis=0)
        za = w.za.reshape(z.shape)
        if e.min() < _NORM_BITS:  # some frame shifts left
            np.multiply(z, np.take(p.norm_mul, e), out=z)
        terms = np.take(p.frame_terms, e, axis=1)  # [3, n]
        np.add(z, terms[0], out=z)
        np.right_shift(z, terms[1], out=za, casting="unsafe")  # <= 2^20
        _run_fft(w.fft)
        x = _run_split(w.split)
        _power_into(x, w.power[:-1])
        mel = _mel_energies(p.mel, w.power, w.pu, w.red, w.runs)  # [channels, frames]
        frac, eb = _log2_tail(p, mel, w.lg, w.lg_e, w.lg_d, any_int64=False)
        t = self.tables
        if not p.int8_fast:  # a step that rounds to 0 in Q16: the stage method's arithmetic
            lg = np.add(frac, np.multiply(eb, Q16, out=eb), out=frac)
            np.add(lg, np.take(p.log_offset, e), out=lg)
            np.copyto(lg, np.int64(-(1 << 40)), where=mel <= 0)
            np.copyto(out, self.to_int8(lg).T)
            return
        # q = floor(((e·Q16 + frac)·dpl + frame term) / (step·2^16)), saturated
        np.multiply(eb, Q16, out=eb)
        np.add(frac, eb, out=frac)
        np.multiply(frac, t.db_per_log2_q16, out=frac)
        np.add(frac, terms[2], out=frac)
        if p.int8_shift is not None:
            np.right_shift(frac, p.int8_shift, out=frac)
        else:
            np.floor_divide(frac, p.int8_div, out=frac)
        np.clip(frac, -128, 127, out=frac)
        if p.zero_needs_mask:  # zero energy is not read right by the formula: its int8
            np.copyto(frac, p.zero_int8, where=mel <= 0)
        np.copyto(out, frac.T, casting="unsafe")

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
        the frames innermost ([re/im, bins, n]: long contiguous rows for numpy; see
        :class:`_Plan` for the memory order); the result is returned as [n, N/2 + 1] views.
        Bounds: |Z| < 2^28.5, products < 2^59.5, |2X| < 2^30: int64 never overflows.
        """
        p = self._plan
        n = x.shape[0]
        xt = np.ascontiguousarray(np.asarray(x, dtype=np.int64).T)
        za = np.take(xt, p.pos, axis=0).reshape(2, p.m, n)
        zb = np.empty_like(za)
        _run_fft(_fft_ops(p, za, zb))
        out = _run_split(_split_views(p, zb, 0, p.m + 1, p.split_full_tw, np.int64))
        return out[0].T, out[1].T

    def power(self, re: np.ndarray, im: np.ndarray) -> np.ndarray:
        """|2X|² >> 16, int64 (< 2^45 per bin)."""
        return _round_shift(re * re + im * im, _POWER_SHIFT)

    def mel(self, power: np.ndarray) -> np.ndarray:
        """Q15-weighted Mel energies, int64 [n, num_mels] (< 2^60)."""
        p = self._plan
        n = power.shape[0]
        pw = np.zeros((p.k1 - p.k0 + 1, n), dtype=np.int64)
        pw[:-1] = np.asarray(power, dtype=np.int64)[:, p.k0 : p.k1].T
        pu = np.empty((2, p.mel.rows.size, n), dtype=np.int64)
        red = np.zeros((2, p.mel.num_runs + 1, n), dtype=np.int64)
        runs = np.empty((2, p.num_mels + 1, n), dtype=np.int64)
        return _mel_energies(p.mel, pw, pu, red, runs).T

    def log2_q16(self, mel: np.ndarray, shift: np.ndarray) -> np.ndarray:
        """log2 of the true Mel energy in Q16 (int64); 0 energy -> a very small value."""
        t = self.tables
        mel = np.asarray(mel, dtype=np.int64)
        frac, e = _log2_tail(self._plan, mel, *(np.empty(mel.shape, np.int64) for _ in range(3)),
                             any_int64=True)
        np.add(frac, np.multiply(e, Q16, out=e), out=frac)  # + msb·Q16 (msb = e − 1) ...
        shift = np.asarray(shift, dtype=np.int64)
        np.add(frac, (t.log_offset_q16 - Q16 - 2 * Q16 * shift)[:, None], out=frac)  # ... − Q16
        np.copyto(frac, np.int64(-(1 << 40)), where=mel <= 0)
        return frac

    def to_int8(self, log2_q16: np.ndarray) -> np.ndarray:
        """dB = log2·10·log10(2); q = round((dB − db_min)/db_step) − 128, saturated."""
        return self.to_int8_tables(self.tables, log2_q16)

    @staticmethod
    def to_int8_tables(t: _Tables, log2_q16: np.ndarray) -> np.ndarray:
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
        hint = " (float sources become int16 through edge.features.float_to_int16)" \
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
    from edge.readers.recording import uv_to_int16

    return uv_to_int16(x, lsb)
