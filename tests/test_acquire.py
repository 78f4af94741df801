"""Acquisition from files: every reader streams in bounded memory with the bits of a whole
read, and a hostile file is one error line before anything large is allocated."""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest
from conftest import assert_one_line_error, run_nemg

from benches.pipeline_bench import write_long_file
from edge.acquire.files import load_samples, open_file
from edge.errors import InputError
from edge.readers import load_recording, open_recording
from edge.readers.recording import uv_to_int16
from edge.readers.text import HEAD_STEPS, MAX_LINE_BYTES, _Steps
from edge.resample import resample_int16

FS = 20_000
MIB = 1 << 20


def peak_bytes(fn) -> int:
    """Bytes ``fn()`` held at its peak (numpy arrays included)."""
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.fixture(scope="module", params=["wav", "edf", "wfdb", "csv"])
def minute(request, tmp_path_factory):
    """One minute of the scripted exam in each format (the CSV at 4 kHz)."""
    return write_long_file(tmp_path_factory.mktemp(request.param), request.param, 1 / 60)


def test_every_format_streams_the_bits_of_a_whole_read(minute):
    reader = open_recording(minute)
    whole = load_recording(minute).samples_uv
    assert whole.size == reader.frames and reader.duration_s == pytest.approx(60, abs=1e-3)
    for size in (4093, 1 << 17):
        parts = list(reader.blocks(size))
        assert all(p.size == size for p in parts[:-1])
        assert np.concatenate(parts).tobytes() == whole.tobytes()
    # the acquisition stream: the whole signal's canonical int16, resampled at once
    expected = resample_int16(uv_to_int16(whole, 0.5), reader.sample_rate_hz, FS)
    np.testing.assert_array_equal(load_samples(minute, (FS, 0.5)), expected)
    assert open_file(minute, (FS, 0.5)).total == expected.size


def test_every_format_streams_in_bounded_memory(minute):
    """A minute at 20 kHz is 9.6 MB of float64: opening and streaming it holds a few
    reads' worth (:data:`~edge.readers.recording.READ_SAMPLES`), however long the file."""
    whole = open_recording(minute).frames * 8

    def stream() -> None:
        for _ in open_recording(minute).blocks(4096):
            pass

    held = peak_bytes(stream)
    assert held < 8 * MIB and (held < 0.6 * whole or minute.suffix == ".csv"), held


def test_a_sparse_csv_is_refused_after_a_line_of_it(tmp_path):
    """A 256 MiB file of NULs (sparse: no disk) once read whole; its first line is too
    long, so it is refused having held about a read's worth of bytes."""
    for name, head in (("nul.csv", b""), ("rows.csv", b"time_s,emg_uV\n0,1\n0.001,2\n")):
        p = tmp_path / name
        with open(p, "wb") as f:
            f.write(head)
            f.truncate(256 * MIB)

        def refuse(path=p) -> None:
            with pytest.raises(InputError, match=f"longer than {MAX_LINE_BYTES} bytes"):
                open_recording(path)

        assert peak_bytes(refuse) < 4 * MIB
    assert_one_line_error(run_nemg("classify", str(tmp_path / "nul.csv")), "nul.csv",
                          "not a text recording")


def wav_promising(path, frames: int) -> None:
    fmt = struct.pack("<HHIIHH", 1, 1, FS, 2 * FS, 2, 16)
    data = np.zeros(1000, "<i2").tobytes()
    path.write_bytes(b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + b"fmt "
                     + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", frames * 2)
                     + data)


def edf_promising(path, records: int, per_record: int = FS) -> None:
    fields = [("0", 8), ("X", 80), ("X", 80), ("01.01.01", 8), ("00.00.00", 8), ("512", 8),
              ("", 44), (str(records), 8), ("1", 8), ("1", 4), ("EMG", 16), ("", 80),
              ("uV", 8), ("-1000", 8), ("1000", 8), ("-32768", 8), ("32767", 8), ("", 80),
              (str(per_record), 8), ("", 32)]
    path.write_bytes("".join(v.ljust(w) for v, w in fields).encode() + bytes(4 * FS))


@pytest.mark.parametrize("name,write,message", [
    ("w.wav", lambda p: wav_promising(p, 0x7FFF_FFF0), "truncated: data chunk holds 2000 of"),
    ("r.edf", lambda p: edf_promising(p, 99_999_999), "truncated (2 of 99999999 data records)"),
    ("s.edf", lambda p: edf_promising(p, 1, 99_999_999), "truncated (0 of 1 data records)"),
    ("x.hea", None, "truncated (20000 of 99999999999 samples)"),
])
def test_a_header_that_promises_more_than_the_file_holds_is_one_error_line(
        tmp_path, name, write, message):
    p = tmp_path / name
    if write is None:
        p.write_text("x 1 20000 99999999999\nx.dat 16 200 16 0 0 0 0 emg\n")
        (tmp_path / "x.dat").write_bytes(np.arange(20_000, dtype="<i2").tobytes())
    else:
        write(p)
    def refuse() -> None:
        with pytest.raises(InputError, match="truncated"):
            open_recording(p)

    peak = peak_bytes(refuse)
    assert peak < 2 * MIB, peak  # refused from the header and the file's size alone
    proc = run_nemg("classify", str(p))
    assert_one_line_error(proc, name, message)
    assert "MemoryError" not in proc.stderr


def test_the_median_time_step_is_exact_past_the_steps_kept():
    """A long CSV's rate is the median of every step (np.median's), counted by value."""
    rng = np.random.default_rng(0)
    dt = rng.choice([4.9e-5, 5e-5, 5e-5, 5.1e-5], 3 * HEAD_STEPS + 1)
    for n in (dt.size, dt.size - 1):  # odd and even counts
        t = np.concatenate([[0.0], np.cumsum(dt[:n])])
        steps = _Steps()
        for i in range(0, t.size, 100_003):
            steps.add(t[i : i + 100_003])
        assert steps.median() == np.median(np.diff(t)) and steps.increasing
