"""Decomposition of a steady voluntary contraction into motor units and their firings
(deterministic for a given input on one machine — float arithmetic, not the bit-exact
contract of the features; numpy only):

1. **Sharpness**: a low-pass differentiator, ``y[n] = x[n+k] − x[n−k]`` with ``k`` ≈ 0.1 ms,
   emphasises the fast main spike of each MUAP (from the fibres nearest the needle) over
   the slow, shared components of distant units — as EMGlab (McGill et al. 2005) and the
   multi-MUP analysers do.
2. **Detection**: local maxima of ``|y|`` above ``detect_sigma`` × its noise (median
   absolute deviation), one per ``dead_ms``.
3. **Shapes into units**: each detection's segment of ``y`` around its peak; a unit is seeded
   at the segment with the most neighbours within ``cluster_distance`` (squared distance in
   units of the noise's, per sample) and takes every segment close to its median template;
   repeated while a seed has ``min_seed`` neighbours. Deterministic, O(detections²).
4. **Template matching with superpositions**: peel-off passes over the whole signal; at
   each peak of the residual, the unit and lag (± ``max_lag_ms``) that remove the most
   energy are subtracted when they remove at least half the template's own; the next pass
   finds what the subtraction uncovered (resolvable superpositions). A unit cannot fire
   twice within ``refractory_ms``.
5. **Fragments joined** (not in an exact decomposition: what the box's labels rest on stays
   as it was packed): a unit whose discharges vary — jiggle, a polyphasic MUAP whose
   largest spike changes — is seeded as several, each anchored on another spike. Two whose
   wide-band potentials match up to a shift, whose trains interleave without collisions
   once shifted, and which together fire as one unit does (as regularly as one motor
   neurone, or more regularly than either alone) are one unit (the firing pattern as
   evidence, as DQEMG's train validity uses it: Parsaei & Stashuk).
6. **Units kept**: at least ``min_rate_hz`` over the recording, and a regular train (the CV
   of its inter-discharge intervals below ``max_isi_cv``): a steadily firing motor unit.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DecompositionConfig:
    """How a contraction is decomposed. Times in ms, independent of the file's rate."""

    sharpness_ms: float = 0.1
    """Half-span ``k`` of the differentiator (≥ 1 sample)."""
    detect_sigma: float = 6.0
    """Detection threshold in noise standard deviations of the differentiated signal."""
    dead_ms: float = 1.0
    """At most one detection per this span."""
    segment_ms: tuple[float, float] = (-1.0, 1.5)
    """Segment of the differentiated signal around each peak that identifies a unit."""
    cluster_distance: float = 6.0
    """Segments of one unit differ by noise alone: mean squared difference per sample ≤
    this many noise variances (two noise realisations give 2)."""
    min_seed: int = 8
    """A unit needs at least this many clean discharges to be seeded."""
    max_lag_ms: float = 0.5
    """Template matching searches this far around each residual peak."""
    refractory_ms: float = 20.0
    """Shortest interval a unit fires at (motor neurones rarely exceed 50 Hz at steady
    force)."""
    passes: int = 3
    """Peel-off passes (each resolves one more layer of superpositions)."""
    lock_ms: float = 0.25
    """Two units whose discharges keep one offset within this are one unit seen at two
    of its spikes ..."""
    lock_window_ms: float = 5.0
    """... when that offset is shorter than this (a MUAP's spikes lie within a few ms)."""
    min_rate_hz: float = 3.0
    """A unit firing slower than this over the recording is not a steadily active unit."""
    max_isi_cv: float = 0.6
    """Regularity of a kept unit's train (after removing intervals over twice the median:
    missed discharges)."""
    max_cluster_segments: int = 3000
    """Segments the shapes are learnt from, evenly spread over the recording (the
    clustering is O(n²) in memory: 3000 segments need 72 MB; the matching sees all)."""
    template_ms: tuple[float, float] = (-20.0, 20.0)
    """Span of the wide-band template around each firing (holds a 30 ms neurogenic MUAP)."""
    join_span_ms: tuple[float, float] = (-5.0, 10.0)
    """Fragments of one unit (step 5) are compared on their wide-band potentials over this
    span around their firings ..."""
    join_shift_ms: float = 4.0
    """... at any shift up to this (each fragment is anchored on its own spike) ..."""
    join_correlation: float = 0.85
    """... where they correlate at least this much ..."""
    join_amplitude_ratio: float = 1.6
    """... and their peak-to-peaks differ by at most this factor; ..."""
    join_collisions: float = 0.05
    """... their trains, shifted, collide (fire within ``refractory_ms``) for at most this
    share of the sparser's discharges ..."""
    join_regularity_gain: float = 0.05
    """... and together they fire as one unit: their intervals' CV at least this much below
    the more regular one's (fragments that split a unit's discharges unevenly) ..."""
    join_max_cv: float = 0.3
    """... or at most this (fragments that took turns: each alone is as regular, at half
    the rate; one motor neurone at steady force fires with a CV of 0.1–0.25). Chosen on
    the two simulators' dense contractions (validation seeds of ``benches/dense_muap.py``),
    never on a real recording."""


