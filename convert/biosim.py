"""A second, biophysical needle-EMG simulator, written independently of ``convert/synth.py``.

``synth.py`` draws each class's waveform from published templates. Here nothing is drawn
as a waveform: every potential is computed from the physics of a fibre and a needle, and
each class follows from what fibres and motor units do (so a model that only learned
``synth.py``'s templates is tested on signals it has never seen):

1. **Intracellular action potential** (Rosenfalck 1969): ``Vm(z) = 96 z³ e^(−z) − 90`` mV,
   ``z`` mm behind the wavefront. Its transmembrane current per unit length is
   ``i(z) = σ_i π a² ∂²Vm/∂z²`` (fibre radius ``a``), analytically
   ``96 e^(−z) (z³ − 6z² + 6z)`` mV/mm² for the second derivative.
2. **Propagation**: from the end-plate both ways at the conduction velocity, generated at
   the end-plate and extinguished at the fibre's ends (or where the needle blocks it).
3. **Volume conductor** (Nandedkar & Stålberg 1983): a line source in an anisotropic medium,
   ``φ = 1/(4πσ_r) ∫ i(s) / sqrt(K r² + (z − s)²) ds`` with ``K = σ_z / σ_r``.
4. **Electrode**: a concentric needle's core (a 150 × 580 µm ellipse) averaged over its
   surface, minus its cannula (averaged over a ring around the core and along the shaft);
   a monopolar needle's tip (≈ 0.3 mm²) against a distant reference.
5. **Amplifier**: high-pass, low-pass, noise, mains.

The potential of a fibre is computed exactly on the sample grid: the wave moves ``dz =
v / (fs·U)`` per sample of a ``U``-times faster grid, so the line integral is a discrete
convolution of the current profile with the electrode's distance weights (one per
direction), truncated where the wave is born and where it dies. The signal is built at
``fs·U`` and block-averaged to ``fs``.

Every number is in :data:`PARAMS` with its source. Deterministic for a given
``numpy.random.Generator`` state.

Known limits (measured in tests/test_biosim.py): Rosenfalck's IAP has no slow
after-potential, so a blocked wave's negative phase lasts 1–2 ms, where a clinical positive
sharp wave's lasts up to 10–30 ms; MUAPs of units centred near the needle come out at
1–6 mV (median ≈ 2.5 mV), the upper half of the clinical range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from convert.simulated import SimulatedRecording
from edge.labels import LABELS
from edge.spec import DEFAULT_SPEC

UPSAMPLE = 4
"""Simulation grid: ``fs·UPSAMPLE`` (12.5 µs at 20 kHz: the timing resolution of jitter)."""

#: name -> value or (low, high), with its source. Units in the key.
PARAMS: dict[str, dict[str, Any]] = {
    "fibre": {
        "sigma_i_s_per_m": 1.0,  # intracellular conductivity: Nandedkar & Stålberg 1983
        "sigma_r_s_per_m": 0.063,  # radial: Andreassen & Rosenfalck 1981, via N&S 1983
        "sigma_z_s_per_m": 0.33,  # axial: as above
        "radius_um": (20.0, 35.0),  # limb fibre diameter 40–70 µm (Dubowitz, muscle biopsy)
        "cv_m_per_s": (3.0, 5.0),  # human limb muscle: 3–5 m/s (Stålberg 1966)
        "half_length_mm": (30.0, 60.0),  # end-plate to tendon (fibres 60–120 mm)
        "endplate_band_mm": 5.0,  # end-plates lie in a band a few mm wide
        "jitter_us": (10.0, 40.0),  # neuromuscular jitter (MCD), normal: Stålberg SFEMG
        "branch_delay_ms": (0.0, 0.6),  # terminal axon branch spread (N, S, S & A 1988)
    },
    "electrode": {
        "concentric_core_mm": (0.58, 0.15),  # core ellipse axes (N, S, S & A 1988)
        "cannula_radius_mm": 0.3,  # the reference's ring around the core
        "cannula_length_mm": 10.0,  # shaft length in tissue the cannula averages over
        "monopolar_tip_radius_mm": 0.3,  # tip area ≈ 0.2–0.4 mm²
        "monopolar_share": 0.3,
    },
    "amplifier": {
        "highpass_hz": (2.0, 20.0),  # clinical settings (AANEM): 2–20 Hz
        "lowpass_hz": (5000.0, 10000.0),  # 5–10 kHz
        "noise_uv_rms": (1.5, 6.0),  # needle amplifier input noise: a few µV RMS
        "mains_hz": (50.0, 60.0),
        "mains_uv": (0.0, 15.0),
    },
    "motor_unit": {
        "fibre_density_per_mm2": (3.0, 6.0),  # a unit's own fibres in its territory:
        # SFEMG fibre density 1.2–1.8 per 300 µm uptake radius (0.28 mm²), Stålberg
        # (the 4–12 /mm² of "500 fibres over 40 mm²" gave MUAPs of 2–9 mV: too large)
        "territory_radius_mm": (2.0, 5.0),  # territories 5–10 mm across
        "pickup_mm": 2.5,  # fibres beyond this add little (duration comes from < 2.5 mm)
    },
    "voluntary": {  # Fuglevand, Winter & Patla 1993
        "units_in_reach": (15, 60),  # units with territory overlapping the uptake
        "recruitment_range": 30.0,  # threshold of the last unit / first
        "min_rate_hz": 8.0, "peak_rate_hz": (25.0, 35.0), "gain_hz_per_unit": 1.0,
        "isi_cv": (0.1, 0.2),
        "excitation": (1.5, 8.0),  # low to moderate steady force (×first threshold)
        "threshold_share": 0.3,  # a threshold contraction (the least force that brings
        "threshold_excitation": (1.0, 1.5),  # in a unit): the first, smallest units only
        "unit_distance_mm": (0.2, 6.0),  # unit centre from the needle
    },
    # Whose muscle the voluntary recording is from. A clinic records patients: a box
    # that knows only healthy units calls a myopathic or neurogenic pattern pathological
    # spontaneous activity. Changes against the healthy pool, each with its source.
    "voluntary_pool": {
        "share": {"healthy": 0.5, "myopathic": 0.25, "neurogenic": 0.25},
        "myopathic": {  # Buchthal & Kamieniecka 1982; Dumitru, Electrodiagnostic
            # Medicine (2002) ch. 27: short, small, polyphasic MUAPs, early recruitment
            "fibre_scale": (0.25, 0.6),  # fibre loss within each unit (necrosis)
            "radius_um": (8.0, 40.0),  # fibre size variation: atrophic and hypertrophic
            # fibres side by side (Dubowitz, Muscle Biopsy) -> unequal SFAPs, polyphasia
            "jitter_us": (20.0, 80.0),  # mildly raised (Stålberg & Trontelj, SFEMG)
            "excitation_factor": (1.5, 3.0),  # weak units: more of them for a force
            "units_kept": (1.0, 1.0),
            "branch_delay_ms": (0.0, 1.5),  # slowly conducting regenerating fibres
            "peak_rate_hz": (25.0, 35.0),
        },
        "neurogenic": {  # Stålberg 1980 (macro EMG); Daube & Rubin, Clinical
            # Neurophysiology (2009): few, large, long units firing fast
            "fibre_scale": (2.0, 5.0),  # reinnervation by sprouts: fibre density 2–5×
            # the normal 1.5 per uptake area (SFEMG FD in chronic neuropathy)
            "radius_um": (20.0, 35.0),
            "jitter_us": (40.0, 150.0),  # immature sprouts (Stålberg & Trontelj)
            "excitation_factor": (2.0, 4.0),  # the force the lost units made is asked
            # of the rest: each is driven further above its threshold
            "units_kept": (0.1, 0.5),  # motor unit loss (MUNE in neuropathy)
            "branch_delay_ms": (0.0, 4.0),  # slow sprouts: late components, satellites
            "peak_rate_hz": (30.0, 45.0),  # reduced recruitment: the few units left
            # fire at 20–40 Hz (recruitment ratio > 5; Petajan 1991)
        },
    },
    "fibrillation": {  # one denervated fibre firing regularly (Kugelberg; Dumitru)
        "fibres": (1, 3), "distance_mm": (0.08, 0.5), "rate_hz": (0.5, 15.0),
        "interval_cv": (0.005, 0.05), "needle_from_endplate_mm": (5.0, 25.0),
        "radius_um": (10.0, 20.0),  # denervated fibres atrophy (20–40 µm across): with
        # SFAP ∝ a², why fibrillations are 20–200 µV where a normal fibre gives mV
    },
    "positive_sharp_wave": {  # propagation blocked at the needle (Dumitru 1990s)
        "fibres": (1, 2), "distance_mm": (0.03, 0.3), "rate_hz": (0.5, 15.0),
        "interval_cv": (0.005, 0.05), "needle_from_endplate_mm": (5.0, 25.0),
        "radius_um": (10.0, 20.0),  # denervated, atrophic (as fibrillation)
    },
    "fasciculation": {  # a whole unit firing spontaneously, irregularly
        "units": (1, 3), "rate_hz": (0.3, 1.5),
    },
    "complex_repetitive": {  # an ephaptic loop of fibres: one time-locked complex
        "fibres": (3, 10), "loop_ms": (5.0, 40.0), "rate_hz": (5.0, 100.0),
        "distance_mm": (0.05, 0.6),
    },
    "myotonic": {  # single fibres waxing and waning in rate and amplitude
        "fibres": (1, 2), "rate_hz": (20.0, 80.0), "wax_wane_s": (0.5, 3.0),
        "amplitude_drop": (0.3, 0.7), "psw_share": 0.5,
    },
    "myokymic": {  # grouped unit bursts
        "units": (1, 2), "spikes_per_burst": (2, 10), "intraburst_hz": (20.0, 60.0),
        "burst_rate_hz": (0.5, 5.0),
    },
    "neuromyotonic": {  # 150–300 Hz decrementing unit trains
        "rate_hz": (150.0, 300.0), "train_s": (0.2, 1.5), "decrement": (0.3, 0.8),
    },
    "end_plate": {  # needle in the end-plate zone
        "mepp_rate_hz": (100.0, 800.0), "mepp_uv": (10.0, 50.0), "mepp_ms": (0.5, 2.0),
        "spike_fibres": (0, 3), "spike_rate_hz": (5.0, 50.0), "distance_mm": (0.03, 0.3),
    },
    "insertional": {  # bursts of fibre discharges as the needle moves
        "fibres_per_burst": (5, 40), "burst_ms": (50.0, 300.0), "step_s": (0.8, 1.2),
        "distance_mm": (0.03, 0.8), "shift_uv": (20.0, 200.0),
    },
    "artifact": {
        "pops_per_s": (0.5, 4.0), "pop_uv": (200.0, 3000.0), "pop_ms": (5.0, 80.0),
        "motion_uv": (100.0, 2000.0), "motion_hz": (0.5, 5.0),
    },
}


@dataclass
class Needle:
    """Where the recording surface is and what it averages over."""

    kind: str
    """'concentric' or 'monopolar'."""
    points: np.ndarray
    """[k, 2] (radial offset mm, axial offset mm) of the recording surface's samples."""
    ref_points: np.ndarray
    """[m, 2] the same for the reference (empty: a distant reference)."""


