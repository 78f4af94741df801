"""Dense contractions with known firings (convert/dense.py) and their scoring
(benches/dense_muap.py): issue 33, point 2."""

from __future__ import annotations

import copy
import hashlib
import json

import numpy as np
import pytest

from benches import dense_muap
from benches.dense_muap import dense_section, most_matches, score, truth_trains
from benches.muap_bench import firing_agreement
from convert import biosim, synth
from convert.dense import PARAMS, POOLS, SIMULATORS, dense_contraction


def _rec(sim: str, n: int, pool: str, seed: int = 1, duration_s: float = 2.0):
    return dense_contraction(sim, n, pool, np.random.default_rng([seed, n]),
                             duration_s=duration_s)


@pytest.mark.parametrize("sim", SIMULATORS)
def test_the_same_generator_state_gives_the_same_recording(sim):
    a, b = _rec(sim, 6, "neurogenic"), _rec(sim, 6, "neurogenic")
    assert a.signal_uv.dtype == np.float64
    assert np.array_equal(a.signal_uv, b.signal_uv)
    assert a.info == b.info
    for u in a.firings_s:
        assert np.array_equal(a.firings_s[u], b.firings_s[u])
        assert np.array_equal(a.potentials_uv[u], b.potentials_uv[u])
    assert not np.array_equal(a.signal_uv, _rec(sim, 6, "neurogenic", seed=2).signal_uv)


@pytest.mark.parametrize("sim", SIMULATORS)
def test_exactly_n_units_fire_at_their_recruitment_rates(sim):
    dur = 3.0
    for n, pool in ((5, "healthy"), (12, "myopathic")):
        r = _rec(sim, n, pool, duration_s=dur)
        assert sorted(r.firings_s) == sorted(r.potentials_uv) == list(range(n))
        rates = r.info["rates_hz"]
        assert len(rates) == n and r.info["n_units"] == n
        assert all(8.0 <= v <= 30.0 for v in rates)
        assert rates[0] >= rates[-1]  # the first recruited fire fastest
        for u, t in r.firings_s.items():
            assert np.all(np.diff(t) > 0) and t[0] >= 0.0 and t[-1] < dur
            assert abs(t.size - rates[u] * dur) <= 0.25 * rates[u] * dur + 2
            isi = np.diff(t)
            assert np.std(isi) / np.mean(isi) < 0.4


@pytest.mark.parametrize("sim", SIMULATORS)
def test_the_truth_potentials_at_the_firings_make_the_recording(sim):
    r = _rec(sim, 5, "healthy", duration_s=2.0)
    x = np.zeros(r.signal_uv.size)
    for u, t in r.firings_s.items():
        v = r.potentials_uv[u]
        for i in (t * r.fs).astype(int):
            x[i: i + v.size] += v[: x.size - i]
    assert np.corrcoef(x, r.signal_uv)[0, 1] > 0.9


def _duration_ms(v: np.ndarray, fs: int, level_uv: float = 20.0) -> float:
    big = np.flatnonzero(np.abs(v) >= level_uv)
    return (big[-1] - big[0]) / fs * 1e3 if big.size else 0.0


@pytest.mark.parametrize("sim", SIMULATORS)
def test_neurogenic_units_are_larger_and_longer_myopathic_smaller_and_shorter(sim):
    # medians: a unit's distance from the needle spreads its size over a decade
    # (this holds on 20 of 20 draws of 6 recordings, the draw here is the first)
    ptp, dur = {}, {}
    for pool in POOLS:
        pots = [v for k in range(6) for v in
                _rec(sim, 10, pool, seed=10 + k, duration_s=0.3).potentials_uv.values()]
        ptp[pool] = np.median([np.ptp(v) for v in pots])
        dur[pool] = np.median([_duration_ms(v, 10_000) for v in pots])
    assert ptp["neurogenic"] > ptp["healthy"] > ptp["myopathic"]
    assert dur["neurogenic"] > dur["healthy"] > dur["myopathic"]


def test_bad_arguments_are_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="simulator"):
        dense_contraction("other", 5, "healthy", rng)
    with pytest.raises(ValueError, match="pool"):
        dense_contraction("synth", 5, "ill", rng)
    with pytest.raises(ValueError, match="seeds"):
        dense_section(lambda x, fs: [], quick=True, seeds="train")


