"""The printable examination report (``nemg log report``): one A4 page per session, what the
carts print (Natus, Cadwell: a grid per muscle): the session, the model, the findings in
the carts' terms with the box's evidence for each, the clinician's corrections, a trace
strip per finding, and the MUAP reading. Self-contained HTML (inline CSS and SVG, no
script, no network); a PDF where Chromium is present (its headless print).

Spontaneous activity is graded 0 to 4+ by the number of needle areas it is found in (0:
none; 1+: persistent single trains in at least two areas; 2+: a moderate number in three or
more areas; 3+: many in all areas; 4+: abundant, filling the screen — the AANEM/Daube
scale). The box hears one stream, not the areas a needle visits: it reports where it heard
each discharge, how long and how sure, and leaves the grade of a class it heard for the
clinician to tick; a class it never heard is 0."""

from __future__ import annotations

import html
import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import InputError
from edge.eventlog import EventLog
from edge.exam_export import session_summary
from edge.labels import PATHOLOGICAL
from edge.paths import find_chromium

GRADED = ("fibrillation", "positive_sharp_wave")
"""Classes graded 0–4+ on the carts' form; the others are reported present or absent."""

ROWS = ("fibrillation", "positive_sharp_wave", "fasciculation", "complex_repetitive",
        "myotonic", "myokymic", "neuromyotonic")
"""The grid's rows, in the carts' order."""

MUAP_ROWS = 4
"""MUAP analyses listed (the last ones; every one is in the EDF+), so the page stays one;
the templates are the last analysis's."""

STRIP_S = 1.0
"""Seconds of signal drawn per finding (around the middle of its longest event)."""

STRIP_POINTS = 600
"""Points of a trace strip's polyline (min/max pairs of the samples they cover)."""

CSS = """
@page { size: A4; margin: 12mm; }
body { font: 9.5pt/1.3 -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       color: #111; margin: 0; }
.page { width: 186mm; }
h1 { font-size: 14pt; margin: 0 0 1mm; }
.meta { display: grid; grid-template-columns: repeat(3, 1fr); gap: 0.5mm 4mm;
        font-size: 8.5pt; margin-bottom: 3mm; border-bottom: 0.3mm solid #999;
        padding-bottom: 2mm; }
.meta b { font-weight: 600; }
table { border-collapse: collapse; width: 100%; margin-bottom: 2mm; table-layout: fixed; }
table.grid col.finding { width: 24mm; } table.grid col.grade { width: 27mm; }
table.grid col.n { width: 14mm; } table.grid col.t { width: 12mm; }
table.grid col.conf { width: 12mm; } table.grid col.clin { width: 24mm; }
th, td { border: 0.2mm solid #aaa; padding: 0.8mm 1.5mm; text-align: left;
         vertical-align: top; font-size: 8.5pt; }
th { background: #eee; }
td.grade { font-weight: 600; }
.box { display: inline-block; width: 2.6mm; height: 2.6mm; border: 0.25mm solid #333;
       margin: 0 0.6mm 0 1.4mm; vertical-align: -0.4mm; }
.ev { color: #333; font-size: 7.5pt; }
h2 { font-size: 10.5pt; margin: 2mm 0 1mm; }
.strips { display: grid; grid-template-columns: 1fr 1fr; gap: 1.5mm 4mm; }
figure { margin: 0; }
.strip figcaption { font-size: 7.5pt; color: #333; }
svg { width: 100%; height: 11mm; background: #fafafa; border: 0.2mm solid #ccc;
      display: block; }
.note { font-size: 7.5pt; color: #444; margin-top: 2mm; }
.units { display: grid; grid-template-columns: repeat(8, 1fr); gap: 1mm 2mm; }
.unit svg { height: 10mm; }
.unit figcaption { font-size: 6.5pt; color: #333; }
"""


def _nice(label: str) -> str:
    return label.replace("_", " ")


def _detail(ev: dict[str, Any]) -> str:
    d = ev.get("detail") or ""
    if ev["kind"] == "muap":
        try:
            return "; ".join(json.loads(d).get("evidence", []))
        except (ValueError, AttributeError):
            return ""
    return d


