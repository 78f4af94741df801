"""The fixed-point resampler: exact, chunk-invariant, band-limited, pinned by golden digests."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
from conftest import ROOT, run_nemg

from edge.errors import ConfigError
from edge.resample import StreamResampler, design, output_length, ratio, resample_int16

RATES = (4000, 10_000, 16_000, 23_437.5, 44_100, 48_000)

#: rate -> (sha256[:16] of the taps, of the output for the seeded input below). Any change
#: of design, quantisation or arithmetic shows here: the box and a workstation must agree.
GOLDEN = {
    4000: ("4541459bac1cf135", "01f83d69ce1594c3"),
    16_000: ("4541459bac1cf135", "b29f0371d8d1480d"),
    23_437.5: ("ba9b6a0e908a4d28", "f3b4a52163d98e42"),
    44_100: ("b08da4af53805b13", "1932a7c8a9e52899"),
    48_000: ("8a08ffcfca5a71f6", "0e7fdac15d46b0a3"),
}


def digest(a: np.ndarray) -> str:
    return hashlib.sha256(a.tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("rate", sorted(GOLDEN))
def test_golden_taps_and_outputs(rate):
    x = np.random.default_rng(0).integers(-20000, 20000, 30000).astype(np.int16)
    up, down = ratio(rate, 20_000)
    assert (digest(design(up, down).taps), digest(resample_int16(x, rate, 20_000))) == \
        GOLDEN[rate]


@pytest.mark.parametrize("rate", RATES)
def test_any_chunking_gives_the_same_bits(rate):
    rng = np.random.default_rng(1)
    x = rng.normal(0, 4000, int(rate * 1.3)).astype(np.int16)
    whole = resample_int16(x, rate, 20_000)
    for sizes in ((1,), (7, 1, 333), (4096,)):
        r, out, i, k = StreamResampler(rate, 20_000), [], 0, 0
        while i < x.size:
            n = sizes[k % len(sizes)]
            out.append(r.push(x[i : i + n]))
            i, k = i + n, k + 1
        out.append(r.flush())
        np.testing.assert_array_equal(np.concatenate(out), whole)
    assert whole.size == output_length(x.size, rate, 20_000)


@pytest.mark.parametrize("rate", RATES)
def test_a_tone_in_band_comes_through_on_time_and_one_above_is_rejected(rate):
    t = np.arange(int(rate)) / rate
    f0 = min(300.0, rate / 8)
    y = resample_int16(np.round(10_000 * np.sin(2 * np.pi * f0 * t)).astype(np.int16),
                       rate, 20_000)
    mid = slice(2000, y.size - 2000)
    ref = 10_000 * np.sin(2 * np.pi * f0 * np.arange(y.size) / 20_000)
    assert np.abs(y[mid] - ref[mid]).max() < 3  # LSB: zero delay, unit gain
    if rate / 2 > 10_000:  # a tone between the output's Nyquist and the input's
        fa = 0.5 * (10_000 + rate / 2)
        ya = resample_int16(np.round(10_000 * np.sin(2 * np.pi * fa * t)).astype(np.int16),
                            rate, 20_000)[mid].astype(float)
        assert 20 * np.log10(np.sqrt((ya**2).mean()) / (10_000 / np.sqrt(2))) < -60


def test_a_constant_passes_exactly_and_every_phase_sums_to_one():
    for rate in RATES:
        f = design(*ratio(rate, 20_000))
        assert (f.taps.sum(axis=1) == 1 << 15).all()
        y = resample_int16(np.full(20_000, 1234, np.int16), rate, 20_000)
        assert (y[500:-500] == 1234).all()


def test_refusals():
    with pytest.raises(ConfigError, match="int16"):
        StreamResampler(16_000, 20_000).push(np.zeros(10))
    assert ratio(3999.9999999999964, 20_000) == (5, 1)  # a rate measured from a time column
    up, down = ratio(20_000 * np.pi, 20_000)  # any rate: the nearest small ratio, ≤ 1e-4 off
    assert (up, down) == (113, 355) and abs(up / down * np.pi - 1) < 1e-4


def test_classify_on_a_box_streams_every_rate_as_the_whole_signal_resampled(tmp_path):
    """A box (no scipy, no convert) classifies a file at any rate, read and resampled a
    block at a time, exactly as a 20 kHz WAV of the whole signal resampled at once."""
    import subprocess
    import sys

    from edge.readers.wav import write_wav

    rng = np.random.default_rng(4)
    paths, whole = [], []
    for rate in (r for r in RATES if float(r).is_integer()):  # a WAV's rate is an integer
        x = rng.normal(0, 200, rate * 3).astype(np.int16)
        p, q = tmp_path / f"r{rate}.wav", tmp_path / f"r{rate}-at-20k.wav"
        write_wav(p, x, rate, 0.5)
        write_wav(q, resample_int16(x, rate, 20_000), 20_000, 0.5)
        paths.append(str(p))
        whole.append(str(q))
    box = subprocess.run([sys.executable, "-c",
                          "import sys\nsys.modules['scipy'] = None\n"
                          "sys.modules['convert'] = None\n"
                          "from edge.cli import main\nsys.exit(main(sys.argv[1:]))",
                          "classify", "--json", *paths], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert box.returncode == 0, box.stderr
    ref = run_nemg("classify", "--json", *whole, timeout=300)
    got = [json.loads(ln) for ln in box.stdout.splitlines()]
    want = [json.loads(ln) for ln in ref.stdout.splitlines()]
    assert len(got) == len(want) == len(paths)
    for g, w in zip(got, want, strict=True):
        assert g["duration_s"] == pytest.approx(3.0, abs=1e-3) and len(g["windows"]) == 3
        assert g["windows"] == w["windows"], g["file"]


def test_the_resample_benchmark_measures_alias_rejection_and_ripple():
    out = json.loads(run_nemg("bench", "resample", "--quick", "--repeats", "1", "--json",
                              check=True, timeout=300).stdout)
    assert out["alias_rejection_db_min"] >= 60 and out["passband_ripple_db_max"] < 0.1
    assert set(out["rates"]) == {"4000", "16000", "23437.5", "44100", "48000"}
    assert all(r["realtime_factor"] > 0 for r in out["rates"].values())  # reported, not judged
