"""Dense steady contractions with known firings, from both simulators (issue 33, point 2).

A decomposition benchmark needs recordings where every unit's firings and potential are
known, with as many units as a real moderate contraction shows. :func:`dense_contraction`
draws one: exactly ``n_units`` motor units firing steadily, from ``convert.biosim``
(potentials from fibre physics) or ``convert.synth`` (potentials from templates), built
from each simulator's own building blocks without changing either (their own outputs stay
the same). What is added here, with its source in :data:`PARAMS`:

- **Recruitment by force** (Fuglevand, Winter & Patla 1993, the numbers of biosim's
  ``voluntary``): the units in reach have thresholds ``RR^(i/N)``; the force is drawn
  between the n-th and the (n+1)-th threshold, so exactly the first ``n_units`` fire, each
  at ``8 Hz + 1 Hz × (force − threshold)`` up to its peak (earlier units fire faster), with
  Gaussian intervals. Shared by both simulators: it is the scenario, not a simulator.
- **Pools**: neurogenic units large, long, polyphasic and unstable (each discharge's shape
  jiggles: biosim's neurogenic jitter of 40–150 µs and blocking of up to 10 % of the near
  fibres' impulses; synth's 1–3 late components jittered and blocked likewise); myopathic
  units small, short, polyphasic; healthy units normal. Median peak-to-peak and span
  over 20 µV of the truth potentials (240 units a pool, 10-unit recordings; neurogenic,
  healthy, myopathic): biosim 1.4 mV / 15 ms, 0.8 mV / 6 ms, 0.24 mV / 4 ms; synth
  2.5 mV / 35 ms, 0.8 mV / 11 ms, 0.3 mV / 5 ms (tests/test_dense.py checks the order).
- **After-waves**: after each potential's last deflection over 10 % of its peak, a tail
  of the same sign, 2–8 % of its peak-to-peak high, an alpha function of τ = 1–3 ms
  (≈ 5–15 ms long): the slow after-potential that Rosenfalck's IAP and the templates lack
  (terminal tail: McGill & Lateva 1997; filter-dependent duration: Dumitru, King &
  Nandedkar 1997; both in shared/reference/qemg.md). The height is chosen (no figure
  found), low enough to leave the clinical amplitude as it was.
- **Tissue noise**: 2–6 µV RMS of Gaussian noise low-passed (first order) at 300–1000 Hz
  (the electrode–tissue interface and the far field of units beyond the pickup), beside
  each simulator's own amplifier noise (biosim 1.5–6 µV white with 0–15 µV mains; synth
  3–10 µV with mains harmonics and wander): together a few µV to ≈ 10 µV RMS, the range
  of shared/reference/needle-biophysics.md and synth's ``background``. Chosen, not fitted.

Deterministic for a given ``numpy.random.Generator`` state. A 10 s recording takes about
0.05 s (synth) and 0.05–1.6 s (biosim; the most for 20 neurogenic units) on one core.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from convert import biosim, synth

SIMULATORS = ("biosim", "synth")
POOLS = ("healthy", "myopathic", "neurogenic")

_VOL = biosim.PARAMS["voluntary"]
_BIO_POOL = biosim.PARAMS["voluntary_pool"]

#: name -> value or (low, high), with its source. Units in the key.
PARAMS: dict[str, dict[str, Any]] = {
    "recruitment": {  # Fuglevand, Winter & Patla 1993, as biosim's ``voluntary``
        "units_in_reach": _VOL["units_in_reach"],  # thresholds spread over this many
        "recruitment_range": _VOL["recruitment_range"],  # last threshold / first
        "min_rate_hz": _VOL["min_rate_hz"],  # at threshold
        "gain_hz_per_unit": _VOL["gain_hz_per_unit"],  # per first-threshold of excess
        "peak_rate_hz": (25.0, 30.0),  # the low end of Fuglevand's 25–35 Hz peaks: a
        # steady contraction an examiner asks for (no unit above ~30 Hz)
        "isi_cv": _VOL["isi_cv"],  # 0.1–0.2
        # motor unit loss (MUNE in neuropathy): fewer units in reach, so the same number
        # active means each is driven further above its threshold (fires faster)
        "units_kept": {"healthy": (1.0, 1.0), "myopathic": _BIO_POOL["myopathic"]["units_kept"],
                       "neurogenic": _BIO_POOL["neurogenic"]["units_kept"]},
    },
    "biosim": {
        "unit_distance_mm": _VOL["unit_distance_mm"],  # unit centre from the needle
        "redraws": 50,  # a unit with no fibre within the pickup is drawn again (it
        # would add nothing to the recording, so could not count as active)
        # neurogenic instability beyond the pool's jitter (40–150 µs): a near fibre's
        # impulse blocks at some discharges; blocking appears as jitter exceeds 80–100 µs
        # (Stålberg & Trontelj, Single Fiber EMG); the share per discharge is chosen
        "block_share": {"healthy": (0.0, 0.0), "myopathic": (0.0, 0.0),
                        "neurogenic": (0.0, 0.1)},
    },
    "synth": {  # the unit's template, per pool; each unit's distance from the needle is
        # drawn as synth draws a patient's (amplitude loss, tissue low-pass)
        "healthy": {
            "amplitude_uv": synth.PARAMS["motor_unit"]["amplitude_uv"],  # 300–3000 µV
            "duration_ms": (5.0, 15.0),  # normal limb MUAPs 5–15 ms (needle-biophysics.md)
            "polyphasic_share": synth.PARAMS["motor_unit"]["polyphasic_share"],  # ≲ 15 %
            "amplitude_scale": (1.0, 1.0), "duration_scale": (1.0, 1.0),
        },
        "myopathic": {  # Buchthal & Kamieniecka 1982; Dumitru (2002) ch. 27: short, small,
            # polyphasic; the scales are biosim's fibre loss (0.25–0.6) and a shortening
            # to roughly half (chosen: mean durations 20–50 % short are quoted)
            "amplitude_uv": synth.PARAMS["motor_unit"]["amplitude_uv"],
            "duration_ms": (5.0, 15.0), "polyphasic_share": (0.3, 0.6),
            "amplitude_scale": _BIO_POOL["myopathic"]["fibre_scale"],
            "duration_scale": (0.4, 0.7),
        },
        "neurogenic": {  # Daube & Rubin (2009); Stålberg 1980: large, long, polyphasic;
            # amplitude ×1.5–3 and duration ×1.5–2.5 chosen (giant units of 5–10 mV and
            # durations over 20 ms at the top of the range)
            "amplitude_uv": synth.PARAMS["motor_unit"]["amplitude_uv"],
            "duration_ms": (5.0, 15.0), "polyphasic_share": (0.3, 0.6),
            "amplitude_scale": (1.5, 3.0), "duration_scale": (1.5, 2.5),
        },
        # unstable late components of a reinnervated unit (satellites, Daube & Rubin):
        # jitter as biosim's neurogenic end-plates, blocking as above; sizes chosen
        "satellites": {"count": (1, 3), "share_of_amplitude": (0.1, 0.3),
                       "width_ms": (0.5, 1.5), "at_duration": (0.5, 1.2),
                       "jitter_us": _BIO_POOL["neurogenic"]["jitter_us"],
                       "block_share": (0.0, 0.1)},
    },
    "after_wave": {  # the slow after-potential: Rosenfalck's IAP has none (biosim's known
        # limit) nor have the templates; the terminal positive tail reaches baseline
        # several ms after the terminal deflection (McGill & Lateva 1997, qemg.md [ML97]),
        # and wide-open filters show MUAPs of ≈30 ms where clinical ones show ≈10 ms
        # ([DKN97]). An alpha function (t/τ)·e^(1−t/τ) from the last deflection over 10 %
        # of the peak, of that deflection's sign: lasts ≈5τ (5–15 ms). Its height is
        # chosen low (no figure found) so the clinical amplitude does not change.
        "share_of_ptp": (0.02, 0.08), "tau_ms": (1.0, 3.0),
    },
    "tissue_noise": {  # the electrode–tissue interface and the far field of units beyond
        # the pickup (their high frequencies lost with distance, as synth's patient:
        # 9 → 2.5 kHz): Gaussian noise, first-order low-pass. Levels chosen so that with
        # the amplifier's own (biosim 1.5–6 µV, synth 3–10 µV) the baseline stays within
        # "a few µV" (needle-biophysics.md) to "≈10 µV with the needle" (synth PARAMS)
        "uv_rms": (2.0, 6.0), "corner_hz": (300.0, 1000.0),
    },
}

POTENTIAL_PAD_MS = 30.0
"""Silence after each truth potential (holds its after-wave and the amplifier's tail)."""


@dataclass
class DenseContraction:
    """A simulated dense contraction and its truth."""

    signal_uv: np.ndarray
    """The recording, µV (float64)."""
    fs: int
    """Sample rate, Hz."""
    firings_s: dict[int, np.ndarray]
    """Unit id (recruitment order, 0 first) -> sorted discharge times, s. A discharge is
    the unit's firing at its end-plate (biosim) or its template's onset (synth): the
    potential follows it (see ``potentials_uv``)."""
    potentials_uv: dict[int, np.ndarray]
    """Unit id -> its noiseless mean potential at ``fs`` through the recording's amplifier,
    sample 0 at the discharge (no jitter, blocked components at their mean weight)."""
    info: dict[str, Any]
    """simulator, pool, n_units, units_in_reach, excitation, rates_hz, isi_cv, duration_s,
    the noise levels and the amplifier's band."""


def _u(rng: np.random.Generator, lo_hi) -> float:
    return float(rng.uniform(*lo_hi))


def recruit(rng: np.random.Generator, n_units: int, pool: str
            ) -> tuple[int, float, list[float], list[float]]:
    """(units in reach N, excitation, rate of each active unit in Hz, ISI CV of each):
    Fuglevand's thresholds ``RR^(i/N)``; the excitation is drawn between the n-th and the
    (n+1)-th threshold, so exactly ``n_units`` are recruited."""
    r = PARAMS["recruitment"]
    reach = _u(rng, r["units_in_reach"]) * _u(rng, r["units_kept"][pool])
    n_reach = max(n_units + 1, round(reach))
    rr = r["recruitment_range"]
    thr = [math.exp(math.log(rr) * i / n_reach) for i in range(n_units + 1)]
    e = thr[n_units - 1] + rng.uniform(0.0, 1.0) * (thr[n_units] - thr[n_units - 1])
    rates, cvs = [], []
    for i in range(n_units):
        peak = _u(rng, r["peak_rate_hz"])
        rates.append(min(peak, r["min_rate_hz"] + r["gain_hz_per_unit"] * (e - thr[i])))
        cvs.append(_u(rng, r["isi_cv"]))
    return n_reach, float(e), rates, cvs


def with_after_wave(v: np.ndarray, fs: float, rng: np.random.Generator) -> np.ndarray:
    """``v`` (a potential at ``fs``) with its slow after-wave (``PARAMS['after_wave']``),
    longer by the tail's span."""
    a = PARAMS["after_wave"]
    share, tau = _u(rng, a["share_of_ptp"]), _u(rng, a["tau_ms"]) * 1e-3 * fs
    big = np.flatnonzero(np.abs(v) >= 0.1 * np.max(np.abs(v))) if v.size else v
    if not big.size:
        return v
    end = int(big[-1])
    k = np.arange(int(5 * tau) + 1) / tau
    tail = math.copysign(share * float(np.ptp(v)), float(v[end])) * k * np.exp(1 - k)
    out = np.zeros(max(v.size, end + tail.size))
    out[: v.size] = v
    out[end: end + tail.size] += tail
    return out


def tissue_noise(rng: np.random.Generator, n: int, fs: float) -> tuple[np.ndarray, float]:
    """Coloured noise of ``PARAMS['tissue_noise']``, and its RMS in µV."""
    from scipy import signal as sps

    p = PARAMS["tissue_noise"]
    rms, corner = _u(rng, p["uv_rms"]), min(_u(rng, p["corner_hz"]), 0.45 * fs)
    w = sps.sosfilt(sps.butter(1, corner, "lowpass", fs=fs, output="sos"), rng.normal(size=n))
    return w * (rms / max(float(np.std(w)), 1e-12)), rms


def dense_contraction(simulator: str, n_units: int, pool: str, rng: np.random.Generator, *,
                      fs: int = 10_000, duration_s: float = 10.0) -> DenseContraction:
    """A steady contraction of exactly ``n_units`` motor units of a ``pool`` ("healthy",
    "myopathic", "neurogenic") muscle, drawn by ``simulator`` ("biosim", "synth"), with
    every unit's firings and mean potential (see the module doc)."""
    if simulator not in SIMULATORS:
        raise ValueError(f"unknown simulator {simulator!r} (one of {', '.join(SIMULATORS)})")
    if pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r} (one of {', '.join(POOLS)})")
    if n_units < 1:
        raise ValueError("n_units must be at least 1")
    n_reach, e, rates, cvs = recruit(rng, n_units, pool)
    make = _biosim if simulator == "biosim" else _synth
    x, firings, potentials, info = make(rng, pool, n_reach, rates, cvs, fs, duration_s)
    info = {"simulator": simulator, "pool": pool, "n_units": n_units,
            "units_in_reach": n_reach, "excitation": round(e, 4),
            "rates_hz": [round(r, 3) for r in rates], "isi_cv": [round(c, 3) for c in cvs],
            "duration_s": duration_s, **info}
    return DenseContraction(np.asarray(x, dtype=np.float64), fs, firings, potentials, info)