def _when(stamp: str | None) -> str:
    """An event log's UTC timestamp as a reader writes it (to the minute)."""
    return f"{stamp[:10]} {stamp[11:16]} UTC" if stamp and len(stamp) >= 16 else "—"


def _recording(log: EventLog, session_id: int):
    """The session's recorded signal, or None (none kept, or unreadable)."""
    try:
        from edge.exam_recording import open_recording
    except ImportError:  # pragma: no cover - the recording module ships with this one
        return None
    try:
        return open_recording(log.path, session_id)
    except InputError:
        return None


def trace_svg(x_uv: np.ndarray, points: int = STRIP_POINTS) -> str:
    """A strip of signal as an inline SVG polyline (min and max of each slice, so a spike
    narrower than a slice is still drawn), scaled to its own peak."""
    if x_uv.size == 0:
        return "<svg viewBox='0 0 100 20'></svg>"
    n = max(1, min(points, x_uv.size))
    edges = np.linspace(0, x_uv.size, n + 1).astype(int)
    lo = np.minimum.reduceat(x_uv, edges[:-1])
    hi = np.maximum.reduceat(x_uv, edges[:-1])
    y = np.ravel(np.column_stack([lo, hi]))
    peak = float(np.max(np.abs(y))) or 1.0
    xs = np.repeat(np.linspace(0, 100, n), 2)
    pts = " ".join(f"{a:.2f},{10 - 9.5 * b / peak:.2f}" for a, b in zip(xs, y, strict=True))
    return (f"<svg viewBox='0 0 100 20' preserveAspectRatio='none'><polyline points='{pts}' "
            "fill='none' stroke='#1f4e9c' stroke-width='0.25' "
            "vector-effect='non-scaling-stroke'/></svg>")


def _template_figure(t: dict[str, Any]) -> str:
    """One unit's template, small; a unit the decomposition could not vouch for greyed; a
    measured one with its duration between two dashed markers (``onset_ms``, ``end_ms`` on
    the thinned template's axis: point k at k × ``point_ms``; edge.muap_live)."""
    v = np.asarray(t["template_uv"], dtype=np.float64)
    valid = t.get("verdict", "valid") == "valid"
    svg = trace_svg(v, points=v.size).replace("#1f4e9c", "#1f4e9c" if valid else "#999")
    label = f"#{t['id']}" + ("" if valid else f" {t['verdict']}")
    duration = ""
    if valid and t.get("onset_ms") is not None and t.get("point_ms") and v.size > 1:
        marks = "".join(
            f"<line class='dur' x1='{x:.2f}' x2='{x:.2f}' y1='0' y2='20' stroke='#333' "
            "stroke-width='0.4' stroke-dasharray='1,1' vector-effect='non-scaling-stroke'/>"
            for x in (min(100.0, 100 * ms / t["point_ms"] / (v.size - 1))
                      for ms in (t["onset_ms"], t["end_ms"])))
        svg = svg.replace("</svg>", marks + "</svg>")
        duration = f" · duration {t['duration_ms']:.1f} ms" if t.get("duration_ms") else ""
    return (f"<figure class='unit'>{svg}<figcaption>{html.escape(label)} · "
            f"±{float(np.max(np.abs(v))) if v.size else 0:.0f} µV, "
            f"{t.get('template_ms', 0):g} ms{duration}</figcaption></figure>")