@dataclass
class Firing:
    """One discharge of a generator (ground truth for MUAP analysis)."""

    t_s: float
    generator: int


@dataclass
class BioRecording(SimulatedRecording):
    """A recording in µV with its truth: every firing and the voluntary units."""

    firings: list[Firing] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    units: dict[int, Any] = field(default_factory=dict)
    """Voluntary units that fired (generator -> MotorUnit): see :func:`unit_potential`."""


def _u(rng: np.random.Generator, lo_hi) -> float:
    return float(rng.uniform(*lo_hi))


def _i(rng: np.random.Generator, lo_hi) -> int:
    return int(rng.integers(lo_hi[0], lo_hi[1] + 1))


# ---- the physics ----------------------------------------------------------------------
def iap_second_derivative(z_mm: np.ndarray) -> np.ndarray:
    """∂²Vm/∂z² of Rosenfalck's IAP, mV/mm² (0 ahead of the wavefront, z < 0)."""
    z = np.maximum(z_mm, 0.0)
    return np.where(z_mm >= 0, 96.0 * np.exp(-z) * (z**3 - 6 * z**2 + 6 * z), 0.0)


def iap_first_derivative(z_mm: np.ndarray) -> np.ndarray:
    """∂Vm/∂z of Rosenfalck's IAP, mV/mm (= V/m), z behind the wavefront."""
    z = np.maximum(z_mm, 0.0)
    return np.where(z_mm >= 0, 96.0 * np.exp(-z) * (3 * z**2 - z**3), 0.0)


