"""A recording file through the live pipeline: window results and the file's finding.

The decision level's offline entry (``nemg classify`` prints what it returns): the file is
acquired as the box acquires a board (:func:`edge.acquire.files.open_file`), pushed through
a :class:`~edge.pipeline.Pipeline` block by block, and each window's result handed on as it
is decided, so an hours-long file needs bounded memory.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from edge.acquire.files import open_file
from edge.errors import InputError
from edge.pipeline import Pipeline, WindowResult, WindowTally


def window_dict(w: WindowResult, labels: list[str], fs: int) -> dict[str, Any]:
    """One decided window as ``nemg classify --json`` writes it (``fs``: the stream's
    rate): with the discharge recogniser's ``evidence`` (its trains, no firing times;
    null when the bundle has no recogniser) and the ``criterion`` by which it entered
    the label ('agrees', 'silent', 'contradicts', 'names'; null without evidence)."""
    ev = w.evidence
    return {"start_s": round(w.start_s, 4), "end_s": round(w.end_s, 4),
            "label": w.label, "confidence": round(w.confidence, 4),
            "unfamiliar": w.unfamiliar, "contracting": w.contracting,
            "probabilities": {lab: round(float(p), 4)
                              for lab, p in zip(labels, w.probabilities, strict=True)},
            "evidence": None if ev is None else ev.to_dict(fs),
            "criterion": w.criterion or None}


def classify_file(pipe_factory: Callable[[], Pipeline], path: Path,
                  channel: int | str | None = None, scale_uv: float | None = None,
                  on_window: Callable[[dict], None] | None = None,
                  evidence_always: bool = False) -> dict[str, Any]:
    """Classify one file. Each window's result goes to ``on_window`` as it is decided
    (bounded memory), or, without it, into the returned ``windows`` list. The recogniser
    looks where its evidence can change a label, or at every window with
    ``evidence_always`` (slower; the same labels)."""
    pipe = pipe_factory()
    pipe.evidence_always = evidence_always
    stream = open_file(path, pipe.mel, channel, scale_uv)
    need = pipe.win.samples(pipe.mel)
    if stream.total < need:
        raise InputError(f"{path}: {stream.total / pipe.fs:.3f} s is shorter than one "
                         f"{need / pipe.fs:.1f} s analysis window")
    windows: list[dict] = []
    emit = on_window or windows.append
    tally = WindowTally()  # the finding's figures, not every window
    index = 0
    for block in stream.blocks():
        for w in pipe.push(block, index)[0]:
            tally.add(w)
            emit(window_dict(w, pipe.labels, pipe.fs))
        index += block.size
    pipe.flush()
    b = pipe.bundle
    summary = tally.finding()
    caveat = pipe.caveat()
    if caveat:
        summary["caveat"] = caveat
    return {
        "file": str(path),
        "sample_rate_hz": pipe.fs,
        "duration_s": stream.total / pipe.fs,
        "model": {"name": b.name, "version": b.version, "sha256": b.sha256},
        "input": stream.input,
        "windows": windows,
        "summary": summary,
    }
