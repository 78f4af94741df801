"""The rest check: a call of spontaneous activity made while several units fire at voluntary
rates is withheld ('uncertain', with the reason), bit for bit the same on every box."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import DEV_KEY, SHIPPED, run_nemg, small_contraction, small_contraction_wav

from convert.synth import synthesize
from edge.labels import PATHOLOGICAL, UNCERTAIN
from edge.muap.decomposition import decompose
from edge.readers.recording import uv_to_int16
from edge.rest_check import (
    KEEP_CHECKS,
    RestCheck,
    voluntary_rates,
)
from edge.spec import DEFAULT_DECISION, MelConfig

REST = DEFAULT_DECISION.rest_check
STRETCH_S, RECHECK_S = REST.stretch_s, REST.recheck_s
MIN_VOLUNTARY_UNITS = REST.min_voluntary_units
FS = MelConfig().sample_rate_hz
UV_PER_LSB = MelConfig().uv_per_lsb
GOLDEN = Path(__file__).parent / "golden" / "rest_check_emgdb.json"


@pytest.fixture(scope="module")
def contraction() -> np.ndarray:
    return small_contraction()


@pytest.fixture(scope="module")
def fibrillation() -> np.ndarray:
    rec = synthesize("fibrillation", fs=FS, duration_s=10.0, rng=np.random.default_rng(2))
    return uv_to_int16(rec.signal_uv, UV_PER_LSB)


@pytest.fixture(scope="module")
def rest_bundle(tmp_path_factory):
    """The shipped model with decisions as before the recogniser: the rest check decides
    (what a bundle packed before it still does)."""
    from dataclasses import replace

    from convert.packing import repack
    from edge.bundle import Bundle
    from edge.runtime import load_verified
    from edge.spec import DEFAULT_DECISION

    out = tmp_path_factory.mktemp("rest") / "rest.nemg"
    repack(Bundle.read(SHIPPED), out, key_path=DEV_KEY, version="0.0.3",
           decision=replace(DEFAULT_DECISION, recogniser=None))
    return load_verified(out)


@pytest.fixture(scope="module")
def pipeline_factory(rest_bundle):
    from edge.pipeline import Pipeline

    return lambda **kw: Pipeline(rest_bundle, **kw)


def _push(pipe, x: np.ndarray, block_s: float | None = None):
    step = x.size if block_s is None else round(block_s * FS)
    out = []
    for a in range(0, x.size, step):
        out += pipe.push(x[a: a + step], a)[0]
    return out


def test_a_contraction_holds_units_at_voluntary_rates_a_fibrillation_does_not(
        contraction, fibrillation):
    n = round(STRETCH_S * FS)
    assert len(voluntary_rates(contraction[:n], FS)) >= MIN_VOLUNTARY_UNITS
    assert len(voluntary_rates(fibrillation[:n], FS)) < MIN_VOLUNTARY_UNITS


def test_a_check_that_asks_only_for_enough_units_gets_the_same_answer(contraction,
                                                                      fibrillation):
    """``at_least``: the decomposition stops once fewer units can fire; where enough do,
    the rates are those of the whole decomposition, and where they do not, none."""
    n = round(STRETCH_S * FS)
    for x in (contraction[:n], fibrillation[:n], contraction[n: 2 * n] // 4):
        full = voluntary_rates(x, FS)
        quick = voluntary_rates(x, FS, at_least=MIN_VOLUNTARY_UNITS)
        assert quick == full or (quick == [] and len(full) < MIN_VOLUNTARY_UNITS)
    assert len(voluntary_rates(contraction[:n], FS, at_least=MIN_VOLUNTARY_UNITS)) >= \
        MIN_VOLUNTARY_UNITS
    assert decompose(fibrillation[:n], FS, exact=True, stop_below=50) == []


def test_the_exact_decomposition_matches_its_golden_vectors():
    """The committed emgdb excerpt as the box holds it: the same units, firing at the same
    sample indices, on every machine (a change here changes labels on every box)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "make_rest_check_golden", GOLDEN.with_name("make_rest_check_golden.py"))
    maker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(maker)
    assert maker.golden() == json.loads(GOLDEN.read_text())