@dataclass
class Unit:
    """One motor unit :func:`decompose` found: its firings and its templates."""

    id: int
    firings_s: np.ndarray
    """Time of each discharge (the peak of its main spike in the sharpened signal), s."""
    shape: np.ndarray
    """Median segment of the sharpened signal at the analysis rate (matching template)."""
    template_uv: np.ndarray
    """Median wide-band potential over the unit's discharges (µV, ``template_ms`` span) at
    the file's rate."""
    template_fine_uv: np.ndarray
    """The same at the analysis rate (what the measures are made on)."""
    analysis_rate_hz: float
    template_noise_uv: float = 0.0
    """Noise of the template: the spread of its discharges ÷ √(discharges)."""
    firings: np.ndarray | None = None
    """The discharges as sample indices at the analysis rate (exact: what integer rules
    are decided on)."""


def sharpness(x: np.ndarray, fs: float, c: DecompositionConfig) -> np.ndarray:
    k = max(1, round(c.sharpness_ms * 1e-3 * fs))
    y = np.zeros_like(x, dtype=np.float64)
    y[k:-k] = x[2 * k:] - x[: -2 * k]
    return y


def robust_sigma(y: np.ndarray, *, integers: bool = False) -> float:
    """The noise's standard deviation from the median absolute deviation. ``integers``:
    ``y`` holds integers (an exact decomposition): the same value from counts."""
    if integers:
        med = _median_of_integers(y)
        dev2 = np.abs(2 * y - 2 * med)  # integers: the median may be a half
        return float(1.4826 * (_median_of_integers(dev2) / 2)) or 1e-9
    dev = y - np.median(y)
    np.abs(dev, out=dev)
    return float(1.4826 * np.median(dev, overwrite_input=True)) or 1e-9  # dev is ours


