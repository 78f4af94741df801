"""``nemg bench wire``: decoder throughput and sustained pty stream rate.

The decoder is timed against ``zlib.crc32`` over the same bytes in the same run (the cost
of merely checking every byte: the ceiling a Python decoder can approach). The stream rate
runs the virtual front end in its own process (``nemg frontend simulate --fast``), as on a
box where the device is another piece of hardware, and reads it through pyserial.
"""

from __future__ import annotations

import subprocess
import sys
import time
import zlib
from typing import Any

import numpy as np

from benches.harness import BenchOptions, measure_interleaved
from wire.boards import get_frontend
from wire.link import FrontEndClient, SerialLink
from wire.protocol import (
    FrameDecoder,
    FrameType,
    SampleAssembler,
    Samples,
    encode_frame,
    encode_samples,
)


def _stream(n_frames: int, per: int) -> bytes:
    rng = np.random.default_rng(0)
    return b"".join(
        encode_frame(FrameType.SAMPLES, k, encode_samples(k * per, rng.integers(-3000, 3000, per)))
        for k in range(n_frames))


def _decode_all(data: bytes, chunk: int) -> int:
    d, a = FrameDecoder(), SampleAssembler()
    n = 0
    for i in range(0, len(data), chunk):
        for f in d.feed(data[i : i + chunk]):
            for ev in a.push(f):
                if isinstance(ev, Samples):
                    n += ev.values.size
    return n


def _pty_rate(board: str, seconds: float) -> dict[str, Any]:
    profile = get_frontend(board)
    sim = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "frontend", "simulate", "--board", board,
         "--source", "ramp", "--fast"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True)
    try:
        path = sim.stdout.readline().strip()
        with SerialLink(path) as link:
            client = FrontEndClient(link, reconnect=False)
            client.start()
            got = 0
            t0 = time.perf_counter()
            for ev in client.events(duration_s=seconds):
                if isinstance(ev, Samples):
                    got += ev.values.size
            dt = time.perf_counter() - t0
            client.stop()
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    return {
        "pty_samples_per_s": got / dt,
        "pty_realtime_multiple": got / dt / profile.sample_rate_hz,
        "pty_mb_per_s": client.stats.bytes_in / dt / 1e6,
        "pty_crc_errors": client.stats.crc_errors,
        "pty_gaps": client.assembler.gaps,
    }


def run(opts: BenchOptions) -> dict[str, Any]:
    board = "nemg-fe1"
    profile = get_frontend(board)
    per = profile.samples_per_frame
    data = _stream(200 if opts.quick else 2000, per)
    chunk = 4096  # what one serial read typically returns
    t = measure_interleaved(
        {"decoder": lambda: _decode_all(data, chunk), "crc32": lambda: zlib.crc32(data)},
        repeats=opts.repeats, warmup=opts.warmup)
    mb = len(data) / 1e6
    realtime_mb_s = profile.wire_bytes_per_second / 1e6
    return {
        "board": board,
        "stream_bytes": len(data),
        "decoder_mb_per_s": mb / t["decoder"].cpu_s,
        "crc32_mb_per_s": mb / t["crc32"].cpu_s,
        "decoder_vs_crc32": t["crc32"].cpu_s / t["decoder"].cpu_s,
        "decoder_realtime_multiple": mb / t["decoder"].cpu_s / realtime_mb_s,
        "board_wire_mb_per_s": realtime_mb_s,
        **_pty_rate(board, 0.5 if opts.quick else 3.0),
    }
