"""Evidence everywhere a call is shown (issue 29): ``nemg classify --json`` per window, the
terminal screen, the bedside page (its state, and in headless Chromium the trains marked on
the trace with their legend), the event log. The model is the shipped one repacked with a
discharge recogniser in its decision section (the project's packer and dev key)."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from conftest import DEV_KEY, SHIPPED, run_nemg, small_contraction_wav

from edge.eventlog import EventLog
from edge.labels import PATHOLOGICAL
from edge.offline import classify_file
from edge.pipeline import Pipeline
from edge.runtime import load_verified
from rigs.web_rig import LiveRig, browser, browser_missing, demo_excerpt, offline_page

TRAIN_KEYS = {"firings", "rate_hz", "regularity_cv", "pattern", "duration_ms", "phases",
              "initial", "amplitude_uv", "backs"}
WINDOW_KEYS = {"start_s", "end_s", "label", "confidence", "unfamiliar", "contracting",
               "probabilities"}
"""What a window of ``classify --json`` held before the evidence."""
CRITERIA = {"agrees", "silent", "contradicts", "names"}

needs_browser = pytest.mark.skipif(browser_missing() is not None,
                                   reason=f"browser tests skipped: {browser_missing()}")


@pytest.fixture(scope="module")
def recognising(tmp_path_factory) -> Path:
    """The shipped model packed with the default decision section, its recogniser in."""
    from convert.packing import repack
    from edge.bundle import Bundle
    from edge.spec import DEFAULT_DECISION

    out = tmp_path_factory.mktemp("recognising") / "recognising.nemg"
    repack(Bundle.read(SHIPPED), out, key_path=DEV_KEY, version="1.5.99",
           decision=DEFAULT_DECISION)
    assert load_verified(out).decision.recogniser is not None
    return out


@pytest.fixture(scope="module")
def fibrillation(tmp_path_factory) -> Path:
    """6 s of the demo examination's fibrillation (a metronome-regular train at 8 Hz)."""
    return demo_excerpt(tmp_path_factory.mktemp("fib") / "fibrillation.wav", 8.0, 14.0)[0]


@pytest.fixture(scope="module")
def contraction(tmp_path_factory) -> Path:
    """The small myopathic contraction the model alone calls positive sharp waves."""
    return small_contraction_wav(tmp_path_factory.mktemp("con") / "contraction.wav")


@pytest.fixture(scope="module")
def without(tmp_path_factory) -> Path:
    """The shipped model packed as before the recogniser (its decisions without one)."""
    from dataclasses import replace

    from convert.packing import repack
    from edge.bundle import Bundle
    from edge.spec import DEFAULT_DECISION

    out = tmp_path_factory.mktemp("without") / "without.nemg"
    repack(Bundle.read(SHIPPED), out, key_path=DEV_KEY, version="1.4.99",
           decision=replace(DEFAULT_DECISION, recogniser=None))
    return out


def test_classify_json_gives_each_windows_evidence_and_criterion(recognising, without,
                                                                  fibrillation):
    res = classify_file(lambda: Pipeline(load_verified(recognising)), fibrillation,
                        evidence_always=True)
    windows = json.loads(json.dumps(res))["windows"]
    assert windows and all(WINDOW_KEYS | {"evidence", "criterion"} == set(w) for w in windows)
    for w in windows:
        ev = w["evidence"]
        assert w["criterion"] in CRITERIA
        assert {"span_s", "voluntary", "voluntary_trains", "backs", "names", "trains",
                "text"} <= set(ev)
        assert all(set(t) == TRAIN_KEYS for t in ev["trains"])  # no firing times in a file's
        assert ev["span_s"][1] <= w["end_s"]
    backed = [w for w in windows if w["criterion"] == "agrees"
              and w["label"] == "fibrillation"]
    assert backed, [(w["label"], w["criterion"]) for w in windows]
    train = next(t for t in backed[-1]["evidence"]["trains"] if "fibrillation" in t["backs"])
    assert 0.5 <= train["rate_hz"] <= 16 and train["initial"] in "+-"
    # looking only where the evidence can change a label: the same labels
    lazy = classify_file(lambda: Pipeline(load_verified(recognising)), fibrillation)["windows"]
    assert [w["label"] for w in lazy] == [w["label"] for w in windows]
    assert all(w["evidence"] is not None or w["criterion"] is None for w in lazy)
    # a bundle without a recogniser: the same keys, no evidence
    old = classify_file(lambda: Pipeline(load_verified(without)), fibrillation,
                        evidence_always=True)["windows"]
    assert len(old) == len(windows)
    assert all(w["evidence"] is None and w["criterion"] is None for w in old)


