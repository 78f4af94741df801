"""The bedside page's server: Python's own ``http.server``, nothing to install.

Routes (any other path is 404, another method on a route 405; no route changes a model, the
store or the box):

- ``GET /`` and its assets (``edge/web/static``; no CDN, the page loads offline);
- ``GET /api/stream``: Server-Sent Events, one message per :data:`TICK_S` with the samples,
  feature frames and panel state the page has not seen (:meth:`WebHub.since`);
- ``GET /api/state``: the panel state once;
- ``POST /api/corrections`` ``{"event_id": N, "label": L}`` (``L`` a label, or
  ``"confirm"``): the clinician's judgement, with the stretch's raw samples, into the log;
- ``GET /api/sessions``, ``/api/sessions/N``, ``/api/sessions/N/events.csv``: the review;
- ``POST /api/save-usb`` ``{"session": N}``: that exam's EDF+ and report onto the USB stick
  (:mod:`edge.exam_save`); a missing, read-only or full stick is a 409 saying which.

Bound to loopback by default. Listening on any other address needs a token (the page is
opened once as ``/?token=…``, which sets a cookie); a request without it gets 401. On
loopback the Host header must name loopback, so a web page elsewhere cannot reach the box
through a rebound DNS name.

Every request that is not valid (a malformed request line, an unknown method, a bad
Content-Length, a body that is not a JSON object, …) is answered with a 4xx and a JSON body
``{"error": "…"}``, never a traceback; :func:`http.server`'s own refusals take the same form.

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
import sys
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import SplitResult, parse_qs, urlsplit

from edge.errors import ConfigError, NemgError
from edge.eventlog import EventLog
from edge.exam_save import USB_MOUNT, save_exam
from edge.labels import LABELS
from edge.web.hub import WebHub

DEFAULT_LISTEN = "127.0.0.1:8080"
"""Where ``--web`` listens when given no address: this box's own screen only."""

TICK_S = 0.05
"""The stream's message interval: 20 updates a second, ≤ 50 ms of batching."""
KEEPALIVE_S = 10.0
MAX_BODY = 4096
REQUEST_TIMEOUT_S = 30.0
"""How long a client may stall on the socket (sending its request, or not reading the
stream) before its connection is dropped: a half-sent body must not hold a thread forever."""
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