def make_needle(rng: np.random.Generator, kind: str | None = None) -> Needle:
    e = PARAMS["electrode"]
    if kind is None:
        kind = "monopolar" if rng.random() < e["monopolar_share"] else "concentric"
    if kind == "concentric":
        long_ax, short_ax = e["concentric_core_mm"]
        s = np.linspace(-0.5, 0.5, 5)
        core = np.stack([np.concatenate([np.zeros(5), s * short_ax]),
                         np.concatenate([s * long_ax, np.zeros(5)])], axis=1)
        ang = np.linspace(0, 2 * np.pi, 8, endpoint=False)
        zs = np.linspace(0.0, 1.0, 11) * e["cannula_length_mm"]  # up the shaft from the tip
        ring = np.array([(e["cannula_radius_mm"] * np.cos(a), z) for a in ang for z in zs])
        return Needle(kind, core, ring)
    rr = e["monopolar_tip_radius_mm"] * np.sqrt(np.linspace(0, 1, 5))
    tip = np.array([(r, z) for r in rr for z in (-0.1, 0.0, 0.1)])
    return Needle(kind, tip, np.zeros((0, 2)))


@dataclass(frozen=True)
class Fibre:
    """One muscle fibre relative to the needle (which sits at axial position 0)."""

    distance_mm: float
    """Radial distance from the needle's axis to the fibre."""
    endplate_mm: float
    """Axial position of its end-plate (the needle at 0)."""
    left_mm: float
    """Axial position of its left end (tendon, < endplate)."""
    right_mm: float
    """Axial position of its right end (tendon, or the needle where it is blocked)."""
    radius_um: float
    cv_m_per_s: float


def sfap(f: Fibre, needle: Needle, fs_sim: float) -> np.ndarray:
    """The fibre's action potential at the needle, µV, on the ``fs_sim`` grid, from the
    moment it starts at the end-plate. Exact line integral on the grid (see module doc)."""
    p = PARAMS["fibre"]
    dz = f.cv_m_per_s * 1e3 / fs_sim  # mm the wave moves per sample (m/s = mm/ms)
    k = p["sigma_z_s_per_m"] / p["sigma_r_s_per_m"]
    s = np.arange(0.0, 20.0, dz)  # mm behind the front
    area = math.pi * (f.radius_um * 1e-3) ** 2 * 1e-6  # m²
    sigma_i = p["sigma_i_s_per_m"]
    # Line current, A/m: σ_i [S/m] · area [m²] · ∂²Vm/∂z² [mV/mm² = 1e3 V/m²].
    current = sigma_i * area * iap_second_derivative(s) * 1e3
    # The ends are sealed (the end-plate where the wave is born, the tendon or the block
    # where it dies): no axial current leaves them, so each carries a point source equal
    # to the axial current the line source lacks there, σ_i·area·∂Vm/∂z [mV/mm = V/m], A.
    # Without them the fibre's currents would not sum to zero, and a blocked wave would
    # lose the slow negative phase of a positive sharp wave.
    axial = sigma_i * area * iap_first_derivative(s)
    out = np.zeros(0)
    for end, sign in ((f.right_mm, 1.0), (f.left_mm, -1.0)):
        n = max(1, int(abs(end - f.endplate_mm) / dz))
        z = f.endplate_mm + sign * dz * np.arange(n)  # source positions the wave visits
        w = _weights(z, f.distance_mm, needle, k)  # 1/mm
        part = np.convolve(current, w)[: n + s.size] * dz  # A/m · (mm/mm): the ∫ ds/r
        part[: s.size] -= axial * w[0] * 1e3  # born at the end-plate: A · 1/m
        part[n - 1 : n - 1 + s.size] += axial * w[-1] * 1e3  # dies at the far end
        out = part if out.size == 0 else _add(out, part)
    return out / (4 * math.pi * p["sigma_r_s_per_m"]) * 1e6  # V → µV


