"""A recording file through the live pipeline: window results and the file's finding.

The decision level's offline entry (``nemg classify`` prints what it returns): the file is
acquired as the box acquires a board (:func:`edge.acquire.files.open_file`), pushed through
a :class:`~edge.pipeline.Pipeline` block by block, and each window's result handed on as it
is decided, so an hours-long file needs bounded memory.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

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


def write_result(path: Path, pipe_factory: Callable[[], Pipeline], args: Any,
                 out: TextIO) -> None:
    """One file's output as ``nemg classify`` prints it (``args``: its json, channel,
    scale_uv and evidence_everywhere options), spooled: nothing reaches ``out`` unless
    the whole file worked."""

    with tempfile.SpooledTemporaryFile(max_size=4 << 20, mode="w+") as spool:
        count = [0]

        def as_json(w: dict) -> None:
            spool.write(("" if not count[0] else ", ") + json.dumps(w))
            count[0] += 1

        def as_text(w: dict) -> None:
            spool.write(f"  {w['start_s']:7.2f}–{w['end_s']:7.2f} s  {w['label']:<20} "
                        f"{w['confidence']:.2f}\n")
            count[0] += 1

        res = classify_file(pipe_factory, path, args.channel, args.scale_uv,
                            on_window=as_json if args.json else as_text,
                            evidence_always=args.evidence_everywhere)
        spool.seek(0)
        head = {k: v for k, v in res.items() if k not in ("windows", "summary")}
        if args.json:
            out.write(json.dumps(head)[:-1] + ', "windows": [')
            shutil.copyfileobj(spool, out)
            out.write(f'], "summary": {json.dumps(res["summary"])}}}\n')
        else:
            s = res["summary"]
            out.write(f"{res['file']}: {s['label']} ({s['confidence']:.2f})"
                      f"{'  PATHOLOGICAL' if s['pathological'] else ''} — "
                      f"{res['duration_s']:.1f} s, {count[0]} windows\n")
            if "caveat" in s:
                out.write(f"  caveat: {s['caveat']['text']}\n")
            shutil.copyfileobj(spool, out)
        out.flush()


def classify_one(path: Path, shared: tuple[Any, Any]) -> tuple[str, Any]:
    """One file's whole output (an executor's task, :mod:`nemg_common.executor`; ``shared``
    is (bundle, options)): ("ok", text) or ("error", the exception)."""
    bundle, args = shared
    out = io.StringIO()
    try:
        write_result(path, lambda: Pipeline(bundle), args, out)
    except Exception as exc:  # reported by the caller, naming the file
        return "error", exc
    return "ok", out.getvalue()
