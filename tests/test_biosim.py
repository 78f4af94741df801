"""The biophysical simulator: its physics, measured, and its independence from synth.py."""

from __future__ import annotations

import ast
import itertools

import numpy as np
import pytest
from conftest import ROOT

from convert import biosim
from convert.biosim import Fibre, make_needle, sfap, simulate
from edge.labels import LABELS

FS_SIM = 80_000  # 20 kHz × UPSAMPLE


def fibre(distance=0.1, endplate=15.0, cv=4.0, right=45.0, radius=27.0) -> Fibre:
    return Fibre(distance, endplate, endplate - 45.0, right, radius, cv)


def first_phase_sign(w: np.ndarray) -> float:
    return float(np.sign(w[np.flatnonzero(np.abs(w) > 0.1 * np.abs(w).max())[0]]))


@pytest.fixture(scope="module")
def needle():
    return make_needle(np.random.default_rng(0), "concentric")


def test_conduction_delay_grows_with_the_distance_to_the_end_plate(needle):
    for cv in (3.0, 5.0):
        peaks = [np.argmax(np.abs(sfap(fibre(endplate=ep, cv=cv), needle, FS_SIM))) / FS_SIM
                 for ep in (10.0, 20.0)]
        travel = 10e-3 / cv  # 10 mm further at cv m/s
        assert abs((peaks[1] - peaks[0]) - travel) < 0.15e-3, (cv, peaks)


def test_amplitude_falls_steeply_with_distance_as_the_rules_of_thumb_say(needle):
    amp = {d: np.ptp(sfap(fibre(distance=d), needle, FS_SIM)) for d in
           (0.05, 0.1, 0.2, 0.5, 1.0, 2.0)}
    values = list(amp.values())
    assert all(a > b for a, b in itertools.pairwise(values))
    assert amp[0.5] < 0.2 * amp[0.05]  # amplitude: the fibres within ~0.5 mm
    assert amp[2.0] < 0.03 * amp[0.05]
    assert 300 < amp[0.1] < 5000  # a normal fibre at 100 µm: SFEMG's mV range
    assert np.ptp(sfap(fibre(radius=13.5), needle, FS_SIM)) < 0.3 * amp[0.1]  # ∝ a²


def test_a_wave_that_comes_to_the_needle_starts_positive_one_born_there_negative(needle):
    approaching = sfap(fibre(distance=0.1, endplate=15.0), needle, FS_SIM)
    at_endplate = sfap(fibre(distance=0.1, endplate=0.0), needle, FS_SIM)
    assert first_phase_sign(approaching) > 0  # fibrillation: initially positive
    assert first_phase_sign(at_endplate) < 0  # end-plate spike: initially negative
    main = np.abs(approaching) > 0.1 * np.abs(approaching).max()
    idx = np.flatnonzero(main)
    near = idx[idx < np.argmax(np.abs(approaching)) + int(5e-3 * FS_SIM)]
    assert 1.0 <= (near[-1] - near[0]) / FS_SIM * 1e3 <= 5.0  # a fibre's spike: 1–5 ms


def test_a_wave_blocked_at_the_needle_is_a_positive_sharp_wave(needle):
    blocked = sfap(fibre(distance=0.05, endplate=-15.0, right=0.0), needle, FS_SIM)
    through = sfap(fibre(distance=0.05, endplate=-15.0), needle, FS_SIM)

    def neg_ms(w):
        return (w < 0.3 * w.min()).sum() / FS_SIM * 1e3

    assert np.argmax(blocked) < np.argmin(blocked)  # the positive phase comes first
    assert blocked.max() > 1.5 * -blocked.min()  # dominated by it (through: about equal)
    assert through.max() < 1.3 * -through.min()
    assert neg_ms(blocked) > 1.5 * neg_ms(through)  # and a slower negative phase follows


def test_the_fibre_currents_sum_to_zero(needle):
    # sealed ends: the potential of any fibre integrates to zero over its life
    for f in (fibre(), fibre(endplate=0.0), fibre(endplate=-15.0, right=0.0)):
        w = sfap(f, needle, FS_SIM)
        assert abs(w.sum()) < 1e-3 * np.abs(w).sum()


def test_voluntary_units_fire_faster_and_more_at_higher_force():
    def firings(e):
        c = biosim.Canvas(np.random.default_rng(3), 20_000, 2.0)
        biosim.voluntary(c, make_needle(np.random.default_rng(3), "concentric"), 2.0, e)
        units = {f.generator for f in c.firings}
        return len(units), len(c.firings)

    low, high = firings(2.0), firings(8.0)
    assert high[0] > low[0] and high[1] > 2 * low[1]  # recruitment and rate coding