def _weights(z: np.ndarray, r: float, needle: Needle, k: float) -> np.ndarray:
    """Mean over the recording surface of 1/distance (1/mm), minus the reference's."""

    def mean_inv(points: np.ndarray) -> np.ndarray:
        rad = np.hypot(r + points[:, 0:1], 0.0)  # surface offsets towards/away from fibre
        rad = np.maximum(rad, 0.01)  # a fibre never passes through the metal
        return (1.0 / np.sqrt(k * rad**2 + (z[None, :] - points[:, 1:2]) ** 2)).mean(0)

    w = mean_inv(needle.points)
    if needle.ref_points.size:
        w = w - mean_inv(needle.ref_points)
    return w


def _add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    n = max(a.size, b.size)
    out = np.zeros(n)
    out[: a.size] += a
    out[: b.size] += b
    return out


def fibre_near(rng: np.random.Generator, distance_mm: float, endplate_mm: float,
               blocked_at_needle: bool = False, radius_um=None) -> Fibre:
    p = PARAMS["fibre"]
    half = _u(rng, p["half_length_mm"])
    left = endplate_mm - half * _u(rng, (0.7, 1.3))
    right = 0.0 if blocked_at_needle else endplate_mm + half * _u(rng, (0.7, 1.3))
    return Fibre(distance_mm, endplate_mm, min(left, endplate_mm - 5), max(right, left + 1),
                 _u(rng, radius_um or p["radius_um"]), _u(rng, p["cv_m_per_s"]))


@dataclass
class MotorUnit:
    """A unit's fibres near the needle: a static far part and jittered near fibres."""

    far: np.ndarray
    """Summed potential (µV, sim grid) of the fibres beyond 0.5 mm: shape-stable."""
    near: list[tuple[np.ndarray, int]]
    """(potential, delay in sim samples) of each fibre within 0.5 mm: jittered per firing."""
    fibres: int
    jitter_us: tuple[float, float] | None = None
    """Neuromuscular jitter range of this unit's end-plates (None: the normal range)."""


@dataclass(frozen=True)
class UnitPool:
    """How a muscle's units differ from a healthy one's (``PARAMS['voluntary_pool']``)."""

    state: str = "healthy"
    fibre_scale: float = 1.0
    radius_um: tuple[float, float] | None = None
    jitter_us: tuple[float, float] | None = None
    branch_delay_ms: tuple[float, float] | None = None
    excitation_factor: float = 1.0
    units_kept: float = 1.0
    peak_rate_hz: tuple[float, float] | None = None


def draw_pool(rng: np.random.Generator, state: str | None = None) -> UnitPool:
    """A healthy, myopathic or neurogenic muscle, in the shares of ``voluntary_pool``."""
    spec = PARAMS["voluntary_pool"]
    if state is None:
        names = list(spec["share"])
        state = names[int(rng.choice(len(names), p=list(spec["share"].values())))]
    if state == "healthy":
        return UnitPool()
    s = spec[state]
    return UnitPool(state, _u(rng, s["fibre_scale"]), s["radius_um"], s["jitter_us"],
                    s["branch_delay_ms"], _u(rng, s["excitation_factor"]),
                    _u(rng, s["units_kept"]), s["peak_rate_hz"])


def motor_unit(rng: np.random.Generator, needle: Needle, fs_sim: float, centre_mm: float,
               scale: float = 1.0, endplate_mm: float | None = None,
               pool: UnitPool | None = None) -> MotorUnit:
    """Fibres drawn uniformly in the unit's territory (a disk in the cross-section whose
    centre is ``centre_mm`` from the needle); only those within the pickup are computed.
    ``scale`` > 1 packs more fibres (reinnervated), < 1 fewer (myopathic); ``pool``: the
    fibre sizes, branch delays and jitter of a diseased muscle."""
    pool = pool or UnitPool()
    mu, fp = PARAMS["motor_unit"], PARAMS["fibre"]
    radius = _u(rng, mu["territory_radius_mm"])
    density = _u(rng, mu["fibre_density_per_mm2"]) * scale
    n_total = rng.poisson(density * math.pi * radius**2)
    ang = rng.uniform(0, 2 * np.pi, n_total)
    rad = radius * np.sqrt(rng.uniform(0, 1, n_total))
    x, y = centre_mm + rad * np.cos(ang), rad * np.sin(ang)
    dist = np.hypot(x, y)
    ep_centre = _u(rng, (-15.0, 15.0)) if endplate_mm is None else endplate_mm
    far = np.zeros(0)
    near: list[tuple[np.ndarray, int]] = []
    for d in dist[dist < mu["pickup_mm"]]:
        ep = ep_centre + rng.uniform(-0.5, 0.5) * fp["endplate_band_mm"]
        f = fibre_near(rng, max(float(d), 0.02), ep, radius_um=pool.radius_um)
        delay = int(_u(rng, pool.branch_delay_ms or fp["branch_delay_ms"]) * 1e-3 * fs_sim)
        v = np.concatenate([np.zeros(delay), sfap(f, needle, fs_sim)])
        if d < 0.5:
            near.append((v, 0))
        else:
            far = _add(far, v)
    return MotorUnit(far, near, int(n_total), pool.jitter_us)


