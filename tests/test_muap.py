"""Quantitative MUAP analysis (edge/muap/, nemg muap): decomposition and every measure on
simulated units with known truth (convert.biosim), the JSON schema, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, run_nemg

from benches.muap_bench import firing_agreement, match_units, read_eaf
from convert.biosim import simulate_contraction, unit_potential
from edge.muap.analysis import analyse
from edge.muap.decomposition import decompose
from edge.muap.interpretation import interpret, summarize_site
from edge.muap.measures import measure
from edge.readers.wav import write_wav

FS = 10_000


@pytest.fixture(scope="module")
def contraction():
    rec = simulate_contraction(fs=FS, duration_s=5.0, rng=np.random.default_rng([4242, 0, 7]),
                               pool="healthy", excitation=2.5)
    truth = {g: np.array(sorted(f.t_s for f in rec.firings if f.generator == g))
             for g in rec.units}
    potentials = {g: np.concatenate([np.zeros(FS // 50), unit_potential(u, FS, rec.info)])
                  for g, u in rec.units.items()}
    return rec, truth, potentials, decompose(rec.signal_uv, FS)


def test_the_large_units_are_found_with_their_firings(contraction):
    _, truth, potentials, units = contraction
    big = {g for g, v in potentials.items() if np.ptp(v) >= 300 and truth[g].size >= 8}
    assert len(big) >= 3
    matched = match_units([u.firings_s for u in units], {g: truth[g] for g in big}, 8e-3)
    assert len(matched) >= len(big) - 1
    assert np.median([agr["f1"] for _, agr in matched.values()]) >= 0.8


def test_the_measures_of_found_units_match_the_truth(contraction):
    _, truth, potentials, units = contraction
    matched = match_units([u.firings_s for u in units], truth, 8e-3)
    well = {g: i for g, (i, agr) in matched.items() if agr["f1"] >= 0.8}
    assert len(well) >= 3  # the units measured: a test that checks nothing cannot pass
    for g, i in well.items():
        got = measure(units[i].template_fine_uv, units[i].analysis_rate_hz,
                      noise_uv=units[i].template_noise_uv)
        want = measure(potentials[g], FS)
        assert abs(got["amplitude_uv"] / want["amplitude_uv"] - 1) < 0.1
        assert abs(got["duration_ms"] - want["duration_ms"]) < 2.5


def test_decomposition_is_deterministic(contraction):
    rec, *_, units = contraction
    again = decompose(rec.signal_uv, FS)
    assert [u.firings_s.tolist() for u in again] == [u.firings_s.tolist() for u in units]


def _triphasic(fs=40_000, amp=800.0):
    """A clean triphasic MUAP: +0.2, −1, +0.3 of ``amp`` over 6 ms, zero outside."""
    t = np.arange(int(0.04 * fs)) / fs * 1000  # ms
    v = np.zeros_like(t)
    for centre, width, a in ((18.5, 0.6, 0.2 * amp), (20.0, 0.5, -amp), (21.6, 0.8, 0.3 * amp)):
        v += a * np.exp(-0.5 * ((t - centre) / width) ** 2)
    return v


def test_measures_of_a_known_template():
    v = _triphasic()
    m = measure(v, 40_000)
    assert m["amplitude_uv"] == pytest.approx(np.ptp(v), rel=1e-3)
    assert m["phases"] == 3 and m["turns"] == 3  # three peaks, each a change of direction
    assert 4.0 < m["duration_ms"] < 8.0  # 17–24 ms Gaussians above 10 µV
    assert m["area_uv_ms"] > 0 and m["thickness_ms"] == pytest.approx(
        m["area_uv_ms"] / m["amplitude_uv"], rel=1e-3)
    assert measure(np.zeros(400), 40_000)["amplitude_uv"] == 0.0  # nothing there


def test_duration_is_the_units_not_the_amplifiers_high_pass(contraction):
    """The same unit through a 2 Hz and a 20 Hz high-pass (both clinical settings): the
    20 Hz filter leaves a slow tail after the MUAP's net area; the slope criterion keeps
    it out of the duration. Without it (slope 0) the tail adds over a millisecond."""
    from dataclasses import replace

    from edge.muap.measures import MeasureConfig

    rec = contraction[0]
    amplitude_only = replace(MeasureConfig(), slope_uv_per_ms=0.0, slope_share=0.0)
    gaps = {True: [], False: []}
    for u in rec.units.values():
        v2, v20 = (np.concatenate([np.zeros(FS // 50),
                                   unit_potential(u, FS, {**rec.info, "highpass_hz": hp})])
                   for hp in (2.0, 20.0))
        if np.ptp(v2) < 300:
            continue
        for slope, cfg in ((True, None), (False, amplitude_only)):
            gaps[slope].append(measure(v20, FS, cfg)["duration_ms"]
                               - measure(v2, FS, cfg)["duration_ms"])
    assert len(gaps[True]) >= 3
    assert np.median(np.abs(gaps[True])) <= 0.7
    assert np.median(np.abs(gaps[True])) < np.median(np.abs(gaps[False]))


def test_a_slow_after_wave_is_not_the_muaps_duration():
    """A triphasic MUAP followed by a slow after-wave of its terminal phase's sign
    (convert.dense's model: 5 % of its peak-to-peak, τ = 2 or 3 ms) and a median
    template's noise: the duration stays within 1 ms of the clean MUAP's (median over
    noise draws; one draw in ten still runs on, and a τ of 1 ms, as steep as a MUAP's own
    terminal phase, is read as part of it). Before it was ≈ 15 ms."""
    fs = 40_000
    clean = _triphasic(fs)
    want = measure(clean, fs)["duration_ms"]
    end = int(np.flatnonzero(np.abs(clean) >= 0.1 * np.abs(clean).max())[-1])
    for tau_ms in (2.0, 3.0):
        k = np.arange(int(5 * tau_ms * fs / 1000)) / (tau_ms * fs / 1000)
        wave = clean.copy()
        wave[end: end + k.size] += 0.05 * np.ptp(clean) * k * np.exp(1 - k)
        got = [measure(wave + np.convolve(np.random.default_rng(s).normal(0, 4.0, clean.size),
                                          np.ones(20) / 20 ** 0.5, "same"), fs)["duration_ms"]
               for s in range(9)]
        assert abs(np.median(got) - want) <= 1.0, (tau_ms, got)


def test_the_duration_uncertainty_is_split_half():
    from edge.muap.measures import duration_sd_ms

    fs = 40_000
    wave = _triphasic(fs)
    rng = np.random.default_rng(30)
    x = rng.normal(0, 20.0, 4 * fs)
    firings = np.arange(0.1, 3.8, 0.1)
    for t in firings:
        i = round(t * fs)
        x[i - 800: i + 800] += wave  # its main peak at the firing
    sd = duration_sd_ms(x, fs, firings, (-20.0, 20.0))
    assert sd is not None and sd <= 0.5
    assert duration_sd_ms(x, fs, firings[:10], (-20.0, 20.0)) is None  # too few


def _site(amp, dur, poly=0.0, units=6, rate=10.0):
    n_poly = round(poly * units)
    us = [{"amplitude_uv": amp, "duration_ms": dur, "phases": 6 if k < n_poly else 3,
           "firing_rate_hz": rate} for k in range(units)]
    return summarize_site(us)


@pytest.mark.parametrize("site,finding", [
    (_site(650, 9.5), "normal"),
    (_site(650, 14.0), "indeterminate"),  # long alone: one measure, not a finding
    (_site(1500, 10.0), "indeterminate"),  # large alone
    (_site(1500, 14.0), "neurogenic"),  # long and large: two measures agree
    (_site(650, 14.0, units=3, rate=40.0), "neurogenic"),  # long, few units firing fast
    (_site(300, 6.0, poly=0.5), "myopathic"),
    (_site(1500, 6.0), "indeterminate"),  # large and short: conflicting
    (_site(650, 9.5, units=2), "indeterminate"),  # too few units
])
def test_the_interpretation_follows_the_evidence(site, finding):
    out = interpret(site, "tibialis anterior", sample_rate_hz=20_000)
    assert out["finding"] == finding and out["evidence"]
    assert out["reference"] == "tibialis_anterior"


def test_one_measure_alone_is_named_but_is_no_finding():
    out = interpret(_site(650, 14.0), "tibialis anterior", sample_rate_hz=20_000)
    assert out["finding"] == "indeterminate"
    assert any("one measure only" in e for e in out["evidence"])
    assert any("mean duration 14 ms above" in e for e in out["evidence"])
    assert any("provisional" in e for e in out["evidence"])  # 6 units, not 20


def test_polyphasia_backs_the_side_the_units_size_shows():
    normal_size = interpret(_site(650, 9.5, poly=0.6), "tibialis anterior", 20_000)
    assert normal_size["finding"] == "indeterminate"  # abnormal, but not specific
    assert any("neither neurogenic nor myopathic" in e for e in normal_size["evidence"])
    long_ = interpret(_site(650, 14.0, poly=0.6), "tibialis anterior", 20_000)
    assert long_["finding"] == "neurogenic"  # long, and polyphasic: two measures


def test_outliers_count_where_the_muscle_has_single_mup_limits():
    """Biceps (single-MUP limits 4.2–16.4 ms, 178–1414 µV): three long units among normal
    ones are a sign of the *duration* — the same measure as a long mean, so the two alone
    stay one measure; three large units too make a second, the amplitude, and two agree."""
    durations = (9, 10, 11, 17, 18, 19, 13, 13)
    units = [{"amplitude_uv": 450, "duration_ms": d, "phases": 3, "firing_rate_hz": 10.0}
             for d in durations]
    out = interpret(summarize_site(units), "biceps brachii", sample_rate_hz=20_000)
    assert out["reference"] == "biceps" and out["finding"] == "indeterminate"
    assert any("3 units' duration above the single-MUP limit 16.4 ms" in e
               for e in out["evidence"])
    assert any("one measure only" in e for e in out["evidence"])
    large = [{**u, "amplitude_uv": 1600} if k < 3 else u for k, u in enumerate(units)]
    out = interpret(summarize_site(large), "biceps brachii", sample_rate_hz=20_000)
    assert out["finding"] == "neurogenic"
    assert any("3 units' amplitude above the single-MUP limit 1414 µV" in e
               for e in out["evidence"])


def test_a_narrow_band_never_calls_a_small_amplitude_myopathic():
    out = interpret(_site(300, 9.5), "tibialis anterior", sample_rate_hz=4000)
    assert out["finding"] == "normal" and any("under-read" in e for e in out["evidence"])
    unknown = interpret(_site(650, 9.5), "stapedius", sample_rate_hz=20_000)
    assert unknown["reference"] == "any" and "no sourced reference" in unknown["evidence"][0]


def test_nemg_muap_json_and_picture(contraction, tmp_path):
    rec, *_ = contraction
    wav = tmp_path / "site.wav"
    write_wav(wav, np.round(rec.signal_uv / 0.5).astype(np.int16), FS, 0.5)
    out = tmp_path / "report.png"
    proc = run_nemg("muap", str(wav), "--muscle", "biceps", "--json", "-o", str(out),
                    check=True)
    res = json.loads(proc.stdout)
    assert {"file", "sample_rate_hz", "duration_s", "units", "summary",
            "interpretation"} <= set(res)
    assert res["interpretation"]["finding"] in ("normal", "neurogenic", "myopathic",
                                                "indeterminate")
    u = res["units"][0]
    for key in ("id", "firings_s", "amplitude_uv", "duration_ms", "phases", "turns",
                "area_uv_ms", "firing_rate_hz", "template_uv", "template_rate_hz"):
        assert key in u
    assert u["template_rate_hz"] == FS and len(u["template_uv"]) == 400  # 40 ms
    assert out.is_file() and out.read_bytes()[:4] == b"\x89PNG"


def test_bad_input_gets_a_clear_answer_not_a_guess(tmp_path):
    short = tmp_path / "short.wav"
    write_wav(short, np.zeros(FS, np.int16), FS, 0.5)  # 1 s
    quiet = tmp_path / "quiet.wav"
    rng = np.random.default_rng(0)
    write_wav(quiet, np.round(rng.normal(0, 8, 5 * FS)).astype(np.int16), FS, 0.5)
    clipped = tmp_path / "clipped.wav"
    write_wav(clipped, np.where(np.arange(5 * FS) % 50 < 5, 32767, 0).astype(np.int16), FS, 0.5)
    proc = run_nemg("muap", str(short), str(quiet), str(clipped), "--json")
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("nemg: error:")]
    assert len(errors) == 2 and "short.wav" in errors[0] and "too short" in errors[0]
    assert "clipped.wav" in errors[1] and "clipped" in errors[1]
    res = json.loads(proc.stdout)  # the quiet one is still analysed, and says what it found
    assert res["file"].endswith("quiet.wav") and res["interpretation"]["finding"] == \
        "indeterminate"
    assert "Traceback" not in proc.stderr
    assert_one_line_error(run_nemg("muap", str(tmp_path / "none.wav")), "none.wav")


def test_the_committed_emgdb_excerpt_is_analysed():
    res = analyse(*_excerpt(), muscle="tibialis anterior")
    s, units = res["summary"], res["units"]
    assert s["units_found"] == len(units) >= 1 and res["interpretation"]["evidence"]
    # every unit is measured, or shown with the reason it is not
    assert s["units"] == sum(u["measured"] for u in units)
    assert all(u["measured"] == ("duration_ms" in u) for u in units)
    assert all(u["measured"] or u["validity"]["reason"] for u in units)


def _excerpt():
    from edge.readers import load_two_columns

    rec = load_two_columns(ROOT / "tests" / "data" / "emgdb_healthy_3s.txt", "mV")
    return rec.samples_uv, rec.sample_rate_hz


def test_agreement_counts_firings_at_one_offset(tmp_path):
    truth = np.arange(0.1, 5, 0.1)
    assert firing_agreement(truth + 0.002, truth, 3e-3)["f1"] == 1.0  # a fixed lag
    half = firing_agreement(truth[::2] + 0.002, truth, 3e-3)
    assert half["sensitivity"] == pytest.approx(0.5, abs=0.02) and half["ppv"] == 1.0
    eaf = tmp_path / "x.eaf"
    eaf.write_text("<emglab_spike_events>\n0.1 1 1\n0.2 2 1\n0.3 1 1\n</emglab_spike_events>")
    assert {k: v.tolist() for k, v in read_eaf(eaf).items()} == {1: [0.1, 0.3], 2: [0.2]}


def test_the_live_monitor_analyses_steady_voluntary_stretches_by_sample_index():
    from edge.muap_live import MuapMonitor

    fs = 20_000
    rec = simulate_contraction(fs=fs, duration_s=10.0, rng=np.random.default_rng([4242, 1, 7]),
                               pool="healthy", excitation=2.5)
    pcm = np.clip(np.round(rec.signal_uv / 0.5), -32768, 32767).astype(np.int16)

    def session(labels, blocks=10_000, jump_at=None):
        mon = MuapMonitor(fs, 0.5, window_s=4.0)
        got, index = [], 0
        for k in range(0, pcm.size, blocks):
            if jump_at is not None and k == jump_at:
                index += 1000  # a gap: the stream resumes later
            mon.push(pcm[k: k + blocks], index)
            index += min(blocks, pcm.size - k)
            end = index
            r = mon.decided(labels(k), end - 2 * fs, end)
            if r is not None:
                got.append(r)
        return got

    steady = session(lambda k: "motor_unit")
    assert [(r.start_sample, r.end_sample) for r in steady] == [(0, 80_000), (80_000, 160_000)]
    assert steady[0].summary["units"] >= 2 and steady[0].finding in (
        "normal", "neurogenic", "myopathic", "indeterminate")
    # the same signal in other block sizes: the same analyses (keyed to samples, not time)
    again = session(lambda k: "motor_unit", blocks=4_000)
    assert [r.summary for r in again] == [r.summary for r in steady]
    # another label in between, or a gap, starts the wait again
    broken = session(lambda k: "fibrillation" if 60_000 <= k < 70_000 else "motor_unit")
    assert [(r.start_sample, r.end_sample) for r in broken] == [(70_000, 150_000)]
    assert len(session(lambda k: "motor_unit", jump_at=60_000)) == 1
    ev = MuapMonitor(fs, 0.5).event(steady[0])
    assert ev.kind == "muap" and ev.label == steady[0].finding and "summary" in ev.detail


def test_a_live_session_logs_a_muap_summary_of_a_steady_contraction(tmp_path):
    """The whole path: a virtual front end plays a simulated contraction over a pty, the
    classifier follows motor_unit, the monitor analyses it, the log records the summary."""
    import io

    from conftest import contraction_wav

    from edge.eventlog import open_for_session
    from edge.live import LiveSession
    from edge.muap_live import MuapMonitor
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified
    from edge.screen import PlainView
    from rigs.sources import open_source
    from wire.boards import get_frontend
    from wire.link import FrontEndClient, SerialLink
    from wire.virtual import VirtualFrontEnd

    fe1 = get_frontend("nemg-fe1")
    wav = contraction_wav(tmp_path / "contraction.wav", 16.0)
    log = open_for_session(tmp_path / "events.db")
    out = io.StringIO()
    pipe = Pipeline(load_verified())
    with VirtualFrontEnd(fe1, open_source(str(wav), fe1, loop=False), fast=True,
                         link_path=tmp_path / "ttyM") as vfe:
        link = SerialLink(str(tmp_path / "ttyM"))
        link.open()
        session = LiveSession(pipe, FrontEndClient(link), fe1, log=log, view=PlainView(out),
                              muap=MuapMonitor(pipe.fs, pipe.mel.uv_per_lsb, window_s=4.0,
                                               muscle="biceps"))
        summary = session.run(until=vfe.finished.is_set)
    voluntary = [w for w in session.state.windows if w.smoothed_label == "motor_unit"]
    assert len(voluntary) >= 0.8 * len(session.state.windows)  # the classifier's part
    assert len(summary["muap"]) >= 2
    assert all(m["units"] >= 1 for m in summary["muap"]), summary["muap"]
    logged = [e for e in log.events(log.session_id) if e["kind"] == "muap"]
    assert len(logged) == len(summary["muap"])
    assert json.loads(logged[0]["detail"])["summary"]["units"] == summary["muap"][0]["units"]
    assert "MUAP" in out.getvalue()


# ---- validity: which units are measured -----------------------------------------------------
def _train(rate_hz: float, cv: float, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    isi = np.clip(rng.normal(1 / rate_hz, cv / rate_hz, int(seconds * rate_hz * 1.2)),
                  0.02, None)
    t = np.cumsum(isi)
    return t[t < seconds]


def test_a_steady_unit_standing_out_is_valid_and_two_interleaved_are_merged():
    from edge.muap.validity import MERGED, UNCERTAIN, VALID, train_validity

    one = _train(10.0, 0.15, 10.0, 1)
    assert train_validity(one, 1000.0, 100.0)["verdict"] == VALID
    two = np.sort(np.concatenate([one, _train(12.0, 0.15, 10.0, 2)]))
    merged = train_validity(two, 1000.0, 100.0)
    assert merged["verdict"] == MERGED and merged["short_interval_share"] > 0.2
    small = train_validity(one, 200.0, 100.0)  # 2× the signal's RMS: hidden in the others
    assert small["verdict"] == UNCERTAIN and small["ptp_to_rms"] == 2.0
    ragged = train_validity(_train(10.0, 0.6, 10.0, 3), 1000.0, 100.0)
    assert ragged["verdict"] in (UNCERTAIN, MERGED)


def test_flagged_units_are_shown_not_measured_and_left_out_of_the_site():
    from edge.muap.validity import MERGED, VALID

    good = {"id": 1, "amplitude_uv": 650, "duration_ms": 9.5, "phases": 3,
            "firing_rate_hz": 10.0, "measured": True,
            "validity": {"verdict": VALID, "ptp_to_rms": 4.0}}
    bad = {"id": 2, "firing_rate_hz": 30.0, "measured": False,
           "validity": {"verdict": MERGED, "ptp_to_rms": 3.0}}
    s = summarize_site([good, {**good, "id": 3}, {**good, "id": 4}, bad])
    assert s["units"] == 3 and s["units_found"] == 4 and s["units_flagged"][MERGED] == 1
    assert s["max_firing_rate_hz"] == 10.0  # the merged train's rate is not a unit's
    assert [v["verdict"] for v in s["unit_verdicts"]] == [VALID, VALID, VALID, MERGED]
    out = interpret(s, "tibialis anterior", sample_rate_hz=20_000)
    assert out["finding"] == "normal" and "1 merged" in out["evidence"][0]


def test_fragments_of_one_unit_are_joined_and_two_units_are_not():
    """A unit seeded twice, each fragment anchored on another of its spikes, interleaving:
    one unit again, at the first fragment's fiducial point. Another unit's train, or the
    same discharges seen twice, are not joined."""
    from edge.muap.decomposition import DecompositionConfig, join_fragments

    rate, c = 40_000, DecompositionConfig()
    rng = np.random.default_rng(5)
    t = np.arange(-200, 600)
    muap = 800 * np.exp(-((t - 0) / 30.0) ** 2) - 600 * np.exp(-((t - 60) / 40.0) ** 2)
    other = 700 * np.sin(t / 25.0) * np.exp(-((t - 100) / 120.0) ** 2)
    x = rng.normal(0, 10, 10 * rate)
    fire = np.cumsum(rng.normal(0.1, 0.012, 95) * rate).astype(int) + 2000
    for f in fire:
        x[f - 200: f + 600] += muap
    fire2 = np.cumsum(rng.normal(0.11, 0.012, 85) * rate).astype(int) + 3100
    for f in fire2:
        x[f - 200: f + 600] += other
    a, b = fire[::2], fire[1::2] + 60  # b anchored on the second spike
    shapes = [np.zeros(100), np.ones(100), 2 * np.ones(100)]
    trains, kept = join_fragments(x, rate, [a.tolist(), b.tolist(), fire2.tolist()], shapes, c)
    assert len(trains) == 2 and kept[0] is shapes[0] and kept[1] is shapes[2]
    assert trains[0] == sorted(fire.tolist())  # at the first fragment's fiducial point
    assert trains[1] == fire2.tolist()  # the other unit interleaves too, but is not alike
    twice, _ = join_fragments(x, rate, [fire.tolist(), (fire + 60).tolist()], shapes[:2], c)
    assert len(twice) == 2  # the same discharges seen twice collide: not one train


def test_a_muap_longer_than_its_template_is_measured_on_a_wider_one():
    """A 30 ms polyphasic, neurogenic-like MUAP (a spike and phases every 2 ms from −6 to
    +21 ms) outlasts the ±20 ms template, whose baseline eighths then hold the MUAP: it is
    measured on a ±40 ms template, and its duration is its own — on the narrow one only
    the spike stood above the inflated noise (1.4 ms), a small, short MUAP."""
    fs = 10_000
    t = np.arange(-0.04 * fs, 0.04 * fs) / fs * 1000  # ms
    muap = sum(a * np.exp(-0.5 * ((t - c) / w) ** 2) for c, w, a in (
        *((c, 0.7, (-1) ** k * 300.0) for k, c in enumerate(np.arange(-6.0, 21.1, 2.0))),
        (0.0, 0.4, -1500.0)))
    want = measure(muap, fs)["duration_ms"]  # the noiseless MUAP, wide baseline
    rng = np.random.default_rng(33)
    x = rng.normal(0, 8.0, 6 * fs)
    firings = np.cumsum(rng.normal(0.1, 0.01, 55)) + 0.1
    for f in firings[firings < 5.8]:
        i = round(f * fs)
        x[i - muap.size // 2: i + muap.size // 2] += muap
    (unit,) = [u for u in analyse(x, fs)["units"] if u["measured"]]
    assert unit["template_span_ms"] == [-40.0, 40.0]
    assert abs(unit["duration_ms"] - want) <= 1.0 and 25.0 < want < 32.0
    assert len(unit["template_uv"]) == 800  # the wide template is what is drawn
    # one whose duration no template can mark (flat where it was measured, too few
    # discharges for a wide median): shown, flagged, not measured as a short MUAP
    from edge.muap.analysis import _contained
    from edge.muap.decomposition import Unit
    from edge.muap.measures import unit_dict
    from edge.muap.validity import VALID

    flat = Unit(9, np.array([0.5, 0.6, 0.7]), np.zeros(100), np.zeros(400), np.zeros(1600),
                40_000.0)
    d = unit_dict(flat, fs, {"verdict": VALID, "reason": "", "ptp_to_rms": 3.0})
    got = _contained(flat, d, x, fs, (-20.0, 20.0))
    assert not got["measured"] and "duration_ms" not in got
    assert got["validity"]["verdict"] == "uncertain"
    assert "cannot be marked" in got["validity"]["reason"]