def test_the_exact_decomposition_takes_integers_and_ignores_their_scale(contraction):
    """Every rule is relative to the noise, and doubling is exact: the same firings."""
    x = contraction[: round(STRETCH_S * FS)]
    with pytest.raises(TypeError, match="integer"):
        decompose(x.astype(np.float64), FS, exact=True)
    once = [u.firings.tolist() for u in decompose(x, FS, exact=True)]
    twice = [u.firings.tolist() for u in decompose(x.astype(np.int64) * 2, FS, exact=True)]
    assert once and once == twice


def test_time_locked_fibres_are_one_generator():
    """A complex repetitive discharge's fibres fire in a fixed loop: several trains at one
    rate, locked to each other — one generator, not several voluntary units."""
    rng = np.random.default_rng(4)
    x = rng.normal(0, 6, round(STRETCH_S * FS))
    spike = np.array([0, 60, 200, 400, -500, -300, -120, -40, 0], float)
    for k, offset_ms in enumerate((0, 9, 17, 26, 38, 51)):  # one 20 Hz loop, six fibres
        shape = spike * (1 + 0.35 * k) * (-1) ** k
        for t in np.arange(0.02 + offset_ms / 1000, STRETCH_S - 0.01, 0.05):
            i = round(t * FS)
            x[i: i + shape.size] += shape
    x16 = np.round(x).astype(np.int16)
    assert len(decompose(x16, FS, exact=True)) >= MIN_VOLUNTARY_UNITS  # six trains ...
    assert len(voluntary_rates(x16, FS)) == 1  # ... locked into one