# ---- building a recording ------------------------------------------------------------
class Canvas:
    """The signal on the simulation grid; potentials are added at firing times."""

    def __init__(self, rng: np.random.Generator, fs: int, duration_s: float) -> None:
        self.rng = rng
        self.fs = fs
        self.fs_sim = fs * UPSAMPLE
        self.x = np.zeros(int(duration_s * self.fs_sim))
        self.firings: list[Firing] = []
        self.info: dict[str, Any] = {}
        """What a generator drew that the corpus manifest should record."""
        self.units: dict[int, MotorUnit] = {}
        """Voluntary units that fired, by generator number (ground truth for MUAP
        analysis: :func:`unit_potential`)."""

    def put(self, wave: np.ndarray, t_s: float, gain: float = 1.0) -> None:
        i = round(t_s * self.fs_sim)
        if i >= self.x.size or i + wave.size <= 0:
            return
        a, b = max(0, -i), min(wave.size, self.x.size - i)
        self.x[i + a : i + b] += gain * wave[a:b]

    def fire_unit(self, unit: MotorUnit, t_s: float, generator: int, gain: float = 1.0,
                  jitter: bool = True) -> None:
        self.firings.append(Firing(t_s, generator))
        self.put(unit.far, t_s, gain)
        jit_us = _u(self.rng, unit.jitter_us or PARAMS["fibre"]["jitter_us"]) if jitter else 0.0
        for v, delay in unit.near:
            dt = self.rng.normal(0.0, jit_us * 1e-6 / math.sqrt(2)) + delay / self.fs_sim
            self.put(v, t_s + dt, gain)

    def to_fs(self) -> np.ndarray:
        n = self.x.size // UPSAMPLE
        return self.x[: n * UPSAMPLE].reshape(n, UPSAMPLE).mean(axis=1)


def train(rng: np.random.Generator, rate_hz: float, cv: float, dur: float,
          t0: float | None = None) -> np.ndarray:
    """Firing times of a renewal process with Gaussian intervals."""
    t = rng.uniform(0, 1 / rate_hz) if t0 is None else t0
    out = []
    while t < dur:
        out.append(t)
        t += max(1e-3, rng.normal(1 / rate_hz, cv / rate_hz))
    return np.array(out)


def amplifier_filters(fs: int, highpass_hz: float, lowpass_hz: float):
    """The amplifier's filters (second-order sections): first-order high-pass, second-
    order low-pass, applied in that order."""
    from scipy import signal as sps

    return (sps.butter(1, highpass_hz, "highpass", fs=fs, output="sos"),
            sps.butter(2, lowpass_hz, "lowpass", fs=fs, output="sos"))


def unit_potential(unit: MotorUnit, fs: int, amp: dict, pad_ms: float = 30.0) -> np.ndarray:
    """The unit's potential as recorded (µV at ``fs``): every fibre at its mean arrival
    (no jitter), through the amplifier's filters of ``amp`` (a recording's info), without
    noise — the truth a MUAP analysis should measure."""
    from scipy import signal as sps

    v = unit.far
    for w, delay in unit.near:
        v = _add(v, np.concatenate([np.zeros(delay), w]))
    v = np.concatenate([v, np.zeros(int(pad_ms * 1e-3 * fs * UPSAMPLE))])
    n = v.size // UPSAMPLE
    y = v[: n * UPSAMPLE].reshape(n, UPSAMPLE).mean(axis=1)
    hp, lp = amplifier_filters(fs, amp["highpass_hz"], amp["lowpass_hz"])
    return sps.sosfilt(lp, sps.sosfilt(hp, y))


def amplifier(rng: np.random.Generator, x: np.ndarray, fs: int) -> tuple[np.ndarray, dict]:
    from scipy import signal as sps

    a = PARAMS["amplifier"]
    hp, lp = _u(rng, a["highpass_hz"]), min(_u(rng, a["lowpass_hz"]), 0.45 * fs)
    noise, mains = _u(rng, a["noise_uv_rms"]), _u(rng, a["mains_uv"])
    f_mains = float(rng.choice(a["mains_hz"]))
    t = np.arange(x.size) / fs
    y = x + rng.normal(0.0, noise, x.size)
    y += mains * (np.sin(2 * np.pi * f_mains * t + rng.uniform(0, 6.3))
                  + 0.3 * np.sin(2 * np.pi * 3 * f_mains * t + rng.uniform(0, 6.3)))
    sos, sos2 = amplifier_filters(fs, hp, lp)
    y = sps.sosfilt(sos2, sps.sosfilt(sos, y))
    return y, {"highpass_hz": hp, "lowpass_hz": lp, "noise_uv_rms": noise, "mains_uv": mains}