def _median_of_integers(v: np.ndarray) -> float:
    """``np.median(v)`` of integer values, bit for bit (the mean of the two middle values,
    or the middle one), by counting: O(n + range) instead of a partition."""
    lo = int(v.min())
    cum = np.cumsum(np.bincount((v - lo).astype(np.int64)))
    n = v.size
    a, b = lo + np.searchsorted(cum, [(n - 1) // 2 + 1, n // 2 + 1]).astype(np.int64)
    return (float(a) + float(b)) / 2


def detect(y: np.ndarray, threshold: float, dead: int) -> np.ndarray:
    """Local maxima of |y| above ``threshold``, strongest first within each ``dead`` span:
    greedy non-maximum suppression (a candidate is kept unless a stronger one — or an
    equal one earlier in the signal — was kept within ``dead`` samples)."""
    a = np.abs(y)
    cand = np.flatnonzero((a[1:-1] > threshold) & (a[1:-1] >= a[:-2]) & (a[1:-1] > a[2:])) + 1
    if cand.size == 0:
        return cand.astype(np.int64)
    # rank in the greedy order: strongest first, ties in signal order (a stable sort)
    rank = np.empty(cand.size, np.int64)
    rank[np.argsort(-a[cand], kind="stable")] = np.arange(cand.size)
    return _suppress(cand.astype(np.int64), rank, dead)


SUPPRESS_ROUNDS = 8
"""Whole-array rounds of the spike suppression before the rest is done one by one (a
monotone chain of candidates frees only its ends each round)."""


def _suppress(pos: np.ndarray, rank: np.ndarray, dead: int) -> np.ndarray:
    """Greedy suppression of sorted positions ``pos`` in ``rank`` order, in rounds: a
    candidate ranked first among the remaining ones within ± ``dead`` is kept by the greedy
    pass too (nothing before it in that order is near), and every remaining candidate near
    a kept one is suppressed by it; the rest go to the next round. Same result as the
    one-at-a-time loop, in whole-array steps."""
    kept = []
    for _ in range(SUPPRESS_ROUNDS):
        if not pos.size:
            break
        first = np.ones(pos.size, bool)
        for k in range(1, pos.size):  # neighbours k places away, while any is near
            near = pos[k:] - pos[:-k] <= dead
            if not near.any():
                break
            first[:-k] &= ~(near & (rank[k:] < rank[:-k]))
            first[k:] &= ~(near & (rank[:-k] < rank[k:]))
        won = pos[first]
        kept.append(won)
        j = np.searchsorted(won, pos)  # the nearest kept candidate on either side
        right = np.where(j < won.size, won[np.minimum(j, won.size - 1)] - pos, dead + 1)
        left = np.where(j > 0, pos - won[np.maximum(j - 1, 0)], dead + 1)
        rest = (right > dead) & (left > dead)
        pos, rank = pos[rest], rank[rest]
    if pos.size:  # a long chain (each round frees only its ends): the loop, for the rest
        alone: list[int] = []
        for i in np.argsort(rank, kind="stable").tolist():
            p = int(pos[i])
            j = bisect.bisect_left(alone, p)
            if (j == len(alone) or alone[j] - p > dead) and (j == 0 or p - alone[j - 1] > dead):
                alone.insert(j, p)
        kept.append(np.array(alone, dtype=np.int64))
    return np.sort(np.concatenate(kept)) if kept else np.zeros(0, np.int64)


def _segments(y: np.ndarray, idx: np.ndarray, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    ok = idx[(idx - a >= 0) & (idx + b < y.size)]
    return ok, np.stack([y[i - a: i + b] for i in ok]) if ok.size else np.zeros((0, a + b))


CLUSTER_BLOCK = 128
"""Rows of the clustering's distance matrix computed at a time (a block's floats stay in
the cache; the result does not depend on it)."""


def cluster(segs: np.ndarray, sigma: float, c: DecompositionConfig) -> list[np.ndarray]:
    """Indices of ``segs`` per unit (see the module doc, step 3)."""
    if len(segs) == 0:
        return []
    n, L = segs.shape
    sq = (segs**2).sum(axis=1)
    # d = (|s_i|² + |s_j|² − 2 s_i·s_j) / (L σ²) < cluster_distance, a block of rows at a
    # time: only the n × n booleans are kept (at n = 3000 one float matrix is 72 MB, and
    # allocating such matrices cost more than the sums)
    close = np.empty((n, n), bool)
    for r0 in range(0, n, CLUSTER_BLOCK):
        r1 = min(n, r0 + CLUSTER_BLOCK)
        g = segs[r0:r1] @ segs.T
        d = np.add.outer(sq[r0:r1], sq)
        np.subtract(d, np.multiply(g, 2, out=g), out=d)
        np.divide(d, L * (sigma * sigma), out=d)
        np.less(d, c.cluster_distance, out=close[r0:r1])
    close_of = np.ascontiguousarray(close.T)  # row j: the segments j is close to
    free = np.ones(n, bool)
    # each free segment's free neighbours, kept up to date as segments are taken
    counts = close.sum(axis=1)
    units = []
    while free.sum() >= c.min_seed:
        seed = int(np.argmax(np.where(free, counts, 0)))
        if not free[seed] or counts[seed] < c.min_seed:
            break
        near = close[seed] & free
        tmpl = np.median(segs[near], axis=0)
        dist = ((segs - tmpl) ** 2).mean(axis=1) / (sigma * sigma)
        members = np.flatnonzero(free & (dist < c.cluster_distance / 2))
        taken = near if members.size < c.min_seed else members
        free[taken] = False
        counts -= close_of[taken].sum(axis=0)
        if members.size >= c.min_seed:
            units.append(members)
        # (a seed that does not hold together is not a unit: its neighbours are let go)
    return units


PEEL_BATCH = 64
"""Peaks whose matching gains are computed in one product (bounds its memory: at 40 kHz,
64 peaks × 41 lags × 100 samples is 2 MB; all of a contraction's peaks at once were
100+ MB)."""


def _best_first(g: np.ndarray, n: int) -> Iterator[int]:
    """Indices of ``g``'s ``n`` largest, best first, ties in index order (a stable sort
    of −g), sorted only if more than the first is asked for."""
    yield int(g.argmax())
    yield from np.argsort(-g, kind="stable")[1:n].tolist()


def peel(y: np.ndarray, shapes: list[np.ndarray], a: int, threshold: float, dead: int,
         max_lag: int, refractory: int, passes: int) -> list[list[int]]:
    """Firings of each shape by template matching with peel-off (module doc, step 4).

    Each pass takes the residual's peaks in signal order; at each, the unit and lag that
    remove the most energy. The gains of :data:`PEEL_BATCH` peaks at a time are computed
    in one product, and a peak's again only where a subtraction made since reached its
    span: the same values, peak by peak, as computing each on the current residual (to
    the bit in an exact decomposition; float sums may differ in their last bit)."""
    r = y.copy()
    firings: list[list[int]] = [[] for _ in shapes]
    if not shapes:
        return firings
    S = np.stack(shapes)  # [K, L]
    K, L = S.shape
    energy = (S**2).sum(axis=1)
    span = L + 2 * max_lag  # the residual a peak's matching reads
    lags = np.arange(2 * max_lag + 1)[:, None] + np.arange(L)[None, :]  # [lags, L]
    half = 0.5 * energy

    def gains(lo: np.ndarray) -> np.ndarray:  # energy removed, per peak, lag and unit
        return (2 * (r[lo[:, None, None] + lags] @ S.T) - energy).reshape(lo.size, -1)

    def gains_at(lo: int) -> np.ndarray:  # one peak's, on the residual as it is now
        return (2 * (r[lo + lags] @ S.T) - energy).ravel()

    for _ in range(passes):
        found = 0
        peaks = detect(r, threshold, dead)
        lo = peaks - max_lag - a
        ok = (lo >= 0) & (lo + span <= r.size)
        peaks, lo = peaks[ok], lo[ok]
        for c0 in range(0, peaks.size, PEEL_BATCH):
            batch = gains(lo[c0: c0 + PEEL_BATCH])
            best = batch.argmax(axis=1)
            worth = batch[np.arange(len(batch)), best] >= half[best % K]
            changed_until = -1  # the residual differs from the batch's below this index
            for i, p in enumerate(peaks[c0: c0 + PEEL_BATCH].tolist()):
                if lo[c0 + i] < changed_until:
                    g = gains_at(int(lo[c0 + i]))
                elif worth[i]:
                    g = batch[i]
                else:
                    continue  # its best match removes too little: nothing to take
                for flat in _best_first(g, 4):  # the best allowed
                    lag, k = divmod(int(flat), K)
                    if g[flat] < half[k]:
                        break
                    t = p - max_lag + lag
                    f = firings[k]
                    j = bisect.bisect_left(f, t)
                    if (j < len(f) and f[j] - t < refractory) or (
                            j and t - f[j - 1] < refractory):
                        continue
                    r[t - a: t - a + L] -= S[k]
                    f.insert(j, t)
                    changed_until = max(changed_until, t - a + L)
                    found += 1
                    break
        if not found:
            break
    return firings


def upsample(x: np.ndarray, factor: int) -> np.ndarray:
    """Band-limited interpolation by an integer factor (FFT zero-padding): sub-sample
    alignment of spikes recorded at 4–10 kHz."""
    if factor == 1:
        return x
    n = x.size
    X = np.fft.rfft(x)
    Y = np.zeros(n * factor // 2 + 1, dtype=complex)
    Y[: X.size] = X
    if n % 2 == 0:
        Y[X.size - 1] *= 0.5  # the Nyquist bin is shared by its two images
    return np.fft.irfft(Y, n * factor) * factor


#: Analysis rate at least this (spikes aligned to 25 µs).
ANALYSIS_RATE_HZ = 40_000


def steady_intervals(firings: np.ndarray) -> np.ndarray:
    """Intervals between successive discharges, those over twice the median (missed
    discharges) left out. In the firings' own unit: integers stay integers."""
    isi = np.diff(np.asarray(firings))
    return isi[isi < 2 * np.median(isi)] if isi.size else isi


def _regular(f: np.ndarray, c: DecompositionConfig, duration_s: float) -> bool:
    """A steady train: ``f`` (sample indices) at ``min_rate_hz`` or more, its intervals'
    CV at most ``max_isi_cv`` — decided in integers (the CV is the same in samples)."""
    if f.size / duration_s < c.min_rate_hz or f.size < 3:
        return False
    isi = steady_intervals(f)
    n, s1, s2 = isi.size, int(isi.sum()), int((isi * isi).sum())
    # CV² = (n·Σisi² − (Σisi)²) / (Σisi)², compared exactly
    cv_pct = round(100 * c.max_isi_cv)
    return n >= 2 and 10_000 * (n * s2 - s1 * s1) <= cv_pct * cv_pct * s1 * s1


def _shift_distances(s: np.ndarray, others: np.ndarray, max_lag: int) -> np.ndarray:
    """For each row of ``others``: the smallest mean squared difference between it and
    ``s`` over lags of ± ``max_lag``. Symmetric to the bit: swapping the two pairs the
    same samples in the same order at the opposite lag, and a difference's square does
    not depend on its sign."""
    L = s.size
    best = np.full(len(others), np.inf)
    for lag in range(-max_lag, max_lag + 1):
        a, b = max(0, lag), min(L, L + lag)
        if b - a < L // 2:
            continue
        d = s[a:b] - others[:, a - lag: b - lag]
        np.minimum(best, np.add.reduce(d * d, axis=1) / d.shape[1], out=best)  # the means
    return best


def merge_shapes(segs: np.ndarray, groups: list[np.ndarray], sigma: float,
                 c: DecompositionConfig, max_lag: int
                 ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Groups whose median shapes differ by noise alone at some small lag are one unit
    (the seeding splits a unit whose discharges vary with jitter and the background).
    The closest pair merges first (ties: the lowest indices), until none is close; only
    the merged group's distances are computed again. Returns the groups and their median
    shapes."""
    groups = [np.asarray(g) for g in groups]
    shapes = np.array([np.median(segs[g], axis=0) for g in groups])
    if len(groups) < 2:
        return groups, list(shapes)
    var = sigma * sigma
    k = len(groups)
    dist = np.full((k, k), np.inf)  # [i, j], i < j: group i's distance to group j
    for i in range(k - 1):
        dist[i, i + 1:] = _shift_distances(shapes[i], shapes[i + 1:], max_lag) / var
    while len(groups) > 1:
        i, j = divmod(int(np.argmin(dist)), len(groups))  # row-major: lowest i, then j
        if not dist[i, j] < c.cluster_distance / 2:
            break
        groups[i] = np.concatenate([groups[i], groups[j]])
        del groups[j]
        shapes = np.delete(shapes, j, axis=0)
        shapes[i] = np.median(segs[groups[i]], axis=0)
        dist = np.delete(np.delete(dist, j, axis=0), j, axis=1)
        dist[i, i + 1:] = _shift_distances(shapes[i], shapes[i + 1:], max_lag) / var
        dist[:i, i] = _shift_distances(shapes[i], shapes[:i], max_lag) / var
    return groups, list(shapes)


def time_locked(firings: list[list[int]], energy: list[float], tol: int,
                 window: int) -> int | None:
    """The unit to drop from the first pair whose trains are time-locked: most of the
    sparser train's discharges at one fixed offset (± ``tol``) from the other's, within
    ``window`` — two spikes of one MUAP. The weaker spike (smaller shape energy) goes:
    a MUAP is identified by its main spike."""
    for i in range(len(firings)):
        for j in range(i + 1, len(firings)):
            if locked_together(firings[i], firings[j], tol, window):
                return i if energy[i] < energy[j] else j
    return None


def locked_together(fa, fb, tol: int, window: int) -> bool:
    """Whether two trains (sample indices) keep one offset (± ``tol``) within ``window``
    for most of the sparser one's discharges: one generator seen twice."""
    a, b = np.sort(fa), np.sort(fb)
    if a.size < 3 or b.size < 3:
        return False
    few, many = (a, b) if a.size <= b.size else (b, a)
    k = np.clip(np.searchsorted(many, few), 1, many.size - 1)
    near = np.where(np.abs(many[k] - few) < np.abs(many[k - 1] - few),
                    many[k], many[k - 1]) - few
    near = near[np.abs(near) <= window]
    if near.size < few.size / 2:
        return False
    mode = np.median(near)
    return bool(np.mean(np.abs(near - mode) <= tol) * near.size >= few.size / 2)


def interval_cv(f: np.ndarray) -> float:
    """CV of a train's steady intervals (missed discharges left out); inf when too few
    (fewer than three intervals)."""
    isi = steady_intervals(f) if f.size > 3 else f[:0]
    return float(isi.std() / isi.mean()) if isi.size > 2 else math.inf


def _collisions(f: np.ndarray, g: np.ndarray, refractory: int) -> int:
    """Discharges of sorted ``g`` within ``refractory`` of one of sorted ``f``."""
    if not f.size or not g.size:
        return 0
    j = np.searchsorted(f, g)
    near = np.zeros(g.size, bool)
    for k in (j - 1, j):
        ok = (k >= 0) & (k < f.size)
        near[ok] |= np.abs(f[k[ok]] - g[ok]) < refractory
    return int(near.sum())


def _best_lag(u: np.ndarray, v: np.ndarray, max_lag: int) -> tuple[float, int]:
    """The normalised correlation of ``v`` shifted against ``u`` at its best lag within
    ± ``max_lag`` (``u[n] ≈ v[n − lag]``), and that lag."""
    best = (-2.0, 0)
    for lag in range(-max_lag, max_lag + 1):
        a, b = max(0, lag), min(u.size, u.size + lag)
        uu, vv = u[a:b], v[a - lag: b - lag]
        den = math.sqrt(float(uu @ uu) * float(vv @ vv))
        r = float(uu @ vv) / den if den else -2.0
        if r > best[0]:
            best = (r, lag)
    return best


def join_fragments(x: np.ndarray, rate: float, firings: list[list[int]],
                   shapes: list[np.ndarray], c: DecompositionConfig
                   ) -> tuple[list[list[int]], list[np.ndarray]]:
    """Fragments of one unit joined (module doc, step 5): the best-correlated pair that
    meets every criterion first, until none does. ``x``: the wide-band signal at ``rate``;
    a joined train keeps the first fragment's fiducial point and matching shape."""
    ms = rate / 1000.0
    ta, tb = round(-c.join_span_ms[0] * ms), round(c.join_span_ms[1] * ms)
    refractory, max_lag = round(c.refractory_ms * ms), round(c.join_shift_ms * ms)
    trains = [np.asarray(f, dtype=np.int64) for f in firings]
    shapes = list(shapes)

    def potential(f: np.ndarray) -> np.ndarray:
        f = f[(f - ta >= 0) & (f + tb < x.size)]
        return (np.median(np.stack([x[t - ta: t + tb] for t in f]), axis=0) if f.size
                else np.zeros(ta + tb))

    pots = [potential(f) for f in trains]
    while len(trains) > 1:
        best = None
        for i in range(len(trains)):
            for j in range(i + 1, len(trains)):
                pi, pj = float(np.ptp(pots[i])), float(np.ptp(pots[j]))
                if max(pi, pj) > c.join_amplitude_ratio * min(pi, pj):
                    continue
                r, lag = _best_lag(pots[i], pots[j], max_lag)
                if r < c.join_correlation or (best is not None and r <= best[0]):
                    continue
                fj = trains[j] - lag  # j's discharges at i's fiducial point
                fewer = min(trains[i].size, trains[j].size)
                if _collisions(trains[i], fj, refractory) > c.join_collisions * fewer:
                    continue
                both = np.sort(np.concatenate([trains[i], fj]))
                alone = min(interval_cv(trains[i]), interval_cv(trains[j]))
                cv = interval_cv(both)
                if cv <= alone - c.join_regularity_gain or cv <= c.join_max_cv:
                    best = (r, i, j, both)
        if best is None:
            break
        _, i, j, both = best
        trains[i] = both[(both >= 0) & (both < x.size)]
        pots[i] = potential(trains[i])
        del trains[j], shapes[j], pots[j]
    return [f.tolist() for f in trains], shapes


def decompose(x_uv: np.ndarray, fs: float, config: DecompositionConfig | None = None, *,
              exact: bool = False, stop_below: int = 0) -> list[Unit]:
    """Motor units of a steady contraction ``x_uv`` (µV at ``fs`` Hz), largest first.
    Firing times are in seconds from the first sample; templates at the file's rate.

    ``exact``: ``x_uv`` is integer samples (any scale: every rule is relative to the
    noise), analysed at ``fs`` without upsampling, and the units and their firings are the
    same on every IEEE-754 machine. Every value the decisions rest on is then an integer or
    a half or quarter integer far below 2⁵⁰ (a median of integers is one), so every sum is
    exact in any order (BLAS, SIMD); the only roundings are single multiplications and
    divisions, correctly rounded everywhere; no FFT, no transcendental function, stable
    sorts only. What the box's labels may depend on (:mod:`edge.rest_check`).

    ``stop_below``: the caller asks only whether this many units fire. As soon as fewer
    candidates than that remain (too few detections to seed them, too few shapes), no
    units are returned and the rest of the work is skipped; otherwise the result is the
    same as without it."""
    c = config or DecompositionConfig()
    if exact and not np.issubdtype(np.asarray(x_uv).dtype, np.integer):
        raise TypeError("an exact decomposition takes integer samples")
    up = 1 if exact else max(1, math.ceil(ANALYSIS_RATE_HZ / fs))
    x = upsample(np.asarray(x_uv, dtype=np.float64), up)
    rate = fs * up
    ms = rate / 1000.0
    y = sharpness(x, rate, c)
    sigma = robust_sigma(y, integers=exact)
    thr, dead = c.detect_sigma * sigma, max(1, round(c.dead_ms * ms))
    a, b = round(-c.segment_ms[0] * ms), round(c.segment_ms[1] * ms)
    max_lag = max(1, round(c.max_lag_ms * ms))
    idx, segs = _segments(y, detect(y, thr, dead), a, b)
    if len(idx) > c.max_cluster_segments:
        pick = np.linspace(0, len(idx) - 1, c.max_cluster_segments).round().astype(int)
        idx, segs = idx[pick], segs[pick]
    if len(idx) < stop_below * c.min_seed:  # every unit is seeded by min_seed of them
        return []
    groups = cluster(segs, sigma, c)
    if len(groups) < stop_below:  # merging and the checks below only remove units
        return []
    groups, shapes = merge_shapes(segs, groups, sigma, c, max_lag)
    times = [list(idx[g]) for g in groups]
    while True:  # another spike of a unit already found is not a unit
        twin = time_locked(times, [float(v @ v) for v in shapes], round(c.lock_ms * ms),
                            round(c.lock_window_ms * ms))
        if twin is None:
            break
        del shapes[twin], times[twin]
    if len(shapes) < stop_below:
        return []
    refractory = round(c.refractory_ms * ms)
    firings = peel(y, shapes, a, thr, dead, max_lag, refractory, c.passes)
    for _ in range(2):  # the matching can uncover a lock the detections hid
        twin = time_locked(firings, [float(v @ v) for v in shapes], round(c.lock_ms * ms),
                            round(c.lock_window_ms * ms))
        if twin is None:
            break
        del shapes[twin]
        firings = peel(y, shapes, a, thr, dead, max_lag, refractory, c.passes)
    if not exact:
        firings, shapes = join_fragments(x, rate, firings, shapes, c)
    duration = x.size / rate
    kept = [(np.array(f, dtype=np.int64), s) for f, s in zip(firings, shapes, strict=True)
            if _regular(np.array(f, dtype=np.int64), c, duration)]
    ta, tb = round(-c.template_ms[0] * ms), round(c.template_ms[1] * ms)
    units = []
    for f, shape in kept:
        ok = f[(f - ta >= 0) & (f + tb < x.size)]
        segs_uv = np.stack([x[i - ta: i + tb] for i in ok]) if ok.size else np.zeros((1, ta + tb))
        # the median: another unit's discharge overlapping a few of them does not enter
        tmpl = np.median(segs_uv, axis=0)
        noise = float(np.median(segs_uv.std(axis=0))) / math.sqrt(len(segs_uv))
        units.append(Unit(0, f / rate, shape, tmpl[::up], tmpl, rate, noise, f))
    units.sort(key=lambda u: -float(np.ptp(u.template_fine_uv)))
    for i, u in enumerate(units, 1):
        u.id = i
    return units
