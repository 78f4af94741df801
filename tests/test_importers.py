"""Importers: every format round-trips; every kind of bad file is a clear error."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from conftest import ROOT, assert_one_line_error, run_nemg

from convert.augment import Augmenter
from edge.acquire.files import recording_at_rate
from edge.errors import InputError
from edge.readers import load_recording
from edge.readers.wav import write_wav

FS = 20_000


def sine_uv(n=20_000, hz=200.0, uv=300.0, fs=FS):
    return uv * np.sin(2 * np.pi * hz * np.arange(n) / fs)


def raw_wav(path, data: bytes, rate: int, bits: int, tag: int = 1, channels: int = 1,
            truncate: int = 0):
    block = bits // 8 * channels
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + \
        struct.pack("<I", len(data)) + data
    blob = b"RIFF" + struct.pack("<I", len(body)) + body
    path.write_bytes(blob[: len(blob) - truncate] if truncate else blob)


@pytest.mark.parametrize("bits", [8, 16, 24, 32])
def test_wav_integer_depths(tmp_path, bits):
    full = 1 << (bits - 1)
    v = np.round(0.5 * full * np.sin(np.linspace(0, 20, 4000))).astype(np.int64)
    if bits == 8:
        data = (v + 128).astype(np.uint8).tobytes()
    elif bits == 24:
        data = v.astype("<i4").view(np.uint8).reshape(-1, 4)[:, :3].tobytes()
    else:
        data = v.astype(f"<i{bits // 8}").tobytes()
    raw_wav(tmp_path / "x.wav", data, 8000, bits)
    rec = load_recording(tmp_path / "x.wav")
    assert rec.sample_rate_hz == 8000 and not rec.scale_known
    # every depth maps its full scale onto the same nominal µV range
    np.testing.assert_allclose(rec.samples_uv, v * (16384.0 / full), rtol=0, atol=1e-9)


def test_wav_float_stereo_channel_pick(tmp_path):
    x = np.stack([np.zeros(1000), np.full(1000, 0.25)], axis=1).astype("<f4")
    raw_wav(tmp_path / "f.wav", x.tobytes(), 44100, 32, tag=3, channels=2)
    rec = load_recording(tmp_path / "f.wav", channel=1)
    np.testing.assert_allclose(rec.samples_uv, 0.25 * 16384.0)
    with pytest.raises(InputError, match="channel 2 does not exist"):
        load_recording(tmp_path / "f.wav", channel=2)


def test_wav_scale_written_by_us_is_read_back(tmp_path):
    pcm = np.arange(-500, 500, dtype=np.int16)
    write_wav(tmp_path / "s.wav", pcm, FS, 0.25)
    rec = load_recording(tmp_path / "s.wav")
    assert rec.scale_known
    np.testing.assert_allclose(rec.samples_uv, pcm * 0.25)


def test_edf_bdf_units_and_annotations(tmp_path):
    import pyedflib

    x = sine_uv()
    for name, ftype, dim, scale in [("a.edf", pyedflib.FILETYPE_EDFPLUS, "uV", 1.0),
                                    ("b.bdf", pyedflib.FILETYPE_BDFPLUS, "mV", 1e-3)]:
        path = tmp_path / name
        w = pyedflib.EdfWriter(str(path), 1, file_type=ftype)
        w.setSignalHeaders([{"label": "EMG", "dimension": dim, "sample_frequency": FS,
                             "physical_max": 1000.0 * scale, "physical_min": -1000.0 * scale,
                             "digital_max": 8_388_607 if "bdf" in name else 32767,
                             "digital_min": -8_388_608 if "bdf" in name else -32768}])
        w.writeAnnotation(0.2, 0.5, "fibrillation")
        w.writeSamples([x * scale])
        w.close()
        rec = load_recording(path)
        assert rec.sample_rate_hz == FS and rec.channel == "EMG" and rec.unit == dim
        np.testing.assert_allclose(rec.samples_uv, x, atol=0.1)
        assert rec.annotations == [(0.2, 0.7, "fibrillation")]


def test_wfdb_round_trip(tmp_path):
    import wfdb

    x = sine_uv() / 1000.0  # mV
    wfdb.wrsamp("emg", fs=FS, units=["mV"], sig_name=["needle"], p_signal=x[:, None],
                fmt=["16"], adc_gain=[20000.0], baseline=[0], write_dir=str(tmp_path))
    rec = load_recording(tmp_path / "emg.hea")
    assert rec.channel == "needle" and rec.sample_rate_hz == FS
    np.testing.assert_allclose(rec.samples_uv, x * 1000.0, atol=0.1)
    dat = tmp_path / "emg.dat"
    dat.write_bytes(dat.read_bytes()[:1000])  # truncated signal file
    with pytest.raises(InputError, match="emg"):
        load_recording(tmp_path / "emg.hea")


def test_csv_units_and_time_columns(tmp_path):
    t = np.arange(2000) / 10_000
    x = sine_uv(2000, fs=10_000)
    p = tmp_path / "m.csv"
    p.write_text("time_s,emg (mV)\n" + "\n".join(f"{a:.6f},{b / 1000:.6f}" for a, b in zip(t, x,
                                                                                    strict=True)))
    rec = load_recording(p)
    assert abs(rec.sample_rate_hz - 10_000) < 1e-6
    np.testing.assert_allclose(rec.samples_uv, x, atol=1e-3)
    q = tmp_path / "ms.csv"
    q.write_text("time_ms;emg_uV\n" + "\n".join(f"{a * 1000:.4f};{b:.3f}" for a, b in zip(t, x,
                                                                                   strict=True)))
    assert abs(load_recording(q).sample_rate_hz - 10_000) < 1e-6


@pytest.mark.parametrize("content,match", [
    ("time_s,emg\n0,1\n0.001,2\n0.002,3\n", "does not name its unit"),
    ("time_s,emg_degC\n0,1\n0.001,2\n0.002,3\n", "does not name its unit"),
    ("time_s,emg_uV\n0,1\n0.001,nan\n0.002,3\n", "NaN"),
    ("time_s,emg_uV\n0,1\n0.001,2\n0.0015,3\n0.004,3\n", "not evenly sampled"),
    ("time_s,emg_uV\n0,1\n0.001,2\n0.002,3\n0.003", "truncated"),
    ("time_s,emg_uV\n", "empty"),
])
def test_bad_csv(tmp_path, content, match):
    p = tmp_path / "bad.csv"
    p.write_text(content)
    with pytest.raises(InputError, match=match) as e:
        load_recording(p)
    assert "bad.csv" in str(e.value)


def test_bad_wav_and_edf_files(tmp_path):
    raw_wav(tmp_path / "t.wav", np.zeros(1000, "<i2").tobytes(), FS, 16, truncate=500)
    with pytest.raises(InputError, match="truncated"):
        load_recording(tmp_path / "t.wav")
    raw_wav(tmp_path / "e.wav", b"", FS, 16)
    with pytest.raises(InputError, match="empty"):
        load_recording(tmp_path / "e.wav")
    (tmp_path / "n.wav").write_bytes(b"not a wav file at all")
    with pytest.raises(InputError, match="not a WAV"):
        load_recording(tmp_path / "n.wav")
    raw_wav(tmp_path / "nan.wav", np.array([0.0, np.nan] * 100, "<f4").tobytes(), FS, 32, tag=3)
    with pytest.raises(InputError, match="NaN"):
        load_recording(tmp_path / "nan.wav")
    (tmp_path / "x.edf").write_bytes(b"0" * 300)
    with pytest.raises(InputError, match=r"x\.edf"):
        load_recording(tmp_path / "x.edf")
    (tmp_path / "a.xyz").write_text("1,2,3")
    with pytest.raises(InputError, match="unknown format"):
        load_recording(tmp_path / "a.xyz")
    with pytest.raises(InputError, match="no such file"):
        load_recording(tmp_path / "missing.edf")


def test_label_sidecars(tmp_path):
    write_wav(tmp_path / "r.wav", np.zeros(FS, np.int16), FS, 0.5)
    (tmp_path / "r.labels.csv").write_text("start_s,end_s,label\n0,0.5,silence\n0.5,1,myotonic\n")
    assert load_recording(tmp_path / "r.wav").annotations == [
        (0.0, 0.5, "silence"), (0.5, 1.0, "myotonic")]
    (tmp_path / "r.labels.csv").write_text("start_s,end_s,label\n0,0.5,frobnication\n")
    with pytest.raises(InputError, match="unknown label 'frobnication'"):
        load_recording(tmp_path / "r.wav")
    (tmp_path / "r.labels.csv").write_text("start_s,end_s,label\n0,5,silence\n")
    with pytest.raises(InputError, match="after the recording"):
        load_recording(tmp_path / "r.wav")


def test_resampling_keeps_the_band_and_rejects_aliases():
    from edge.readers import Recording

    fs_in = 44_100
    t = np.arange(fs_in) / fs_in
    x = 100 * np.sin(2 * np.pi * 1000 * t) + 100 * np.sin(2 * np.pi * 15_000 * t)
    rec = recording_at_rate(Recording(x, fs_in, "uV", True, "0", "mem"), FS, 0.5)
    assert rec.sample_rate_hz == FS and abs(rec.samples_uv.size - FS) <= 1
    spec = np.abs(np.fft.rfft(rec.samples_uv[1000:-1000]))
    f = np.fft.rfftfreq(rec.samples_uv[1000:-1000].size, 1 / FS)
    keep = spec[np.argmin(np.abs(f - 1000))]
    alias = spec[np.argmin(np.abs(f - 5000))]  # where 15 kHz would fold to
    assert 20 * np.log10(keep / max(alias, 1e-12)) > 40


def test_augmentation_is_seeded_and_does_what_it_says():
    x = sine_uv()
    a, b = Augmenter(3, FS), Augmenter(3, FS)
    np.testing.assert_array_equal(a(x), b(x))
    g = Augmenter(0, FS)
    np.testing.assert_allclose(g.gain(x, 20.0), 10 * x)
    y = g.noise(x, snr_db=20.0)
    snr = 10 * np.log10(np.mean(x**2) / np.mean((y - x) ** 2))
    assert abs(snr - 20) < 0.5
    assert g.stretch(x, 1.1).size == x.size and g.bandwidth(x).size == x.size


def test_data_inspect_cli(tmp_path):
    write_wav(tmp_path / "r.wav", np.zeros(FS, np.int16), FS, 0.5)
    proc = run_nemg("data", "inspect", str(tmp_path / "r.wav"), check=True)
    assert '"sample_rate_hz": 20000.0' in proc.stdout
    (tmp_path / "bad.wav").write_bytes(b"RIFF")
    assert_one_line_error(run_nemg("data", "inspect", str(tmp_path / "bad.wav")), "bad.wav")


@pytest.mark.parametrize("fmt", ["16", "212", "80", "61"])
def test_wfdb_formats_read_as_the_wfdb_package_reads_them(tmp_path, fmt):
    import wfdb

    x = np.random.default_rng(0).normal(0, 0.2, 5000)  # mV
    gains = {"16": 2000.0, "212": 500.0, "80": 50.0, "61": 2000.0}[fmt]  # in range
    if fmt == "61":  # wfdb writes no format 61 (EMGlab's): big-endian int16 by hand
        d = np.round(np.stack([x, x * 2], 1) * gains).astype(">i2")
        (tmp_path / "e.dat").write_bytes(d.tobytes())
        (tmp_path / "e.hea").write_text(
            f"e 2 10000 {x.size}\r"
            f"e.dat 61 {gains:g}(3)/mV 16 0 0 0 0 needle\re.dat 61 {gains:g}/mV 16 0 0 0 0 b\r")
    else:
        wfdb.wrsamp("e", fs=10_000, units=["mV", "mV"], sig_name=["needle", "b"],
                    p_signal=np.stack([x, x * 2], 1), fmt=[fmt, fmt], adc_gain=[gains, gains],
                    baseline=[3, 0], write_dir=str(tmp_path))
    ref = wfdb.rdrecord(str(tmp_path / "e"))
    for ch in (0, 1):
        rec = load_recording(tmp_path / "e.hea", ch)
        np.testing.assert_array_equal(rec.samples_uv, ref.p_signal[:, ch] * 1000)
        assert rec.sample_rate_hz == 10_000 and rec.channel == ["needle", "b"][ch]


def test_a_wfdb_record_the_reader_does_not_support_is_a_clear_error(tmp_path):
    (tmp_path / "m.hea").write_text("m/2 1 1000 10\n")
    with pytest.raises(InputError, match="multi-segment"):
        load_recording(tmp_path / "m.hea")
    (tmp_path / "s.hea").write_text("s 1 1000 10\ns.dat 311 200/mV\n")
    with pytest.raises(InputError, match="format '311' is not supported"):
        load_recording(tmp_path / "s.hea")


def test_a_header_that_promises_more_than_its_file_holds_is_one_line_before_any_allocation(
        tmp_path):
    """A WFDB header declaring 99,999,999,999 samples over a 40 kB file: the reader read
    what the header allowed into one buffer (MemoryError); it reads what the file holds."""
    (tmp_path / "rec.hea").write_text("rec 1 20000 99999999999\nrec.dat 16 200 16 0 0 0 0 x\n")
    (tmp_path / "rec.dat").write_bytes(np.arange(20_000, dtype="<i2").tobytes())
    proc = run_nemg("classify", str(tmp_path / "rec.hea"))
    assert_one_line_error(proc, "rec.hea", "truncated (20000 of 99999999999 samples)")


def test_classify_on_a_box_reads_csv_wfdb_and_edf_as_their_reference_readers_do(tmp_path):
    """A box (no pyedflib, wfdb, scipy) classifies each format exactly as it classifies a
    WAV of the samples numpy's loadtxt, wfdb and pyedflib read from the same file."""
    import subprocess
    import sys

    import pyedflib
    import wfdb

    from edge.readers.recording import uv_to_int16
    from edge.resample import resample_int16

    rng = np.random.default_rng(6)
    x = rng.normal(0, 0.05, 3 * FS)  # mV
    (tmp_path / "a.csv").write_text("time_s,emg_mV\n" + "\n".join(  # at 10 kHz
        f"{i / (FS // 2):.6f},{v:.5f}" for i, v in enumerate(x[::2])))
    excerpt = ROOT / "tests" / "data" / "emgdb_healthy_3s.txt"  # headerless: unscaled
    wfdb.wrsamp("w", fs=FS, units=["mV"], sig_name=["emg"], p_signal=x[:, None], fmt=["16"],
                adc_gain=[2000.0], baseline=[0], write_dir=str(tmp_path))
    w = pyedflib.EdfWriter(str(tmp_path / "e.edf"), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setSignalHeaders([{"label": "EMG", "dimension": "mV", "sample_frequency": FS,
                         "physical_max": 1.0, "physical_min": -1.0, "digital_max": 32767,
                         "digital_min": -32768}])
    w.writeSamples([x])
    w.close()
    t, v = np.loadtxt(tmp_path / "a.csv", delimiter=",", skiprows=1).T
    edf = pyedflib.EdfReader(str(tmp_path / "e.edf"))
    reference = {"a.csv": (v, 1 / np.median(np.diff(t))),
                 "w.hea": (wfdb.rdrecord(str(tmp_path / "w")).p_signal[:, 0], FS),
                 "e.edf": (edf.readSignal(0), FS)}
    edf.close()
    for name, (mv, rate) in reference.items():  # canonical int16 at 20 kHz, as a WAV
        pcm = uv_to_int16(mv * 1000.0, 0.5)
        write_wav(tmp_path / f"{name}.wav", resample_int16(pcm, rate, FS), FS, 0.5)
    files = [str(tmp_path / n) for n in reference] + [str(excerpt)]
    hide = "".join(f"sys.modules[{m!r}] = None\n" for m in
                   ("scipy", "tensorflow", "tf_keras", "matplotlib", "pyedflib", "wfdb"))
    box = subprocess.run([sys.executable, "-c", f"import sys\n{hide}from edge.cli import main\n"
                          "sys.exit(main(sys.argv[1:]))", "classify", "--json", *files],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert box.returncode == 0, box.stderr
    got = [json.loads(ln) for ln in box.stdout.splitlines()]
    assert [r["input"]["scale"] for r in got] == ["recorded"] * 3 + ["estimated"]
    wavs = run_nemg("classify", "--json", *(f"{f}.wav" for f in files[:3]), timeout=300)
    want = [json.loads(ln) for ln in wavs.stdout.splitlines()]
    assert len(want) == 3 and all(len(r["windows"]) == 3 for r in want)
    for g, r in zip(got, want, strict=False):
        assert g["windows"] == r["windows"], g["file"]


@pytest.mark.parametrize("kind", ["edf", "bdf"])
def test_edf_and_bdf_read_as_pyedflib_reads_them(tmp_path, kind):
    import pyedflib

    path = tmp_path / f"r.{kind}"
    bdf = kind == "bdf"
    w = pyedflib.EdfWriter(str(path), 2, file_type=pyedflib.FILETYPE_BDFPLUS if bdf
                           else pyedflib.FILETYPE_EDFPLUS)
    x = np.random.default_rng(2).normal(0, 100, 2 * FS)
    w.setSignalHeaders([{"label": lab, "dimension": "uV", "sample_frequency": fs,
                         "physical_max": 1000.0, "physical_min": -800.0,
                         "digital_max": 8_388_607 if bdf else 32767,
                         "digital_min": -8_388_608 if bdf else -32768}
                        for lab, fs in (("EMG", FS), ("ref", FS // 4))])
    w.writeSamples([x, x[::4] / 2])
    w.close()
    r = pyedflib.EdfReader(str(path))
    for ch in (0, 1):
        rec = load_recording(path, ch)
        np.testing.assert_array_equal(rec.samples_uv, r.readSignal(ch))  # edflib's formula
        assert rec.sample_rate_hz == r.getSampleFrequency(ch)
    r.close()


def test_a_damaged_edf_is_a_clear_error(tmp_path):
    import pyedflib

    path = tmp_path / "d.edf"
    w = pyedflib.EdfWriter(str(path), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setSignalHeaders([{"label": "EMG", "dimension": "uV", "sample_frequency": FS,
                         "physical_max": 1000.0, "physical_min": -1000.0,
                         "digital_max": 32767, "digital_min": -32768}])
    w.writeSamples([np.zeros(3 * FS)])
    w.close()
    good = path.read_bytes()
    cases = {r"truncated \(2 of 3 data records\)": good[: len(good) - 1000],
             "a number field is not a number": good[:236] + b"abcdefgh" + good[244:],
             "9999 signals": good[:252] + b"9999" + good[256:],
             "not an EDF/BDF file": b"PK\x03\x04" + good[4:]}
    for message, data in cases.items():
        path.write_bytes(data)
        with pytest.raises(InputError, match=message):
            load_recording(path)
