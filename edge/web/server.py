"""The bedside page's server: Python's own ``http.server``, nothing to install.

Routes (everything else is 404; no route changes a model, the store or the box):

- ``GET /`` and its assets (``edge/web/static``; no CDN, the page loads offline);
- ``GET /api/stream``: Server-Sent Events, one message per :data:`TICK_S` with the samples,
  feature frames and panel state the page has not seen (:meth:`WebHub.since`);
- ``GET /api/state``: the panel state once;
- ``POST /api/corrections`` ``{"event_id": N, "label": L}`` (``L`` a label, or
  ``"confirm"``): the clinician's judgement, with the stretch's raw samples, into the log;
- ``GET /api/sessions``, ``/api/sessions/N``, ``/api/sessions/N/events.csv``: the review.

Bound to loopback by default. Listening on any other address needs a token (the page is
opened once as ``/?token=…``, which sets a cookie); a request without it gets 401. On
loopback the Host header must name loopback, so a web page elsewhere cannot reach the box
through a rebound DNS name.

Why no aiohttp or Starlette: the page needs one push stream at 20 messages a second and a
rare POST. Server-Sent Events over the standard library do that, so the box's dependencies,
and the wheels it needs on aarch64 and armv7l, stay as they were. ``nemg bench web``
measures what it costs.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import threading
import time
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from edge.errors import ConfigError, NemgError
from edge.eventlog import EventLog
from edge.labels import LABELS
from edge.web import DEFAULT_LISTEN
from edge.web.hub import WebHub

TICK_S = 0.05
"""The stream's message interval: 20 updates a second, ≤ 50 ms of batching."""
KEEPALIVE_S = 10.0
MAX_BODY = 4096
MIN_TOKEN = 16
MAX_STREAMS = 8
"""Pages streaming at once (each holds a thread); one more is told to wait."""
CONFIRM = "confirm"
ASSETS = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/app.css": ("app.css", "text/css; charset=utf-8")}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                               "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


