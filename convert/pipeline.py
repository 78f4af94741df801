"""End-to-end: ``make model`` = corpus synthesis -> train -> QAT and PTQ -> evaluate ->
signed bundle + model card. Also the functions behind ``nemg quantize`` / ``evaluate``.

    python -m convert.pipeline --out build/model [--per-class N] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import convert  # noqa: F401
from convert.corpus import read_corpus, synth_corpus
from convert.synth import PARAMS
from convert.train import RECIPE, RECIPE_AUGMENT, RECIPE_BIOSIM_PER_CLASS, TrainConfig, log, train
from edge.calibration import Calibration
from edge.console import Progress
from edge.errors import InputError
from edge.spec import DEFAULT_SPEC, FrontEndSpec

ROOT = Path(__file__).resolve().parents[1]
DEV_KEY = ROOT / "keys" / "dev" / "nemg-dev.key"
SHIPPED_BUNDLE = ROOT / "models" / "nemg-default.nemg"
"""The shipped default. ``make model`` never writes it: it builds a candidate in its
``--out`` folder, and a candidate is promoted here by hand, only once the checks on data
it was not tuned to (``nemg bench real``, ``nemg bench crosssim``) say it is better —
an in-house figure alone never ships a model (docs/generalisation.md)."""
WORKERS = TrainConfig.workers
"""Processes computing windows outside training too (calibration, validation, test and
every robustness condition): the front end, not the network, dominates those stages."""
ARCH_NAMES = {"cnn": "CNN with a dilated temporal head", "cnn_gru": "CNN+GRU"}


def _checkpoint_file(path: Path) -> Path:
    p = path / "model.h5" if path.is_dir() else path
    if not p.is_file():
        raise InputError(f"{path}: no checkpoint (model.h5)")
    return p


def quantize_checkpoint(checkpoint: Path, data: Path, out: Path, method: str, *,
                        qat_epochs: int = 3, seed: int = 0) -> dict[str, Any]:
    from convert.architecture import load_checkpoint
    from convert.dataset import build_windows, split_by_recording
    from convert.quantize import qat_finetune, representative, to_int8_tflite

    ckpt = _checkpoint_file(checkpoint)
    spec = FrontEndSpec.load(ckpt)
    mel, win = spec.mel, spec.window
    model = load_checkpoint(ckpt)
    items = read_corpus(data)
    train_items, val_items = split_by_recording(items, 0.2, seed)
    calib = build_windows(train_items, mel, win)
    t0 = time.monotonic()
    if method == "qat":
        val = build_windows(val_items, mel, win)
        model = qat_finetune(model, calib, val, epochs=qat_epochs, seed=seed)
    tfl = to_int8_tflite(model, representative(calib, seed=seed))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(tfl)
    return {"model": str(out), "method": method, "bytes": len(tfl),
            "seconds": time.monotonic() - t0}


def evaluate_model(model_path: Path, data: Path, out: Path | None,
                   checkpoint: Path | None = None, robustness: bool = True,
                   front_end: Path | None = None) -> dict[str, Any]:
    """A bundle is evaluated with its own front end and calibration; a bare .tflite with
    its checkpoint's front end (or ``front_end``: a bundle, checkpoint or JSON spec)."""
    from convert.evaluate import evaluate

    if not model_path.is_file():
        raise InputError(f"{model_path}: no such file")
    cal = None
    spec = FrontEndSpec.load(front_end) if front_end is not None else None
    if model_path.suffix == ".nemg":
        from edge.bundle import Bundle

        b = Bundle.read(model_path)
        model, cal = b.model_bytes, b.calibration
        if spec is not None and spec != b.spec:
            raise InputError(f"{model_path}: the bundle's front end is not --front-end's")
        spec = b.spec
    else:
        model = model_path.read_bytes()
    fm = None
    if checkpoint is not None:
        from convert.architecture import load_checkpoint

        ckpt = _checkpoint_file(checkpoint)
        fm = load_checkpoint(ckpt)
        spec = spec or FrontEndSpec.load(ckpt)
    if spec is None:
        raise InputError(f"{model_path}: a bare .tflite needs --checkpoint or --front-end to "
                         "say which features it was trained on")
    return evaluate(model, read_corpus(data), out, float_model=fm, robustness=robustness,
                    workers=WORKERS, spec=spec, calibration=cal)


