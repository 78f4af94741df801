"""The synthesiser's physiology, measured; determinism; the corpus on disk."""

from __future__ import annotations

import csv
import hashlib
import json
from collections import defaultdict

import numpy as np
import pytest
from conftest import ROOT, run_nemg

from convert.corpus import read_corpus, synth_corpus
from convert.synth import DETECTABLE_SNR, PARAMS, synthesize
from edge.errors import InputError
from edge.labels import LABELS

FS = 20_000


def clean(label: str, seed: int, dur: float = 6.0):
    return synthesize(label, fs=FS, duration_s=dur, rng=np.random.default_rng(seed),
                      with_background=False)


def by_generator(events):
    g = defaultdict(list)
    for e in events:
        g[e.generator].append(e)
    return g


def intervals(evts):
    t = np.array(sorted(e.t for e in evts))
    return np.diff(t)


def cv(iv: np.ndarray) -> float:
    return float(np.std(iv) / np.mean(iv))


def measured_width_ms(x: np.ndarray, t: float, max_ms: float, frac: float = 0.05) -> float:
    """Width of the region around an event where |x| exceeds frac of its peak."""
    a = int(t * FS)
    seg = np.abs(x[a : a + int(max_ms * 1e-3 * FS) + 2])
    above = np.flatnonzero(seg > frac * seg.max())
    return (above[-1] - above[0] + 1) / FS * 1e3


def test_events_are_really_in_the_signal():
    checked = 0
    for label in ("fibrillation", "positive_sharp_wave", "motor_unit"):
        for seed in range(1, 4):  # several patients, not the first alone
            s = clean(label, seed)
            for e in s.events[:20]:
                a = int(e.t * FS)
                seg = s.signal_uv[a : a + int(e.duration_ms * 1e-3 * FS) + 2]
                assert np.abs(seg).max() > 0.2 * e.amplitude_uv * s.patient.amplitude_factor
                checked += 1
    assert checked >= 150  # 3 classes x 3 patients x up to 20 events


def test_fibrillation_regular_rate_range_duration_and_polarity():
    cvs, rates = [], []
    for seed in range(25):
        s = clean("fibrillation", seed)
        for evts in by_generator(s.events).values():
            if len(evts) < 4:
                continue  # too few intervals to judge regularity (counted below)
            iv = intervals(evts)
            cvs.append(cv(iv))
            rates.append(1 / np.median(iv))
        for e in s.events[:5]:
            assert 1.0 <= e.duration_ms <= 5.0 and 20 <= e.amplitude_uv <= 200
        # initially positive: the first clear phase of an isolated spike is positive
        e = s.events[0]
        a = int(e.t * FS)
        seg = s.signal_uv[a : a + int(e.duration_ms * 1e-3 * FS)]
        first = seg[np.argmax(np.abs(seg) > 0.3 * np.abs(seg).max())]
        assert first > 0
        assert measured_width_ms(s.signal_uv, e.t, 6) <= 6.0
    assert len(cvs) >= 40  # generators long enough to judge, over 25 patients
    assert min(rates) >= 0.35 and max(rates) <= 15 * 1.25  # 0.5–15 Hz with drift/slowing
    assert np.median(cvs) < 0.06  # regular


def test_fasciculations_are_irregular_and_sized_as_published():
    cvs = []
    for seed in range(30):
        s = clean("fasciculation", seed, dur=20.0)
        for evts in by_generator(s.events).values():
            if len(evts) >= 5:
                cvs.append(cv(intervals(evts)))
        for e in s.events:
            assert 2.8 <= e.duration_ms <= 23.9 and 123 <= e.amplitude_uv <= 1480
    assert len(cvs) >= 40  # units with 5+ discharges, over 30 patients
    assert np.median(cvs) > 0.6  # Poisson-like, unlike fibrillations


def test_positive_sharp_wave_shape():
    for seed in range(10):
        s = clean("positive_sharp_wave", seed)
        e = s.events[0]
        assert 10 <= e.duration_ms <= 30
        a = int(e.t * FS)
        seg = s.signal_uv[a : a + int(e.duration_ms * 1e-3 * FS)]
        peak = int(np.argmax(np.abs(seg)))
        assert seg[peak] > 0  # sharp positive first
        assert peak < 0.25 * seg.size  # early
        assert seg[peak:].min() < -0.05 * seg[peak]  # then a negative phase
        assert (seg[peak:] < 0).sum() > 0.4 * (seg.size - peak)  # which is long