def report_html(log: EventLog, session_id: int) -> str:
    """The report of one session as a self-contained HTML page."""
    session = log.session(session_id)
    events = log.events(session_id)
    corrections = log.corrections(session_id)
    summary = session_summary(session)
    rec = _recording(log, session_id)
    labels = [e for e in events if e["kind"] == "label"]
    fixed = {c["event_id"]: c for c in corrections}
    e = html.escape
    meta = [("Session", str(session_id)), ("Started", _when(session["started"])),
            ("Ended", _when(session["ended"])),
            ("Muscle", summary.get("muscle") or "not given"),
            ("Age", str(summary["age"]) if summary.get("age") is not None else "not given"),
            ("Signal", f"{summary.get('signal_seconds', 0):.0f} s"),
            ("Source", session["source"]), ("Board", session["board"] or "—"),
            ("Model", f"{session['model_name']} {session['model_version']}")]
    rows = []
    strips = []
    for label in ROWS:
        mine = [ev for ev in labels if ev["label"] == label]
        seconds = sum(ev["end_s"] - ev["start_s"] for ev in mine)
        if not mine:
            grade = "0"
        elif label in GRADED:
            grade = "heard; areas:<br>" + "".join(f"<span class='box'></span>{g}"
                                                 for g in ("1+", "2+", "3+", "4+"))
        else:
            grade = "present"
        best = max(mine, key=lambda ev: ev["end_s"] - ev["start_s"]) if mine else None
        evidence = e(_detail(best)) if best else ""
        conf = (f"{np.mean([ev['confidence'] for ev in mine]):.2f}" if mine else "—")
        fixes = [fixed[ev["id"]] for ev in mine if ev["id"] in fixed]
        fix = "; ".join(("confirmed" if c["confirmed"] else f"→ {_nice(c['label'])}")
                        for c in fixes)
        rows.append(f"<tr><td>{e(_nice(label))}</td><td class='grade'>{grade}</td>"
                    f"<td>{len(mine)}</td><td>{seconds:.1f} s</td><td>{conf}</td>"
                    f"<td class='ev'>{evidence}</td><td>{e(fix)}</td></tr>")
        if best is not None and rec is not None:
            mid = (best["start_sample"] + best["end_sample"]) // 2 - rec.first_sample
            half = int(STRIP_S * rec.sample_rate_hz / 2)
            a, b = max(0, mid - half), min(rec.samples.size, mid + half)
            x = np.asarray(rec.samples[a:b], dtype=np.float64) * rec.uv_per_lsb
            peak = float(np.max(np.abs(x))) if x.size else 0.0
            strips.append(f"<figure class='strip'>{trace_svg(x)}<figcaption>{e(_nice(label))}"
                          f" at {best['start_s']:.1f}–{best['end_s']:.1f} s, ±{peak:.0f} µV, "
                          f"{STRIP_S:g} s</figcaption></figure>")
    other = [ev for ev in labels if ev["label"] not in PATHOLOGICAL]
    heard = sorted({ev["label"] for ev in other})
    muap = [ev for ev in events if ev["kind"] == "muap"]
    muap_rows = []
    for ev in muap[-MUAP_ROWS:]:
        try:
            d = json.loads(ev["detail"] or "{}")
        except ValueError:
            d = {}
        s = d.get("summary", {})
        found = s.get("units_found", s.get("units", 0))
        if s.get("units"):
            figures = (f"{s['units']} of {found} units measured · mean "
                       f"{s['mean_amplitude_uv']:.0f} µV, {s['mean_duration_ms']:.1f} ms, "
                       f"{s['polyphasic_share']:.0%} polyphasic · fastest "
                       f"{s['max_firing_rate_hz']:.0f} Hz, recruitment ratio "
                       f"{s['recruitment_ratio']:g}")
        else:
            figures = f"no unit measured ({found} found)"
        muap_rows.append(f"<tr><td>{ev['start_s']:.0f}–{ev['end_s']:.0f} s</td>"
                         f"<td class='grade'>{e(ev['label'])}</td><td>{e(figures)}</td>"
                         f"<td class='ev'>{e(_detail(ev))}</td></tr>")
        templates = [t for t in d.get("templates", []) if t.get("template_uv")]
        if templates and ev is muap[-1]:
            muap_rows.append(f"<tr><td colspan='4'><div class='units'>"
                             f"{''.join(_template_figure(t) for t in templates)}</div></td></tr>")
    corr_rows = [f"<tr><td>{c['model_label'] and e(_nice(c['model_label']))}</td>"
                 f"<td>{'confirmed' if c['confirmed'] else e(_nice(c['label']))}</td>"
                 f"<td>{c['start_sample'] / c['sample_rate_hz']:.1f} s</td>"
                 f"<td>{_when(c['made_at'])}</td></tr>" for c in corrections]
    gaps = [ev for ev in events if ev["kind"] == "gap"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>nemg examination report — session {session_id}</title>",
        f"<style>{CSS}</style></head><body><div class='page'>",
        "<h1>Needle EMG examination — spontaneous activity and MUAPs</h1><div class='meta'>",
        *(f"<div><b>{k}</b>: {e(v)}</div>" for k, v in meta), "</div>",
        "<h2>Spontaneous activity</h2><table class='grid'><colgroup><col class='finding'>"
        "<col class='grade'><col class='n'><col class='t'><col class='conf'><col>"
        "<col class='clin'></colgroup><tr><th>finding</th><th>grade</th>"
        "<th>events</th><th>time</th><th>mean conf.</th><th>the box's evidence</th>"
        "<th>clinician</th></tr>", *rows, "</table>",
        f"<div class='note'>Also heard: {e(', '.join(_nice(h) for h in heard)) or 'nothing else'}"
        f"{f'; {len(gaps)} gap(s) in the signal' if gaps else ''}. The grade of a discharge"
        " heard is the clinician's: it counts needle areas, which one stream cannot.</div>",
        "<h2>Motor unit potentials</h2>",
        ("<table><tr><th>stretch</th><th>finding</th><th>figures</th><th>evidence</th></tr>"
         + "".join(muap_rows) + "</table>") if muap_rows
        else "<div class='note'>No steady voluntary stretch was analysed.</div>",
        f"<div class='note'>{len(muap) - MUAP_ROWS} earlier analyses are in the EDF+ "
        "export.</div>" if len(muap) > MUAP_ROWS else "",
        "<h2>Corrections</h2>",
        ("<table><tr><th>the box said</th><th>clinician</th><th>at</th><th>when</th></tr>"
         + "".join(corr_rows) + "</table>") if corr_rows
        else "<div class='note'>None.</div>",
        "<h2>Traces</h2>",
        f"<div class='strips'>{''.join(strips)}</div>" if strips
        else "<div class='note'>"
             + ("No signal was recorded for this session." if rec is None
                else "No abnormal discharge to show.") + "</div>",
        "<div class='note'>nemg-edge — a decision aid; every finding is the examiner's to "
        "confirm.</div></div></body></html>"]
    return "".join(parts)