def _generalisation_section(report: dict[str, Any], meta: dict[str, Any]) -> str:
    """The card's lead: what the model does on data it was not tuned to."""
    held, cross = report.get("held_out"), report.get("cross_simulator")
    if not held:
        return ""

    def row(what: str, r: dict[str, Any]) -> str:
        return (f"| {what} | {r['macro_f1_int8']:.3f} | {r['confidently_wrong_share']:.1%} | "
                f"{r['ece_int8']:.3f} | {r['unfamiliar_share']:.1%} | {r['windows']} |")

    rows = []
    if cross:
        rows += [row("trained on synth only → biosim", cross["train_synth"]["test_biosim"]),
                 row("trained on biosim only → synth", cross["train_biosim"]["test_synth"])]
    rows += [row("this model → held-out synth", held["synth"]),
             row("this model → held-out biosim", held["biosim"])]
    cross_note = (f"The cross-simulator lines are two further models, each trained on one\n"
                  f"simulator alone ({cross['epochs']} epochs, {cross['recipe']}) and tested "
                  "on the other:\nhow far what one simulator teaches carries to signals it "
                  "did not make.\n" if cross else "")
    return f"""
## Generalisation first
Two independently written simulators: `convert/synth.py` (templates fitted to the
literature's figures) and `convert/biosim.py` (fibre and needle physics, no shared code).
This model trains on both ({meta['per_class']} synth recordings per class, new patients
every epoch, and {meta['biosim_per_class']} biosim recordings per class), its int8 method
and calibration chosen on validation recordings of both; test corpora come from unseen
seeds. {cross_note}
| | macro-F1 int8 | confidently wrong (p ≥ 0.8) | ECE (calibrated) | unfamiliar | windows |
|---|---|---|---|---|---|
{chr(10).join(rows)}

Real recordings (`nemg bench real`) and unscaled files (`nemg bench crosssim`): see
[generalisation.md](generalisation.md). Probabilities are temperature-scaled (T =
{report.get('temperature', 1.0):g}, fitted on validation); a window whose spectrum is unlike
every training window's is reported `uncertain` ("unfamiliar", threshold at the 99th
percentile of validation windows).
"""