def _digest(x: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(x).tobytes()).hexdigest()


def test_the_simulators_own_outputs_do_not_change():
    params = copy.deepcopy((biosim.PARAMS, synth.PARAMS))

    def outputs():
        return (_digest(biosim.simulate_contraction(
            rng=np.random.default_rng(3), duration_s=0.5, pool="neurogenic").signal_uv),
            _digest(synth.synthesize("motor_unit", rng=np.random.default_rng(3),
                                     duration_s=0.5).signal_uv))

    before = outputs()
    for sim in SIMULATORS:
        _rec(sim, 6, "neurogenic", duration_s=0.5)
    assert outputs() == before
    assert params == (biosim.PARAMS, synth.PARAMS)
    assert PARAMS["recruitment"]["isi_cv"] == biosim.PARAMS["voluntary"]["isi_cv"]


# ---- scoring ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def rec():
    return _rec("biosim", 10, "healthy", seed=5, duration_s=4.0)


def test_a_perfect_decomposition_finds_every_countable_unit(rec):
    # what a decomposition marks: each discharge at its potential's peak
    s = score(list(truth_trains(rec).values()), rec)
    assert s["countable_units"] >= 2
    assert s["found_share"] == 1.0 and s["median_f1"] == 1.0
    assert s["merged_units"] == 0 and s["split_units"] == 0
    assert s["found_units"] == s["truth_units"] == 10
    for u in s["units"]:
        assert u["countable"] == (u["firings"] >= 20 and u["ptp_rms"] >= 2.5)


def test_nothing_found_scores_zero(rec):
    s = score([], rec)
    assert s["found_share"] == 0.0 and s["median_f1"] == 0.0 and s["merged_share"] == 0.0


def test_one_unit_holding_two_trains_is_a_merge(rec):
    t = list(truth_trains(rec).values())
    s = score([np.sort(np.concatenate(t[:2])), *t[2:]], rec)
    assert s["merged_units"] == 1 and s["merged_claims"] == {0: [0, 1]}
    assert s["merged_share"] == pytest.approx(1 / 9)
    assert s["split_units"] == 0


def test_a_train_cut_in_two_is_a_split(rec):
    trains = truth_trains(rec)
    u = next(x["unit"] for x in score([], rec)["units"] if x["countable"])
    t = trains[u]
    others = [trains[k] for k in trains if k != u]
    s = score([t[::2], t[1::2], *others], rec)
    assert s["split_units"] == 1 and s["merged_units"] == 0
    assert s["split_share"] == pytest.approx(1 / s["countable_units"])
    assert next(x for x in s["units"] if x["unit"] == u)["fragments"] == 2
    # a few stray firings are no fragment
    assert score([t, t[:3], *others], rec)["split_units"] == 0


def test_the_cheap_bound_never_undercounts_the_matches():
    rng = np.random.default_rng(0)
    for _ in range(30):
        t = np.sort(rng.uniform(0, 5, rng.integers(5, 80)))
        f = np.sort(np.concatenate([t[rng.random(t.size) < 0.6] + rng.uniform(-6e-3, 6e-3),
                                    rng.uniform(0, 5, rng.integers(0, 40))]))
        agr = firing_agreement(f, t, 8e-3)
        assert round(agr["ppv"] * f.size) <= most_matches(f, t)


def test_the_quick_section_reports_every_cell(monkeypatch, capsys):
    monkeypatch.setattr(dense_muap, "current_decomposition", lambda x, fs: [])
    monkeypatch.setattr("benches.harness.pin_to_one_cpu", lambda: None)
    assert dense_muap.main(["--quick", "--seeds", "validation"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["seeds"] == "validation" and len(out["recordings"]) == 4
    for sim in SIMULATORS:
        assert set(out[sim]) >= {"5", "10", "summary_10_20", "pools_10_20"}
        cell = out[sim]["10"]
        assert cell["recordings"] == 1 and cell["found_share"] in (0.0, None)
        assert cell["found_units_per_recording"] == 0
    assert set(out["countable_share_by_density"]) == {"5", "10"}
    assert dense_muap.SEEDS["validation"] != dense_muap.SEEDS["test"]