def test_complex_repetitive_time_locked_identical_abrupt():
    for seed in range(10):
        s = clean("complex_repetitive", seed)
        iv = intervals(s.events)
        within = iv[iv < 0.2]  # inside a run
        rate = 1 / np.median(within)
        assert 5 <= rate <= 150
        assert np.std(within) / np.mean(within) < 0.01  # time-locked
        n = int(np.median(within) * FS)
        a0, a1 = round(s.events[1].t * FS), round(s.events[2].t * FS)
        c = np.corrcoef(s.signal_uv[a0 : a0 + n], s.signal_uv[a1 : a1 + n])[0, 1]
        assert c > 0.98  # identical complexes
    # abrupt onset: full amplitude from the first complex of a run
    s = clean("complex_repetitive", 3)
    first = s.events[0]
    a = int(first.t * FS)
    n = int(np.median(intervals(s.events)[:5]) * FS)
    amp1 = np.abs(s.signal_uv[a : a + n]).max()
    amp5 = np.abs(s.signal_uv[a + 4 * n : a + 5 * n]).max()
    assert amp1 > 0.9 * amp5


def test_myotonic_rate_and_amplitude_wax_and_wane_together():
    checked = 0
    for seed in range(10):
        s = clean("myotonic", seed)
        for evts in by_generator(s.events).values():
            if len(evts) < 20:
                continue
            checked += 1
            evts = sorted(evts, key=lambda e: e.t)
            t = np.array([e.t for e in evts])
            rate = 1 / np.diff(t)
            amp = np.array([e.amplitude_uv for e in evts])[:-1]
            assert rate.min() >= 19.5 and rate.max() <= 80.5
            assert rate.max() / rate.min() > 1.3  # the rate changes
            assert amp.max() / amp.min() > 1.5  # and the amplitude
            peak = int(np.argmax(rate))
            assert 0 < peak < rate.size - 1  # waxes, then wanes
            assert np.corrcoef(rate, amp)[0, 1] > 0.8  # together
    assert checked >= 10  # trains long enough to judge: a test that checks none cannot pass


def test_myokymic_bursts():
    for seed in range(10):
        s = clean("myokymic", seed, dur=10.0)
        bursts = by_generator(s.events)
        sizes = [len(v) for v in bursts.values()]
        assert min(sizes) >= 2 and max(sizes) <= 10
        iv = intervals(s.events)
        short, long = iv[iv < 0.05], iv[iv >= 0.05]
        assert short.size and long.size
        intra = 1 / np.median(short)
        assert 25 <= intra <= 70
        starts = np.array(sorted(min(e.t for e in v) for v in bursts.values()))
        burst_rate = 1 / np.median(np.diff(starts))
        assert 0.4 <= burst_rate <= 6.5  # several per second at most, semi-rhythmic
        assert cv(np.diff(starts)) < 0.5


def test_neuromyotonic_fast_decrementing_trains():
    checked = 0
    for seed in range(10):
        s = clean("neuromyotonic", seed)
        for evts in by_generator(s.events).values():
            if len(evts) < 30:
                continue
            checked += 1
            evts = sorted(evts, key=lambda e: e.t)
            rate = 1 / np.median(np.diff([e.t for e in evts]))
            assert 150 <= rate <= 320
            assert evts[-1].amplitude_uv < 0.8 * evts[0].amplitude_uv  # decrementing
            assert evts[-1].t - evts[0].t <= 2.0 + 1e-3
    assert checked >= 10


def test_end_plate_spikes_are_initially_negative():
    checked = 0
    for seed in range(20):
        s = clean("end_plate", seed)
        spikes = [e for e in s.events if e.generator == 1]
        if not spikes:
            continue
        e = spikes[0]  # the first: isolated, nothing before it overlaps
        a = int(e.t * FS)
        seg = s.signal_uv[a : a + int(e.duration_ms * 1e-3 * FS)]
        assert seg[np.argmax(np.abs(seg) > 0.5 * np.abs(seg).max())] < 0, seed
        checked += 1
    assert checked >= 10  # every recording with spikes, not the first alone