# ---- the classes ------------------------------------------------------------------------
def _single_fibres(c: Canvas, needle: Needle, spec: dict, *, blocked: bool) -> list[np.ndarray]:
    waves = []
    for _ in range(_i(c.rng, spec["fibres"])):
        side = c.rng.choice((-1.0, 1.0))
        ep = side * _u(c.rng, spec["needle_from_endplate_mm"]) if "needle_from_endplate_mm" \
            in spec else _u(c.rng, (-15.0, 15.0))
        if blocked:
            ep = -abs(ep)  # the wave travels towards the needle from the left and stops there
        f = fibre_near(c.rng, _u(c.rng, spec["distance_mm"]), ep, blocked_at_needle=blocked,
                       radius_um=spec.get("radius_um"))
        waves.append(sfap(f, needle, c.fs_sim))
    return waves


def _regular_fibres(c: Canvas, needle: Needle, dur: float, key: str, *, blocked: bool
                    ) -> None:
    """Denervated fibres, each firing regularly on its own (fibrillation; blocked at the
    needle, a positive sharp wave)."""
    spec = PARAMS[key]
    for g, w in enumerate(_single_fibres(c, needle, spec, blocked=blocked)):
        for t in train(c.rng, _u(c.rng, spec["rate_hz"]), _u(c.rng, spec["interval_cv"]), dur):
            c.firings.append(Firing(float(t), g))
            c.put(w, t)


def gen_fibrillation(c: Canvas, needle: Needle, dur: float) -> None:
    _regular_fibres(c, needle, dur, "fibrillation", blocked=False)


def gen_positive_sharp_wave(c: Canvas, needle: Needle, dur: float) -> None:
    _regular_fibres(c, needle, dur, "positive_sharp_wave", blocked=True)


def _unit_near(c: Canvas, needle: Needle, lo: float = 0.2, hi: float = 2.0,
               scale: float = 1.0) -> MotorUnit:
    return motor_unit(c.rng, needle, c.fs_sim, _u(c.rng, (lo, hi)), scale)


def gen_fasciculation(c: Canvas, needle: Needle, dur: float) -> None:
    spec = PARAMS["fasciculation"]
    for g in range(_i(c.rng, spec["units"])):
        unit = _unit_near(c, needle)
        times = np.sort(c.rng.uniform(0, dur, max(1, c.rng.poisson(_u(c.rng, spec["rate_hz"])
                                                                   * dur))))
        for t in times:
            c.fire_unit(unit, float(t), g)


def gen_complex_repetitive(c: Canvas, needle: Needle, dur: float) -> None:
    spec = PARAMS["complex_repetitive"]
    n = _i(c.rng, spec["fibres"])
    loop = _u(c.rng, spec["loop_ms"]) * 1e-3
    parts = []
    for _ in range(n):  # each fibre of the loop, at its fixed place in the cycle
        f = fibre_near(c.rng, _u(c.rng, spec["distance_mm"]), _u(c.rng, (-15.0, 15.0)))
        parts.append((sfap(f, needle, c.fs_sim), _u(c.rng, (0.0, loop))))
    rate = min(_u(c.rng, spec["rate_hz"]), 1 / (loop + 2e-3))
    for t in train(c.rng, rate, 0.0005, dur):  # time-locked: almost no variation
        c.firings.append(Firing(float(t), 0))
        for w, off in parts:
            c.put(w, t + off)


def gen_myotonic(c: Canvas, needle: Needle, dur: float) -> None:
    spec = PARAMS["myotonic"]
    blocked = c.rng.random() < spec["psw_share"]
    key = "positive_sharp_wave" if blocked else "fibrillation"
    waves = _single_fibres(c, needle, {**PARAMS[key], "fibres": spec["fibres"]},
                           blocked=blocked)
    for g, w in enumerate(waves):
        lo, hi = sorted((_u(c.rng, spec["rate_hz"]), _u(c.rng, spec["rate_hz"])))
        period = _u(c.rng, spec["wax_wane_s"])
        drop = _u(c.rng, spec["amplitude_drop"])
        t = c.rng.uniform(0, 0.05)
        while t < dur:
            phase = (t % period) / period  # waxing then waning, over and over
            level = math.sin(math.pi * phase)
            c.firings.append(Firing(t, g))
            c.put(w, t, 1.0 - drop * level)  # faster firing, smaller potential
            t += 1.0 / (lo + (hi - lo) * level + 1e-6)


def gen_myokymic(c: Canvas, needle: Needle, dur: float) -> None:
    spec = PARAMS["myokymic"]
    for g in range(_i(c.rng, spec["units"])):
        unit = _unit_near(c, needle)
        for t0 in train(c.rng, _u(c.rng, spec["burst_rate_hz"]), 0.2, dur):
            k, f = _i(c.rng, spec["spikes_per_burst"]), _u(c.rng, spec["intraburst_hz"])
            for j in range(k):
                c.fire_unit(unit, float(t0 + j / f), g)