def model_card(report: dict[str, Any], meta: dict[str, Any]) -> str:
    pc = report["per_class_int8"]
    rows = "\n".join(f"| {lab} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | "
                     f"{v['support']} |" for lab, v in pc.items())
    snr = " · ".join(f"{k} dB: {v:.3f}" for k, v in report.get("accuracy_vs_snr_db", {}).items())
    gain = " · ".join(f"{k} dB: {v:.3f}" for k, v in report.get("accuracy_vs_gain_db",
                                                                 {}).items())
    bg = " · ".join(f"{k.replace('_', ' ')}: {v['accuracy']:.3f} ({v['windows']} windows)"
                    for k, v in report.get("accuracy_by_background", {}).items())
    level = " · ".join(f"{k}: {v['accuracy']:.3f} ({v['windows']})"
                       for k, v in report.get("accuracy_by_discharge_snr", {}).items())
    synth_share = PARAMS["background"]["mixture_share"]
    share = meta.get("train_mixture_share")
    def pct(v: float) -> str:
        return f"{v:.0%}".replace("%", " %")

    mix_share = pct(synth_share if share is None else share)
    fresh = ""
    if meta.get("fresh_share"):
        every = meta["fresh_share"] >= 1
        whose = ("every epoch's training recordings are" if every else
                 f"every epoch {pct(meta['fresh_share'])} of each class's training recordings\nare")
        corpus = ("; the corpus's own training recordings\ncalibrate the int8 conversion and "
                  "give the backgrounds mixed in" if every else " besides\nthe corpus's own")
        fresh = (f"{whose} new patients, synthesised for that epoch only (same generator and "
                 f"seed,\nindices the corpus does not hold: {meta['fresh_patients']:,} patients "
                 f"over the run{corpus}); ")
    arch_name = ARCH_NAMES.get(meta["arch"], meta["arch"])
    general = _generalisation_section(report, meta)
    fe = meta["front_end"]
    front_end = (f"{fe['classifier_window_s']:g} s windows\nof the box's fixed-point log-Mel "
                 f"features ({fe['num_channels']} Mel bands of {fe['lower_band_limit_hz']:g}–"
                 f"{fe['upper_band_limit_hz']:g} Hz,\n{fe['window_size_ms']:g} ms analysis "
                 f"windows every {fe['window_step_ms']:g} ms at {fe['sample_rate_hz']:,} Hz; "
                 f"a decision every\n{fe['decision_every_s']:g} s: the bundle's `front_end`)")
    pooling = " and average + maximum pooling" if meta.get("pool") == "avg_max" else ""
    return f"""# Model card: {meta['name']} {meta['version']}

**Signed with the committed DEVELOPMENT key** (`keys/dev/`). Anyone can sign with it:
a clinical box must trust only its organisation's own keys (see README).

{general}
## What it is
A {arch_name}{pooling} ({meta['params']} parameters,
{report['model_bytes']} bytes as int8 TFLite, {meta['method'].upper()}) over {front_end}.
Twelve classes: the seven pathological spontaneous discharges, end-plate, insertional
and voluntary motor-unit activity, silence and artifact. Reproduce with
`make model` ({meta['minutes']:.1f} min here, 2 cores).

## Data
Synthetic only (`nemg data synth`, `nemg data synth --simulator bio`, docs/discharges.md):
{meta.get('biosim_per_class', 0)} biophysical recordings per class beside the template
synthesiser's; {pct(meta.get('source_rate_share', 0))} of training recordings read as the box
reads a file recorded at 4–16 kHz. Template synthesiser: training corpus seed
{meta['train_seed']}, {meta['per_class']} recordings × {meta['duration_s']:g} s per class,
{mix_share} of the discharge recordings over end-plate noise or a voluntary unit (the hard
case, over-represented: the test corpus keeps the synthesiser's {pct(synth_share)}),
split by recording for validation; {fresh}online augmentation every epoch (level ±6 dB, noise,
mains, end-plate noise or a voluntary unit mixed under discharges — its class then labels
the quiet stretches —, rate stretch, amplifier bandwidth). **Held-out test**: a corpus
from an unseen seed ({meta['test_seed']}), {meta['test_per_class']} recordings ×
{meta['test_duration_s']:g} s per class,
{report['windows']} windows.

## Metrics (held-out template synthesiser, int8 on LiteRT)
| | value |
|---|---|
| macro-F1 int8 | {report['macro_f1_int8']:.4f} |
| macro-F1 float | {report.get('macro_f1_float', float('nan')):.4f} |
| int8 / float top-1 agreement | {report.get('agreement', float('nan')):.3f} |
| accuracy int8 | {report['accuracy_int8']:.3f} |
| expected calibration error (int8) | {report['ece_int8']:.3f} |
| PTQ vs QAT (macro-F1 int8; chosen on validation) | {meta['ptq_f1']:.4f} vs {meta['qat_f1']:.4f} |

Accuracy vs SNR (white noise vs recording RMS): {snr}

Accuracy vs gain: {gain}

Accuracy on pathological recordings by what the discharge sits on (a patient not fully at
rest): {bg}

Accuracy on pathological recordings by discharge peak ÷ RMS of what it sits on (the
synthesiser labels nothing below 4×; at 4–5× a discharge peaks no higher than white
noise's own largest peaks within one window — the detection limit): {level}

| class | precision | recall | F1 | windows |
|---|---|---|---|---|
{rows}

Confusion matrix: ![confusion](model-card-confusion.png)

Architecture choice (CNN with a temporal head vs CNN+GRU, accuracy per byte and latency):
[architectures.md](architectures.md).

## Limitations
- **Not validated on real patients.** Every figure above is on synthetic recordings from the
  same generator family; real recordings differ in ways the synthesiser does not model
  (volume conduction, reinnervated MUAPs, needle types, amplifier artefacts). External
  validation on clinic data, and fine-tuning with `nemg train --init-from`, come first.
- **A relaxed muscle is assumed.** Discharges over a firing voluntary unit or end-plate
  noise are the weak point (the by-background line above): ask for full relaxation or
  move the needle off the end-plate zone before trusting a label.
- **The features carry no polarity.** Log-Mel power cannot see which way a potential
  first deflects — the sign that separates an initially positive fibrillation from an
  initially negative end-plate spike. Over end-plate noise the model has rhythm and
  spectrum only, which is where most fibrillation/PSW → end-plate errors come from.
- Windows are labelled by rule from spans; a window holding only the margin of a sparse
  discharge (fasciculation) is ambiguous by construction.
- **Amplitude is used.** The model was trained for ±6 dB of level error (needle type,
  calibration), not more: amplitude separates a fibrillation from a fasciculation or a
  voluntary unit. The accuracy-vs-gain row above is the cost of a wrong scale — a file
  that records no µV scale is read at the scale its noise floor gives (`nemg classify`
  says so; `--scale-uv` states it), and a front end needs its board file's µV/LSB.
  Files at other rates are brought to the model's by the box's resampler (training read
  {pct(meta.get('source_rate_share', 0))} of its recordings that way, from 4–16 kHz);
  multi-channel montages are outside what was trained.
- **Two simulators are still simulators.** The cross-simulator lines in the lead are the
  honest measure of how far a simulator's lessons carry: a third kind of signal (a real
  clinic's) may fare as badly. Check `nemg bench real` before trusting a new model.
- An `uncertain` output (top probability below {meta['uncertain_threshold']}, after
  temperature scaling, or a window unlike every training window's) is a feature: the box
  says it does not know rather than guess.
"""


