"""What a live session shows people on a terminal: one line per event for pipes and logs
(:class:`PlainView`), or a live 80×24 screen (:class:`TerminalView`). Both are sinks of
:class:`edge.live.LiveSession`; the bedside page is :mod:`edge.web.hub`'s."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO

import numpy as np

from edge.labels import PATHOLOGICAL
from edge.live import LiveSession, SessionState, Sink
from edge.muap_live import MuapResult
from edge.pipeline import Event, WindowResult
from wire.link import LinkEvent


def muap_line(r: MuapResult) -> str:
    """A MUAP site summary in one line."""
    s = r.summary
    flagged = sum(s.get("units_flagged", {}).values())
    aside = f" ({flagged} more flagged, not measured)" if flagged else ""
    if not s.get("units"):
        return f"MUAP: no steady unit measured{aside} → {r.finding}"
    return (f"MUAP: {s['units']} units{aside} · {s['mean_amplitude_uv']:.0f} µV · "
            f"{s['mean_duration_ms']:.1f} ms · {s['polyphasic_share']:.0%} polyphasic · "
            f"{s['mean_firing_rate_hz']:.0f} Hz → {r.finding}")


def _nice(label: str) -> str:
    return label.replace("_", " ")


def model_call(w: WindowResult, labels: list[str]) -> str:
    """The model's own call on a window (its top class): what the recogniser's evidence
    was weighed against."""
    return labels[int(np.argmax(w.probabilities))]


def evidence_verdict(w: WindowResult, labels: list[str]) -> str | None:
    """How the discharge recogniser's evidence entered a window's label, in a few words
    (:meth:`edge.recogniser.Evidence.fuse`); None: the window has no evidence."""
    if w.evidence is None:
        return None
    call = model_call(w, labels)
    if w.criterion == "contradicts":
        return f"withheld: {_nice(call)} not backed"
    if w.criterion == "names":
        return f"named by its trains: {_nice(w.label)} (the model: {_nice(call)})"
    if w.criterion == "agrees":
        return f"backed: {_nice(call)}"
    if w.criterion == "silent" and call in PATHOLOGICAL:
        return f"no train backs {_nice(call)}"
    return "evidence"  # silent on a call no train could back, or not weighed (unfamiliar)


def evidence_line(w: WindowResult, labels: list[str]) -> str | None:
    """The verdict and what the trains were: one line for a person (None: no evidence)."""
    verdict = evidence_verdict(w, labels)
    return None if verdict is None else f"{verdict} — {w.evidence.reason()}"


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, an ellipsis where it was cut."""
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


PLAIN_WIDTH = 80
"""Columns of the plain view's lines (a serial console, a journal)."""