def _biosim(rng, pool_name, n_reach, rates, cvs, fs, dur):
    """biosim: Canvas, needle, units of ``motor_unit`` in a ``draw_pool`` muscle, fired
    with ``Canvas.fire_unit``, then ``amplifier``; truth by ``unit_potential``."""
    b = PARAMS["biosim"]
    c = biosim.Canvas(rng, fs, dur)
    needle = biosim.make_needle(rng, "concentric")
    pool = biosim.draw_pool(rng, pool_name)
    block = _u(rng, b["block_share"][pool_name])
    means = {}
    for i, (rate, cv) in enumerate(zip(rates, cvs, strict=True)):
        size = pool.fibre_scale * (0.5 + 1.5 * i / n_reach)  # size principle, as voluntary
        for _ in range(b["redraws"]):
            unit = biosim.motor_unit(rng, needle, c.fs_sim, _u(rng, b["unit_distance_mm"]),
                                     size, pool=pool)
            if unit.near or unit.far.size:
                break
        # the after-wave follows the unit's mean potential: added to its static part
        mean = unit.far
        for w, delay in unit.near:
            mean = _add_at(mean, w, delay)
        tail = with_after_wave(mean, c.fs_sim, rng)
        tail[: mean.size] -= mean
        unit = replace(unit, far=_add_at(unit.far, tail, 0))
        means[i] = replace(unit, near=[(w * (1.0 - block), d) for w, d in unit.near])
        for t in biosim.train(rng, rate, cv, dur):
            keep = rng.random(len(unit.near)) >= block if block else None
            fired = unit if keep is None else replace(
                unit, near=[f for f, k in zip(unit.near, keep, strict=True) if k])
            c.fire_unit(fired, float(t), i)
    noise, noise_rms = tissue_noise(rng, c.x.size // biosim.UPSAMPLE, fs)
    y, amp = biosim.amplifier(rng, c.to_fs() + noise, fs)
    firings = {i: np.array(sorted(f.t_s for f in c.firings if f.generator == i))
               for i in range(len(rates))}
    potentials = {i: biosim.unit_potential(u, fs, amp, POTENTIAL_PAD_MS)
                  for i, u in means.items()}
    info = {"fibre_scale": round(pool.fibre_scale, 3), "block_share": round(block, 4),
            "tissue_noise_uv_rms": round(noise_rms, 3),
            **{k: round(v, 3) for k, v in amp.items()}}
    return y, firings, potentials, info


def _add_at(a: np.ndarray, b: np.ndarray, at: int) -> np.ndarray:
    """``a`` + ``b`` starting at sample ``at`` (longer if ``b`` runs past ``a``'s end)."""
    out = np.zeros(max(a.size, at + b.size))
    out[: a.size] += a
    out[at: at + b.size] += b
    return out


def _shifted(w: np.ndarray, frac: float) -> np.ndarray:
    """``w`` delayed by ``frac`` (0–1) of a sample (linear interpolation)."""
    k = np.arange(w.size + 1, dtype=np.float64)
    return np.interp(k - frac, k[:-1], w, left=0.0, right=0.0)


def _synth(rng, pool_name, n_reach, rates, cvs, fs, dur):
    """synth: a patient (background, amplifier), per unit a ``muap`` template sized by
    recruitment order and a patient's distance (amplitude loss, tissue low-pass), fired
    along ``train`` and ``place``d with the patient's per-discharge amplitude jitter."""
    s = PARAMS["synth"]
    spec, sat = s[pool_name], s["satellites"]
    patient = synth.make_patient(rng, mixture=False)
    n = int(dur * fs)
    x = np.zeros(n)
    firings, means = {}, {}
    for i, (rate, cv) in enumerate(zip(rates, cvs, strict=True)):
        where = synth.make_patient(rng, mixture=False)  # only its distance is used
        size = (0.5 + 1.5 * i / n_reach) / 1.25  # size principle (mean 1 over the reach)
        amp = _u(rng, spec["amplitude_uv"]) * _u(rng, spec["amplitude_scale"]) * size
        d_ms = _u(rng, spec["duration_ms"]) * _u(rng, spec["duration_scale"])
        w = synth.muap(rng, fs, d_ms, amp, synth._phases(rng, _u(rng, spec["polyphasic_share"])))
        w = np.concatenate([w, np.zeros(max(1, fs // 1000))]) * where.amplitude_factor
        w = with_after_wave(synth._lowpass(w, fs, where.lowpass_hz), fs, rng)
        sats = []  # (shape, mean offset in samples, jitter sd in samples)
        block = 0.0
        if pool_name == "neurogenic":
            block = _u(rng, sat["block_share"])
            for _ in range(int(rng.integers(sat["count"][0], sat["count"][1] + 1))):
                shape = synth.spike(fs, _u(rng, sat["width_ms"]),
                                    amp * _u(rng, sat["share_of_amplitude"])
                                    * where.amplitude_factor, 2, rng.choice([-1.0, 1.0]))
                sats.append((shape, _u(rng, sat["at_duration"]) * d_ms * 1e-3 * fs,
                             _u(rng, sat["jitter_us"]) * 1e-6 * fs))
        mean = w
        for shape, off, _ in sats:
            at = int(off)
            mean = _add_at(mean, _shifted(shape, off - at) * (1.0 - block), at)
        means[i] = mean
        times = synth.train(rng, rate, cv, 0.0, dur)
        firings[i] = times
        for t in times:
            synth.place(x, w * synth._jit(rng, patient), float(t), fs)
            for shape, off, sd in sats:
                if rng.random() < block:
                    continue
                pos = t * fs + off + rng.normal(0.0, sd)
                at = math.floor(pos)
                synth.place(x, _shifted(shape, pos - at), at / fs, fs)
    noise, noise_rms = tissue_noise(rng, n, fs)
    y = synth.amplifier(x + noise + synth.background(rng, n, fs, patient), fs, patient)
    pad = np.zeros(int(POTENTIAL_PAD_MS * 1e-3 * fs))
    potentials = {i: synth.amplifier(np.concatenate([v, pad]), fs, patient)
                  for i, v in means.items()}
    info = {"noise_uv_rms": round(patient.noise_uv_rms, 3),
            "tissue_noise_uv_rms": round(noise_rms, 3), "mains_uv": round(patient.mains_uv, 3),
            "highpass_hz": round(patient.highpass_hz, 3),
            "lowpass_hz": round(patient.lowpass_hz_amp, 3)}
    return y, firings, potentials, info