def test_insertional_bursts_and_voluntary_units():
    rated = 0
    for seed in range(10):
        s = clean("insertional", seed)
        bursts = [(a, b) for a, b, lab in s.spans if lab == "insertional"]
        assert bursts
        for a, b in bursts:
            assert 0.25 <= b - a <= 2.0 + 1e-6
        m = clean("motor_unit", seed)
        for evts in by_generator(m.events).values():
            assert all(100 <= e.amplitude_uv <= 3000 and 2 <= e.duration_ms <= 15 for e in evts)
            if len(evts) > 5:
                assert 4 <= 1 / np.median(intervals(evts)) <= 21
                rated += 1
    assert rated >= 15  # units firing long enough for a rate, over 10 patients


def test_background_noise_mains_and_mixture_labels():
    hum = 0
    for seed in range(10):
        s = synthesize("silence", fs=FS, duration_s=4.0, rng=np.random.default_rng(seed))
        p = s.patient
        x = s.signal_uv - np.mean(s.signal_uv)
        spec = np.abs(np.fft.rfft(x)) ** 2
        f = np.fft.rfftfreq(x.size, 1 / FS)
        k = np.argmin(np.abs(f - p.mains_hz))
        if p.mains_uv > 3:  # hum strong enough to stand out of the noise (counted below)
            assert spec[k] > 20 * np.median(spec[(f > 200) & (f < 2000)]), seed
            hum += 1
        hi = x - np.convolve(x, np.ones(41) / 41, mode="same")  # strip hum and wander
        assert 1.0 < np.std(hi) < 12.0, seed
    assert hum >= 5
    mixed = 0
    for seed in range(40):
        s = synthesize("fasciculation", fs=FS, duration_s=4.0, rng=np.random.default_rng(seed))
        if s.patient.mixture:
            labs = {lab for _, _, lab in s.spans}
            assert "fasciculation" in labs and "silence" not in labs
            assert labs <= {"fasciculation", s.patient.mixture}
            mixed += 1
    assert mixed >= 5  # of 40 patients, at the synthesiser's 25 % share


def test_discharges_stand_out_of_their_mixture_background():
    mixed = 0
    for seed in range(60):
        s = synthesize("positive_sharp_wave", fs=FS, duration_s=2.0,
                       rng=np.random.default_rng(seed))
        floor = DETECTABLE_SNR * s.info["background_rms_uv"]
        assert s.info["discharge_peak_uv"] >= floor * (1 - 1e-9)
        if s.patient.mixture:
            mixed += 1  # the mixture counts: its floor is above the amplifier noise's
            assert s.info["background_rms_uv"] > 1.05 * s.patient.noise_uv_rms
        else:
            assert s.info["background_rms_uv"] == pytest.approx(s.patient.noise_uv_rms)
    assert mixed >= 5


def test_mixture_share_changes_only_which_recordings_sit_on_a_background(tmp_path):
    labels = ("fibrillation", "positive_sharp_wave")
    base = synth_corpus(tmp_path / "base", 6, seed=4, duration_s=1.0, labels=labels)
    none = synth_corpus(tmp_path / "none", 6, seed=4, duration_s=1.0, labels=labels,
                        mixture_share=0.0)
    every = synth_corpus(tmp_path / "all", 6, seed=4, duration_s=1.0, labels=labels,
                         mixture_share=1.0)
    assert all(f["patient"]["mixture"] is None for f in none["files"])
    assert all(f["patient"]["mixture"] in ("end_plate", "motor_unit") for f in every["files"])
    assert none["mixture_share"] == 0.0 and base["mixture_share"] == 0.25
    kept = 0
    for f, g in zip(base["files"], none["files"], strict=True):
        if f["patient"]["mixture"] is None:  # same random stream: the same recording
            kept += 1
            assert ((tmp_path / "base" / f["file"]).read_bytes()
                    == (tmp_path / "none" / g["file"]).read_bytes())
    assert kept >= 6
    with pytest.raises(InputError, match="mixture share"):
        synth_corpus(tmp_path / "bad", 1, seed=4, mixture_share=1.5)