def test_nemg_classify_json_writes_the_evidence(recognising, fibrillation):
    proc = run_nemg("classify", "--json", "--evidence-everywhere", "--model", str(recognising),
                    str(fibrillation))
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    direct = classify_file(lambda: Pipeline(load_verified(recognising)), fibrillation,
                           evidence_always=True)
    assert out["windows"] == json.loads(json.dumps(direct["windows"]))


def _live(model: Path, wav: Path, view, log: EventLog | None = None):
    """A live session over a pty from a virtual front end playing ``wav`` (fast)."""
    from edge.live import LiveSession
    from rigs.sources import open_source
    from wire.boards import get_frontend
    from wire.link import FrontEndClient, SerialLink
    from wire.virtual import VirtualFrontEnd

    fe1 = get_frontend("nemg-fe1")
    src = open_source(str(wav), fe1, loop=False)
    with VirtualFrontEnd(fe1, src, fast=True) as vfe:
        link = SerialLink(vfe.path)
        link.open()
        session = LiveSession(Pipeline(load_verified(model)),
                              FrontEndClient(link, reconnect=False), fe1, view=view, log=log)
        session.run(until=lambda: vfe.finished.is_set() and session.state.samples >= len(src))
    return session


def test_the_screen_shows_the_evidence_and_what_it_withheld(recognising, contraction):
    """The last window's evidence under the finding, cut to the screen's width; a call
    the evidence contradicts is named as withheld; the notes at the bottom still fit."""
    from edge.screen import TerminalView

    out = io.StringIO()
    session = _live(recognising, contraction, TerminalView(out))
    last = session.state.last
    assert last.criterion == "contradicts"  # the model's positive sharp waves, withheld
    frames = out.getvalue().split("\x1b[H")[1:]
    assert frames and all(f.count("\x1b[K\n") == TerminalView.HEIGHT for f in frames)
    screen = frames[-1].replace("\x1b[K", "").splitlines()
    line = next(ln for ln in screen if "withheld:" in ln)
    call = session.pipeline.labels[int(last.probabilities.argmax())]
    assert call in PATHOLOGICAL
    assert line.startswith(f"  withheld: {call.replace('_', ' ')} not backed — voluntary "
                           "activity:")
    assert len(line) <= TerminalView.WIDTH
    assert screen.index(line) == next(i for i, ln in enumerate(screen) if "NOW:" in ln) + 2
    assert any(ln.startswith("  (uncertain: ") for ln in screen)
    assert any(ln.startswith("  caveat: not at rest") for ln in screen)