#: The int8 model must make the float model's decision this often (issue target).
AGREEMENT_TARGET = 0.99


def prefer_qat(ptq: dict[str, Any], qat: dict[str, Any]) -> bool:
    """QAT or PTQ for the shipped model: the one that keeps the float model's decisions
    (agreement ≥ AGREEMENT_TARGET) first, then the higher int8 macro-F1."""
    ok_p, ok_q = (r["agreement"] >= AGREEMENT_TARGET for r in (ptq, qat))
    if ok_p != ok_q:
        return ok_q
    return qat["macro_f1_int8"] > ptq["macro_f1_int8"]


CROSS_EPOCHS = 12
"""Epochs of each cross-simulator model (train on one simulator, test on the other): a
reduced recipe — the corpus as it is, augmented, no fresh patients — so ``make model``
stays within its time budget. It measures how far one simulator's lessons carry."""


def _corpus(d: Path, make, what: str, n: int, seed: int, resume: bool = False,
            **kw) -> None:
    if resume and (d / "manifest.json").is_file():
        m = json.loads((d / "manifest.json").read_text())
        if (m.get("per_class"), m.get("seed")) == (n, seed):
            log(f"[corpus] {what}: {d} kept (--resume)")
            return
    if d.exists():
        shutil.rmtree(d)
    log(f"[corpus] {what}: {n} × 12 recordings, seed {seed} -> {d}")
    make(d, n, seed, progress=Progress("synthesising", unit=" recordings").update, **kw)


def _split_both(items, biosim_items, seed: int):
    """Training and validation recordings of both simulators (split by recording)."""
    from convert.dataset import split_by_recording

    tr, va = split_by_recording(items, 0.2, seed)
    btr, bva = split_by_recording(biosim_items, 0.2, seed) if biosim_items else ([], [])
    return tr, va, btr, bva


def _trained(out_dir: Path, resume: bool, run) -> Path:
    """The checkpoint in ``out_dir``: kept with ``resume`` when its training finished,
    else trained by ``run()``."""
    ckpt = out_dir / "model.h5"
    if resume and ckpt.is_file() and (out_dir / "training.json").is_file():
        log(f"  {ckpt} kept (--resume)")
        return ckpt
    return run().checkpoint


CALIBRATION_AUGMENT_SEED = 90_210
"""Seed of the augmented pass the familiarity is fitted on (not an epoch's)."""