def test_every_class_is_deterministic_per_seed_and_spans_cover_the_file():
    for label in LABELS:
        a = synthesize(label, fs=FS, duration_s=3.0, rng=np.random.default_rng([7, 1]))
        b = synthesize(label, fs=FS, duration_s=3.0, rng=np.random.default_rng([7, 1]))
        c = synthesize(label, fs=FS, duration_s=3.0, rng=np.random.default_rng([7, 2]))
        np.testing.assert_array_equal(a.signal_uv, b.signal_uv)
        assert not np.array_equal(a.signal_uv, c.signal_uv)
        assert a.spans[0][0] == 0.0 and abs(a.spans[-1][1] - 3.0) < 1e-9
        for (_, e1, _), (s2, _, _) in zip(a.spans, a.spans[1:], strict=False):
            assert abs(e1 - s2) < 1e-9
        assert label in {lab for _, _, lab in a.spans}
        assert np.isfinite(a.signal_uv).all()


def test_every_class_is_bounded_over_many_seeds():
    # guards against runaway loops: every class, many patients, sane event counts
    for seed in range(30):
        for label in LABELS:
            s = synthesize(label, fs=FS, duration_s=1.0, rng=np.random.default_rng([seed, 9]))
            assert len(s.events) < 2500, (label, seed)
            assert np.isfinite(s.signal_uv).all() and np.abs(s.signal_uv).max() < 20_000


def test_corpus_on_disk_is_deterministic_and_complete(tmp_path):
    m1 = synth_corpus(tmp_path / "a", 2, seed=5, duration_s=2.0)
    m2 = synth_corpus(tmp_path / "b", 3, seed=5, duration_s=2.0, workers=2)
    # worker processes change nothing: same files, same manifest entries, same order
    assert [f for f in m2["files"] if f["index"] < 2] == m1["files"]
    assert ((tmp_path / "b" / "labels.csv").read_text().count("\n")
            > (tmp_path / "a" / "labels.csv").read_text().count("\n"))
    for f in m1["files"]:  # the smaller corpus is a prefix of the larger one
        h1 = hashlib.sha256((tmp_path / "a" / f["file"]).read_bytes()).hexdigest()
        h2 = hashlib.sha256((tmp_path / "b" / f["file"]).read_bytes()).hexdigest()
        assert h1 == h2
    items = read_corpus(tmp_path / "a")
    assert len(items) == 2 * len(LABELS)
    assert {i.label for i in items} == set(LABELS)
    manifest = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert manifest["seed"] == 5 and manifest["uv_per_lsb"] == 0.5
    assert manifest["params"]["fibrillation"]["rate_hz"] == list(PARAMS["fibrillation"]["rate_hz"])
    rec = items[0].load()
    assert rec.scale_known and rec.sample_rate_hz == 20000
    with (tmp_path / "a" / "labels.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert set(rows[0]) == {"file", "start_s", "end_s", "label"}


def test_docs_list_every_parameter():
    doc = (ROOT / "docs" / "discharges.md").read_text()
    for cls, params in PARAMS.items():
        assert f"## {cls}" in doc, cls
        for key in params:
            assert f"`{key}`" in doc, f"{cls}.{key} missing from docs/discharges.md"


def test_synth_and_show_cli(tmp_path):
    run_nemg("data", "synth", "--out", str(tmp_path / "c"), "--per-class", "1",
             "--duration", "1.5", "--labels", "fibrillation,silence", check=True)
    wav = tmp_path / "c" / "wav" / "fibrillation_0000.wav"
    png = tmp_path / "f.png"
    run_nemg("data", "show", str(wav), "-o", str(png), check=True)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000


def test_labels_csv_has_no_empty_spans(tmp_path):
    # seed 11's first fasciculation opens with 21 µs of silence: once a "0.0,0.0" row
    import csv

    from edge.readers import load_labels

    synth_corpus(tmp_path, 1, seed=11, duration_s=6.0, labels=("fasciculation",))
    rows = list(csv.DictReader((tmp_path / "labels.csv").open()))
    assert rows and all(float(r["end_s"]) > float(r["start_s"]) for r in rows)
    assert len(load_labels(tmp_path / "labels.csv")) == len(rows)  # the strict reader agrees


def test_the_noise_floor_an_unscaled_file_is_brought_to_is_the_training_synthesisers():
    from convert.corpus import recording_seed, synth_pcm
    from edge.labels import LABELS
    from edge.readers.recording import NOISE_FLOOR_UV, noise_floor

    floors = [noise_floor(synth_pcm(lab, recording_seed(99, lab, i), 20_000, 4.0, 0.5)[1]
                          .signal_uv, 20_000) for lab in LABELS for i in range(6)]
    assert abs(np.median(floors) / NOISE_FLOOR_UV - 1) < 0.05  # re-measure if synth changes