POST_ROUTES = ("/api/corrections", "/api/save-usb")
"""The routes a page may POST to (every other route is GET only)."""


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
                 log_path: Path | None = None, token: str | None = None,
                 usb_mount: Path = USB_MOUNT) -> None:
        self.hub = hub
        self.usb_mount = usb_mount
        """Where the exam stick is mounted (deploy/media-nemg\\x2dusb.mount)."""
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
        if set(body) != {"event_id", "label"} or \
                not isinstance(event_id, int) or isinstance(event_id, bool) or \
                not 0 < event_id <= MAX_ID or \
                not isinstance(label, str) or (label != CONFIRM and label not in LABELS):
            raise _HttpError(HTTPStatus.BAD_REQUEST,
                             "need {\"event_id\": N, \"label\": a label or \"confirm\"} "
                             "and nothing else")
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

    def save_usb(self, body: dict[str, Any]) -> dict[str, Any]:
        sid = body.get("session")
        if set(body) != {"session"} or not isinstance(sid, int) or isinstance(sid, bool) or \
                not 0 < sid <= MAX_ID:
            raise _HttpError(HTTPStatus.BAD_REQUEST, "need {\"session\": N} and nothing else")
        log = self.open_log()
        try:
            log.session(sid)
        except NemgError as exc:
            log.close()
            raise _HttpError(HTTPStatus.NOT_FOUND, str(exc)) from None
        try:
            files = save_exam(log, sid, self.usb_mount)
            return {"session": sid, "files": [f.name for f in files],
                    "folder": str(files[0].parent)}
        except NemgError as exc:  # no stick, read-only, full, pulled: the clinician's to fix
            raise _HttpError(HTTPStatus.CONFLICT, str(exc)) from None
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
    def __init__(self, status: HTTPStatus, message: str,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers


def _session_page(path: str) -> tuple[int, bool] | None:
    """``/api/sessions/N`` or ``/api/sessions/N/events.csv`` → (N, is the CSV), else None."""
    sid, _, tail = path.removeprefix("/api/sessions/").partition("/")
    if not path.startswith("/api/sessions/") or tail not in ("", "events.csv") or \
            not (sid.isascii() and sid.isdigit()) or len(sid) > len(str(MAX_ID)) or \
            int(sid) > MAX_ID:  # isascii: "²" is a digit to str.isdigit, not to int()
        return None
    return int(sid), bool(tail)


def _allowed(path: str) -> str | None:
    """The method a path answers (None: no such page)."""
    if path in POST_ROUTES:
        return "POST"
    if path in ASSETS or path in ("/api/stream", "/api/state", "/api/sessions") or \
            _session_page(path) is not None:
        return "GET"
    return None


def _netloc(url: str) -> str | None:
    try:
        return urlsplit(url).netloc
    except ValueError:
        return None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _report_fault(exc: BaseException, client: str) -> None:
    """One line on stderr for a fault of the box's own (never a request's), not a traceback."""
    print(f"nemg: warning: the bedside page: internal error ({type(exc).__name__}) "
          f"answering {client}", file=sys.stderr)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    screen: WebScreen

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that went away is no news; anything else is one line, not socketserver's
        # traceback (the handler answers every request it can parse itself)
        exc = sys.exc_info()[1]
        if exc is not None and not isinstance(exc, OSError):
            _report_fault(exc, client_address[0])

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
    timeout = REQUEST_TIMEOUT_S

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

    def _json(self, obj: Any, status: int = 200, extra: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj, default=_jsonable).encode(),
                   "application/json", extra)

    def _error(self, status: HTTPStatus, message: str,
               extra: dict[str, str] | None = None) -> None:
        self._json({"error": message}, status, extra)

    def parse_request(self) -> bool:
        """http.server's parsing, refusing HTTP/0.9 (its answers have no status line)."""
        if not super().parse_request():
            return False
        if self.request_version == "HTTP/0.9":
            self.send_error(HTTPStatus.BAD_REQUEST, "HTTP/1.0 or HTTP/1.1 only")
            return False
        return True

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """http.server's own refusals (a malformed request line, a URI or headers too long)
        as JSON, like every other refusal."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # so the answer has its status line
        status = HTTPStatus(code)
        self._error(status, message or status.phrase, {"Connection": "close"})

    def __getattr__(self, name: str) -> Any:
        # http.server looks up do_<METHOD>: every method but GET and POST is a 405 (or 404)
        # rather than its 501 page
        if name.startswith("do_"):
            return self._other_method
        raise AttributeError(name)

    def _url(self) -> SplitResult:
        try:
            return urlsplit(self.path)
        except ValueError:  # e.g. an absolute URI with a broken [IPv6] host
            raise _HttpError(HTTPStatus.BAD_REQUEST, "a malformed URL") from None

    def _refused(self, url: SplitResult) -> tuple[_HttpError | None, dict[str, str]]:
        """Host and token checks: (why the request is refused or None, headers to set)."""
        s = self.screen
        if s.token is None:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
            if is_loopback(host):
                return None, {}
            return _HttpError(HTTPStatus.FORBIDDEN, "this page answers requests for this box "
                                                    "only (Host: 127.0.0.1 or localhost)"), {}
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

    def _answer(self, route: Callable[[SplitResult, dict[str, str]], None]) -> None:
        """Run ``route`` after the host and token checks; whatever it raises is answered
        as JSON, never as a traceback."""
        try:
            url = self._url()
            refused, extra = self._refused(url)
            if refused is not None:
                raise refused
            route(url, extra)
        except _HttpError as exc:
            self._error(exc.status, str(exc), exc.headers)
        except OSError:
            pass  # the client went away or stalled past REQUEST_TIMEOUT_S
        except Exception as exc:  # a fault of the box's, not the request's: still JSON
            _report_fault(exc, self.client_address[0])
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR,
                        f"internal error ({type(exc).__name__})")

    # ---- routes ------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._answer(self._get)

    def do_POST(self) -> None:
        self._answer(self._post)

    def _other_method(self) -> None:
        self._answer(self._not_allowed)

    def _not_allowed(self, url: SplitResult, extra: dict[str, str]) -> NoReturn:
        """404 for no such page, 405 (with Allow) for a page of another method."""
        allowed = _allowed(url.path)
        if allowed is None:
            raise _HttpError(HTTPStatus.NOT_FOUND, "no such page")
        raise _HttpError(HTTPStatus.METHOD_NOT_ALLOWED, f"{self.command} is not answered "
                         f"here (only {allowed})", {"Allow": allowed})

    def _get(self, url: SplitResult, extra: dict[str, str]) -> None:
        path = url.path
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
        elif (page := _session_page(path)) is not None:
            sid, csv = page
            if csv:
                self._send(200, self.screen.events_csv(sid).encode(),
                           "text/csv; charset=utf-8",
                           {"Content-Disposition":
                            f'attachment; filename="nemg-session-{sid}.csv"'})
            else:
                self._json(self.screen.session(sid))
        else:
            self._not_allowed(url, extra)

    def _post(self, url: SplitResult, extra: dict[str, str]) -> None:
        origin = self.headers.get("Origin")
        if origin is not None and _netloc(origin) != self.headers.get("Host"):
            raise _HttpError(HTTPStatus.FORBIDDEN, "a page of another site")
        if url.path not in POST_ROUTES:
            self._not_allowed(url, extra)
        n = self._content_length()
        if "application/json" not in (self.headers.get("Content-Type") or ""):
            raise _HttpError(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "JSON only")
        try:
            data = self.rfile.read(n)
        except TimeoutError:
            raise _HttpError(HTTPStatus.REQUEST_TIMEOUT, "the body did not arrive") from None
        if len(data) < n:
            raise _HttpError(HTTPStatus.BAD_REQUEST, "the body ended before its "
                                                     "Content-Length")
        try:
            body = json.loads(data, parse_constant=_no_constant)
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            raise _HttpError(HTTPStatus.BAD_REQUEST, "not JSON") from None
        if not isinstance(body, dict):
            raise _HttpError(HTTPStatus.BAD_REQUEST, "not a JSON object")
        if url.path == "/api/save-usb":
            self._json(self.screen.save_usb(body), 201)
        else:
            self._json(self.screen.correct(body), 201)

    def _content_length(self) -> int:
        """The body's length: one Content-Length of 1–:data:`MAX_BODY` bytes."""
        given = self.headers.get_all("Content-Length") or []
        if not given:
            raise _HttpError(HTTPStatus.LENGTH_REQUIRED, f"a body of 1–{MAX_BODY} bytes "
                                                         "with its Content-Length")
        text = given[0].strip()
        if len(given) > 1 or not (text.isascii() and text.isdigit()):
            raise _HttpError(HTTPStatus.BAD_REQUEST, "one Content-Length, a number")
        n = int(text) if len(text) <= len(str(MAX_BODY)) else MAX_BODY + 1
        if not 0 < n <= MAX_BODY:
            raise _HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if n else
                             HTTPStatus.BAD_REQUEST, f"a body of 1–{MAX_BODY} bytes")
        return n

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

def start_web(listen: str, *, token: str | None, log_path, inner, trial: bool = False,
              announce=None):
    """Start the page's server for one live session: (the server, the session's view).
    ``inner``: the terminal or plain view the session also keeps; ``announce``: a stream
    told where the page is."""
    from edge.web.hub import WebView

    hub = WebHub()
    screen = WebScreen(hub, listen=listen, log_path=log_path, token=token)
    screen.start()
    if announce is not None:
        print(f"bedside page on {screen.url}", file=announce, flush=True)
    return screen, WebView(hub, inner, trial=trial)