def test_the_pipeline_withholds_calls_of_spontaneous_activity_during_a_contraction(
        contraction, pipeline_factory):
    alone = _push(pipeline_factory(rest_check=False), contraction)
    pipe = pipeline_factory()
    checked = _push(pipe, contraction)
    called = [w.label in PATHOLOGICAL for w in alone]
    assert sum(called) >= len(alone) // 2  # the model alone calls it abnormal ...
    withheld = [w for w in checked if w.contracting]
    assert len(withheld) >= sum(called) - 2  # ... and the box withholds those calls
    assert all(w.label == UNCERTAIN for w in withheld)
    assert all(w.label not in PATHOLOGICAL for w in checked[len(checked) // 2:])
    assert all(w.smoothed_label not in PATHOLOGICAL for w in checked[len(checked) // 2:])
    hop_s = pipe.win.hop_frames * pipe.mel.hop_length / FS
    assert pipe.rest.made <= len(checked) * hop_s / RECHECK_S + 1  # bounded CPU
    note = pipe.rest.note()
    assert note["units"] >= MIN_VOLUNTARY_UNITS and note["windows_withheld"]
    assert "not at rest" in note["text"] and "withheld" in note["text"]


def test_a_real_fibrillation_is_not_withheld(fibrillation, pipeline_factory):
    pipe = pipeline_factory()
    windows = _push(pipe, fibrillation)
    assert pipe.rest.made >= 2  # it was looked at ...
    assert not any(w.contracting for w in windows) and pipe.rest.note() is None
    assert sum(w.label == "fibrillation" for w in windows) >= len(windows) // 2


def test_labels_do_not_depend_on_the_block_size(contraction, pipeline_factory):
    whole = _push(pipeline_factory(), contraction)
    blocks = _push(pipeline_factory(), contraction, block_s=0.37)
    assert [(w.label, w.contracting, w.smoothed_label) for w in whole] == \
        [(w.label, w.contracting, w.smoothed_label) for w in blocks]


def test_a_gap_starts_the_stretch_again(contraction, pipeline_factory):
    """No stretch spans lost samples: right after a long gap there is no check until
    the stream holds enough of its own again."""
    pipe = pipeline_factory()
    half = contraction.size // 2
    pipe.push(contraction[:half], 0)
    pipe.gap(FS)  # a second lost: the segment closes
    made = pipe.rest.made
    assert pipe.rest.check(pipe.next_index) is None  # nothing of the new segment yet
    pipe.push(contraction[half:], half + FS)
    assert pipe.rest.made > made


def test_a_session_without_end_remembers_a_bounded_number_of_checks():
    rest = RestCheck(FS)
    quiet = np.zeros(round(STRETCH_S * FS), np.int16)  # each check is quick
    for k in range(KEEP_CHECKS + 10):
        start = k * quiet.size
        rest.push(quiet, start)
        assert rest.check(start + quiet.size) is not None
        rest.trim()
    assert rest.made == KEEP_CHECKS + 10 and len(rest.checks) == KEEP_CHECKS
    assert rest._buffer._tail.size == quiet.size and rest.note() is None  # nothing fires in silence


def test_nemg_classify_says_which_calls_it_withheld_and_why(tmp_path):
    """The shipped bundle: its recogniser, which subsumes the rest check, withholds the
    calls and says why."""
    from edge.spec import DEFAULT_DECISION

    wav = small_contraction_wav(tmp_path / "contraction_low.wav")
    proc = run_nemg("classify", str(wav), "--json")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(proc.stdout)
    s = res["summary"]
    assert s["pathological"] is False
    assert s["caveat"]["kind"] == "voluntary_activity"
    assert s["caveat"]["units"] >= DEFAULT_DECISION.recogniser.min_voluntary_trains
    assert "no train backs them" in s["caveat"]["text"]
    assert any(w["contracting"] and w["label"] == UNCERTAIN for w in res["windows"])
    text = run_nemg("classify", str(wav)).stdout
    assert "caveat: not at rest" in text


def test_a_live_session_logs_why_it_withheld_calls(tmp_path):
    """Live, over a pty: the small contraction played by a virtual front end. No
    abnormal event is logged; the event of the withheld stretch says why, and so does
    the screen while the stretch is followed."""
    import io

    from edge.eventlog import open_for_session
    from edge.live import LiveSession
    from edge.pipeline import Pipeline
    from edge.runtime import load_verified
    from edge.screen import PlainView
    from rigs.sources import open_source
    from wire.boards import get_frontend
    from wire.link import FrontEndClient, SerialLink
    from wire.virtual import VirtualFrontEnd

    wav = small_contraction_wav(tmp_path / "contraction_low.wav")
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
    labels = [e for e in log.events(log.session_id) if e["kind"] == "label"]
    assert not any(e["label"] in PATHOLOGICAL for e in labels)
    noted = [e for e in labels if "caveat: not at rest" in e["detail"]]
    assert noted and noted[0]["label"] == UNCERTAIN
    assert "caveat: not at rest" in out.getvalue()
    assert any(c and "not at rest" in c for c in shown)


def test_a_files_finding_counts_the_withheld_windows_as_heard():
    """Withheld windows are part of the examination, as silence is: two abnormal calls
    among many withheld ones are not the finding; a fifth of the examination still is."""
    from types import SimpleNamespace as W

    from edge.pipeline import summarize

    held = [W(label=UNCERTAIN, confidence=0.1, contracting=True)] * 13
    psw = [W(label="positive_sharp_wave", confidence=0.9, contracting=False)] * 2
    assert summarize(held + psw)["label"] == UNCERTAIN
    assert summarize(psw)["label"] == "positive_sharp_wave"  # at rest, two calls are
    quiet = [W(label="silence", confidence=0.9, contracting=False)] * 5
    assert summarize(held[:3] + psw + quiet)["label"] == "positive_sharp_wave"  # 2 ≥ 10/5
