"""The last stretch of a stream's int16 samples, for checks that look further back than a
window (the rest check, the discharge recogniser). Keyed to stream indices: what a check
sees depends only on the stream, never on block sizes or time."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class StretchBuffer:
    """Fed contiguous samples (:meth:`push`), asked for the stretch ending at a stream
    index (:meth:`stretch_ending`), trimmed after a push's windows (:meth:`trim`)."""

    stretch: int
    """The longest stretch asked for, samples."""
    behind: int = 0
    """How far before the latest window's end a stretch may end, samples (kept too)."""
    segment_start: int = 0
    """Stream index where the current segment began."""
    _tail: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int16))
    _tail_start: int = 0

    def reset(self, start: int) -> None:
        """A new segment begins at stream index ``start`` (nothing before a gap counts)."""
        self._tail, self._tail_start = np.zeros(0, np.int16), start
        self.segment_start = start

    def push(self, samples: np.ndarray, start: int) -> None:
        """Contiguous int16 ``samples`` from stream index ``start``, held until
        :meth:`trim` (the windows decided on them may end anywhere in them)."""
        if start != self._tail_start + self._tail.size:
            self.reset(start)
        self._tail = np.concatenate([self._tail, samples]) if self._tail.size else samples

    def trim(self) -> None:
        """Keep only the segment's last stretch (after a push's windows)."""
        drop = self._tail.size - self.stretch - self.behind
        if drop > 0:
            self._tail = self._tail[drop:].copy()
            self._tail_start += drop

    def stretch_ending(self, end: int, shortest: int) -> np.ndarray | None:
        """The samples of the segment's stretch (at most :attr:`stretch`) ending at stream
        index ``end``; None when fewer than ``shortest`` of them are here."""
        a = max(self._tail_start, end - self.stretch)
        if end > self._tail_start + self._tail.size or end - a < shortest:
            return None
        return self._tail[a - self._tail_start: end - self._tail_start]


class KeepsStretch:
    """A check fed the stream like a :class:`StretchBuffer` (kept in ``_buffer``): the rest
    check and the discharge recogniser."""

    _buffer: StretchBuffer

    def reset(self, start: int) -> None:
        """A new segment begins at stream index ``start`` (nothing before a gap counts)."""
        self._buffer.reset(start)

    def push(self, samples: np.ndarray, start: int) -> None:
        """Contiguous int16 ``samples`` from stream index ``start``."""
        self._buffer.push(samples, start)

    def trim(self) -> None:
        """Keep only the segment's last stretch (after a push's windows)."""
        self._buffer.trim()
