"""Wire protocol, pure: framing, resync, gaps, fuzz. No I/O."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wire.protocol import (
    MAX_PAYLOAD,
    Flag,
    FrameDecoder,
    FrameType,
    Gap,
    InfoReply,
    ProtocolError,
    SampleAssembler,
    Samples,
    decode_info,
    decode_samples,
    encode_frame,
    encode_info,
    encode_samples,
)


def sample_frames(n_frames: int, per: int = 50, bps: int = 2, start: int = 0,
                  skip: frozenset[int] = frozenset()) -> tuple[list[bytes], np.ndarray]:
    rng = np.random.default_rng(n_frames)
    lim = 1 << (8 * bps - 1)
    values = rng.integers(-lim, lim, n_frames * per)
    frames = [encode_frame(FrameType.SAMPLES, k, encode_samples(
        start + k * per, values[k * per:(k + 1) * per], 0, bps))
        for k in range(n_frames) if k not in skip]
    return frames, values


@pytest.mark.parametrize("bps", [2, 3])
def test_samples_round_trip_including_rails(bps):
    lim = 1 << (8 * bps - 1)
    v = np.array([-lim, -1, 0, 1, lim - 1, 12345 % lim, -(12345 % lim)])
    block = decode_samples(encode_samples(7, v, Flag.CLIPPING, bps))
    assert block.first_index == 7 and block.flags == Flag.CLIPPING
    np.testing.assert_array_equal(block.samples, v)


def test_info_round_trip_and_bad_payloads():
    info = InfoReply(42, (1, 2, 3), 24, 16000, 22350, 1, "ads1299-fe")
    assert decode_info(encode_info(info)) == info
    with pytest.raises(ProtocolError):
        decode_info(encode_info(info)[:-2])
    with pytest.raises(ProtocolError, match="does not match"):
        decode_samples(encode_samples(0, np.arange(10), 0, 2)[:-1])
    with pytest.raises(ProtocolError):
        encode_frame(FrameType.PING, 0, bytes(MAX_PAYLOAD + 1))


def test_any_split_of_the_stream_gives_the_same_frames():
    frames, _ = sample_frames(5)
    stream = b"".join(frames)
    for cut in range(1, len(stream)):
        d = FrameDecoder()
        got = d.feed(stream[:cut]) + d.feed(stream[cut:])
        assert [f.seq for f in got] == list(range(5))


def test_crc8_check_value():
    from wire.protocol import crc8

    assert crc8(b"123456789") == 0xF4


def test_truncated_frame_rescans_from_the_byte_after_the_sync_not_after_the_frame():
    frames, _ = sample_frames(20)
    # frame 3 lost its second half on the wire: its claimed length runs into frame 4
    stream = b"".join(frames[:3]) + frames[3][: len(frames[3]) // 2] + b"".join(frames[4:])
    d = FrameDecoder()
    got = d.feed(stream)
    assert [f.seq for f in got] == [0, 1, 2, *range(4, 20)]  # nothing behind it swallowed
    assert d.stats.crc_errors == 1 and d.stats.seq_gaps == 1 and d.stats.frames_lost == 1


def test_corrupted_length_is_rejected_at_once():
    frames, _ = sample_frames(3)
    bad = bytearray(frames[1])
    bad[6:8] = (4000).to_bytes(2, "little")  # claims a 4000-byte payload
    d = FrameDecoder()
    got = d.feed(frames[0] + bytes(bad) + frames[2])  # no more bytes will come
    assert [f.seq for f in got] == [0, 2]
    assert d.stats.bad_headers == 1


def test_sync_bytes_inside_a_payload_and_garbage_between_frames():
    payload = b"\xa5\x5a" * 30
    stream = (b"\x00\xa5\xa5" + encode_frame(FrameType.PONG, 1, payload) + b"\xa5\x5a\x01"
              + encode_frame(FrameType.PONG, 2, payload))
    d = FrameDecoder()
    got = d.feed(stream)
    assert [(f.seq, f.payload) for f in got] == [(1, payload), (2, payload)]
    assert d.stats.resyncs >= 1


def test_assembler_reports_exact_gaps():
    frames, values = sample_frames(10, per=40, skip=frozenset({2, 3, 7}))
    d, a = FrameDecoder(), SampleAssembler()
    events = [e for f in d.feed(b"".join(frames)) for e in a.push(f)]
    gaps = [e for e in events if isinstance(e, Gap)]
    assert [(g.index, g.lost) for g in gaps] == [(80, 80), (280, 40)]
    checked = 0
    for e in events:
        if isinstance(e, Samples):
            np.testing.assert_array_equal(e.values, values[e.index:e.index + e.values.size])
            checked += e.values.size
    assert checked == 10 * 40 - 120  # every sample that was sent, and no other
    assert a.samples_lost == 120 and d.stats.frames_lost == 3


def test_assembler_handles_index_wrap_restart_and_overrun():
    a = SampleAssembler()

    def block(first, n=10, flags=0):
        return encode_frame(FrameType.SAMPLES, 0, encode_samples(first, np.zeros(n), flags))

    d = FrameDecoder()
    ev = [e for raw in (block(2**32 - 10), block(0), block(30), block(5),
                        block(100, flags=Flag.OVERRUN))
          for f in d.feed(raw) for e in a.push(f)]
    gaps = [e for e in ev if isinstance(e, Gap)]
    assert [(g.lost, g.reason) for g in gaps] == [
        (20, "sequence gap"), (None, "stream restart"), (85, "device overrun")]


def test_gap_after_reconnect_is_labelled():
    a, d = SampleAssembler(), FrameDecoder()

    def push(first):
        raw = encode_frame(FrameType.SAMPLES, 0, encode_samples(first, np.zeros(10)))
        return [e for f in d.feed(raw) for e in a.push(f)]

    push(0)
    a.mark_restart("reconnect")
    ev = push(10)  # reconnected without losing a sample: no gap
    assert len(ev) == 1 and isinstance(ev[0], Samples) and ev[0].index == 10
    a.mark_restart("reconnect")
    ev = push(50)
    assert isinstance(ev[0], Gap) and (ev[0].reason, ev[0].lost, ev[0].index) == (
        "reconnect", 30, 20)
    assert push(60)[0].index == 60  # host index stays a true time axis


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000))
def test_fuzz_random_bytes_never_raise(data):
    d = FrameDecoder()
    for i in range(0, len(data), 97):
        d.feed(data[i:i + 97])


@settings(max_examples=200, deadline=None)
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), max_size=20),
       cuts=st.lists(st.integers(1, 400), max_size=10))
def test_fuzz_mutated_streams_deliver_only_sent_frames(flips, cuts):
    frames, _ = sample_frames(12, per=30)
    stream = bytearray(b"".join(frames))
    for pos, bit in flips:
        stream[pos % len(stream)] ^= 1 << bit
    d, a = FrameDecoder(), SampleAssembler()
    got, i = [], 0
    for c in [*cuts, len(stream)]:
        for f in d.feed(bytes(stream[i:i + c])):
            got.append(f)
            a.push(f)
        i += c
    got += d.feed(bytes(stream[i:]))
    sent = {encode_frame(f.type, f.seq, f.payload) for f in got}
    assert sent <= set(frames)  # no corrupted frame is ever delivered
    assert len(got) >= 12 - len(flips)  # each flip costs at most one frame
