"""The model card (``docs/model-card.md``) of a model ``make model`` built: what it is,
what it was trained and tested on, its figures and its limitations, generalisation first."""

from __future__ import annotations

from typing import Any

from convert.synth import PARAMS

ARCH_NAMES = {"cnn": "CNN with a dilated temporal head", "cnn_gru": "CNN+GRU"}


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
    """The card's Markdown: ``report`` is the chosen model's evaluation report (with its
    held-out and cross-simulator rows), ``meta`` what the run was (``make model``)."""
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
[model-architectures.md](model-architectures.md).

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
