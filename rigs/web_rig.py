"""A bedside page on a virtual front end, and a browser to look at it: what the browser
tests and ``nemg bench web`` run. Nothing here is needed on the box.

:class:`LiveRig` plays a recording from the virtual front end over a pty into a live
session served on a free loopback port. :func:`browser` starts Debian's Chromium headless
through Playwright (``pip install playwright``; its own browser download is never used),
and :func:`offline_page` opens the page with every request to anything but the box refused
and recorded.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edge.errors import ConfigError
from edge.paths import find_chromium

CHROMIUM_ARGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=user-gesture-required")
"""Headless, and no connection of Chromium's own (there is no network on the box)."""


def browser_missing() -> str | None:
    """Why the browser tests cannot run here (None: they can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (make venv-dev installs it)"
    if find_chromium() is None:
        return ("no Chromium (apt-get install chromium, or set NEMG_CHROMIUM); .ci/run "
                "installs it")
    return None


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    why = browser_missing()
    if why:
        raise ConfigError(f"the browser is missing: {why}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=find_chromium(), args=list(CHROMIUM_ARGS))
        try:
            yield b
        finally:
            b.close()


def offline_page(b: Any, url: str, *, width: int, height: int) -> tuple[Any, list[str]]:
    """(a page on ``url``, the foreign requests it tried): anything not to the box's own
    origin is aborted, as on a box with no network."""
    origin = url.split("/", 3)[:3]
    origin = "/".join(origin)
    foreign: list[str] = []
    # bypass_csp: Playwright's waits evaluate strings, which the page's own policy forbids
    context = b.new_context(viewport={"width": width, "height": height}, bypass_csp=True)

    def gate(route: Any) -> None:
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            foreign.append(route.request.url)
            route.abort()

    context.route("**/*", gate)
    page = context.new_page()
    page.goto(url)
    return page, foreign


class LiveRig:
    """A virtual front end playing ``wav`` (in real time, or ``fast``) into a live session
    with the shipped model, its page served on a free port, its events logged in
    ``tmp/events.db``. Use as a context manager; :meth:`wait` returns the summary."""

    def __init__(self, wav: Path, tmp: Path, *, fast: bool = False,
                 model: Path | None = None, faults: Any = None,
                 muap_window_s: float | None = None) -> None:
        """``faults``: a :class:`wire.virtual.Faults` for the front end;
        ``muap_window_s``: run the live MUAP analysis with this window (None: off)."""
        self.wav, self.tmp, self.fast, self.model = wav, tmp, fast, model
        self.faults = faults
        self.muap_window_s = muap_window_s
        self.summary: dict | None = None
        self.session_cpu_s = 0.0
        """Thread CPU time of the live session (front end to events, and feeding the hub)."""
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> LiveRig:
        from edge.eventlog import EventLog
        from edge.live import LiveSession
        from edge.pipeline import Pipeline
        from edge.runtime import load_verified
        from edge.screen import PlainView
        from edge.web.server import start_web
        from rigs.sources import open_source
        from wire.boards import get_frontend
        from wire.link import FrontEndClient, SerialLink
        from wire.virtual import VirtualFrontEnd

        board = get_frontend("nemg-fe1")
        source = open_source(str(self.wav), board, loop=False)
        self.total = len(source)
        self.log_path = self.tmp / "events.db"
        self.out = io.StringIO()
        self.screen, view = start_web("127.0.0.1:0", token=None, log_path=self.log_path,
                                      inner=PlainView(self.out))
        self.hub = self.screen.hub
        self.vfe = VirtualFrontEnd(board, source, fast=self.fast, faults=self.faults,
                                   link_path=self.tmp / "ttyWEB")
        self.vfe.start()
        link = SerialLink(self.vfe.path, baudrate=board.baudrate)
        link.open()
        pipeline = Pipeline(load_verified(self.model))
        muap = None
        if self.muap_window_s is not None:
            from edge.muap_live import MuapMonitor

            muap = MuapMonitor(pipeline.fs, pipeline.mel.uv_per_lsb,
                               window_s=self.muap_window_s)

        def session() -> LiveSession:  # built in its thread: SQLite connections stay in theirs
            return LiveSession(pipeline, FrontEndClient(link, reconnect=False), board,
                               log=EventLog(self.log_path), view=view, source="web-rig",
                               muap=muap)

        self._thread = threading.Thread(target=self._run, args=(session,), name="live-rig",
                                        daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait(30)
        return self

    @property
    def url(self) -> str:
        return self.screen.url

    def _finished(self) -> bool:
        """Played to its end and every sample sent accounted for (heard, or lost in a
        gap a later frame announced)."""
        heard = self.session.state.samples + self.session.pipeline.samples_lost
        return (self.vfe.finished.is_set()
                and heard >= self.vfe.stats.sent_until - self.vfe.source_origin) \
            or self.vfe.error is not None

    def _run(self, make_session) -> None:
        try:
            self.session = make_session()
            self._ready.set()
            t = time.thread_time()
            self.summary = self.session.run(until=self._finished)
            self.session_cpu_s = time.thread_time() - t
        except BaseException as exc:  # reported by wait()
            self.error = exc
        finally:
            self._ready.set()
            with contextlib.suppress(Exception):
                self.session.log.close()

    def wait(self, timeout: float = 120.0) -> dict:
        """The session's summary once the recording has been played."""
        assert self._thread is not None
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the live session did not end within {timeout} s")
        if self.error is not None:
            raise self.error
        assert self.summary is not None
        return self.summary

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.vfe.stop()
        if self._thread is not None:
            self._thread.join(10)
        self.screen.stop()


def demo_excerpt(path: Path, start_s: float, end_s: float):
    """A stretch of the demo examination (rigs/data/demo-exam.wav) written to ``path``:
    (the path, its canonical int16 samples)."""
    import numpy as np

    from edge.readers.wav import read_wav, write_wav
    from rigs.demo import DEMO_WAV

    w = read_wav(DEMO_WAV)
    fs = w.sample_rate_hz
    pcm = np.asarray(w.samples[int(start_s * fs):int(end_s * fs), 0], dtype=np.int16)
    write_wav(path, pcm, fs, 0.5)
    return path, pcm
