"""A front end on the wire -> canonical int16 blocks at the model's rate, and gaps.

The board's ADC values are scaled to the model's canonical int16 by an integer
multiply-shift (exact for the reference front end, whose scale is the canonical one). A
board at another rate than the model's is brought to it by the same resampler ``nemg
classify`` uses (:class:`edge.resample.StreamResampler`), so live and offline stay bit for
bit; no filter spans a gap: what the resampler still owes is flushed before it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from edge.errors import ConfigError
from edge.resample import StreamResampler
from edge.spec import MelConfig
from wire import protocol
from wire.boards import FrontEndProfile
from wire.link import FrontEndClient, LinkEvent
from wire.protocol import Flag


@dataclass(frozen=True)
class BoardScaler:
    """ADC values at the board's µV/LSB -> canonical int16 (saturating)."""

    multiplier: int
    shift: int = 24

    @classmethod
    def between(cls, board_uv_per_lsb: float, model_uv_per_lsb: float) -> BoardScaler:
        """The scaler from a board's µV per LSB to the model's."""
        return cls(round(board_uv_per_lsb / model_uv_per_lsb * (1 << 24)))

    def __call__(self, adc: np.ndarray) -> np.ndarray:
        if self.multiplier == 1 << self.shift:
            return np.clip(adc, -32768, 32767).astype(np.int16)
        v = (adc.astype(np.int64) * self.multiplier + (1 << (self.shift - 1))) >> self.shift
        return np.clip(v, -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class Block:
    """Canonical int16 samples at the model's rate."""

    pcm: np.ndarray
    index: int
    """Model-rate stream index of ``pcm[0]``."""
    received: int
    """Board samples this block was made of (0: what the resampler owed before a gap or
    the end)."""
    flags: Flag = Flag.NONE
    """The front end's status bits for those samples."""


@dataclass(frozen=True)
class Gap:
    """Samples lost on the wire, counted at the model's rate (None: unknown how many)."""

    lost: int | None
    reason: str


BoardItem = Block | Gap | LinkEvent | None
"""What :class:`BoardStream` yields: samples, losses, the link's changes of state, and
None while the link is silent (every 0.1 s: the caller's deadlines still run)."""


class BoardStream:
    """Reads a front end through its wire client: :class:`Block`\\ s at the model's rate,
    explicit :class:`Gap`\\ s, the link's :class:`~wire.link.LinkEvent`\\ s, and None while
    the link is silent."""

    def __init__(self, client: FrontEndClient, board: FrontEndProfile, spec: MelConfig,
                 *, source: str = "") -> None:
        """``spec``: the model's front end (its rate and µV per LSB fix the canonical
        samples); ``source``: how errors name the device (default: its port)."""
        self.client = client
        self.board = board
        self.fs = spec.sample_rate_hz
        self.source = source or client.link.port
        self.scale = BoardScaler.between(board.uv_per_lsb, spec.uv_per_lsb)
        self.resampler: StreamResampler | None = None
        """Brings a board at another rate than the model's to it (None: same rate)."""
        if board.sample_rate_hz != self.fs:
            self.resampler = StreamResampler(board.sample_rate_hz, self.fs)
        self._model_index = 0  # with a resampler: model-rate samples (and losses) so far

    def start(self) -> None:
        """Ask the front end to stream."""
        self.client.start()

    def __iter__(self) -> Iterator[BoardItem]:
        """Everything the front end sends until its stream ends (then what the resampler
        still owed). The device must be the board this stream scales for."""
        self.check_device()
        for ev in self.client.events():
            if isinstance(ev, protocol.Samples):
                pcm, index = self.scale(ev.values), ev.index
                if self.resampler is not None:
                    pcm = self.resampler.push(pcm)
                    index = self._model_index
                    self._model_index += pcm.size
                yield Block(pcm, index, ev.values.size, ev.flags)
            elif isinstance(ev, protocol.Gap):
                tail = self.flush()
                if tail is not None:
                    yield tail
                yield Gap(self._at_model_rate(ev.lost), ev.reason)
            else:  # a change of the link's state, or None: nothing arrived for a while
                yield ev
        tail = self.flush()
        if tail is not None:
            yield tail

    def flush(self) -> Block | None:
        """What the resampler still owes of the samples so far, and a fresh resampler (no
        filter spans a gap). None: nothing owed."""
        if self.resampler is None:
            return None
        tail = self.resampler.flush()
        self.resampler = StreamResampler(self.board.sample_rate_hz, self.fs)
        if not tail.size:
            return None
        block = Block(tail, self._model_index, 0)
        self._model_index += tail.size
        return block

    def _at_model_rate(self, lost: int | None) -> int | None:
        """A loss counted in board samples, in model samples (and on the model's axis)."""
        if lost is None or self.resampler is None:
            return lost
        n = round(lost * self.fs / self.board.sample_rate_hz)
        self._model_index += n
        return n

    def check_device(self) -> None:
        """The device must be the board we scale for: its rate and µV per LSB."""
        dev, b = self.client.device, self.board
        if dev is not None and (dev.sample_rate_hz, dev.nv_per_lsb) != (b.sample_rate_hz,
                                                                       b.nv_per_lsb):
            raise ConfigError(f"{self.source}: the device reports {dev.board_id} at "
                              f"{dev.sample_rate_hz} Hz, {dev.uv_per_lsb:g} µV/LSB, but board "
                              f"{b.name} is {b.sample_rate_hz} Hz, {b.uv_per_lsb:g} µV/LSB "
                              "(choose --board to match)")


def board_stream(client: FrontEndClient, board: FrontEndProfile, spec: MelConfig,
                 *, source: str = "") -> BoardStream:
    """A front end's samples as the model takes them (:class:`BoardStream`)."""
    return BoardStream(client, board, spec, source=source)
