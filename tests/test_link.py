"""The serial link and the virtual front end over real ptys through pyserial."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import HANG_GUARD_S, ROOT, assert_one_line_error, run_nemg

from edge.errors import ConfigError, DeviceError
from rigs.sources import open_source
from wire.boards import get_frontend, load_board
from wire.link import FrontEndClient, LinkDown, LinkEvent, SerialLink
from wire.protocol import Gap, Samples
from wire.virtual import Faults, SampleSource, VirtualFrontEnd

FE1 = get_frontend("nemg-fe1")


def ramp_source(profile=FE1) -> SampleSource:
    return open_source("ramp", profile)


def collect(client: FrontEndClient, n_samples: int):
    """Events until ``n_samples`` samples have arrived: (samples, gaps, link events)."""
    samples, gaps, links = [], [], []
    got = 0
    for ev in client.events(duration_s=HANG_GUARD_S):
        if isinstance(ev, Samples):
            samples.append(ev)
            got += ev.values.size
        elif isinstance(ev, Gap):
            gaps.append(ev)
        elif isinstance(ev, LinkEvent):
            links.append(ev)
        if got >= n_samples:
            break
    assert got >= n_samples, f"hang guard: {got} of {n_samples} samples in {HANG_GUARD_S} s"
    return samples, gaps, links


def check_exact(vfe: VirtualFrontEnd, samples: list[Samples]) -> None:
    """Every delivered sample equals the sample the device sent at that index."""
    for s in samples:
        expected = vfe.source.read(s.device_index - vfe.source_origin, s.values.size)
        np.testing.assert_array_equal(s.values, expected)


@pytest.mark.parametrize("board", ["nemg-fe1", "ads1299-fe"])
def test_stream_arrives_sample_exact(board):
    profile = get_frontend(board)
    with VirtualFrontEnd(profile, ramp_source(profile), fast=True) as vfe, \
            SerialLink(vfe.path) as link:
        client = FrontEndClient(link, reconnect=False)
        info = client.info()
        assert (info.board_id, info.sample_rate_hz, info.adc_bits) == (
            board, profile.sample_rate_hz, profile.adc_bits)
        client.start()
        samples, gaps, _ = collect(client, 200_000)
        client.stop()
    assert not gaps
    check_exact(vfe, samples)
    idx = np.concatenate([s.index + np.arange(s.values.size) for s in samples])
    np.testing.assert_array_equal(idx, np.arange(idx.size))  # contiguous, from 0
    assert client.stats.crc_errors == 0 and client.stats.seq_gaps == 0


def test_corruption_and_drops_never_deliver_a_bad_sample_and_gaps_are_exact():
    faults = Faults(drop_rate=0.02, corrupt_rate=1e-4, seed=3)
    with VirtualFrontEnd(FE1, ramp_source(), fast=True, faults=faults) as vfe, \
            SerialLink(vfe.path) as link:
        client = FrontEndClient(link, reconnect=False)
        client.start()
        samples, gaps, _ = collect(client, 400_000)
        client.stop()
    check_exact(vfe, samples)
    first = samples[0].device_index
    end = samples[-1].device_index + samples[-1].values.size
    lost_frames = [(i, n) for i, n in vfe.stats.dropped + vfe.stats.corrupted if first <= i < end]
    assert lost_frames, "the faults should have cost some frames"
    assert sum(g.lost for g in gaps) == sum(n for _, n in lost_frames)
    delivered = sum(s.values.size for s in samples)
    assert delivered + sum(g.lost for g in gaps) == end - first
    assert client.stats.crc_errors + client.stats.bad_headers > 0


def test_disconnect_and_reappear_resumes_with_an_exact_gap(tmp_path):
    link_path = tmp_path / "ttyNEMG"
    faults = Faults(disconnect_after_frames=30, disconnect_frames=40)  # at 0.3 s, 0.4 s out
    with VirtualFrontEnd(FE1, ramp_source(), fast=False, faults=faults,
                         link_path=link_path) as vfe:
        link = SerialLink(str(link_path))
        link.open()
        client = FrontEndClient(link, backoff_initial_s=0.02, backoff_max_s=0.2)
        client.start()
        samples, gaps, links = collect(client, int(1.6 * FE1.sample_rate_hz))
        client.close()
    assert [e.state for e in links] == ["disconnected", "reconnected"]
    assert len(gaps) == 1 and gaps[0].reason == "reconnect" and gaps[0].lost > 0
    check_exact(vfe, samples)
    after = [s for s in samples if s.index >= gaps[0].index]
    assert after and after[0].index == gaps[0].index + gaps[0].lost  # a gap, not a splice
    assert after[0].device_index - (gaps[0].index + samples[0].device_index) == gaps[0].lost


def test_unplug_without_reconnect_raises_linkdown():
    vfe = VirtualFrontEnd(FE1, ramp_source(), fast=False)
    vfe.start()
    link = SerialLink(vfe.path)
    link.open()
    client = FrontEndClient(link, reconnect=False)
    client.start()
    vfe.stop()  # the device disappears
    with pytest.raises(LinkDown):
        for _ in client.events(duration_s=HANG_GUARD_S):
            pass


def test_port_is_exclusive_and_missing_ports_are_clear_errors():
    with VirtualFrontEnd(FE1, ramp_source()) as vfe, SerialLink(vfe.path), \
            pytest.raises(DeviceError, match="cannot open"):
        SerialLink(vfe.path).open()  # a second reader on the same port
    with pytest.raises(DeviceError, match="cannot open /dev/does-not-exist"):
        SerialLink("/dev/does-not-exist").open()


def test_no_reply_is_a_clear_error():
    link = SerialLink("loop://", read_timeout=0.01)  # echoes our own frames back
    link.open()
    with pytest.raises(DeviceError, match="no INFO_REPLY reply"):
        FrontEndClient(link, reconnect=False).info(timeout_s=0.1)


def test_board_files_are_validated(tmp_path):
    base = (ROOT / "boards" / "nemg-fe1.toml").read_text()
    cases = {
        "adc_bits = 16": ("adc_bits = 12", "adc_bits must be 16 or 24"),
        "sample_rate_hz = 20000": ('sample_rate_hz = "fast"', "must be a int"),
        "channels = 1": ("channels = 1\ncolour = 3", "unknown key frontend.colour"),
        'transport = "usb-cdc"': ('transport = "carrier-pigeon"', "link.transport"),
        "samples_per_frame = 200": ("samples_per_frame = 9999", "samples_per_frame"),
    }
    for old, (new, msg) in cases.items():
        p = tmp_path / "nemg-fe1.toml"
        p.write_text(base.replace(old, new))
        with pytest.raises(ConfigError, match=msg):
            load_board(p)
    p.write_text("[board\nname=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_board(p)
    slow = (ROOT / "boards" / "ads1299-fe.toml").read_text().replace("3000000", "115200")
    p = tmp_path / "ads1299-fe.toml"
    p.write_text(slow)
    with pytest.raises(ConfigError, match="baud needed"):
        load_board(p)


def test_boards_cli_lists_front_ends_and_hosts():
    proc = run_nemg("boards", "--json", check=True)
    boards = {b["name"]: b for b in map(json.loads, proc.stdout.splitlines())}
    assert {"nemg-fe1", "ads1299-fe", "rpi4", "rpi5", "jetson-orin-nano"} <= set(boards)
    assert boards["nemg-fe1"]["sample_rate_hz"] == 20000  # the default model's rate


def test_simulate_and_info_cli_over_a_pty():
    sim = subprocess.Popen(
        [sys.executable, "-m", "edge.cli", "frontend", "simulate", "--board", "nemg-fe1",
         "--source", "sine:50", "--duration", str(HANG_GUARD_S)],  # stopped below
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        path = sim.stdout.readline().strip()
        assert path.startswith("/dev/pts/")
        proc = run_nemg("frontend", "info", "--port", path, "--json", check=True)
        info = json.loads(proc.stdout)
        assert info["board_id"] == "nemg-fe1" and info["uv_per_lsb"] == 0.5
    finally:
        sim.terminate()
        sim.wait(timeout=10)
    assert sim.returncode == 0


def test_sources_from_every_importer_format(tmp_path):
    import pyedflib
    import wfdb

    from edge.readers.wav import write_wav

    fs = 10_000  # not the board's rate: the source is resampled to 20 kHz
    uv = 400 * np.sin(2 * np.pi * 100 * np.arange(fs) / fs)
    (tmp_path / "r.csv").write_text("time_s,emg_uV\n" + "\n".join(
        f"{i / fs:.5f},{v:.4f}" for i, v in enumerate(uv)))
    w = pyedflib.EdfWriter(str(tmp_path / "r.edf"), 1, file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setSignalHeaders([{"label": "EMG", "dimension": "uV", "sample_frequency": fs,
                         "physical_max": 1000.0, "physical_min": -1000.0,
                         "digital_max": 32767, "digital_min": -32768}])
    w.writeSamples([uv])
    w.close()
    wfdb.wrsamp("r", fs=fs, units=["uV"], sig_name=["emg"], p_signal=uv[:, None], fmt=["16"],
                adc_gain=[20.0], baseline=[0], write_dir=str(tmp_path))
    write_wav(tmp_path / "r.wav", np.round(uv / 0.5).astype(np.int16), fs, 0.5)
    for name in ("r.csv", "r.edf", "r.hea", "r.wav"):
        src = open_source(str(tmp_path / name), FE1)
        assert len(src) == 2 * fs, name
        mid = src.read(5000, 4000).astype(float) * FE1.uv_per_lsb  # away from filter edges
        expected = 400 * np.sin(2 * np.pi * 100 * (5000 + np.arange(4000)) / (2 * fs))
        assert np.abs(mid - expected).max() < 3.0, name


def test_cli_errors_are_one_line():
    assert_one_line_error(run_nemg("frontend", "info", "--port", "/dev/nope"), "/dev/nope")
    assert_one_line_error(run_nemg("frontend", "simulate", "--board", "nope"), "unknown board")
    assert_one_line_error(run_nemg("frontend", "simulate", "--source", "/tmp/none.wav"),
                          "no such file")
    assert_one_line_error(run_nemg("frontend", "simulate", "--drop-rate", "2"), "drop-rate")


# ---- failures that once printed nothing ----------------------------------------------------
@pytest.mark.parametrize("noise", [False, True])
def test_a_device_that_acks_start_then_goes_quiet_or_noisy_is_reported(noise):
    faults = Faults(mute_after_frames=20, noise=noise)
    with VirtualFrontEnd(FE1, ramp_source(), fast=True, faults=faults) as vfe, \
            SerialLink(vfe.path) as link:
        client = FrontEndClient(link, reconnect=False, stall_s=0.3)
        client.start()
        sent = 20 * FE1.samples_per_frame  # all the device sends before it falls silent
        got, stall = 0, None
        for ev in client.events(duration_s=HANG_GUARD_S):
            if isinstance(ev, Samples):
                got += ev.values.size
            elif isinstance(ev, LinkEvent) and ev.state == "stalled" and got >= sent:
                stall = ev  # the silence after the last frame, not a pause before it
                break
    assert got == sent
    assert stall is not None, f"hang guard: no stall reported in {HANG_GUARD_S} s"
    assert "no samples for" in stall.detail
    if noise:
        assert client.stats.bytes_skipped > 0 and "skipped as noise" in stall.detail


def test_frames_with_a_wrong_sample_count_are_counted_and_warned_about_rarely(caplog):
    from wire.protocol import SAMPLES_HEADER, FrameType, encode_frame

    link = SerialLink("loop://", read_timeout=0.01)  # what we write comes back
    link.open()
    client = FrontEndClient(link, reconnect=False)
    bad = SAMPLES_HEADER.pack(0, 0, 2, 200) + bytes(100)  # says 200 samples, holds 50
    for seq in range(500):
        link.write(encode_frame(FrameType.SAMPLES, seq, bad))
        client._pump()
    assert client.protocol_errors == 500
    warnings = [r for r in caplog.records if "bad SAMPLES payload" in r.getMessage()]
    assert 1 <= len(warnings) <= 4  # was one per frame (~450 a second from a real device)


def test_replies_nobody_asked_for_stay_bounded():
    """A device that chatters (PONG after PONG while streaming) cannot fill the host's
    memory: unread replies are capped, and a request still gets its own."""
    from wire.link import MAX_UNREAD_REPLIES
    from wire.protocol import FrameType, encode_frame

    link = SerialLink("loop://", read_timeout=0.01)
    link.open()
    client = FrontEndClient(link, reconnect=False)
    for seq in range(5000):
        link.write(encode_frame(FrameType.PONG, seq & 0xFFFF, b"chatter"))
        if seq % 50 == 0:
            client._pump()
    client._pump()
    assert len(client._replies) == MAX_UNREAD_REPLIES


def test_frames_of_one_read_that_continue_each_other_arrive_as_one_block():
    """Per read, not per 10 ms frame: contiguous frames with the same flags are one
    Samples; a change of flags or a loss still splits them, and nothing is lost."""
    from wire.protocol import FrameType, encode_frame, encode_samples

    link = SerialLink("loop://", read_timeout=0.01)
    link.open()
    client = FrontEndClient(link, reconnect=False)
    x = np.arange(2000) - 1000
    frames = [(0, x[:200], 0), (200, x[200:400], 0), (400, x[400:600], 1),
              (600, x[600:800], 1), (1000, x[1000:1200], 1)]  # 800..999 lost
    link.write(b"".join(encode_frame(FrameType.SAMPLES, i, encode_samples(first, v, flags))
                        for i, (first, v, flags) in enumerate(frames)))
    client._pump()
    got = list(client._pending)
    kinds = [(type(e).__name__, e.index) for e in got]
    assert kinds == [("Samples", 0), ("Samples", 400), ("Gap", 800), ("Samples", 1000)]
    np.testing.assert_array_equal(got[0].values, x[:400])
    np.testing.assert_array_equal(got[1].values, x[400:800])
    assert got[2].lost == 200 and int(got[1].flags) == 1


def test_an_implausible_index_jump_is_a_restart_not_a_day_of_lost_samples():
    from wire.protocol import Frame as F
    from wire.protocol import FrameType, SampleAssembler, encode_samples

    a = SampleAssembler()
    a.push(F(FrameType.SAMPLES, 0, encode_samples(0, np.zeros(200))))
    out = a.push(F(FrameType.SAMPLES, 1, encode_samples(200 + (1 << 31) - 1, np.zeros(200))))
    gap = next(e for e in out if isinstance(e, Gap))
    assert gap.lost is None and "implausible" in gap.reason and a.samples_lost == 0
    out = a.push(F(FrameType.SAMPLES, 2, encode_samples((1 << 31) + 399, np.zeros(200))))
    assert not any(isinstance(e, Gap) for e in out)  # exact losses go on being exact
    out = a.push(F(FrameType.SAMPLES, 3, encode_samples((1 << 31) + 1199, np.zeros(200))))
    assert next(e for e in out if isinstance(e, Gap)).lost == 600


def test_after_a_reconnect_another_device_is_refused(tmp_path):
    import dataclasses

    from wire.link import WrongDevice

    stable = tmp_path / "ttyNEMG"  # what udev would re-point
    first = VirtualFrontEnd(FE1, ramp_source(), fast=True)
    other = VirtualFrontEnd(dataclasses.replace(FE1, device_id=99), ramp_source(), fast=True)
    first.start()
    other.start()
    try:
        stable.symlink_to(first.path)
        link = SerialLink(str(stable))
        link.open()
        client = FrontEndClient(link, backoff_initial_s=0.02, give_up_after_s=HANG_GUARD_S)
        client.start()
        collect(client, 1000)
        stable.unlink()
        stable.symlink_to(other.path)
        first.stop()  # unplugged; a different box is on the port now
        with pytest.raises(WrongDevice, match=r"another device answers .*#99"):
            collect(client, 10**9)
    finally:
        first.stop()
        other.stop()


def test_plain_mode_prints_a_pulled_cable(tmp_path):
    import io

    from edge.live import LiveSession
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified
    from edge.screen import PlainView

    out = io.StringIO()
    faults = Faults(disconnect_after_frames=500, disconnect_frames=30)
    with VirtualFrontEnd(FE1, open_source("scenario:exam", FE1, loop=False), fast=True,
                         faults=faults, link_path=tmp_path / "ttyP") as vfe:
        link = SerialLink(str(tmp_path / "ttyP"))
        link.open()
        client = FrontEndClient(link, backoff_initial_s=0.02)
        session = LiveSession(Pipeline(load_verified()), client, FE1, view=PlainView(out))
        session.run(until=lambda: vfe.finished.is_set() or client.reconnects > 0)
    text = out.getvalue()
    assert "LINK disconnected" in text and "LINK reconnected" in text