def write_report(log: EventLog, session_id: int, out: Path, *,
                 as_pdf: bool | None = None) -> Path:
    """The report written to ``out``: HTML, or PDF (``as_pdf``; None: when ``out`` ends in
    ``.pdf``; needs Chromium). Written to a temporary file beside it, then renamed: a
    failure leaves no half report, and is said in one line naming ``out``."""
    page = report_html(log, session_id)
    if as_pdf is None:
        as_pdf = out.suffix.lower() == ".pdf"
    chromium = find_chromium() if as_pdf else None
    if as_pdf and chromium is None:
        raise InputError(f"{out}: a PDF needs Chromium (set NEMG_CHROMIUM, or write .html "
                         "and print it)")
    tmp: Path | None = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        tmp = Path(tmp_name)
        if chromium is not None:
            os.close(fd)
            _print_pdf(chromium, page, tmp, out)
        else:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(page)
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, out)
    except OSError as exc:
        raise InputError(f"{out}: cannot write the report ({exc.strerror or exc})") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
    return out


def _print_pdf(chromium: str, page: str, tmp: Path, out: Path) -> None:
    """``page`` printed to ``tmp`` by headless Chromium (``out``: the name errors give)."""
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "report.html"
        src.write_text(page, encoding="utf-8")
        proc = subprocess.run(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
             f"--user-data-dir={d}/profile", f"--print-to-pdf={tmp}", src.as_uri()],
            capture_output=True, timeout=120, check=False)
    if proc.returncode != 0 or not tmp.is_file() or tmp.stat().st_size == 0:
        raise InputError(f"{out}: Chromium could not print the report "
                         f"(exit {proc.returncode})")
