"""The bedside page: its hub and server (no browser), then the page itself in a real
headless Chromium (Debian's, driven by Playwright) on a live session from the virtual front
end. Screenshots at 800×480 and 1920×1080 are left in ``$NEMG_TEST_ARTIFACTS`` (default
``build/test-artifacts``)."""

from __future__ import annotations

import http.client
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ConfigError
from edge.eventlog import EventLog
from edge.web.hub import WebHub, _merge
from edge.web.server import WebScreen, check_token, parse_listen
from rigs.web_rig import LiveRig, browser, browser_missing, demo_excerpt, offline_page

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("NEMG_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))


def excerpt(tmp_path: Path, start_s: float, end_s: float) -> tuple[Path, np.ndarray]:
    """A stretch of the demo examination as its own file (and its samples)."""
    return demo_excerpt(tmp_path / "excerpt.wav", start_s, end_s)


def request(screen: WebScreen, method: str, path: str, body: bytes | None = None,
            headers: dict | None = None) -> tuple[int, dict | str]:
    c = http.client.HTTPConnection("127.0.0.1", screen.port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read().decode()
    c.close()
    try:
        return r.status, json.loads(data)
    except ValueError:
        return r.status, data


# ---- the hub and the server ---------------------------------------------------------------
def test_the_hub_holds_a_bounded_stretch_and_cuts_it_with_its_gaps():
    hub = WebHub(hold_s=1.0)
    hub.configure(1000, 10)
    for k in range(30):  # 3 s of 100-sample chunks, chunk 12 lost
        if k != 12:
            hub.add_samples(np.full(100, k, np.int16), k * 100)
    assert sum(c.pcm.size for c in hub._chunks) <= 1000 + 100  # bounded by hold_s
    held = hub.held(2500, 2800)
    assert held.start_sample == 2500 and held.lost == 0
    assert held.samples.tolist() == [25] * 100 + [26] * 100 + [27] * 100
    assert hub.held(0, 500) is None  # older than what is held
    hub2 = WebHub()
    hub2.configure(1000, 10)
    for k in range(20):
        if k != 12:
            hub2.add_samples(np.full(100, k, np.int16), k * 100)
    held = hub2.held(1100, 1400)
    assert held.lost == 100 and held.samples[100:200].tolist() == [0] * 100
    runs = _merge(list(hub2._chunks))
    assert [r[0] for r in runs] == [0, 1300]  # a gap starts a new run


def test_listen_addresses_and_tokens():
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen(":9000") == ("127.0.0.1", 9000)
    assert parse_listen("[::1]:8081") == ("::1", 8081)
    with pytest.raises(ConfigError, match="port"):
        parse_listen("box:http")
    assert check_token("127.0.0.1", None) is None
    with pytest.raises(ConfigError, match="--web-token"):
        check_token("0.0.0.0", None)
    with pytest.raises(ConfigError, match="16 characters"):
        check_token("0.0.0.0", "short")


def _logged_event(tmp_path: Path) -> tuple[Path, int, int]:
    from edge.pipeline import Event

    log = EventLog(tmp_path / "events.db")
    sid = log.start_session("test", "nemg-fe1", {"name": "m", "version": "1"})
    eid = log.log(Event("label", "fibrillation", 1000, 3000, 0.05, 0.15, 0.9, 3))
    gid = log.log(Event("gap", "gap", 3000, 3100, 0.15, 0.155, 0.0, 0, "lost"))
    uid = log.log(Event("label", "uncertain", 3100, 9100, 0.155, 0.455, 0.4, 3))
    log.close()
    return tmp_path / "events.db", sid, eid, gid, uid


def test_the_server_refuses_what_it_must(tmp_path):
    db, sid, eid, gid, uid = _logged_event(tmp_path)
    hub = WebHub()
    hub.configure(20000, 200)
    with WebScreen(hub, listen="127.0.0.1:0", log_path=db) as screen:
        post = {"Content-Type": "application/json"}
        for path in ("/api/model", "/api/store", "/api/flash", "/api/model/rollback"):
            assert request(screen, "POST", path, b"{}", post)[0] == 404
        assert request(screen, "PUT", "/api/corrections", b"{}", post)[0] == 405
        assert request(screen, "GET", "/etc/passwd")[0] == 404
        assert request(screen, "GET", "/api/state", headers={"Host": "evil.example:80"})[0] \
            == 403  # a rebound DNS name
        status, body = request(screen, "POST", "/api/corrections",
                               json.dumps({"event_id": eid, "label": "fibrilation"}).encode(),
                               post)
        assert status == 400 and "label" in body["error"]
        assert request(screen, "POST", "/api/corrections", b"x" * 5000, post)[0] == 413
        assert request(screen, "POST", "/api/corrections", b"[1]", post)[0] == 400
        assert request(screen, "POST", "/api/corrections", b"{}", {})[0] == 415
        assert request(screen, "POST", "/api/corrections",
                       json.dumps({"event_id": eid, "label": "confirm"}).encode(),
                       {**post, "Origin": "http://evil.example"})[0] == 403
        status, body = request(screen, "POST", "/api/corrections",
                               json.dumps({"event_id": gid, "label": "silence"}).encode(), post)
        assert status == 400 and "gap" in body["error"]
        status, body = request(screen, "POST", "/api/corrections",
                               json.dumps({"event_id": uid, "label": "confirm"}).encode(), post)
        assert status == 400 and "give the one it was" in body["error"]
        status, _ = request(screen, "POST", "/api/corrections",
                            json.dumps({"event_id": uid, "label": "silence"}).encode(), post)
        assert status == 201
        status, body = request(screen, "POST", "/api/corrections",
                               json.dumps({"event_id": eid, "label": "confirm"}).encode(), post)
        assert status == 201 and body["samples_saved"] is False  # not this session's
        assert request(screen, "GET", "/api/sessions/99")[0] == 404
        assert request(screen, "POST", "/api/corrections",
                       json.dumps({"event_id": 999, "label": "confirm"}).encode(), post)[0] \
            == 404
        for huge in (10**30, -1, 0, 1 << 63):  # beyond SQLite's integers: a 400, not a crash
            assert request(screen, "POST", "/api/corrections",
                           json.dumps({"event_id": huge, "label": "confirm"}).encode(),
                           post)[0] == 400
        assert request(screen, "GET", f"/api/sessions/{10**30}")[0] == 404
        assert request(screen, "GET", f"/api/sessions/{10**30}/events.csv")[0] == 404
        assert request(screen, "GET", "/api/sessions/" + "9" * 5000)[0] == 404
        status, csv_text = request(screen, "GET", f"/api/sessions/{sid}/events.csv")
        assert status == 200 and "fibrillation" in csv_text
    log = EventLog(db)
    u, c = log.corrections(sid)  # in the order they were made
    assert u["label"] == "silence" and u["model_label"] == "uncertain" and not u["confirmed"]
    assert c["confirmed"] == 1 and c["label"] == "fibrillation" and c["samples_lost"] == 2000


@pytest.fixture
def served(tmp_path):
    """A running server on loopback over an event log: (the server, a label event's id)."""
    db, _, eid, _, _ = _logged_event(tmp_path)
    hub = WebHub()
    hub.configure(20000, 200)
    with WebScreen(hub, listen="127.0.0.1:0", log_path=db) as screen:
        yield screen, eid


def exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as it is on a new connection, end it, read the answer: (status,
    headers with lower-case names, body). The socket timeout only guards against a hang."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1."), lines[0]  # a status line, not a bare body
    headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def raw_request(method: str, path: str, *headers: str, body: bytes = b"",
                version: str = "HTTP/1.1", host: str | None = "127.0.0.1") -> bytes:
    lines = [f"{method} {path} {version}"] + ([f"Host: {host}"] if host else []) + list(headers)
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


def raw_post(body: bytes, *headers: str, ctype: str | None = "application/json",
             length: str | None = "auto", path: str = "/api/corrections") -> bytes:
    given = [f"Content-Type: {ctype}"] if ctype is not None else []
    if length is not None:
        given.append(f"Content-Length: {len(body) if length == 'auto' else length}")
    return raw_request("POST", path, *given, *headers, body=body)


def correction(**fields: object) -> bytes:
    return raw_post(json.dumps(fields).encode())


def invalid_requests(eid: int) -> list[tuple[str, bytes, int]]:
    """(what, the request's bytes, the status it must get), in a fixed order."""
    get = raw_request
    return [
        # paths that are not pages, traversal, ids that are not ids
        ("unknown path", get("GET", "/nope"), 404),
        ("traversal", get("GET", "/static/../../etc/passwd"), 404),
        ("traversal from the root", get("GET", "/../../../etc/passwd"), 404),
        ("encoded traversal", get("GET", "/%2e%2e/%2e%2e/etc/passwd"), 404),
        ("traversal past an asset", get("GET", "/app.js/../../edge/web/server.py"), 404),
        ("NUL in the path", get("GET", "/api/state%00"), 404),
        ("session id a word", get("GET", "/api/sessions/abc"), 404),
        ("session id negative", get("GET", "/api/sessions/-1"), 404),
        ("session id huge", get("GET", f"/api/sessions/{10**30}/events.csv"), 404),
        ("session id a superscript digit", b"GET /api/sessions/\xb2 HTTP/1.1\r\n"
                                           b"Host: 127.0.0.1\r\n\r\n", 404),
        ("under a session's CSV", get("GET", "/api/sessions/1/events.csv/x"), 404),
        ("absolute URI with a broken host", get("GET", "http://[broken/api/state"), 400),
        # methods
        ("HEAD", get("HEAD", "/"), 405),
        ("PUT", get("PUT", "/api/corrections"), 405),
        ("DELETE", get("DELETE", "/api/sessions/1"), 405),
        ("TRACE", get("TRACE", "/"), 405),
        ("an invented method", get("FROB", "/api/state"), 405),
        ("OPTIONS *", get("OPTIONS", "*"), 404),
        ("PATCH elsewhere", get("PATCH", "/nope"), 404),
        ("GET of the POST route", get("GET", "/api/corrections"), 405),
        ("POST to a GET route", raw_post(b"{}", path="/api/state"), 405),
        ("POST elsewhere", raw_post(b"{}", path="/api/model"), 404),
        # the request line, the protocol, the headers
        ("binary garbage", b"\x00\x01\x02\xff\r\n\r\n", 400),
        ("HTTP/0.9", b"GET /\r\n\r\n", 400),
        ("a version that is not one", get("GET", "/", version="HTTP/x"), 400),
        ("a version of three numbers", get("GET", "/", version="HTTP/1.1.1"), 400),
        ("four words", get("GET", "/ x", version="HTTP/1.1"), 400),
        ("HTTP/2 as text", get("GET", "/", version="HTTP/2.0"), 505),
        ("URI too long", get("GET", "/" + "a" * 70_000), 414),
        ("header line too long", get("GET", "/api/state", "X-Long: " + "a" * 70_000), 431),
        ("too many headers", get("GET", "/api/state", *[f"X-{i}: 1" for i in range(101)]),
         431),
        ("foreign Host", get("GET", "/api/state", host="evil.example"), 403),
        ("no Host", get("GET", "/api/state", host=None), 403),
        ("a malformed Host", get("GET", "/api/state", host="["), 403),
        # Content-Length and Content-Type
        ("no Content-Length", raw_post(b"", length=None), 411),
        ("chunked", raw_post(b"2\r\n{}\r\n0\r\n\r\n", "Transfer-Encoding: chunked",
                             length=None), 411),
        ("Content-Length 0", raw_post(b"", length="0"), 400),
        ("Content-Length negative", raw_post(b"{}", length="-2"), 400),
        ("Content-Length a word", raw_post(b"{}", length="abc"), 400),
        ("Content-Length in exponent form", raw_post(b"{}", length="2e0"), 400),
        ("Content-Length of 5000 digits", raw_post(b"{}", length="9" * 5000), 413),
        ("Content-Length huge", raw_post(b"{}", length=str(10**20)), 413),
        ("two Content-Lengths", raw_post(b"{}", "Content-Length: 3"), 400),
        ("a body over the limit", raw_post(b" " * 5000), 413),
        ("a body shorter than its length", raw_post(b"{}", length="100"), 400),
        ("a body longer than its length", raw_post(b'{"event_id": 1} and more', length="2"),
         400),
        ("text/plain", raw_post(b"{}", ctype="text/plain"), 415),
        ("no Content-Type", raw_post(b"{}", ctype=None), 415),
        # what the body holds
        ("malformed JSON", raw_post(b'{"event_id": 1,'), 400),
        ("not UTF-8", raw_post(b'{"event_id": 1, "label": "\xff\xfe"}'), 400),
        ("a list", raw_post(f'[{eid}, "confirm"]'.encode()), 400),
        ("a string", raw_post(b'"confirm"'), 400),
        ("a number", raw_post(b"1"), 400),
        ("null", raw_post(b"null"), 400),
        ("nested 3000 deep, unclosed", raw_post(b"[" * 3000), 400),
        ("nested 2000 deep", raw_post(b"[" * 2000 + b"]" * 2000), 400),
        ("an object nested 800 deep", raw_post(b'{"":' * 800 + b"1" + b"}" * 800), 400),
        ("NaN", raw_post(b'{"event_id": NaN, "label": "confirm"}'), 400),
        ("Infinity", raw_post(b'{"event_id": Infinity, "label": "confirm"}'), 400),
        ("-Infinity", raw_post(b'{"event_id": -Infinity, "label": "confirm"}'), 400),
        ("an id as a string", correction(event_id=str(eid), label="confirm"), 400),
        ("an id as a float", correction(event_id=float(eid), label="confirm"), 400),
        ("an id as a bool", correction(event_id=True, label="confirm"), 400),
        ("an id of 10**30", correction(event_id=10**30, label="confirm"), 400),
        ("an id of 2**63", correction(event_id=1 << 63, label="confirm"), 400),
        ("an id of 4000 digits", correction(event_id=int("9" * 4000), label="confirm"), 400),
        ("an id overflowing a float", raw_post(b'{"event_id": 1e400, "label": "confirm"}'),
         400),
        ("a negative id", correction(event_id=-eid, label="confirm"), 400),
        ("id 0", correction(event_id=0, label="confirm"), 400),
        ("an id not in the log", correction(event_id=eid + 1000, label="confirm"), 404),
        ("no id", correction(label="confirm"), 400),
        ("no label", correction(event_id=eid), 400),
        ("nothing", correction(), 400),
        ("a label as a number", correction(event_id=eid, label=3), 400),
        ("a label as a list", correction(event_id=eid, label=["confirm"]), 400),
        ("a label that is not one", correction(event_id=eid, label="fibrilation"), 400),
        ("an extra field", correction(event_id=eid, label="confirm", note="x"), 400),
        ("an Origin of another site", raw_post(b"{}", "Origin: http://evil.example"), 403),
        ("a malformed Origin", raw_post(b"{}", "Origin: http://["), 403),
    ]


def test_every_invalid_request_gets_a_4xx_json_answer_and_the_server_lives_on(served, capfd):
    """Malformed and hostile requests, byte for byte: each gets the status it must, with
    ``{"error": …}`` as its JSON body; the server answers a valid request after each one and
    writes nothing to stderr (no traceback)."""
    screen, eid = served
    cases = invalid_requests(eid)
    checked = 0
    for what, data, expected in cases:
        status, headers, body = exchange(screen.port, data)
        assert status == expected, (what, status, body[:200])
        assert headers.get("content-type") == "application/json", what
        if data.startswith(b"HEAD "):
            assert body == b"", what  # a HEAD answer has no body
        else:
            assert int(headers["content-length"]) == len(body), what
            error = json.loads(body)
            assert list(error) == ["error"] and isinstance(error["error"], str) \
                and error["error"], what
        if status == 405:
            assert headers["allow"] in ("GET", "POST"), what
        assert exchange(screen.port, raw_request("GET", "/api/state"))[0] == 200, what
        checked += 1
    assert checked == len(cases) == 79
    # still writes: the one valid correction after all of that is taken
    assert exchange(screen.port, correction(event_id=eid, label="confirm"))[0] == 201
    err = capfd.readouterr().err
    assert err == "", err


def test_a_body_that_never_arrives_is_answered_not_waited_for(served, monkeypatch):
    """A POST that declares more body than it sends and keeps its connection open gets a
    408 once the server's socket timeout passes, instead of holding a thread for ever (the
    timeout is shortened here; it decides nothing about the machine's speed)."""
    from edge.web import server

    screen, _ = served
    monkeypatch.setattr(server._Handler, "timeout", 1.0)
    with socket.create_connection(("127.0.0.1", screen.port), timeout=120) as s:
        s.sendall(raw_post(b"{", length="100"))  # and the connection stays open
        answer = s.makefile("rb").read()
    assert answer.startswith(b"HTTP/1.0 408 ")
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["error"]


def test_a_network_listener_refuses_malformed_tokens_with_json(tmp_path):
    db, *_ = _logged_event(tmp_path)
    token = "a-long-enough-secret"
    with WebScreen(WebHub(), listen="0.0.0.0:0", log_path=db, token=token) as screen:
        cases = [raw_request("GET", "/?token=%ff%fe%00"),
                 raw_request("GET", f"/?token=x&token={token}"),
                 raw_request("GET", "/?%%%&&==;;token"),
                 raw_request("GET", "/api/state", 'Cookie: nemg_token="\\'),
                 raw_request("GET", "/api/state", "Cookie: ;;;=;nemg_token"),
                 raw_request("GET", "/api/state", "X-Nemg-Token: \xe9\xff" * 8),
                 raw_request("GET", "/api/state", "X-Nemg-Token: " + "a" * 60_000)]
        for data in cases:
            status, _, body = exchange(screen.port, data)
            assert status == 401 and json.loads(body)["error"], (data[:80], status, body)
        assert exchange(screen.port, raw_request("GET", "/api/state",
                                                 f"X-Nemg-Token: {token}"))[0] == 200
    assert len(cases) == 7


def test_a_network_listener_needs_its_token(tmp_path):
    db, *_ = _logged_event(tmp_path)
    hub = WebHub()
    token = "a-long-enough-secret"
    with WebScreen(hub, listen="0.0.0.0:0", log_path=db, token=token) as screen:
        assert request(screen, "GET", "/")[0] == 401
        assert request(screen, "GET", "/api/sessions")[0] == 401
        assert request(screen, "GET", "/?token=wrong-but-long-enough")[0] == 401
        c = http.client.HTTPConnection("127.0.0.1", screen.port, timeout=10)
        c.request("GET", f"/?token={token}")
        r = c.getresponse()
        r.read()
        cookie = r.getheader("Set-Cookie").split(";")[0]
        assert r.status == 200 and cookie == f"nemg_token={token}"
        assert request(screen, "GET", "/api/sessions", headers={"Cookie": cookie})[0] == 200


def test_nemg_run_refuses_a_network_page_without_a_token():
    from conftest import assert_one_line_error, run_nemg

    proc = run_nemg("run", "--port", "/dev/null-not-a-port", "--no-log", "--web", "0.0.0.0:0",
                    env={"NEMG_WEB_TOKEN": ""})
    assert_one_line_error(proc, "--web-token")


def test_the_web_layer_cannot_reach_the_store_or_the_flash_path():
    """The page reads, and writes only corrections: nothing under edge/web imports the
    model store, the flash path or the bundle writer."""
    import ast

    for f in (ROOT / "edge" / "web").glob("*.py"):
        tree = ast.parse(f.read_text())
        names = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)} | \
            {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        assert not {m for m in names if m and (m.startswith("edge.store") or "flash" in m
                                                or m.startswith("convert"))}, f


# ---- corrections become a corpus -------------------------------------------------------------
def test_corrections_with_their_samples_export_as_a_corpus(tmp_path):
    from conftest import run_nemg

    from convert.corpus import read_corpus
    from edge.eventlog import HeldSamples
    from edge.pipeline import Event
    from edge.readers.wav import read_wav

    log = EventLog(tmp_path / "events.db")
    sid = log.start_session("test", "nemg-fe1", {"name": "m", "version": "1"})
    rng = np.random.default_rng(5)
    pcm = rng.integers(-2000, 2000, 60_000).astype(np.int16)
    e1 = log.log(Event("label", "fibrillation", 0, 60_000, 0.0, 3.0, 0.9, 5))
    e2 = log.log(Event("label", "silence", 60_000, 120_000, 3.0, 6.0, 0.8, 5))
    e3 = log.log(Event("label", "myotonic", 120_000, 180_000, 6.0, 9.0, 0.7, 5))
    log.correct(e1, "end_plate", held=HeldSamples(pcm, 0, 0), sample_rate_hz=20000,
                uv_per_lsb=0.5)
    log.correct(e1, "positive_sharp_wave", held=HeldSamples(pcm, 0, 0), sample_rate_hz=20000,
                uv_per_lsb=0.5)  # a second thought replaces the first
    log.correct(e2, "silence", held=HeldSamples(pcm[:40_000], 60_000, 20_000),
                sample_rate_hz=20000, uv_per_lsb=0.5)
    log.correct(e3, "myotonic", held=None, sample_rate_hz=20000, uv_per_lsb=0.5)
    log.close()
    proc = run_nemg("log", "export", "--dataset", str(tmp_path / "ds"), "--db",
                    str(tmp_path / "events.db"), check=True)
    assert "2 recordings (1 corrected, 1 confirmed); 1 judged after" in proc.stdout
    items = {i.path.name: i for i in read_corpus(tmp_path / "ds")}
    first = items[f"session{sid}-event{e1}.wav"]
    assert first.label == "positive_sharp_wave"
    assert np.array_equal(read_wav(first.path).samples[:, 0], pcm)  # the raw samples, unchanged
    assert items[f"session{sid}-event{e2}.wav"].label == "silence"
    shown = run_nemg("log", "show", str(sid), "--db", str(tmp_path / "events.db"), check=True)
    assert "[corrected: positive_sharp_wave]" in shown.stdout
    assert "[confirmed]" in shown.stdout


# ---- the page in a real browser -----------------------------------------------------------------
needs_browser = pytest.mark.skipif(browser_missing() is not None,
                                   reason=f"browser tests skipped: {browser_missing()}")


def _wait(page, expr: str, timeout_s: float = 300.0):
    """Until ``expr`` holds in the page; the timeout is a hang guard, not a speed test."""
    page.wait_for_function(expr, timeout=timeout_s * 1000)


@needs_browser
@pytest.mark.slow
def test_the_page_follows_a_live_session_and_its_corrections_reach_the_dataset(tmp_path):
    from convert.corpus import read_corpus
    from edge.readers.wav import read_wav

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    wav, pcm = excerpt(tmp_path, 4.0, 16.0)  # insertional, then fibrillation (demo script)
    with LiveRig(wav, tmp_path) as rig, browser() as b:
        big, foreign_big = offline_page(b, rig.url, width=1920, height=1080)
        small, foreign_small = offline_page(b, rig.url, width=800, height=480)
        for page in (big, small):
            _wait(page, "window.nemg.state && window.nemg.state.decision !== undefined")
        # it updates: messages arrive and the trace advances while the signal plays
        _wait(big, "window.nemg.stats.messages > 20 && window.nemg.stats.frames > 10")
        # the sound starts only when asked
        assert big.evaluate("window.nemg.stats.audio.chunks") == 0
        big.click("#listen")
        _wait(big, "window.nemg.stats.audio.chunks > 5")
        assert big.get_attribute("#listen", "aria-pressed") == "true"
        _wait(small, "window.nemg.state.signal_s > 8")
        for page, name in ((big, "1920x1080"), (small, "800x480")):
            page.screenshot(path=str(ARTIFACTS / f"bedside-{name}.png"))
        summary = rig.wait()
        _wait(big, "window.nemg.state && window.nemg.state.live === false")
        log = EventLog(rig.log_path)
        sid = summary and log.sessions()[-1]["id"]
        labels = [e for e in log.events(sid) if e["kind"] == "label"]
        assert labels, "the session logged no label event"
        # the headline is the finding the event log records, with its figure
        last = labels[-1]
        headline = big.inner_text("#finding-label")
        assert headline.startswith(last["label"].upper().replace("_", " ")), headline
        assert f"confidence {last['confidence']:.2f}" in big.inner_text("#finding-detail")
        shown = big.evaluate("window.nemg.state.decision")
        assert shown["label"] == last["label"]
        assert abs(shown["confidence"] - last["confidence"]) < 1e-6
        # a correction made by clicking lands in the log, with the stretch's raw samples
        target = labels[0]
        new_label = "positive_sharp_wave" if target["label"] != "positive_sharp_wave" \
            else "fibrillation"
        big.click(f"#events li[data-event='{target['id']}']")
        big.click(f"#judge-labels button[data-label='{new_label}']")
        _wait(big, "!document.getElementById('toast').hidden")
        assert "saved with" in big.inner_text("#toast")
        big.click(f"#events li[data-event='{labels[-1]['id']}']")
        big.click("#judge-confirm")
        _wait(big, f"document.querySelector(\"#events li[data-event='{labels[-1]['id']}'] "
                   ".j\") !== null")
        # the review shows it
        big.click("#tab-review")
        big.click(f"#sessions tr[data-session='{sid}']")
        _wait(big, f"document.querySelector(\"#session-events tr[data-event='{target['id']}']"
                   "\") !== null")
        assert new_label.replace("_", " ") in \
            big.inner_text(f"#session-events tr[data-event='{target['id']}']")
        big.screenshot(path=str(ARTIFACTS / "bedside-review-1920x1080.png"))
        assert foreign_big == [] and foreign_small == []  # it never left the box
    corr = {c["event_id"]: c for c in log.corrections(sid)}
    assert corr[target["id"]]["label"] == new_label and not corr[target["id"]]["confirmed"]
    assert corr[labels[-1]["id"]]["confirmed"] == 1
    saved = log.correction_samples(corr[target["id"]]["id"])
    a = corr[target["id"]]["samples_start"]
    assert corr[target["id"]]["samples_lost"] == 0
    assert np.array_equal(saved, pcm[a:a + saved.size])  # what the front end played
    assert saved.size == target["end_sample"] - target["start_sample"]
    n = log.export_dataset(tmp_path / "ds", sid)
    log.close()
    assert n["recordings"] == 2 and n["corrected"] == 1 and n["confirmed"] == 1
    items = {i.path.name: i for i in read_corpus(tmp_path / "ds")}
    item = items[f"session{sid}-event{target['id']}.wav"]
    assert item.label == new_label
    assert np.array_equal(read_wav(item.path).samples[:, 0], saved)


@needs_browser
def test_nemg_bench_web_reports_the_page_side_figures():
    """The figures themselves are the benchmark's; here only that each is measured."""
    from conftest import run_nemg

    out = json.loads(run_nemg("bench", "web", "--quick", "--json", check=True,
                              timeout=300).stdout)
    assert out["benchmark"] == "web" and out["foreign_requests"] == 0
    for key in ("latency_ms_p50", "latency_ms_p95", "audio_latency_ms_p50", "frames_per_s",
                "server_cpu_s_per_signal_s", "session_cpu_s_per_signal_s"):
        assert out[key] is not None and out[key] > 0, (key, out)
    assert out["latency_ms_p95"] >= out["latency_ms_p50"]


@pytest.mark.slow
def test_an_exported_dataset_fine_tunes_the_shipped_model_directly(tmp_path):
    """Judgements of a session (each scripted stretch of the demo examination, judged in
    two halves) → nemg log export --dataset → nemg train --init-from, unchanged."""
    from conftest import SHIPPED, run_nemg

    from edge.eventlog import HeldSamples
    from edge.pipeline import Event
    from rigs.demo import segments

    _, pcm = excerpt(tmp_path, 0.0, 61.0)
    log = EventLog(tmp_path / "events.db")
    log.start_session("test", "nemg-fe1", {"name": "m", "version": "1"})
    for a, b, label in segments():
        mid = (a + b) / 2
        for x, y in ((a, mid), (mid, b)):
            i, j = int(x * 20_000), int(y * 20_000)
            eid = log.log(Event("label", label, i, j, x, y, 0.8, 5))
            log.correct(eid, label, held=HeldSamples(pcm[i:j], i, 0), sample_rate_hz=20_000,
                        uv_per_lsb=0.5)
    log.close()
    run_nemg("log", "export", "--dataset", str(tmp_path / "ds"), "--db",
             str(tmp_path / "events.db"), check=True)
    proc = run_nemg("train", "--data", str(tmp_path / "ds"), "--init-from", str(SHIPPED),
                    "--out", str(tmp_path / "ckpt"), "--epochs", "1", check=True, timeout=300)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (tmp_path / "ckpt" / "model.h5").is_file() and result["best_epoch"] == 1


@needs_browser
def test_lost_frames_are_silence_on_the_page_and_counted_as_the_log_counts_them(tmp_path):
    """2 % of the front end's frames dropped (seeded, keyed to frames): the sound starts
    each run after a gap with a ramp instead of joining the samples across it, and the
    page's gap count is the log's."""
    from wire.virtual import Faults

    wav, _ = excerpt(tmp_path, 20.0, 28.0)
    with LiveRig(wav, tmp_path, faults=Faults(drop_rate=0.02, seed=3)) as rig, \
            browser() as b:
        page, foreign = offline_page(b, rig.url, width=1024, height=600)
        _wait(page, "window.nemg.stats.messages > 0")
        page.click("#listen")
        summary = rig.wait()
        _wait(page, "window.nemg.state && window.nemg.state.live === false")
        stats = page.evaluate("window.nemg.stats.audio")
        link = page.inner_text("#link")
        log = EventLog(rig.log_path)
        sid = log.sessions()[-1]["id"]
        gaps = [e for e in log.events(sid) if e["kind"] == "gap"]
        log.close()
    assert summary["gaps"] > 0 and len(gaps) == summary["gaps"]
    assert f"gaps {summary['gaps']} ({summary['samples_lost']} lost)" in link
    assert stats["chunks"] > 0 and stats["gaps"] > 0  # every one a fade, not a join
    assert foreign == []


@needs_browser
def test_the_muap_panel_shows_the_summary_the_log_records(tmp_path):
    from conftest import contraction_wav

    wav = contraction_wav(tmp_path / "contraction.wav", 12.0)
    with LiveRig(wav, tmp_path, fast=True, muap_window_s=4.0) as rig, browser() as b:
        summary = rig.wait()
        page, _ = offline_page(b, rig.url, width=800, height=480)
        _wait(page, "window.nemg.state && window.nemg.state.live === false")
        panel = page.inner_text("#muap")
        fig = page.evaluate(MUAP_FIGURE_JS)
        page.screenshot(path=str(ARTIFACTS / "bedside-muap-800x480.png"))
    assert summary["muap"], "no MUAP analysis ran"
    last = summary["muap"][-1]
    assert page is not None and f"{last['finding']}" in panel
    assert f"{last['units']} units" in panel
    assert "units: #1 " in panel  # each unit's confidence (valid, merged or uncertain)
    # the drawing is of the analysis the log records: one template a unit found, the
    # measured ones with their duration's two markers where the log puts them
    log = EventLog(rig.log_path)
    try:
        logged = json.loads([e for e in log.events(log.sessions()[0]["id"])
                             if e["kind"] == "muap"][-1]["detail"])
    finally:
        log.close()
    units = logged["templates"]
    assert [u["id"] for u in units] == [c["id"] for c in fig["cells"]]
    assert len(units) == last.get("units_found", 0) > 0
    assert sum(c["measured"] for c in fig["cells"]) == last["units"]
    for u, c in zip(units, fig["cells"], strict=True):
        assert c["measured"] == u["measured"] and c["verdict"] == u["verdict"]
        if u["measured"] and u["onset_ms"] is not None:
            (on, x_on), (end, x_end) = c["markers"]
            assert (on, end) == (u["onset_ms"], u["end_ms"])
            assert c["x"][0] < x_on < x_end < c["x"][1]  # inside the template's own span
        else:
            assert c["markers"] == []
    # the reference band of the mean duration, the site's mean on it, and the recruitment
    # plot: a dot a measured unit, in order of first firing, under rate = limit × units
    limits = logged["limits"]
    assert fig["band"] == limits["duration_ms"] and fig["mean_ms"] == last["mean_duration_ms"]
    assert len(fig["rates"]) == last["units"]
    firsts = [r["first"] for r in fig["rates"]]
    assert firsts == sorted(firsts)
    assert fig["limit_per_unit"] == limits["recruitment_reduced_above"]


MUAP_FIGURE_JS = """() => {
  const fig = document.querySelector("#muap svg.muap-fig"), num = (e, a) => +e.getAttribute(a);
  const band = fig.querySelector("rect.band"), mean = fig.querySelector("line.mean");
  const limit = fig.querySelector("line.limit");
  return {
    cells: [...fig.querySelectorAll("g.unit")].map((g) => {
      const cell = g.querySelector("rect.cell");
      return {id: num(g, "data-id"), verdict: g.dataset.verdict,
              measured: g.classList.contains("measured"),
              x: [num(cell, "x"), num(cell, "x") + num(cell, "width")],
              markers: [...g.querySelectorAll("line.dur")].map((l) => [num(l, "data-ms"),
                                                                      num(l, "x1")])};
    }),
    band: band && [num(band, "data-lo"), num(band, "data-hi")],
    mean_ms: mean && num(mean, "data-ms"),
    rates: [...fig.querySelectorAll("circle.rate")].map((c) => ({first: num(c, "data-first")})),
    limit_per_unit: limit && num(limit, "data-per-unit"),
  };
}"""


@needs_browser
def test_the_page_says_why_calls_made_during_a_contraction_were_withheld(tmp_path):
    """A small contraction the model alone calls positive sharp waves: the page shows
    'uncertain' with the rest check's note (not at rest, how many units at what rates),
    as the log's event does."""
    from conftest import small_contraction_wav

    wav = small_contraction_wav(tmp_path / "contraction_low.wav")
    with LiveRig(wav, tmp_path, fast=True) as rig, browser() as b:
        rig.wait()
        page, _ = offline_page(b, rig.url, width=800, height=480)
        _wait(page, "window.nemg.state && window.nemg.state.live === false")
        label = page.inner_text("#finding-label")
        detail = page.inner_text("#finding-detail")
        caveat = page.inner_text("#finding-caveat") if page.is_visible("#finding-caveat") else ""
        recent = page.inner_text("#events")
        page.screenshot(path=str(ARTIFACTS / "bedside-caveat-800x480.png"))
        log = EventLog(rig.log_path)
        logged = [e for e in log.events(log.sessions()[-1]["id"])
                  if e["kind"] == "label" and e["label"] == "uncertain"]
        log.close()
    assert "UNCERTAIN" in label and "PATHOLOGICAL" not in label
    assert "not at rest" in detail
    assert "not at rest" in caveat and "units firing at" in caveat
    assert "not at rest: calls withheld" in recent
    assert logged and caveat.lstrip("⚠ ") in logged[-1]["detail"]


def test_a_page_that_fell_behind_gets_a_bounded_backlog_and_streams_are_bounded(tmp_path):
    from edge.web.hub import MAX_BACKLOG_S
    from edge.web.server import MAX_STREAMS

    hub = WebHub()
    hub.configure(20_000, 200)
    for k in range(3000):  # 30 s of 10 ms chunks
        hub.add_samples(np.zeros(200, np.int16), k * 200)
    msg = hub.since(0, 0, -1)
    runs = msg["chunks"]
    assert len(runs) == 1 and runs[0][0] == 3000 * 200 - int(MAX_BACKLOG_S * 20_000)
    with WebScreen(hub, listen="127.0.0.1:0") as screen:
        conns = []
        for _ in range(MAX_STREAMS):
            c = http.client.HTTPConnection("127.0.0.1", screen.port, timeout=10)
            c.request("GET", "/api/stream")
            assert c.getresponse().status == 200
            conns.append(c)
        assert request(screen, "GET", "/api/stream")[0] == 503
        for c in conns:
            c.close()


def test_the_page_says_when_the_model_is_on_trial(tmp_path, bundles, monkeypatch):
    """The header's ON TRIAL comes from the store: a model installed and not yet
    confirmed is on trial; once confirmed, or for a model outside the store, it is not."""
    from conftest import installed, new_store

    from edge.runtime import on_trial

    store = new_store(tmp_path)
    installed(store, bundles["1.0.0"])
    monkeypatch.setenv("NEMG_STORE", str(store.root))
    monkeypatch.delenv("NEMG_MODEL", raising=False)
    assert store.status().trial and on_trial(None) and on_trial(store.active_path())
    assert not on_trial(bundles["1.1.0"])  # --model outside the store
    store.confirm()
    assert not on_trial(None)