def gen_neuromyotonic(c: Canvas, needle: Needle, dur: float) -> None:
    spec = PARAMS["neuromyotonic"]
    unit = _unit_near(c, needle)
    t = c.rng.uniform(0, 0.2)
    while t < dur:
        length, rate = _u(c.rng, spec["train_s"]), _u(c.rng, spec["rate_hz"])
        dec = _u(c.rng, spec["decrement"])
        n = max(2, int(length * rate))
        for j in range(n):  # fibres fail as the train goes on: the potential decrements
            c.fire_unit(unit, t + j / rate, 0, 1.0 - dec * j / n)
        t += length + c.rng.uniform(0.05, 0.4)


def gen_end_plate(c: Canvas, needle: Needle, dur: float) -> None:
    spec = PARAMS["end_plate"]
    # Miniature end-plate potentials: local, monophasic negative, not propagated.
    n = c.rng.poisson(_u(c.rng, spec["mepp_rate_hz"]) * dur)
    ms = _u(c.rng, spec["mepp_ms"])
    k = np.arange(int(ms * 1e-3 * c.fs_sim * 3)) / (ms * 1e-3 * c.fs_sim)
    shape = -(k * np.exp(1 - k * 3) * 3)  # fast rise, slower decay, peak −1
    for t, a in zip(c.rng.uniform(0, dur, n), c.rng.uniform(*spec["mepp_uv"], n), strict=True):
        c.put(shape * a, float(t))
    # End-plate spikes: fibres fired at their end-plate, which is where the needle is, so
    # the wave starts at the needle: initially negative.
    for g in range(_i(c.rng, spec["spike_fibres"])):
        f = fibre_near(c.rng, _u(c.rng, spec["distance_mm"]), c.rng.uniform(-0.3, 0.3))
        w = sfap(f, needle, c.fs_sim)
        for t in train(c.rng, _u(c.rng, spec["spike_rate_hz"]), 0.6, dur):
            c.firings.append(Firing(float(t), g))
            c.put(w, t)


def gen_insertional(c: Canvas, needle: Needle, dur: float) -> None:
    spec = PARAMS["insertional"]
    t0 = c.rng.uniform(0.05, 0.4)
    while t0 < dur:
        burst = _u(c.rng, spec["burst_ms"]) * 1e-3
        c.put(np.full(int(0.05 * c.fs_sim), _u(c.rng, spec["shift_uv"])
                      * c.rng.choice((-1, 1))) * np.exp(-np.arange(int(0.05 * c.fs_sim))
                                                       / (0.01 * c.fs_sim)), t0)
        for _ in range(_i(c.rng, spec["fibres_per_burst"])):
            f = fibre_near(c.rng, _u(c.rng, spec["distance_mm"]), _u(c.rng, (-15.0, 15.0)))
            w = sfap(f, needle, c.fs_sim)
            for t in t0 + np.sort(c.rng.uniform(0, burst, _i(c.rng, (1, 4)))):
                c.put(w, float(t))
        t0 += _u(c.rng, spec["step_s"])


def voluntary(c: Canvas, needle: Needle, dur: float, excitation: float | None = None,
              scale: float = 1.0, pool: UnitPool | None = None) -> None:
    """Fuglevand 1993: thresholds exponentially spread; each recruited unit fires from
    8 Hz rising with excitation to its peak; unit size follows threshold (size principle:
    later units have more fibres). ``pool``: a myopathic muscle needs more (weaker) units
    for the same force; a neurogenic one has lost most and drives the rest harder."""
    pool = pool or UnitPool()
    v = PARAMS["voluntary"]
    n = max(1, round(_i(c.rng, v["units_in_reach"]) * pool.units_kept))
    e = _u(c.rng, v["excitation"]) if excitation is None else excitation
    e *= pool.excitation_factor
    rr = v["recruitment_range"]
    for i in range(n):
        thr = math.exp(math.log(rr) * i / n)
        if e < thr:
            continue  # not recruited at this force
        peak = _u(c.rng, pool.peak_rate_hz or v["peak_rate_hz"])
        rate = min(peak, v["min_rate_hz"] + v["gain_hz_per_unit"] * (e - thr))
        size = scale * pool.fibre_scale * (0.5 + 1.5 * i / n)  # size principle
        unit = motor_unit(c.rng, needle, c.fs_sim, _u(c.rng, v["unit_distance_mm"]), size,
                          pool=pool)
        if not unit.near and unit.far.size == 0:
            continue
        c.units[i] = unit
        for t in train(c.rng, rate, _u(c.rng, v["isi_cv"]), dur):
            c.fire_unit(unit, float(t), i)


def gen_motor_unit(c: Canvas, needle: Needle, dur: float) -> None:
    pool = draw_pool(c.rng)
    c.info["pool"] = pool.state
    v = PARAMS["voluntary"]
    excitation = (_u(c.rng, v["threshold_excitation"]) if c.rng.random() < v["threshold_share"]
                  else None)
    voluntary(c, needle, dur, excitation, pool=pool)


def gen_silence(c: Canvas, needle: Needle, dur: float) -> None:
    pass  # the amplifier's noise and mains only