def test_the_event_log_keeps_the_evidence_and_nemg_log_show_prints_it(recognising,
                                                                       fibrillation, tmp_path):
    from edge.eventlog import open_for_session
    from edge.screen import PlainView

    db = tmp_path / "events.db"
    out = io.StringIO()
    _live(recognising, fibrillation, PlainView(out), log=open_for_session(db))
    log = EventLog(db)
    sid = log.sessions()[-1]["id"]
    fib = [e for e in log.events(sid) if e["kind"] == "label" and e["label"] == "fibrillation"]
    log.close()
    assert fib and fib[0]["detail"].startswith("evidence: backed by a train of ")
    # the plain view's line under the event, cut to an 80-column terminal
    line = next(ln for ln in out.getvalue().splitlines() if "evidence: backed" in ln)
    assert len(line) <= 80 and fib[0]["detail"].startswith(line.strip().rstrip("…"))
    shown = run_nemg("log", "show", str(sid), "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    assert fib[0]["detail"] in shown.stdout


def _check_state_evidence(decision: dict, labels: list[str]) -> dict:
    """The page's state: the last window's evidence, its trains' discharges in seconds on
    the samples' timeline, and the words the terminal shows for it."""
    ev = decision["evidence"]
    assert ev is not None and decision["criterion"] == ev["criterion"] in CRITERIA
    assert ev["call"] in labels and ev["window"] == decision["window"]
    assert ev["line"].startswith(ev["verdict"] + " — ")
    a, b = ev["span_s"]
    for t in ev["trains"]:
        assert set(t) == TRAIN_KEYS | {"times_s"} and len(t["times_s"]) == t["firings"]
        assert all(a - 1e-4 <= x <= b for x in t["times_s"])
        assert t["times_s"] == sorted(t["times_s"])
    return ev


def test_the_page_state_carries_the_last_windows_evidence(recognising, contraction,
                                                          tmp_path):
    with LiveRig(contraction, tmp_path, fast=True, model=recognising) as rig:
        rig.wait()
        state = json.loads(json.dumps(rig.hub.state))
        last = rig.session.state.last
    ev = _check_state_evidence(state["decision"], state["labels"])
    assert ev["criterion"] == last.criterion == "contradicts"
    assert ev["verdict"].startswith("withheld: ") and ev["voluntary"]
    assert ev["trains"] == [t.to_dict(20_000) for t in last.evidence.trains]


@needs_browser
def test_the_page_marks_the_trains_on_the_trace_and_names_the_criterion(recognising,
                                                                        fibrillation,
                                                                        tmp_path):
    """The fibrillation's train is ticked above the trace where its discharges were
    drawn, the legend describes it in its colour, and the finding says the trains back
    the call. Played fast; a page that connects gets only the last 0.1 s of trace (the
    server's rule), so the hub is handed the recording again as one chunk at its own
    stream indices: what a page watching from the start holds, on any machine."""
    import os

    artifacts = Path(os.environ.get("NEMG_TEST_ARTIFACTS",
                                    Path(__file__).resolve().parents[1] / "build"
                                    / "test-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    with LiveRig(fibrillation, tmp_path, fast=True, model=recognising) as rig, \
            browser() as b:
        rig.wait()
        held = rig.hub.held(0, rig.session.pipeline.next_index)
        assert held is not None and held.lost == 0
        rig.hub.add_samples(held.samples, held.start_sample)
        errors: list[str] = []
        seen = {}
        for w, h in ((800, 480), (1920, 1080)):
            page, foreign = offline_page(b, rig.url, width=w, height=h)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.wait_for_function("window.nemg.state && window.nemg.state.live === false "
                                   "&& window.nemg.stats.marks > 0", timeout=300_000)
            page.screenshot(path=str(artifacts / f"bedside-evidence-{w}x{h}.png"))
            seen[w] = {"state": page.evaluate("window.nemg.state"),
                       "marks": page.evaluate("window.nemg.stats.marks"),
                       "badge": page.inner_text("#finding-criterion"),
                       "legend": page.inner_text("#evidence"),
                       "dots": page.eval_on_selector_all("#evidence .train .dot",
                                                         "els => els.length"),
                       "foreign": foreign}
    assert errors == []
    for s in seen.values():
        ev = _check_state_evidence(s["state"]["decision"], s["state"]["labels"])
        assert s["foreign"] == []
        assert 0 < s["marks"] <= sum(len(t["times_s"]) for t in ev["trains"][:6])
        assert s["dots"] == min(6, len(ev["trains"]))
        assert ev["criterion"] == "agrees" and ev["call"] == "fibrillation"
        assert s["badge"] == "backed" and s["legend"].startswith("backed: fibrillation")
        fib = next(t for t in ev["trains"] if "fibrillation" in t["backs"])
        assert re.search(rf"{fib['rate_hz']:.1f} Hz · CV {100 * fib['regularity_cv']:.0f} % "
                         rf".*initially \{fib['initial']} .*→ fibrillation", s["legend"]), \
            s["legend"]