class PlainView(Sink):
    """For pipes and logs: one line per event."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self.out = out

    def event(self, ev: Event, logged_id: int | None) -> None:
        tag = f"#{logged_id}" if logged_id is not None else ""
        if ev.kind == "gap":
            print(f"{ev.start_s:8.2f} s  GAP {ev.detail} {tag}", file=self.out, flush=True)
        elif ev.kind == "muap":
            print(f"{ev.start_s:8.2f}–{ev.end_s:.2f} s  MUAP {ev.label} {tag}", file=self.out,
                  flush=True)
        else:
            mark = " [pathological]" if ev.label in PATHOLOGICAL else ""
            print(f"{ev.start_s:8.2f}–{ev.end_s:.2f} s  {ev.label:<20} {ev.confidence:.2f}"
                  f"{mark} {tag}", file=self.out, flush=True)
            for part in ev.detail.split("; evidence: ") if ev.detail else ():
                # the caveat and the evidence, each on its own line of an 80-column
                # terminal (the event log keeps them whole)
                text = part if part.startswith(("caveat", "evidence")) else f"evidence: {part}"
                print(shorten(f"          {text}", PLAIN_WIDTH), file=self.out, flush=True)

    def link(self, ev: LinkEvent) -> None:
        """A link change, so a pipe or journal shows a pulled cable or a hung device."""
        print(f"          LINK {ev.state}: {ev.detail}", file=self.out, flush=True)


class TerminalView(PlainView):
    """A live screen for an 80×24 terminal, redrawn at most 5 times a second."""

    WIDTH, HEIGHT, BAR = 80, 23, 30

    def __init__(self, out: TextIO = sys.stdout) -> None:
        super().__init__(out)
        self._last_draw = 0.0
        self.out.write("\x1b[?25l\x1b[2J")  # hide cursor, clear

    def event(self, ev: Event, logged_id: int | None) -> None:
        pass  # shown in the "recent events" panel

    def link(self, ev: LinkEvent) -> None:
        pass  # shown in the link line

    def update(self, state: SessionState, session: LiveSession, *, force: bool = False
               ) -> None:
        now = time.monotonic()
        if now - self._last_draw < 0.2 and not force:
            return
        self._last_draw = now
        lines = screen_lines(session, state, self.WIDTH, self.BAR, self.HEIGHT)[: self.HEIGHT]
        lines += [""] * (self.HEIGHT - len(lines))  # a shorter screen clears what was below
        self.out.write("\x1b[H" + "".join(f"{ln[:self.WIDTH]}\x1b[K\n" for ln in lines))
        self.out.flush()

    def close(self) -> None:
        self.out.write("\x1b[?25h\n")
        self.out.flush()


def screen_lines(session: LiveSession, s: SessionState, width: int, bar: int,
                 height: int = TerminalView.HEIGHT) -> list[str]:
    """The live screen's lines: model and board, the finding, the evidence behind the last
    window (a bundle with a discharge recogniser) and the bars, recent events, the link,
    and why the finding is uncertain or carries a caveat. The recent events get the rows
    the others leave (2 to 4), so the notes at the bottom stay on a ``height``-line
    screen."""
    p, c = session.pipeline, session.client
    rate = s.rate_sps()
    head = f" nemg-edge · {p.bundle.name} {p.bundle.version} · {session.board.name}"
    lines = [head.ljust(width, " "), f"  {muap_line(s.muap)}" if s.muap else ""]
    shown = session.shown_decision(s)
    if shown is None:
        lines += ["  listening…", ""]
        probs = np.zeros(len(p.labels))
    else:
        lab, conf, probs = shown
        tag = "  PATHOLOGICAL" if lab in PATHOLOGICAL else ""
        nxt = p.pending()
        lines += [f"  NOW: {lab.upper().replace('_', ' ')}{tag}",
                  f"  at {s.last.end_s:7.1f} s · window {s.last.index} · "
                  f"confidence {conf:.2f}"
                  + (f" · changing? {nxt[0]} ({nxt[1]}/{p.min_event_windows})"
                     if nxt else "")]
    if p.recogniser is not None:  # one row always, so the rows below do not jump
        line = evidence_line(s.last, list(p.labels)) if shown is not None else None
        unlooked = ("  evidence: too little signal yet"
                    if model_call(s.last, list(p.labels)) in PATHOLOGICAL
                    else "  evidence: not needed (the recogniser looks at calls of "
                         "spontaneous activity)") if shown is not None else ""
        lines.append(shorten(f"  {line}", width) if line else shorten(unlooked, width))
    for lab, pr in zip(p.labels, probs, strict=True):
        n = round(pr * bar)
        lines.append(f"  {lab:<20} {'█' * n}{'·' * (bar - n)} {pr:4.2f}")
    flags = s.flag_names()
    tail = [f"  link {s.link_note} · {rate / 1000:5.1f} kS/s · CRC err "
            f"{c.stats.crc_errors} · gaps {p.gaps} ({p.samples_lost} lost) · "
            f"{' '.join(flags) or 'ok'}"]
    why = session.uncertain_reason(s)
    if why:
        tail.append(f"  (uncertain: {why})")
    cav = session.caveat(s)
    if cav:
        tail.append(f"  caveat: {cav}")
    rows = max(2, min(4, height - len(lines) - 1 - len(tail)))
    lines.append("  recent:")
    for ev in list(s.events)[-rows:]:
        what = (ev.detail if ev.kind == "gap" else f"MUAP: {ev.label}" if ev.kind == "muap"
                else f"{ev.label} ({ev.confidence:.2f})")
        lines.append(f"   {ev.start_s:7.1f}–{ev.end_s:7.1f} s  {what}")
    lines += [""] * (rows - min(rows, len(s.events)))
    return lines + tail


def use_terminal_view(stream: TextIO) -> bool:
    """Whether ``stream`` is a terminal that can show the live screen."""
    return stream.isatty() and os.environ.get("TERM", "dumb") != "dumb"


def make_view(stream: TextIO = sys.stdout, *, plain: bool = False) -> PlainView:
    """The live screen on a terminal (unless ``plain``), else one line per event."""
    return TerminalView(stream) if (use_terminal_view(stream) and not plain) \
        else PlainView(stream)