def gen_artifact(c: Canvas, needle: Needle, dur: float) -> None:
    spec = PARAMS["artifact"]
    fs = c.fs_sim
    for t in np.sort(c.rng.uniform(0, dur, max(1, c.rng.poisson(_u(c.rng, spec["pops_per_s"])
                                                                * dur)))):
        tau = _u(c.rng, spec["pop_ms"]) * 1e-3 * fs  # electrode pop: a step, then decay
        c.put(_u(c.rng, spec["pop_uv"]) * c.rng.choice((-1, 1))
              * np.exp(-np.arange(int(5 * tau)) / tau), float(t))
    tt = np.arange(c.x.size) / fs
    f = _u(c.rng, spec["motion_hz"])  # cable and needle motion
    c.x += _u(c.rng, spec["motion_uv"]) * np.sin(2 * np.pi * f * tt + c.rng.uniform(0, 6.3)) \
        * (0.5 + 0.5 * np.sin(2 * np.pi * f / 3 * tt))


GENERATORS = {name: globals()[f"gen_{name}"] for name in LABELS}


def simulate(label: str, *, fs: int = DEFAULT_SPEC.mel.sample_rate_hz, duration_s: float = 4.0,
             rng: np.random.Generator, needle: str | None = None) -> BioRecording:
    """One recording of ``label`` at ``fs`` Hz, in µV, labelled over its whole length."""
    if label not in GENERATORS:
        raise ValueError(f"unknown label {label!r}")
    c = Canvas(rng, fs, duration_s)
    nd = make_needle(rng, needle)
    GENERATORS[label](c, nd, duration_s)
    y, amp = amplifier(rng, c.to_fs(), fs)
    return BioRecording(label, fs, y, [(0.0, duration_s, label)], c.firings,
                        {"needle": nd.kind, **c.info, **amp}, c.units)


def simulate_contraction(*, fs: int = 10_000, duration_s: float = 8.0,
                         rng: np.random.Generator, pool: str = "healthy",
                         excitation: float = 2.0, needle: str = "concentric") -> BioRecording:
    """A steady voluntary contraction of a healthy, myopathic or neurogenic muscle, with
    its units (ground truth for MUAP analysis: who fired when, and what each looks like)."""
    c = Canvas(rng, fs, duration_s)
    nd = make_needle(rng, needle)
    c.info["pool"] = pool
    voluntary(c, nd, duration_s, excitation, pool=draw_pool(rng, pool))
    y, amp = amplifier(rng, c.to_fs(), fs)
    return BioRecording("motor_unit", fs, y, [(0.0, duration_s, "motor_unit")], c.firings,
                        {"needle": nd.kind, **c.info, **amp}, c.units)


# ---- a corpus on disk --------------------------------------------------------------------
BIOSIM_SEED_TAG = 7_331  # keeps biosim's streams apart from synth.py's for the same seed


def biosim_corpus(out, per_class: int, seed: int, *,
                  sample_rate_hz: int = DEFAULT_SPEC.mel.sample_rate_hz,
                  duration_s: float = 4.0, uv_per_lsb: float = DEFAULT_SPEC.mel.uv_per_lsb,
                  labels: tuple[str, ...] = LABELS, progress=None,
                  simulate=simulate, workers: int = 1) -> dict[str, Any]:
    """``wav/*.wav`` + ``labels.csv`` + ``manifest.json``, the corpus format every
    workstation command reads (``nemg evaluate --data``). Recording ``i`` of a class
    depends on (seed, class, i) alone. ``simulate``: what draws each recording (called as
    :func:`simulate` is, without ``needle``), e.g. another setting of this simulator; it
    runs in this process, in job order, and a crashed run starts again. With this module's
    own ``simulate``, ``workers`` processes (or the configured cluster) draw them and a
    re-run resumes (:func:`convert.corpus.write_corpus`)."""
    from pathlib import Path

    from convert.corpus import write_corpus
    from nemg_common.executor import LocalExecutor, executor

    head = {"kind": "nemg-biosim-corpus", "seed": seed, "per_class": per_class,
            "sample_rate_hz": sample_rate_hz, "duration_s": duration_s,
            "uv_per_lsb": uv_per_lsb, "labels": list(labels)}
    own = simulate is globals()["simulate"]
    jobs = [(lab, i, seed, sample_rate_hz, duration_s, uv_per_lsb, None if own else simulate)
            for lab in labels for i in range(per_class)]
    with executor(workers) if own else LocalExecutor(1) as ex:
        return write_corpus(Path(out), head, jobs, _biosim_one, ex=ex, progress=progress,
                            resume=own)


def _biosim_one(job, wav_dir):
    """Draw and write one recording of :func:`biosim_corpus` (in a worker)."""
    from convert.corpus import Synthesised, job_name, write_wav_atomic
    from edge.readers.recording import uv_to_int16

    lab, i, seed, sample_rate_hz, duration_s, uv_per_lsb, draw = job
    rng = np.random.default_rng([BIOSIM_SEED_TAG, seed, LABELS.index(lab), i])
    r = (draw or simulate)(lab, fs=sample_rate_hz, duration_s=duration_s, rng=rng)
    pcm = uv_to_int16(r.signal_uv, uv_per_lsb)
    name = job_name(job)
    rows = [(f"wav/{name}", round(a, 4), round(b, 4), s) for a, b, s in r.spans]
    entry = {"file": f"wav/{name}", "label": lab, "index": i, "firings": len(r.firings),
             **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.info.items()}}
    return Synthesised(name, write_wav_atomic(wav_dir, name, pcm, sample_rate_hz, uv_per_lsb),
                       rows, entry)