def calibrate(model: bytes, train_items, val_items, val_windows, spec: FrontEndSpec,
              ) -> Calibration:
    """Temperature and familiarity of an int8 model. The temperature is fitted on the
    validation windows as they are; the familiarity on windows augmented as in training
    (``RECIPE_AUGMENT``: other rates, filters, noise, mains, backgrounds): familiar is what
    the model was trained on, not only what the simulators wrote."""
    from convert.dataset import WindowBuilder, background_items
    from convert.evaluate import int8_probabilities, int8_scores
    from edge.calibration import fit_calibration
    from edge.classifier import Classifier
    from edge.labels import LABELS

    clf = Classifier(model, list(LABELS))
    probs = int8_probabilities(clf, int8_scores(clf, val_windows))
    with WindowBuilder(spec.mel, spec.window, aug=RECIPE_AUGMENT,
                       background_items=background_items(train_items),
                       workers=WORKERS) as b:
        seen = b.build(train_items, augment_seed=CALIBRATION_AUGMENT_SEED)
        seen_val = b.build(val_items, augment_seed=CALIBRATION_AUGMENT_SEED + 1)
    cal = fit_calibration(seen.x, seen_val.x, probs, val_windows.y)
    log(f"  temperature {cal.temperature:g}, unfamiliar above {cal.unfamiliar_above:g}")
    return cal


