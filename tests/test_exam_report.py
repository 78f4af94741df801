"""The printable examination report (issue 34, point 3): one A4 page per session, checked
in a real browser, and as a PDF where Chromium is present."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.eventlog import EventLog
from edge.exam_report import ROWS, report_html, trace_svg, write_report
from edge.pipeline import Event
from rigs.web_rig import browser, browser_missing

needs_browser = pytest.mark.skipif(browser_missing() is not None,
                                   reason=f"browser tests skipped: {browser_missing()}")


def _session(tmp_path) -> tuple[EventLog, int]:
    log = EventLog(tmp_path / "events.db")
    sid = log.start_session("virtual:demo", "nemg-fe1", {"name": "nemg-default",
                                                           "version": "1.6.1"})
    fib = log.log(Event("label", "fibrillation", 0, 80_000, 0.0, 4.0, 0.91, 7,
                        "evidence: backed by a train of 7.0 Hz, regular"))
    log.log(Event("label", "silence", 80_000, 120_000, 4.0, 6.0, 0.8, 3))
    myo = log.log(Event("label", "myotonic", 120_000, 180_000, 6.0, 9.0, 0.7, 5))
    log.log(Event("gap", "gap", 180_000, 180_400, 9.0, 9.02, 0.0, 0, "400 samples lost"))
    muap = {"summary": {"units": 4, "units_found": 6, "mean_amplitude_uv": 640.0,
                        "mean_duration_ms": 9.6, "polyphasic_share": 0.25,
                        "max_firing_rate_hz": 12.0, "recruitment_ratio": 2.5},
            "evidence": ["mean amplitude 640 µV, duration 9.6 ms: within the limits"],
            "templates": [{"id": 1, "verdict": "valid", "template_ms": 40.0,
                           "template_uv": [0, 5, -300, 400, -80, 10, 0],
                           "measured": True, "point_ms": 40.0 / 7, "onset_ms": 2 * 40.0 / 7,
                           "end_ms": 4 * 40.0 / 7, "duration_ms": 11.4},
                          {"id": 2, "verdict": "merged", "template_ms": 40.0,
                           "template_uv": [0, -200, 150, 0]}]}
    log.log(Event("muap", "normal", 200_000, 300_000, 10.0, 15.0, 0.0, 0, json.dumps(muap)))
    log.correct(myo, "complex_repetitive", held=None, sample_rate_hz=20_000, uv_per_lsb=0.5)
    log.correct(fib, "fibrillation", held=None, sample_rate_hz=20_000, uv_per_lsb=0.5)
    log.end_session({"signal_seconds": 15.0, "muscle": "tibialis anterior", "age": 61})
    return log, sid


def test_the_report_holds_the_session_its_findings_evidence_and_corrections(tmp_path):
    log, sid = _session(tmp_path)
    page = report_html(log, sid)
    for text in ("session", "tibialis anterior", "61", "nemg-default 1.6.1", "nemg-fe1",
                 "backed by a train of 7.0 Hz", "complex repetitive", "confirmed",
                 "4 of 6 units measured", "1 gap(s)", "No signal was recorded",
                 "#1 · ±400 µV, 40 ms · duration 11.4 ms", "#2 merged"):
        assert text in page, text
    # the measured unit's duration markers at its onset and end (points 2 and 4 of 0–6)
    assert "<line class='dur' x1='33.33'" in page and "<line class='dur' x1='66.67'" in page
    assert page.count("class='dur'") == 2  # none on the merged unit
    spontaneous = page.split("<h2>Spontaneous activity")[1].split("<h2>")[0]
    rows = spontaneous.split("<tr>")[1:]
    grid = {r.split("</td>")[0].removeprefix("<td>"): r for r in rows if "<td>" in r}
    assert set(ROWS) <= {k.replace(" ", "_") for k in grid}
    assert "heard; areas" in grid["fibrillation"]  # graded by the clinician: 1+ … 4+
    assert "class='grade'>0<" in grid["positive sharp wave"]  # never heard: 0
    assert "class='grade'>present<" in grid["myotonic"]
    assert "<script" not in page and "http" not in page  # self-contained, offline
    out = write_report(log, sid, tmp_path / "r" / "report.html")
    assert out.read_text(encoding="utf-8") == page
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]  # no temporary left


def test_a_trace_strip_keeps_a_spike_narrower_than_a_pixel():
    x = np.zeros(20_000)
    x[12_345] = 500.0
    svg = trace_svg(x, points=100)
    ys = [float(p.split(",")[1]) for p in svg.split("points='")[1].split("'")[0].split()]
    assert min(ys) == pytest.approx(0.5)  # the peak reaches the top
    assert trace_svg(np.zeros(0)).startswith("<svg")


@needs_browser
def test_the_report_prints_on_one_a4_page_in_a_real_browser(tmp_path):
    log, sid = _session(tmp_path)
    html_path = write_report(log, sid, tmp_path / "report.html")
    with browser() as b:
        page = b.new_page()
        page.goto(html_path.as_uri())
        pdf = page.pdf(format="A4", print_background=True, prefer_css_page_size=True)
        page.set_viewport_size({"width": 794, "height": 1123})  # A4 at 96 dpi
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert pdf[:4] == b"%PDF" and pdf.count(b"/Type /Page\n") + pdf.count(b"/Type /Page>") \
        + pdf.count(b"/Type /Page/") + pdf.count(b"/Type /Page ") == 1
    printed = write_report(log, sid, tmp_path / "report.pdf")  # Chromium's own print
    assert printed.read_bytes()[:4] == b"%PDF"