MAX_ID = (1 << 63) - 1
"""The largest event or session id there can be (SQLite's integers): a larger one in a
request is answered as malformed or missing, never handed to the database."""


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT``, ``HOST`` or ``[v6]:PORT`` → (host, port)."""
    dh, dp = DEFAULT_LISTEN.rsplit(":", 1)
    host, port = text, dp
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest.lstrip(":") or dp
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        p = int(port)
        if not 0 <= p < 65536:
            raise ValueError
    except ValueError:
        raise ConfigError(f"--web {text}: the port must be a number 0–65535") from None
    return host or dh, p


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token(host: str, token: str | None) -> str | None:
    """The token the server will demand (None on loopback without one)."""
    if token is not None and len(token) < MIN_TOKEN:
        raise ConfigError(f"the web token must have at least {MIN_TOKEN} characters")
    if token is None and not is_loopback(host):
        raise ConfigError(f"--web {host} listens on the network: give --web-token (at least "
                          f"{MIN_TOKEN} characters) or set NEMG_WEB_TOKEN, or listen on "
                          "127.0.0.1")
    return token


class WebScreen:
    """Serve ``hub`` to pages; ``log_path``: the event log for corrections and review."""

    def __init__(self, hub: WebHub, *, listen: str = DEFAULT_LISTEN,
                 log_path: Path | None = None, token: str | None = None) -> None:
        self.hub = hub
        self.host, port = parse_listen(listen)
        self.token = check_token(self.host, token)
        self.log_path = log_path
        self.cpu_s = 0.0
        """Thread CPU time of the stream threads (``nemg bench web``)."""
        self.stopping = threading.Event()
        self._cpu_lock = threading.Lock()
        self.streams = threading.BoundedSemaphore(MAX_STREAMS)
        try:
            self.httpd = _Server((self.host, port), _Handler)
        except OSError as exc:
            raise ConfigError(f"--web {listen}: cannot listen ({exc.strerror or exc})") \
                from None
        self.httpd.screen = self
        self.port = self.httpd.server_address[1]
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"

    def start(self) -> str:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="nemg-web",
                                        kwargs={"poll_interval": 0.2}, daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WebScreen:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add_cpu(self, seconds: float) -> None:
        with self._cpu_lock:
            self.cpu_s += seconds

    # ---- what the routes do --------------------------------------------------------------------
    def open_log(self) -> EventLog:
        if self.log_path is None or not self.log_path.is_file():
            raise _HttpError(HTTPStatus.NOT_FOUND, "this session is not recorded "
                                                   "(no event log)")
        return EventLog(self.log_path)

    def correct(self, body: dict[str, Any]) -> dict[str, Any]:
        event_id, label = body.get("event_id"), body.get("label")
        if not isinstance(event_id, int) or isinstance(event_id, bool) or \
                not 0 < event_id <= MAX_ID or \
                not isinstance(label, str) or (label != CONFIRM and label not in LABELS):
            raise _HttpError(HTTPStatus.BAD_REQUEST,
                             "need {\"event_id\": N, \"label\": a label or \"confirm\"}")
        log = self.open_log()
        try:
            try:
                ev = log.event(event_id)
            except NemgError as exc:
                raise _HttpError(HTTPStatus.NOT_FOUND, str(exc)) from None
            # the stretch's samples, if it is this session's and still held
            held = self.hub.held(ev["start_sample"], ev["end_sample"]) \
                if ev["session_id"] == self.hub.session_id else None
            cid = log.correct(event_id, ev["label"] if label == CONFIRM else label, held=held,
                              sample_rate_hz=self.hub.fs or 0,
                              uv_per_lsb=float(self.hub.state.get("uv_per_lsb") or 0.0))
            return {"id": cid, "event_id": event_id, "samples_saved": held is not None,
                    "seconds_saved": 0.0 if held is None else held.samples.size / self.hub.fs}
        except NemgError as exc:
            raise _HttpError(HTTPStatus.BAD_REQUEST, str(exc)) from None
        finally:
            log.close()

    def sessions(self) -> list[dict[str, Any]]:
        log = self.open_log()
        try:
            out = []
            for s in reversed(log.sessions()):
                summary = json.loads(s.pop("summary") or "{}")
                s["finding"] = (summary.get("finding") or {}).get("label")
                s["signal_seconds"] = summary.get("signal_seconds")
                s["corrections"] = len(log.corrections(s["id"]))
                out.append(s)
            return out
        finally:
            log.close()

    def session(self, session_id: int) -> dict[str, Any]:
        log = self.open_log()
        try:
            s = log.session(session_id)
            s["summary"] = json.loads(s["summary"] or "null")
            return {"session": s, "events": log.events(session_id),
                    "corrections": log.corrections(session_id)}
        except NemgError as exc:
            raise _HttpError(HTTPStatus.NOT_FOUND, str(exc)) from None
        finally:
            log.close()

    def events_csv(self, session_id: int) -> str:
        log = self.open_log()
        try:
            buf = io.StringIO()
            log.export_csv(session_id, buf)
            return buf.getvalue()
        except NemgError as exc:
            raise _HttpError(HTTPStatus.NOT_FOUND, str(exc)) from None
        finally:
            log.close()


class _HttpError(Exception):
    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    screen: WebScreen

    def server_bind(self) -> None:
        if ":" in self.server_address[0]:
            import socket

            self.address_family = socket.AF_INET6
            self.socket = socket.socket(self.address_family, self.socket_type)
        super().server_bind()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "nemg-edge"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the box's journal is for findings, not page loads

    # ---- plumbing ----------------------------------------------------------------------------
    @property
    def screen(self) -> WebScreen:
        return self.server.screen

    def _send(self, status: int, body: bytes, ctype: str,
              extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**SECURITY_HEADERS, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200) -> None:
        self._send(status, json.dumps(obj, default=_jsonable).encode(),
                   "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json({"error": message}, status)

    def _refused(self) -> tuple[_HttpError | None, dict[str, str]]:
        """Host and token checks: (why the request is refused or None, headers to set)."""
        s = self.screen
        if s.token is None:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            if is_loopback(host):
                return None, {}
            return _HttpError(HTTPStatus.FORBIDDEN, "this page answers requests for this box "
                                                    "only (Host: 127.0.0.1 or localhost)"), {}
        url = urlsplit(self.path)
        given = parse_qs(url.query).get("token", [None])[0]
        if given is None:
            cookie = SimpleCookie(self.headers.get("Cookie") or "")
            given = cookie["nemg_token"].value if "nemg_token" in cookie else None
        given = given or self.headers.get("X-Nemg-Token")
        if given is None or not hmac.compare_digest(given.encode(), s.token.encode()):
            return _HttpError(HTTPStatus.UNAUTHORIZED, "this box's page needs its token "
                                                       "(open it once as /?token=…)"), {}
        cookie = f"nemg_token={s.token}; HttpOnly; SameSite=Strict; Path=/"
        return None, ({"Set-Cookie": cookie} if "token=" in url.query else {})

    # ---- routes ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        try:
            refused, extra = self._refused()
            if refused is not None:
                raise refused
            path = urlsplit(self.path).path
            if path in ASSETS:
                name, ctype = ASSETS[path]
                body = resources.files("edge.web").joinpath("static", name).read_bytes()
                self._send(200, body, ctype, extra)
            elif path == "/api/stream":
                if not self.screen.streams.acquire(blocking=False):
                    raise _HttpError(HTTPStatus.SERVICE_UNAVAILABLE,
                                     f"{MAX_STREAMS} pages are already watching this box")
                try:
                    self._stream()
                finally:
                    self.screen.streams.release()
            elif path == "/api/state":
                self._json(self.screen.hub.state)
            elif path == "/api/sessions":
                self._json(self.screen.sessions())
            elif path.startswith("/api/sessions/"):
                rest = path[len("/api/sessions/"):]
                sid, _, tail = rest.partition("/")
                if not sid.isdigit() or len(sid) > len(str(MAX_ID)) or int(sid) > MAX_ID \
                        or tail not in ("", "events.csv"):
                    raise _HttpError(HTTPStatus.NOT_FOUND, "no such page")
                if tail:
                    self._send(200, self.screen.events_csv(int(sid)).encode(),
                               "text/csv; charset=utf-8",
                               {"Content-Disposition":
                                f'attachment; filename="nemg-session-{sid}.csv"'})
                else:
                    self._json(self.screen.session(int(sid)))
            else:
                raise _HttpError(HTTPStatus.NOT_FOUND, "no such page")
        except _HttpError as exc:
            self._error(exc.status, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def do_POST(self) -> None:
        try:
            refused, _ = self._refused()
            if refused is not None:
                raise refused
            origin = self.headers.get("Origin")
            if origin is not None and urlsplit(origin).netloc != self.headers.get("Host"):
                raise _HttpError(HTTPStatus.FORBIDDEN, "a page of another site")
            if urlsplit(self.path).path != "/api/corrections":
                raise _HttpError(HTTPStatus.NOT_FOUND, "no such page")
            n = int(self.headers.get("Content-Length") or -1)
            if not 0 < n <= MAX_BODY:
                raise _HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if n > MAX_BODY else
                                 HTTPStatus.LENGTH_REQUIRED, f"a body of 1–{MAX_BODY} bytes")
            if "application/json" not in (self.headers.get("Content-Type") or ""):
                raise _HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "JSON only")
            try:
                body = json.loads(self.rfile.read(n))
            except (ValueError, UnicodeDecodeError):
                raise _HttpError(HTTPStatus.BAD_REQUEST, "not JSON") from None
            if not isinstance(body, dict):
                raise _HttpError(HTTPStatus.BAD_REQUEST, "not a JSON object")
            self._json(self.screen.correct(body), 201)
        except _HttpError as exc:
            self._error(exc.status, str(exc))
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _stream(self) -> None:
        s = self.screen
        hub = s.hub
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        self.end_headers()
        seq, fseq = hub.latest_seq()
        version, quiet = -1, time.monotonic()
        next_tick = time.monotonic()
        while not s.stopping.is_set():
            t_cpu = time.thread_time()
            msg = hub.since(max(0, seq - 10), fseq, version) if version < 0 else \
                hub.since(seq, fseq, version)  # a new page gets 0.1 s of trace at once
            if msg is not None:
                seq, fseq, version = msg["seq"], msg["fseq"], msg["version"]
                data = json.dumps(msg, default=_jsonable, separators=(",", ":"))
                self.wfile.write(f"data: {data}\n\n".encode())
                self.wfile.flush()
                quiet = time.monotonic()
            elif time.monotonic() - quiet > KEEPALIVE_S:
                self.wfile.write(b": keepalive\n\n")
                self.wfile.flush()
                quiet = time.monotonic()
            s.add_cpu(time.thread_time() - t_cpu)
            next_tick += TICK_S
            delay = next_tick - time.monotonic()
            if delay > 0:
                s.stopping.wait(delay)
            else:
                next_tick = time.monotonic()  # behind (a slow client): no burst to catch up


def _jsonable(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)