def cross_simulator(out: Path, synth_train: Path, biosim_train: Path, test: dict, *,
                    epochs: int, seed: int, arch: str, width: float, pool: str,
                    builder, spec: FrontEndSpec, resume: bool = False) -> dict[str, Any]:
    """Train on one simulator only, test on the other's held-out corpus (and its own),
    each direction with the same reduced recipe; PTQ int8, calibrated on the training
    simulator's own validation recordings (the test simulator is never seen)."""
    from convert.architecture import load_checkpoint
    from convert.dataset import split_by_recording
    from convert.evaluate import evaluate
    from convert.quantize import representative, to_int8_tflite

    res: dict[str, Any] = {"epochs": epochs, "recipe": "corpus + augmentation, PTQ"}
    for name, data, other in (("synth", synth_train, "biosim"),
                              ("biosim", biosim_train, "synth")):
        log(f"[cross] train on {name} only, up to {epochs} epochs")
        cfg = TrainConfig(arch=arch, epochs=epochs, seed=seed, width=width, pool=pool,
                          patience=max(3, epochs // 3))
        ckpt = _trained(out / f"cross-{name}", resume, lambda d=data, n=name, c=cfg: train(
            d, out / f"cross-{n}", c, spec, aug=RECIPE_AUGMENT))
        fm = load_checkpoint(ckpt)
        tr, va = split_by_recording(read_corpus(data), 0.2, seed)
        tr_w, va_w = builder.build(tr), builder.build(va)
        q = to_int8_tflite(fm, representative(tr_w, seed=seed))
        cal = calibrate(q, tr, va, va_w, spec)
        row = {}
        for t in (other, name):
            rep = evaluate(q, test[t][0], None, float_model=fm, robustness=False,
                           windows=test[t][1], workers=WORKERS, calibration=cal, spec=spec)
            row[f"test_{t}"] = _generalisation_row(rep)
        res[f"train_{name}"] = row
        log(f"  {name} -> {other}: macro-F1 {row[f'test_{other}']['macro_f1_int8']:.3f} "
            f"({name} -> {name}: {row[f'test_{name}']['macro_f1_int8']:.3f})")
    return res


def _generalisation_row(rep: dict[str, Any]) -> dict[str, Any]:
    return {"macro_f1_int8": rep["macro_f1_int8"], "ece_int8": rep["ece_int8"],
            "ece_int8_uncalibrated": rep["ece_int8_uncalibrated"],
            "confidently_wrong_share": rep["confidently_wrong_share"],
            "unfamiliar_share": rep["unfamiliar_share"],
            "recall": {k: round(v["recall"], 3) for k, v in rep["per_class_int8"].items()},
            "windows": rep["windows"]}


def make_default_model(out: Path, *, per_class: int, test_per_class: int, epochs: int,
                       qat_epochs: int, duration_s: float, arch: str, version: str,
                       bundle: Path, key: Path, seed: int = 0,
                       width: float = RECIPE.width, pool: str = RECIPE.pool,
                       test_duration_s: float = 6.0, docs: Path | None = None,
                       train_mixture_share: float | None = None,
                       fresh_share: float = RECIPE.fresh_share,
                       biosim_per_class: int = RECIPE_BIOSIM_PER_CLASS,
                       biosim_test_per_class: int = 20,
                       cross_epochs: int = CROSS_EPOCHS,
                       resume: bool = False) -> dict[str, Any]:
    """``resume``: keep the corpora and finished trainings already in ``out`` (same
    sizes and seeds) and redo every stage after them — the result is what a full run
    gives, since each stage is seeded."""
    import numpy as np

    from convert.architecture import load_checkpoint
    from convert.biosim import biosim_corpus
    from convert.dataset import WindowBuilder
    from convert.evaluate import evaluate
    from convert.packing import pack
    from convert.quantize import qat_finetune, representative, to_int8_tflite

    t0 = time.monotonic()
    out.mkdir(parents=True, exist_ok=True)
    # a resumed run redoes the later stages only: the card keeps the full run's time
    before = out / "summary.json"
    full_minutes = (json.loads(before.read_text()).get("minutes") if resume and before.is_file()
                    else None)
    spec = DEFAULT_SPEC  # what a new model trains on: every later stage reads it from here
    mel, win = spec.mel, spec.window
    train_dir, test_dir = out / "corpus-train", out / "corpus-test"
    bio_train_dir, bio_test_dir = out / "corpus-biosim-train", out / "corpus-biosim-test"
    train_seed, test_seed = 11, 22
    # The training corpus may over-represent discharges on a background (the hard case);
    # the test corpus keeps the synthesiser's own share.
    _corpus(train_dir, synth_corpus, "synth", per_class, train_seed, resume,
            duration_s=duration_s, mixture_share=train_mixture_share, workers=WORKERS)
    _corpus(test_dir, synth_corpus, "synth", test_per_class, test_seed, resume,
            duration_s=test_duration_s, workers=WORKERS)
    if biosim_per_class:
        _corpus(bio_train_dir, biosim_corpus, "biosim", biosim_per_class, train_seed, resume,
                duration_s=duration_s)
    _corpus(bio_test_dir, biosim_corpus, "biosim", biosim_test_per_class, test_seed, resume,
            duration_s=duration_s)
    log(f"[train] {arch}, up to {epochs} epochs")
    ckpt_dir = out / "checkpoint"
    also = [bio_train_dir] if biosim_per_class else []
    checkpoint = _trained(ckpt_dir, resume, lambda: train(
        train_dir, ckpt_dir, TrainConfig(arch=arch, epochs=epochs, seed=seed, width=width,
                                         pool=pool, fresh_share=fresh_share),
        spec, also=also, aug=RECIPE_AUGMENT))
    history = json.loads((ckpt_dir / "training.json").read_text())
    float_model = load_checkpoint(checkpoint)
    items = read_corpus(train_dir)
    bio_items = read_corpus(bio_train_dir) if biosim_per_class else []
    tr, va, btr, bva = _split_both(items, bio_items, seed)
    test_items, bio_test_items = read_corpus(test_dir), read_corpus(bio_test_dir)
    with WindowBuilder(mel, win, workers=WORKERS) as builder:
        calib, val = builder.build(tr + btr), builder.build(va + bva)
        # computed once, for every model evaluated
        test = {"synth": (test_items, builder.build(test_items)),
                "biosim": (bio_test_items, builder.build(bio_test_items))}

        def report_on(model, items, windows, twin, robustness=False, out_dir=None,
                      calibration=None):
            return evaluate(model, items, out_dir, float_model=twin, robustness=robustness,
                            windows=windows, workers=WORKERS, calibration=calibration,
                            spec=spec)

        log("[int8] post-training quantisation")
        ptq = to_int8_tflite(float_model, representative(calib, seed=seed))
        ptq_rep = report_on(ptq, test_items, test["synth"][1], float_model)
        # PTQ or QAT is chosen on the validation recordings (both simulators): the test
        # corpora only report
        ptq_val = report_on(ptq, va + bva, val, float_model)
        log(f"  PTQ: macro-F1 {ptq_rep['macro_f1_int8']:.3f}, agreement "
            f"{ptq_rep['agreement']:.3f} (validation {ptq_val['macro_f1_int8']:.3f}, "
            f"{ptq_val['agreement']:.3f})")
        log("[int8] quantisation-aware training")
        qat_f1 = float("nan")
        qat = qm = qat_val = None
        try:
            qm = qat_finetune(load_checkpoint(checkpoint), calib, val, epochs=qat_epochs,
                              seed=seed)
            qat = to_int8_tflite(qm, representative(calib, seed=seed))
            # agreement of the int8 model with its own float twin (QAT's fake-quant model)
            qat_rep = report_on(qat, test_items, test["synth"][1], qm)
            qat_val = report_on(qat, va + bva, val, qm)
            qat_f1 = qat_rep["macro_f1_int8"]
            log(f"  QAT: macro-F1 {qat_f1:.3f}, agreement {qat_rep['agreement']:.3f}"
                f" (validation {qat_val['macro_f1_int8']:.3f}, {qat_val['agreement']:.3f})")
        except Exception as exc:
            log(f"  QAT unavailable: {exc}")
        use_qat = qat_val is not None and prefer_qat(ptq_val, qat_val)
        chosen, method = (qat, "qat") if use_qat else (ptq, "ptq")
        twin = qm if use_qat else float_model
        (out / "model-ptq.tflite").write_bytes(ptq)
        if qat is not None:
            (out / "model-qat.tflite").write_bytes(qat)
        log("[calibrate] temperature and familiarity on the validation recordings")
        cal = calibrate(chosen, tr + btr, va + bva, val, spec)
        log(f"[evaluate] {method.upper()} model on the held-out corpora (with robustness)")
        report = report_on(chosen, test_items, test["synth"][1], twin, robustness=True,
                           out_dir=out / "report", calibration=cal)
        bio_rep = report_on(chosen, bio_test_items, test["biosim"][1], twin, calibration=cal)
        report["held_out"] = {"synth": _generalisation_row(report),
                              "biosim": _generalisation_row(bio_rep)}
        log(f"  held-out synth {report['macro_f1_int8']:.3f}, held-out biosim "
            f"{bio_rep['macro_f1_int8']:.3f}")
        if cross_epochs and biosim_per_class:
            report["cross_simulator"] = cross_simulator(
                out, train_dir, bio_train_dir, test, epochs=cross_epochs, seed=seed,
                arch=arch, width=width, pool=pool, builder=builder, spec=spec,
                resume=resume)
    report["ptq_macro_f1_int8"] = ptq_rep["macro_f1_int8"]
    report["qat_macro_f1_int8"] = qat_f1
    (out / "report" / "report.json").write_text(json.dumps(report, indent=1))
    metrics = {k: report[k] for k in ("macro_f1_int8", "macro_f1_float", "agreement",
                                      "accuracy_int8", "ece_int8", "windows")}
    metrics.update(method=method, test_seed=test_seed, train_seed=train_seed,
                   macro_f1_int8_biosim=bio_rep["macro_f1_int8"])
    cross = report.get("cross_simulator")
    if cross:
        metrics.update(cross_synth_to_biosim=cross["train_synth"]["test_biosim"]["macro_f1_int8"],
                       cross_biosim_to_synth=cross["train_biosim"]["test_synth"]["macro_f1_int8"])
    log(f"[bundle] {bundle}")
    pack(bundle, model=chosen, key_path=key, name="nemg-default", version=version,
         spec=spec, metrics=metrics, checkpoint=checkpoint.read_bytes(),
         development_key=True, calibration=cal,
         description="Default 12-class model trained on two simulators (development key)")
    meta = {"name": "nemg-default", "version": version, "arch": arch,
            "params": int(float_model.count_params()), "method": method,
            "minutes": full_minutes or (time.monotonic() - t0) / 60, "train_seed": train_seed,
            "test_seed": test_seed, "per_class": per_class, "test_per_class": test_per_class,
            "test_duration_s": test_duration_s, "pool": pool,
            "train_mixture_share": train_mixture_share, "fresh_share": fresh_share,
            "fresh_patients": history["fresh_patients"], "biosim_per_class": biosim_per_class,
            "biosim_test_per_class": biosim_test_per_class,
            "source_rate_share": RECIPE_AUGMENT.p_source_rate,
            "duration_s": duration_s, "ptq_f1": ptq_rep["macro_f1_int8"], "qat_f1": qat_f1,
            "uncertain_threshold": 0.5, "front_end": spec.describe()}
    docs = docs or ROOT / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    (docs / "model-card.md").write_text(model_card(report, meta))
    (out / "model-card-meta.json").write_text(json.dumps(meta, indent=1))
    shutil.copy(out / "report" / "confusion.png", docs / "model-card-confusion.png")
    summary = {**metrics, "bundle": str(bundle), "bytes": len(chosen),
               "minutes": meta["minutes"], "params": meta["params"],
               "ptq_macro_f1_int8": ptq_rep["macro_f1_int8"], "qat_macro_f1_int8": qat_f1,
               "epochs_run": len(history["history"]), "best_epoch": history["best_epoch"],
               "seconds_per_epoch": float(np.mean([h["seconds"] for h in history["history"]])),
               "temperature": cal.temperature}
    (out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m convert.pipeline")
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "model")
    ap.add_argument("--per-class", type=int, default=120)
    ap.add_argument("--test-per-class", type=int, default=30)
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--epochs", type=int, default=RECIPE.epochs)
    ap.add_argument("--qat-epochs", type=int, default=3)
    ap.add_argument("--arch", default=RECIPE.arch, choices=["cnn", "cnn_gru"])
    ap.add_argument("--width", type=float, default=RECIPE.width, help="channel multiplier")
    ap.add_argument("--pool", default=RECIPE.pool, choices=["avg", "avg_max"],
                    help="cnn head: average, or average and maximum over the window")
    ap.add_argument("--train-mixture-share", type=float, default=0.4,
                    help="share of training discharge recordings over end-plate noise or a "
                         "voluntary unit (the test corpus keeps the synthesiser's "
                         f"{PARAMS['background']['mixture_share']:g})")
    ap.add_argument("--fresh-share", type=float, default=RECIPE.fresh_share,
                    help="share of each epoch's training recordings that are new synthetic "
                         "patients instead of corpus recordings")
    ap.add_argument("--biosim-per-class", type=int, default=RECIPE_BIOSIM_PER_CLASS,
                    help="training recordings per class of the biophysical simulator (0: "
                         "the template synthesiser only)")
    ap.add_argument("--biosim-test-per-class", type=int, default=20)
    ap.add_argument("--cross-epochs", type=int, default=CROSS_EPOCHS,
                    help="epochs of each cross-simulator model (0: skip that report)")
    ap.add_argument("--version", default="2.0.0")
    ap.add_argument("--resume", action="store_true",
                    help="keep the corpora and finished trainings already in --out and redo "
                         "every later stage (same result as a full run)")
    ap.add_argument("--bundle", type=Path,
                    help="the candidate bundle (default: OUT/nemg-default.nemg; the shipped "
                         f"{SHIPPED_BUNDLE.relative_to(ROOT)} is never overwritten by default)")
    ap.add_argument("--key", type=Path, default=DEV_KEY)
    ap.add_argument("--docs", type=Path,
                    help="where the model card goes (default: OUT/docs)")
    a = ap.parse_args(argv)
    a.bundle = a.bundle or a.out / "nemg-default.nemg"
    a.docs = a.docs or a.out / "docs"
    from edge.console import filtered_stderr

    with filtered_stderr():  # TensorFlow's native start-up lines are not progress
        s = make_default_model(a.out, per_class=a.per_class, test_per_class=a.test_per_class,
                               epochs=a.epochs, qat_epochs=a.qat_epochs, duration_s=a.duration,
                               arch=a.arch, version=a.version, bundle=a.bundle, key=a.key,
                               width=a.width, pool=a.pool, docs=a.docs,
                               train_mixture_share=a.train_mixture_share,
                               fresh_share=a.fresh_share,
                               biosim_per_class=a.biosim_per_class,
                               biosim_test_per_class=a.biosim_test_per_class,
                               cross_epochs=a.cross_epochs, resume=a.resume)
    print(json.dumps(s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
