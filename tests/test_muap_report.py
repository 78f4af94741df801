"""The MUAP report picture (``nemg muap -o``, edge/muap_report.py): each unit's duration
markers, the duration–amplitude plot against the reference boxes, the recruitment plot and
the finding with its evidence — and a picture still drawn with no unit measured or no
reference limits."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from convert.dense import dense_contraction
from edge.muap.analysis import analyse
from edge.muap.interpretation import interpret, summarize_site
from edge.muap_report import (
    DURATION_AMPLITUDE,
    FINDING,
    RECRUITMENT,
    SITES,
    TEMPLATE,
    muscle_figure,
    report_figure,
    write_report,
)

FS = 10_000


@pytest.fixture(scope="module")
def res() -> dict:
    """A short real analysis: a few units of a simulated healthy site, read as biceps
    (whose reference has single-MUP limits: both boxes)."""
    rec = dense_contraction("biosim", 5, "healthy", np.random.default_rng(1), duration_s=4.0)
    out = analyse(rec.signal_uv, FS, muscle="biceps", age=50)
    assert sum(u["measured"] for u in out["units"]) >= 2
    return {"file": "site.wav", "muscle": "biceps", "age": 50, **out}


def _panels(res: dict) -> dict:
    """The figure's axes by label (templates under their unit's id), the figure closed."""
    import matplotlib.pyplot as plt

    fig = report_figure(res)
    try:
        return {ax.get_label(): ax for ax in fig.axes}
    finally:
        plt.close(fig)


def _png_size(path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def _legend(ax) -> str:
    legend = ax.get_legend()
    return " | ".join(t.get_text() for t in legend.get_texts()) if legend else ""


def _flat(text: str) -> str:
    return "".join(text.replace("•", "").split())


def test_the_report_png_is_written(res, tmp_path):
    out = tmp_path / "sub" / "report.png"
    write_report(res, out)
    width, height = _png_size(out)
    assert 1000 <= width <= 2000 and 900 <= height <= 2500  # 110 dpi, one template row


def test_each_panel_shows_what_it_stands_for(res):
    p = _panels(res)
    measured = [u for u in res["units"] if u["measured"]]
    for u in measured:  # the duration's two markers, at its onset and end
        ax = p[f"{TEMPLATE} {u['id']}"]
        marks = {round(float(ln.get_xdata()[0]), 2) for ln in ax.lines
                 if len(set(ln.get_xdata())) == 1}
        assert {u["onset_ms"], u["end_ms"]} <= marks
    da = p[DURATION_AMPLITUDE]
    assert "biceps" in da.get_title() and da.get_yscale() == "log"
    legend = _legend(da)
    assert "inner box" in legend and "outer box" in legend and "site mean" in legend
    assert len(da.containers) == sum(u["amplitude_uv"] > 0 for u in measured)
    rc = p[RECRUITMENT]
    assert f"{res['summary']['recruitment_ratio']:g}" in rc.get_title()
    assert "10 × n" in _legend(rc)
    text = _flat(p[FINDING].texts[0].get_text())
    assert _flat(res["interpretation"]["finding"].upper()) in text
    for line in res["interpretation"]["evidence"]:
        assert _flat(line) in text


def test_no_unit_measured_and_no_limits_still_draw(res, tmp_path):
    flagged = [dict(u, measured=False, validity=dict(u["validity"], verdict="merged"))
               for u in res["units"]]
    summary = summarize_site(flagged)
    none_measured = {**res, "units": flagged, "summary": summary,
                     "interpretation": interpret(summary, "biceps")}
    p = _panels(none_measured)
    assert "inner box" in _legend(p[DURATION_AMPLITUDE])
    assert not p[DURATION_AMPLITUDE].containers
    write_report(none_measured, tmp_path / "flagged.png")
    no_limits = {**res, "interpretation": {k: v for k, v in res["interpretation"].items()
                                           if k != "limits"}}
    p = _panels(no_limits)
    assert not p[DURATION_AMPLITUDE].patches and "none" in p[DURATION_AMPLITUDE].get_title()
    assert "× n" not in _legend(p[RECRUITMENT])
    # the "no unit found" reading: no unit, no reference
    quiet = analyse(np.random.default_rng(0).normal(0, 8, 3 * FS), FS)
    assert not quiet["units"]
    out = tmp_path / "quiet.png"
    write_report({"file": "quiet.wav", "muscle": None, "age": None, **quiet}, out)
    assert _png_size(out)[0] >= 1000


def test_the_muscle_picture_pools_the_sites_units(res):
    """``--one-muscle -o``: every site's measured units on one duration–amplitude plot
    (named site.unit), each site's recruitment ratio, the muscle's finding."""
    import matplotlib.pyplot as plt

    from edge.muap.analysis import read_muscle

    sites = [{**res, "file": "a.wav"}, {**res, "file": "b.wav"}]
    muscle = {"muscle": "biceps", **read_muscle(sites, muscle="biceps")}
    fig = muscle_figure(muscle, sites)
    try:
        panels = {ax.get_label(): ax for ax in fig.axes}
        measured = sum(u["measured"] for u in res["units"])
        names = {t.get_text() for t in panels[DURATION_AMPLITUDE].texts}
        assert {f"{k}.{u['id']}" for k in (1, 2) for u in res["units"] if u["measured"]} \
            <= names and len(names) >= 2 * measured
        assert len(panels[SITES].patches) == 2  # one bar a site
        assert muscle["interpretation"]["finding"].upper() in \
            _flat(" ".join(t.get_text() for t in panels[FINDING].texts))
    finally:
        plt.close(fig)
