"""Fixed-point Mel front end: bit-exact, integer-only, accurate, streaming."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_one_line_error, run_nemg
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.errors import ConfigError, InputError
from edge.features import MelFrontEnd, float_to_int16, mel_matrix
from edge.mel_reference import compare_to_reference, frame_signal, reference_log_mel_db
from edge.spec import MelConfig
from rigs.testsignals import KINDS, emg_like

GOLDEN = Path(__file__).parent / "golden" / "features_default.npz"
FE = MelFrontEnd()
CFG = FE.config


def test_every_stage_is_integer():
    x = emg_like("motor_unit", 0.2, CFG, seed=3)
    stages = FE.stages(frame_signal(x, CFG))
    expected = {"windowed": np.int64, "normalized": np.int64, "shift": np.int64,
                "fft_re": np.int64, "fft_im": np.int64, "power": np.int64, "mel": np.int64,
                "log2_q16": np.int64, "int8": np.int8}
    assert {k: v.dtype.type for k, v in stages.items()} == expected
    assert FE.push(x).dtype == np.int8


def test_tables_are_integers():
    t = FE.tables
    for name in ("window_q30", "bitrev", "split_cos", "split_sin", "mel_channel",
                 "mel_upper_q15", "mel_lower_q15", "log_table_q16"):
        assert getattr(t, name).dtype.kind == "i", name
    for _, tw in t.radix4_stages:
        for pair in tw or ():
            assert all(a.dtype == np.int64 for a in pair)


def test_fft_matches_float_fft():
    rng = np.random.default_rng(1)
    x = rng.integers(-(1 << 20), 1 << 20, size=(8, CFG.fft_length), dtype=np.int64)
    re, im = FE.fft(x)
    ref = 2 * np.fft.rfft(x.astype(np.float64), axis=1)
    err = np.abs(re + 1j * im - ref).max() / np.abs(ref).max()
    assert err < 1e-6


@pytest.mark.parametrize("fft_length,window_length,hop", [(256, 200, 100), (1024, 1024, 400),
                                                           (128, 128, 64)])
def test_other_fft_sizes_are_accurate(fft_length, window_length, hop):
    # log2(N/2) odd and even: radix-2 first stage and pure radix-4 both exercised
    cfg = MelConfig(fft_length=fft_length, window_length=window_length, hop_length=hop,
                    num_mels=20)
    x = emg_like("fibrillation", 0.5, cfg, seed=2)
    acc = compare_to_reference(x, cfg)
    assert acc["max_abs_err_db_q16"] < 0.05 and acc["max_abs_err_db"] < 0.3


def test_every_mel_filter_has_bins():
    assert (mel_matrix(CFG) > 0).sum(axis=0).min() >= 1


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("gain_db", [-20.0, 0.0, 20.0])
def test_accuracy_against_float_reference(kind, gain_db):
    x = emg_like(kind, 1.0, CFG, seed=5, gain_db=gain_db)
    acc = compare_to_reference(x, front_end=FE)
    assert acc["mean_abs_err_db"] <= 0.25, acc
    assert acc["max_abs_err_db"] <= 1.0, acc
    assert acc["snr_db"] > 34.0, acc  # CMSIS-DSP's q15 MFCC bar
    assert acc["max_abs_err_db_q16"] < 0.05, acc  # the integer DSP itself, before int8
    assert acc["cells_compared"] > 0.9 * acc["cells_total"], acc


@pytest.mark.parametrize("name", ["square", "negative_dc", "impulses", "sine_at_bin"])
def test_full_scale_signals_do_not_overflow(name):
    n = 4000
    t = np.arange(n)
    x = {
        "square": np.where((t // 25) % 2 == 0, 32767, -32768),
        "negative_dc": np.full(n, -32768),
        "impulses": np.where(t % 700 == 0, -32768, 0),
        "sine_at_bin": np.round(32767 * np.sin(2 * np.pi * 39.0625 * 40 * t / 20000)),
    }[name].astype(np.int16)
    ref = reference_log_mel_db(x, CFG)
    st_ = FE.stages(frame_signal(x, CFG))
    fixed = FE.db_q16(st_["log2_q16"]) / 65536.0
    err = np.abs(fixed - ref)
    # In-frame dynamic range: exact to 0.05 dB within 90 dB of the frame's loudest band,
    # within 1 dB down to 110 dB below it (the 2^-20 block-floating rounding), which is
    # below the int16 input's own quantisation floor for a full-scale frame.
    near = ref > ref.max(axis=1, keepdims=True) - 90
    assert err[near].max() < 0.05
    above_floor = ref > CFG.db_min + 10
    assert err[above_floor].max() < 1.0
    assert (st_["mel"] >= 0).all() and (st_["power"] >= 0).all()


def test_gain_shifts_features_and_nothing_else():
    # The level is absolute: +20 dB moves every unsaturated cell by 40 int8 steps (±1).
    x = emg_like("fibrillation", 1.0, CFG, seed=7).astype(np.float64)
    lo = FE.process(float_to_int16(x))
    hi = FE.process(float_to_int16(x * 10.0))
    ok = (lo > -120) & (hi < 127)
    d = hi[ok].astype(int) - lo[ok].astype(int)
    assert ok.mean() > 0.9
    assert np.abs(d - 40).max() <= 1


def test_silence_maps_to_the_floor():
    assert (FE.process(np.zeros(3000, np.int16)) == -128).all()


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 3000),
    cuts=st.lists(st.integers(0, 3000), max_size=12),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_chunking_is_bit_identical(n, cuts, seed):
    x = np.random.default_rng(seed).integers(-32768, 32768, n).astype(np.int16)
    x[: n // 3] //= 64  # mixed levels: exercises both shift directions
    fe = MelFrontEnd(CFG)
    bounds = sorted({0, n, *[c for c in cuts if c <= n]})
    got = [fe.push(x[a:b]) for a, b in itertools.pairwise(bounds)]
    got.append(fe.push(x[n:]))  # an empty chunk is fine mid-stream
    streamed = np.concatenate(got) if got else np.zeros((0, CFG.num_mels), np.int8)
    expected = FE.process(x) if CFG.num_frames(n) else np.zeros((0, CFG.num_mels), np.int8)
    assert streamed.dtype == np.int8
    np.testing.assert_array_equal(streamed, expected)
    assert fe.frames_emitted == CFG.num_frames(n)


def test_sample_by_sample_equals_one_shot():
    x = emg_like("positive_sharp_wave", 0.1, CFG, seed=9)
    fe = MelFrontEnd(CFG)
    out = np.concatenate([fe.push(x[i : i + 1]) for i in range(x.size)])
    np.testing.assert_array_equal(out, FE.process(x))


def test_reset_forgets_buffered_samples():
    x = emg_like("motor_unit", 0.3, CFG, seed=4)
    fe = MelFrontEnd(CFG)
    fe.push(x[:300])
    fe.reset()
    np.testing.assert_array_equal(fe.push(x[300:]), FE.process(x[300:]))


def test_golden_vectors_bit_exact():
    g = np.load(GOLDEN)
    assert json.loads(g["config_json"].tobytes()) == CFG.to_dict(), "default MelConfig changed"
    assert g["table_sha256"].tobytes().decode() == FE.table_digest, "tables drifted"
    names = {k.split("/")[0] for k in g.files if "/" in k}
    assert len(names) >= 5
    for name in sorted(names):
        x = g[f"{name}/input"]
        np.testing.assert_array_equal(FE.process(x), g[f"{name}/int8"], err_msg=name)
        frames = frame_signal(x, CFG)[:4]
        np.testing.assert_array_equal(FE.stages(frames)["log2_q16"], g[f"{name}/log2_q16"])


LONG_INT8_SHA256 = "aa261a802c1e86ccfe902d9e5d3aa8efe676e85cb237799732ace7b3d600b2b0"
"""The int8 features of a long input (30 s of examination, 2 s of full-scale and ±1
codes, silence) as the front end computed them before it was vectorised in blocks of
frames (2afcf4a): the golden vectors above are short, this pins every block path."""


@pytest.mark.parametrize("block_frames", [1, 7, 50, 200, 4096])
def test_a_long_input_is_bit_identical_in_every_block_size(block_frames):
    from rigs.testsignals import examination

    rng = np.random.default_rng(3)
    extreme = rng.choice(np.array([-32768, 32767, 0, 1, -1], np.int16), size=40_000)
    x = np.concatenate([examination(30.0, CFG, seed=7), extreme, np.zeros(5000, np.int16)])
    fe = MelFrontEnd(CFG)
    fe.block_frames = block_frames
    out = fe.process(x)
    assert out.shape == (3223, CFG.num_mels)
    assert hashlib.sha256(out.tobytes()).hexdigest() == LONG_INT8_SHA256
    pushed = MelFrontEnd(CFG)
    pushed.block_frames = block_frames
    parts = [pushed.push(x[a: a + 9_973]) for a in range(0, x.size, 9_973)]
    np.testing.assert_array_equal(np.concatenate(parts), out)


def test_deterministic_across_instances_and_block_sizes():
    x = emg_like("complex_repetitive", 2.0, CFG, seed=8)
    a = MelFrontEnd(CFG)
    b = MelFrontEnd(CFG)
    b.block_frames = 7
    np.testing.assert_array_equal(a.process(x), b.process(x))


@pytest.mark.parametrize("bad,match", [
    (np.zeros(1000, np.float32), "must be int16"),
    (np.zeros((2, 1000), np.int16), "one channel"),
    (np.zeros(0, np.int16), "empty"),
    (np.zeros(100, np.int16), "too short"),
    ([1, 2, 3], "numpy int16 array"),
])
def test_bad_input_is_a_clear_error(bad, match):
    with pytest.raises(InputError, match=match):
        FE.process(bad)


def test_float_sources_with_nan_are_refused():
    x = np.ones(1000)
    x[17] = np.nan
    with pytest.raises(InputError, match="first at index 17"):
        float_to_int16(x)


@pytest.mark.parametrize("kw", [dict(fft_length=500), dict(window_length=1024),
                                dict(hop_length=0), dict(fmax_hz=15000.0),
                                dict(db_step=0.0)])
def test_bad_config_is_refused(kw):
    with pytest.raises(ConfigError):
        MelConfig(**kw)


def test_features_cli(tmp_path):
    x = emg_like("fibrillation", 0.5, CFG, seed=1)
    src = tmp_path / "sig.npy"
    np.save(src, x)
    out = tmp_path / "f.npy"
    proc = run_nemg("features", str(src), "-o", str(out), "--compare", check=True)
    rep = json.loads(proc.stdout)
    np.testing.assert_array_equal(np.load(out), FE.process(x))
    assert rep["max_abs_err_db"] <= 1.0


def test_features_cli_bad_files(tmp_path):
    trunc = tmp_path / "t.raw"
    trunc.write_bytes(b"\x01\x02\x03")
    assert_one_line_error(run_nemg("features", str(trunc), "--raw"), "truncated")
    nan = tmp_path / "nan.npy"
    np.save(nan, np.array([0.0, np.nan] * 1000))
    assert_one_line_error(run_nemg("features", str(nan), "--lsb", "0.5"), "NaN", "nan.npy")
    assert_one_line_error(run_nemg("features", str(tmp_path / "missing.npy")), "no such file")
    junk = tmp_path / "junk.npy"
    junk.write_bytes(b"not numpy")
    assert_one_line_error(run_nemg("features", str(junk)), "junk.npy")
