"""The rest check: a call of spontaneous activity made while units fire at voluntary rates
carries a caveat; the labels themselves never change."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import low_voluntary_wav, run_nemg

from convert.biosim import simulate_contraction
from convert.synth import synthesize
from edge.recording import uv_to_int16
from edge.rest_check import MIN_VOLUNTARY_UNITS, STRETCH_S, RestCheck

FS = 20_000
UV_PER_LSB = 0.5


def _windows(label: str, n: int, hop_s: float = 0.5):
    """Windows called ``label`` ending every ``hop_s`` (what a pipeline hands over)."""
    return [SimpleNamespace(label=label, end_sample=round((k + 1) * hop_s * FS))
            for k in range(n)]


def _check(x_uv: np.ndarray, label: str, block_s: float | None = None) -> RestCheck:
    x = uv_to_int16(x_uv, UV_PER_LSB)
    windows = _windows(label, int(x.size / FS / 0.5))
    rest = RestCheck(FS, UV_PER_LSB)
    step = x.size if block_s is None else round(block_s * FS)
    for a in range(0, x.size, step):
        b = min(x.size, a + step)
        rest.feed(x[a:b], a, [w for w in windows if a < w.end_sample <= b])
    return rest


@pytest.fixture(scope="module")
def contraction_uv():
    rec = simulate_contraction(fs=FS, duration_s=10.0, rng=np.random.default_rng([5, 2]),
                               pool="healthy", excitation=3.0)
    return rec.signal_uv * 0.25  # small: at this level the model reads such units as fibrillation


def test_a_contraction_called_fibrillation_gets_the_caveat(contraction_uv):
    rest = _check(contraction_uv, "fibrillation")
    caveat = rest.caveat("fibrillation")
    assert caveat is not None and caveat["kind"] == "voluntary_activity"
    assert caveat["units"] >= MIN_VOLUNTARY_UNITS and caveat["stretches_checked"] >= 2
    assert "fibrillation call is not reliable" in caveat["text"]
    assert rest.caveat("motor_unit") is None  # only the label that was checked


def test_a_real_fibrillation_does_not():
    rec = synthesize("fibrillation", fs=FS, duration_s=10.0, rng=np.random.default_rng(3))
    rest = _check(rec.signal_uv, "fibrillation")
    assert sum(len(v) for v in rest.checks.values()) >= 2  # it was looked at ...
    assert rest.caveat("fibrillation") is None  # ... and is not a contraction


def test_the_checks_do_not_depend_on_the_block_size(contraction_uv):
    whole = _check(contraction_uv, "fibrillation").checks
    assert whole == _check(contraction_uv, "fibrillation", block_s=0.7).checks
    assert len(whole["fibrillation"]) == int(contraction_uv.size / FS // STRETCH_S)


def test_one_stretch_is_not_enough(contraction_uv):
    short = contraction_uv[: round(4.0 * FS)]
    rest = _check(short, "fibrillation")
    assert len(rest.checks["fibrillation"]) == 1 and rest.caveat("fibrillation") is None


def test_a_file_is_checked_a_bounded_number_of_times_a_session_without_end():
    from edge.rest_check import KEEP_CHECKS

    x = np.zeros(round(3 * STRETCH_S * FS), np.int16)  # quiet: each check is quick
    calls = _windows("fibrillation", 600)  # 300 s of calls, the same 9 s fed over and over
    capped = RestCheck(FS, UV_PER_LSB, max_checks=2)
    live = RestCheck(FS, UV_PER_LSB, max_checks=None)
    for a in range(0, calls[-1].end_sample, x.size):
        ws = [w for w in calls if a < w.end_sample <= a + x.size]
        capped.feed(x, a, ws)
        live.feed(x, a, ws)
    assert capped.made == 2 and sum(len(v) for v in capped.checks.values()) == 2
    assert live.made > KEEP_CHECKS and len(live.checks["fibrillation"]) == KEEP_CHECKS
    assert live.caveat("fibrillation") is None  # nothing fires in silence


def test_a_caveat_covers_only_the_stretches_asked_for(contraction_uv):
    rest = _check(contraction_uv, "fibrillation")
    ends = [end for end, _ in rest.checks["fibrillation"]]
    assert rest.caveat("fibrillation", since=ends[0], until=ends[-1]) is not None  # 2 of 3
    assert rest.caveat("fibrillation", since=ends[1]) is None  # one stretch is not enough


def test_nemg_classify_puts_the_caveat_beside_an_unchanged_label(tmp_path):
    """The committed emgdb excerpt (healthy voluntary activity) at −12 dB, 12 s: the
    shipped model calls it fibrillation (the failure of docs/generalisation.md); the
    caveat says why not to trust that, and every window's label is what it was."""

    wav = low_voluntary_wav(tmp_path / "healthy_low.wav", rate_hz=None)  # read as a 4 kHz file
    proc = run_nemg("classify", str(wav), "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    s = res["summary"]
    assert s["label"] == "fibrillation" and s["pathological"] is True
    assert s["caveat"]["kind"] == "voluntary_activity" and s["caveat"]["units"] >= 4
    text = run_nemg("classify", str(wav)).stdout
    assert "caveat: voluntary activity present" in text
    # labels untouched: the same windows as a pipeline without the check gives
    from edge.cli.classify import load_samples
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified

    pipe = Pipeline(load_verified())
    plain = [w.label for w in pipe.push(load_samples(wav, pipe.fs, pipe.mel.uv_per_lsb))[0]]
    assert [w["label"] for w in res["windows"]] == plain


def test_a_live_session_logs_the_caveat_with_the_event(tmp_path):
    """Live, over a pty: the same low-level healthy excerpt played by a virtual front
    end. The fibrillation event the log records carries the caveat, and so does the
    screen while the stretch is followed."""
    import io

    from edge.eventlog import open_for_session
    from edge.live import LiveSession, PlainView
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified
    from edge.sources import open_source
    from firmware_host.boards import get_frontend
    from firmware_host.link import FrontEndClient, SerialLink
    from firmware_host.virtual import VirtualFrontEnd

    wav = low_voluntary_wav(tmp_path / "healthy_low_20k.wav")
    fe1 = get_frontend("nemg-fe1")
    log = open_for_session(tmp_path / "events.db")
    out = io.StringIO()
    pipe = Pipeline(load_verified())
    shown: list[str | None] = []

    class Watching(PlainView):
        """Notes what the screens would show beside the finding as samples arrive."""

        def attach(self, session):
            self.session = session

        def samples(self, pcm, index):
            shown.append(self.session.caveat(self.session.state))

    with VirtualFrontEnd(fe1, open_source(str(wav), fe1, loop=False), fast=True,
                         link_path=tmp_path / "ttyR") as vfe:
        link = SerialLink(str(tmp_path / "ttyR"))
        link.open()
        session = LiveSession(pipe, FrontEndClient(link), fe1, log=log, view=Watching(out))
        session.run(until=vfe.finished.is_set)
    fib = [e for e in log.events(log.session_id)
           if e["kind"] == "label" and e["label"] == "fibrillation"]
    assert fib and all("caveat: voluntary activity present" in e["detail"] for e in fib)
    assert "caveat: voluntary activity present" in out.getvalue()
    assert any(c and "voluntary activity present" in c for c in shown)