def test_normal_motor_unit_potentials_are_in_the_clinical_range():
    amps = []
    for seed in range(12):
        rng = np.random.default_rng(seed)
        u = biosim.motor_unit(rng, make_needle(rng, "concentric"), FS_SIM,
                              rng.uniform(0.2, 2.0))
        w = u.far
        for v, _ in u.near:
            w = biosim._add(w, v)
        amps.append(np.ptp(w))
    assert 200 < np.median(amps) < 6000  # µV: normal limb MUAPs 0.2–3 mV, larger near


def _unit_template(rng, pool):
    u = biosim.motor_unit(rng, make_needle(rng, "concentric"), FS_SIM, rng.uniform(0.2, 1.0),
                          pool.fibre_scale, pool=pool)
    w = u.far
    for v, _ in u.near:
        w = biosim._add(w, v)
    return w


def test_diseased_pools_change_the_units_as_the_literature_says():
    # myopathic: smaller units; neurogenic: larger ones (reinnervation), on the same draws
    amps = {}
    for state in ("healthy", "myopathic", "neurogenic"):
        a = []
        for seed in range(10):
            rng = np.random.default_rng([seed, 1])
            pool = biosim.draw_pool(np.random.default_rng(seed), state)
            a.append(np.ptp(_unit_template(rng, pool)))
        amps[state] = np.median(a)
    assert amps["myopathic"] < 0.7 * amps["healthy"] < 0.7 * amps["neurogenic"]


def test_a_neurogenic_muscle_fires_few_units_fast():
    def pattern(state):
        units, rates = [], []
        for seed in range(4):
            c = biosim.Canvas(np.random.default_rng(seed), 10_000, 1.0)
            pool = biosim.draw_pool(np.random.default_rng(seed), state)
            biosim.voluntary(c, make_needle(np.random.default_rng(seed), "concentric"), 1.0,
                             4.0, pool=pool)
            g = [f.generator for f in c.firings]
            units.append(len(set(g)))
            rates.append(len(g) / max(1, len(set(g))) / 1.0)
        return np.median(units), np.median(rates)

    healthy, neuro = pattern("healthy"), pattern("neurogenic")
    assert neuro[0] < healthy[0] and neuro[1] > healthy[1] + 3  # reduced recruitment


def test_every_motor_unit_recording_names_its_pool():
    drawn = {biosim.draw_pool(np.random.default_rng(s)).state for s in range(12)}
    assert drawn == {"healthy", "myopathic", "neurogenic"}
    rec = simulate("motor_unit", fs=10_000, duration_s=0.3, rng=np.random.default_rng(1))
    assert rec.info["pool"] in drawn


@pytest.mark.parametrize("label", LABELS)
def test_every_class_is_simulated_deterministically_at_any_rate(label):
    a = simulate(label, fs=10_000, duration_s=2.0, rng=np.random.default_rng(5))
    b = simulate(label, fs=10_000, duration_s=2.0, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(a.signal_uv, b.signal_uv)
    assert a.signal_uv.size == 20_000 and np.isfinite(a.signal_uv).all()
    assert a.spans == [(0.0, 2.0, label)]
    if label not in ("silence", "artifact", "insertional"):
        assert a.firings  # ground truth of who fired when


def test_biosim_shares_no_code_with_the_template_synthesiser():
    tree = ast.parse((ROOT / "convert" / "biosim.py").read_text())
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
        {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any(m and "synth" in m for m in imported), imported


def test_the_cross_simulator_benchmark_scores_both_conditions():
    import json

    from conftest import run_nemg

    out = json.loads(run_nemg("bench", "crosssim", "--quick", "--json", check=True,
                              timeout=300).stdout)
    for key in ("macro_f1_int8_biosim", "macro_f1_int8_biosim_unscaled_assumed",
                "macro_f1_int8_biosim_unscaled_estimated", "confidently_wrong_share_biosim",
                "ece_int8_biosim"):
        assert 0 <= out[key] <= 1
    assert out["scaled"]["windows"] == out["unscaled_estimated"]["windows"] == 2 * 12 * 5
    # the CNN alone, the recogniser alone and the box, on every setting, from one run each
    assert set(out["three_way"]) == {"biosim", "heldout", "synth", "background_synth",
                                     "background_biosim"}
    for setting, ways in out["three_way"].items():
        assert set(ways) == {"cnn", "recogniser", "box"}
        assert len({w["windows"] for w in ways.values()}) == 1, setting
        for w in ways.values():
            assert 0 <= w["recordings_flagged_pathological"] <= 1
            assert w["macro_f1"] is None or 0 <= w["macro_f1"] <= 1
    assert 0 <= out["box_macro_f1_heldout"] <= 1
    assert 0 <= out["box_recordings_flagged_pathological_background_biosim"] <= 1
